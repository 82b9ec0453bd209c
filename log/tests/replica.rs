//! Follower appends and the leader-epoch cache, on in-memory storage.

mod common;

use common::{batch, small_config};
use futures::executor::block_on;
use rkyv::util::AlignedVec;
use weir_log::batch::BatchView;
use weir_log::epoch_cache::{EpochCache, EpochEnd, EpochEntry};
use weir_log::storage::Storage;
use weir_log::storage::mem::{CrashMode, MemStorage};
use weir_log::{LogConfig, LogError, PartitionLog};

/// Every stored batch of the log, as the leader would send them, each in an aligned buffer.
async fn stored_batches(log: &PartitionLog<MemStorage>) -> Vec<AlignedVec<16>> {
    let mut out = Vec::new();
    let mut offset = log.log_start();
    while offset < log.next_offset() {
        let f = log.read(offset, 1 << 20).await.unwrap();
        let mut bytes = f.bytes();
        while !bytes.is_empty() {
            let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
            let mut owned = AlignedVec::<16>::new();
            owned.extend_from_slice(&bytes[..len]);
            out.push(owned);
            bytes = &bytes[len..];
        }
        offset = f.next_offset;
    }
    out
}

fn view(bytes: &AlignedVec<16>) -> BatchView<'_> {
    BatchView::validate(bytes, usize::MAX).unwrap()
}

/// A leader log with epochs 1 at 0, 3 at 30 and 4 at 60: 40 batches of 3 records.
async fn leader(st: &MemStorage) -> PartitionLog<MemStorage> {
    let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
    for t in 0..40u64 {
        let epoch = match t {
            0..10 => 1,
            10..20 => 3,
            _ => 4,
        };
        log.append(&batch(t, 3, 300, t as i64).view(), epoch, t * 10).await.unwrap();
    }
    log.flush().await.unwrap();
    log
}

async fn files(st: &MemStorage) -> Vec<(String, Vec<u8>)> {
    let mut names = st.list().await.unwrap();
    names.sort();
    names.into_iter().map(|n| (n.clone(), st.contents(&n).unwrap())).collect()
}

#[test]
fn a_follower_fed_the_leaders_batches_holds_the_same_bytes() {
    block_on(async {
        let lst = MemStorage::new();
        let leader = leader(&lst).await;
        let fst = MemStorage::new();
        let (mut follower, _) = PartitionLog::open(fst.clone(), small_config(), 0).await.unwrap();
        for (i, b) in stored_batches(&leader).await.iter().enumerate() {
            let a = follower.append_replicated(&view(b), i as u64 * 10).await.unwrap();
            assert_eq!(a.base_offset, i as u64 * 3);
        }
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        let want = [(1, 0), (3, 30), (4, 60)].map(|(epoch, start_offset)| EpochEntry { epoch, start_offset });
        assert_eq!(leader.leader_epochs(), want);
        assert_eq!(leader.segment_bases(), [0, 42, 84], "the logs roll at the same places");
        leader.close().await.unwrap();
        follower.close().await.unwrap();
        let (l, f) = (files(&lst).await, files(&fst).await);
        assert_eq!(l.iter().map(|x| &x.0).collect::<Vec<_>>(), f.iter().map(|x| &x.0).collect::<Vec<_>>());
        for ((name, lb), (_, fb)) in l.iter().zip(&f) {
            assert!(lb == fb, "{name} differs");
        }
    });
}

#[test]
fn gaps_overlaps_and_old_epochs_are_refused_and_the_log_goes_on() {
    block_on(async {
        let leader = leader(&MemStorage::new()).await;
        let batches = stored_batches(&leader).await;
        let (mut follower, _) = PartitionLog::open(MemStorage::new(), small_config(), 0).await.unwrap();
        for b in &batches[..25] {
            follower.append_replicated(&view(b), 0).await.unwrap();
        }
        assert_eq!(follower.next_offset(), 75);
        let err = follower.append_replicated(&view(&batches[26]), 0).await.unwrap_err();
        assert!(matches!(err, LogError::OffsetGap { expected: 75, actual: 78 }), "{err:?}");
        let err = follower.append_replicated(&view(&batches[24]), 0).await.unwrap_err();
        assert!(matches!(err, LogError::OffsetOverlap { expected: 75, actual: 72 }), "{err:?}");
        // The right offset from a deposed leader of epoch 3, after epoch 4 wrote here.
        let mut stale = batches[25].clone();
        weir_log::batch::patch_offsets(&mut stale, 75, 3);
        let err = follower.append_replicated(&view(&stale), 0).await.unwrap_err();
        assert!(matches!(err, LogError::StaleLeaderEpoch { latest: 4, actual: 3 }), "{err:?}");
        assert!(!follower.is_failed());
        assert_eq!(follower.next_offset(), 75);
        for b in &batches[25..] {
            follower.append_replicated(&view(b), 0).await.unwrap();
        }
        assert_eq!(follower.next_offset(), 120);
        assert_eq!(follower.flush().await.unwrap(), 120);
    });
}

#[test]
fn the_epoch_cache_survives_reopen_and_follows_truncation_and_retention() {
    block_on(async {
        let st = MemStorage::new();
        let log = leader(&st).await;
        let end = |epoch, end_offset| Some(EpochEnd { epoch, end_offset });
        assert_eq!(log.epoch_end_offset(0), None);
        assert_eq!(log.epoch_end_offset(1), end(1, 30));
        assert_eq!(log.epoch_end_offset(2), end(1, 30));
        assert_eq!(log.epoch_end_offset(4), end(4, 120));
        drop(log);
        let (mut log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(!report.epoch_cache_lost);
        assert_eq!(log.leader_epochs().len(), 3);
        assert_eq!(log.epoch_end_offset(3), end(3, 60));

        // A cut inside epoch 3 drops epoch 4; a cut at epoch 3's start drops it too.
        assert_eq!(log.truncate_to(61, 0).await.unwrap(), 60);
        assert_eq!(log.epoch_end_offset(9), end(3, 60));
        assert_eq!(log.truncate_to(30, 0).await.unwrap(), 30);
        assert_eq!(log.leader_epochs(), [EpochEntry { epoch: 1, start_offset: 0 }]);
        // A new leader epoch writes; a reopen keeps what the truncations left.
        log.append(&batch(99, 3, 300, 0).view(), 7, 0).await.unwrap();
        log.flush().await.unwrap();
        drop(log);
        let config = LogConfig { retention_bytes: Some(1), ..small_config() };
        let (mut log, _) = PartitionLog::open(st.clone(), config.clone(), 0).await.unwrap();
        let want = [(1, 0), (7, 30)].map(|(epoch, start_offset)| EpochEntry { epoch, start_offset });
        assert_eq!(log.leader_epochs(), want);

        // Retention moves the first epoch's start to the new log start, durably.
        log.roll(0).await.unwrap();
        log.append(&batch(100, 3, 300, 0).view(), 7, 0).await.unwrap();
        assert_eq!(log.enforce_retention(0).await.unwrap(), [0]);
        assert_eq!(log.log_start(), 33);
        let want = [EpochEntry { epoch: 7, start_offset: 33 }];
        assert_eq!(log.leader_epochs(), want);
        log.flush().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(st, config, 0).await.unwrap();
        assert_eq!(log.leader_epochs(), want);
        assert_eq!(log.epoch_end_offset(1), None, "epoch 1 is gone with its records");
    });
}

/// The slot file holding the newest intact copy, and its cache.
fn newest_slot(st: &MemStorage) -> (&'static str, EpochCache) {
    ["epochs.a", "epochs.b"]
        .into_iter()
        .filter_map(|n| EpochCache::decode(&st.contents(n)?).map(|(seq, c)| (seq, n, c)))
        .max_by_key(|(seq, ..)| *seq)
        .map(|(_, n, c)| (n, c))
        .expect("an intact slot")
}

#[test]
fn a_torn_slot_falls_back_to_the_other_and_two_are_reported_lost() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        log.append(&batch(0, 2, 10, 0).view(), 1, 0).await.unwrap();
        log.append(&batch(1, 2, 10, 0).view(), 2, 0).await.unwrap();
        log.flush().await.unwrap();
        let before = log.leader_epochs().to_vec();
        // Epoch 3 is recorded, then its write is torn (as by a crash while it was written).
        log.append(&batch(2, 2, 10, 0).view(), 3, 0).await.unwrap();
        log.flush().await.unwrap();
        drop(log);
        let (name, newest) = newest_slot(&st);
        assert_eq!(newest.latest(), Some(EpochEntry { epoch: 3, start_offset: 4 }));
        let bytes = st.contents(name).unwrap();
        st.set_contents(name, bytes[..bytes.len() / 2].to_vec());
        let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(!report.epoch_cache_lost);
        assert_eq!(log.leader_epochs(), before, "the other slot's copy");
        drop(log);
        // Both slots damaged: the cache starts empty, and the report says so.
        for n in ["epochs.a", "epochs.b"] {
            st.flip_bit(n, 20, 1);
        }
        let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(report.epoch_cache_lost);
        assert_eq!(log.leader_epochs(), []);
    });
}

#[test]
fn an_epoch_whose_batches_a_crash_lost_is_dropped_at_recovery() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        log.append(&batch(0, 2, 10, 0).view(), 1, 0).await.unwrap();
        log.flush().await.unwrap();
        // Epoch 2 is recorded durably before its batch, which is never synced.
        log.append(&batch(1, 2, 10, 0).view(), 2, 0).await.unwrap();
        assert_eq!(log.leader_epochs().len(), 2);
        st.crash(CrashMode::LoseUnsynced);
        drop(log);
        let (log, _) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!(log.next_offset(), 2);
        assert_eq!(log.leader_epochs(), [EpochEntry { epoch: 1, start_offset: 0 }]);
        assert_eq!(log.epoch_end_offset(2), Some(EpochEnd { epoch: 1, end_offset: 2 }));
    });
}

#[test]
fn a_leader_epoch_begun_before_any_append_answers_for_the_previous_one() {
    block_on(async {
        let st = MemStorage::new();
        let mut log = leader(&st).await;
        let end = |epoch, end_offset| Some(EpochEnd { epoch, end_offset });
        assert_eq!(log.begin_epoch(6).await.unwrap(), 120);
        assert_eq!(log.begin_epoch(5).await.unwrap(), 120, "an older epoch changes nothing");
        assert_eq!(log.leader_epochs().last(), Some(&EpochEntry { epoch: 6, start_offset: 120 }));
        assert_eq!(log.epoch_end_offset(4), end(4, 120));
        // Durable at once: a reopen sees it while it is at the log end, and drops it only once
        // it holds nothing (the reopen's own rule): here a batch makes it stay.
        log.append(&batch(50, 3, 300, 0).view(), 6, 0).await.unwrap();
        log.flush().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!(log.epoch_end_offset(5), end(4, 120));
        assert_eq!(log.epoch_end_offset(6), end(6, 123));
    });
}

/// Found by the replication simulator (seed 292): a slot is written in whole blocks, synced, then
/// trimmed to its length and synced again. A crash between the two syncs left an intact cache
/// padded with zeros, which was refused as damaged: the first epoch of a log was lost, and a later
/// one would have fallen back to the older slot, without the newest epoch.
#[test]
fn a_cache_whose_trim_a_crash_undid_is_still_read() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        // The slot's syncs: the data's, then the trim's, which fails.
        st.faults().fail_sync_in.set(2);
        log.append(&batch(0, 3, 300, 0).view(), 1, 0).await.unwrap_err();
        drop(log);
        st.crash(CrashMode::LoseUnsynced);
        let (log, report) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert!(!report.epoch_cache_lost, "the padded slot holds the cache");
        assert_eq!(log.next_offset(), 0);
    });
}

/// Found by the replication simulator (seed 433): a replica that began an epoch as leader and
/// wrote nothing in it, then followed a leader of an older epoch, refused every batch of that
/// leader as stale, for ever. A cut at the log end drops such an epoch.
#[test]
fn a_cut_at_the_log_end_drops_an_epoch_that_wrote_nothing() {
    block_on(async {
        let st = MemStorage::new();
        let mut log = leader(&st).await;
        log.begin_epoch(9).await.unwrap();
        let mut b = batch(60, 3, 300, 0);
        b.set_base_offset(120, 5);
        let stale = log.append_replicated(&b.view(), 0).await;
        assert!(matches!(stale, Err(LogError::StaleLeaderEpoch { latest: 9, actual: 5 })), "{stale:?}");
        assert_eq!(log.truncate_to(120, 0).await.unwrap(), 120);
        assert_eq!(log.leader_epochs().last().map(|e| e.epoch), Some(4));
        log.append_replicated(&b.view(), 0).await.unwrap();
        log.flush().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!(log.leader_epochs().last(), Some(&EpochEntry { epoch: 5, start_offset: 120 }));
    });
}

#[test]
fn a_follower_behind_its_leaders_log_start_starts_over_there() {
    block_on(async {
        let st = MemStorage::new();
        let mut log = leader(&st).await;
        assert_eq!(log.start_over_at(500, 0).await.unwrap(), 500);
        assert_eq!((log.log_start(), log.next_offset(), log.durable_offset()), (500, 500, 500));
        assert!(log.leader_epochs().is_empty(), "no batch is left of any epoch");
        let mut b = batch(7, 3, 300, 0);
        b.set_base_offset(500, 9);
        log.append_replicated(&b.view(), 0).await.unwrap();
        log.flush().await.unwrap();
        drop(log);
        st.crash(CrashMode::LoseUnsynced);
        let (log, _) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!((log.log_start(), log.next_offset()), (500, 503));
        assert_eq!(log.leader_epochs(), [EpochEntry { epoch: 9, start_offset: 500 }]);
    });
}

/// The leader log (rolled first if `rolled`) starts over at `offset` with its `fail_at`-th sync
/// failing, then crashes (torn with `torn` as the seed) and reopens. Returns the reopened log and
/// whether the start-over had finished.
async fn start_over_then_crash(
    offset: u64,
    rolled: bool,
    fail_at: u32,
    torn: Option<u32>,
) -> (PartitionLog<MemStorage>, bool) {
    let st = MemStorage::new();
    let mut log = leader(&st).await;
    if rolled {
        log.roll(0).await.unwrap();
    }
    st.faults().fail_sync_in.set(fail_at);
    let done = log.start_over_at(offset, 0).await.is_ok();
    drop(log);
    st.faults().fail_sync_in.set(0);
    st.crash(torn.map_or(CrashMode::LoseUnsynced, |seed| CrashMode::Torn { seed: seed.into() }));
    let (log, _) = PartitionLog::open(st, small_config(), 0).await.unwrap();
    (log, done)
}

/// Found by the replication simulator (seed 1677): a start-over interrupted by a failed sync
/// left a segment with batches followed, after a gap, by the new empty one, which recovery took
/// for corruption and refused to open. Now every step leaves a log recovery opens: the old one,
/// a prefix of it, or the new one.
#[test]
fn a_start_over_interrupted_anywhere_leaves_a_log_that_opens() {
    block_on(async {
        for fail_at in 1..12 {
            for torn in [None, Some(fail_at)] {
                let (log, done) = start_over_then_crash(500, true, fail_at, torn).await;
                let (start, end) = (log.log_start(), log.next_offset());
                // The old log, a prefix of it (a cut is undone from its end), or the new one.
                let old = start == 0 && end <= 120;
                assert!(old || (start, end) == (500, 500), "{fail_at}: [{start}, {end})");
                assert!(!done || start == 500, "{fail_at}: a finished start-over is durable");
                assert!(start == 0 || log.leader_epochs().is_empty(), "{fail_at}: epochs of a removed log");
            }
        }
    });
}

/// Found by the replication simulator (seed 2563): a follower in the ISR starting over at its own
/// log end (its leader's retention passed its last epoch) was cut to its log start first; a
/// crash there left it empty at 0, below the high watermark it had acknowledged. At the log end,
/// every step now leaves a log that still ends there.
#[test]
fn a_start_over_at_the_log_end_never_shortens_the_log() {
    block_on(async {
        for fail_at in 1..10 {
            for torn in [None, Some(fail_at)] {
                let (log, done) = start_over_then_crash(120, false, fail_at, torn).await;
                assert_eq!(log.next_offset(), 120, "{fail_at}: the log still ends at its end");
                assert!(!done || log.log_start() == 120, "{fail_at}: a finished start-over is durable");
            }
        }
    });
}

//! Log compaction against a model: seeded keyed records and tombstones over many segments,
//! cleaned, then checked record by record; crashes at every I/O of a clean and its swaps; a
//! clean overtaken by a truncation or retention; a replica copying a compacted log.

mod common;

use common::run_until_held;
use futures::executor::block_on;
use std::collections::BTreeMap;
use weir_log::batch::{Batch, BatchBuilder, BatchView, ProducerStamp, Record};
use weir_log::compaction::CleanConfig;
use weir_log::storage::Storage;
use weir_log::storage::mem::{CrashMode, MemStorage};
use weir_log::{FlushPolicy, LogConfig, LogError, PartitionLog};

type Key = Option<Vec<u8>>;
type Value = Option<Vec<u8>>;

/// A record as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    key: Key,
    value: Value,
}

/// A small deterministic generator, so every failure replays from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4 << 10,
        segment_ms: u64::MAX,
        index_interval_bytes: 512,
        batch_bytes_max: 4 << 10,
        write_buffer_bytes: 8 << 10,
        write_behind_buffers_max: 2,
        preallocate_bytes: 8 << 10,
        flush: FlushPolicy::Sync,
        retention_ms: None,
        retention_bytes: None,
        // Every batch stays cached: a fetch must still read what the cleaned files hold.
        batch_cache: Some(weir_log::BatchCache::new(64 << 20)),
    }
}

const BATCHES: u64 = 90;
/// Append times are `t * APPEND_STEP_MS` for batch `t`.
const APPEND_STEP_MS: u64 = 100;
const NOW_MS: u64 = BATCHES * APPEND_STEP_MS + 1000;
/// Tombstones of segments last appended to before `NOW_MS - RETENTION_MS` are expired.
const RETENTION_MS: u64 = 5000;

fn clean_config(map_bytes_max: usize) -> CleanConfig {
    CleanConfig { delete_retention_ms: RETENTION_MS, map_bytes_max }
}

fn keyed_batch(recs: &[(Key, Value)], ts: i64) -> Batch {
    let mut b = BatchBuilder::new(4 << 10);
    for (i, (k, v)) in recs.iter().enumerate() {
        let r = Record { key: k.as_deref(), value: v.as_deref(), headers: &[], timestamp: ts + i as i64 };
        b.push(&r).unwrap();
    }
    b.seal(ProducerStamp::default())
}

/// A log of `BATCHES` seeded batches of keyed records (a few unkeyed, some tombstones) over many
/// sealed segments, in leader epochs 1 and 2, all flushed and sealed. Returns it with the
/// model: every record, and every batch's append time by offset.
async fn build(st: &MemStorage, seed: u64) -> (PartitionLog<MemStorage>, Vec<Rec>, BTreeMap<u64, u64>) {
    let mut rng = Rng(seed);
    let (mut log, _) = PartitionLog::open(st.clone(), config(), 0).await.unwrap();
    let (mut model, mut appended) = (Vec::new(), BTreeMap::new());
    for t in 0..BATCHES {
        let n = 1 + rng.below(6) as usize;
        let recs: Vec<(Key, Value)> = (0..n)
            .map(|_| {
                // Keys 12 and up are written in the first half only, so some keys' latest
                // records, tombstones among them, are in segments old enough to expire.
                let keys = if t < BATCHES / 2 { 40 } else { 12 };
                let key = (rng.below(20) != 0).then(|| format!("key-{}", rng.below(keys)).into_bytes());
                let len = 10 + rng.below(60) as usize;
                let value = (key.is_none() || rng.below(6) != 0).then(|| vec![rng.below(256) as u8; len]);
                (key, value)
            })
            .collect();
        let epoch = if t < BATCHES / 2 { 1 } else { 2 };
        let a = log.append(&keyed_batch(&recs, t as i64).view(), epoch, t * APPEND_STEP_MS).await.unwrap();
        appended.insert(a.base_offset, t * APPEND_STEP_MS);
        for (i, (key, value)) in recs.into_iter().enumerate() {
            model.push(Rec { offset: a.base_offset + i as u64, key, value });
        }
    }
    log.flush().await.unwrap();
    log.roll(BATCHES * APPEND_STEP_MS).await.unwrap();
    assert!(log.segment_bases().len() > 6, "many segments");
    (log, model, appended)
}

/// Every record the log serves, read from its start as a consumer would.
async fn survivors(log: &PartitionLog<MemStorage>) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut offset = log.log_start();
    while offset < log.next_offset() {
        let f = log.read(offset, 1 << 16).await.unwrap();
        assert!(!f.is_empty(), "no progress at {offset}");
        out.extend(decode(f.bytes()));
        offset = f.next_offset;
    }
    out
}

fn decode(mut bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(bytes);
        let view = BatchView::validate(&aligned, usize::MAX).expect("served batches are valid");
        out.extend(view.records().map(|r| Rec {
            offset: r.offset,
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
        }));
        bytes = &bytes[view.bytes().len()..];
    }
    out
}

/// Runs one cleaning pass to its end with steps of `budget_bytes`, swapping in every cleaned
/// segment. Returns where the next pass maps from, and how many segments were swapped in.
async fn clean(log: &mut PartitionLog<MemStorage>, map_from: u64, map_bytes_max: usize) -> (u64, usize) {
    let (mapped_to, swapped, _) = clean_counting(log, map_from, map_bytes_max).await;
    (mapped_to, swapped)
}

/// [`clean`], also returning the bytes the pass wrote.
async fn clean_counting(
    log: &mut PartitionLog<MemStorage>,
    map_from: u64,
    map_bytes_max: usize,
) -> (u64, usize, u64) {
    let hw = log.next_offset();
    let Some(mut plan) = log.plan_clean(map_from, hw, clean_config(map_bytes_max), NOW_MS) else {
        return (map_from, 0, 0);
    };
    let (mut swapped, mut written) = (0, 0);
    loop {
        let step = plan.step(3000).await.unwrap();
        assert!(step.done || step.read_bytes > 0, "every step reads");
        written += step.written_bytes;
        if let Some(c) = step.cleaned {
            assert!(log.complete_clean(c).await.unwrap(), "nothing changed the segment");
            swapped += 1;
        }
        if step.done {
            return (plan.mapped_to().unwrap(), swapped, written);
        }
    }
}

/// Whether the tombstone at `offset` has outlived its retention: by the last append time of
/// the segment holding it.
fn expired(log: &PartitionLog<MemStorage>, appended: &BTreeMap<u64, u64>, offset: u64) -> bool {
    let bases = log.segment_bases();
    let i = bases.partition_point(|&b| b <= offset) - 1;
    let end = bases.get(i + 1).copied().unwrap_or(u64::MAX);
    let last_append = appended.range(bases[i]..end).map(|(_, &ms)| ms).max().unwrap();
    NOW_MS - last_append >= RETENTION_MS
}

/// Whether `rec` is one a full clean removes: superseded by a later record of its key, or its
/// key's latest record but an expired tombstone.
fn removable(
    model: &[Rec],
    log: &PartitionLog<MemStorage>,
    appended: &BTreeMap<u64, u64>,
    rec: &Rec,
) -> bool {
    let Some(key) = &rec.key else { return false };
    let latest = model.iter().rev().find(|r| r.key.as_ref() == Some(key)).unwrap();
    latest.offset > rec.offset || (rec.value.is_none() && expired(log, appended, rec.offset))
}

/// The model check of a fully cleaned log: survivors are model records at their own offsets,
/// every latest value is there, nothing removable is left but the one record a segment's last
/// batch keeps, and a read from every offset finds the next survivor.
async fn check_cleaned(log: &PartitionLog<MemStorage>, model: &[Rec], appended: &BTreeMap<u64, u64>) {
    let got = survivors(log).await;
    check_subset(&got, model);
    let bases = log.segment_bases();
    let segment_of = |o: u64| bases.partition_point(|&b| b <= o);
    for (i, r) in got.iter().enumerate() {
        if removable(model, log, appended, r) {
            let last_in_segment = got.get(i + 1).is_none_or(|n| segment_of(n.offset) != segment_of(r.offset));
            assert!(last_in_segment, "removable record left at {}: {r:?}", r.offset);
        }
    }
    for r in model {
        if !removable(model, log, appended, r) {
            assert!(got.contains(r), "record at {} lost: {r:?}", r.offset);
        }
    }
    check_final_state(&got, model);
    check_reads(log, &got).await;
}

/// What a consumer that reads the whole log ends with: each key's last survivor. A key whose
/// latest record is a value reads as that value; one whose latest record is a tombstone reads as
/// deleted (its last survivor a tombstone, or none): an older value left behind, at the end of
/// a segment, would bring a deleted key back once its tombstone goes.
fn check_final_state(got: &[Rec], model: &[Rec]) {
    let keys: std::collections::BTreeSet<&Key> =
        model.iter().map(|r| &r.key).filter(|k| k.is_some()).collect();
    for key in keys {
        let latest = model.iter().rev().find(|r| &r.key == key).unwrap();
        let last = got.iter().rev().find(|r| &r.key == key);
        match latest.value {
            Some(_) => assert_eq!(last, Some(latest), "key {key:?} reads as its latest value"),
            None => {
                assert!(last.is_none_or(|r| r.value.is_none()), "deleted key {key:?} came back: {last:?}")
            }
        }
    }
}

/// Survivors are model records, in order, at their original offsets.
fn check_subset(got: &[Rec], model: &[Rec]) {
    assert!(got.windows(2).all(|w| w[0].offset < w[1].offset), "offsets increase");
    for r in got {
        let m = model
            .iter()
            .find(|m| m.offset == r.offset)
            .unwrap_or_else(|| panic!("no record at {}", r.offset));
        // A superseded record kept only to hold its place loses its value (see
        // `weir_log::compaction::rewrite::keep_flags`).
        let placeholder = Rec { value: None, ..m.clone() };
        assert!(r == m || *r == placeholder, "offset {} changed: {r:?}, was {m:?}", r.offset);
    }
}

/// A read from every offset of the log returns, first among the records at or after it, the
/// next survivor.
async fn check_reads(log: &PartitionLog<MemStorage>, got: &[Rec]) {
    for o in log.log_start()..log.next_offset() {
        let want = got.iter().find(|r| r.offset >= o);
        let mut at = o;
        let first = loop {
            if at >= log.next_offset() {
                break None;
            }
            let f = log.read(at, 1).await.unwrap();
            assert!(f.first_offset <= at || f.first_offset > o, "read from {at}");
            if let Some(r) = decode(f.bytes()).into_iter().find(|r| r.offset >= o) {
                break Some(r);
            }
            at = f.next_offset;
        };
        assert_eq!(first.as_ref(), want, "read from {o}");
        // A fetch, which the batch cache may answer, reads what the files hold.
        let fetched = log.plan_fetch(o, 1, u64::MAX).unwrap().unwrap().execute().await.unwrap().bytes;
        assert_eq!(fetched[..], log.read(o, 1).await.unwrap().bytes()[..], "fetch from {o}");
    }
}

#[test]
fn a_clean_keeps_the_latest_record_of_every_key_at_its_offset() {
    block_on(async {
        for seed in 0..6 {
            let st = MemStorage::new();
            let (mut log, model, appended) = build(&st, seed).await;
            let (start, end, epochs) = (log.log_start(), log.next_offset(), log.leader_epochs().to_vec());
            let before = log.size_bytes();
            let (mapped_to, swapped) = clean(&mut log, start, 1 << 20).await;
            assert!(swapped > 0, "seed {seed}: something was cleaned");
            assert!(log.size_bytes() < before);
            assert_eq!(mapped_to, *log.segment_bases().last().unwrap());
            assert_eq!((log.log_start(), log.next_offset()), (start, end), "the log's ends stay");
            assert_eq!(log.leader_epochs(), &epochs[..]);
            check_cleaned(&log, &model, &appended).await;
            // The seed gives tombstones on both sides of their retention: the check saw both.
            let got = survivors(&log).await;
            let latest_tombstones: Vec<&Rec> = model
                .iter()
                .filter(|r| r.value.is_none() && r.key.is_some() && !removable(&model, &log, &appended, r))
                .collect();
            let expired_gone = model.iter().filter(|r| {
                r.value.is_none()
                    && removable(&model, &log, &appended, r)
                    && !got.contains(r)
                    && model.iter().rev().find(|m| m.key == r.key).unwrap().offset == r.offset
            });
            assert!(!latest_tombstones.is_empty() && expired_gone.count() > 0, "seed {seed}");
            // Cleaning again changes nothing.
            let got = survivors(&log).await;
            let (_, swapped, written) = clean_counting(&mut log, start, 1 << 20).await;
            assert_eq!((swapped, written), (0, 0), "seed {seed}: a clean log stays, unwritten");
            assert_eq!(survivors(&log).await, got);
            // The cleaned segments' indexes and data agree: a reopen trusts them and finds no
            // damage, and the same records.
            drop(log);
            let (log, report) = PartitionLog::open(st.clone(), config(), NOW_MS).await.unwrap();
            assert!(report.rebuilt_indexes.is_empty() && report.damaged.is_empty(), "{report:?}");
            assert_eq!(survivors(&log).await, got);
            // Without the sealed indexes, the segments are scanned: the gaps are accepted.
            let bases = log.segment_bases();
            drop(log);
            for &b in &bases[..bases.len() - 1] {
                st.remove(&format!("{b:020}.index")).await.unwrap();
            }
            let (log, report) = PartitionLog::open(st, config(), NOW_MS).await.unwrap();
            assert!(report.damaged.is_empty() && report.truncated.is_none(), "{report:?}");
            assert_eq!(report.rebuilt_indexes.len(), bases.len() - 1);
            assert_eq!(survivors(&log).await, got);
        }
    });
}

/// A key map far too small for the log: each pass maps a few keys from where the last one
/// stopped, and the passes together clean as one large pass would.
#[test]
fn passes_with_a_small_map_clean_the_log_in_turn() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, model, appended) = build(&st, 11).await;
        let mut map_from = log.log_start();
        let mut passes = 0;
        while map_from < *log.segment_bases().last().unwrap() {
            let (next, _) =
                clean(&mut log, map_from, 3 * (8 + weir_log::compaction::MAP_ENTRY_OVERHEAD_BYTES)).await;
            assert!(next > map_from, "each pass maps further");
            map_from = next;
            passes += 1;
            check_subset(&survivors(&log).await, &model);
        }
        assert!(passes > 3, "the map bounded each pass ({passes} passes)");
        check_cleaned(&log, &model, &appended).await;
    });
}

/// A crash at any write, sync or directory sync of a clean and its swaps leaves, segment by
/// segment, the old records or the cleaned ones, never a mix, no `.cleaned` file after the
/// reopen, and a log that a clean then brings to the fully cleaned state.
#[test]
fn a_crash_at_any_point_of_a_clean_leaves_each_segment_old_or_new() {
    block_on(async {
        let reference = MemStorage::new();
        let (mut log, model, appended) = build(&reference, 3).await;
        let old = survivors(&log).await;
        let start = log.log_start();
        clean(&mut log, start, 1 << 20).await;
        let new = survivors(&log).await;
        let bases = log.segment_bases();
        drop(log);
        for dir in [false, true] {
            for n in 1.. {
                let st = MemStorage::new();
                let (mut log, _, _) = build(&st, 3).await;
                let faults = st.faults();
                faults.held.set(false);
                if dir {
                    faults.hold_dir_sync_in.set(n)
                } else {
                    faults.hold_io_in.set(n)
                }
                let finished = run_until_held(clean(&mut log, start, 1 << 20), &st).is_some();
                faults.hold_io_in.set(0);
                faults.hold_dir_sync_in.set(0);
                if finished {
                    assert!(n > 5, "the clean did I/O");
                    // A finished clean is durable.
                    drop(log);
                    st.crash(CrashMode::LoseUnsynced);
                    let (log, _) = PartitionLog::open(st.clone(), config(), NOW_MS).await.unwrap();
                    assert_eq!(survivors(&log).await, new);
                    break;
                }
                drop(log);
                let mode =
                    if n % 2 == 0 { CrashMode::LoseUnsynced } else { CrashMode::Torn { seed: n.into() } };
                st.crash(mode);
                let what = format!("{} {n} held, {mode:?}", if dir { "directory sync" } else { "I/O" });
                let (mut log, report) = PartitionLog::open(st.clone(), config(), NOW_MS).await.unwrap();
                assert!(report.damaged.is_empty() && report.truncated.is_none(), "{what}: {report:?}");
                assert!(report.rebuilt_indexes.is_empty(), "{what}: an index disagrees with its data");
                assert!(!st.list().await.unwrap().iter().any(|n| n.ends_with(".cleaned")), "{what}");
                assert_eq!(log.segment_bases(), bases, "{what}");
                let got = survivors(&log).await;
                for (i, &b) in bases.iter().enumerate() {
                    let end = bases.get(i + 1).copied().unwrap_or(u64::MAX);
                    let of = |v: &[Rec]| {
                        v.iter().filter(|r| (b..end).contains(&r.offset)).cloned().collect::<Vec<_>>()
                    };
                    let seg = of(&got);
                    assert!(seg == of(&old) || seg == of(&new), "{what}: segment {b} is a mix");
                }
                clean(&mut log, start, 1 << 20).await;
                check_cleaned(&log, &model, &appended).await;
            }
        }
    });
}

/// A cleaned segment that a truncation or retention removed, or that was cleaned by another
/// pass meanwhile, or of a log cut anywhere since the pass was planned (the later records whose
/// keys made the segment's records go may be gone), is not swapped in, and its files go.
#[test]
fn a_clean_overtaken_by_a_truncation_or_retention_is_dropped() {
    block_on(async {
        for overtake in ["truncate", "truncate later", "retention", "clean"] {
            let st = MemStorage::new();
            let (mut log, model, _) = build(&st, 5).await;
            let start = log.log_start();
            let mut plan = log.plan_clean(start, log.next_offset(), clean_config(1 << 20), NOW_MS).unwrap();
            let cleaned = loop {
                if let Some(c) = plan.step(1 << 20).await.unwrap().cleaned {
                    break c;
                }
            };
            let first = log.segment_bases()[0];
            assert_eq!(cleaned.base, first);
            match overtake {
                "truncate" => assert!(log.truncate_to(first + 1, NOW_MS).await.unwrap() <= first + 1),
                "truncate later" => {
                    let last = *log.segment_bases().last().unwrap();
                    assert!(
                        log.truncate_to(last - 1, NOW_MS).await.unwrap() > first,
                        "the first segment stays"
                    );
                }
                "retention" => {
                    let mut cfg = config();
                    cfg.retention_ms = Some(1);
                    drop(log);
                    log = PartitionLog::open(st.clone(), cfg, NOW_MS).await.unwrap().0;
                    assert!(
                        log.enforce_retention_below(NOW_MS, log.next_offset())
                            .await
                            .unwrap()
                            .contains(&first)
                    );
                }
                _ => {
                    let other =
                        log.plan_clean(start, log.next_offset(), clean_config(1 << 20), NOW_MS).unwrap();
                    let mut other = other;
                    let c = loop {
                        if let Some(c) = other.step(1 << 20).await.unwrap().cleaned {
                            break c;
                        }
                    };
                    assert!(log.complete_clean(c).await.unwrap());
                }
            }
            let before = survivors(&log).await;
            assert!(!log.complete_clean(cleaned).await.unwrap(), "{overtake}: dropped");
            assert_eq!(survivors(&log).await, before, "{overtake}: the log is as it was");
            check_subset(&before, &model);
            let names = st.list().await.unwrap();
            assert!(!names.iter().any(|n| n.ends_with(".cleaned")), "{overtake}: {names:?}");
        }
    });
}

/// A follower copying a compacted leader's log takes its gaps and sparse batches, ends where
/// the leader ends, and reopens without damage; it still refuses a plain batch past its end and
/// any batch before it. A truncation into a gap ends the log where the batch before it ends.
#[test]
fn a_replica_copies_a_compacted_log() {
    block_on(async {
        let st = MemStorage::new();
        let (mut leader, _, _) = build(&st, 7).await;
        let start = leader.log_start();
        clean(&mut leader, start, 1 << 20).await;
        let want = survivors(&leader).await;
        let fst = MemStorage::new();
        let (mut follower, _) = PartitionLog::open(fst.clone(), config(), 0).await.unwrap();
        let mut offset = start;
        while offset < leader.next_offset() {
            let f = leader.read(offset, 1 << 16).await.unwrap();
            let mut bytes = f.bytes();
            while !bytes.is_empty() {
                let mut aligned = rkyv::util::AlignedVec::<16>::new();
                aligned.extend_from_slice(bytes);
                let view = BatchView::validate(&aligned, usize::MAX).unwrap();
                follower.append_replicated(&view, NOW_MS).await.unwrap();
                bytes = &bytes[view.bytes().len()..];
            }
            offset = f.next_offset;
        }
        follower.flush().await.unwrap();
        assert_eq!(follower.next_offset(), leader.next_offset());
        assert_eq!(survivors(&follower).await, want);
        let end = follower.next_offset();
        let plain = keyed_batch(&[(Some(b"k".to_vec()), Some(b"v".to_vec()))], 0);
        let mut past = plain.clone();
        past.set_base_offset(end + 5, 2);
        assert!(matches!(
            follower.append_replicated(&past.view(), NOW_MS).await,
            Err(LogError::OffsetGap { .. })
        ));
        let mut below = plain.clone();
        below.set_base_offset(end - 1, 2);
        assert!(matches!(
            follower.append_replicated(&below.view(), NOW_MS).await,
            Err(LogError::OffsetOverlap { .. })
        ));
        // A leader never takes a compacted batch from a producer: it would change its offsets.
        let f = leader.read(start, 1).await.unwrap();
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(f.bytes());
        let view = BatchView::validate(&aligned, usize::MAX).unwrap();
        assert!(view.header().is_compacted(), "the first batch lost records");
        assert!(matches!(leader.append(&view, 3, NOW_MS).await, Err(LogError::Batch { .. })));
        drop(follower);
        let (mut follower, report) = PartitionLog::open(fst, config(), NOW_MS).await.unwrap();
        assert!(report.damaged.is_empty() && report.truncated.is_none(), "{report:?}");
        assert_eq!(survivors(&follower).await, want);
        // A cut inside a gap: the log ends after the last survivor before it.
        let mut ranges = Vec::new(); // (base offset, next offset) of every batch
        let mut at = follower.log_start();
        while at < follower.next_offset() {
            let f = follower.read(at, 1).await.unwrap();
            ranges.push((f.first_offset, f.next_offset));
            at = f.next_offset;
        }
        let gap = ranges.windows(2).rev().find(|w| w[0].1 < w[1].0).expect("a batch dropped whole");
        let (batch_end, cut) = (gap[0].1, gap[1].0 - 1);
        assert!(follower.read(cut, 1).await.unwrap().first_offset > cut, "the read skips the gap");
        assert_eq!(follower.truncate_to(cut, NOW_MS).await.unwrap(), batch_end);
        assert!(follower.damaged_ranges().is_empty());
        let kept: Vec<Rec> = want.iter().filter(|r| r.offset < cut).cloned().collect();
        assert_eq!(survivors(&follower).await, kept);
    });
}

/// A scrubbing step planned before a cleaned segment is swapped in read the old file: its
/// cursor must not be applied to the new one, where its position is no batch boundary and the
/// next step would quarantine healthy batches.
#[test]
fn a_scrub_step_across_a_swap_is_dropped() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _, _) = build(&st, 9).await;
        let first = log.segment_bases()[0];
        let scrub = log.plan_scrub(1).unwrap();
        let mut plan = log.plan_clean(first, log.next_offset(), clean_config(1 << 20), NOW_MS).unwrap();
        let cleaned = loop {
            if let Some(c) = plan.step(1 << 20).await.unwrap().cleaned {
                break c;
            }
        };
        assert_eq!(cleaned.base, first);
        assert!(log.complete_clean(cleaned).await.unwrap());
        let outcome = scrub.execute().await.unwrap();
        // The old step stopped where the new file has no batch boundary.
        let new_data = st.contents(&format!("{first:020}.log")).unwrap();
        let pos = outcome.next.pos as usize;
        assert!(pos < new_data.len() && !common::batch_starts(&new_data).contains(&pos), "{pos}");
        assert!(log.complete_scrub(outcome).await.unwrap().is_none());
        // The scrubber goes over the whole log and finds nothing.
        for _ in 0..1000 {
            let Some(plan) = log.plan_scrub(1000) else { break };
            let outcome = plan.execute().await.unwrap();
            let done =
                outcome.segment_done && outcome.segment == *log.segment_bases().iter().rev().nth(1).unwrap();
            assert_eq!(log.complete_scrub(outcome).await.unwrap(), None, "a false quarantine");
            if done {
                break;
            }
        }
        assert!(log.damaged_ranges().is_empty());
    });
}

/// A pass stops before the first segment with quarantined damage: records after it must not
/// make older records in it go, nor a tombstone expire while the damaged segment may still
/// hold older records of its key. The damaged segment and those after it count as neither
/// clean nor dirty, so a partition is not kept due by bytes no pass can map.
#[test]
fn a_clean_stops_before_a_damaged_segment() {
    block_on(async {
        let st = MemStorage::new();
        let (log, _, _) = build(&st, 3).await;
        let bases = log.segment_bases();
        assert!(bases.len() > 3, "{bases:?}");
        drop(log);
        let name = format!("{:020}.log", bases[1]);
        let len = st.contents(&name).unwrap().len() as u64;
        st.flip_bit(&name, len / 2, 3);
        let (mut log, _) = PartitionLog::open(st.clone(), config(), NOW_MS).await.unwrap();
        for _ in 0..1000 {
            if !log.damaged_ranges().is_empty() {
                break;
            }
            let outcome = log.plan_scrub(1 << 20).unwrap().execute().await.unwrap();
            log.complete_scrub(outcome).await.unwrap();
        }
        assert_eq!(log.damaged_ranges()[0].segment, bases[1], "the flip was found");
        let plan = log.plan_clean(log.log_start(), log.next_offset(), clean_config(1 << 20), NOW_MS).unwrap();
        assert_eq!(plan.segment_bases(), vec![bases[0]]);
        let first = st.contents(&format!("{:020}.log", bases[0])).unwrap().len() as u64;
        let c = log.cleanable(0, log.next_offset());
        assert_eq!((c.clean_bytes, c.dirty_bytes), (0, first));
    });
}

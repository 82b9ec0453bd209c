//! DeleteRecords in the partition log: a log start inside a segment, durable, honoured by
//! reads, time lookups, truncation and new starts.

mod common;

use common::{batch, records, small_config};
use futures::executor::block_on;
use weir_log::storage::mem::{CrashMode, MemStorage};
use weir_log::{LogError, PartitionLog};

/// Every record from the log start on.
async fn read_all(log: &PartitionLog<MemStorage>) -> Vec<u64> {
    let mut out = Vec::new();
    let mut offset = log.log_start();
    while offset < log.next_offset() {
        let f = log.read(offset, 3000).await.unwrap();
        out.extend(records(&f).into_iter().map(|(o, _)| o).filter(|o| *o >= offset));
        offset = f.next_offset;
    }
    out
}

/// A log of 40 batches of 5 records, offsets 0..200, timestamps 1000 + 10 per batch.
async fn filled(st: &MemStorage) -> PartitionLog<MemStorage> {
    let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
    for t in 0..40u64 {
        log.append(&batch(t, 5, 400, 1000 + t as i64 * 10).view(), 1, 0).await.unwrap();
    }
    log.flush().await.unwrap();
    log
}

#[test]
fn records_below_the_new_start_are_gone_through_a_crash() {
    block_on(async {
        let st = MemStorage::new();
        let mut log = filled(&st).await;
        let segments = log.segment_bases().len();
        assert!(segments > 3);
        // Inside a batch of a segment past the first ones.
        assert_eq!(log.delete_records(123).await.unwrap(), 123);
        assert_eq!(log.log_start(), 123);
        assert!(log.segment_bases().len() < segments, "segments wholly below went");
        assert!(log.segments_start() <= 123);
        assert!(matches!(log.read(122, 100).await, Err(LogError::OffsetOutOfRange { start: 123, .. })));
        assert_eq!(read_all(&log).await, (123..200).collect::<Vec<_>>());
        // A lower offset moves nothing.
        assert_eq!(log.delete_records(50).await.unwrap(), 123);
        // A search by time never answers a deleted record: batch 24 (offsets 120..125) is the
        // first at 1240, but its first records are gone.
        assert_eq!(log.plan_timestamp_lookup(1240).execute().await.unwrap(), Some(123));
        assert_eq!(log.plan_timestamp_lookup(0).execute().await.unwrap(), Some(123));
        assert_eq!(log.plan_timestamp_lookup(1250).execute().await.unwrap(), Some(125));
        drop(log);
        st.crash(CrashMode::LoseUnsynced);
        let (log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!((log.log_start(), log.next_offset()), (123, 200));
        assert_eq!(read_all(&log).await, (123..200).collect::<Vec<_>>());
    });
}

#[test]
fn deleting_everything_leaves_an_empty_log_that_takes_appends() {
    block_on(async {
        let st = MemStorage::new();
        let mut log = filled(&st).await;
        assert_eq!(log.delete_records(200).await.unwrap(), 200);
        assert!(read_all(&log).await.is_empty());
        assert!(log.read(200, 100).await.unwrap().is_empty());
        let a = log.append(&batch(99, 3, 10, 5000).view(), 2, 0).await.unwrap();
        assert_eq!(a.base_offset, 200);
        log.flush().await.unwrap();
        assert_eq!(read_all(&log).await, vec![200, 201, 202]);
        log.close().await.unwrap();
        let (log, _) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!((log.log_start(), log.next_offset()), (200, 203));
    });
}

#[test]
fn a_cut_below_the_start_empties_the_log_there_and_a_new_start_moves_past_it() {
    block_on(async {
        let st = MemStorage::new();
        let mut log = filled(&st).await;
        log.delete_records(123).await.unwrap();
        // A follower cut back below its start (its leader's log ends there): the log ends at
        // the cut, empty, and starts there too.
        let end = log.truncate_to(110, 0).await.unwrap();
        assert_eq!(end, 110);
        assert_eq!((log.log_start(), log.next_offset()), (110, 110));
        assert!(read_all(&log).await.is_empty());
        let (log2, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!((log2.log_start(), log2.next_offset()), (110, 110));
        drop(log2);
        // Starting over past the end, as a follower far behind its leader's start does.
        assert_eq!(log.start_over_at(300, 0).await.unwrap(), 300);
        assert_eq!((log.log_start(), log.next_offset()), (300, 300));
        log.append(&batch(1, 2, 10, 1).view(), 3, 0).await.unwrap();
        log.flush().await.unwrap();
        assert_eq!(read_all(&log).await, vec![300, 301]);
        log.close().await.unwrap();
        let (log, _) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!((log.log_start(), log.next_offset()), (300, 302));
    });
}

/// A cut at the start, when the start lies inside a batch, lands at that batch's base: the
/// log then starts there too, never past its end.
#[test]
fn a_cut_at_a_start_inside_a_batch_ends_and_starts_the_log_at_the_batch() {
    block_on(async {
        let st = MemStorage::new();
        let mut log = filled(&st).await;
        log.delete_records(123).await.unwrap();
        assert_eq!(log.truncate_to(123, 0).await.unwrap(), 120);
        assert_eq!((log.log_start(), log.next_offset()), (120, 120));
        log.close().await.unwrap();
        let (log, _) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!((log.log_start(), log.next_offset()), (120, 120));
    });
}

/// A start past what a crash left of the log (written without a sync before) comes back at
/// the log end, durably: records appended again there stay readable.
#[test]
fn a_start_past_the_recovered_end_is_brought_back_to_it_for_good() {
    block_on(async {
        let st = MemStorage::new();
        let config = weir_log::LogConfig {
            flush: weir_log::FlushPolicy::Interval { flush_interval_ms: u64::MAX },
            ..small_config()
        };
        let (mut log, _) = PartitionLog::open(st.clone(), config.clone(), 0).await.unwrap();
        for t in 0..10u64 {
            log.append(&batch(t, 5, 40, 1).view(), 1, 0).await.unwrap();
        }
        log.flush().await.unwrap();
        for t in 10..20u64 {
            log.append(&batch(t, 5, 40, 1).view(), 1, 0).await.unwrap();
        }
        log.write_out().await.unwrap();
        // The start is synced; the records it reaches are not.
        log.delete_records(80).await.unwrap();
        drop(log);
        st.crash(CrashMode::LoseUnsynced);
        let (mut log, _) = PartitionLog::open(st.clone(), config.clone(), 0).await.unwrap();
        assert_eq!((log.log_start(), log.next_offset()), (50, 50));
        log.append(&batch(99, 5, 40, 1).view(), 1, 0).await.unwrap();
        log.flush().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(st, config, 0).await.unwrap();
        assert_eq!((log.log_start(), log.next_offset()), (50, 55));
        assert_eq!(read_all(&log).await, (50..55).collect::<Vec<_>>());
    });
}

/// Deleting everything keeps the leader epoch the log ends in, through reopens: a consumer
/// checking its position by epoch still finds it.
#[test]
fn deleting_everything_keeps_the_last_epoch_through_reopens() {
    block_on(async {
        let st = MemStorage::new();
        let mut log = filled(&st).await;
        let epochs = log.leader_epochs().to_vec();
        assert!(!epochs.is_empty(), "appends record their epoch");
        log.delete_records(200).await.unwrap();
        log.close().await.unwrap();
        for _ in 0..2 {
            let (log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
            assert_eq!(log.leader_epochs().last(), epochs.last());
            log.close().await.unwrap();
        }
    });
}

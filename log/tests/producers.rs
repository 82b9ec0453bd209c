//! Idempotent producers' state in a real log: kept through appends, rebuilt at reopen from
//! segments on disk, cut with the log, and kept by a follower copying the leader's batches.

mod common;

use common::small_config;
use weir_log::PartitionLog;
use weir_log::batch::{Batch, BatchBuilder, BatchView, ProducerStamp, Record};
use weir_log::producers::{SequenceError, Verdict};
use weir_log::storage::mem::MemStorage;

/// A batch of `n` records of producer `id` in `epoch`, its first record at sequence `seq`.
fn stamped(id: i64, epoch: i16, seq: i32, n: usize) -> Batch {
    let mut b = BatchBuilder::new(8 << 10);
    for i in 0..n {
        let value = format!("{id}:{seq}:{i}").into_bytes();
        b.push(&Record { key: None, value: Some(&value), headers: &[], timestamp: 1 }).unwrap();
    }
    b.seal(ProducerStamp { producer_id: id, producer_epoch: epoch, base_sequence: seq })
}

async fn append(log: &mut PartitionLog<MemStorage>, b: &Batch) -> u64 {
    let v = BatchView::validate(b.as_bytes(), usize::MAX).unwrap();
    assert_eq!(log.check_producer(v.header()), Ok(Verdict::Append));
    log.append(&v, 0, 0).await.unwrap().base_offset
}

fn check(log: &PartitionLog<MemStorage>, b: &Batch) -> Result<Verdict, SequenceError> {
    log.check_producer(&b.header())
}

#[test]
fn retries_are_recognised_after_a_reopen_and_forgotten_with_a_cut() {
    futures::executor::block_on(async {
        let storage = MemStorage::new();
        let (mut log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        // Enough batches of two producers (and of none) to fill several segments.
        let mut offsets = Vec::new();
        for i in 0..200 {
            offsets.push(append(&mut log, &stamped(1, 0, i * 3, 3)).await);
            append(&mut log, &stamped(2, 4, i, 1)).await;
            append(&mut log, &common::batch(9, 2, 40, 1)).await;
        }
        assert!(log.segment_bases().len() > 3, "several segments");
        log.flush().await.unwrap();
        let last = stamped(1, 0, 199 * 3, 3);
        let dup = Verdict::Duplicate { base_offset: offsets[199], last_offset: offsets[199] + 2 };
        assert_eq!(check(&log, &last), Ok(dup));
        drop(log);
        let (mut log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        assert_eq!(check(&log, &last), Ok(dup), "rebuilt from the segments at reopen");
        assert!(matches!(check(&log, &stamped(1, 0, 0, 3)), Err(SequenceError::OutOfOrder { .. })));
        assert!(matches!(check(&log, &stamped(2, 3, 200, 1)), Err(SequenceError::Fenced { .. })));
        assert_eq!(check(&log, &stamped(1, 0, 600, 1)), Ok(Verdict::Append));
        // Cut before producer 1's last batch: it may come again, as new.
        log.truncate_to(offsets[199], 0).await.unwrap();
        assert_eq!(check(&log, &last), Ok(Verdict::Append));
        assert!(matches!(check(&log, &stamped(1, 0, 600, 1)), Err(SequenceError::OutOfOrder { .. })));
    });
}

#[test]
fn a_follower_copying_the_leaders_batches_knows_its_producers() {
    futures::executor::block_on(async {
        let (mut leader, _) = PartitionLog::open(MemStorage::new(), small_config(), 0).await.unwrap();
        let (mut follower, _) = PartitionLog::open(MemStorage::new(), small_config(), 0).await.unwrap();
        for i in 0..5 {
            append(&mut leader, &stamped(3, 0, i * 2, 2)).await;
        }
        leader.flush().await.unwrap();
        let fetched = leader.read(0, 1 << 20).await.unwrap();
        let mut bytes = fetched.bytes();
        while !bytes.is_empty() {
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(bytes);
            let v = BatchView::validate(&aligned, usize::MAX).unwrap();
            follower.append_replicated(&v, 0).await.unwrap();
            bytes = &bytes[v.bytes().len()..];
        }
        let retry = stamped(3, 0, 8, 2);
        assert_eq!(check(&follower, &retry), Ok(Verdict::Duplicate { base_offset: 8, last_offset: 9 }));
        assert_eq!(check(&follower, &stamped(3, 0, 10, 1)), Ok(Verdict::Append));
    });
}

#[test]
fn the_state_comes_from_the_last_rolls_snapshot_and_a_cut_below_it_drops_it() {
    use weir_log::storage::Storage;
    futures::executor::block_on(async {
        let storage = MemStorage::new();
        let (mut log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        // Producer 1, a roll, then producer 2 alone.
        let mut last_offset = 0;
        for i in 0..10 {
            last_offset = append(&mut log, &stamped(1, 0, i * 2, 2)).await;
        }
        let last = stamped(1, 0, 18, 2);
        log.roll(0).await.unwrap();
        for i in 0..10 {
            append(&mut log, &stamped(2, 0, i, 1)).await;
        }
        log.flush().await.unwrap();
        let sealed = log.segment_bases()[0];
        drop(log);
        // Damage producer 1's last batch in its sealed segment, where a reopen does not look.
        let name = format!("{sealed:020}.log");
        let starts = common::batch_starts(&storage.contents(&name).unwrap());
        // Its producer id (header byte 56): a whole read would take the batch for another's.
        storage.flip_bit(&name, (starts[starts.len() - 1] + 56) as u64, 1);
        let (log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        let dup = Verdict::Duplicate { base_offset: last_offset, last_offset: last_offset + 1 };
        assert_eq!(check(&log, &last), Ok(dup), "known from the snapshot, not from the changed batch");
        drop(log);
        // Without the snapshot the whole log is read, and the changed batch is not producer 1's.
        storage.remove("producers.snapshot").await.unwrap();
        let (mut log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        assert_eq!(check(&log, &last), Ok(Verdict::Append));
        // A snapshot is saved at the next roll; a cut below its base removes it.
        log.roll(0).await.unwrap();
        assert!(storage.list().await.unwrap().iter().any(|n| n == "producers.snapshot"));
        log.truncate_to(10, 0).await.unwrap();
        assert!(!storage.list().await.unwrap().iter().any(|n| n == "producers.snapshot"));
        // A snapshot already gone (a removal whose directory sync failed) stops no later cut.
        append(&mut log, &stamped(3, 0, 0, 1)).await;
        log.roll(0).await.unwrap();
        storage.remove("producers.snapshot").await.unwrap();
        log.truncate_to(4, 0).await.unwrap();
    });
}

#[test]
fn the_cleaner_keeps_a_record_of_each_producers_latest_batch() {
    use weir_log::compaction::CleanConfig;
    use weir_log::storage::Storage;
    futures::executor::block_on(async {
        let storage = MemStorage::new();
        let (mut log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        // Producer 4's only batch, of key 9: every record of it superseded by later ones.
        let key = 9u64.to_le_bytes();
        let mut b = BatchBuilder::new(8 << 10);
        for v in [b"a", b"b"] {
            b.push(&Record { key: Some(&key), value: Some(v), headers: &[], timestamp: 1 }).unwrap();
        }
        let mine = b.seal(ProducerStamp { producer_id: 4, producer_epoch: 0, base_sequence: 0 });
        let at = append(&mut log, &mine).await;
        for _ in 0..5 {
            append(&mut log, &common::batch(9, 3, 40, 1)).await;
        }
        log.roll(0).await.unwrap();
        let config = CleanConfig { delete_retention_ms: 0, map_bytes_max: 1 << 20 };
        let mut plan = log.plan_clean(0, log.next_offset(), config, 0).unwrap();
        loop {
            let step = plan.step(1 << 20).await.unwrap();
            if let Some(c) = step.cleaned {
                assert!(log.complete_clean(c).await.unwrap());
            }
            if step.done {
                break;
            }
        }
        drop(log);
        // Rebuilt from the cleaned batches alone: the producer's batch is still known.
        storage.remove("producers.snapshot").await.unwrap();
        let (log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        assert_eq!(check(&log, &mine), Ok(Verdict::Duplicate { base_offset: at, last_offset: at + 1 }));
    });
}

/// Producers keep their sequences through a DeleteRecords of everything and a reopen: their
/// deleted batches are still read for it, as Kafka keeps producers' state past its log start.
#[test]
fn producers_outlive_a_delete_of_their_records_and_a_reopen() {
    futures::executor::block_on(async {
        let storage = MemStorage::new();
        let (mut log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        for i in 0..100 {
            append(&mut log, &stamped(1, 0, i * 2, 2)).await;
        }
        log.flush().await.unwrap();
        let end = log.next_offset();
        assert_eq!(log.delete_records(end).await.unwrap(), end);
        let next = stamped(1, 0, 200, 1);
        assert_eq!(check(&log, &next), Ok(Verdict::Append));
        drop(log);
        let (log, _) = PartitionLog::open(storage, small_config(), 0).await.unwrap();
        assert_eq!(log.log_start(), end);
        assert_eq!(check(&log, &next), Ok(Verdict::Append), "the next sequence, not an unknown producer");
        assert!(matches!(check(&log, &stamped(1, 0, 150, 1)), Err(SequenceError::OutOfOrder { .. })));
    });
}

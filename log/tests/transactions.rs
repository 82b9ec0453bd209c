//! Transactions in a real log: open transactions hold the last stable offset, aborted ones are
//! remembered for read-committed consumers, both rebuilt at reopen (from the producers'
//! snapshot and the batches after it) and after a cut that takes a marker.

mod common;

use common::small_config;
use weir_log::PartitionLog;
use weir_log::batch::header::{ATTR_COMMIT, ATTR_CONTROL, ATTR_TRANSACTIONAL};
use weir_log::batch::{Batch, BatchBuilder, BatchView, KafkaFields, ProducerStamp, Record, seal_kafka};
use weir_log::producers::Verdict;
use weir_log::storage::mem::MemStorage;
use weir_log::transactions::AbortedTxn;

/// A transactional batch of `n` records of producer `id`, its first at sequence `seq`.
fn txn_batch(id: i64, seq: i32, n: usize) -> Batch {
    let mut b = BatchBuilder::new(8 << 10);
    for i in 0..n {
        let value = format!("{id}:{seq}:{i}").into_bytes();
        b.push(&Record { key: None, value: Some(&value), headers: &[], timestamp: 1 }).unwrap();
    }
    let mut batch = b.seal(ProducerStamp { producer_id: id, producer_epoch: 0, base_sequence: seq });
    batch.set_txn_bits(ATTR_TRANSACTIONAL);
    batch
}

/// The marker ending producer `id`'s transaction (its record is the log's to keep, not read).
fn marker(id: i64, commit: bool) -> Batch {
    let txn = ATTR_TRANSACTIONAL | ATTR_CONTROL | if commit { ATTR_COMMIT } else { 0 };
    let fields = KafkaFields {
        codec: 0,
        kafka_crc: 0,
        record_count: 1,
        base_timestamp: 1,
        max_timestamp: 1,
        producer: ProducerStamp { producer_id: id, producer_epoch: 0, base_sequence: -1 },
        txn,
    };
    seal_kafka(&fields, &[0; 20])
}

async fn append(log: &mut PartitionLog<MemStorage>, b: &Batch) -> u64 {
    let v = BatchView::validate_stored(b.as_bytes(), usize::MAX).unwrap();
    assert_eq!(log.check_producer(v.header()), Ok(Verdict::Append));
    log.append(&v, 0, 0).await.unwrap().base_offset
}

#[test]
fn transactions_hold_the_stable_offset_and_survive_reopens_and_cuts() {
    futures::executor::block_on(async {
        let storage = MemStorage::new();
        let (mut log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        let first_of_1 = append(&mut log, &txn_batch(1, 0, 3)).await;
        let first_of_2 = append(&mut log, &txn_batch(2, 0, 2)).await;
        // Enough batches to roll several segments, so a reopen starts from a snapshot.
        for i in 1..100 {
            append(&mut log, &txn_batch(1, i * 3, 3)).await;
        }
        assert_eq!(log.transactions().first_unstable(), Some(first_of_1));
        let abort_at = append(&mut log, &marker(1, false)).await;
        assert_eq!(log.transactions().first_unstable(), Some(first_of_2));
        let aborted = AbortedTxn { producer_id: 1, first_offset: first_of_1, last_offset: abort_at };
        assert_eq!(log.transactions().aborted_between(0, u64::MAX), [aborted]);
        // The producer's sequences go on after its marker.
        let next = txn_batch(1, 300, 1);
        assert_eq!(log.check_producer(&next.header()), Ok(Verdict::Append));
        append(&mut log, &marker(2, true)).await;
        assert_eq!(log.transactions().first_unstable(), None);
        let table = log.transactions().clone();
        log.flush().await.unwrap();
        drop(log);

        let (mut log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        assert_eq!(*log.transactions(), table, "rebuilt at reopen");
        // A cut that takes the abort marker opens producer 1's transaction again.
        log.truncate_to(abort_at, 0).await.unwrap();
        assert_eq!(log.transactions().first_unstable(), Some(first_of_1));
        assert!(log.transactions().aborted_between(0, u64::MAX).is_empty());
        log.flush().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(storage, small_config(), 0).await.unwrap();
        assert_eq!(log.transactions().first_unstable(), Some(first_of_1), "and so after a reopen");
    });
}

#[test]
fn transaction_bits_are_checked() {
    // A marker of no producer, a transactional batch of none, a commit bit on data: refused.
    assert!(BatchView::validate(txn_batch(1, 0, 1).as_bytes(), usize::MAX).is_ok());
    let mut b = BatchBuilder::new(1 << 10);
    b.push(&Record { key: None, value: Some(b"v"), headers: &[], timestamp: 1 }).unwrap();
    let mut b = b.seal(ProducerStamp::default());
    b.set_txn_bits(ATTR_TRANSACTIONAL);
    assert!(BatchView::validate(b.as_bytes(), usize::MAX).is_err(), "transactional without producer");
    let mut data = txn_batch(1, 0, 1);
    data.set_txn_bits(ATTR_COMMIT);
    assert!(BatchView::validate(data.as_bytes(), usize::MAX).is_err(), "commit bit on data");
    let m = marker(1, true);
    assert!(BatchView::validate_stored(m.as_bytes(), usize::MAX).is_ok());
}

/// A marker of a newer epoch (a transaction its coordinator aborted) fences the producer's
/// older epoch even where it had written nothing: a late batch of it is refused, rather than
/// opening a transaction no marker would ever end.
#[test]
fn a_marker_fences_older_epochs_of_a_producer_the_partition_never_saw() {
    futures::executor::block_on(async {
        let storage = MemStorage::new();
        let (mut log, _) = PartitionLog::open(storage.clone(), small_config(), 0).await.unwrap();
        let mut abort = marker(5, false);
        abort.restamp(ProducerStamp { producer_id: 5, producer_epoch: 1, base_sequence: -1 });
        append(&mut log, &abort).await;
        let late = txn_batch(5, 0, 1);
        assert!(matches!(
            log.check_producer(&late.header()),
            Err(weir_log::producers::SequenceError::Fenced { current: 1, actual: 0, .. })
        ));
        // Its epoch's first batch starts at 0, as a producer never seen here.
        let mut next = txn_batch(5, 7, 1);
        next.restamp(ProducerStamp { producer_id: 5, producer_epoch: 1, base_sequence: 7 });
        assert!(matches!(
            log.check_producer(&next.header()),
            Err(weir_log::producers::SequenceError::UnknownProducer { actual: 7, .. })
        ));
        // And so after a reopen that reads the producers from a snapshot.
        for i in 0..60 {
            append(&mut log, &txn_batch(6, i * 2, 2)).await;
        }
        log.flush().await.unwrap();
        drop(log);
        let (log, _) = PartitionLog::open(storage, small_config(), 0).await.unwrap();
        assert!(log.check_producer(&late.header()).is_err());
        assert_eq!(log.transactions().first_unstable(), Some(1), "producer 6's transaction is open");
    });
}

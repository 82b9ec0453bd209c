//! A request's batches land all or nothing.

mod common;

use common::{batch, records};
use weir_log::batch::BatchView;
use weir_log::storage::mem::MemStorage;
use weir_log::{AppendAllError, LogConfig, PartitionLog};

fn config() -> LogConfig {
    LogConfig { preallocate_bytes: 64 << 10, write_buffer_bytes: 64 << 10, ..LogConfig::default() }
}

#[test]
fn a_batch_that_fails_takes_the_earlier_ones_of_its_request_back_out() {
    futures::executor::block_on(async {
        let storage = MemStorage::new();
        let (mut log, _) = PartitionLog::open(storage.clone(), config(), 0).await.unwrap();
        let first = batch(1, 5, 10, 1);
        let v = BatchView::validate(first.as_bytes(), usize::MAX).unwrap();
        log.append_all(&[v], 0, 0).await.unwrap();
        // The next request: a small batch that fits the preallocated space, then one that needs
        // more on a full device.
        let (small, large) = (batch(2, 3, 10, 1), batch(3, 1, 200 << 10, 1));
        let views = [
            BatchView::validate(small.as_bytes(), usize::MAX).unwrap(),
            BatchView::validate(large.as_bytes(), usize::MAX).unwrap(),
        ];
        storage.faults().disk_full.set(true);
        match log.append_all(&views, 0, 0).await {
            Err(AppendAllError::NotAppended { source }) => assert!(source.is_out_of_space(), "{source}"),
            other => panic!("expected NotAppended, got {other:?}"),
        }
        assert_eq!(log.next_offset(), 5, "the small batch of the failed request is gone");
        storage.faults().disk_full.set(false);
        // The log goes on, dense, from where the first request ended.
        let a = log.append_all(&views, 0, 0).await.unwrap();
        assert_eq!((a.base_offset, a.last_offset), (5, 8));
        log.flush().await.unwrap();
        let offsets: Vec<u64> = records(&log.read(0, 1 << 20).await.unwrap()).iter().map(|r| r.0).collect();
        assert_eq!(offsets, (0..9).collect::<Vec<_>>());
    });
}

#[test]
fn a_log_that_fails_mid_request_says_the_outcome_is_unknown() {
    futures::executor::block_on(async {
        let storage = MemStorage::new();
        let cfg = LogConfig { write_behind_buffers_max: 1, ..config() };
        let (mut log, _) = PartitionLog::open(storage.clone(), cfg, 0).await.unwrap();
        let (a, b) = (batch(1, 1, 100 << 10, 1), batch(2, 1, 100 << 10, 1));
        let views = [
            BatchView::validate(a.as_bytes(), usize::MAX).unwrap(),
            BatchView::validate(b.as_bytes(), usize::MAX).unwrap(),
        ];
        // The first batch fills a write buffer, which goes out; that write fails.
        storage.faults().fail_write_in.set(1);
        match log.append_all(&views, 0, 0).await {
            Err(AppendAllError::Unknown { .. }) => {}
            other => panic!("expected Unknown, got {other:?}"),
        }
        assert!(log.is_failed());
    });
}

#[test]
fn a_log_that_had_failed_before_appends_nothing_and_says_so() {
    futures::executor::block_on(async {
        let storage = MemStorage::new();
        let (mut log, _) = PartitionLog::open(storage.clone(), config(), 0).await.unwrap();
        let b = batch(1, 2, 10, 1);
        let v = BatchView::validate(b.as_bytes(), usize::MAX).unwrap();
        log.append_all(std::slice::from_ref(&v), 0, 0).await.unwrap();
        storage.faults().fail_sync_in.set(1);
        assert!(log.flush().await.is_err());
        match log.append_all(&[v], 0, 0).await {
            Err(AppendAllError::NotAppended { source: weir_log::LogError::Failed }) => {}
            other => panic!("expected NotAppended(Failed), got {other:?}"),
        }
    });
}

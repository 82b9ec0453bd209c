//! The log across crashes that lose directory changes not yet made durable by `sync_dir`.

mod common;

use common::{batch, run_until_held};
use futures::executor::block_on;
use weir_log::storage::mem::{CrashMode, MemStorage};
use weir_log::{FlushPolicy, LogConfig, PartitionLog};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 8 << 10,
        segment_ms: u64::MAX,
        index_interval_bytes: 512,
        batch_bytes_max: 4 << 10,
        write_buffer_bytes: 4 << 10,
        write_behind_buffers_max: 2,
        preallocate_bytes: 8 << 10,
        flush: FlushPolicy::Sync,
        retention_ms: None,
        retention_bytes: Some(8 << 10),
        batch_cache: None,
    }
}

/// A truncation to or below the log start empties the log and restarts it at the cut.
/// Interrupted by a crash, it may leave the old log, a prefix of it, or the new empty log, never
/// an empty directory: recovery would restart that log at offset 0, below the cut.
#[test]
fn a_crash_during_a_truncation_to_the_log_start_never_restarts_the_log_below_it() {
    for io_in in 1..6 {
        for seed in 0..32 {
            for below in [0, 1] {
                block_on(crash_while_truncating(io_in, seed, below));
            }
        }
    }
}

async fn crash_while_truncating(io_in: u32, seed: u64, below: u64) {
    let st = MemStorage::new();
    let (mut log, _) = PartitionLog::open(st.clone(), config(), 0).await.unwrap();
    for t in 0..12u64 {
        log.append(&batch(t, 2, 1000, 0).view(), 0, 0).await.unwrap();
    }
    log.flush().await.unwrap();
    assert!(!log.enforce_retention(0).await.unwrap().is_empty());
    let cut = log.log_start() - below;
    assert!(cut > 0 && log.segment_bases().len() > 1);
    st.faults().hold_io_in.set(io_in);
    st.faults().held.set(false);
    let done = run_until_held(log.truncate_to(cut, 0), &st).is_some();
    st.faults().hold_io_in.set(0);
    drop(log);
    st.crash(CrashMode::Torn { seed });
    let (log, _) = PartitionLog::open(st, config(), 0).await.unwrap();
    let what = format!("cut at {cut}, I/O {io_in} held, seed {seed}");
    assert!(log.log_start() >= cut, "{what}: the log restarted at {}", log.log_start());
    if done {
        assert_eq!(log.next_offset(), cut, "{what}: a finished truncation is durable");
    }
}

//! The partition log on real direct I/O against the raw glommio baselines of `weir_benches`.
//!
//! - `append/{64KiB,1MiB}`: one producer appends sealed batches of that size to a fresh log
//!   (flush interval policy, one flush at the end of the run).
//! - `append_fsync/…`: the same with a flush (fdatasync) after every append.
//! - `raw_write/…`, `raw_write_fsync/…`: sequential `O_DIRECT` writes of blocks of the same size
//!   at queue depth 1, with one fdatasync at the end or one per block.
//! - `read/1MiB`: fetches of at most 1 MiB by offset through a log of ~256 MiB written in 64 KiB
//!   batches; `raw_read/1MiB`: sequential 1 MiB `read_at_aligned` of the same segment file.
//! - `clean/half_superseded`: one compaction pass, unpaced, over a fresh log of 64 MiB in 8 MiB
//!   segments whose every other record is superseded by a later batch: the cleaner reads the
//!   log twice (keys, then rewrite), writes half of it and swaps every segment. Throughput is
//!   the log's size per second of the whole pass.
//!
//! Every sample runs in one glommio executor created for it (`iter_custom`); opening logs and
//! creating files is not timed. An iteration moves tens to hundreds of MiB, so sampling is flat.

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weir_benches::{full_batch, probe, raw_read, raw_write, run_local, value_of};
use weir_log::batch::{Batch, BatchBuilder, ProducerStamp, Record};
use weir_log::compaction::CleanConfig;
use weir_log::segment::data_file_name;
use weir_log::storage::dma::DmaStorage;
use weir_log::{FlushPolicy, LogConfig, PartitionLog};

const VALUE_BYTES: usize = 1024;
/// Bytes written per iteration without fsync, and with an fsync per batch or block.
const WRITE_BYTES: u64 = 256 << 20;
const FSYNC_WRITE_BYTES: u64 = 64 << 20;
/// Size of the log the read benchmarks read, and the batch size it is written with.
const READ_LOG_BYTES: u64 = 256 << 20;
const READ_BATCH_BYTES: usize = 64 << 10;
const FETCH_BYTES: usize = 1 << 20;
const SIZES: [(&str, usize); 2] = [("64KiB", 64 << 10), ("1MiB", 1 << 20)];
const NOW_MS: u64 = 1_700_000_000_000;

fn tmp_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("weir-bench-log");
    std::fs::create_dir_all(&root).expect("create the bench temp dir");
    root
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(tmp_root()).expect("create a temp dir")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 1 << 30,
        preallocate_bytes: 64 << 20,
        retention_ms: None,
        batch_bytes_max: 2 << 20,
        flush: FlushPolicy::Interval { flush_interval_ms: 1000 },
        ..Default::default()
    }
}

async fn open_log(dir: &Path) -> PartitionLog<DmaStorage> {
    let storage = DmaStorage::new(dir).expect("create the log dir");
    let (log, _report) = PartitionLog::open(storage, config(), NOW_MS).await.expect("open the log");
    log
}

/// Appends `batches` copies of `batch` to a fresh log in `dir`; returns the time from the first
/// append to the end of the last flush.
async fn append_run(dir: &Path, batch: &Batch, batches: u64, fsync_each: bool) -> Duration {
    let mut log = open_log(dir).await;
    let view = batch.view();
    let start = Instant::now();
    for _ in 0..batches {
        log.append(&view, 0, NOW_MS).await.expect("append");
        if fsync_each {
            log.flush().await.expect("flush");
        }
    }
    log.flush().await.expect("flush");
    let elapsed = start.elapsed();
    log.close().await.expect("close the log");
    elapsed
}

fn setup(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_secs(1));
    group.sampling_mode(SamplingMode::Flat);
}

fn write(c: &mut Criterion) {
    let mut group = c.benchmark_group("log");
    setup(&mut group);
    for (fsync_each, total, append_name, raw_name) in [
        (false, WRITE_BYTES, "append", "raw_write"),
        (true, FSYNC_WRITE_BYTES, "append_fsync", "raw_write_fsync"),
    ] {
        for (label, batch_bytes_max) in SIZES {
            let batch = full_batch(batch_bytes_max, VALUE_BYTES);
            let batches = total.div_ceil(batch.len() as u64);
            group.throughput(Throughput::Bytes(batches * batch.len() as u64));
            group.bench_function(BenchmarkId::new(append_name, label), |b| {
                b.iter_custom(|iters| {
                    run_local(async {
                        let mut sum = Duration::ZERO;
                        for _ in 0..iters {
                            let dir = tempdir();
                            probe(dir.path()).await;
                            sum += append_run(dir.path(), &batch, batches, fsync_each).await;
                        }
                        sum
                    })
                })
            });

            group.throughput(Throughput::Bytes(total));
            group.bench_function(BenchmarkId::new(raw_name, label), |b| {
                b.iter_custom(|iters| {
                    run_local(async {
                        let mut sum = Duration::ZERO;
                        for _ in 0..iters {
                            let dir = tempdir();
                            let path = dir.path().join("raw.data");
                            sum += raw_write(&path, batch_bytes_max, total, fsync_each).await;
                        }
                        sum
                    })
                })
            });
        }
    }
    group.finish();
}

/// Reads the whole log by offset, `FETCH_BYTES` at a time; returns the time and bytes fetched.
async fn read_run(log: &PartitionLog<DmaStorage>) -> (Duration, u64) {
    let end = log.next_offset();
    let start = Instant::now();
    let (mut offset, mut bytes) = (0, 0u64);
    while offset < end {
        let fetched = log.read(offset, FETCH_BYTES).await.expect("read");
        assert!(!fetched.is_empty(), "nothing fetched at {offset} before {end}");
        bytes += fetched.bytes().len() as u64;
        offset = fetched.next_offset;
    }
    (start.elapsed(), bytes)
}

fn read(c: &mut Criterion) {
    let dir = tempdir();
    let batch = full_batch(READ_BATCH_BYTES, VALUE_BYTES);
    let log_bytes = run_local(async {
        probe(dir.path()).await;
        let mut log = open_log(dir.path()).await;
        let view = batch.view();
        while log.size_bytes() < READ_LOG_BYTES {
            log.append(&view, 0, NOW_MS).await.expect("append");
        }
        let size = log.size_bytes();
        log.close().await.expect("close the log");
        size
    });
    let segment = dir.path().join(data_file_name(0));
    assert_eq!(std::fs::metadata(&segment).expect("the segment exists").len(), log_bytes);

    let mut group = c.benchmark_group("log");
    setup(&mut group);
    group.throughput(Throughput::Bytes(log_bytes));
    group.bench_function(BenchmarkId::new("read", "1MiB"), |b| {
        b.iter_custom(|iters| {
            run_local(async {
                probe(dir.path()).await;
                let log = open_log(dir.path()).await;
                let mut sum = Duration::ZERO;
                for _ in 0..iters {
                    let (elapsed, bytes) = read_run(&log).await;
                    assert_eq!(bytes, log_bytes);
                    sum += elapsed;
                }
                sum
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw_read", "1MiB"), |b| {
        b.iter_custom(|iters| {
            run_local(async {
                let mut sum = Duration::ZERO;
                for _ in 0..iters {
                    sum += raw_read(&segment, FETCH_BYTES, log_bytes).await;
                }
                sum
            })
        })
    });
    group.finish();
}

const CLEAN_LOG_BYTES: u64 = 64 << 20;
const CLEAN_SEGMENT_BYTES: u64 = 8 << 20;
/// Bytes a clean step reads: a large grant, as an unpaced cleaner would take.
const CLEAN_STEP_BYTES: u64 = 4 << 20;

/// Batch `n` of the clean benchmark: 64 KiB of 1 KiB records whose even records have keys of
/// their own and whose odd ones repeat the same keys in every batch, so a clean keeps half of
/// each batch but the last.
fn half_superseded_batch(n: u64) -> Batch {
    let mut builder = BatchBuilder::new(READ_BATCH_BYTES);
    let value = value_of(VALUE_BYTES);
    for j in 0u64.. {
        let key = if j % 2 == 0 { (n << 20 | j).to_le_bytes() } else { j.to_le_bytes() };
        let record = Record { key: Some(&key), value: Some(&value), headers: &[], timestamp: NOW_MS as i64 };
        if builder.push(&record).is_err() {
            break;
        }
    }
    builder.seal(ProducerStamp::default())
}

/// A fresh log of [`CLEAN_LOG_BYTES`] for the clean benchmark, every segment sealed.
async fn clean_log(dir: &Path) -> PartitionLog<DmaStorage> {
    let storage = DmaStorage::new(dir).expect("create the log dir");
    let cfg = LogConfig { segment_bytes_max: CLEAN_SEGMENT_BYTES, ..config() };
    let (mut log, _) = PartitionLog::open(storage, cfg, NOW_MS).await.expect("open the log");
    let mut n = 0;
    while log.size_bytes() < CLEAN_LOG_BYTES {
        log.append(&half_superseded_batch(n).view(), 0, NOW_MS).await.expect("append");
        n += 1;
    }
    log.roll(NOW_MS).await.expect("roll");
    log.flush().await.expect("flush");
    log
}

/// One unpaced cleaning pass over the whole log; returns its time and the bytes it wrote.
async fn clean_run(log: &mut PartitionLog<DmaStorage>) -> (Duration, u64) {
    let start = Instant::now();
    let clean = CleanConfig { delete_retention_ms: u64::MAX, map_bytes_max: 64 << 20 };
    let mut plan = log.plan_clean(0, log.next_offset(), clean, NOW_MS).expect("something to clean");
    let mut written = 0;
    loop {
        let step = plan.step(CLEAN_STEP_BYTES).await.expect("clean step");
        written += step.written_bytes;
        if let Some(cleaned) = step.cleaned {
            assert!(log.complete_clean(cleaned).await.expect("swap"), "swapped in");
        }
        if step.done {
            break;
        }
    }
    (start.elapsed(), written)
}

fn clean(c: &mut Criterion) {
    let mut group = c.benchmark_group("log");
    setup(&mut group);
    group.throughput(Throughput::Bytes(CLEAN_LOG_BYTES));
    group.bench_function(BenchmarkId::new("clean", "half_superseded"), |b| {
        b.iter_custom(|iters| {
            run_local(async {
                let mut sum = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempdir();
                    probe(dir.path()).await;
                    let mut log = clean_log(dir.path()).await;
                    let (elapsed, written) = clean_run(&mut log).await;
                    assert!(written > CLEAN_LOG_BYTES / 3, "about half the log is rewritten: {written}");
                    sum += elapsed;
                    log.close().await.expect("close the log");
                }
                sum
            })
        })
    });
    group.finish();
}

criterion_group!(benches, write, read, clean);
criterion_main!(benches);

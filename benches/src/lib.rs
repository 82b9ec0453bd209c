//! Shared code for Weir's benchmarks: running glommio, building batches, and the raw direct-I/O
//! baselines that the partition log is compared against.
//!
//! The baselines are the smallest glommio programs that do the same I/O as the log: sequential
//! `O_DIRECT` writes (or reads) of fixed-size blocks at queue depth 1, with no copying, no
//! checksums and no bookkeeping. What the log achieves relative to them is what the log costs.

use glommio::io::{DmaFile, OpenOptions};
use std::future::Future;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};
use weir_log::batch::{Batch, BatchBuilder, ProducerStamp, Record};
use weir_log::storage::dma::DmaStorage;

/// I/O memory registered with io_uring per executor. RLIMIT_MEMLOCK is small on test machines
/// (8 MiB), so keep this at 1 MiB; larger buffers come from the ordinary allocator.
pub const IO_MEMORY_BYTES: usize = 1 << 20;

/// Runs `fut` to completion on a fresh glommio executor on the current thread.
///
/// # Panics
/// If the executor cannot be created (io_uring unavailable, locked-memory limit too small).
pub fn run_local<T>(fut: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("create a glommio executor")
        .run(fut)
}

/// Works around glommio 0.9's per-device direct-I/O probe (see [`DmaStorage::probe`]). Must run
/// once per executor before the first `DmaFile` is opened on the device holding `dir`.
///
/// # Panics
/// If the probe fails.
pub async fn probe(dir: &Path) {
    DmaStorage::probe(dir).await.unwrap_or_else(|e| panic!("direct-I/O probe in {}: {e}", dir.display()));
}

/// Pushes records `0..count` (8-byte keys, `value`, increasing timestamps) into `builder`, or
/// until one does not fit. Returns how many were pushed.
pub fn fill(builder: &mut BatchBuilder, value: &[u8], count: u64) -> u64 {
    for i in 0..count {
        let key = i.to_le_bytes();
        let record = Record {
            key: Some(&key),
            value: Some(value),
            headers: &[],
            timestamp: 1_700_000_000_000 + i as i64,
        };
        if builder.push(&record).is_err() {
            return i;
        }
    }
    count
}

/// The value every benchmark record carries: `value_bytes` of a repeating pattern.
pub fn value_of(value_bytes: usize) -> Vec<u8> {
    (0..value_bytes).map(|i| (i % 251) as u8).collect()
}

/// A batch of records with 8-byte keys and `value_bytes`-byte values, filled until the next
/// record would make it larger than `batch_bytes_max`.
pub fn full_batch(batch_bytes_max: usize, value_bytes: usize) -> Batch {
    let mut builder = BatchBuilder::new(batch_bytes_max);
    fill(&mut builder, &value_of(value_bytes), u64::MAX);
    builder.seal(ProducerStamp::default())
}

fn fail<T>(op: &str, path: &Path) -> impl FnOnce(glommio::GlommioError<()>) -> T {
    let msg = format!("{op} {}", path.display());
    move |e| panic!("{msg}: {e}")
}

/// The write baseline: creates (or truncates) `path`, preallocates `total_bytes`, then writes
/// `total_bytes` in blocks of `block_bytes` sequentially, one write in flight at a time, from one
/// DMA buffer allocated up front. With `fsync_each`, every block is followed by an fdatasync;
/// otherwise one fdatasync ends the run. Returns the time from preallocation to the last sync,
/// which is what the log's append benchmarks measure too (they preallocate as they go and
/// flush at the end).
///
/// Runs the direct-I/O probe in `path`'s directory first, so it can be the first I/O of an
/// executor. Must run inside a glommio executor (see [`run_local`]).
///
/// # Panics
/// On an I/O error, or if `block_bytes` is not a multiple of the file's direct-I/O alignment.
pub async fn raw_write(path: &Path, block_bytes: usize, total_bytes: u64, fsync_each: bool) -> Duration {
    probe(path.parent().unwrap_or(Path::new("."))).await;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(path)
        .await
        .unwrap_or_else(fail("open", path));
    assert_eq!(block_bytes % file.alignment() as usize, 0, "block size must be aligned");
    let mut buf = file.alloc_dma_buffer(block_bytes);
    for (i, b) in buf.as_bytes_mut().iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    // Shared so the one buffer is written again and again without allocating or copying.
    let buf = Rc::new(buf);

    let start = Instant::now();
    file.pre_allocate(total_bytes, false).await.unwrap_or_else(fail("pre_allocate", path));
    let mut pos = 0u64;
    while pos < total_bytes {
        let written = file.write_rc_at(buf.clone(), pos).await.unwrap_or_else(fail("write", path));
        assert_eq!(written, block_bytes, "short write at {pos}");
        pos += block_bytes as u64;
        if fsync_each {
            file.fdatasync().await.unwrap_or_else(fail("fdatasync", path));
        }
    }
    if !fsync_each {
        file.fdatasync().await.unwrap_or_else(fail("fdatasync", path));
    }
    let elapsed = start.elapsed();
    file.close().await.unwrap_or_else(fail("close", path));
    elapsed
}

/// The read baseline: reads the first `total_bytes` of `path` in blocks of `block_bytes`
/// sequentially with `read_at_aligned`, one read in flight at a time, touching one byte per
/// block so the data is not optimized away. Returns the time the reads took (opening and closing
/// the file excluded).
///
/// Runs the direct-I/O probe in `path`'s directory first. Must run inside a glommio executor.
///
/// # Panics
/// On an I/O error, or if the file holds fewer than `total_bytes` bytes.
pub async fn raw_read(path: &Path, block_bytes: usize, total_bytes: u64) -> Duration {
    probe(path.parent().unwrap_or(Path::new("."))).await;
    let file = DmaFile::open(path).await.unwrap_or_else(fail("open", path));
    assert_eq!(block_bytes % file.alignment() as usize, 0, "block size must be aligned");
    let start = Instant::now();
    let mut pos = 0u64;
    let mut checksum = 0u8;
    while pos < total_bytes {
        let want = block_bytes.min((total_bytes - pos) as usize);
        let want = want.next_multiple_of(file.alignment() as usize);
        let read = file.read_at_aligned(pos, want).await.unwrap_or_else(fail("read", path));
        assert!(!read.is_empty(), "{} ends at {pos}, before {total_bytes}", path.display());
        checksum ^= read[0];
        pos += read.len() as u64;
    }
    let elapsed = start.elapsed();
    std::hint::black_box(checksum);
    file.close().await.unwrap_or_else(fail("close", path));
    elapsed
}

//! Helpers shared by the log tests.
#![allow(dead_code)]

use weir_log::batch::{Batch, BatchBuilder, BatchView, ProducerStamp, Record};
use weir_log::segment::Fetched;
use weir_log::storage::Storage;
use weir_log::storage::mem::MemStorage;
use weir_log::{FlushPolicy, LogConfig, LogError, PartitionLog};

/// A batch of `n` records whose values are `tag:i` and whose timestamps are `ts`.
pub fn batch(tag: u64, n: usize, value_len: usize, ts: i64) -> Batch {
    let mut b = BatchBuilder::new(8 << 20);
    for i in 0..n {
        let mut value = format!("{tag}:{i}:").into_bytes();
        value.resize(value_len.max(value.len()), b'x');
        let key = tag.to_le_bytes();
        b.push(&Record { key: Some(&key), value: Some(&value), headers: &[], timestamp: ts }).unwrap();
    }
    b.seal(ProducerStamp::default())
}

/// Records `(offset, value)` of fetched bytes, each batch fully validated as a consumer would;
/// a tombstone's value reads as empty.
pub fn records<B: std::ops::Deref<Target = [u8]>>(f: &Fetched<B>) -> Vec<(u64, Vec<u8>)> {
    records_of_bytes(f.bytes())
}

/// [`records`] of batches' bytes.
pub fn records_of_bytes(mut bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(bytes);
        let view = BatchView::validate(&aligned, usize::MAX).expect("served batches are valid");
        let len = view.bytes().len();
        out.extend(view.records().map(|r| (r.offset, r.value.unwrap_or_default().to_vec())));
        bytes = &bytes[len..];
    }
    out
}

/// A log of small segments and buffers, so tests roll, index and flush often.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 16 << 10,
        segment_ms: u64::MAX,
        index_interval_bytes: 512,
        batch_bytes_max: 8 << 10,
        write_buffer_bytes: 8 << 10,
        write_behind_buffers_max: 2,
        preallocate_bytes: 16 << 10,
        flush: FlushPolicy::Sync,
        retention_ms: None,
        retention_bytes: None,
        batch_cache: None,
    }
}

/// File positions of the batches in a segment file's bytes (each batch's length is at bytes
/// 12..16 of its header; zeros end the data).
pub fn batch_starts(data: &[u8]) -> Vec<usize> {
    let mut pos = 0usize;
    let mut starts = Vec::new();
    while pos + 80 <= data.len() && data[pos..pos + 80].iter().any(|&b| b != 0) {
        starts.push(pos);
        pos += u32::from_le_bytes(data[pos + 12..pos + 16].try_into().unwrap()) as usize;
    }
    starts
}

/// Every readable record, in reads of at most `max_bytes`, skipping quarantined or corrupt
/// batches by the offsets the error names, as a consumer would.
pub async fn read_skipping<S: Storage>(log: &PartitionLog<S>, max_bytes: usize) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start();
    while offset < log.next_offset() {
        match log.read(offset, max_bytes).await {
            Ok(f) => {
                assert!(!f.is_empty(), "no progress at {offset}");
                out.extend(records(&f).into_iter().filter(|(o, _)| *o >= offset));
                offset = f.next_offset;
            }
            Err(LogError::Corrupt { first_offset, last_offset, .. }) => {
                assert!(
                    (first_offset..=last_offset).contains(&offset),
                    "{first_offset}..={last_offset} at {offset}"
                );
                offset = last_offset + 1;
            }
            Err(e) => panic!("read at {offset}: {e}"),
        }
    }
    out
}

/// Polls `fut` until it completes or one of its I/Os on `st` is held; in that case drops it
/// there and returns `None`.
pub fn run_until_held<F: std::future::Future>(fut: F, st: &MemStorage) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        if st.faults().held.get() {
            return None;
        }
    }
}

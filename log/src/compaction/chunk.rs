//! Reading a segment's batches in chunks of a bounded size, for the cleaner's steps.

use crate::batch::{BatchHeader, BatchView, HEADER_BYTES};
use crate::error::{BatchError, LogError, Result};
use crate::segment::read;
use crate::storage::{StorageFile, align_down};

/// Whole batches read from one segment: the buffer, and where each batch lies in it.
#[derive(Debug)]
pub struct Chunk<B> {
    buf: B,
    /// File position of `buf[0]`.
    buf_pos: u64,
    segment: u64,
    /// File positions of the batches, in order.
    pub batches: Vec<u64>,
    /// Where the next chunk starts: after the last batch here.
    pub end_pos: u64,
    /// Bytes read from the device.
    pub read_bytes: u64,
}

impl<B: std::ops::Deref<Target = [u8]>> Chunk<B> {
    /// The batch at file position `pos`, fully validated: the cleaner rewrites what it reads, so
    /// it must never copy damage into a new segment.
    pub fn batch(&self, pos: u64) -> Result<BatchView<'_>> {
        let bytes = &self.buf[(pos - self.buf_pos) as usize..];
        BatchView::validate(bytes, u32::MAX as usize).map_err(|e| corrupt(self.segment, pos, bytes, e))
    }
}

/// Reads the whole batches in `[pos, size)` of segment `segment`'s `file` that fit in
/// `budget_bytes` from `pos`, at least one. The caller validates each with [`Chunk::batch`].
pub async fn read_chunk<F: StorageFile>(
    file: &F,
    name: &str,
    segment: u64,
    (pos, size): (u64, u64),
    budget_bytes: u64,
) -> Result<Chunk<F::ReadBuf>> {
    assert!(pos < size, "a chunk starts inside the segment");
    let buf_pos = align_down(pos, file.alignment());
    let want = (pos - buf_pos + budget_bytes.max(HEADER_BYTES as u64)).min(size - buf_pos);
    let mut buf = read(file, name, buf_pos, want as usize).await?;
    let mut read_bytes = buf.len() as u64;
    let first = header_at(&buf, buf_pos, segment, pos)?;
    let first_end = (pos + u64::from(first.batch_len)).min(size);
    if first_end > buf_pos + buf.len() as u64 {
        // A batch larger than the budget: read it whole.
        buf = read(file, name, buf_pos, (first_end - buf_pos) as usize).await?;
        read_bytes += buf.len() as u64;
    }
    let limit = (buf_pos + buf.len() as u64).min(size);
    let mut batches = Vec::new();
    let mut at = pos;
    while at + HEADER_BYTES as u64 <= limit {
        let end = at + u64::from(header_at(&buf, buf_pos, segment, at)?.batch_len);
        if end > limit {
            break;
        }
        batches.push(at);
        at = end;
    }
    if batches.is_empty() {
        let e = BatchError::Truncated { needed: first.batch_len as usize, available: (size - pos) as usize };
        return Err(corrupt(segment, pos, &[], e));
    }
    Ok(Chunk { buf, buf_pos, segment, batches, end_pos: at, read_bytes })
}

fn header_at(buf: &[u8], buf_pos: u64, segment: u64, pos: u64) -> Result<BatchHeader> {
    let bytes = buf.get((pos - buf_pos) as usize..).unwrap_or(&[]);
    BatchHeader::decode(bytes)
        .and_then(|h| h.check_frame(u32::MAX as usize).map(|()| h))
        .map_err(|e| corrupt(segment, pos, bytes, e))
}

/// Damage the cleaner ran into: the pass stops, and the scrubber or the next open quarantines
/// it. Its offsets are the batch's if its header still says them.
fn corrupt(segment: u64, pos: u64, bytes: &[u8], source: BatchError) -> LogError {
    let (first_offset, last_offset) =
        BatchHeader::decode(bytes).map_or((segment, segment), |h| (h.base_offset, h.last_offset()));
    tracing::warn!(segment, pos, %source, "the cleaner found a damaged batch");
    LogError::Corrupt { segment, pos, first_offset, last_offset, source }
}

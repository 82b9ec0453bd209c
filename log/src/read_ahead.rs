//! Read-ahead for consumers catching up: while one fetch's answer travels to its consumer and
//! is read there, the next stretch of the log is read from the device, so that the device works
//! while the consumer does and the next fetch finds its batches in memory.
//!
//! This file holds what was read ahead and how a fetch is answered from it, without I/O. The
//! log keeps at most [`READ_AHEADS_MAX`] stretches, the one a consumer reads and the one after
//! it; the node starts the reads (one per partition at a time, see
//! [`PartitionLog::plan_read_ahead`](crate::PartitionLog::plan_read_ahead)) and hands their
//! bytes back to the log.
//!
//! What was read ahead never disagrees with the files: it is dropped when the log is cut or a
//! cleaned segment swapped in (the stretch remembers the log's [`ReadGeneration`]), and when a
//! quarantine or the log start moves past it; a failed log reads only its files.

use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::batch_cache::lent_or_copied;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};

/// Stretches a log keeps: the one being read by a consumer, and the next.
pub const READ_AHEADS_MAX: usize = 2;

/// A log's shape as reads see it: which log it is (a reopened one is another), and how many
/// cuts and swaps of cleaned segments it has seen. Offsets keep their batches while it stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadGeneration {
    pub log: u64,
    pub cuts: u64,
    pub swaps: u64,
}

/// A number no other log opened by this process has.
pub(crate) fn next_log_instance() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Whole stored batches read from the files ahead of a consumer, as the read returned them
/// (every batch's CRC checked).
#[derive(Debug, Clone)]
pub struct ReadAhead {
    bytes: Bytes,
    /// Base offset of the first batch, and the offset after the last.
    pub first_offset: u64,
    pub next_offset: u64,
    pub generation: ReadGeneration,
}

impl ReadAhead {
    /// The stretch of `bytes`, whole batches read from `start` on; `None` when empty. It holds
    /// `start` even where its first batch begins past it (after a compaction's gap): a read from
    /// any offset in between gives the same batches.
    pub fn new(bytes: Bytes, generation: ReadGeneration, start: u64) -> Option<Self> {
        let (mut pos, mut first, mut next) = (0, None, 0);
        while pos + HEADER_BYTES <= bytes.len() {
            let h = BatchHeader::decode(&bytes[pos..]).expect("a read returns whole batches");
            first.get_or_insert(h.base_offset);
            next = h.next_offset();
            pos += h.batch_len as usize;
        }
        assert_eq!(pos, bytes.len(), "a read returns whole batches");
        Some(Self { first_offset: first?.min(start), next_offset: next, bytes, generation })
    }

    pub fn holds(&self, offset: u64) -> bool {
        (self.first_offset..self.next_offset).contains(&offset)
    }

    /// Bytes of the batch holding `offset` and those after it; 0 when `offset` is past them.
    pub fn bytes_from(&self, offset: u64) -> usize {
        self.bytes.len() - self.position_of(offset)
    }

    /// Whole batches from the one holding `offset`: it, then more while they fit in
    /// `max_bytes`, leaving out batches at or past `max_offset`; with the offset after the last.
    /// `None` when `offset` is not in this stretch, or its batch is at or past `max_offset`.
    pub fn answer(&self, offset: u64, max_bytes: usize, max_offset: u64) -> Option<(Bytes, u64)> {
        if !self.holds(offset) {
            return None;
        }
        let start = self.position_of(offset);
        let (mut end, mut next) = (start, offset);
        while end < self.bytes.len() {
            let h = self.header_at(end);
            let len = h.batch_len as usize;
            if h.base_offset >= max_offset || (end > start && end + len - start > max_bytes) {
                break;
            }
            (end, next) = (end + len, h.next_offset());
        }
        (end > start).then(|| (lent_or_copied(self.bytes.slice(start..end), self.bytes.len()), next))
    }

    /// The position of the batch holding `offset` (or of the first after it, in a gap); the
    /// end when past them all.
    fn position_of(&self, offset: u64) -> usize {
        let mut pos = 0;
        while pos < self.bytes.len() {
            let h = self.header_at(pos);
            if h.next_offset() > offset {
                break;
            }
            pos += h.batch_len as usize;
        }
        pos
    }

    fn header_at(&self, pos: usize) -> BatchHeader {
        BatchHeader::decode(&self.bytes[pos..]).expect("read-ahead bytes are whole batches")
    }
}

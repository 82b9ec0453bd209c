//! Damaged ranges of a log: bytes in the middle of a segment that fail their checks while
//! intact batches follow them. They are quarantined, not cut: reads that reach one get
//! [`LogError::Corrupt`] naming its offsets, and reads after it work.
//!
//! Whether damage is in the middle or a torn tail is decided here, without I/O: see
//! [`looks_torn`]. Owned by the partition log ([`crate::PartitionLog::damaged_ranges`]).

use crate::error::{BatchError, LogError};

/// A quarantined range of one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// Base offset of the segment.
    pub segment: u64,
    /// File positions `[start_pos, end_pos)`: from the first damaged byte to the next intact
    /// batch (or the end of the file).
    pub start_pos: u64,
    pub end_pos: u64,
    /// The offsets the damage covers, `first_offset..=last_offset`, from its intact
    /// neighbours: the batch before it ends at `first_offset`, the batch after it (or the next
    /// segment) starts after `last_offset`.
    pub first_offset: u64,
    pub last_offset: u64,
    /// What the first damaged batch failed.
    pub reason: BatchError,
}

impl DamagedRange {
    pub fn contains_offset(&self, offset: u64) -> bool {
        (self.first_offset..=self.last_offset).contains(&offset)
    }

    /// The error a read that reaches this range gets.
    pub fn error(&self) -> LogError {
        LogError::Corrupt {
            segment: self.segment,
            pos: self.start_pos,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            source: self.reason.clone(),
        }
    }
}

/// Sector size a torn write tears at: a write that did not reach the disk leaves whole sectors
/// as they were, which in a preallocated segment is zeros.
pub const TORN_SECTOR_BYTES: u64 = 512;

/// Fewest zero bytes of a sector inside a range that count as a lost sector. Fewer may be the
/// zero high bytes of a small base offset at the start of a batch header.
const TORN_ZEROS_MIN_BYTES: u64 = 16;

/// Whether the damaged bytes `range` (whose first byte is at file position `range_pos`) look
/// like a write that did not reach the disk: some sector's bytes within the range are all
/// zero. A flipped bit or a garbled block leaves no such sector; a torn write always does, as
/// unwritten space in a preallocated file reads as zeros. A batch whose own bytes hold a whole
/// zero sector and that is damaged as well reads as torn: recovery then cuts the active segment
/// there, as it would without this distinction.
pub fn looks_torn(range_pos: u64, range: &[u8]) -> bool {
    let end = range_pos + range.len() as u64;
    let mut sector = range_pos - range_pos % TORN_SECTOR_BYTES;
    while sector < end {
        let from = sector.max(range_pos);
        let to = (sector + TORN_SECTOR_BYTES).min(end);
        let bytes = &range[(from - range_pos) as usize..(to - range_pos) as usize];
        // A sector that runs past the range is not judged: the bytes after it are intact.
        let whole = sector + TORN_SECTOR_BYTES <= end;
        if whole && to - from >= TORN_ZEROS_MIN_BYTES && bytes.iter().all(|&b| b == 0) {
            return true;
        }
        sector += TORN_SECTOR_BYTES;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_sector_looks_torn_a_flip_does_not() {
        let mut bytes = vec![7u8; 2048];
        assert!(!looks_torn(100, &bytes));
        bytes[3] ^= 1;
        assert!(!looks_torn(100, &bytes));
        // File positions 512..1024 are bytes 412..924 of a range starting at 100.
        bytes[412..924].fill(0);
        assert!(looks_torn(100, &bytes));
        // The start of a range in a zeroed sector counts once 16 bytes of it are zero.
        let mut head = vec![7u8; 600];
        head[..12].fill(0);
        assert!(!looks_torn(500, &head));
        let mut late = vec![7u8; 1000];
        late[..24].fill(0);
        assert!(looks_torn(1000, &late));
    }
}

//! The sparse segment index: offset → file position, and timestamp → file position.
//!
//! One entry per `index_interval_bytes` of batches, each 16 bytes:
//! `(relative offset u32, file position u32, largest timestamp before this batch i64)`. The
//! offset half answers "where does the batch holding offset `o` start, roughly"; the timestamp
//! half answers "from where must a scan for the first batch with a timestamp `>= t` start",
//! because every batch before an entry has timestamps `<=` its `max_timestamp_before`.
//!
//! A sealed segment's index file ends in a footer with a CRC32C over the entries and the footer,
//! and the segment's end offset, size, largest timestamp and latest append time (broker clock);
//! a valid footer lets recovery trust the segment without reading it. The active segment's index file has no footer: its entries
//! are hints that recovery checks against the data. Pure logic; no I/O here.

use std::mem::size_of;

pub const INDEX_ENTRY_BYTES: usize = 16;
pub const INDEX_FOOTER_BYTES: usize = 48;
pub const INDEX_MAGIC: u32 = u32::from_le_bytes(*b"WIDX");
/// Version of the sealed footer this build writes. Version 0 (the footer's last reserved bytes
/// zero) has no append time; version 1 adds it.
pub const INDEX_FOOTER_VERSION: u32 = 1;
const _: () = assert!(size_of::<IndexEntry>() == INDEX_ENTRY_BYTES);
const _: () = assert!(INDEX_FOOTER_BYTES.is_multiple_of(INDEX_ENTRY_BYTES));

/// One sparse index entry.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the batch minus the segment's base offset.
    pub rel_offset: u32,
    /// File position of the batch.
    pub position: u32,
    /// Largest timestamp of all batches before this one in the segment (`i64::MIN` if none).
    pub max_timestamp_before: i64,
}

impl IndexEntry {
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.rel_offset.to_le_bytes());
        out[4..8].copy_from_slice(&self.position.to_le_bytes());
        out[8..16].copy_from_slice(&self.max_timestamp_before.to_le_bytes());
    }

    pub fn decode(b: &[u8]) -> Self {
        Self {
            rel_offset: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            position: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
            max_timestamp_before: i64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        }
    }
}

/// What a sealed index's footer records about its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedInfo {
    /// Offset after the segment's last batch.
    pub next_offset: u64,
    /// Bytes of batches in the segment file.
    pub size: u64,
    /// Largest timestamp in the segment.
    pub max_timestamp: i64,
    /// Largest broker clock (ms) at which a batch was appended. A version-0 footer has none:
    /// it reads as `max_timestamp` (clamped at 0), which is what retention went by before.
    pub max_append_ms: u64,
}

/// The in-memory index of one segment.
#[derive(Debug, Clone)]
pub struct SegmentIndex {
    entries: Vec<IndexEntry>,
    interval_bytes: u64,
    /// Bytes of batches since the last entry; an entry is due when it reaches the interval.
    bytes_since_entry: u64,
    max_timestamp: i64,
}

impl SegmentIndex {
    pub fn new(interval_bytes: u64) -> Self {
        Self { entries: Vec::new(), interval_bytes, bytes_since_entry: u64::MAX, max_timestamp: i64::MIN }
    }

    /// An index that continues from `entries` (checked hints of an active segment), ready to be
    /// fed the batches from the last entry's batch on, which re-creates that entry.
    pub fn resume(interval_bytes: u64, entries: &[IndexEntry]) -> Self {
        let mut index = Self::new(interval_bytes);
        if let Some((last, kept)) = entries.split_last() {
            index.entries = kept.to_vec();
            index.max_timestamp = last.max_timestamp_before;
        }
        index
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Largest timestamp of the batches seen so far.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Records a batch appended at `position`; returns the new entry if one is due.
    pub fn on_batch(
        &mut self,
        rel_offset: u32,
        position: u32,
        batch_len: u32,
        max_timestamp: i64,
    ) -> Option<IndexEntry> {
        let due = self.bytes_since_entry >= self.interval_bytes;
        let entry = due.then(|| {
            let e = IndexEntry { rel_offset, position, max_timestamp_before: self.max_timestamp };
            if let Some(last) = self.entries.last() {
                assert!(
                    last.rel_offset < rel_offset && last.position < position,
                    "index entries must increase"
                );
            }
            self.entries.push(e);
            self.bytes_since_entry = 0;
            e
        });
        self.bytes_since_entry = self.bytes_since_entry.saturating_add(u64::from(batch_len));
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        entry
    }

    /// The entry to start a scan for `rel_offset` from: the last one at or below it.
    pub fn lookup_offset(&self, rel_offset: u32) -> Option<IndexEntry> {
        let i = self.entries.partition_point(|e| e.rel_offset <= rel_offset);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// The entry to start a scan for the first batch with a timestamp `>= ts` from: the last one
    /// whose earlier batches are all below `ts`.
    pub fn lookup_time(&self, ts: i64) -> Option<IndexEntry> {
        let i = self.entries.partition_point(|e| e.max_timestamp_before < ts);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops entries at or after `position` (the segment was cut there). The running maximum
    /// timestamp becomes that of the last kept entry's predecessors plus whatever the caller
    /// replays with [`on_batch`](Self::on_batch); callers rebuild by replaying the kept batches.
    pub fn truncate(&mut self, position: u32) {
        self.entries.retain(|e| e.position < position);
    }

    /// Reads the entries of an active segment's index file: the longest prefix that increases
    /// strictly, which is where zero padding or a torn write ends it.
    pub fn parse_hints(bytes: &[u8]) -> Vec<IndexEntry> {
        let mut out: Vec<IndexEntry> = Vec::new();
        for chunk in bytes.chunks_exact(INDEX_ENTRY_BYTES) {
            let e = IndexEntry::decode(chunk);
            let ok = match out.last() {
                // The first batch starts the file; its offset is above the segment's base
                // when compaction removed the records before it.
                None => e.position == 0,
                Some(l) => {
                    e.rel_offset > l.rel_offset
                        && e.position > l.position
                        && e.max_timestamp_before >= l.max_timestamp_before
                }
            };
            if !ok {
                break;
            }
            out.push(e);
        }
        out
    }

    /// Encodes the sealed form: entries then footer.
    pub fn encode_sealed(&self, info: SealedInfo) -> Vec<u8> {
        let mut out = vec![0u8; self.entries.len() * INDEX_ENTRY_BYTES + INDEX_FOOTER_BYTES];
        for (e, chunk) in self.entries.iter().zip(out.chunks_exact_mut(INDEX_ENTRY_BYTES)) {
            e.encode(chunk);
        }
        let f = self.entries.len() * INDEX_ENTRY_BYTES;
        out[f..f + 4].copy_from_slice(&INDEX_MAGIC.to_le_bytes());
        out[f + 4..f + 8].copy_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out[f + 8..f + 16].copy_from_slice(&info.max_timestamp.to_le_bytes());
        out[f + 16..f + 24].copy_from_slice(&info.next_offset.to_le_bytes());
        out[f + 24..f + 32].copy_from_slice(&info.size.to_le_bytes());
        out[f + 32..f + 40].copy_from_slice(&info.max_append_ms.to_le_bytes());
        out[f + 40..f + 44].copy_from_slice(&INDEX_FOOTER_VERSION.to_le_bytes());
        let crc = crc32c::crc32c(&out[..f + 44]);
        out[f + 44..f + 48].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a sealed index file, or `None` if it is not one (missing footer, bad CRC, wrong
    /// length): the caller then rebuilds the index from the segment.
    pub fn decode_sealed(bytes: &[u8], interval_bytes: u64) -> Option<(Self, SealedInfo)> {
        if bytes.len() < INDEX_FOOTER_BYTES
            || !(bytes.len() - INDEX_FOOTER_BYTES).is_multiple_of(INDEX_ENTRY_BYTES)
        {
            return None;
        }
        let f = bytes.len() - INDEX_FOOTER_BYTES;
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let long = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        if word(f) != INDEX_MAGIC || word(f + 4) as usize * INDEX_ENTRY_BYTES != f {
            return None;
        }
        if crc32c::crc32c(&bytes[..f + 44]) != word(f + 44) {
            return None;
        }
        let entries: Vec<IndexEntry> =
            bytes[..f].chunks_exact(INDEX_ENTRY_BYTES).map(IndexEntry::decode).collect();
        if Self::parse_hints(&bytes[..f]).len() != entries.len() {
            return None;
        }
        let max_timestamp = long(f + 8) as i64;
        let max_append_ms = match word(f + 40) {
            0 => max_timestamp.max(0) as u64,
            1 => long(f + 32),
            _ => return None,
        };
        let info = SealedInfo { max_timestamp, next_offset: long(f + 16), size: long(f + 24), max_append_ms };
        let index = Self { entries, interval_bytes, bytes_since_entry: 0, max_timestamp: info.max_timestamp };
        Some((index, info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(batches: &[(u32, u32, i64)]) -> SegmentIndex {
        let mut idx = SegmentIndex::new(100);
        let mut pos = 0;
        for &(rel, len, ts) in batches {
            idx.on_batch(rel, pos, len, ts);
            pos += len;
        }
        idx
    }

    #[test]
    fn entries_are_sparse_and_lookups_round_down() {
        let idx = index_of(&[(0, 60, 10), (5, 60, 30), (9, 60, 20), (12, 60, 40), (20, 60, 50)]);
        // Entries at the first batch and once 100 bytes passed since the previous entry.
        let rels: Vec<u32> = idx.entries().iter().map(|e| e.rel_offset).collect();
        assert_eq!(rels, vec![0, 9, 20]);
        assert_eq!(idx.lookup_offset(0).unwrap().rel_offset, 0);
        assert_eq!(idx.lookup_offset(8).unwrap().rel_offset, 0);
        assert_eq!(idx.lookup_offset(9).unwrap().rel_offset, 9);
        assert_eq!(idx.lookup_offset(1000).unwrap().rel_offset, 20);
        // Batches before rel 9 reach ts 30; before rel 20 they reach 40.
        assert_eq!(idx.lookup_time(25).unwrap().rel_offset, 0);
        assert_eq!(idx.lookup_time(31).unwrap().rel_offset, 9);
        assert_eq!(idx.lookup_time(41).unwrap().rel_offset, 20);
        assert_eq!(idx.max_timestamp(), 50);
    }

    #[test]
    fn sealed_round_trip_and_damage_is_refused() {
        let idx = index_of(&[(0, 200, 1), (3, 200, 2), (7, 200, 3)]);
        let info = SealedInfo { next_offset: 1234, size: 600, max_timestamp: 3, max_append_ms: 77 };
        let bytes = idx.encode_sealed(info);
        let (back, got) = SegmentIndex::decode_sealed(&bytes, 100).unwrap();
        assert_eq!(got, info);
        assert_eq!(back.entries(), idx.entries());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(SegmentIndex::decode_sealed(&bad, 100).is_none(), "flip at {i} accepted");
        }
        assert!(SegmentIndex::decode_sealed(&bytes[..bytes.len() - 1], 100).is_none());
    }

    #[test]
    fn a_version_0_footer_reads_its_append_time_as_the_max_timestamp() {
        let idx = index_of(&[(0, 200, 1), (3, 200, 2)]);
        let info = SealedInfo { next_offset: 10, size: 400, max_timestamp: 5000, max_append_ms: 9 };
        let mut bytes = idx.encode_sealed(info);
        // A footer as written before append times: bytes 32..44 zero, CRC over them.
        let f = bytes.len() - INDEX_FOOTER_BYTES;
        bytes[f + 32..f + 44].fill(0);
        let crc = crc32c::crc32c(&bytes[..f + 44]);
        bytes[f + 44..].copy_from_slice(&crc.to_le_bytes());
        let (_, got) = SegmentIndex::decode_sealed(&bytes, 100).unwrap();
        assert_eq!(got, SealedInfo { max_append_ms: 5000, ..info });
        // A version this build does not know is refused, so the index is rebuilt.
        bytes[f + 40] = 2;
        let crc = crc32c::crc32c(&bytes[..f + 44]);
        bytes[f + 44..].copy_from_slice(&crc.to_le_bytes());
        assert!(SegmentIndex::decode_sealed(&bytes, 100).is_none());
    }

    #[test]
    fn hints_stop_at_padding_or_garbage() {
        let idx = index_of(&[(0, 200, 1), (3, 200, 2), (7, 200, 3)]);
        let mut bytes = vec![0u8; 4096];
        for (e, c) in idx.entries().iter().zip(bytes.chunks_exact_mut(16)) {
            e.encode(c);
        }
        assert_eq!(SegmentIndex::parse_hints(&bytes), idx.entries());
        bytes[16 + 4] = 0; // second entry's position goes back to 0
        assert_eq!(SegmentIndex::parse_hints(&bytes).len(), 1);
    }
}

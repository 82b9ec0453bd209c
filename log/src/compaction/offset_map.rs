//! The key → latest offset map of one cleaning pass, bounded in bytes.

use std::collections::HashMap;

/// Bytes one entry is counted for besides its key: the hash table's slot, the key's vector
/// header and the offset, rounded up. An estimate, so the bound is on the order of the memory
/// actually used, not exact.
pub const MAP_ENTRY_OVERHEAD_BYTES: usize = 64;

/// For every key seen so far, the offset of its latest record. Keys are stored whole, not
/// hashed: a hash collision would drop a live record. Owned by one cleaning pass.
///
/// Bounded: the caller adds a batch's keys only while [`is_full`](Self::is_full) is false, so the
/// map holds at most `bytes_max` plus the keys of one batch (at most one stored batch's size,
/// counted at `MAP_ENTRY_OVERHEAD_BYTES` per record more).
#[derive(Debug)]
pub struct OffsetMap {
    latest: HashMap<Vec<u8>, u64>,
    bytes: usize,
    bytes_max: usize,
}

impl OffsetMap {
    pub fn new(bytes_max: usize) -> Self {
        Self { latest: HashMap::new(), bytes: 0, bytes_max }
    }

    /// Records that `key` has a record at `offset`; offsets come in increasing order.
    pub fn insert(&mut self, key: &[u8], offset: u64) {
        match self.latest.get_mut(key) {
            Some(o) => {
                assert!(*o < offset, "records are mapped in offset order");
                *o = offset;
            }
            None => {
                self.bytes += key.len() + MAP_ENTRY_OVERHEAD_BYTES;
                self.latest.insert(key.to_vec(), offset);
            }
        }
    }

    /// The offset of the latest record of `key` seen, if any.
    pub fn latest(&self, key: &[u8]) -> Option<u64> {
        self.latest.get(key).copied()
    }

    /// Whether the map reached its bound: no further batch may be added.
    pub fn is_full(&self) -> bool {
        self.bytes >= self.bytes_max
    }

    /// Bytes counted so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_offset_wins_and_bytes_are_counted_per_key() {
        let mut m = OffsetMap::new(2 * (3 + MAP_ENTRY_OVERHEAD_BYTES));
        m.insert(b"abc", 1);
        m.insert(b"abc", 5);
        assert!(!m.is_full());
        m.insert(b"xyz", 7);
        assert_eq!((m.latest(b"abc"), m.latest(b"xyz"), m.latest(b"no")), (Some(5), Some(7), None));
        assert!(m.is_full());
        assert_eq!(m.bytes(), 2 * (3 + MAP_ENTRY_OVERHEAD_BYTES));
    }
}

//! The leader-epoch cache: which leader epoch starts at which offset (Kafka's
//! leader-epoch-checkpoint).
//!
//! One entry per epoch that wrote to the log, in increasing epoch and start offset. A follower
//! asks its leader for the end of an epoch ([`EpochCache::end_offset_for`]) to find where its log
//! diverged. Pure data and its byte encoding; the partition log stores it (see
//! `epoch_store.rs`) and keeps it in step with appends, truncations and retention.

/// An epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: u32,
    pub start_offset: u64,
}

/// The answer to "where does epoch `e` end": the largest epoch at or below `e` that the log
/// knows, and the offset after its last record (the start of the next epoch, or the log end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    pub epoch: u32,
    pub end_offset: u64,
}

/// `b"WEPC"` read as a little-endian `u32`.
pub const EPOCH_MAGIC: u32 = u32::from_le_bytes(*b"WEPC");
/// Bytes before the entries: magic, entry count, sequence number.
pub const EPOCH_HEADER_BYTES: usize = 16;
/// Bytes per entry: epoch, zero, start offset.
pub const EPOCH_ENTRY_BYTES: usize = 16;
/// Bytes of the trailing CRC32C.
pub const EPOCH_CRC_BYTES: usize = 4;

/// Epoch → start offset, epochs and start offsets strictly increasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest epoch;
    /// returns whether the cache changed. An entry of an older epoch at the same start offset
    /// (an epoch that wrote nothing) is replaced.
    pub fn assign(&mut self, epoch: u32, start_offset: u64) -> bool {
        if let Some(last) = self.latest() {
            if epoch <= last.epoch {
                return false;
            }
            assert!(start_offset >= last.start_offset, "an epoch cannot start before the previous one");
            if start_offset == last.start_offset {
                self.entries.pop();
            }
        }
        self.entries.push(EpochEntry { epoch, start_offset });
        true
    }

    /// Drops the entries of epochs that start at or after `end`: the log was cut there.
    pub fn truncate_from_end(&mut self, end: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end);
        self.entries.len() != before
    }

    /// Drops the entries of epochs wholly below `log_start`; the epoch that holds `log_start`
    /// now starts there.
    pub fn truncate_from_start(&mut self, log_start: u64) -> bool {
        let holding = self.entries.partition_point(|e| e.start_offset <= log_start);
        let Some(first) = holding.checked_sub(1) else { return false };
        let changed = first > 0 || self.entries[first].start_offset != log_start;
        self.entries.drain(..first);
        self.entries[0].start_offset = log_start;
        changed
    }

    /// Where `epoch` ends, as Kafka's OffsetsForLeaderEpoch answers: the start offset of the
    /// first epoch greater than it, or `log_end` when there is none; with the largest known
    /// epoch at or below the one asked. `None` when the log knows no epoch that old.
    pub fn end_offset_for(&self, epoch: u32, log_end: u64) -> Option<EpochEnd> {
        let next = self.entries.partition_point(|e| e.epoch <= epoch);
        let known = self.entries[..next].last()?;
        let end_offset = self.entries.get(next).map_or(log_end, |e| e.start_offset);
        Some(EpochEnd { epoch: known.epoch, end_offset })
    }

    /// Encodes the cache with `sequence` (which of two stored copies is newer).
    pub fn encode(&self, sequence: u64) -> Vec<u8> {
        let n = self.entries.len();
        let mut out = vec![0u8; EPOCH_HEADER_BYTES + n * EPOCH_ENTRY_BYTES + EPOCH_CRC_BYTES];
        out[0..4].copy_from_slice(&EPOCH_MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&(n as u32).to_le_bytes());
        out[8..16].copy_from_slice(&sequence.to_le_bytes());
        let body = &mut out[EPOCH_HEADER_BYTES..];
        for (e, chunk) in self.entries.iter().zip(body.chunks_exact_mut(EPOCH_ENTRY_BYTES)) {
            chunk[0..4].copy_from_slice(&e.epoch.to_le_bytes());
            chunk[8..16].copy_from_slice(&e.start_offset.to_le_bytes());
        }
        let crc_at = out.len() - EPOCH_CRC_BYTES;
        let crc = crc32c::crc32c(&out[..crc_at]);
        out[crc_at..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a stored cache and its sequence number, or `None` if the bytes are not a whole,
    /// intact one (torn, damaged, empty). Zeros after it are padding, not damage: a slot is
    /// written in whole blocks and trimmed after its sync, and a crash between the two leaves the
    /// intact cache padded to the block.
    pub fn decode(bytes: &[u8]) -> Option<(u64, Self)> {
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let long = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        if bytes.len() < EPOCH_HEADER_BYTES + EPOCH_CRC_BYTES || word(0) != EPOCH_MAGIC {
            return None;
        }
        let n = word(4) as usize;
        let crc_at = EPOCH_HEADER_BYTES + n.checked_mul(EPOCH_ENTRY_BYTES)?;
        let end = crc_at + EPOCH_CRC_BYTES;
        if bytes.len() < end || crc32c::crc32c(&bytes[..crc_at]) != word(crc_at) {
            return None;
        }
        if bytes[end..].iter().any(|&b| b != 0) {
            return None;
        }
        let mut cache = Self::default();
        for at in (EPOCH_HEADER_BYTES..crc_at).step_by(EPOCH_ENTRY_BYTES) {
            let e = EpochEntry { epoch: word(at), start_offset: long(at + 8) };
            let increasing =
                cache.latest().is_none_or(|l| e.epoch > l.epoch && e.start_offset > l.start_offset);
            if word(at + 4) != 0 || !increasing {
                return None;
            }
            cache.entries.push(e);
        }
        Some((long(8), cache))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(u32, u64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(epoch, start) in entries {
            assert!(c.assign(epoch, start));
        }
        c
    }

    fn pairs(c: &EpochCache) -> Vec<(u32, u64)> {
        c.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    #[test]
    fn assign_only_moves_forward() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(!c.assign(3, 20), "same epoch");
        assert!(!c.assign(2, 20), "older epoch");
        assert!(c.assign(4, 10), "an epoch that wrote nothing is replaced");
        assert_eq!(pairs(&c), vec![(1, 0), (4, 10)]);
        assert!(c.assign(6, 25));
        assert_eq!(c.latest(), Some(EpochEntry { epoch: 6, start_offset: 25 }));
    }

    #[test]
    #[should_panic(expected = "cannot start before")]
    fn an_epoch_starting_before_the_last_one_is_a_bug() {
        cache(&[(1, 10)]).assign(2, 5);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (2, 10), (5, 20), (7, 30)]);
        assert!(!c.truncate_from_end(31));
        assert!(c.truncate_from_end(30), "epoch 7 started at the cut: it is gone");
        assert_eq!(pairs(&c), vec![(1, 0), (2, 10), (5, 20)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(15), "epoch 2 holds the new start");
        assert_eq!(pairs(&c), vec![(2, 15), (5, 20)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(pairs(&c), vec![(5, 20)]);
        assert!(!c.truncate_from_start(20));
        assert!(c.truncate_from_end(0));
        assert_eq!(c, EpochCache::default());
        assert!(!c.truncate_from_start(5));
    }

    #[test]
    fn end_offset_answers_like_offsets_for_leader_epoch() {
        let c = cache(&[(2, 0), (3, 10), (6, 40)]);
        let end = |epoch, end_offset| Some(EpochEnd { epoch, end_offset });
        assert_eq!(c.end_offset_for(1, 100), None, "older than any known epoch");
        assert_eq!(c.end_offset_for(2, 100), end(2, 10));
        assert_eq!(c.end_offset_for(3, 100), end(3, 40));
        assert_eq!(
            c.end_offset_for(4, 100),
            end(3, 40),
            "an epoch that never wrote ends with the one before"
        );
        assert_eq!(c.end_offset_for(6, 100), end(6, 100), "the latest epoch ends at the log end");
        assert_eq!(c.end_offset_for(9, 100), end(6, 100));
        assert_eq!(EpochCache::default().end_offset_for(0, 5), None);
    }

    #[test]
    fn encoding_round_trips_and_damage_is_refused() {
        let c = cache(&[(1, 0), (2, 10), (5, 20)]);
        let bytes = c.encode(42);
        assert_eq!(EpochCache::decode(&bytes), Some((42, c.clone())));
        assert_eq!(EpochCache::decode(&EpochCache::default().encode(7)), Some((7, EpochCache::default())));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            assert_eq!(EpochCache::decode(&bad), None, "flip at {i} accepted");
        }
        for len in 0..bytes.len() {
            assert_eq!(EpochCache::decode(&bytes[..len]), None, "torn at {len} accepted");
        }
        let mut padded = bytes.clone();
        padded.resize(4096, 0);
        assert_eq!(EpochCache::decode(&padded), Some((42, c.clone())), "block padding is not damage");
        padded[4000] = 1;
        assert_eq!(EpochCache::decode(&padded), None);
    }
}

//! Where a partition keeps a log start that lies inside its first segment (a DeleteRecords set
//! it): two slot files written in turn, as the epoch cache's are (see [`crate::epoch_store`]).
//!
//! Each change writes 32 bytes, with a sequence number one higher than the last, into the slot
//! that does not hold the newest copy (`start.a` for even numbers, `start.b` for odd ones), and
//! syncs it. Opening takes the intact slot with the higher sequence number; none (a partition
//! that never had records deleted) is a start of 0, which the first segment's base overrides.
//! Owned by the partition log, on its shard. The layout is drawn in `docs/format.md`.

use crate::error::{LogError, Result};
use crate::log::{read_whole, write_whole};
use crate::storage::Storage;
use std::rc::Rc;

/// The slot files, by sequence number parity.
pub const START_SLOT_NAMES: [&str; 2] = ["start.a", "start.b"];
/// `b"WSTA"` read as a little-endian u32.
const START_MAGIC: u32 = u32::from_le_bytes(*b"WSTA");
const START_VERSION: u16 = 1;
/// Magic, version, reserved, sequence, start, CRC32C of the 24 bytes before it, padding.
pub const START_RECORD_BYTES: usize = 32;

/// The log start a DeleteRecords set, and the files that keep it: none until the first, so a
/// partition whose records were never deleted pays no file for it.
#[derive(Debug)]
pub(crate) struct StartStore<F> {
    /// Offsets below this are deleted, whatever the segments still hold.
    pub(crate) start: u64,
    /// Sequence number of the newest stored copy; 0 if none.
    sequence: u64,
    slots: Option<[Rc<F>; 2]>,
}

/// One slot's 32 bytes.
pub(crate) fn encode(sequence: u64, start: u64) -> [u8; START_RECORD_BYTES] {
    let mut b = [0u8; START_RECORD_BYTES];
    b[0..4].copy_from_slice(&START_MAGIC.to_le_bytes());
    b[4..6].copy_from_slice(&START_VERSION.to_le_bytes());
    b[8..16].copy_from_slice(&sequence.to_le_bytes());
    b[16..24].copy_from_slice(&start.to_le_bytes());
    let crc = crc32c::crc32c(&b[..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `(sequence, start)` of an intact slot; `None` for an empty, torn or foreign one.
pub(crate) fn decode(b: &[u8]) -> Option<(u64, u64)> {
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    if b.len() != START_RECORD_BYTES || u32_at(0) != START_MAGIC || b[4..6] != START_VERSION.to_le_bytes() {
        return None;
    }
    (crc32c::crc32c(&b[..24]) == u32_at(24)).then(|| (u64_at(8), u64_at(16)))
}

impl<F: crate::storage::StorageFile> StartStore<F> {
    /// Loads the newest intact copy, if the slots exist.
    pub(crate) async fn open<S: Storage<File = F>>(storage: &S) -> Result<Self> {
        let mut slots = Vec::with_capacity(2);
        let mut best: Option<(u64, u64)> = None;
        for name in START_SLOT_NAMES {
            // Both are created together, before either is written: one missing is none written.
            // Any other failure is one: a start read as 0 would serve deleted records again.
            let file = match storage.open(name, false).await {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Self { start: 0, sequence: 0, slots: None });
                }
                Err(e) => return Err(LogError::io("open", name, e)),
            };
            let bytes = read_whole(&file, name).await?;
            if let Some((seq, start)) = decode(&bytes)
                && best.is_none_or(|(s, _)| seq > s)
            {
                best = Some((seq, start));
            }
            slots.push(Rc::new(file));
        }
        let (sequence, start) = best.unwrap_or_default();
        Ok(Self { start, sequence, slots: Some(slots.try_into().expect("two slots")) })
    }

    /// Keeps `start` as the log start, durably, in the older slot (creating both slots, and
    /// syncing the directory that names them, the first time).
    pub(crate) async fn set<S: Storage<File = F>>(&mut self, storage: &S, start: u64) -> Result<()> {
        if self.slots.is_none() {
            let mut slots = Vec::with_capacity(2);
            for name in START_SLOT_NAMES {
                let file = storage.open(name, true).await.map_err(|e| LogError::io("open", name, e))?;
                slots.push(Rc::new(file));
            }
            storage.sync_dir().await.map_err(|e| LogError::io("sync", "data dir", e))?;
            self.slots = Some(slots.try_into().expect("two slots"));
        }
        let slots = self.slots.as_ref().expect("created above");
        let next = self.sequence + 1;
        let slot = (next % 2) as usize;
        write_whole(&slots[slot], START_SLOT_NAMES[slot], &encode(next, start)).await?;
        self.sequence = next;
        self.start = start;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_round_trips_and_any_damage_is_no_slot() {
        let b = encode(7, 1234);
        assert_eq!(decode(&b), Some((7, 1234)));
        for i in 0..28 {
            let mut d = b;
            d[i] ^= 1;
            assert_eq!(decode(&d), None, "flip at {i}");
        }
        assert_eq!(decode(&b[..31]), None);
        assert_eq!(decode(&[]), None);
    }
}

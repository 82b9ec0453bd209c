//! The producers' state saved at every roll, so that opening a log reads only what was
//! appended since the last roll rather than the whole log.
//!
//! `producers.snapshot` holds the [`ProducerTable`] as it was when the segment starting at its
//! `base` became active: every batch before `base`. Opening loads it when `base` lies within the
//! log and reads the batches from `base` on; otherwise (no file, a bad one, or a base outside the
//! log) it reads the whole log. A new snapshot replaces the old atomically (written to a new
//! name, synced, renamed, the directory synced), and saving one is best effort: the previous one
//! stays right, only older. A cut below its base removes it first: it would describe batches
//! the log no longer has.
//!
//! Layout (little-endian): `magic u32 = 0x57505253 ("WPRS")`, `version u16 = 1`, `base u64`,
//! `producers u32`, then per producer `id i64`, `epoch i16`, `batches u8`, and per batch
//! `first_seq i32`, `last_seq i32`, `base_offset u64`, `last_offset u64`; then the CRC32C of
//! everything before it, `u32`. Trailing bytes after the CRC are ignored.

use crate::error::Result;
use crate::log::{PartitionLog, read_whole, write_whole};
use crate::producers::{BatchSeq, ProducerTable};
use crate::storage::Storage;
use std::rc::Rc;

pub(crate) const SNAPSHOT_NAME: &str = "producers.snapshot";
const SNAPSHOT_NEW_NAME: &str = "producers.snapshot.new";
const MAGIC: u32 = 0x5750_5253;
const VERSION: u16 = 1;

fn encode(base: u64, table: &ProducerTable) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&base.to_le_bytes());
    let entries = table.entries();
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (id, epoch, batches) in entries {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&epoch.to_le_bytes());
        out.push(batches.len() as u8);
        for b in batches {
            out.extend_from_slice(&b.first_seq.to_le_bytes());
            out.extend_from_slice(&b.last_seq.to_le_bytes());
            out.extend_from_slice(&b.base_offset.to_le_bytes());
            out.extend_from_slice(&b.last_offset.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads little-endian fields off the front of a byte slice.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

/// The snapshot's base and table, or `None` if `bytes` is not a whole, intact snapshot.
fn decode(bytes: &[u8]) -> Option<(u64, ProducerTable)> {
    let mut c = Cursor(bytes);
    if u32::from_le_bytes(c.take()?) != MAGIC || u16::from_le_bytes(c.take()?) != VERSION {
        return None;
    }
    let base = u64::from_le_bytes(c.take()?);
    let mut table = ProducerTable::default();
    for _ in 0..u32::from_le_bytes(c.take()?) {
        let id = i64::from_le_bytes(c.take()?);
        let epoch = i16::from_le_bytes(c.take()?);
        let mut batches = Vec::new();
        for _ in 0..u8::from_le_bytes(c.take()?) {
            let first_seq = i32::from_le_bytes(c.take()?);
            let last_seq = i32::from_le_bytes(c.take()?);
            let base_offset = u64::from_le_bytes(c.take()?);
            let last_offset = u64::from_le_bytes(c.take()?);
            batches.push(BatchSeq { first_seq, last_seq, base_offset, last_offset });
        }
        table.restore(id, epoch, batches);
    }
    let body_len = bytes.len() - c.0.len();
    let crc = u32::from_le_bytes(c.take()?);
    (crc32c::crc32c(&bytes[..body_len]) == crc).then_some((base, table))
}

impl<S: Storage> PartitionLog<S> {
    /// The producers' state at open: from the snapshot and the batches after its base, or from
    /// the whole log.
    pub(crate) async fn recover_producers(&mut self) -> Result<()> {
        let saved = self.load_snapshot().await?;
        self.producers_snapshot_base = saved.as_ref().map(|(base, _)| *base);
        let (from, mut table) = match saved {
            // A snapshot above the segments' start describes batches still there, below a log
            // start a DeleteRecords moved or not.
            Some((base, table)) if base >= self.segments_start() && base <= self.next_offset() => {
                (base, table)
            }
            // One past the log end (its batches lost from outside) would be taken once appends
            // passed its base again: it goes now.
            Some((base, _)) if base > self.next_offset() => {
                self.drop_snapshot_past(self.next_offset()).await?;
                (self.segments_start(), ProducerTable::default())
            }
            _ => (self.segments_start(), ProducerTable::default()),
        };
        self.scan_producers_from(from, &mut table).await?;
        self.producers = table;
        Ok(())
    }

    async fn load_snapshot(&self) -> Result<Option<(u64, ProducerTable)>> {
        let names =
            self.storage().list().await.map_err(|e| crate::error::LogError::io("list", "data dir", e))?;
        if !names.iter().any(|n| n == SNAPSHOT_NAME) {
            return Ok(None);
        }
        let open = self.storage().open(SNAPSHOT_NAME, false).await;
        let file = open.map_err(|e| crate::error::LogError::io("open", SNAPSHOT_NAME, e))?;
        Ok(decode(&read_whole(&file, SNAPSHOT_NAME).await?))
    }

    /// Saves the producers' state as of the log end (called at a roll: the end is the new
    /// active segment's base). Best effort: a failure leaves the previous snapshot, and is
    /// logged.
    pub(crate) async fn save_producers(&mut self) {
        let base = self.next_offset();
        let bytes = encode(base, &self.producers);
        // Recorded before the rename: if the rename lands and what follows fails, a cut below
        // the new base still removes the file (removing one is always safe).
        self.producers_snapshot_base = Some(base);
        let saved = async {
            let st = self.storage();
            let file = Rc::new(
                st.open(SNAPSHOT_NEW_NAME, true)
                    .await
                    .map_err(|e| crate::error::LogError::io("open", SNAPSHOT_NEW_NAME, e))?,
            );
            write_whole(&file, SNAPSHOT_NEW_NAME, &bytes).await?;
            st.rename(SNAPSHOT_NEW_NAME, SNAPSHOT_NAME)
                .await
                .map_err(|e| crate::error::LogError::io("rename", SNAPSHOT_NAME, e))?;
            st.sync_dir().await.map_err(|e| crate::error::LogError::io("sync", "data dir", e))
        };
        if let Err(e) = saved.await {
            tracing::warn!(error = %e, "saving the producers' state failed; the previous snapshot stays");
        }
    }

    /// Removes the snapshot if a cut to `end` would leave its base past the log end.
    pub(crate) async fn drop_snapshot_past(&mut self, end: u64) -> Result<()> {
        match self.producers_snapshot_base {
            Some(base) if base > end => self.drop_snapshot().await,
            _ => Ok(()),
        }
    }

    /// Removes the snapshot, durably, whatever its base (a log that starts over).
    pub(crate) async fn drop_snapshot(&mut self) -> Result<()> {
        if self.producers_snapshot_base.is_none() {
            return Ok(());
        }
        let st = self.storage();
        match st.remove(SNAPSHOT_NAME).await {
            // Removed already (an earlier removal whose directory sync failed), or never saved.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r.map_err(|e| crate::error::LogError::io("remove", SNAPSHOT_NAME, e))?,
        }
        st.sync_dir().await.map_err(|e| crate::error::LogError::io("sync", "data dir", e))?;
        self.producers_snapshot_base = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_a_damaged_one_is_refused() {
        let mut table = ProducerTable::default();
        table.restore(7, 2, vec![BatchSeq { first_seq: 0, last_seq: 4, base_offset: 10, last_offset: 14 }]);
        table.restore(9, 0, vec![]);
        let bytes = encode(99, &table);
        let (base, back) = decode(&bytes).unwrap();
        assert_eq!((base, back.producer(7)), (99, table.producer(7)));
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 100]);
        assert!(decode(&padded).is_some(), "padding after the CRC is ignored");
        for cut in [0, 5, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(decode(&flipped).is_none());
    }
}

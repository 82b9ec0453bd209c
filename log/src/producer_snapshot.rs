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
//! It holds the partition's transactions too ([`TxnTable`]): those open at `base`, and the
//! aborted ones remembered.
//!
//! Layout (little-endian): `magic u32 = 0x57505253 ("WPRS")`, `version u16 = 2`, `base u64`,
//! `producers u32`, then per producer `id i64`, `epoch i16`, `batches u8`, and per batch
//! `first_seq i32`, `last_seq i32`, `base_offset u64`, `last_offset u64`; then `open u32` and
//! per open transaction `producer_id i64`, `epoch i16`, `first_offset u64`; then `aborted u32`
//! and per aborted transaction `producer_id i64`, `first_offset u64`, `last_offset u64`; then
//! `seen u8` (1: the log has held a transactional batch); then the CRC32C of everything before
//! it, `u32`. Trailing bytes after the CRC are ignored. Version
//! 1 (before transactions) ends after the producers; it is read as having no transaction.

use crate::error::Result;
use crate::log::{PartitionLog, read_whole, write_whole};
use crate::producers::{BatchSeq, ProducerTable};
use crate::storage::Storage;
use crate::transactions::{AbortedTxn, OpenTxn, TxnParts, TxnTable};
use std::rc::Rc;

pub(crate) const SNAPSHOT_NAME: &str = "producers.snapshot";
const SNAPSHOT_NEW_NAME: &str = "producers.snapshot.new";
const MAGIC: u32 = 0x5750_5253;
const VERSION: u16 = 2;
/// The version before transactions, still read.
const VERSION_NO_TXNS: u16 = 1;

/// The producers' and transactions' state a snapshot holds.
type Saved = (u64, ProducerTable, TxnTable);

fn encode(base: u64, table: &ProducerTable, txns: &TxnTable) -> Vec<u8> {
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
    let (open, aborted) = txns.parts();
    out.extend_from_slice(&(open.len() as u32).to_le_bytes());
    for (producer_id, t) in open {
        out.extend_from_slice(&producer_id.to_le_bytes());
        out.extend_from_slice(&t.producer_epoch.to_le_bytes());
        out.extend_from_slice(&t.first_offset.to_le_bytes());
    }
    out.extend_from_slice(&(aborted.len() as u32).to_le_bytes());
    for a in aborted {
        out.extend_from_slice(&a.producer_id.to_le_bytes());
        out.extend_from_slice(&a.first_offset.to_le_bytes());
        out.extend_from_slice(&a.last_offset.to_le_bytes());
    }
    out.push(u8::from(txns.seen()));
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

/// The snapshot's base and tables, or `None` if `bytes` is not a whole, intact snapshot.
fn decode(bytes: &[u8]) -> Option<Saved> {
    let mut c = Cursor(bytes);
    if u32::from_le_bytes(c.take()?) != MAGIC {
        return None;
    }
    let version = u16::from_le_bytes(c.take()?);
    if version != VERSION && version != VERSION_NO_TXNS {
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
    let mut txns = TxnTable::default();
    if version == VERSION {
        let (open, aborted) = decode_txns(&mut c)?;
        let seen = u8::from_le_bytes(c.take()?) != 0;
        txns.restore(open, aborted, seen);
    }
    let body_len = bytes.len() - c.0.len();
    let crc = u32::from_le_bytes(c.take()?);
    (crc32c::crc32c(&bytes[..body_len]) == crc).then_some((base, table, txns))
}

fn decode_txns(c: &mut Cursor<'_>) -> Option<TxnParts> {
    let mut open = Vec::new();
    for _ in 0..u32::from_le_bytes(c.take()?) {
        let producer_id = i64::from_le_bytes(c.take()?);
        let producer_epoch = i16::from_le_bytes(c.take()?);
        let first_offset = u64::from_le_bytes(c.take()?);
        open.push((producer_id, OpenTxn { producer_epoch, first_offset }));
    }
    let mut aborted = Vec::new();
    for _ in 0..u32::from_le_bytes(c.take()?) {
        let producer_id = i64::from_le_bytes(c.take()?);
        let first_offset = u64::from_le_bytes(c.take()?);
        let last_offset = u64::from_le_bytes(c.take()?);
        aborted.push(AbortedTxn { producer_id, first_offset, last_offset });
    }
    Some((open, aborted))
}

impl<S: Storage> PartitionLog<S> {
    /// The producers' state at open: from the snapshot and the batches after its base, or from
    /// the whole log.
    pub(crate) async fn recover_producers(&mut self) -> Result<()> {
        let saved = self.load_snapshot().await?;
        self.producers_snapshot_base = saved.as_ref().map(|(base, ..)| *base);
        let fresh = || (ProducerTable::default(), TxnTable::default());
        let (from, (mut table, mut txns)) = match saved {
            // A snapshot above the segments' start describes batches still there, below a log
            // start a DeleteRecords moved or not.
            Some((base, table, txns)) if base >= self.segments_start() && base <= self.next_offset() => {
                (base, (table, txns))
            }
            // One past the log end (its batches lost from outside) would be taken once appends
            // passed its base again: it goes now.
            Some((base, ..)) if base > self.next_offset() => {
                self.drop_snapshot_past(self.next_offset()).await?;
                (self.segments_start(), fresh())
            }
            _ => (self.segments_start(), fresh()),
        };
        self.scan_producers_from(from, &mut table, &mut txns).await?;
        txns.remove_below(self.log_start());
        self.producers = table;
        self.txns = txns;
        Ok(())
    }

    async fn load_snapshot(&self) -> Result<Option<Saved>> {
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
        let bytes = encode(base, &self.producers, &self.txns);
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
        let mut txns = TxnTable::default();
        let open = OpenTxn { producer_epoch: 3, first_offset: 12 };
        txns.restore(
            vec![(7, open)],
            vec![AbortedTxn { producer_id: 9, first_offset: 1, last_offset: 5 }],
            true,
        );
        let bytes = encode(99, &table, &txns);
        let (base, back, back_txns) = decode(&bytes).unwrap();
        assert_eq!((base, back.producer(7)), (99, table.producer(7)));
        assert_eq!(back_txns, txns);
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

//! Rebuilding a partition's [`ProducerTable`] from its log when the log opens, and the leader's
//! check of an idempotent producer's batch against it.

use crate::batch::BatchHeader;
use crate::batch::header::NO_PRODUCER_ID;
use crate::error::{LogError, Result};
use crate::log::PartitionLog;
use crate::producers::{ProducerTable, SequenceError, Verdict};
use crate::storage::Storage;
use crate::transactions::TxnTable;

/// How much one read of the rebuild takes at most.
const SCAN_READ_BYTES: usize = 1 << 20;

impl<S: Storage> PartitionLog<S> {
    /// What a leader does with `h`, a validated batch about to be appended: for a batch of no
    /// producer, always [`Verdict::Append`].
    pub fn check_producer(&self, h: &BatchHeader) -> std::result::Result<Verdict, SequenceError> {
        match h.producer_id {
            NO_PRODUCER_ID => Ok(Verdict::Append),
            // A transaction marker has no sequence; only the node writes one.
            _ if h.is_control() => Ok(Verdict::Append),
            _ => self.producers.check(h),
        }
    }

    /// Adds to `table` and `txns` what the log's batches from `from` to its end say of producers
    /// and their transactions
    /// (quarantined ranges, and batches found damaged on the way, are passed over: their
    /// batches are unknown).
    pub(crate) async fn scan_producers_from(
        &self,
        from: u64,
        table: &mut ProducerTable,
        txns: &mut TxnTable,
    ) -> Result<()> {
        let mut offset = from;
        while offset < self.next_offset() {
            if let Some(d) = self.damaged_ranges().iter().find(|d| d.contains_offset(offset)) {
                offset = d.last_offset + 1;
                continue;
            }
            // Deleted records count too: their producers' sequences go on after them.
            let fetched = match self.read_segments(offset, SCAN_READ_BYTES).await {
                Ok(f) => f,
                // Damage not found yet (the scrubber's to find): its batches are unknown, as a
                // quarantined range's are, and the log opens all the same.
                Err(LogError::Corrupt { last_offset, .. }) if last_offset >= offset => {
                    offset = last_offset + 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let bytes = fetched.bytes();
            let mut pos = 0;
            while pos < bytes.len() {
                let h = BatchHeader::decode(&bytes[pos..]).expect("stored batches were checked when read");
                table.on_append(&h, h.base_offset);
                txns.on_append(&h, h.base_offset);
                pos += h.batch_len as usize;
            }
            assert!(fetched.next_offset > offset, "a read below the log end returns a batch");
            offset = fetched.next_offset;
        }
        Ok(())
    }
}

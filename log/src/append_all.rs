//! Appending the batches of one request all or nothing.
//!
//! A produce request may carry several batches. Either all of them are appended or none is: a
//! batch that fails after earlier ones were appended (a full device when preallocating, say)
//! takes the earlier ones back out with a truncation, so a client told "failed" never finds part
//! of its request in the log. If the log itself failed (an I/O error mid-write), nothing can be
//! taken back until it is recovered from its files, and [`AppendAllError::Unknown`] says so.

use crate::batch::BatchView;
use crate::error::LogError;
use crate::log::{Appended, PartitionLog};
use crate::storage::Storage;

/// Why [`PartitionLog::append_all`] failed, and what is in the log after it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendAllError {
    /// Nothing of the request is in the log.
    #[error("{source}")]
    NotAppended {
        #[source]
        source: LogError,
    },
    /// The log failed while appending: whether any batch of the request survives is known only
    /// once the log is recovered from its files.
    #[error("outcome unknown: {source}")]
    Unknown {
        #[source]
        source: LogError,
    },
}

impl<S: Storage> PartitionLog<S> {
    /// Appends `batches` in order, all or nothing (see the module documentation). Returns where
    /// the first and the last record landed. `batches` must not be empty.
    pub async fn append_all(
        &mut self,
        batches: &[BatchView<'_>],
        leader_epoch: u32,
        now_ms: u64,
    ) -> Result<Appended, AppendAllError> {
        assert!(!batches.is_empty(), "append_all of no batches");
        let start = self.next_offset();
        let failed_before = self.is_failed();
        let mut first = None;
        let mut last = 0;
        for batch in batches {
            match self.append(batch, leader_epoch, now_ms).await {
                Ok(a) => {
                    first.get_or_insert(a.base_offset);
                    last = a.last_offset;
                }
                Err(source) => return Err(self.take_back(start, failed_before, now_ms, source).await),
            }
        }
        let base_offset = first.expect("at least one batch was appended");
        Ok(Appended { base_offset, last_offset: last })
    }

    /// Removes what a failed `append_all` appended before its failure, if it can.
    async fn take_back(
        &mut self,
        start: u64,
        failed_before: bool,
        now_ms: u64,
        source: LogError,
    ) -> AppendAllError {
        // A log that failed during this request may hold any of its bytes, even of the batch
        // whose write failed; one that had failed before refused the first batch untouched.
        if self.is_failed() && !failed_before {
            return AppendAllError::Unknown { source };
        }
        if self.next_offset() == start {
            return AppendAllError::NotAppended { source };
        }
        match self.truncate_to(start, now_ms).await {
            Ok(end) if end == start => AppendAllError::NotAppended { source },
            Ok(_) | Err(_) => AppendAllError::Unknown { source },
        }
    }
}

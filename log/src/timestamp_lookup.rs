//! Finding the first record at or after a timestamp, planned under the log and run without it.
//!
//! [`PartitionLog::plan_timestamp_lookup`](crate::PartitionLog::plan_timestamp_lookup) picks the
//! candidate segments from their indexes without I/O and hands back a [`TimestampLookup`] that
//! owns what the reads need (the segment files' `Rc` handles, bounds and start positions). Its
//! [`execute`](TimestampLookup::execute) does the reads after the caller has let go of the log,
//! so a lookup never holds a partition's lock across an I/O. Like a [`ReadPlan`], it stays
//! valid while the log appends, rolls or deletes segments meanwhile: it sees the log as it was
//! planned, up to the bytes that were visible then.

use crate::batch::BatchView;
use crate::error::{LogError, Result};
use crate::segment::{ReadPlan, data_file_name};
use crate::storage::StorageFile;
use std::rc::Rc;

/// Bytes asked for per read while walking a segment.
const LOOKUP_READ_BYTES: usize = 1 << 20;

/// One segment that may hold the answer.
#[derive(Debug)]
pub(crate) struct Candidate<F> {
    pub(crate) file: Rc<F>,
    pub(crate) base: u64,
    pub(crate) next_offset: u64,
    /// File position and offset of a batch boundary from which the walk starts: every batch
    /// before it in the segment is older than the timestamp sought.
    pub(crate) start_pos: u64,
    pub(crate) start_offset: u64,
    /// Bytes past this position were not readable when the lookup was planned.
    pub(crate) visible_end: u64,
}

/// A timestamp lookup planned from the log; see the module documentation. Owned by the shard
/// that planned it (it holds `Rc` file handles).
#[derive(Debug)]
pub struct TimestampLookup<F> {
    pub(crate) ts: i64,
    /// Segments whose largest timestamp reaches `ts`, oldest first.
    pub(crate) candidates: Vec<Candidate<F>>,
    pub(crate) batch_bytes_max: usize,
    /// Records below it were deleted (a DeleteRecords) and are never an answer.
    pub(crate) log_start: u64,
}

impl<F: StorageFile> TimestampLookup<F> {
    /// The offset of the first record whose timestamp is at least the one asked for, or `None`
    /// if no visible record has one.
    pub async fn execute(self) -> Result<Option<u64>> {
        for c in &self.candidates {
            if let Some(found) = self.search(c).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Walks one segment's batches from the candidate's start; `None` if none reaches `ts`.
    async fn search(&self, c: &Candidate<F>) -> Result<Option<u64>> {
        let (mut pos, mut offset) = (c.start_pos, c.start_offset);
        while offset < c.next_offset {
            let plan = ReadPlan {
                file: c.file.clone(),
                name: data_file_name(c.base),
                segment_base: c.base,
                start_pos: pos,
                visible_end: c.visible_end,
                offset,
                max_offset: u64::MAX,
                max_bytes: LOOKUP_READ_BYTES,
                batch_bytes_max: self.batch_bytes_max,
            };
            let fetched = plan.execute().await?;
            if fetched.is_empty() {
                break;
            }
            let (bytes, mut at) = (fetched.bytes(), 0);
            while at < bytes.len() {
                let view =
                    BatchView::validate_stored(&bytes[at..], self.batch_bytes_max).map_err(|source| {
                        let h = crate::batch::BatchHeader::decode(&bytes[at..]).ok();
                        let (first_offset, last_offset) =
                            h.map_or((offset, offset), |h| (h.base_offset, h.last_offset()));
                        let pos = fetched.position + at as u64;
                        LogError::Corrupt { segment: c.base, pos, first_offset, last_offset, source }
                    })?;
                let h = view.header();
                if h.max_timestamp >= self.ts && h.last_offset() >= self.log_start {
                    // A Kafka-format batch answers for its first record: the lookup is exact to
                    // the batch, and a consumer starting there reads the few records before
                    // `ts` as well (the log does not decompress Kafka records to look).
                    if view.is_kafka() {
                        return Ok(Some(h.base_offset.max(self.log_start)));
                    }
                    let found = view.records().find(|r| r.timestamp >= self.ts && r.offset >= self.log_start);
                    if let Some(r) = found {
                        return Ok(Some(r.offset));
                    }
                }
                at += view.bytes().len();
            }
            pos = fetched.position + bytes.len() as u64;
            offset = fetched.next_offset;
        }
        Ok(None)
    }
}

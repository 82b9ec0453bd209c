//! The scrubber: checks the CRCs of sealed segments in the background, a bounded number of
//! bytes at a time, and quarantines damage it finds, so it is found before a consumer or a
//! replica needs the data.
//!
//! Sans-IO where it can be: a shard keeps one [`crate::io_budget::IoBudget`] (the rate, across its
//! partitions); each log keeps its own cursor. A step is planned from the log without I/O
//! ([`crate::PartitionLog::plan_scrub`]), carried out without the log ([`ScrubPlan::execute`],
//! which only reads), and recorded by [`crate::PartitionLog::complete_scrub`]. A dropped step
//! changes nothing: the cursor only moves when a step is recorded.

use crate::batch::{BatchHeader, HEADER_BYTES, check_frame_and_crc};
use crate::damage::DamagedRange;
use crate::error::Result;
use crate::segment::{ScanKind, read, resync};
use crate::storage::{StorageFile, align_down, align_up};
use std::rc::Rc;

/// Bytes of sealed segments a shard checks per second, over all its partitions. Low enough to
/// leave the disk to produce and fetch (it reads with direct I/O, in steps of at most
/// [`SCRUB_STEP_BYTES_MAX`]), high enough to go over a terabyte in under a day.
pub const SCRUB_BYTES_PER_SEC: u64 = 16 << 20;
/// Most bytes one step reads: what one upkeep run may spend on scrubbing.
pub const SCRUB_STEP_BYTES_MAX: u64 = 1 << 20;
/// Fewest bytes worth a step: smaller grants wait and add up, so reads stay large.
pub const SCRUB_STEP_BYTES_MIN: u64 = 64 << 10;
/// How long a partition's scrubbing rests after a step failed to read: a failing device is not
/// hammered, nor the log filled, by a retry at its every turn.
pub const SCRUB_ERROR_PAUSE_MS: u64 = 60_000;

/// Whether a partition's scrubbing rests after a failed step, for [`SCRUB_ERROR_PAUSE_MS`]. Per
/// partition, so one whose reads keep failing does not hold back the shard's others. Owned by
/// the partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrubPause {
    failed_at_ms: Option<u64>,
}

impl ScrubPause {
    /// A step failed at `now_ms`.
    pub fn failed(&mut self, now_ms: u64) {
        self.failed_at_ms = Some(now_ms);
    }

    /// Whether to skip the partition's turn at `now_ms`. The clock is the wall clock: stepped
    /// back, it ends the pause rather than stretching it by as long as it went back.
    pub fn paused(&self, now_ms: u64) -> bool {
        self.failed_at_ms.is_some_and(|at| now_ms >= at && now_ms - at < SCRUB_ERROR_PAUSE_MS)
    }
}

/// Where a log's scrubbing goes on: the first sealed segment at or after `segment`, at `pos`
/// (a batch boundary, where offset `offset` starts) if it is that segment, else at its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubCursor {
    pub segment: u64,
    pub pos: u64,
    pub offset: u64,
}

/// One step of scrubbing, planned from a log: it owns a handle on the segment file, so it stays
/// valid if the log deletes the segment meanwhile.
#[derive(Debug)]
pub struct ScrubPlan<F> {
    pub(crate) file: Rc<F>,
    pub(crate) name: String,
    pub(crate) segment: u64,
    /// Offset after the segment's last batch, and its size in bytes.
    pub(crate) end_offset: u64,
    pub(crate) size: u64,
    pub(crate) from: ScrubCursor,
    pub(crate) budget_bytes: u64,
    /// Quarantined ranges of the segment, which the step steps over.
    pub(crate) known: Vec<DamagedRange>,
    pub(crate) batch_bytes_max: usize,
    /// The log's count of swapped-in cleanings when planned (see `PartitionLog::complete_clean`).
    pub(crate) swaps: u64,
}

/// What a step checked and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubOutcome {
    pub segment: u64,
    /// Where the next step goes on.
    pub next: ScrubCursor,
    pub checked_bytes: u64,
    /// Bytes read from the device, which may exceed those checked (a batch larger than the
    /// first read is read again whole, damage is measured to the next intact batch): what the
    /// step costs the scrubbing budget.
    pub read_bytes: u64,
    /// The segment was checked to its end.
    pub segment_done: bool,
    /// Damage found, not yet quarantined.
    pub damage: Option<DamagedRange>,
    /// The log's count of swapped-in cleanings when the step was planned: a step planned before
    /// a swap read a file the log no longer holds, and its positions mean nothing in the new one.
    pub(crate) swaps: u64,
}

impl<F: StorageFile> ScrubPlan<F> {
    /// Reads up to the budget (or one batch, if larger) and checks every whole batch's frame,
    /// CRC and offset; stops at the first damage, which it measures like recovery does.
    pub async fn execute(self) -> Result<ScrubOutcome> {
        let (mut pos, mut offset) = (self.from.pos, self.from.offset);
        let align = self.file.alignment();
        let buf_pos = align_down(pos, align);
        let want = align_up((pos - buf_pos + self.budget_bytes).min(self.size - buf_pos), align);
        let mut buf = read(&*self.file, &self.name, buf_pos, want as usize).await?;
        let mut read_bytes = want;
        let mut buf_pos = buf_pos;
        let mut checked = 0u64;
        let mut damage = None;
        let mut reread = false;
        while pos < self.size && checked < self.budget_bytes {
            if let Some(d) = self.known.iter().find(|d| d.start_pos == pos) {
                (pos, offset) = (d.end_pos, d.last_offset + 1);
                continue;
            }
            let at = (pos - buf_pos) as usize;
            let avail = buf.len().saturating_sub(at);
            let len = match avail >= HEADER_BYTES {
                true => BatchHeader::decode(&buf[at..]).map_or(0, |h| u64::from(h.batch_len)),
                false => 0,
            };
            let need = len.max(HEADER_BYTES as u64);
            let fits = pos + need <= self.size && need as usize <= self.batch_bytes_max;
            if fits && need as usize > avail && !reread {
                if checked > 0 {
                    break; // the next step reads it
                }
                // A batch larger than the budget, or past a skipped range: read it whole.
                buf_pos = align_down(pos, align);
                buf = read(&*self.file, &self.name, buf_pos, (pos - buf_pos + need) as usize).await?;
                read_bytes += align_up(pos - buf_pos + need, align);
                reread = true;
                continue;
            }
            let result = check_frame_and_crc(buf.get(at..).unwrap_or(&[]), self.batch_bytes_max);
            let in_segment = pos + len <= self.size;
            match result {
                // Dense, as in `scan`: a flipped base offset is damage, not a jump ahead; only a
                // compacted batch with its pinned base offset may follow a gap.
                Ok(h) if h.may_start_at(offset) && h.next_offset() <= self.end_offset && in_segment => {
                    (pos, offset) = (pos + len, h.next_offset());
                    checked += len;
                    reread = false;
                }
                result => {
                    let reason = result
                        .err()
                        .unwrap_or(crate::BatchError::BadHeader { field: "base_offset", value: offset });
                    let d = self.measure(pos, offset, reason).await?;
                    checked += d.end_pos - pos;
                    read_bytes += d.end_pos - pos;
                    (pos, offset) = (d.end_pos, d.last_offset + 1);
                    damage = Some(d);
                    break;
                }
            }
        }
        let segment_done = pos >= self.size;
        let next = ScrubCursor { segment: self.segment, pos, offset };
        Ok(ScrubOutcome {
            segment: self.segment,
            next,
            checked_bytes: checked,
            read_bytes,
            segment_done,
            damage,
            swaps: self.swaps,
        })
    }

    /// The damaged range starting at `pos`: up to the next intact batch, or the segment's end.
    async fn measure(&self, pos: u64, offset: u64, reason: crate::BatchError) -> Result<DamagedRange> {
        let kind = ScanKind::Sealed { end_offset: self.end_offset };
        let found = resync(
            &*self.file,
            &self.name,
            self.segment,
            (pos, offset),
            self.size,
            self.batch_bytes_max,
            kind,
        )
        .await?;
        let (end_pos, next) = found.unwrap_or((self.size, self.end_offset));
        Ok(DamagedRange {
            segment: self.segment,
            start_pos: pos,
            end_pos,
            first_offset: offset,
            last_offset: next.max(offset + 1) - 1,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a failed step the partition's scrubbing rests, then goes on.
    #[test]
    fn an_error_pauses_scrubbing() {
        let mut p = ScrubPause::default();
        assert!(!p.paused(0));
        p.failed(1000);
        assert!(p.paused(1000) && p.paused(1000 + SCRUB_ERROR_PAUSE_MS - 1));
        assert!(!p.paused(1000 + SCRUB_ERROR_PAUSE_MS));
    }

    /// The shard's clock is the wall clock: stepped back during a pause (an NTP correction), it
    /// must not halt scrubbing for as long as it went back.
    #[test]
    fn a_clock_stepped_back_does_not_stretch_the_pause() {
        let mut p = ScrubPause::default();
        let now = 10_000_000;
        p.failed(now);
        assert!(!p.paused(now - 3_600_000), "paused for longer than a pause");
    }
}

//! When a compacted partition is cleaned: the decision between passes, sans-IO.
//!
//! A partition is due when its dirty bytes (sealed segments past the checkpoint) are at least
//! its clean bytes (sealed segments the checkpoint covers): Kafka's
//! `min.cleanable.dirty.ratio` of 0.5, so each byte is rewritten a bounded number of times as
//! the log grows. A partition with nothing dirty is due again `delete_retention_ms` after its
//! last pass (and never sooner than [`REVISIT_INTERVAL_MS_MIN`]), so that tombstones whose
//! retention ended go even if nothing new is written.

/// A partition's cleaning is looked at again at most this often when nothing new is dirty:
/// each such pass reads every cleanable segment, so a tiny `delete_retention_ms` must not make
/// the cleaner read a large idle log over and over.
pub const REVISIT_INTERVAL_MS_MIN: u64 = 60_000;
/// How long a partition's cleaning rests after a pass failed: a failing device is not
/// hammered by a pass at every turn.
pub const CLEAN_ERROR_PAUSE_MS: u64 = 60_000;

/// The sealed bytes below the cleanable end, split at the checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleanable {
    /// Bytes of segments ending at or below the checkpoint: cleaned by earlier passes.
    pub clean_bytes: u64,
    /// Bytes of segments past it: not yet mapped.
    pub dirty_bytes: u64,
}

/// A compacted partition's cleaning between passes: its checkpoint (Kafka's cleaner offset
/// checkpoint) and when it last ran. Owned by the shard that owns the partition; kept in memory,
/// so a restarted node maps from the log start once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanSchedule {
    /// Keys of batches ending at or below this were mapped by passes whose every segment was
    /// swapped in: the next pass maps from here.
    map_from: u64,
    /// The log's [`crate::PartitionLog::cuts`] when the checkpoint was last taken.
    cuts: u64,
    last_pass_ms: Option<u64>,
    failed_at_ms: Option<u64>,
}

impl CleanSchedule {
    /// Where the next pass maps keys from: the checkpoint, or the log start once retention or
    /// a truncation moved past it.
    pub fn map_from(&self, log_start: u64) -> u64 {
        self.map_from.max(log_start)
    }

    /// Whether a pass is due at `now_ms` (the wall clock; stepped back, it ends a wait rather
    /// than stretching it).
    pub fn due(&self, c: Cleanable, now_ms: u64, delete_retention_ms: u64) -> bool {
        if self.failed_at_ms.is_some_and(|at| now_ms >= at && now_ms - at < CLEAN_ERROR_PAUSE_MS) {
            return false;
        }
        if c.dirty_bytes > 0 && c.dirty_bytes >= c.clean_bytes {
            return true;
        }
        let revisit_ms = delete_retention_ms.max(REVISIT_INTERVAL_MS_MIN);
        c.clean_bytes + c.dirty_bytes > 0
            && self.last_pass_ms.is_none_or(|at| now_ms.saturating_sub(at) >= revisit_ms)
    }

    /// A pass ended at `now_ms`. The checkpoint moves to `mapped_to` only if every segment
    /// the pass cleaned was swapped in: a segment left as it was (changed meanwhile) keeps
    /// records the pass's keys supersede, and the next pass must map those keys again.
    pub fn pass_done(&mut self, mapped_to: Option<u64>, all_swapped: bool, now_ms: u64) {
        if let Some(to) = mapped_to.filter(|_| all_swapped) {
            self.map_from = self.map_from.max(to);
        }
        self.last_pass_ms = Some(now_ms);
        self.failed_at_ms = None;
    }

    /// A pass failed at `now_ms`: cleaning rests for [`CLEAN_ERROR_PAUSE_MS`].
    pub fn failed(&mut self, now_ms: u64) {
        self.failed_at_ms = Some(now_ms);
    }

    /// Takes the log's count of cuts; if the log was cut since the checkpoint was taken (a
    /// follower's truncation or a new start), what the checkpoint covered may be gone or
    /// replaced, and the next pass maps from the log start. Returns whether it was cut.
    pub fn observe_cuts(&mut self, cuts: u64) -> bool {
        let cut = cuts != self.cuts;
        if cut {
            self.cuts = cuts;
            self.map_from = 0;
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 24 * 3600 * 1000;

    #[test]
    fn dirty_bytes_at_least_the_clean_ones_make_a_pass_due() {
        let s = CleanSchedule::default();
        assert!(!s.due(Cleanable::default(), 5, DAY_MS), "nothing sealed");
        assert!(s.due(Cleanable { clean_bytes: 0, dirty_bytes: 1 }, 5, DAY_MS));
        let mut s = s;
        s.pass_done(Some(100), true, 10);
        assert_eq!(s.map_from(0), 100);
        assert_eq!(s.map_from(150), 150, "retention moved the start past the checkpoint");
        assert!(!s.due(Cleanable { clean_bytes: 10, dirty_bytes: 9 }, 20, DAY_MS));
        assert!(s.due(Cleanable { clean_bytes: 10, dirty_bytes: 10 }, 20, DAY_MS));
    }

    #[test]
    fn a_clean_log_is_revisited_for_its_tombstones() {
        let mut s = CleanSchedule::default();
        s.pass_done(Some(100), true, 1_000);
        let clean = Cleanable { clean_bytes: 10, dirty_bytes: 0 };
        assert!(!s.due(clean, 1_000 + DAY_MS - 1, DAY_MS));
        assert!(s.due(clean, 1_000 + DAY_MS, DAY_MS));
        // A retention of zero does not make the cleaner spin.
        assert!(!s.due(clean, 1_000 + REVISIT_INTERVAL_MS_MIN - 1, 0));
        assert!(s.due(clean, 1_000 + REVISIT_INTERVAL_MS_MIN, 0));
    }

    #[test]
    fn the_checkpoint_moves_only_when_every_segment_was_swapped() {
        let mut s = CleanSchedule::default();
        s.pass_done(Some(100), false, 1);
        assert_eq!(s.map_from(0), 0);
        s.pass_done(Some(100), true, 2);
        assert!(!s.observe_cuts(0));
        assert_eq!(s.map_from(0), 100);
        assert!(s.observe_cuts(1), "the log was cut since");
        assert_eq!(s.map_from(0), 0);
    }

    #[test]
    fn a_failed_pass_rests_the_partition() {
        let mut s = CleanSchedule::default();
        let dirty = Cleanable { clean_bytes: 0, dirty_bytes: 1 };
        s.failed(1_000);
        assert!(!s.due(dirty, 1_000 + CLEAN_ERROR_PAUSE_MS - 1, DAY_MS));
        assert!(s.due(dirty, 1_000 + CLEAN_ERROR_PAUSE_MS, DAY_MS));
        assert!(s.due(dirty, 500, DAY_MS), "a clock stepped back ends the pause");
    }
}

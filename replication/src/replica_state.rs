//! The offsets of one partition replica and the rules they move by.
//!
//! `log_start ≤ high_watermark ≤ log_end` always: records below the high watermark are
//! committed (visible to consumers), records from it to the log end are written but not yet
//! committed. The state moves only through the methods below, each of which checks the
//! invariant in release builds too: a replica whose offsets disagree is a bug that must stop the
//! process, not a state to serve from.
//!
//! Owned by the shard that owns the partition; plain data (`Copy`), no I/O.

/// Offsets and leader epoch of one replica. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaState {
    log_start: u64,
    high_watermark: u64,
    log_end: u64,
    leader_epoch: u32,
}

impl ReplicaState {
    /// The state of a log just opened (or reopened) with `[log_start, log_end)`. A high
    /// watermark remembered from before is kept where the log still reaches it; the log may have
    /// been cut below it by recovery, and then it drops to the log end.
    pub fn recovered(log_start: u64, log_end: u64, high_watermark: u64, leader_epoch: u32) -> Self {
        assert!(log_start <= log_end, "log start {log_start} past log end {log_end}");
        let high_watermark = high_watermark.clamp(log_start, log_end);
        let s = Self { log_start, high_watermark, log_end, leader_epoch };
        s.check();
        s
    }

    pub fn log_start(&self) -> u64 {
        self.log_start
    }

    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    pub fn log_end(&self) -> u64 {
        self.log_end
    }

    pub fn leader_epoch(&self) -> u32 {
        self.leader_epoch
    }

    /// Records were appended: the log now ends at `log_end`. The log end never moves back here;
    /// only [`truncate_to`](Self::truncate_to) lowers it.
    pub fn appended(&mut self, log_end: u64) {
        assert!(log_end >= self.log_end, "log end moved back from {} to {log_end}", self.log_end);
        self.log_end = log_end;
        self.check();
    }

    /// Commits every record below `high_watermark`. Returns whether it moved; it never moves
    /// back, and never past the log end.
    pub fn advance_high_watermark(&mut self, high_watermark: u64) -> bool {
        assert!(
            high_watermark <= self.log_end,
            "high watermark {high_watermark} past log end {}",
            self.log_end
        );
        if high_watermark <= self.high_watermark {
            return false;
        }
        self.high_watermark = high_watermark;
        self.check();
        true
    }

    /// Records below `log_start` were deleted (retention). Only committed records may go.
    pub fn advance_log_start(&mut self, log_start: u64) {
        assert!(
            log_start <= self.high_watermark,
            "log start {log_start} past the high watermark {}",
            self.high_watermark
        );
        self.log_start = self.log_start.max(log_start);
        self.check();
    }

    /// The log was cut to end at `log_end` (a follower dropping what its leader does not have).
    /// The high watermark drops with it.
    pub fn truncate_to(&mut self, log_end: u64) {
        assert!(log_end >= self.log_start, "cut at {log_end} below log start {}", self.log_start);
        self.log_end = log_end;
        self.high_watermark = self.high_watermark.min(log_end);
        self.check();
    }

    /// The log was emptied and starts again at `offset`: at or past its end (a follower whose
    /// leader's log starts there), or below its start (a cut below the log start empties it).
    pub fn start_over_at(&mut self, offset: u64) {
        assert!(
            offset >= self.log_end || offset < self.log_start,
            "start over at {offset}, inside the log [{}, {})",
            self.log_start,
            self.log_end
        );
        self.log_start = offset;
        self.high_watermark = offset;
        self.log_end = offset;
        self.check();
    }

    /// A new leader epoch began; epochs only grow.
    pub fn set_leader_epoch(&mut self, leader_epoch: u32) {
        assert!(leader_epoch >= self.leader_epoch, "leader epoch went back to {leader_epoch}");
        self.leader_epoch = leader_epoch;
    }

    fn check(&self) {
        assert!(
            self.log_start <= self.high_watermark && self.high_watermark <= self.log_end,
            "replica offsets out of order: log start {}, high watermark {}, log end {}",
            self.log_start,
            self.high_watermark,
            self.log_end
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keep_the_order() {
        let mut s = ReplicaState::recovered(0, 10, 10, 0);
        s.appended(15);
        assert!(!s.advance_high_watermark(5), "never back");
        assert!(s.advance_high_watermark(12));
        s.advance_log_start(8);
        assert_eq!((s.log_start(), s.high_watermark(), s.log_end()), (8, 12, 15));
        s.truncate_to(9);
        assert_eq!((s.log_start(), s.high_watermark(), s.log_end()), (8, 9, 9));
        s.set_leader_epoch(3);
        assert_eq!(s.leader_epoch(), 3);
    }

    #[test]
    #[should_panic(expected = "went back")]
    fn leader_epochs_only_grow() {
        ReplicaState::recovered(0, 4, 4, 5).set_leader_epoch(4);
    }

    #[test]
    fn recovery_below_the_old_high_watermark_lowers_it() {
        let s = ReplicaState::recovered(3, 7, 20, 2);
        assert_eq!((s.log_start(), s.high_watermark(), s.log_end(), s.leader_epoch()), (3, 7, 7, 2));
    }

    #[test]
    #[should_panic(expected = "past log end")]
    fn high_watermark_past_the_log_end_is_a_bug() {
        ReplicaState::recovered(0, 4, 4, 0).advance_high_watermark(5);
    }

    #[test]
    #[should_panic(expected = "past the high watermark")]
    fn deleting_uncommitted_records_is_a_bug() {
        let mut s = ReplicaState::recovered(0, 4, 2, 0);
        s.advance_log_start(3);
    }

    #[test]
    #[should_panic(expected = "moved back")]
    fn appends_never_lower_the_log_end() {
        ReplicaState::recovered(0, 4, 4, 0).appended(3);
    }
}

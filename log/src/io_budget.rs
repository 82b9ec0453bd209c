//! Pacing of a shard's background I/O: the scrubber's and the cleaner's reads and writes are
//! granted from a budget that grows with time, so they never take the disk from appends and
//! fetches.

use crate::scrub::{SCRUB_BYTES_PER_SEC, SCRUB_STEP_BYTES_MAX, SCRUB_STEP_BYTES_MIN};

/// The rate of one shard's background I/O (scrubbing, cleaning): a budget of bytes that grows
/// with time at `bytes_per_sec`, up to one step, and which partition's turn it is. A step may read more than
/// its grant (a batch larger than it, or damage measured to its end): the excess is a debt paid
/// from later time, so the rate holds on average. Owned by a shard.
#[derive(Debug, Clone)]
pub struct IoBudget {
    bytes_per_sec: u64,
    /// Credit is capped at this: what one upkeep run may spend.
    step_bytes_max: u64,
    /// Bytes that may be read now; negative while a debt is paid off.
    credit: i64,
    last_ms: Option<u64>,
    turn: usize,
}

impl IoBudget {
    /// The scrubber's budget: [`SCRUB_BYTES_PER_SEC`] in steps of at most
    /// [`SCRUB_STEP_BYTES_MAX`].
    pub fn scrub() -> Self {
        Self::new(SCRUB_BYTES_PER_SEC, SCRUB_STEP_BYTES_MAX)
    }

    /// A budget of `bytes_per_sec`, in steps of [`SCRUB_STEP_BYTES_MIN`] to `step_bytes_max`.
    pub fn new(bytes_per_sec: u64, step_bytes_max: u64) -> Self {
        assert!(step_bytes_max >= SCRUB_STEP_BYTES_MIN, "a step's largest size below its smallest");
        Self { bytes_per_sec, step_bytes_max, credit: 0, last_ms: None, turn: 0 }
    }

    /// The bytes a step may read now, or `None` until at least [`SCRUB_STEP_BYTES_MIN`] have
    /// accrued. The clock starts at the first call.
    pub fn grant(&mut self, now_ms: u64) -> Option<u64> {
        let elapsed = now_ms.saturating_sub(self.last_ms.unwrap_or(now_ms));
        self.last_ms = Some(now_ms);
        let earned = i64::try_from(elapsed.saturating_mul(self.bytes_per_sec) / 1000).unwrap_or(i64::MAX);
        self.credit = self.credit.saturating_add(earned).min(self.step_bytes_max as i64);
        u64::try_from(self.credit).ok().filter(|&c| c >= SCRUB_STEP_BYTES_MIN)
    }

    /// Takes what a step read off the budget, going into debt if it read more than granted.
    pub fn spend(&mut self, bytes: u64) {
        self.credit = self.credit.saturating_sub(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Which of `n` partitions scrubs next: each in turn.
    pub fn next_turn(&mut self, n: usize) -> usize {
        assert!(n > 0, "a turn among no partitions");
        self.turn = (self.turn + 1) % n;
        self.turn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_grows_with_time_up_to_a_step() {
        let mut b = IoBudget::new(1_024_000, SCRUB_STEP_BYTES_MAX);
        assert_eq!(b.grant(1000), None, "the clock starts at the first call");
        assert_eq!(b.grant(1031), None, "31 KiB is below a step's minimum");
        assert_eq!(b.grant(1125), Some(128_000));
        b.spend(100_000);
        assert_eq!(b.grant(1125), None);
        assert_eq!(b.grant(100_000), Some(SCRUB_STEP_BYTES_MAX), "credit is capped at one step");
        assert_eq!((b.next_turn(3), b.next_turn(3), b.next_turn(3)), (1, 2, 0));
    }

    /// A step that read past its grant is paid for with later time: over any stretch, the bytes
    /// read stay within the rate (and one step).
    #[test]
    fn reading_past_a_grant_is_paid_back() {
        let mut b = IoBudget::new(1_000_000, SCRUB_STEP_BYTES_MAX);
        b.grant(0);
        assert_eq!(b.grant(1000), Some(SCRUB_STEP_BYTES_MAX.min(1_000_000)));
        b.spend(10_000_000);
        for now in (2000..=10_000).step_by(1000) {
            assert_eq!(b.grant(now), None, "still paying at {now} ms");
        }
        assert!(b.grant(11_000).is_some(), "paid off after ten seconds at 1 MB/s");
    }
}

//! A token bucket on the bytes a shard fetches from leaders: `replication_catchup_bytes_per_s_max`
//! over all the partitions it follows. Fetches go out while the bucket is not in debt; what an
//! answer brought is taken from it after the fact (the size of an answer is not known before),
//! so a shard stays within the rate over time, one answer (at most
//! `REPLICA_FETCH_BYTES_MAX` per leader shard) beyond it at a time.

/// See the module documentation. Owned by one shard.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    bytes_per_s: u64,
    /// Bytes available; negative while in debt.
    tokens: i64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket (one second of the rate) at `now_ms`.
    pub fn new(bytes_per_s: u64, now_ms: u64) -> Self {
        let bytes_per_s = bytes_per_s.max(1);
        Self { bytes_per_s, tokens: bytes_per_s.min(i64::MAX as u64) as i64, last_ms: now_ms }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        let add = (u128::from(elapsed) * u128::from(self.bytes_per_s) / 1000).min(i64::MAX as u128) as i64;
        let cap = self.bytes_per_s.min(i64::MAX as u64) as i64;
        self.tokens = self.tokens.saturating_add(add).min(cap);
    }

    /// Milliseconds to wait before the next fetch may go out (0: now).
    pub fn wait_ms(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        if self.tokens >= 0 {
            return 0;
        }
        let debt = self.tokens.unsigned_abs();
        (u128::from(debt) * 1000).div_ceil(u128::from(self.bytes_per_s)) as u64
    }

    /// Takes `bytes` fetched at `now_ms`.
    pub fn spend(&mut self, bytes: usize, now_ms: u64) {
        self.refill(now_ms);
        self.tokens = self.tokens.saturating_sub(bytes.min(i64::MAX as usize) as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_is_paid_back_at_the_rate() {
        let mut b = TokenBucket::new(1000, 0);
        assert_eq!(b.wait_ms(0), 0);
        b.spend(3000, 0);
        assert_eq!(b.wait_ms(0), 2000, "2000 bytes of debt at 1000 bytes/s");
        assert_eq!(b.wait_ms(1500), 500);
        assert_eq!(b.wait_ms(2000), 0);
        // Idle time refills up to one second of the rate, not more.
        assert_eq!(b.wait_ms(60_000), 0);
        b.spend(1001, 60_000);
        assert_eq!(b.wait_ms(60_000), 1);
    }
}

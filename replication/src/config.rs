//! Settings of a replica.

/// Limits and timings of one replica. Kafka's names where Kafka has the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// The high watermark moves, and acks=all produces are taken, only while the ISR has at
    /// least this many members.
    pub min_insync_replicas: usize,
    /// A follower that has not caught up with the leader's log end for this long is proposed
    /// for removal from the ISR.
    pub replica_lag_time_max_ms: u64,
    /// A follower waits this long after an empty or refused fetch before the next.
    pub fetch_backoff_ms: u64,
    /// A fetch unanswered for this long is taken as lost, and sent again.
    pub fetch_timeout_ms: u64,
    /// An ISR change unanswered for this long is proposed again.
    pub alter_timeout_ms: u64,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            min_insync_replicas: 2,
            replica_lag_time_max_ms: 30_000,
            fetch_backoff_ms: 100,
            fetch_timeout_ms: 2_000,
            alter_timeout_ms: 2_000,
        }
    }
}

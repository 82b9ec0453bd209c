//! The typed requests and answers of the [`PartitionService`](super::PartitionService): what
//! every front end speaks to the node, and what shards send each other over the
//! [`Bus`](crate::bus::Bus). Batches travel as owned [`Bytes`]: moved from shard to shard, never
//! copied or re-encoded on the way.

use bytes::Bytes;
use std::sync::Arc;
use weir_net::{ErrorCode, PartitionHealth, PartitionState};
use weir_replication::PartitionId;

/// Why one operation (or one partition of it) failed: a protocol error code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A topic's name, shared rather than copied per request.
pub type TopicName = Arc<str>;

/// Record batches for one partition, back to back, as the producer sent them.
#[derive(Debug, Clone)]
pub struct ProducePartition {
    pub topic: TopicName,
    pub partition: PartitionId,
    pub batches: Bytes,
    /// Whether the batches may be Kafka batches kept as sent (Weir's `PayloadFormat::Kafka`):
    /// only the Kafka front end, which walked their records, sets it. Other batches must have
    /// Weir's columns, and are refused otherwise.
    pub kafka_payloads: bool,
    /// Which transaction batches the write may hold (see [`TxnWrite`]).
    pub txn: TxnWrite,
}

/// Which batches of a transaction a produce may hold: none from a client not in one (a native
/// client, a Kafka producer without a transactional id), data batches from a Kafka producer
/// whose transaction the coordinator vouched for, markers only from the coordinator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TxnWrite {
    #[default]
    None,
    Data,
    Markers,
}

/// What kinds of batches a write may hold: Kafka batches kept as sent, transaction batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepts {
    pub kafka_payloads: bool,
    pub txn: TxnWrite,
}

/// Where a produce to one partition landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub base_offset: u64,
    pub log_start: u64,
}

/// A read of one partition from `offset`, of at most `max_bytes` (at least one batch).
#[derive(Debug, Clone)]
pub struct FetchPartition {
    pub topic: TopicName,
    pub partition: PartitionId,
    pub offset: u64,
    pub max_bytes: usize,
    /// Read committed (Kafka's isolation level 1): only below the last stable offset, with the
    /// aborted transactions in what is read.
    pub read_committed: bool,
}

/// What a fetch read from one partition: whole batches, empty when there was nothing new.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    pub high_watermark: u64,
    pub log_start: u64,
    pub batches: Bytes,
    /// The high watermark, or below it the first offset of the oldest open transaction.
    pub last_stable: u64,
    /// For a read-committed fetch: the aborted transactions with records in what it read.
    pub aborted: Vec<weir_log::transactions::AbortedTxn>,
}

/// The bounds of one partition, for describing a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub log_start: u64,
    pub high_watermark: u64,
    /// One past the last record in the log, visible or not.
    pub log_end: u64,
    /// The leader epoch of the partition's state.
    pub leader_epoch: u32,
    /// Bytes of batches in its segments, as the log counts them (no file is read).
    pub size_bytes: u64,
}

/// What describing a topic tells of one partition, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    /// `None` when its owner does not serve it (it is offline, or being opened).
    pub bounds: Option<Bounds>,
    /// Online or offline (and why), and the quarantined ranges, oldest first (none for a
    /// partition not served). The protocol's type: what a client is told is what the owner
    /// says, field for field.
    pub health: PartitionHealth,
}

impl PartitionStatus {
    /// A partition its owner does not serve, for `cause`.
    pub fn offline(cause: String, retry_in_ms: Option<u64>) -> Self {
        let health =
            PartitionHealth { state: PartitionState::Offline { cause, retry_in_ms }, damaged: Vec::new() };
        Self { bounds: None, health }
    }
}

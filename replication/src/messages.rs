//! What replicas say to each other: a follower's fetch and the leader's answer (Kafka's Fetch
//! with KIP-279's diverging epoch, KIP-320's epoch fencing).
//!
//! The records themselves are not here: an answer of [`FetchBody::Records`] tells the leader's
//! I/O layer to read the log from `fetch_offset` and send what it reads alongside, the same
//! bytes that are on disk. The state machines only ever see offsets and epochs.

use crate::ids::{NodeId, PartitionId};

/// A follower's fetch: where its log ends and what it has made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    pub partition: PartitionId,
    pub replica: NodeId,
    /// Matches the answer to the fetch; a later fetch makes earlier answers stale.
    pub request_id: u64,
    /// The leader epoch the follower follows: the leader refuses a fetch from another epoch.
    pub leader_epoch: u32,
    /// The follower's log end: the next offset it wants.
    pub fetch_offset: u64,
    /// The follower's log start: equal to `fetch_offset` when its log is empty, and then there
    /// is nothing to check against the leader's (retention may have emptied it).
    pub log_start: u64,
    /// The epoch of the last batch in the follower's log; `None` for an empty log.
    pub last_fetched_epoch: Option<u32>,
    /// Every offset below this is durable on the follower. Only this counts towards the high
    /// watermark: an acknowledged record survives a crash of every replica at once.
    pub durable_offset: u64,
}

/// The leader's answer to a [`FetchRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchAnswer {
    pub partition: PartitionId,
    pub request_id: u64,
    /// The epoch of the answering replica.
    pub leader_epoch: u32,
    pub high_watermark: u64,
    pub log_start: u64,
    pub body: FetchBody,
}

/// What a fetch got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchBody {
    /// The logs agree up to `fetch_offset`: batches from there follow (perhaps none).
    Records { fetch_offset: u64 },
    /// The follower's last epoch ends earlier on the leader (KIP-279): the leader's largest
    /// epoch at or below the one asked, and where it ends. `epoch: None` when the leader knows
    /// no epoch that old (its log start moved past it): the follower starts over at
    /// `end_offset`, the leader's log start.
    Diverging { epoch: Option<u32>, end_offset: u64 },
    /// Refused; nothing was read.
    Refused(FetchRefusal),
}

/// Why a leader refused a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchRefusal {
    /// The replica asked does not lead this partition (now).
    NotLeader,
    /// The follower's epoch is older than the leader's: it must learn the new state first.
    FencedLeaderEpoch,
    /// The follower's epoch is newer than the leader's: the leader has not learned it yet.
    UnknownLeaderEpoch,
    /// The fetch offset lies outside the leader's log.
    OffsetOutOfRange { log_start: u64, log_end: u64 },
    /// The follower is not a replica of this partition.
    UnknownReplica,
    /// The leader has not yet recorded its epoch in its log: log operations from before its
    /// election may still be changing the log. Retriable.
    LeaderNotReady,
}

/// The acknowledgement a producer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Once the leader's copy is durable.
    Leader,
    /// Once the high watermark passes the batch: durable on every member of the ISR, which
    /// has at least `min_insync_replicas` members.
    All,
}

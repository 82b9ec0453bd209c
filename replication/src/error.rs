//! Errors of the replication state machines: typed, so a front end maps each to a protocol
//! error code and a caller knows whether to retry, refresh its metadata or give up.

use crate::ids::{NodeId, PartitionId};

/// Why the controller refused a request. Nothing changed when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    #[error("unknown partition {partition:?}")]
    UnknownPartition { partition: PartitionId },
    #[error("partition {partition:?} exists already")]
    PartitionExists { partition: PartitionId },
    #[error("unknown node {node:?}")]
    UnknownNode { node: NodeId },
    #[error("invalid replica assignment: {reason}")]
    InvalidAssignment { reason: &'static str },
    #[error("no replica of partition {partition:?} is alive")]
    NoLiveReplica { partition: PartitionId },
    /// A heartbeat from an incarnation older than one already seen: a delayed message.
    #[error("stale incarnation {requested}: current {current}")]
    StaleIncarnation { current: u64, requested: u64 },
    /// The proposer leads an older (or a future) leader epoch: it was deposed, or restarted.
    #[error("fenced leader epoch {requested}: current {current}")]
    FencedLeaderEpoch { current: u32, requested: u32 },
    /// The proposal was made against a partition state that has changed since.
    #[error("stale partition epoch {requested}: current {current}")]
    StalePartitionEpoch { current: u32, requested: u32 },
    #[error("node {requested:?} is not the leader (the leader is {leader:?})")]
    NotLeader { leader: Option<NodeId>, requested: NodeId },
    #[error("invalid ISR: {reason}")]
    InvalidIsr { reason: &'static str },
    /// A fenced node may not join the ISR: it would count towards the high watermark unheard.
    #[error("node {node:?} is fenced and may not join the ISR")]
    IneligibleReplica { node: NodeId },
}

/// Why a replica refused or failed a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// This replica does not lead the partition (now): the client refreshes its metadata.
    #[error("not the leader (leader: {leader:?}, epoch {leader_epoch})")]
    NotLeader { leader: Option<NodeId>, leader_epoch: u32 },
    /// acks=all with fewer in-sync replicas than required; nothing was appended.
    #[error("{in_sync} replicas in sync, {required} required")]
    NotEnoughReplicas { in_sync: usize, required: usize },
    /// The batch was appended but the replica stopped leading before it was committed: it may
    /// or may not survive. The client retries (idempotence makes that safe).
    #[error("leadership moved before the batch was committed")]
    LeadershipLost,
    /// The log refused the append or could not make it durable.
    #[error("the log failed the append: {reason}")]
    Storage { reason: &'static str },
}

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

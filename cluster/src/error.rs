//! Errors of the control plane, typed so a front end maps each to a protocol error code.

use weir_replication::{NodeId, PartitionId};

/// Why a metadata command was refused when applied. Nothing changed when one is returned: every
/// node applies the same log and refuses the same commands, so the metadata stays the same on
/// all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    #[error("topic {name:?} exists already")]
    TopicExists { name: String },
    #[error("unknown topic {name:?}")]
    UnknownTopic { name: String },
    #[error("unknown partition {partition:?}")]
    UnknownPartition { partition: PartitionId },
    #[error("unknown node {node:?}")]
    UnknownNode { node: NodeId },
    #[error("invalid topic {name:?}: {reason}")]
    InvalidTopic { name: String, reason: String },
    /// A partition state that would take an epoch back: a proposal from a deposed controller.
    #[error("stale state for partition {partition:?}: epoch {requested}, current {current}")]
    StalePartitionEpoch { partition: PartitionId, current: u32, requested: u32 },
}

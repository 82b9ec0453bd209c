//! Errors of the control plane, typed so a front end maps each to a protocol error code.

use weir_replication::{ControllerError, NodeId, PartitionId};

/// Why a metadata command was refused when applied. Nothing changed when one is returned: every
/// node applies the same log and refuses the same commands, so the metadata stays the same on
/// all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
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
    /// A topic with more partitions than `topic_partitions_max`.
    #[error("topic {name:?} with {requested} partitions, above the limit of {max}")]
    TooManyPartitions { name: String, requested: u32, max: u32 },
    /// A command larger than a log entry may be (see `rpc::COMMAND_BYTES_MAX`).
    #[error("a metadata command of {bytes} bytes, above the limit of {max}")]
    CommandTooLarge { bytes: usize, max: usize },
    /// A topic name longer than `topic_name_bytes_max`.
    #[error("topic name of {bytes} bytes, above the limit of {max}")]
    TopicNameTooLong { bytes: usize, max: usize },
    #[error("invalid topic {name:?}: {reason}")]
    InvalidTopic { name: String, reason: String },
    /// A node start older than one already recorded: a delayed proposal.
    #[error("stale incarnation {requested} of node {node:?}: current {current}")]
    StaleIncarnation { node: NodeId, current: u64, requested: u64 },
    /// A partition state that breaks the controller's invariants (a bug in the proposer).
    #[error("invalid state for partition {partition:?}: {reason}")]
    InvalidState { partition: PartitionId, reason: String },
    /// A partition state that would take an epoch back: a proposal from a deposed controller.
    #[error("stale state for partition {partition:?}: epoch {requested}, current {current}")]
    StalePartitionEpoch { partition: PartitionId, current: u32, requested: u32 },
    /// Producer ids allocated from an older state: a proposal from a deposed controller.
    #[error("stale producer id allocation from {requested}: the next free id is {next}")]
    StaleProducerIds { next: i64, requested: i64 },
    /// Access control bindings past `acl::ACLS_MAX`.
    #[error("{requested} access control bindings, above the limit of {max}")]
    TooManyAcls { requested: usize, max: usize },
}

/// Why a control-plane request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// This node does not run the controller; `leader` does, if known.
    #[error("not the controller (the controller is {leader:?})")]
    NotController { leader: Option<NodeId> },
    /// No controller could be reached, or the request did not complete.
    #[error("control plane unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("replication factor {requested} above the {nodes} registered nodes")]
    ReplicationFactor { requested: u16, nodes: usize },
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// A controller error from a remote controller that has no typed form here.
    #[error("refused by the controller: {reason}")]
    Refused { reason: String },
    /// The Raft log holds a bad record that is not a torn tail, at `offset`: entries after it
    /// may have been acknowledged, so the node refuses to start rather than forget them.
    #[error("corrupt Raft log {path}: a bad record at offset {offset} is followed by more data")]
    CorruptLog { path: std::path::PathBuf, offset: u64 },
    #[error("I/O error on {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("TLS: {reason}")]
    Tls { reason: String },
    /// A frame longer than the limit: refused before it is read.
    #[error("frame of {len} bytes above the {max} byte limit")]
    FrameTooLong { len: u64, max: u64 },
    #[error("RPC: {reason}")]
    Rpc { reason: String },
    /// The peer's certificate does not name the node the request claims to come from.
    #[error("peer certificate does not name node {claimed:?}")]
    WrongPeer { claimed: NodeId },
    /// The sender is not a member of the cluster (not in `peers`).
    #[error("node {node:?} is not a member of the cluster")]
    NotAMember { node: NodeId },
    #[error("invalid configuration: {reason}")]
    Config { reason: String },
    /// The control plane was shut down.
    #[error("the control plane stopped")]
    Stopped,
}

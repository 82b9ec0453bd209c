//! The messages between control planes: Raft's RPCs and the node-to-controller calls, each
//! request in an [`Envelope`] naming its sender (checked against the peer's certificate), and
//! their length-prefixed serde_json framing on a QUIC stream.
//!
//! A frame is `len: u32 LE | payload`; a length above [`FRAME_BYTES_MAX`] is refused with
//! [`ControlError::FrameTooLong`] before anything is read or allocated.

use crate::error::{ControlError, MetaError};
use crate::meta::NodeInfo;
use crate::types::TypeConfig;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use weir_replication::{AlterPartition, ControllerError, NodeId, PartitionId, PartitionState};

/// The largest frame accepted: a snapshot chunk or a batch of log entries fits well below.
pub const FRAME_BYTES_MAX: u64 = 64 << 20;

/// The largest metadata command the controller proposes, serialised; larger ones are split
/// (partition changes) or refused (a topic).
pub const COMMAND_BYTES_MAX: usize = 6 << 20;

/// Log entries per AppendEntries request, at most (openraft's `max_payload_entries`).
pub const APPEND_ENTRIES_MAX: u64 = 4;

// An AppendEntries of the most entries, each of the largest command (twice, for the entry's
// own framing and JSON escaping), fits in a frame: it is never refused and retried forever.
const _: () = assert!(APPEND_ENTRIES_MAX * 2 * COMMAND_BYTES_MAX as u64 <= FRAME_BYTES_MAX);

#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender; the server refuses the request unless the peer's certificate names it.
    pub from: NodeId,
    pub request: Request,
}

#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Control(ControlCall),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Control(Result<ControlReply, WireError>),
    /// The request was not served: its sender is not who the peer's certificate names.
    Refused(WireError),
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopic {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    /// `None`: the smaller of 2 and the replication factor.
    pub min_insync_replicas: Option<u16>,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    #[serde(default)]
    pub cleanup_policy: weir_log::CleanupPolicy,
    /// `None`: each node's `delete_retention_ms`.
    #[serde(default)]
    pub delete_retention_ms: Option<u64>,
}

/// [`AlterPartition`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAlter {
    pub partition: PartitionId,
    pub leader: NodeId,
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    pub isr: Vec<NodeId>,
}

impl From<&AlterPartition> for WireAlter {
    fn from(a: &AlterPartition) -> Self {
        let AlterPartition { partition, leader, leader_epoch, partition_epoch, ref isr } = *a;
        Self { partition, leader, leader_epoch, partition_epoch, isr: isr.clone() }
    }
}

impl From<WireAlter> for AlterPartition {
    fn from(a: WireAlter) -> Self {
        let WireAlter { partition, leader, leader_epoch, partition_epoch, isr } = a;
        Self { partition, leader, leader_epoch, partition_epoch, isr }
    }
}

/// A node-to-controller call. Served only by the controller (the Raft leader); any other node
/// answers [`WireError::NotController`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlCall {
    Heartbeat {
        node: NodeId,
        incarnation: u64,
    },
    AlterPartition(WireAlter),
    CreateTopic(CreateTopic),
    DeleteTopic {
        name: String,
    },
    Register(NodeInfo),
    Status,
    /// A block of `count` producer ids for the calling node.
    AllocateProducerIds {
        count: u32,
    },
    /// Adds access control bindings, checked by the caller.
    CreateAcls(Vec<crate::acl::AclBinding>),
    /// Removes the bindings each filter selects; answered with them, filter by filter.
    DeleteAcls(Vec<crate::acl::AclFilter>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlReply {
    Done,
    Partition(PartitionState),
    Status(ClusterStatus),
    /// Producer ids `[first, first + count)`, committed as handed out.
    ProducerIds {
        first: i64,
        count: u32,
    },
    /// The bindings the filters of a [`ControlCall::DeleteAcls`] removed, committed.
    AclsDeleted(crate::acl::Matched),
}

/// One member of the cluster as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: NodeId,
    pub cluster_addr: String,
    /// Not fenced by the controller: it heartbeats within its session timeout.
    pub up: bool,
    pub is_controller: bool,
    pub voter: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeStatus>,
    pub controller: Option<NodeId>,
}

/// [`ControllerError`] on the wire, so a remote refusal keeps its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireControllerError {
    UnknownPartition {
        partition: PartitionId,
    },
    PartitionExists {
        partition: PartitionId,
    },
    UnknownNode {
        node: NodeId,
    },
    NoLiveReplica {
        partition: PartitionId,
    },
    StaleIncarnation {
        current: u64,
        requested: u64,
    },
    FencedLeaderEpoch {
        current: u32,
        requested: u32,
    },
    StalePartitionEpoch {
        current: u32,
        requested: u32,
    },
    NotLeader {
        leader: Option<NodeId>,
        requested: NodeId,
    },
    IneligibleReplica {
        node: NodeId,
    },
    /// One whose reason is static text: it travels as text.
    Other {
        reason: String,
    },
}

/// The errors a control call answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    NotController { leader: Option<NodeId> },
    Unavailable { reason: String },
    ReplicationFactor { requested: u16, nodes: usize },
    Meta(MetaError),
    Controller(WireControllerError),
    WrongPeer { claimed: NodeId },
    NotAMember { node: NodeId },
    Other { reason: String },
}

impl From<&ControllerError> for WireControllerError {
    fn from(e: &ControllerError) -> Self {
        use ControllerError as E;
        match *e {
            E::UnknownPartition { partition } => Self::UnknownPartition { partition },
            E::PartitionExists { partition } => Self::PartitionExists { partition },
            E::UnknownNode { node } => Self::UnknownNode { node },
            E::NoLiveReplica { partition } => Self::NoLiveReplica { partition },
            E::StaleIncarnation { current, requested } => Self::StaleIncarnation { current, requested },
            E::FencedLeaderEpoch { current, requested } => Self::FencedLeaderEpoch { current, requested },
            E::StalePartitionEpoch { current, requested } => Self::StalePartitionEpoch { current, requested },
            E::NotLeader { leader, requested } => Self::NotLeader { leader, requested },
            E::IneligibleReplica { node } => Self::IneligibleReplica { node },
            _ => Self::Other { reason: e.to_string() },
        }
    }
}

impl From<WireControllerError> for ControlError {
    fn from(e: WireControllerError) -> Self {
        use WireControllerError as W;
        let typed = match e {
            W::UnknownPartition { partition } => ControllerError::UnknownPartition { partition },
            W::PartitionExists { partition } => ControllerError::PartitionExists { partition },
            W::UnknownNode { node } => ControllerError::UnknownNode { node },
            W::NoLiveReplica { partition } => ControllerError::NoLiveReplica { partition },
            W::StaleIncarnation { current, requested } => {
                ControllerError::StaleIncarnation { current, requested }
            }
            W::FencedLeaderEpoch { current, requested } => {
                ControllerError::FencedLeaderEpoch { current, requested }
            }
            W::StalePartitionEpoch { current, requested } => {
                ControllerError::StalePartitionEpoch { current, requested }
            }
            W::NotLeader { leader, requested } => ControllerError::NotLeader { leader, requested },
            W::IneligibleReplica { node } => ControllerError::IneligibleReplica { node },
            W::Other { reason } => return ControlError::Refused { reason },
        };
        ControlError::Controller(typed)
    }
}

impl From<&ControlError> for WireError {
    fn from(e: &ControlError) -> Self {
        match e {
            ControlError::NotController { leader } => Self::NotController { leader: *leader },
            ControlError::Unavailable { reason } => Self::Unavailable { reason: reason.clone() },
            ControlError::ReplicationFactor { requested, nodes } => {
                Self::ReplicationFactor { requested: *requested, nodes: *nodes }
            }
            ControlError::Meta(m) => Self::Meta(m.clone()),
            ControlError::Controller(c) => Self::Controller(c.into()),
            ControlError::WrongPeer { claimed } => Self::WrongPeer { claimed: *claimed },
            ControlError::NotAMember { node } => Self::NotAMember { node: *node },
            other => Self::Other { reason: other.to_string() },
        }
    }
}

impl From<WireError> for ControlError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotController { leader } => Self::NotController { leader },
            WireError::Unavailable { reason } => Self::Unavailable { reason },
            WireError::ReplicationFactor { requested, nodes } => Self::ReplicationFactor { requested, nodes },
            WireError::Meta(m) => Self::Meta(m),
            WireError::Controller(c) => c.into(),
            WireError::WrongPeer { claimed } => Self::WrongPeer { claimed },
            WireError::NotAMember { node } => Self::NotAMember { node },
            WireError::Other { reason } => Self::Refused { reason },
        }
    }
}

fn rpc_error(reason: impl std::fmt::Display) -> ControlError {
    ControlError::Rpc { reason: reason.to_string() }
}

/// Writes `value` as one frame.
pub async fn write_frame<T: Serialize>(send: &mut quinn::SendStream, value: &T) -> Result<(), ControlError> {
    let payload = serde_json::to_vec(value).map_err(rpc_error)?;
    let len = payload.len() as u64;
    if len > FRAME_BYTES_MAX {
        return Err(ControlError::FrameTooLong { len, max: FRAME_BYTES_MAX });
    }
    send.write_all(&(len as u32).to_le_bytes()).await.map_err(rpc_error)?;
    send.write_all(&payload).await.map_err(rpc_error)
}

/// Reads one frame; refuses one longer than [`FRAME_BYTES_MAX`] before reading it.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    recv: &mut quinn::RecvStream,
) -> Result<T, ControlError> {
    let mut header = [0u8; 4];
    recv.read_exact(&mut header).await.map_err(rpc_error)?;
    let len = u64::from(u32::from_le_bytes(header));
    check_frame_len(len)?;
    // Read as it arrives rather than allocated from the header: a peer that announces 64 MiB
    // and sends nothing holds no memory.
    let mut payload = Vec::new();
    while payload.len() < len as usize {
        let chunk = recv.read_chunk(len as usize - payload.len(), true).await.map_err(rpc_error)?;
        let chunk = chunk.ok_or_else(|| rpc_error("the stream ended inside a frame"))?;
        payload.extend_from_slice(&chunk.bytes);
    }
    serde_json::from_slice(&payload).map_err(rpc_error)
}

/// Refuses a frame length above [`FRAME_BYTES_MAX`].
pub fn check_frame_len(len: u64) -> Result<(), ControlError> {
    if len > FRAME_BYTES_MAX {
        return Err(ControlError::FrameTooLong { len, max: FRAME_BYTES_MAX });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_above_the_limit_are_refused() {
        assert!(check_frame_len(FRAME_BYTES_MAX).is_ok());
        let refused = check_frame_len(FRAME_BYTES_MAX + 1);
        assert!(matches!(refused, Err(ControlError::FrameTooLong { len, .. }) if len == FRAME_BYTES_MAX + 1));
    }

    #[test]
    fn controller_refusals_keep_their_type_on_the_wire() {
        let e = ControllerError::FencedLeaderEpoch { current: 3, requested: 2 };
        let wire = WireError::from(&ControlError::Controller(e.clone()));
        let back: WireError = serde_json::from_slice(&serde_json::to_vec(&wire).unwrap()).unwrap();
        assert!(matches!(ControlError::from(back), ControlError::Controller(c) if c == e));
        let isr = ControlError::Controller(ControllerError::InvalidIsr { reason: "empty" });
        assert!(matches!(ControlError::from(WireError::from(&isr)), ControlError::Refused { .. }));
    }
}

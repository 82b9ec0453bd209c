//! The requests and answers of the classic protocol, as the node's Kafka listener passes them.

use crate::error::GroupError;

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group: String,
    /// "" for a new member.
    pub member_id: String,
    /// Static membership (`group.instance.id`).
    pub instance_id: Option<String>,
    /// "consumer" for Kafka consumers; every member of a group must have the same.
    pub protocol_type: String,
    /// The protocols (assignors) the member supports, most preferred first, with its metadata
    /// for each (opaque to the coordinator).
    pub protocols: Vec<(String, Vec<u8>)>,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// JoinGroup v4+: a new member without an instance id is first given its id
    /// (`MemberIdRequired`) and joins again with it.
    pub require_known_member_id: bool,
    pub client_id: String,
    pub client_host: String,
}

/// One member as the leader's JoinGroup answer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    pub metadata: Vec<u8>,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    /// -1 with an error.
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's member id ("" with an error).
    pub leader: String,
    /// The member's id: the one it is given, with `MemberIdRequired` or a new member.
    pub member_id: String,
    /// Every member, for the leader; empty for the others.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub(crate) fn error(member_id: &str, error: GroupError) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request; only the leader's carries assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group: String,
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// SyncGroup v5+: checked against the group's when given.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// (member id, assignment bytes).
    pub assignments: Vec<(String, Vec<u8>)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The member's assignment (empty with an error, or when the leader named it not).
    pub assignment: Vec<u8>,
}

impl SyncResponse {
    pub(crate) fn error(error: GroupError) -> Self {
        SyncResponse { error: Some(error), protocol_type: None, protocol_name: None, assignment: Vec::new() }
    }
}

/// An answer to a request the coordinator held, with the token the node gave with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassicAnswer {
    Join(JoinResponse),
    Sync(SyncResponse),
}

//! Consumer-group messages, api keys 11 to 17: finding a group's coordinator, the members'
//! heartbeat, committed offsets, and the admin's list, describe and delete.
//!
//! The heartbeat is the whole membership protocol, as Kafka's KIP-848: a member sends its
//! subscription and the partitions it owns; the coordinator answers with the partitions it
//! should own now, computed on the coordinator. A partition that moves is first taken out of
//! its old owner's answer and handed to its new owner only once the old one reports it no
//! longer owns it.
//!
//! Layouts (little-endian, strings as `u16` length and UTF-8, lists as `u32` count then items,
//! an option as a `u8` flag then the value, an `i32` as its `u32` bits):
//! - a topic's partitions: topic, `u32` count, `u32` partitions;
//! - Heartbeat: group, member id, option instance id, `i32` member epoch, option list of topics,
//!   option list of owned topic partitions, `u32` session timeout, `u32` rebalance timeout,
//!   option assignor; its answer: error, message, member id, `i32` member epoch, `u32` heartbeat
//!   interval, option list of assigned topic partitions.

use crate::error::{DecodeError, EncodeError, ErrorCode};
use crate::wire::{Reader, Writer};

/// Partitions of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicAssignment {
    pub topic: String,
    pub partitions: Vec<u32>,
}

/// A member's heartbeat; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupHeartbeat {
    pub group: String,
    /// Empty to join: the coordinator gives the member its id.
    pub member_id: String,
    /// Static membership: a member that restarts under the same id within its session takes
    /// its assignment back without a rebalance.
    pub instance_id: Option<String>,
    /// 0 to join, -1 to leave, -2 for a static member to leave for a while; otherwise the
    /// member's current epoch.
    pub member_epoch: i32,
    /// The subscription: when joining, and when it changed.
    pub topics: Option<Vec<String>>,
    /// What the member owns now, when it changed since its last heartbeat.
    pub owned: Option<Vec<TopicAssignment>>,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// `range`, `roundrobin` or `sticky`; the first member's choice is the group's.
    pub assignor: Option<String>,
}

/// An offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitEntry {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub metadata: String,
}

/// A committed offset, `None` when the group has none for the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffsetInfo {
    pub topic: String,
    pub partition: u32,
    pub offset: Option<u64>,
    pub metadata: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    /// `empty`, `assigning`, `stable` or `dead`.
    pub state: String,
    pub members: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub member_epoch: i32,
    pub topics: Vec<String>,
    /// What the member was last told to own.
    pub assignment: Vec<TopicAssignment>,
    /// What it will own once the partitions moving to it are released.
    pub target: Vec<TopicAssignment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub group: String,
    pub state: String,
    pub group_epoch: i32,
    pub assignor: String,
    pub members: Vec<MemberInfo>,
}

/// A consumer-group request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRequest {
    /// Where the group's coordinator is.
    FindCoordinator {
        group: String,
    },
    Heartbeat(GroupHeartbeat),
    /// Offsets to commit: by a member in its current epoch, or by an admin (member id empty,
    /// epoch -1) while the group has no members.
    OffsetCommit {
        group: String,
        member_id: String,
        member_epoch: i32,
        offsets: Vec<OffsetCommitEntry>,
    },
    /// Committed offsets of these partitions, or of all the group has when empty.
    OffsetFetch {
        group: String,
        partitions: Vec<(String, u32)>,
    },
    ListGroups,
    DescribeGroup {
        group: String,
    },
    /// Deletes a group without members, with its offsets.
    DeleteGroup {
        group: String,
    },
}

/// The answer to a [`GroupRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupResponse {
    /// The coordinator's node and the address of the shard that serves the group.
    FindCoordinator {
        error: ErrorCode,
        message: String,
        node_id: u32,
        host: String,
        port: u16,
    },
    Heartbeat {
        error: ErrorCode,
        message: String,
        member_id: String,
        member_epoch: i32,
        heartbeat_interval_ms: u32,
        /// The partitions the member should own now; `None` when unchanged.
        assignment: Option<Vec<TopicAssignment>>,
    },
    OffsetCommit {
        error: ErrorCode,
        message: String,
    },
    OffsetFetch {
        error: ErrorCode,
        message: String,
        offsets: Vec<CommittedOffsetInfo>,
    },
    ListGroups {
        error: ErrorCode,
        message: String,
        groups: Vec<GroupListing>,
    },
    DescribeGroup {
        error: ErrorCode,
        message: String,
        group: Option<GroupInfo>,
    },
    DeleteGroup {
        error: ErrorCode,
        message: String,
    },
}

/// The api keys of the group messages.
pub const FIND_COORDINATOR: u16 = 11;
pub const GROUP_HEARTBEAT: u16 = 12;
pub const OFFSET_COMMIT: u16 = 13;
pub const OFFSET_FETCH: u16 = 14;
pub const LIST_GROUPS: u16 = 15;
pub const DESCRIBE_GROUP: u16 = 16;
pub const DELETE_GROUP: u16 = 17;

impl GroupRequest {
    pub fn api_key(&self) -> u16 {
        match self {
            GroupRequest::FindCoordinator { .. } => FIND_COORDINATOR,
            GroupRequest::Heartbeat(_) => GROUP_HEARTBEAT,
            GroupRequest::OffsetCommit { .. } => OFFSET_COMMIT,
            GroupRequest::OffsetFetch { .. } => OFFSET_FETCH,
            GroupRequest::ListGroups => LIST_GROUPS,
            GroupRequest::DescribeGroup { .. } => DESCRIBE_GROUP,
            GroupRequest::DeleteGroup { .. } => DELETE_GROUP,
        }
    }

    /// The group the request is about, if one: it goes to that group's coordinator.
    pub fn group(&self) -> Option<&str> {
        match self {
            GroupRequest::FindCoordinator { group }
            | GroupRequest::OffsetCommit { group, .. }
            | GroupRequest::OffsetFetch { group, .. }
            | GroupRequest::DescribeGroup { group }
            | GroupRequest::DeleteGroup { group } => Some(group),
            GroupRequest::Heartbeat(h) => Some(&h.group),
            GroupRequest::ListGroups => None,
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        match self {
            GroupRequest::FindCoordinator { group }
            | GroupRequest::DescribeGroup { group }
            | GroupRequest::DeleteGroup { group } => {
                w.str("group", group)?;
            }
            GroupRequest::Heartbeat(h) => encode_heartbeat(w, h)?,
            GroupRequest::OffsetCommit { group, member_id, member_epoch, offsets } => {
                w.str("group", group)?.str("member id", member_id)?.u32(*member_epoch as u32);
                w.u32(crate::api::count("offsets", offsets.len())?);
                for o in offsets {
                    w.str("topic", &o.topic)?.u32(o.partition).u64(o.offset).str("metadata", &o.metadata)?;
                }
            }
            GroupRequest::OffsetFetch { group, partitions } => {
                w.str("group", group)?.u32(crate::api::count("partitions", partitions.len())?);
                for (topic, partition) in partitions {
                    w.str("topic", topic)?.u32(*partition);
                }
            }
            GroupRequest::ListGroups => {}
        }
        Ok(())
    }

    pub(crate) fn decode(api_key: u16, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match api_key {
            FIND_COORDINATOR => GroupRequest::FindCoordinator { group: r.str()? },
            GROUP_HEARTBEAT => GroupRequest::Heartbeat(decode_heartbeat(r)?),
            OFFSET_COMMIT => {
                let (group, member_id, member_epoch) = (r.str()?, r.str()?, r.u32()? as i32);
                let n = r.count(2 + 4 + 8 + 2)?;
                let offsets = (0..n)
                    .map(|_| {
                        Ok(OffsetCommitEntry {
                            topic: r.str()?,
                            partition: r.u32()?,
                            offset: r.u64()?,
                            metadata: r.str()?,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?;
                GroupRequest::OffsetCommit { group, member_id, member_epoch, offsets }
            }
            OFFSET_FETCH => {
                let group = r.str()?;
                let n = r.count(2 + 4)?;
                let partitions =
                    (0..n).map(|_| Ok((r.str()?, r.u32()?))).collect::<Result<_, DecodeError>>()?;
                GroupRequest::OffsetFetch { group, partitions }
            }
            LIST_GROUPS => GroupRequest::ListGroups,
            DESCRIBE_GROUP => GroupRequest::DescribeGroup { group: r.str()? },
            DELETE_GROUP => GroupRequest::DeleteGroup { group: r.str()? },
            api_key => return Err(DecodeError::UnknownApi { api_key }),
        })
    }
}

impl GroupResponse {
    pub fn api_key(&self) -> u16 {
        match self {
            GroupResponse::FindCoordinator { .. } => FIND_COORDINATOR,
            GroupResponse::Heartbeat { .. } => GROUP_HEARTBEAT,
            GroupResponse::OffsetCommit { .. } => OFFSET_COMMIT,
            GroupResponse::OffsetFetch { .. } => OFFSET_FETCH,
            GroupResponse::ListGroups { .. } => LIST_GROUPS,
            GroupResponse::DescribeGroup { .. } => DESCRIBE_GROUP,
            GroupResponse::DeleteGroup { .. } => DELETE_GROUP,
        }
    }

    /// The answer to a request of `api_key` that failed as a whole with `error`.
    pub fn failed(api_key: u16, error: ErrorCode, message: String) -> Self {
        match api_key {
            FIND_COORDINATOR => {
                GroupResponse::FindCoordinator { error, message, node_id: 0, host: String::new(), port: 0 }
            }
            GROUP_HEARTBEAT => GroupResponse::Heartbeat {
                error,
                message,
                member_id: String::new(),
                member_epoch: 0,
                heartbeat_interval_ms: 0,
                assignment: None,
            },
            OFFSET_COMMIT => GroupResponse::OffsetCommit { error, message },
            OFFSET_FETCH => GroupResponse::OffsetFetch { error, message, offsets: vec![] },
            LIST_GROUPS => GroupResponse::ListGroups { error, message, groups: vec![] },
            DESCRIBE_GROUP => GroupResponse::DescribeGroup { error, message, group: None },
            _ => GroupResponse::DeleteGroup { error, message },
        }
    }

    /// The error code and message every answer starts with.
    pub fn error(&self) -> (ErrorCode, &str) {
        match self {
            GroupResponse::FindCoordinator { error, message, .. }
            | GroupResponse::Heartbeat { error, message, .. }
            | GroupResponse::OffsetCommit { error, message }
            | GroupResponse::OffsetFetch { error, message, .. }
            | GroupResponse::ListGroups { error, message, .. }
            | GroupResponse::DescribeGroup { error, message, .. }
            | GroupResponse::DeleteGroup { error, message } => (*error, message),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        let (error, message) = self.error();
        w.u16(error as u16).text(message);
        match self {
            GroupResponse::FindCoordinator { node_id, host, port, .. } => {
                w.u32(*node_id).str("host", host)?.u16(*port);
            }
            GroupResponse::Heartbeat {
                member_id, member_epoch, heartbeat_interval_ms, assignment, ..
            } => {
                w.str("member id", member_id)?.u32(*member_epoch as u32).u32(*heartbeat_interval_ms);
                encode_opt(w, assignment.as_deref(), encode_assignments)?;
            }
            GroupResponse::OffsetCommit { .. } | GroupResponse::DeleteGroup { .. } => {}
            GroupResponse::OffsetFetch { offsets, .. } => {
                w.u32(crate::api::count("offsets", offsets.len())?);
                for o in offsets {
                    w.str("topic", &o.topic)?.u32(o.partition).u64(crate::api::opt_to_wire(o.offset));
                    w.str("metadata", &o.metadata)?;
                }
            }
            GroupResponse::ListGroups { groups, .. } => {
                w.u32(crate::api::count("groups", groups.len())?);
                for g in groups {
                    w.str("group", &g.group)?.str("state", &g.state)?.u32(g.members);
                }
            }
            GroupResponse::DescribeGroup { group, .. } => encode_opt(w, group.as_ref(), encode_group_info)?,
        }
        Ok(())
    }

    pub(crate) fn decode(api_key: u16, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (error, message) = (ErrorCode::from_u16(r.u16()?), r.str()?);
        Ok(match api_key {
            FIND_COORDINATOR => GroupResponse::FindCoordinator {
                error,
                message,
                node_id: r.u32()?,
                host: r.str()?,
                port: r.u16()?,
            },
            GROUP_HEARTBEAT => GroupResponse::Heartbeat {
                error,
                message,
                member_id: r.str()?,
                member_epoch: r.u32()? as i32,
                heartbeat_interval_ms: r.u32()?,
                assignment: decode_opt(r, decode_assignments)?,
            },
            OFFSET_COMMIT => GroupResponse::OffsetCommit { error, message },
            OFFSET_FETCH => {
                let n = r.count(2 + 4 + 8 + 2)?;
                let offsets = (0..n)
                    .map(|_| {
                        Ok(CommittedOffsetInfo {
                            topic: r.str()?,
                            partition: r.u32()?,
                            offset: crate::api::opt_from_wire(r.u64()?),
                            metadata: r.str()?,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?;
                GroupResponse::OffsetFetch { error, message, offsets }
            }
            LIST_GROUPS => {
                let n = r.count(2 + 2 + 4)?;
                let groups = (0..n)
                    .map(|_| Ok(GroupListing { group: r.str()?, state: r.str()?, members: r.u32()? }))
                    .collect::<Result<_, DecodeError>>()?;
                GroupResponse::ListGroups { error, message, groups }
            }
            DESCRIBE_GROUP => {
                GroupResponse::DescribeGroup { error, message, group: decode_opt(r, decode_group_info)? }
            }
            DELETE_GROUP => GroupResponse::DeleteGroup { error, message },
            api_key => return Err(DecodeError::UnknownApi { api_key }),
        })
    }
}

fn encode_heartbeat(w: &mut Writer, h: &GroupHeartbeat) -> Result<(), EncodeError> {
    w.str("group", &h.group)?.str("member id", &h.member_id)?;
    encode_opt(w, h.instance_id.as_deref(), |w, s| w.str("instance id", s).map(|_| ()))?;
    w.u32(h.member_epoch as u32);
    encode_opt(w, h.topics.as_deref(), encode_strings)?;
    encode_opt(w, h.owned.as_deref(), encode_assignments)?;
    w.u32(h.session_timeout_ms).u32(h.rebalance_timeout_ms);
    encode_opt(w, h.assignor.as_deref(), |w, s| w.str("assignor", s).map(|_| ()))
}

fn decode_heartbeat(r: &mut Reader<'_>) -> Result<GroupHeartbeat, DecodeError> {
    Ok(GroupHeartbeat {
        group: r.str()?,
        member_id: r.str()?,
        instance_id: decode_opt(r, |r| r.str())?,
        member_epoch: r.u32()? as i32,
        topics: decode_opt(r, decode_strings)?,
        owned: decode_opt(r, decode_assignments)?,
        session_timeout_ms: r.u32()?,
        rebalance_timeout_ms: r.u32()?,
        assignor: decode_opt(r, |r| r.str())?,
    })
}

fn encode_group_info(w: &mut Writer, g: &GroupInfo) -> Result<(), EncodeError> {
    w.str("group", &g.group)?
        .str("state", &g.state)?
        .u32(g.group_epoch as u32)
        .str("assignor", &g.assignor)?;
    w.u32(crate::api::count("members", g.members.len())?);
    for m in &g.members {
        w.str("member id", &m.member_id)?;
        encode_opt(w, m.instance_id.as_deref(), |w, s| w.str("instance id", s).map(|_| ()))?;
        w.u32(m.member_epoch as u32);
        encode_strings(w, &m.topics)?;
        encode_assignments(w, &m.assignment)?;
        encode_assignments(w, &m.target)?;
    }
    Ok(())
}

fn decode_group_info(r: &mut Reader<'_>) -> Result<GroupInfo, DecodeError> {
    let (group, state, group_epoch, assignor) = (r.str()?, r.str()?, r.u32()? as i32, r.str()?);
    let n = r.count(2 + 1 + 4 + 4 + 4 + 4)?;
    let members = (0..n)
        .map(|_| {
            Ok(MemberInfo {
                member_id: r.str()?,
                instance_id: decode_opt(r, |r| r.str())?,
                member_epoch: r.u32()? as i32,
                topics: decode_strings(r)?,
                assignment: decode_assignments(r)?,
                target: decode_assignments(r)?,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(GroupInfo { group, state, group_epoch, assignor, members })
}

fn encode_opt<T: ?Sized>(
    w: &mut Writer,
    v: Option<&T>,
    f: impl FnOnce(&mut Writer, &T) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    match v {
        None => {
            w.u8(0);
            Ok(())
        }
        Some(v) => {
            w.u8(1);
            f(w, v)
        }
    }
}

fn decode_opt<'a, T>(
    r: &mut Reader<'a>,
    f: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => f(r).map(Some),
        v => Err(DecodeError::BadValue { field: "option flag", value: v.into() }),
    }
}

fn encode_strings(w: &mut Writer, v: &[String]) -> Result<(), EncodeError> {
    w.u32(crate::api::count("topics", v.len())?);
    for s in v {
        w.str("topic", s)?;
    }
    Ok(())
}

fn decode_strings(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    let n = r.count(2)?;
    (0..n).map(|_| r.str()).collect()
}

fn encode_assignments(w: &mut Writer, v: &[TopicAssignment]) -> Result<(), EncodeError> {
    w.u32(crate::api::count("topics", v.len())?);
    for t in v {
        w.str("topic", &t.topic)?.u32(crate::api::count("partitions", t.partitions.len())?);
        for p in &t.partitions {
            w.u32(*p);
        }
    }
    Ok(())
}

fn decode_assignments(r: &mut Reader<'_>) -> Result<Vec<TopicAssignment>, DecodeError> {
    let n = r.count(2 + 4)?;
    (0..n)
        .map(|_| {
            let topic = r.str()?;
            let k = r.count(4)?;
            let partitions = (0..k).map(|_| r.u32()).collect::<Result<_, _>>()?;
            Ok(TopicAssignment { topic, partitions })
        })
        .collect()
}

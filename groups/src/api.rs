//! The request, response and description types the node exchanges with the coordinator.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::assignor::Assignor;

/// Partitions of one topic; `partitions` sorted and unique.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<u32>,
}

/// The partition counts of topics, as the node knows them when it calls in.
pub trait TopicSource {
    /// `None`: no such topic; members subscribed to it are assigned nothing of it.
    fn partitions(&self, topic: &str) -> Option<u32>;
}

impl TopicSource for BTreeMap<String, u32> {
    fn partitions(&self, topic: &str) -> Option<u32> {
        self.get(topic).copied()
    }
}

/// The one request of the protocol: join, heartbeat, report ownership, leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// "" to join as a new member: the coordinator makes an id.
    pub member_id: String,
    /// Static membership (`group.instance.id`).
    pub instance_id: Option<String>,
    /// 0: join; -1: leave; -2: a static member leaves for a while; else the member's epoch.
    pub member_epoch: i32,
    /// The subscription: required when joining, `Some` when it changed, `None` = unchanged.
    pub topics: Option<Vec<String>>,
    /// What the member owns now (after revoking); `None` = unchanged since its last heartbeat.
    /// Ignored on a join: a joining member owns nothing.
    pub owned: Option<Vec<TopicPartitions>>,
    pub session_timeout_ms: u32,
    /// A member that does not revoke what it must within this is removed.
    pub rebalance_timeout_ms: u32,
    /// The group's assignor: taken from the member that joins an empty group, ignored otherwise.
    pub assignor: Option<Assignor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    /// How often the member should heartbeat: a third of its session, within 100..=5000 ms.
    pub heartbeat_interval_ms: u32,
    /// The partitions the member should own now; `None` if unchanged since the last answer.
    pub assignment: Option<Vec<TopicPartitions>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: u64,
    pub metadata: String,
    /// The leader epoch of the last record consumed, as a Kafka consumer commits it.
    #[serde(default)]
    pub leader_epoch: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    /// No members (the group holds offsets only).
    Empty,
    /// Members are still reconciling to the target assignment.
    Assigning,
    Stable,
    /// A classic group waits for its members to join again (Kafka's `PreparingRebalance`).
    PreparingRebalance,
    /// A classic group waits for its leader's assignment (Kafka's `CompletingRebalance`).
    CompletingRebalance,
    /// Not produced by the coordinator (an unknown or deleted group is `None` in `describe`):
    /// for the node, e.g. for a group whose coordinator is unloading.
    Dead,
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupState::Empty => "empty",
            GroupState::Assigning => "assigning",
            GroupState::Stable => "stable",
            GroupState::Dead => "dead",
            GroupState::PreparingRebalance => "preparing-rebalance",
            GroupState::CompletingRebalance => "completing-rebalance",
        })
    }
}

impl GroupState {
    /// The state as Kafka's DescribeGroups and ListGroups name it. A native group that is
    /// still reconciling is `Assigning` (as KIP-848 names it).
    pub fn kafka_name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
        }
    }
}

/// Which protocol a group's members speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupKind {
    /// The heartbeat protocol (KIP-848); also a group with offsets only that was never classic.
    Native,
    /// Kafka's classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup).
    Classic,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupListing {
    pub group: String,
    pub state: GroupState,
    pub members: u32,
    /// "consumer" for a native group; a classic group's protocol type ("" if it never had one).
    pub protocol_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub member_epoch: i32,
    pub topics: Vec<String>,
    /// What the member was last told to own.
    pub assignment: Vec<TopicPartitions>,
    /// Partitions taken from the member that it has not yet reported released; nobody else is
    /// given them meanwhile.
    pub revoking: Vec<TopicPartitions>,
    /// What the member will own once the group has reconciled.
    pub target: Vec<TopicPartitions>,
    /// Left with epoch -2: its assignment is held for its instance id until its session ends.
    pub departed: bool,
    /// A classic member's client id and host, as it joined ("" for a native member).
    pub client_id: String,
    pub client_host: String,
    /// A classic member's metadata for the group's chosen protocol (empty before a protocol is
    /// chosen, and for a native member).
    pub metadata: Vec<u8>,
    /// A classic member's assignment bytes, as its leader gave them (empty for a native member).
    pub classic_assignment: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    pub group: String,
    pub state: GroupState,
    /// The group epoch of a native group; the generation of a classic one.
    pub group_epoch: i32,
    pub assignor: Assignor,
    pub members: Vec<MemberDescription>,
    pub kind: GroupKind,
    /// "consumer" for a native group; a classic group's protocol type ("" if none yet).
    pub protocol_type: String,
    /// A classic group's chosen protocol ("" when none is chosen); a native group's assignor.
    pub protocol_name: String,
}

/// A record to persist: key and value bytes (value `None` = tombstone, the key's state is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// The most members of one group, departed static members included (default 1000).
    pub group_members_max: usize,
    /// The shortest session timeout a member may ask for (default 1000 ms).
    pub session_timeout_ms_min: u32,
    /// The longest session timeout a member may ask for (default 300 s).
    pub session_timeout_ms_max: u32,
    /// How long the first rebalance of an empty classic group waits for more members to join,
    /// as Kafka's `group.initial.rebalance.delay.ms` (default 0: it completes as soon as every
    /// member joined).
    pub classic_initial_rebalance_delay_ms: u32,
    /// The most bytes of protocol metadata one classic JoinGroup may carry, and of assignment
    /// one member may be given (defaults `CLASSIC_METADATA_BYTES_MAX`,
    /// `CLASSIC_ASSIGNMENT_BYTES_MAX`). A member's record holds both: the node lowers them so
    /// that the record fits one of its batches, or a completed generation could never be written.
    pub classic_metadata_bytes_max: usize,
    pub classic_assignment_bytes_max: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            group_members_max: 1000,
            session_timeout_ms_min: 1000,
            session_timeout_ms_max: 300_000,
            classic_initial_rebalance_delay_ms: 0,
            classic_metadata_bytes_max: crate::CLASSIC_METADATA_BYTES_MAX,
            classic_assignment_bytes_max: crate::CLASSIC_ASSIGNMENT_BYTES_MAX,
        }
    }
}

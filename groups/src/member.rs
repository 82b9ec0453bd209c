//! A member of a group: what is persisted of it, and the session state that is not.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::api::MemberDescription;
use crate::assignor::{Assignment, to_list};

/// A member's persisted state: the value of its member record (see `records`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberState {
    pub instance_id: Option<String>,
    pub member_epoch: i32,
    pub topics: BTreeSet<String>,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// What the member was last told to own; a subset of `target`.
    pub assigned: Assignment,
    /// Taken from the member but not yet reported released: still the member's, so nobody else
    /// is given them. Disjoint from `assigned`.
    pub revoking: Assignment,
    pub target: Assignment,
    /// What the member last reported owning (a request's `owned: None` means this again).
    pub owned: Assignment,
    /// Left with epoch -2: held for its instance id until its session ends.
    pub departed: bool,
    /// The epoch before `member_epoch`: a heartbeat in it is one whose answer (the one that
    /// raised the epoch) was lost, and is answered again rather than fenced, as in KIP-848.
    /// Records written before it existed read as 0 (no previous epoch).
    #[serde(default)]
    pub previous_epoch: i32,
}

/// A member: its persisted state and its session, which a replay starts afresh.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub state: MemberState,
    pub last_heartbeat_ms: u64,
    /// When the member is removed if it has not released `revoking` by then.
    pub revoke_deadline_ms: Option<u64>,
    /// Whether the member was answered with its current `assigned`; a replayed member was not,
    /// so its first answer after a failover carries its assignment.
    pub answered: bool,
}

impl Member {
    pub fn new(state: MemberState, now_ms: u64) -> Self {
        let revoke_deadline_ms =
            (!state.revoking.is_empty()).then(|| now_ms + u64::from(state.rebalance_timeout_ms));
        Member { state, last_heartbeat_ms: now_ms, revoke_deadline_ms, answered: false }
    }

    /// Partitions the member may own: told to own, or not yet reported released.
    pub fn held(&self) -> impl Iterator<Item = (&str, u32)> {
        crate::assignor::iter(&self.state.assigned).chain(crate::assignor::iter(&self.state.revoking))
    }

    pub fn session_deadline_ms(&self) -> u64 {
        self.last_heartbeat_ms + u64::from(self.state.session_timeout_ms)
    }

    /// The earliest time at which a tick would remove this member.
    pub fn deadline_ms(&self) -> u64 {
        self.revoke_deadline_ms.map_or(self.session_deadline_ms(), |d| d.min(self.session_deadline_ms()))
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.deadline_ms()
    }

    pub fn describe(&self, member_id: &str) -> MemberDescription {
        let s = &self.state;
        MemberDescription {
            member_id: member_id.to_owned(),
            instance_id: s.instance_id.clone(),
            member_epoch: s.member_epoch,
            topics: s.topics.iter().cloned().collect(),
            assignment: to_list(&s.assigned),
            revoking: to_list(&s.revoking),
            target: to_list(&s.target),
            departed: s.departed,
            client_id: String::new(),
            client_host: String::new(),
            metadata: Vec::new(),
            classic_assignment: Vec::new(),
        }
    }
}

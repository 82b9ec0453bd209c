//! A classic group's state: its members, the rebalance phase, and the transitions between
//! phases that release held joins and syncs.
//!
//! The phases follow Kafka's group coordinator: `Empty` (no members) → `Preparing` (waiting for
//! every member to join again) → `Completing` (a generation is made; waiting for the leader's
//! assignment) → `Stable`. A join, a leave or a removal from `Completing` or `Stable` prepares a
//! new rebalance. Held requests live on their members (`join_token`, `sync_token`), so a member
//! that goes takes its held requests with it, answered.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::classic::api::{ClassicAnswer, JoinResponse, JoinedMember, SyncResponse};
use crate::error::GroupError;
use crate::group::Group;

/// Answers released, with the tokens of the requests they answer.
pub(crate) type Answers = Vec<(u64, ClassicAnswer)>;

/// A classic group's generation and protocol: live in `GroupMeta::classic`, and as last
/// persisted (the last completed generation, see `persist`) in `ClassicGroup::stored`, which is
/// what the group record carries. `leader` and `rebalance` are kept in the stored copy only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClassicMeta {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader of the stored generation; absent in records written before members were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// A stored member went after the generation completed: a reloaded group rebalances.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebalance: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Phase {
    #[default]
    Empty,
    Preparing,
    Completing,
    Stable,
}

/// A classic member; persisted while in the group's stored generation (see `persist`).
#[derive(Debug, Clone)]
pub(crate) struct ClassicMember {
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub protocols: Vec<(String, Vec<u8>)>,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// The last join, sync or heartbeat.
    pub last_seen_ms: u64,
    /// What the leader assigned it in the current generation.
    pub assignment: Vec<u8>,
    /// A join held until the rebalance completes (only while `Preparing`).
    pub join_token: Option<u64>,
    /// A sync held until the leader's (only while `Completing`).
    pub sync_token: Option<u64>,
}

impl ClassicMember {
    pub fn metadata(&self, protocol: &str) -> Vec<u8> {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    /// A session ends without a join, sync or heartbeat within its timeout; a member with a
    /// held request is waiting on the group, and the rebalance deadline covers it instead.
    pub fn session_deadline_ms(&self) -> Option<u64> {
        let held = self.join_token.is_some() || self.sync_token.is_some();
        (!held).then(|| self.last_seen_ms + u64::from(self.session_timeout_ms))
    }
}

#[derive(Debug, Default)]
pub(crate) struct ClassicGroup {
    pub phase: Phase,
    pub leader: Option<String>,
    pub members: BTreeMap<String, ClassicMember>,
    /// Member ids given with `MemberIdRequired`, until the member joins with it or the session
    /// it asked for ends (the deadline).
    pub pending: BTreeMap<String, u64>,
    /// `Preparing`: when members that did not join are removed; `Completing`: when the
    /// rebalance starts over if the leader has not sent the assignment.
    pub deadline_ms: Option<u64>,
    /// A rebalance from `Empty` does not complete before this (the initial delay).
    pub not_before_ms: u64,
    /// The generation, protocol and leader the group record carries; `None` until the group
    /// first completes a generation or becomes empty.
    pub stored: Option<ClassicMeta>,
    /// The members with a classic member record: those of the stored generation still here.
    pub stored_members: BTreeSet<String>,
}

impl Group {
    /// Whether the group has classic members, or member ids given and not yet joined.
    pub fn has_classic(&self) -> bool {
        !self.classic.members.is_empty() || !self.classic.pending.is_empty()
    }

    pub fn generation(&self) -> i32 {
        self.meta.classic.as_ref().map_or(0, |c| c.generation)
    }

    /// The live classic metadata; a change to it is persisted only through `ClassicGroup::stored`.
    pub fn classic_meta_mut(&mut self) -> &mut ClassicMeta {
        self.meta.classic.get_or_insert_with(ClassicMeta::default)
    }

    /// Moves to `Preparing` unless there already; held syncs are answered
    /// `RebalanceInProgress` (their members join again).
    pub fn prepare_rebalance(&mut self, now_ms: u64, initial_delay_ms: u32, out: &mut Answers) {
        let c = &mut self.classic;
        if c.phase == Phase::Preparing {
            return;
        }
        for m in c.members.values_mut() {
            if let Some(token) = m.sync_token.take() {
                // It waited on the group: its session starts again.
                m.last_seen_ms = now_ms;
                out.push((token, ClassicAnswer::Sync(SyncResponse::error(GroupError::RebalanceInProgress))));
            }
        }
        let delay = if c.phase == Phase::Empty { u64::from(initial_delay_ms) } else { 0 };
        let timeout = c.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
        c.not_before_ms = now_ms + delay;
        c.deadline_ms = Some(now_ms + u64::from(timeout).max(delay));
        c.phase = Phase::Preparing;
    }

    /// Completes the rebalance if every member joined again and no given member id is
    /// outstanding (and the initial delay passed).
    pub fn try_complete_join(&mut self, now_ms: u64, out: &mut Answers) {
        let c = &self.classic;
        let all = c.members.values().all(|m| m.join_token.is_some()) && c.pending.is_empty();
        if c.phase == Phase::Preparing && all && now_ms >= c.not_before_ms {
            self.complete_join(now_ms, out);
        }
    }

    /// Ends `Preparing`: members that did not join again go, the generation bumps, a protocol
    /// and a leader are chosen, and every held join is answered.
    pub fn complete_join(&mut self, now_ms: u64, out: &mut Answers) {
        assert!(self.classic.phase == Phase::Preparing, "completing a join outside a rebalance");
        let gone: Vec<String> = self
            .classic
            .members
            .iter()
            .filter(|(_, m)| m.join_token.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.remove_classic_member(&id, GroupError::UnknownMemberId { member_id: id.clone() }, out);
        }
        self.classic.pending.clear();
        if self.classic.members.is_empty() {
            self.become_empty();
            return;
        }
        let c = &mut self.classic;
        let leader = match c.leader.take() {
            Some(l) if c.members.contains_key(&l) => l,
            _ => c.members.keys().next().expect("members remain").clone(),
        };
        let protocol = vote(&c.members, &leader);
        let timeout = c.members.values().map(|m| m.rebalance_timeout_ms).max().expect("members remain");
        c.deadline_ms = Some(now_ms + u64::from(timeout));
        c.phase = Phase::Completing;
        c.leader = Some(leader);
        let meta = self.classic_meta_mut();
        meta.generation += 1;
        meta.protocol_name = Some(protocol);
        let ids: Vec<String> = self.classic.members.keys().cloned().collect();
        for id in ids {
            let m = self.classic.members.get_mut(&id).expect("listed above");
            m.last_seen_ms = now_ms;
            m.assignment.clear();
            let token = m.join_token.take().expect("every member joined");
            out.push((token, ClassicAnswer::Join(self.join_answer(&id))));
        }
    }

    /// The answer to a join of member `id` in the current generation: the leader's lists every
    /// member with its metadata for the chosen protocol.
    pub fn join_answer(&self, id: &str) -> JoinResponse {
        let c = &self.classic;
        let meta = self.meta.classic.as_ref().expect("a classic group has its metadata");
        let protocol = meta.protocol_name.clone().unwrap_or_default();
        let leader = c.leader.clone().unwrap_or_default();
        let members = if leader == id {
            c.members
                .iter()
                .map(|(mid, m)| JoinedMember {
                    member_id: mid.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: None,
            generation_id: meta.generation,
            protocol_type: meta.protocol_type.clone(),
            protocol_name: meta.protocol_name.clone(),
            leader,
            member_id: id.to_owned(),
            members,
        }
    }

    /// Removes a member; its held join and sync are answered with `error`.
    pub fn remove_classic_member(
        &mut self,
        id: &str,
        error: GroupError,
        out: &mut Answers,
    ) -> Option<ClassicMember> {
        let m = self.classic.members.remove(id)?;
        self.unstore_member(id);
        if let Some(token) = m.join_token {
            out.push((token, ClassicAnswer::Join(JoinResponse::error(id, error.clone()))));
        }
        if let Some(token) = m.sync_token {
            out.push((token, ClassicAnswer::Sync(SyncResponse::error(error))));
        }
        if self.classic.leader.as_deref() == Some(id) {
            self.classic.leader = None;
        }
        Some(m)
    }

    /// After members went: the group is empty, or rebalances, or its rebalance may now be
    /// complete.
    pub fn after_removal(&mut self, now_ms: u64, initial_delay_ms: u32, out: &mut Answers) {
        match self.classic.phase {
            _ if self.classic.members.is_empty() => {
                if self.classic.phase != Phase::Empty {
                    self.become_empty();
                }
            }
            Phase::Stable | Phase::Completing => self.prepare_rebalance(now_ms, initial_delay_ms, out),
            Phase::Preparing => self.try_complete_join(now_ms, out),
            Phase::Empty => unreachable!("an empty phase with members"),
        }
    }

    /// No members left: as in Kafka, the generation bumps and no protocol is chosen.
    fn become_empty(&mut self) {
        assert!(self.classic.members.is_empty(), "an empty group with members");
        let c = &mut self.classic;
        c.phase = Phase::Empty;
        c.leader = None;
        c.deadline_ms = None;
        let meta = self.classic_meta_mut();
        meta.generation += 1;
        meta.protocol_name = None;
        self.store_generation();
    }

    /// The classic invariants: phases agree with members, held requests and the leader.
    pub fn check_classic(&self) -> Result<(), String> {
        let c = &self.classic;
        if !c.members.is_empty() && !self.members.is_empty() {
            return Err("classic and native members at once".to_owned());
        }
        if (c.phase == Phase::Empty) != c.members.is_empty() {
            return Err(format!("phase {:?} with {} members", c.phase, c.members.len()));
        }
        if c.phase != Phase::Empty && self.meta.classic.is_none() {
            return Err("classic members without classic metadata".to_owned());
        }
        for (id, m) in &c.members {
            if m.join_token.is_some() && c.phase != Phase::Preparing {
                return Err(format!("{id} holds a join in phase {:?}", c.phase));
            }
            if m.sync_token.is_some() && c.phase != Phase::Completing {
                return Err(format!("{id} holds a sync in phase {:?}", c.phase));
            }
        }
        // While preparing, the old leader stays (it leads again if it joins again) or is gone.
        let leader_ok = match c.phase {
            Phase::Completing | Phase::Stable => c.leader.as_ref().is_some_and(|l| c.members.contains_key(l)),
            Phase::Preparing => c.leader.as_ref().is_none_or(|l| c.members.contains_key(l)),
            Phase::Empty => c.leader.is_none(),
        };
        if !leader_ok {
            return Err(format!("phase {:?} with leader {:?}", c.phase, c.leader));
        }
        if matches!(c.phase, Phase::Preparing | Phase::Completing) != c.deadline_ms.is_some() {
            return Err(format!("phase {:?} with deadline {:?}", c.phase, c.deadline_ms));
        }
        self.check_stored()
    }
}

/// Kafka's vote: among the protocols every member supports, each member votes for the first it
/// lists; the most votes win, a tie going to the leader's preference.
fn vote(members: &BTreeMap<String, ClassicMember>, leader: &str) -> String {
    let supported = |name: &str| members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name));
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in members.values() {
        let choice = m.protocols.iter().find(|(n, _)| supported(n)).expect("members share a protocol");
        *votes.entry(choice.0.as_str()).or_default() += 1;
    }
    let most = votes.values().copied().max().expect("members vote");
    // Every protocol voted for is supported by every member, so the leader lists the winner.
    let winner = members[leader].protocols.iter().find(|(n, _)| votes.get(n.as_str()) == Some(&most));
    winner.expect("the winner is supported by the leader").0.clone()
}

//! A consumer group: its members, its target assignment, its committed offsets, and the index
//! of which member holds each partition that keeps two members from ever holding one at once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::api::{CommittedOffset, GroupDescription, GroupState, TopicSource};
use crate::assignor::{self, Assignment, Assignor, Subscriptions};
use crate::classic::state::{ClassicGroup, ClassicMeta};
use crate::member::Member;

/// A group's persisted metadata: the value of its group record (see `records`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupMeta {
    pub group_epoch: i32,
    pub assignor: Assignor,
    /// The partition counts of the subscribed topics when the target was last computed: a
    /// change means a new target.
    pub partition_counts: BTreeMap<String, u32>,
    /// Present once the group has had classic members; kept, so its generation never goes back.
    /// Records written before it existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classic: Option<ClassicMeta>,
}

/// A committed offset with the time it was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredOffset {
    pub committed: CommittedOffset,
    pub commit_time_ms: u64,
}

/// What changed since the group's records were last emitted.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    pub meta: bool,
    pub members: BTreeSet<String>,
    /// Classic members whose record (or tombstone) is due.
    pub classic_members: BTreeSet<String>,
    pub offsets: BTreeSet<(String, u32)>,
}

#[derive(Debug, Default)]
pub(crate) struct Group {
    pub meta: GroupMeta,
    pub members: BTreeMap<String, Member>,
    pub offsets: BTreeMap<(String, u32), StoredOffset>,
    /// Which member holds each partition (assigned or revoking); derived from `members`.
    pub holders: BTreeMap<(String, u32), String>,
    /// Classic members and the rebalance they are in; empty while native members exist.
    pub classic: ClassicGroup,
    pub dirty: Dirty,
}

impl Group {
    /// Adds a member and indexes what it holds. The coordinator's invariant: no partition is
    /// held by two members, checked here in release builds too.
    pub fn insert_member(&mut self, id: String, member: Member) {
        for (topic, p) in member.held() {
            let prev = self.holders.insert((topic.to_owned(), p), id.clone());
            assert!(prev.is_none_or(|h| h == id), "{topic}/{p} held by two members");
        }
        self.dirty.members.insert(id.clone());
        self.members.insert(id, member);
    }

    /// Removes a member; what it held is free.
    pub fn remove_member(&mut self, id: &str) -> Option<Member> {
        let member = self.members.remove(id)?;
        for (topic, p) in member.held() {
            let prev = self.holders.remove(&(topic.to_owned(), p));
            assert!(prev.as_deref() == Some(id), "{topic}/{p} not indexed to its holder");
        }
        self.dirty.members.insert(id.to_owned());
        Some(member)
    }

    /// Whether a subscribed topic's partition count differs from the one the target was built on.
    pub fn counts_changed(&self, topics: &dyn TopicSource) -> bool {
        self.meta.partition_counts.iter().any(|(t, &n)| topics.partitions(t).unwrap_or(0) != n)
    }

    /// Bumps the group epoch and computes a new target assignment for every member.
    pub fn rebalance(&mut self, topics: &dyn TopicSource) {
        self.meta.group_epoch += 1;
        self.dirty.meta = true;
        let subscriptions: Subscriptions =
            self.members.iter().map(|(id, m)| (id.clone(), m.state.topics.clone())).collect();
        let mut counts = BTreeMap::new();
        for topic in subscriptions.values().flatten() {
            counts.insert(topic.clone(), topics.partitions(topic).unwrap_or(0));
        }
        let current: BTreeMap<String, Assignment> =
            self.members.iter().map(|(id, m)| (id.clone(), m.state.target.clone())).collect();
        let targets = assignor::assign(self.meta.assignor, &subscriptions, &counts, &current);
        for (id, target) in targets {
            let member = self.members.get_mut(&id).expect("the assignor assigns only members");
            if member.state.target != target {
                member.state.target = target;
                self.dirty.members.insert(id);
            }
        }
        self.meta.partition_counts = counts;
    }

    /// Native and classic members.
    pub fn member_count(&self) -> usize {
        self.members.len() + self.classic.members.len()
    }

    pub fn state(&self) -> GroupState {
        if self.kind() == crate::api::GroupKind::Classic {
            return self.classic_state();
        }
        if self.members.is_empty() {
            return GroupState::Empty;
        }
        let settled = self.members.values().all(|m| {
            m.state.member_epoch == self.meta.group_epoch
                && m.state.revoking.is_empty()
                && m.state.assigned == m.state.target
        });
        if settled { GroupState::Stable } else { GroupState::Assigning }
    }

    pub fn describe(&self, group: &str) -> GroupDescription {
        if self.kind() == crate::api::GroupKind::Classic {
            return self.describe_classic(group);
        }
        GroupDescription {
            group: group.to_owned(),
            state: self.state(),
            group_epoch: self.meta.group_epoch,
            assignor: self.meta.assignor,
            members: self.members.iter().map(|(id, m)| m.describe(id)).collect(),
            kind: crate::api::GroupKind::Native,
            protocol_type: self.protocol_type(),
            protocol_name: self.meta.assignor.to_string(),
        }
    }

    /// Checks the holder index against the members: every held partition indexed to its one
    /// holder, nothing else indexed, `revoking` apart from `assigned`.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = BTreeMap::new();
        for (id, m) in &self.members {
            for (topic, p) in m.held() {
                if let Some(other) = seen.insert((topic.to_owned(), p), id.clone()) {
                    return Err(format!("{topic}/{p} held by {other} and {id}"));
                }
            }
            for (topic, p) in assignor::iter(&m.state.assigned) {
                if assignor::holds(&m.state.revoking, topic, p) {
                    return Err(format!("{topic}/{p} both assigned to and revoking from {id}"));
                }
            }
        }
        if seen != self.holders {
            return Err("the holder index differs from the members".to_owned());
        }
        self.check_classic()
    }
}

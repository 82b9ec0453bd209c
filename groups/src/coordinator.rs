//! The coordinator of the consumer groups of one `__consumer_offsets` partition.
//!
//! One `Coordinator` lives on the shard that leads its partition; it is a plain value, used by
//! one task at a time. Every change it makes yields records (`take_records`) that the node
//! appends to the partition and waits on before answering the request that caused them; on
//! load, the node replays the partition's records into a fresh coordinator (`replay`).

use std::collections::BTreeMap;

use crate::api::{CoordinatorConfig, GroupDescription, GroupListing, Record, TopicSource};
use crate::classic::api::ClassicAnswer;
use crate::classic::state::Answers;
use crate::error::GroupError;
use crate::group::{Group, GroupMeta};
use crate::reconcile::rebalance;
use crate::records::{Key, encode_classic_member, encode_json, encode_key, encode_offset, encode_u64};
use crate::{COORDINATOR_GROUPS_MAX, MEMBER_ID_PREFIX_BYTES_MAX};

#[derive(Debug)]
pub struct Coordinator {
    pub(crate) config: CoordinatorConfig,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) records: Vec<Record>,
    pub(crate) member_id_prefix: String,
    /// The number of the last member id made.
    pub(crate) next_member: u64,
    /// Answers to held classic requests, released and not yet taken; at most one join and one
    /// sync per classic member.
    pub(crate) classic_answers: Answers,
    /// The transactional ids coordinated here (see `transactions.rs`).
    pub(crate) transactions: BTreeMap<String, crate::transactions::TxnState>,
    /// Offsets transactions commit to this partition's groups, pending their end.
    pub(crate) txn_offsets: crate::transactions::PendingOffsets,
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Self {
        Coordinator {
            config,
            groups: BTreeMap::new(),
            records: Vec::new(),
            member_id_prefix: String::new(),
            next_member: 0,
            classic_answers: Vec::new(),
            transactions: BTreeMap::new(),
            txn_offsets: BTreeMap::new(),
        }
    }

    /// Member ids this coordinator makes are `<prefix>m-<n>`, with `n` counting up over all
    /// its groups and persisted, so an id is never made twice: a member that was removed cannot
    /// come back under an id that now names another member. Panics if the prefix is longer than `MEMBER_ID_PREFIX_BYTES_MAX`.
    pub fn set_member_id_prefix(&mut self, prefix: &str) {
        assert!(prefix.len() <= MEMBER_ID_PREFIX_BYTES_MAX, "member id prefix too long");
        self.member_id_prefix = prefix.to_owned();
    }

    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .iter()
            .map(|(name, g)| GroupListing {
                group: name.clone(),
                state: g.state(),
                members: g.member_count() as u32,
                protocol_type: g.protocol_type(),
            })
            .collect()
    }

    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        self.groups.get(group).map(|g| g.describe(group))
    }

    /// Deletes a group and its offsets: refused while it has members.
    pub fn delete(&mut self, group: &str) -> Result<(), GroupError> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| GroupError::GroupIdNotFound { group: group.to_owned() })?;
        if g.member_count() > 0 {
            return Err(GroupError::GroupNotEmpty { members: g.member_count() as u32 });
        }
        // Member ids given and not yet joined with are forgotten with the group.
        g.classic.pending.clear();
        let keys: Vec<(String, u32)> = g.offsets.keys().cloned().collect();
        g.offsets.clear();
        g.dirty.offsets.extend(keys);
        self.flush(group);
        Ok(())
    }

    /// Removes the offsets of a deleted topic from every group. Members subscribed to it lose
    /// its partitions at the next `tick` (or heartbeat), which sees its partition count gone.
    pub fn delete_topic(&mut self, topic: &str) {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let g = self.groups.get_mut(&name).expect("listed above");
            let keys: Vec<(String, u32)> = g.offsets.keys().filter(|(t, _)| t == topic).cloned().collect();
            for key in keys {
                g.offsets.remove(&key);
                g.dirty.offsets.insert(key);
            }
            self.flush(&name);
        }
    }

    /// Removes members whose session ended or that did not release within their rebalance
    /// timeout, and computes new targets where that or a partition count changed the group.
    /// In classic groups, also completes or restarts rebalances whose timeout passed (see
    /// `tick_classic`), releasing answers to `take_classic_answers`. Returns the earliest time
    /// at which something would be due (a member expire, a rebalance time out), if any.
    pub fn tick(&mut self, now_ms: u64, topics: &dyn TopicSource) -> Option<u64> {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        let mut next: Option<u64> = None;
        let delay = self.config.classic_initial_rebalance_delay_ms;
        for name in names {
            let g = self.groups.get_mut(&name).expect("listed above");
            if let Some(due) = g.tick_classic(now_ms, delay, &mut self.classic_answers) {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            let expired: Vec<String> =
                g.members.iter().filter(|(_, m)| m.expired(now_ms)).map(|(id, _)| id.clone()).collect();
            for id in &expired {
                g.remove_member(id);
            }
            if !expired.is_empty() || (!g.members.is_empty() && g.counts_changed(topics)) {
                rebalance(g, topics, now_ms);
            }
            if let Some(due) = g.members.values().map(|m| m.deadline_ms()).min() {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            self.flush(&name);
        }
        next
    }

    /// The answers to held classic requests released since the last call (by a completed
    /// rebalance, a leader's sync, a timeout, a leave or a removal), each with the token of its
    /// request. Every held request is answered exactly once. The node appends the records of
    /// the same change (`take_records`) before it sends these.
    pub fn take_classic_answers(&mut self) -> Vec<(u64, ClassicAnswer)> {
        std::mem::take(&mut self.classic_answers)
    }

    /// The records of every change since the last call, in the order they must be appended.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// Checks the coordinator's invariants: in each group, no partition held (assigned or being
    /// revoked) by two members, and the holder index in step with the members; in a classic
    /// group, its phase in step with its members and held requests, and what it stores in step
    /// with what it is (a stable group stored as it is, a stored generation never ahead).
    pub fn check_invariants(&self) -> Result<(), String> {
        for (name, g) in &self.groups {
            g.check().map_err(|e| format!("group {name}: {e}"))?;
            if g.members.is_empty() && !g.has_classic() && g.offsets.is_empty() {
                return Err(format!("group {name} kept with no members and no offsets"));
            }
        }
        Ok(())
    }

    pub(crate) fn group_or_create(&mut self, gid: &str) -> &mut Group {
        self.groups.entry(gid.to_owned()).or_insert_with(|| {
            let mut g = Group::default();
            g.dirty.meta = true;
            g
        })
    }

    /// Makes a member id that no member of group `gid` has, and records its number.
    pub(crate) fn new_member_id(&mut self, gid: &str) -> String {
        loop {
            self.next_member += 1;
            let id = format!("{}m-{}", self.member_id_prefix, self.next_member);
            if !self.groups.get(gid).is_some_and(|g| g.members.contains_key(&id)) {
                let key = encode_key(&Key::MemberIds);
                self.records.push(Record { key, value: Some(encode_u64(self.next_member)) });
                return id;
            }
        }
    }

    pub(crate) fn check_room_for_group(&self) -> Result<(), GroupError> {
        if self.groups.len() >= COORDINATOR_GROUPS_MAX {
            return Err(GroupError::invalid(format!("above the limit of {COORDINATOR_GROUPS_MAX} groups")));
        }
        Ok(())
    }

    /// Emits the records of what changed in group `gid`, and forgets the group (with a
    /// tombstone) if it has neither members nor offsets left.
    pub(crate) fn flush(&mut self, gid: &str) {
        let Some(g) = self.groups.get_mut(gid) else { return };
        let dirty = std::mem::take(&mut g.dirty);
        let gone = g.members.is_empty() && !g.has_classic() && g.offsets.is_empty();
        let group = gid.to_owned();
        if dirty.meta && !gone {
            // The group record carries the classic group as stored, not as it is live.
            let meta = GroupMeta { classic: g.classic.stored.clone(), ..g.meta.clone() };
            let key = encode_key(&Key::Group { group: group.clone() });
            self.records.push(Record { key, value: Some(encode_json(&meta)) });
        }
        let (removed, kept): (Vec<&String>, Vec<&String>) =
            dirty.members.iter().partition(|id| !g.members.contains_key(*id));
        for id in removed.into_iter().chain(kept) {
            let key = encode_key(&Key::Member { group: group.clone(), member_id: id.clone() });
            let value = g.members.get(id).map(|m| encode_json(&m.state));
            self.records.push(Record { key, value });
        }
        let (removed, kept): (Vec<&String>, Vec<&String>) =
            dirty.classic_members.iter().partition(|id| !g.classic.stored_members.contains(*id));
        for id in removed.into_iter().chain(kept) {
            let value =
                g.classic.stored_members.contains(id).then(|| encode_classic_member(&g.stored_member(id)));
            let key = encode_key(&Key::ClassicMember { group: group.clone(), member_id: id.clone() });
            self.records.push(Record { key, value });
        }
        for (topic, partition) in dirty.offsets {
            let value = g.offsets.get(&(topic.clone(), partition)).map(encode_offset);
            let key = encode_key(&Key::Offset { group: group.clone(), topic, partition });
            self.records.push(Record { key, value });
        }
        if gone {
            self.records.push(Record { key: encode_key(&Key::Group { group }), value: None });
            self.groups.remove(gid);
        }
    }
}

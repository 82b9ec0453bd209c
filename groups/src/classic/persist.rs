//! What a classic group persists, and how a reloaded group is rebuilt from it.
//!
//! As Kafka's group coordinator does, a classic group persists its last completed generation:
//! when the leader's sync makes the group stable, the group record takes the generation, the
//! protocol and the leader, and every member gets a classic member record (its protocol
//! metadata and assignment). A member of that generation that goes (leaves, expires, is
//! removed or replaced) gets a tombstone, and the group record is marked `rebalance`; a group
//! that becomes empty writes its bumped generation. Members still joining are not persisted,
//! so a group reloaded mid-rebalance comes back as its last completed generation (or empty):
//! a generation made but never completed before a reload is made again after it, as in Kafka.
//! The stored generation only ever grows.

use serde::{Deserialize, Serialize};

use crate::classic::state::{ClassicMember, ClassicMeta, Phase};
use crate::group::Group;

/// The JSON part of a classic member record; the protocol metadata and the assignment follow
/// it as raw bytes (see `records`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClassicMemberRecord {
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The protocol of the stored generation, whose metadata the record carries.
    pub protocol: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
}

/// A classic member record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredClassicMember {
    pub fields: ClassicMemberRecord,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

impl StoredClassicMember {
    pub fn of(m: &ClassicMember, protocol: &str) -> Self {
        StoredClassicMember {
            fields: ClassicMemberRecord {
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                protocol: protocol.to_owned(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
            },
            metadata: m.metadata(protocol),
            assignment: m.assignment.clone(),
        }
    }

    /// The member as restored at `now_ms`: its session starts afresh, nothing held.
    fn restore(self, now_ms: u64) -> ClassicMember {
        let f = self.fields;
        ClassicMember {
            instance_id: f.instance_id,
            client_id: f.client_id,
            client_host: f.client_host,
            protocols: vec![(f.protocol, self.metadata)],
            session_timeout_ms: f.session_timeout_ms,
            rebalance_timeout_ms: f.rebalance_timeout_ms,
            last_seen_ms: now_ms,
            assignment: self.assignment,
            join_token: None,
            sync_token: None,
        }
    }
}

impl Group {
    /// The leader's sync completed the generation: it and every member are stored.
    pub fn store_completed(&mut self) {
        assert!(self.classic.phase == Phase::Stable, "storing a generation not completed");
        let mut stored = self.meta.classic.clone().expect("a classic group has its metadata");
        stored.leader = self.classic.leader.clone();
        stored.rebalance = false;
        self.set_stored(stored);
        let ids: Vec<String> = self.classic.members.keys().cloned().collect();
        for id in ids {
            self.store_member(id);
        }
    }

    /// The group became empty: its new generation is stored, with no leader.
    pub fn store_generation(&mut self) {
        let mut stored = self.meta.classic.clone().expect("a classic group has its metadata");
        stored.leader = None;
        stored.rebalance = false;
        self.set_stored(stored);
    }

    /// A member of the stored generation joins under a new id (a static member replaced in a
    /// stable group), keeping its place: the new id is stored, the generation unchanged.
    pub fn store_replacement(&mut self, id: String) {
        let stored = self.classic.stored.clone().expect("a stable group is stored");
        self.set_stored(ClassicMeta { rebalance: false, ..stored });
        self.store_member(id);
    }

    /// Member `id` went: if stored, its record goes, and a reload must rebalance.
    pub fn unstore_member(&mut self, id: &str) {
        if !self.classic.stored_members.remove(id) {
            return;
        }
        self.dirty.classic_members.insert(id.to_owned());
        let stored = self.classic.stored.clone().expect("stored members have a stored group");
        self.set_stored(ClassicMeta { rebalance: true, ..stored });
    }

    fn store_member(&mut self, id: String) {
        self.dirty.classic_members.insert(id.clone());
        self.classic.stored_members.insert(id);
    }

    fn set_stored(&mut self, stored: ClassicMeta) {
        if self.classic.stored.as_ref() != Some(&stored) {
            self.classic.stored = Some(stored);
            self.dirty.meta = true;
        }
    }

    /// The record of stored member `id`.
    pub fn stored_member(&self, id: &str) -> StoredClassicMember {
        let protocol = self.classic.stored.as_ref().and_then(|s| s.protocol_name.clone()).unwrap_or_default();
        StoredClassicMember::of(&self.classic.members[id], &protocol)
    }

    /// Replay: member `id`'s record, or its tombstone.
    pub fn replay_classic_member(&mut self, id: String, member: Option<StoredClassicMember>, now_ms: u64) {
        self.classic.members.remove(&id);
        self.classic.stored_members.remove(&id);
        if let Some(m) = member {
            self.classic.members.insert(id.clone(), m.restore(now_ms));
            self.classic.stored_members.insert(id);
        }
    }

    /// Replay: the phase the stored state gives, after any record of the group. Members
    /// stored are stable under the stored leader; if one went since (or the leader is gone)
    /// the group prepares a rebalance from `now_ms`, as it did before the reload.
    pub fn restore_classic_phase(&mut self, now_ms: u64) {
        self.classic.stored = self.meta.classic.clone();
        let c = &mut self.classic;
        let stored = c.stored.clone().unwrap_or_default();
        c.leader = stored.leader.filter(|l| c.members.contains_key(l));
        c.pending.clear();
        c.not_before_ms = now_ms;
        if c.members.is_empty() {
            c.phase = Phase::Empty;
            c.leader = None;
            c.deadline_ms = None;
        } else if stored.rebalance || c.leader.is_none() {
            let timeout = c.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
            c.phase = Phase::Preparing;
            c.deadline_ms = Some(now_ms + u64::from(timeout));
        } else {
            c.phase = Phase::Stable;
            c.deadline_ms = None;
        }
    }

    /// The stored state agrees with the live one: stored members are members; a stable group
    /// is stored as it is (every member, its generation, protocol and leader).
    pub fn check_stored(&self) -> Result<(), String> {
        let c = &self.classic;
        if let Some(id) = c.stored_members.iter().find(|id| !c.members.contains_key(*id)) {
            return Err(format!("{id} stored but not a member"));
        }
        if !c.stored_members.is_empty() && c.stored.is_none() {
            return Err("stored members without a stored generation".to_owned());
        }
        let Some(live) = self.meta.classic.as_ref() else { return Ok(()) };
        if c.stored.as_ref().is_some_and(|s| s.generation > live.generation) {
            return Err(format!("stored generation {:?} beyond the live {live:?}", c.stored));
        }
        if c.phase != Phase::Stable {
            return Ok(());
        }
        let stored = c.stored.as_ref().ok_or("a stable group not stored")?;
        let same = stored.generation == live.generation
            && stored.protocol_name == live.protocol_name
            && stored.leader == c.leader
            && !stored.rebalance
            && c.stored_members.len() == c.members.len();
        if !same {
            return Err(format!("stable at {live:?} with leader {:?} but stored as {stored:?}", c.leader));
        }
        Ok(())
    }
}

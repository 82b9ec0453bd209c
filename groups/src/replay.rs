//! Loading: rebuilding a coordinator from the records of its partition.

use crate::assignor;
use crate::classic::persist::StoredClassicMember;
use crate::coordinator::Coordinator;
use crate::error::GroupError;
use crate::group::{Group, GroupMeta};
use crate::member::{Member, MemberState};
use crate::records::{Key, decode_classic_member, decode_json, decode_key, decode_offset, decode_u64};

impl Coordinator {
    /// Applies one record read back from the log, in log order: a later record of a key
    /// replaces an earlier one, a tombstone removes it. Replay emits no records. Members
    /// restored get a fresh session from `now_ms` (and a fresh rebalance timeout if they were
    /// revoking), and their next answer carries their assignment. Classic members restored
    /// are those of the group's last completed generation, stable (see `classic::persist`).
    pub fn replay(&mut self, now_ms: u64, key: &[u8], value: Option<&[u8]>) -> Result<(), GroupError> {
        let key = decode_key(key)?;
        let key = match key {
            Key::Transaction { transactional_id } => {
                let state = value.map(decode_json).transpose()?;
                self.replay_txn(now_ms, transactional_id, state);
                return Ok(());
            }
            Key::PendingOffset { group, producer_id, topic, partition } => {
                let offset = value.map(decode_offset).transpose()?;
                self.replay_pending((group, producer_id), (topic, partition), offset);
                return Ok(());
            }
            key => key,
        };
        let group = match &key {
            Key::Offset { group, .. }
            | Key::Group { group }
            | Key::Member { group, .. }
            | Key::ClassicMember { group, .. } => group.clone(),
            Key::Transaction { .. } | Key::PendingOffset { .. } => unreachable!("handled above"),
            Key::MemberIds => {
                if let Some(v) = value {
                    self.next_member = self.next_member.max(decode_u64(v)?);
                }
                return Ok(());
            }
        };
        let group_tombstone = matches!(key, Key::Group { .. }) && value.is_none();
        // Decode before changing anything, so a bad record leaves the state as it was.
        let decoded = match (&key, value) {
            (_, None) => Value::Gone,
            (Key::Offset { .. }, Some(v)) => Value::Offset(decode_offset(v)?),
            (Key::Group { .. }, Some(v)) => Value::Group(decode_json(v)?),
            (Key::Member { .. }, Some(v)) => Value::Member(decode_json(v)?),
            (Key::ClassicMember { .. }, Some(v)) => Value::ClassicMember(decode_classic_member(v)?),
            (Key::MemberIds | Key::Transaction { .. } | Key::PendingOffset { .. }, Some(_)) => {
                unreachable!("handled above")
            }
        };
        let g = self.groups.entry(group.clone()).or_default();
        match (key, decoded) {
            (Key::Offset { topic, partition, .. }, Value::Offset(o)) => {
                g.offsets.insert((topic, partition), o);
            }
            (Key::Offset { topic, partition, .. }, _) => {
                g.offsets.remove(&(topic, partition));
            }
            (Key::Group { .. }, Value::Group(meta)) => g.meta = meta,
            (Key::Group { .. }, _) => g.meta = GroupMeta::default(),
            (Key::Member { member_id, .. }, decoded) => {
                g.remove_member(&member_id);
                if let Value::Member(state) = decoded {
                    restore_member(g, member_id, state, now_ms);
                }
            }
            (Key::ClassicMember { member_id, .. }, decoded) => {
                let member = if let Value::ClassicMember(m) = decoded { Some(m) } else { None };
                g.replay_classic_member(member_id, member, now_ms);
            }
            (Key::MemberIds | Key::Transaction { .. } | Key::PendingOffset { .. }, _) => {
                unreachable!("handled above")
            }
        }
        g.restore_classic_phase(now_ms);
        // An empty group goes with its tombstone. Before that, a group without members and
        // offsets is kept only for metadata its later records need: in a compacted log its
        // members and offsets may come after its group record.
        let empty = g.members.is_empty() && !g.has_classic() && g.offsets.is_empty();
        if empty && (group_tombstone || g.meta == GroupMeta::default()) {
            self.groups.remove(&group);
        } else {
            g.dirty = Default::default();
        }
        Ok(())
    }
}

/// A decoded record value.
enum Value {
    Gone,
    Offset(crate::group::StoredOffset),
    Group(GroupMeta),
    Member(MemberState),
    ClassicMember(StoredClassicMember),
}

/// Inserts a replayed member. A partition another member still holds is taken from that one:
/// the later record is the newer truth, and no partition may be held twice.
fn restore_member(g: &mut Group, id: String, mut state: MemberState, now_ms: u64) {
    let held: Vec<(String, u32)> = assignor::iter(&state.assigned)
        .chain(assignor::iter(&state.revoking))
        .map(|(t, p)| (t.to_owned(), p))
        .collect();
    for (topic, p) in held {
        let Some(other) = g.holders.get(&(topic.clone(), p)).cloned() else { continue };
        if other == id {
            continue;
        }
        let o = &mut g.members.get_mut(&other).expect("indexed holders are members").state;
        assignor::remove(&mut o.assigned, &topic, p);
        assignor::remove(&mut o.revoking, &topic, p);
        g.holders.remove(&(topic.clone(), p));
    }
    assignor::iter(&state.revoking.clone()).for_each(|(t, p)| {
        if assignor::holds(&state.assigned, t, p) {
            assignor::remove(&mut state.revoking, t, p);
        }
    });
    g.insert_member(id, Member::new(state, now_ms));
}

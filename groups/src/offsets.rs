//! Committed offsets: commit and fetch.
//!
//! A member may commit the offset of any partition, not only those assigned to it: the epoch
//! check already fences a member that was removed or is behind, and a member that commits for
//! a partition it just gave up (its last processed offset, during revocation) must not be
//! refused.

use crate::GROUP_OFFSETS_MAX;
use crate::api::CommittedOffset;
use crate::coordinator::Coordinator;
use crate::error::GroupError;
use crate::group::StoredOffset;
use std::collections::BTreeSet;

impl Coordinator {
    /// Commits offsets for `group`. Member id "" with epoch -1 is an admin commit (a reset of
    /// offsets), allowed only while the group has no members, and it creates the group if need
    /// be. Otherwise the member must exist (`UnknownMemberId`) and `member_epoch` must be its
    /// current epoch (`StaleMemberEpoch` if lower, `FencedMemberEpoch` if higher). A commit of
    /// no offsets changes nothing.
    pub fn commit(
        &mut self,
        now_ms: u64,
        group: &str,
        member_id: &str,
        member_epoch: i32,
        offsets: Vec<(String, u32, CommittedOffset)>,
    ) -> Result<(), GroupError> {
        crate::validate::commit(group, member_id, &offsets)?;
        self.check_committer(group, member_id, member_epoch)?;
        self.store_offsets(now_ms, group, offsets)
    }

    /// Stores offsets whose committer was checked; refused when they would take the group's
    /// partitions (committed, or pending in a transaction) past `GROUP_OFFSETS_MAX`.
    pub(crate) fn store_offsets(
        &mut self,
        now_ms: u64,
        group: &str,
        offsets: Vec<(String, u32, CommittedOffset)>,
    ) -> Result<(), GroupError> {
        self.check_offsets_bound(group, &offsets)?;
        self.store_offsets_unbounded(now_ms, group, offsets);
        Ok(())
    }

    /// Refuses `offsets` if they add partitions to the group's (its committed ones and those a
    /// transaction holds pending, each counted once) past `GROUP_OFFSETS_MAX`. Offsets of
    /// partitions it has already are never refused, even above the bound.
    pub(crate) fn check_offsets_bound(
        &self,
        group: &str,
        offsets: &[(String, u32, CommittedOffset)],
    ) -> Result<(), GroupError> {
        // Lookups only: a commit costs what it commits, not the size of its group.
        let g = self.groups.get(group);
        let committed = |tp: &(String, u32)| g.is_some_and(|g| g.offsets.contains_key(tp));
        let pending: BTreeSet<&(String, u32)> =
            self.pending_partitions(group).filter(|tp| !committed(tp)).collect();
        let before = g.map_or(0, |g| g.offsets.len()) + pending.len();
        let added: BTreeSet<(String, u32)> = offsets
            .iter()
            .map(|(t, p, _)| (t.clone(), *p))
            .filter(|tp| !committed(tp) && !pending.contains(tp))
            .collect();
        let total = before + added.len();
        if total > before && total > GROUP_OFFSETS_MAX {
            return Err(GroupError::invalid(format!(
                "{total} offsets in a group, above the limit of {GROUP_OFFSETS_MAX}"
            )));
        }
        Ok(())
    }

    /// Stores offsets without the bound (a committing transaction's, bounded when sent).
    pub(crate) fn store_offsets_unbounded(
        &mut self,
        now_ms: u64,
        group: &str,
        offsets: Vec<(String, u32, CommittedOffset)>,
    ) {
        if offsets.is_empty() {
            return;
        }
        let g = self.group_or_create(group);
        for (topic, partition, committed) in offsets {
            let key = (topic, partition);
            g.offsets.insert(key.clone(), StoredOffset { committed, commit_time_ms: now_ms });
            g.dirty.offsets.insert(key);
        }
        self.flush(group);
    }

    fn check_committer(&self, group: &str, member_id: &str, member_epoch: i32) -> Result<(), GroupError> {
        let g = self.groups.get(group);
        if member_id.is_empty() && member_epoch == -1 {
            return self.check_admin_commit(group);
        }
        let member = g
            .and_then(|g| g.members.get(member_id))
            .ok_or_else(|| GroupError::UnknownMemberId { member_id: member_id.to_owned() })?;
        let expected = member.state.member_epoch;
        match member_epoch.cmp(&expected) {
            std::cmp::Ordering::Less => Err(GroupError::StaleMemberEpoch { expected, got: member_epoch }),
            std::cmp::Ordering::Greater => Err(GroupError::FencedMemberEpoch { expected, got: member_epoch }),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// An admin commit needs a group without members, native or classic.
    pub(crate) fn check_admin_commit(&self, group: &str) -> Result<(), GroupError> {
        match self.groups.get(group) {
            Some(g) if g.member_count() > 0 => {
                Err(GroupError::GroupNotEmpty { members: g.member_count() as u32 })
            }
            Some(_) => Ok(()),
            None => self.check_room_for_group(),
        }
    }

    /// The committed offsets of `group`: of the given partitions (`None` where nothing is
    /// committed), or with `partitions` `None`, every committed offset. An unknown group has
    /// none.
    pub fn fetch_offsets(
        &self,
        group: &str,
        partitions: Option<&[(String, u32)]>,
    ) -> Vec<(String, u32, Option<CommittedOffset>)> {
        let g = self.groups.get(group);
        match partitions {
            None => g
                .into_iter()
                .flat_map(|g| g.offsets.iter())
                .map(|((t, p), o)| (t.clone(), *p, Some(o.committed.clone())))
                .collect(),
            Some(list) => list
                .iter()
                .map(|(t, p)| {
                    let found = g.and_then(|g| g.offsets.get(&(t.clone(), *p))).map(|o| o.committed.clone());
                    (t.clone(), *p, found)
                })
                .collect(),
        }
    }
}

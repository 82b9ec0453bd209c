//! Offset commits of classic members.
//!
//! As Kafka's group coordinator does today: the member must exist (`UnknownMemberId`, or
//! `FencedInstanceId` for a static member replaced) and commit in the group's generation
//! (`IllegalGeneration`). A commit while the group completes a rebalance is refused
//! `RebalanceInProgress` (the member has its new generation but not yet its assignment); a
//! commit in the current generation while the group prepares a rebalance is accepted, so a
//! member commits what it processed before it joins again. Member "" with generation -1 is an
//! admin commit, accepted only while the group has no members.

use crate::api::CommittedOffset;
use crate::classic::join::check_member;
use crate::classic::state::Phase;
use crate::classic::sync::check_generation;
use crate::coordinator::Coordinator;
use crate::error::GroupError;

impl Coordinator {
    /// An OffsetCommit from a classic consumer (or an admin commit: member "", generation -1).
    pub fn classic_commit(
        &mut self,
        now_ms: u64,
        group: &str,
        member_id: &str,
        generation_id: i32,
        instance_id: Option<&str>,
        offsets: Vec<(String, u32, CommittedOffset)>,
    ) -> Result<(), GroupError> {
        crate::validate::commit(group, member_id, &offsets)?;
        if member_id.is_empty() && generation_id == -1 && instance_id.is_none() {
            self.check_admin_commit(group)?;
        } else {
            let unknown = || GroupError::UnknownMemberId { member_id: member_id.to_owned() };
            let g = self.groups.get(group).ok_or_else(unknown)?;
            check_member(g, member_id, instance_id)?;
            check_generation(g, generation_id)?;
            if g.classic.phase == Phase::Completing {
                return Err(GroupError::RebalanceInProgress);
            }
        }
        self.store_offsets(now_ms, group, offsets)
    }
}

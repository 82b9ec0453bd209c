//! The classic Heartbeat and LeaveGroup.

use crate::classic::join::{check_member, instance_holder};
use crate::classic::state::Phase;
use crate::classic::sync::check_generation;
use crate::coordinator::Coordinator;
use crate::error::GroupError;

impl Coordinator {
    /// A classic Heartbeat: refreshes the member's session. `RebalanceInProgress` while the
    /// group prepares a rebalance (the member then joins again), `IllegalGeneration`,
    /// `UnknownMemberId` and `FencedInstanceId` as Kafka answers them.
    pub fn classic_heartbeat(
        &mut self,
        now_ms: u64,
        group: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        crate::validate::group_id(group)?;
        let unknown = || GroupError::UnknownMemberId { member_id: member_id.to_owned() };
        let g = self.groups.get_mut(group).ok_or_else(unknown)?;
        check_member(g, member_id, instance_id)?;
        check_generation(g, generation_id)?;
        g.classic.members.get_mut(member_id).expect("checked above").last_seen_ms = now_ms;
        match g.classic.phase {
            Phase::Preparing => Err(GroupError::RebalanceInProgress),
            Phase::Completing | Phase::Stable => Ok(()),
            Phase::Empty => Err(unknown()),
        }
    }

    /// A LeaveGroup of one or more members, each by member id or, for a static member, by
    /// instance id (its member id then "" or its own). A given member id not yet joined is
    /// forgotten. The group rebalances if members remain, and is empty otherwise; held
    /// requests of the members who left are answered `UnknownMemberId`.
    pub fn classic_leave(
        &mut self,
        now_ms: u64,
        group: &str,
        members: Vec<(String, Option<String>)>,
    ) -> Vec<Result<(), GroupError>> {
        if let Err(e) = crate::validate::group_id(group) {
            return members.iter().map(|_| Err(e.clone())).collect();
        }
        let delay = self.config.classic_initial_rebalance_delay_ms;
        let mut results = Vec::with_capacity(members.len());
        let mut left = false;
        for (member_id, instance_id) in &members {
            let result = self.leave_one(group, member_id, instance_id.as_deref());
            left |= result.is_ok();
            results.push(result);
        }
        if left && let Some(g) = self.groups.get_mut(group) {
            g.after_removal(now_ms, delay, &mut self.classic_answers);
        }
        self.flush(group);
        results
    }

    fn leave_one(
        &mut self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        let unknown = || GroupError::UnknownMemberId { member_id: member_id.to_owned() };
        let g = self.groups.get_mut(group).ok_or_else(unknown)?;
        let id = match instance_id {
            Some(instance) => {
                let holder = instance_holder(g, instance).ok_or_else(unknown)?.to_owned();
                if !member_id.is_empty() && member_id != holder {
                    return Err(GroupError::FencedInstanceId { instance_id: instance.to_owned() });
                }
                holder
            }
            None if g.classic.pending.remove(member_id).is_some() => return Ok(()),
            None => member_id.to_owned(),
        };
        g.remove_classic_member(
            &id,
            GroupError::UnknownMemberId { member_id: id.clone() },
            &mut self.classic_answers,
        )
        .map(|_| ())
        .ok_or_else(unknown)
    }
}

//! The heartbeat: join, rejoin, static takeover, heartbeat, leave and static leave.

use crate::api::{HeartbeatRequest, HeartbeatResponse, TopicSource};
use crate::assignor::{self, Assignment};
use crate::coordinator::Coordinator;
use crate::error::GroupError;
use crate::group::Group;
use crate::member::{Member, MemberState};
use crate::reconcile::{rebalance, reconcile};

/// How a joining member found its place.
enum Join {
    /// A member id the coordinator makes.
    New,
    /// The member rejoins under its own id, having given up what it held.
    Rejoin,
    /// A static member replaces the one that left with epoch -2 under the same instance id.
    TakeOver { old: String },
}

impl Coordinator {
    /// Handles one heartbeat. Its records are ready in `take_records` when it returns.
    pub fn heartbeat(
        &mut self,
        now_ms: u64,
        group: &str,
        req: HeartbeatRequest,
        topics: &dyn TopicSource,
    ) -> Result<HeartbeatResponse, GroupError> {
        crate::validate::heartbeat(&self.config, group, &req)?;
        let result = match req.member_epoch {
            -1 => self.leave(now_ms, group, &req, topics),
            -2 => self.static_leave(now_ms, group, &req),
            0 => self.join(now_ms, group, &req, topics),
            _ => self.beat(now_ms, group, &req, topics),
        };
        self.flush(group);
        result
    }

    fn join(
        &mut self,
        now_ms: u64,
        gid: &str,
        req: &HeartbeatRequest,
        topics: &dyn TopicSource,
    ) -> Result<HeartbeatResponse, GroupError> {
        let how = self.how_to_join(gid, req)?;
        let new_member = matches!(how, Join::New);
        let fresh_id = (!matches!(how, Join::Rejoin)).then(|| self.new_member_id(gid));
        let group = self.group_or_create(gid);
        let id = match how {
            Join::Rejoin => {
                let mut member = group.remove_member(&req.member_id).expect("checked in how_to_join");
                clear_holdings(&mut member.state);
                member.state.member_epoch = 0;
                member.state.previous_epoch = 0;
                group.insert_member(req.member_id.clone(), member);
                req.member_id.clone()
            }
            Join::TakeOver { old } => {
                let mut member = group.remove_member(&old).expect("checked in how_to_join");
                member.state.departed = false;
                member.state.revoking.clear();
                member.state.owned.clear();
                let id = fresh_id.expect("made above");
                group.insert_member(id.clone(), Member::new(member.state, now_ms));
                id
            }
            Join::New => {
                if group.members.is_empty()
                    && let Some(assignor) = req.assignor
                {
                    group.meta.assignor = assignor;
                }
                let id = fresh_id.expect("made above");
                group.insert_member(id.clone(), Member::new(fresh_state(req), now_ms));
                id
            }
        };
        Ok(settle(group, &id, now_ms, req, Some(Assignment::new()), new_member, topics))
    }

    /// Decides how a join goes, or why it is refused, before anything changes.
    fn how_to_join(&self, gid: &str, req: &HeartbeatRequest) -> Result<Join, GroupError> {
        let group = self.groups.get(gid);
        if group.is_some_and(|g| g.has_classic()) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if !req.member_id.is_empty() {
            let unknown = || GroupError::UnknownMemberId { member_id: req.member_id.clone() };
            let member = group.and_then(|g| g.members.get(&req.member_id)).ok_or_else(unknown)?;
            if member.state.instance_id != req.instance_id {
                return Err(GroupError::invalid("a rejoin with another instance id"));
            }
            return Ok(Join::Rejoin);
        }
        if let (Some(instance), Some(group)) = (&req.instance_id, group) {
            let holder = group.members.iter().find(|(_, m)| m.state.instance_id.as_ref() == Some(instance));
            if let Some((old, m)) = holder {
                if !m.state.departed {
                    return Err(GroupError::UnreleasedInstanceId { instance_id: instance.clone() });
                }
                return Ok(Join::TakeOver { old: old.clone() });
            }
        }
        let members = group.map_or(0, |g| g.members.len());
        if members >= self.config.group_members_max {
            return Err(GroupError::GroupMaxSizeReached { max: self.config.group_members_max });
        }
        if group.is_none() {
            self.check_room_for_group()?;
        }
        Ok(Join::New)
    }

    /// A heartbeat of a member at its current epoch.
    fn beat(
        &mut self,
        now_ms: u64,
        gid: &str,
        req: &HeartbeatRequest,
        topics: &dyn TopicSource,
    ) -> Result<HeartbeatResponse, GroupError> {
        let group = self.live_member_group(gid, &req.member_id)?;
        let member = &group.members[&req.member_id];
        // The previous epoch is taken only with what the member owns (checked below against
        // what it holds): the answer that raised its epoch was lost, and is sent again.
        let lost_answer = req.member_epoch != member.state.member_epoch
            && req.member_epoch > 0
            && req.member_epoch == member.state.previous_epoch
            && req.owned.is_some();
        if req.member_epoch != member.state.member_epoch && !lost_answer {
            return Err(GroupError::FencedMemberEpoch {
                expected: member.state.member_epoch,
                got: req.member_epoch,
            });
        }
        let owned = req.owned.as_deref().map(assignor::from_list);
        if let Some(owned) = &owned {
            let held = |topic: &str, p: u32| {
                assignor::holds(&member.state.assigned, topic, p)
                    || assignor::holds(&member.state.revoking, topic, p)
            };
            if let Some((topic, p)) = assignor::iter(owned).find(|&(t, p)| !held(t, p)) {
                return Err(GroupError::invalid(format!(
                    "owned partition {topic}/{p} is not assigned to the member"
                )));
            }
        }
        if lost_answer {
            group.members.get_mut(&req.member_id).expect("found above").answered = false;
        }
        Ok(settle(group, &req.member_id, now_ms, req, owned, false, topics))
    }

    /// Leave (-1): the member goes at once and what it held is free.
    fn leave(
        &mut self,
        now_ms: u64,
        gid: &str,
        req: &HeartbeatRequest,
        topics: &dyn TopicSource,
    ) -> Result<HeartbeatResponse, GroupError> {
        let group = self.member_group(gid, &req.member_id)?;
        let member = group.remove_member(&req.member_id).expect("found above");
        rebalance(group, topics, now_ms);
        Ok(answer(&req.member_id, -1, member.state.session_timeout_ms, None))
    }

    /// Static leave (-2): the member stays, holding its assignment for a member that joins with
    /// its instance id, until its session ends.
    fn static_leave(
        &mut self,
        now_ms: u64,
        gid: &str,
        req: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, GroupError> {
        let group = self.member_group(gid, &req.member_id)?;
        let member = group.members.get_mut(&req.member_id).expect("found above");
        if member.state.instance_id != req.instance_id {
            return Err(GroupError::invalid("a static leave with another instance id"));
        }
        member.state.departed = true;
        member.state.owned.clear();
        member.last_heartbeat_ms = now_ms;
        let session = member.state.session_timeout_ms;
        group.dirty.members.insert(req.member_id.clone());
        reconcile(group, &req.member_id, now_ms);
        Ok(answer(&req.member_id, -2, session, None))
    }

    /// The group of a member that exists, departed or not.
    fn member_group(&mut self, gid: &str, member_id: &str) -> Result<&mut Group, GroupError> {
        match self.groups.get_mut(gid) {
            Some(group) if group.members.contains_key(member_id) => Ok(group),
            _ => Err(GroupError::UnknownMemberId { member_id: member_id.to_owned() }),
        }
    }

    /// The group of a member that exists and has not left with epoch -2.
    fn live_member_group(&mut self, gid: &str, member_id: &str) -> Result<&mut Group, GroupError> {
        let group = self.member_group(gid, member_id)?;
        if group.members[member_id].state.departed {
            return Err(GroupError::UnknownMemberId { member_id: member_id.to_owned() });
        }
        Ok(group)
    }
}

/// Applies a heartbeat's session, subscription and ownership to member `id`, computes a new
/// target if the membership, a subscription or a partition count changed, and reconciles.
fn settle(
    group: &mut Group,
    id: &str,
    now_ms: u64,
    req: &HeartbeatRequest,
    owned: Option<Assignment>,
    new_member: bool,
    topics: &dyn TopicSource,
) -> HeartbeatResponse {
    let member = group.members.get_mut(id).expect("settling a member");
    let before = member.state.clone();
    let s = &mut member.state;
    member.last_heartbeat_ms = now_ms;
    s.session_timeout_ms = req.session_timeout_ms;
    s.rebalance_timeout_ms = req.rebalance_timeout_ms;
    let mut resubscribed = false;
    if let Some(list) = &req.topics {
        let subscription = list.iter().cloned().collect();
        resubscribed = s.topics != subscription;
        s.topics = subscription;
    }
    let reported = owned.is_some();
    if let Some(owned) = owned {
        s.owned = owned;
    }
    if member.state != before {
        group.dirty.members.insert(id.to_owned());
    }
    if new_member || resubscribed || group.counts_changed(topics) {
        rebalance(group, topics, now_ms);
    }
    let changed = reconcile(group, id, now_ms);
    let member = group.members.get_mut(id).expect("settling a member");
    // A member that reports owning other than what it was assigned may have lost the answer
    // that assigned it: it is answered again, so a lost answer never strands a partition.
    let out_of_step = reported && member.state.owned != member.state.assigned;
    let assignment =
        (changed || !member.answered || out_of_step).then(|| assignor::to_list(&member.state.assigned));
    member.answered = true;
    answer(id, member.state.member_epoch, member.state.session_timeout_ms, assignment)
}

fn answer(
    id: &str,
    member_epoch: i32,
    session_timeout_ms: u32,
    assignment: Option<Vec<crate::api::TopicPartitions>>,
) -> HeartbeatResponse {
    HeartbeatResponse {
        member_id: id.to_owned(),
        member_epoch,
        heartbeat_interval_ms: (session_timeout_ms / 3).clamp(100, 5000),
        assignment,
    }
}

fn fresh_state(req: &HeartbeatRequest) -> MemberState {
    MemberState {
        instance_id: req.instance_id.clone(),
        member_epoch: 0,
        topics: Default::default(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        assigned: Assignment::new(),
        revoking: Assignment::new(),
        target: Assignment::new(),
        owned: Assignment::new(),
        departed: false,
        previous_epoch: 0,
    }
}

/// A rejoining member gave up everything it held.
fn clear_holdings(s: &mut MemberState) {
    s.assigned.clear();
    s.revoking.clear();
    s.owned.clear();
    s.departed = false;
}

//! The classic JoinGroup: new members, `MemberIdRequired`, rejoins, static replacement.

use crate::classic::api::{ClassicAnswer, JoinRequest, JoinResponse};
use crate::classic::state::{ClassicMember, Phase};
use crate::coordinator::Coordinator;
use crate::error::GroupError;
use crate::group::Group;

impl Coordinator {
    /// Handles a JoinGroup carrying `token` (the node's handle on the request: unique among the
    /// requests it has waiting). `None`: the answer is held until the rebalance completes,
    /// then returned by `take_classic_answers` with `token`. Errors are answers
    /// (`JoinResponse::error`); a refused join changes nothing, except that `MemberIdRequired`
    /// remembers the member id it gives. Records are ready in `take_records`.
    pub fn classic_join(&mut self, now_ms: u64, token: u64, req: JoinRequest) -> Option<JoinResponse> {
        let result = self.join_classic(now_ms, token, &req);
        self.flush(&req.group);
        match result {
            Ok(answer) => answer.or_else(|| self.take_answer_of(token)),
            Err(e) => Some(JoinResponse::error(&req.member_id, e)),
        }
    }

    fn join_classic(
        &mut self,
        now_ms: u64,
        token: u64,
        req: &JoinRequest,
    ) -> Result<Option<JoinResponse>, GroupError> {
        crate::classic::validate::join(&self.config, req)?;
        if let Some(g) = self.groups.get(&req.group) {
            if !g.members.is_empty() {
                return Err(GroupError::InconsistentGroupProtocol);
            }
            check_protocols(g, req)?;
        }
        if req.member_id.is_empty() {
            return self.join_new(now_ms, token, req);
        }
        let g = self.groups.get(&req.group);
        if g.is_some_and(|g| g.classic.pending.contains_key(&req.member_id)) {
            let max = self.config.group_members_max;
            let g = self.groups.get_mut(&req.group).expect("found above");
            if g.classic.members.len() >= max {
                return Err(GroupError::GroupMaxSizeReached { max });
            }
            g.classic.pending.remove(&req.member_id);
            return Ok(self.add_member(now_ms, token, req, req.member_id.clone()));
        }
        let g = g.ok_or_else(|| GroupError::UnknownMemberId { member_id: req.member_id.clone() })?;
        check_member(g, &req.member_id, req.instance_id.as_deref())?;
        Ok(self.rejoin(now_ms, token, req))
    }

    /// A join with no member id: a static member replacing its old member id, a new member
    /// told its id (`MemberIdRequired`), or a new member.
    fn join_new(
        &mut self,
        now_ms: u64,
        token: u64,
        req: &JoinRequest,
    ) -> Result<Option<JoinResponse>, GroupError> {
        let g = self.groups.get(&req.group);
        if let (Some(instance), Some(g)) = (&req.instance_id, g)
            && let Some(old) = instance_holder(g, instance)
        {
            let old = old.to_owned();
            let id = self.new_member_id(&req.group);
            return Ok(self.replace_static(now_ms, token, req, &old, id));
        }
        self.check_room(&req.group)?;
        let id = self.new_member_id(&req.group);
        if req.instance_id.is_none() && req.require_known_member_id {
            let deadline = now_ms + u64::from(req.session_timeout_ms);
            self.group_or_create(&req.group).classic.pending.insert(id.clone(), deadline);
            return Ok(Some(JoinResponse::error(
                &id,
                GroupError::MemberIdRequired { member_id: id.clone() },
            )));
        }
        Ok(self.add_member(now_ms, token, req, id))
    }

    /// Refuses a new member beyond `group_members_max` (given ids not yet joined count too),
    /// or a new group beyond the coordinator's limit.
    fn check_room(&self, gid: &str) -> Result<(), GroupError> {
        match self.groups.get(gid) {
            None => self.check_room_for_group(),
            Some(g) if g.classic.members.len() + g.classic.pending.len() >= self.config.group_members_max => {
                Err(GroupError::GroupMaxSizeReached { max: self.config.group_members_max })
            }
            Some(_) => Ok(()),
        }
    }

    fn add_member(&mut self, now_ms: u64, token: u64, req: &JoinRequest, id: String) -> Option<JoinResponse> {
        let delay = self.config.classic_initial_rebalance_delay_ms;
        let g = self.groups.entry(req.group.clone()).or_default();
        let meta = g.classic_meta_mut();
        meta.protocol_type = Some(req.protocol_type.clone());
        g.classic.members.insert(id, member_of(req, now_ms, token));
        g.prepare_rebalance(now_ms, delay, &mut self.classic_answers);
        g.try_complete_join(now_ms, &mut self.classic_answers);
        None
    }

    /// A known member joins again: held while the group prepares, answered at once where
    /// Kafka does (a follower, or any member while completing, with unchanged protocols),
    /// otherwise a new rebalance.
    fn rejoin(&mut self, now_ms: u64, token: u64, req: &JoinRequest) -> Option<JoinResponse> {
        let delay = self.config.classic_initial_rebalance_delay_ms;
        let g = self.groups.get_mut(&req.group).expect("checked by the caller");
        let id = &req.member_id;
        let m = g.classic.members.get_mut(id).expect("checked by the caller");
        let unchanged = m.protocols == req.protocols;
        let leader = g.classic.leader.as_deref() == Some(id.as_str());
        m.last_seen_ms = now_ms;
        let answer_now = match g.classic.phase {
            Phase::Completing => unchanged,
            Phase::Stable => unchanged && !leader,
            Phase::Preparing | Phase::Empty => false,
        };
        if answer_now {
            return Some(g.join_answer(id));
        }
        // Updated in place: a held sync stays with the member, for `prepare_rebalance` to answer.
        m.protocols = req.protocols.clone();
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        if let Some(old_token) = m.join_token.replace(token) {
            // A member sent a second join while its first was held: the first is answered.
            let answer = JoinResponse::error(id, GroupError::RebalanceInProgress);
            self.classic_answers.push((old_token, ClassicAnswer::Join(answer)));
        }
        g.prepare_rebalance(now_ms, delay, &mut self.classic_answers);
        g.try_complete_join(now_ms, &mut self.classic_answers);
        None
    }

    /// A static member joins with no member id while its instance id names member `old`: the
    /// new id takes the old one's place and assignment, and the old one is fenced. A stable
    /// group whose leader is not replaced and whose protocols are unchanged does not
    /// rebalance; otherwise the group rebalances.
    fn replace_static(
        &mut self,
        now_ms: u64,
        token: u64,
        req: &JoinRequest,
        old: &str,
        id: String,
    ) -> Option<JoinResponse> {
        let delay = self.config.classic_initial_rebalance_delay_ms;
        let g = self.groups.get_mut(&req.group).expect("checked by the caller");
        let fenced = GroupError::FencedInstanceId { instance_id: req.instance_id.clone().expect("static") };
        let was_leader = g.classic.leader.as_deref() == Some(old);
        let before =
            g.remove_classic_member(old, fenced, &mut self.classic_answers).expect("the holder is a member");
        let quiet = g.classic.phase == Phase::Stable && !was_leader && before.protocols == req.protocols;
        let mut m = member_of(req, now_ms, token);
        m.assignment = before.assignment;
        if was_leader {
            g.classic.leader = Some(id.clone());
        }
        if quiet {
            m.join_token = None;
            g.classic.members.insert(id.clone(), m);
            g.store_replacement(id.clone());
            return Some(g.join_answer(&id));
        }
        g.classic.members.insert(id, m);
        if g.classic.phase == Phase::Preparing {
            g.try_complete_join(now_ms, &mut self.classic_answers);
        } else {
            g.prepare_rebalance(now_ms, delay, &mut self.classic_answers);
            g.try_complete_join(now_ms, &mut self.classic_answers);
        }
        None
    }

    /// The answer released for `token` by the request that carried it, if any.
    pub(crate) fn take_answer_of<T: FromAnswer>(&mut self, token: u64) -> Option<T> {
        let at = self.classic_answers.iter().position(|(t, _)| *t == token)?;
        T::from_answer(self.classic_answers.remove(at).1)
    }
}

/// Picks a join or a sync answer out of the released answers.
pub(crate) trait FromAnswer: Sized {
    fn from_answer(answer: ClassicAnswer) -> Option<Self>;
}

impl FromAnswer for JoinResponse {
    fn from_answer(answer: ClassicAnswer) -> Option<Self> {
        match answer {
            ClassicAnswer::Join(r) => Some(r),
            ClassicAnswer::Sync(_) => None,
        }
    }
}

fn member_of(req: &JoinRequest, now_ms: u64, token: u64) -> ClassicMember {
    ClassicMember {
        instance_id: req.instance_id.clone(),
        client_id: req.client_id.clone(),
        client_host: req.client_host.clone(),
        protocols: req.protocols.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        last_seen_ms: now_ms,
        assignment: Vec::new(),
        join_token: Some(token),
        sync_token: None,
    }
}

/// A group with classic members takes only their protocol type, and a member that shares a
/// protocol with all of them.
fn check_protocols(g: &Group, req: &JoinRequest) -> Result<(), GroupError> {
    if g.classic.members.is_empty() {
        return Ok(());
    }
    let same_type =
        g.meta.classic.as_ref().and_then(|c| c.protocol_type.as_deref()) == Some(req.protocol_type.as_str());
    let shared = req
        .protocols
        .iter()
        .any(|(name, _)| g.classic.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)));
    if same_type && shared { Ok(()) } else { Err(GroupError::InconsistentGroupProtocol) }
}

pub(crate) fn instance_holder<'a>(g: &'a Group, instance: &str) -> Option<&'a str> {
    g.classic
        .members
        .iter()
        .find(|(_, m)| m.instance_id.as_deref() == Some(instance))
        .map(|(id, _)| id.as_str())
}

/// Member `id` must exist (`UnknownMemberId`), and a static member's instance id must name it
/// (`FencedInstanceId`), as Kafka checks every classic request.
pub(crate) fn check_member(g: &Group, id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
    if let Some(instance) = instance_id
        && let Some(holder) = instance_holder(g, instance)
        && holder != id
    {
        return Err(GroupError::FencedInstanceId { instance_id: instance.to_owned() });
    }
    if !g.classic.members.contains_key(id) {
        return Err(GroupError::UnknownMemberId { member_id: id.to_owned() });
    }
    Ok(())
}

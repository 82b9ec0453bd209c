//! The classic SyncGroup: followers wait for the leader's assignment, which makes the group
//! stable.

use crate::classic::api::{ClassicAnswer, SyncRequest, SyncResponse};
use crate::classic::join::{FromAnswer, check_member};
use crate::classic::state::Phase;
use crate::coordinator::Coordinator;
use crate::error::GroupError;
use crate::group::Group;

impl FromAnswer for SyncResponse {
    fn from_answer(answer: ClassicAnswer) -> Option<Self> {
        match answer {
            ClassicAnswer::Sync(r) => Some(r),
            ClassicAnswer::Join(_) => None,
        }
    }
}

impl Coordinator {
    /// Handles a SyncGroup carrying `token`. While the group completes its rebalance, a
    /// follower's sync is held (`None`) until the leader's arrives; the leader's gives every
    /// member its assignment (empty for members it does not name), answers every held sync and
    /// makes the group stable. In a stable group a sync is answered at once with the member's
    /// assignment. Refusals: `UnknownMemberId`, `FencedInstanceId`, `IllegalGeneration`,
    /// `InconsistentGroupProtocol`, `RebalanceInProgress` (the group prepares a rebalance).
    pub fn classic_sync(&mut self, now_ms: u64, token: u64, req: SyncRequest) -> Option<SyncResponse> {
        let result = self.sync_classic(now_ms, token, &req);
        self.flush(&req.group);
        match result {
            Ok(answer) => answer.or_else(|| self.take_answer_of(token)),
            Err(e) => Some(SyncResponse::error(e)),
        }
    }

    fn sync_classic(
        &mut self,
        now_ms: u64,
        token: u64,
        req: &SyncRequest,
    ) -> Result<Option<SyncResponse>, GroupError> {
        crate::classic::validate::sync(&self.config, req)?;
        let unknown = || GroupError::UnknownMemberId { member_id: req.member_id.clone() };
        let g = self.groups.get_mut(&req.group).ok_or_else(unknown)?;
        check_member(g, &req.member_id, req.instance_id.as_deref())?;
        check_generation(g, req.generation_id)?;
        let meta = g.meta.classic.as_ref().expect("a classic group has its metadata");
        let differs = |given: &Option<String>, ours: &Option<String>| given.is_some() && given != ours;
        if differs(&req.protocol_type, &meta.protocol_type)
            || differs(&req.protocol_name, &meta.protocol_name)
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let m = g.classic.members.get_mut(&req.member_id).expect("checked above");
        m.last_seen_ms = now_ms;
        match g.classic.phase {
            Phase::Preparing => Err(GroupError::RebalanceInProgress),
            Phase::Stable => Ok(Some(sync_answer(g, &req.member_id))),
            Phase::Empty => Err(unknown()),
            Phase::Completing => {
                if let Some(old) = m.sync_token.replace(token) {
                    // A second sync while the first was held: the first is answered.
                    let answer = SyncResponse::error(GroupError::RebalanceInProgress);
                    self.classic_answers.push((old, ClassicAnswer::Sync(answer)));
                }
                if g.classic.leader.as_deref() == Some(req.member_id.as_str()) {
                    complete_sync(g, now_ms, &req.assignments, &mut self.classic_answers);
                }
                Ok(None)
            }
        }
    }
}

pub(crate) fn check_generation(g: &Group, got: i32) -> Result<(), GroupError> {
    let expected = g.generation();
    if got != expected {
        return Err(GroupError::IllegalGeneration { expected, got });
    }
    Ok(())
}

/// The leader's assignment: stored on each member, every held sync answered, the group stable.
fn complete_sync(
    g: &mut Group,
    now_ms: u64,
    assignments: &[(String, Vec<u8>)],
    out: &mut crate::classic::state::Answers,
) {
    for m in g.classic.members.values_mut() {
        m.assignment.clear();
    }
    for (id, bytes) in assignments {
        // The leader may name members that went meanwhile: their assignment is dropped.
        if let Some(m) = g.classic.members.get_mut(id) {
            m.assignment = bytes.clone();
        }
    }
    g.classic.phase = Phase::Stable;
    g.classic.deadline_ms = None;
    g.store_completed();
    // A member whose sync was held could not heartbeat meanwhile: its session starts again.
    let held: Vec<(String, u64)> = g
        .classic
        .members
        .iter_mut()
        .filter_map(|(id, m)| {
            let token = m.sync_token.take()?;
            m.last_seen_ms = now_ms;
            Some((id.clone(), token))
        })
        .collect();
    for (id, token) in held {
        out.push((token, ClassicAnswer::Sync(sync_answer(g, &id))));
    }
}

fn sync_answer(g: &Group, id: &str) -> SyncResponse {
    let meta = g.meta.classic.as_ref().expect("a classic group has its metadata");
    SyncResponse {
        error: None,
        protocol_type: meta.protocol_type.clone(),
        protocol_name: meta.protocol_name.clone(),
        assignment: g.classic.members[id].assignment.clone(),
    }
}

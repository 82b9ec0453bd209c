//! Reconciliation: moving one member from what it holds towards its target, on its heartbeat.
//!
//! A member holds the partitions it was told to own (`assigned`) and those taken from it that it
//! has not yet reported released (`revoking`). On each heartbeat:
//! 1. partitions in `revoking` that the member no longer reports owning are released;
//! 2. partitions of `assigned` outside the target move to `revoking` (the answer no longer lists
//!    them, the member must let them go and say so);
//! 3. partitions of the target that nobody holds are taken (the answer lists them); those still
//!    held by another member wait for a later heartbeat, after that member released them.
//!
//! So a partition that moves from A to B is given to B only once A reported it no longer owns
//! it, and no partition is ever held by two members. A member moves to the group epoch once it
//! holds nothing outside its target. A member that does not release within its rebalance
//! timeout of the revocation is removed by `tick`.

use crate::assignor::{self, Assignment};
use crate::group::Group;

/// Reconciles member `id` of `group` at `now_ms`, after its report of what it owns was stored
/// in its state. Returns whether its `assigned` changed.
pub(crate) fn reconcile(group: &mut Group, id: &str, now_ms: u64) -> bool {
    let before = group.members[id].state.clone();
    release(group, id);
    let member = group.members.get_mut(id).expect("reconciling a member");
    let target = member.state.target.clone();
    let mut assigned = Assignment::new();
    let mut taken = Vec::new();
    for (topic, p) in assignor::iter(&target) {
        match group.holders.get(&(topic.to_owned(), p)) {
            None => taken.push((topic.to_owned(), p)),
            Some(holder) if holder == id => {}
            Some(_) => continue,
        }
        assignor::add(&mut assigned, topic, p);
    }
    let s = &mut member.state;
    for (topic, p) in assignor::iter(&s.assigned) {
        if !assignor::holds(&target, topic, p) {
            assignor::add(&mut s.revoking, topic, p);
        }
    }
    for (topic, p) in assignor::iter(&assigned) {
        assignor::remove(&mut s.revoking, topic, p);
    }
    s.assigned = assigned;
    if s.revoking.is_empty() {
        member.revoke_deadline_ms = None;
        if s.member_epoch != group.meta.group_epoch {
            s.previous_epoch = s.member_epoch;
            s.member_epoch = group.meta.group_epoch;
        }
    } else if member.revoke_deadline_ms.is_none() {
        member.revoke_deadline_ms = Some(now_ms + u64::from(s.rebalance_timeout_ms));
    }
    for (topic, p) in taken {
        let prev = group.holders.insert((topic.clone(), p), id.to_owned());
        assert!(prev.is_none(), "{topic}/{p} given to {id} while another member holds it");
    }
    let member = &group.members[id];
    if member.state != before {
        group.dirty.members.insert(id.to_owned());
    }
    member.state.assigned != before.assigned
}

/// Releases the partitions in the member's `revoking` that its last report no longer lists.
fn release(group: &mut Group, id: &str) {
    let member = group.members.get_mut(id).expect("reconciling a member");
    let s = &mut member.state;
    let released: Vec<(String, u32)> = assignor::iter(&s.revoking)
        .filter(|&(topic, p)| !assignor::holds(&s.owned, topic, p))
        .map(|(topic, p)| (topic.to_owned(), p))
        .collect();
    for (topic, p) in released {
        assignor::remove(&mut s.revoking, &topic, p);
        let prev = group.holders.remove(&(topic.clone(), p));
        assert!(prev.as_deref() == Some(id), "{topic}/{p} released by a member that did not hold it");
    }
    // All that was revoked is released: a later revocation gets a rebalance timeout of its own.
    if s.revoking.is_empty() {
        member.revoke_deadline_ms = None;
    }
}

/// Bumps the group epoch and computes a new target; then reconciles the members that left
/// with epoch -2 at once, as they own nothing and will not heartbeat: what left their target is
/// free for its new owner without waiting for their sessions to end.
pub(crate) fn rebalance(group: &mut Group, topics: &dyn crate::api::TopicSource, now_ms: u64) {
    group.rebalance(topics);
    let departed: Vec<String> =
        group.members.iter().filter(|(_, m)| m.state.departed).map(|(id, _)| id.clone()).collect();
    for id in departed {
        reconcile(group, &id, now_ms);
    }
}

//! Leader election and the ISR/ELR bookkeeping around it: pure functions from one
//! [`PartitionState`] to the next. Epochs are left alone here; the controller bumps them when it
//! commits a change (see the rules in `controller.rs`). Sans-IO and deterministic: every choice
//! walks the replica assignment in preference order.

use crate::controller::PartitionState;
use crate::ids::NodeId;
use crate::mutation::{Mutation, active};

/// Whom an election chose, and from which set: the set decides what the ISR becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elected {
    /// An unfenced ISR member: it holds every committed record, the ISR stays.
    Isr(NodeId),
    /// An unfenced ELR member, when no ISR member is alive: it holds every committed record too
    /// (it left the ISR while the high watermark could not advance), and becomes the ISR alone.
    Elr(NodeId),
    /// Any unfenced replica, allowed only by `unclean_leader_election`: committed records may be
    /// lost, so it becomes the ISR alone and the ELR no longer means anything.
    Unclean(NodeId),
    /// Nobody eligible is alive: the partition is unavailable until one comes back.
    Nobody,
}

/// Chooses a leader for `p`. ISR and ELR are kept in assignment order, so the first live member
/// is the most preferred one.
pub fn choose(p: &PartitionState, is_fenced: impl Fn(NodeId) -> bool, unclean: bool) -> Elected {
    let live = |n: &&NodeId| !is_fenced(**n);
    if active(Mutation::ElectOutsideIsr)
        && let Some(&n) = p.replicas.iter().find(live)
    {
        return Elected::Unclean(n);
    }
    if let Some(&n) = p.isr.iter().find(live) {
        Elected::Isr(n)
    } else if let Some(&n) = p.elr.iter().find(live) {
        Elected::Elr(n)
    } else if let Some(&n) = p.replicas.iter().find(live).filter(|_| unclean) {
        Elected::Unclean(n)
    } else {
        Elected::Nobody
    }
}

/// The state after an election: leader, ISR and ELR as [`choose`] decides, epochs untouched.
pub fn elect(p: &PartitionState, is_fenced: impl Fn(NodeId) -> bool, unclean: bool) -> PartitionState {
    let mut next = p.clone();
    match choose(p, is_fenced, unclean) {
        Elected::Isr(n) => next.leader = Some(n),
        Elected::Elr(n) => {
            next.leader = Some(n);
            next.isr = vec![n];
            next.elr.retain(|&e| e != n);
        }
        Elected::Unclean(n) => {
            next.leader = Some(n);
            next.isr = vec![n];
            next.elr.clear();
        }
        Elected::Nobody => next.leader = None,
    }
    next
}

/// The state after `node` left the ISR (its session expired). It joins the ELR if the ISR is
/// then below `min_insync_replicas`: from then on the high watermark cannot advance, so it holds
/// every committed record. The leader, if it was `node`, is left for the caller to replace.
pub fn remove_from_isr(p: &PartitionState, node: NodeId, min_insync_replicas: usize) -> PartitionState {
    let mut next = p.clone();
    next.isr.retain(|&n| n != node);
    if next.isr.len() < min_insync_replicas {
        next.elr.push(node);
    }
    next
}

/// The state after the leader's ISR proposal `isr` (already validated) is applied: members
/// removed join the ELR if the new ISR is below `min_insync_replicas`, for the reason given at
/// [`remove_from_isr`].
pub fn alter_isr(p: &PartitionState, isr: &[NodeId], min_insync_replicas: usize) -> PartitionState {
    let mut next = p.clone();
    next.isr = isr.to_vec();
    if isr.len() < min_insync_replicas {
        next.elr.extend(p.isr.iter().filter(|n| !isr.contains(n)));
    }
    next
}

/// Brings `p` to its normal form: an ISR with at least `min_insync_replicas` members clears the
/// ELR (the high watermark can advance without the ELR members again, so they may fall behind);
/// an ISR member is never in the ELR; both sets are in assignment order and free of duplicates.
pub fn settle(p: &mut PartitionState, min_insync_replicas: usize) {
    if p.isr.len() >= min_insync_replicas {
        p.elr.clear();
    }
    let isr = in_assignment_order(&p.replicas, &p.isr);
    let elr: Vec<NodeId> = in_assignment_order(&p.replicas, &p.elr);
    p.elr = elr.into_iter().filter(|n| !isr.contains(n)).collect();
    p.isr = isr;
}

/// The members of `set` in the order of `replicas`, each once. Members outside `replicas` are
/// dropped; callers validate before, and `check` would catch them otherwise.
fn in_assignment_order(replicas: &[NodeId], set: &[NodeId]) -> Vec<NodeId> {
    replicas.iter().copied().filter(|n| set.contains(n)).collect()
}

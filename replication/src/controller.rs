//! The controller's per-partition decisions: leader, leader epoch, partition epoch, ISR and the
//! eligible-leader replicas (ELR, Kafka's KIP-966), as a deterministic sans-IO state machine.
//!
//! Lifecycle: one `Controller` per controller term. Its durable part, [`ControllerState`], is
//! what the replicated metadata log holds; a new controller starts from it with
//! [`Controller::recover`]. Node liveness is not durable: after a failover every node starts
//! alive with a fresh session, as in KRaft, because the new controller has heard nobody yet
//! and fencing everyone would make every partition unavailable at once. No clock, no I/O, no
//! randomness: callers pass `now_ms`, and every output comes in an order fixed by the inputs
//! (BTreeMaps and the replica assignment), so a simulator replays it exactly.
//!
//! Rules, and why:
//! 1. Every change to a partition bumps `partition_epoch` by one, so a proposal made against an
//!    older state is recognised and refused. Every leader change (to `None` too, and a restarted
//!    leader re-elected) bumps `leader_epoch` by one, so two leaders (or two incarnations of one)
//!    never lead in the same epoch and replicas can fence the older one. Epochs never go back.
//! 2. A node that sent no heartbeat for `session_timeout_ms` is fenced (checked at every entry
//!    point, so decisions use current liveness even between ticks). It leaves every ISR; if an
//!    ISR is then below `min_insync_replicas` it joins that partition's ELR: the high watermark
//!    cannot advance while the ISR is below min in-sync, so it holds every committed record. A
//!    partition it led gets an election.
//! 3. The ISR may become empty (the leader is then `None`), as in KIP-966: keeping a dead "last
//!    member" in the ISR would hide that no live replica is known to be complete.
//! 4. An ISR of at least `min_insync_replicas` members clears the ELR: the high watermark can
//!    advance without the ELR members again, so they may fall behind. A member added to the ISR
//!    leaves the ELR. ISR and ELR are kept in assignment order.
//! 5. Election, in assignment order: the first unfenced ISR member (a restarted leader may win
//!    again); else the first unfenced ELR member, which becomes the ISR alone; else, only if
//!    `unclean_leader_election`, the first unfenced replica, alone in the ISR, with the ELR
//!    cleared (committed records may be lost, so the ELR no longer means anything); else `None`.
//! 6. A heartbeat refreshes the session and unfences. A new incarnation (the node restarted and
//!    lost its in-memory role) re-elects every partition the node leads, with a new leader
//!    epoch even if it wins again. A restarted node stays in the ISR and ELR: Weir counts a
//!    replica towards the high watermark only once its copy is durable (fdatasync), so a crash
//!    loses no committed record. (KIP-966 removes a replica after an unclean shutdown because
//!    Kafka acknowledges unflushed data; Weir does not.) A node that comes back, restarts, or
//!    is heard by this controller for the first time triggers an election in every leaderless
//!    partition it is a replica of.
//! 7. AlterPartition (KIP-497/841) is accepted only from the current leader, in the current
//!    leader epoch and against the current partition epoch, so a deposed leader or a stale
//!    proposal is fenced. The new ISR contains the leader, lies within the assignment, has no
//!    duplicates and adds only unfenced nodes (a fenced node would count towards the high
//!    watermark unheard). Members removed below min in-sync join the ELR (rule 2's reason).
//! 8. The invariants of [`check`] (and: leader and ISR members are unfenced) are asserted in
//!    release builds after every change: a controller that broke them could lose committed data.
//! 9. Preferred-leader election (Kafka's leader rebalance): a partition whose leader is not its
//!    preferred replica (the first of the assignment) moves leadership back to it only when the
//!    preferred replica is in the ISR, so it holds every committed record as any ISR member
//!    elected under rule 5 does. A node that was fenced (and so left every ISR) takes its
//!    leadership back only after the leader has added it to the ISR again; one that restarted
//!    within its session stayed in the ISR (rule 6) and may take it back at once. The preferred replica must also be unfenced and
//!    heard from by this controller: after a failover every node is presumed alive (see below),
//!    and leadership moved to a node that in fact died would leave the partition without a
//!    working leader until its session expires. It is a leader change like any other (rule 1:
//!    new leader epoch, partition epoch + 1). At most a caller-given number of partitions move
//!    per call, in partition order, so a node coming back does not make every one of its
//!    partitions change leader at once; each moved partition stops being a candidate, so
//!    repeated calls reach every one.
//!
//! A controller has no first-hand knowledge of a node's incarnation after it starts: the first
//! heartbeat it sees from a node counts as a new incarnation, unless the caller tells it the
//! incarnation an earlier controller already handled ([`Controller::known_incarnations`]; the
//! metadata log records one only after that controller's re-elections for it). An unknown one
//! costs one leader epoch per partition the node leads, and keeps rule 1 true when a node
//! restarted during a failover.
//!
//! A new controller may also give the nodes it has not heard from yet a session shorter than
//! `session_timeout_ms` ([`Controller::first_sessions`]): a live node finds the new controller
//! within a few heartbeat intervals, while a node that died with the old controller (often the
//! same machine) should not hold its partitions for a whole session more.

use std::collections::BTreeMap;

use crate::election;
use crate::error::ControllerError;
use crate::ids::{NodeId, PartitionId};

/// Policy of the controller; the same for every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerConfig {
    /// At least 1. Below this many ISR members the high watermark does not advance.
    pub min_insync_replicas: usize,
    pub unclean_leader_election: bool,
    pub session_timeout_ms: u64,
}

/// The controller's record of one partition: what replicas act on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionState {
    /// The assignment, in preference order.
    pub replicas: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    /// In-sync replicas, in assignment order.
    pub isr: Vec<NodeId>,
    /// Eligible-leader replicas (KIP-966), in assignment order.
    pub elr: Vec<NodeId>,
}

/// A leader's proposal of a new ISR (AlterPartition), made against the state it last saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    pub partition: PartitionId,
    pub leader: NodeId,
    pub leader_epoch: u32,
    pub partition_epoch: u32,
    pub isr: Vec<NodeId>,
}

/// The durable part: what the replicated metadata log holds; survives controller failover.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ControllerState {
    pub partitions: BTreeMap<PartitionId, PartitionState>,
    /// Partitions whose `min_insync_replicas` is their own (a topic's setting), not the
    /// controller's default.
    pub min_insync_replicas: BTreeMap<PartitionId, usize>,
}

impl ControllerState {
    /// The `min_insync_replicas` of partition `id`: its own, or `default`.
    pub fn min_insync_replicas(&self, id: PartitionId, default: usize) -> usize {
        self.min_insync_replicas.get(&id).copied().unwrap_or(default)
    }
}

/// What the controller knows of a node's session. Not durable (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Liveness {
    /// The session ends here unless a heartbeat comes first.
    session_end_ms: u64,
    /// `None` until this controller hears from the node or is told it.
    incarnation: Option<u64>,
    /// Whether this controller has had a heartbeat from the node.
    heard: bool,
    fenced: bool,
}

/// The controller state machine. See the module documentation for the rules it keeps.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    state: ControllerState,
    nodes: BTreeMap<NodeId, Liveness>,
    /// Partitions changed and not yet polled, by the sequence number of their latest change.
    /// Only the newest state of a partition is ever sent, so this holds at most one entry per
    /// partition: bounded by the partition count.
    updates: BTreeMap<u64, PartitionId>,
    pending: BTreeMap<PartitionId, u64>,
    next_update_seq: u64,
    /// Every committed change, in order: what the metadata log records (and a checker checks
    /// one by one). Drained by [`poll_record`](Controller::poll_record) after every call.
    records: std::collections::VecDeque<(PartitionId, PartitionState)>,
}

/// Committed changes a caller may leave undrained: far more than one call makes.
const RECORDS_MAX: usize = 1 << 16;

/// Asserts the invariants of one partition state (also in release builds): the leader, if any,
/// is in the ISR; ISR and ELR lie within the assignment, in its order, and are disjoint; no set
/// holds a node twice. Panics if one is broken.
pub fn check(p: &PartitionState) {
    let in_order = |set: &[NodeId]| {
        let mut at = p.replicas.iter();
        set.iter().all(|n| at.any(|r| r == n))
    };
    let distinct = p.replicas.iter().enumerate().all(|(i, n)| !p.replicas[..i].contains(n));
    assert!(distinct, "duplicate replica in the assignment: {p:?}");
    assert!(in_order(&p.isr), "ISR not a duplicate-free subset of the assignment, in order: {p:?}");
    assert!(in_order(&p.elr), "ELR not a duplicate-free subset of the assignment, in order: {p:?}");
    assert!(p.isr.iter().all(|n| !p.elr.contains(n)), "ISR and ELR overlap: {p:?}");
    assert!(p.leader.is_none_or(|l| p.isr.contains(&l)), "leader outside the ISR: {p:?}");
}

impl Controller {
    /// A controller with no partitions; every node starts alive, its session starting now.
    pub fn new(config: ControllerConfig, nodes: &[NodeId], now_ms: u64) -> Self {
        Self::recover(config, ControllerState::default(), nodes, now_ms)
    }

    /// A controller taking over `state` (failover): the durable state is kept, liveness starts
    /// fresh, every node alive with a session starting now. Nodes named in `state` but missing
    /// from `nodes` are known too, so that no replica is unknown.
    pub fn recover(config: ControllerConfig, state: ControllerState, nodes: &[NodeId], now_ms: u64) -> Self {
        assert!(config.min_insync_replicas >= 1, "min_insync_replicas must be at least 1");
        state.partitions.values().for_each(check);
        let session_end_ms = now_ms.saturating_add(config.session_timeout_ms);
        let alive = Liveness { session_end_ms, incarnation: None, heard: false, fenced: false };
        let named = state.partitions.values().flat_map(|p| p.replicas.iter());
        let nodes = nodes.iter().chain(named).map(|&n| (n, alive)).collect();
        let (updates, pending) = (BTreeMap::new(), BTreeMap::new());
        let records = std::collections::VecDeque::new();
        Self { config, state, nodes, updates, pending, next_update_seq: 0, records }
    }

    /// Tells a controller just recovered the incarnation of each node an earlier controller
    /// already handled (re-elected what it led, then recorded it): that incarnation's heartbeat
    /// is then no restart. Nodes this controller has heard from keep what they said.
    pub fn known_incarnations(&mut self, known: &BTreeMap<NodeId, u64>) {
        for (node, live) in self.nodes.iter_mut().filter(|(_, l)| !l.heard) {
            live.incarnation = known.get(node).copied();
        }
    }

    /// Ends the session of every node not heard from yet `first_session_ms` after `now_ms` at
    /// the latest (see the module documentation). Never lengthens one.
    pub fn first_sessions(&mut self, now_ms: u64, first_session_ms: u64) {
        let end = now_ms.saturating_add(first_session_ms);
        for live in self.nodes.values_mut().filter(|l| !l.heard) {
            live.session_end_ms = live.session_end_ms.min(end);
        }
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    pub fn state(&self) -> &ControllerState {
        &self.state
    }

    pub fn partition(&self, id: PartitionId) -> Option<&PartitionState> {
        self.state.partitions.get(&id)
    }

    /// Whether `node` is fenced: its session expired and it has not come back. An unknown node
    /// counts as fenced: it is never eligible for anything.
    pub fn is_fenced(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_none_or(|l| l.fenced)
    }

    /// Creates a partition on `replicas` (in preference order, distinct, known nodes). The ISR is
    /// every unfenced replica (a new partition is empty, so all are complete, but a fenced node
    /// in the ISR would count towards the high watermark unheard); the leader is the first.
    pub fn create_partition(
        &mut self,
        id: PartitionId,
        replicas: Vec<NodeId>,
        now_ms: u64,
    ) -> Result<&PartitionState, ControllerError> {
        self.create_partition_with(id, replicas, None, now_ms)
    }

    /// [`create_partition`](Self::create_partition), with the partition's own
    /// `min_insync_replicas` (at least 1) instead of the controller's default when `Some`.
    pub fn create_partition_with(
        &mut self,
        id: PartitionId,
        replicas: Vec<NodeId>,
        min_insync_replicas: Option<usize>,
        now_ms: u64,
    ) -> Result<&PartitionState, ControllerError> {
        self.expire_sessions(now_ms);
        if min_insync_replicas == Some(0) {
            return Err(ControllerError::InvalidAssignment { reason: "min_insync_replicas is 0" });
        }
        if self.state.partitions.contains_key(&id) {
            return Err(ControllerError::PartitionExists { partition: id });
        }
        if replicas.is_empty() {
            return Err(ControllerError::InvalidAssignment { reason: "no replica" });
        }
        if replicas.iter().enumerate().any(|(i, n)| replicas[..i].contains(n)) {
            return Err(ControllerError::InvalidAssignment { reason: "duplicate replica" });
        }
        if let Some(&node) = replicas.iter().find(|n| !self.nodes.contains_key(n)) {
            return Err(ControllerError::UnknownNode { node });
        }
        let isr: Vec<NodeId> = replicas.iter().copied().filter(|&n| !self.is_fenced(n)).collect();
        let Some(&leader) = isr.first() else {
            return Err(ControllerError::NoLiveReplica { partition: id });
        };
        let p = PartitionState {
            replicas,
            leader: Some(leader),
            leader_epoch: 1,
            partition_epoch: 1,
            isr,
            elr: vec![],
        };
        self.check_live(&p);
        assert!(self.records.len() < RECORDS_MAX, "committed records are drained");
        self.records.push_back((id, p.clone()));
        self.state.partitions.insert(id, p);
        if let Some(min) = min_insync_replicas {
            self.state.min_insync_replicas.insert(id, min);
        }
        self.enqueue(id);
        Ok(&self.state.partitions[&id])
    }

    /// Forgets partition `id` (its topic was deleted): no decision names it again, and an
    /// update not yet polled is dropped. Returns whether it was known.
    pub fn remove_partition(&mut self, id: PartitionId) -> bool {
        self.state.min_insync_replicas.remove(&id);
        if let Some(seq) = self.pending.remove(&id) {
            self.updates.remove(&seq);
        }
        self.state.partitions.remove(&id).is_some()
    }

    /// The `min_insync_replicas` partition `id` is held to.
    pub fn min_insync_replicas(&self, id: PartitionId) -> usize {
        self.state.min_insync_replicas(id, self.config.min_insync_replicas)
    }

    /// A heartbeat from `node` running as `incarnation` (which grows with every restart).
    /// Refreshes its session and unfences it; a new incarnation re-elects what it leads; a node
    /// back or restarted triggers elections where partitions are leaderless (rule 6).
    pub fn handle_heartbeat(
        &mut self,
        now_ms: u64,
        node: NodeId,
        incarnation: u64,
    ) -> Result<(), ControllerError> {
        let live = self.nodes.get_mut(&node).ok_or(ControllerError::UnknownNode { node })?;
        if let Some(current) = live.incarnation.filter(|&seen| incarnation < seen) {
            return Err(ControllerError::StaleIncarnation { current, requested: incarnation });
        }
        // The heartbeat is proof of life at `now_ms`: it counts before sessions are expired, so
        // one arriving at its sender's deadline does not fence the sender only to unfence it.
        let session_end_ms = now_ms.saturating_add(self.config.session_timeout_ms);
        live.session_end_ms = live.session_end_ms.max(session_end_ms);
        self.expire_sessions(now_ms);
        let live = self.nodes.get_mut(&node).expect("known node");
        let restarted = live.incarnation != Some(incarnation);
        // The first heartbeat this controller hears counts as a return too: a partition left
        // without a leader under an earlier controller gets its election now, even from a node
        // whose incarnation was known.
        let returned = live.fenced || !live.heard;
        let session_end_ms = live.session_end_ms;
        *live = Liveness { session_end_ms, incarnation: Some(incarnation), heard: true, fenced: false };
        if restarted {
            for id in self.partitions_where(|p| p.leader == Some(node)) {
                let next = self.elect(&self.state.partitions[&id]);
                self.commit(id, next, true);
            }
        }
        if restarted || returned {
            for id in self.partitions_where(|p| p.leader.is_none() && p.replicas.contains(&node)) {
                let next = self.elect(&self.state.partitions[&id]);
                self.commit(id, next, false);
            }
        }
        Ok(())
    }

    /// Applies a leader's ISR proposal (rule 7) and returns the new state. On error the proposal
    /// changed nothing (sessions expired by `now_ms` are fenced all the same).
    pub fn handle_alter_partition(
        &mut self,
        now_ms: u64,
        req: &AlterPartition,
    ) -> Result<PartitionState, ControllerError> {
        self.expire_sessions(now_ms);
        let partition = req.partition;
        let p = self.partition(partition).ok_or(ControllerError::UnknownPartition { partition })?;
        check_proposer(p, req)?;
        self.check_proposed_isr(p, &req.isr)?;
        let next = election::alter_isr(p, &req.isr, self.min_insync_replicas(partition));
        // An accepted proposal always moves the partition epoch, even one that changes nothing:
        // a leader proposes its current ISR to fence off copies of an earlier proposal still in
        // flight (see the replica's `review_isr`).
        Ok(self.commit_as(partition, next, false, true).clone())
    }

    /// The next committed change, every one in commit order (unlike
    /// [`poll_update`](Self::poll_update), which gives only a partition's newest state): what
    /// the metadata log must make durable before the changes are acted on. The caller drains it
    /// after every call: more than `RECORDS_MAX` undrained is a bug and stops the process.
    pub fn poll_record(&mut self) -> Option<(PartitionId, PartitionState)> {
        self.records.pop_front()
    }

    /// Fences every node whose session expired by `now_ms` (rule 2).
    pub fn tick(&mut self, now_ms: u64) {
        self.expire_sessions(now_ms);
    }

    /// Moves the leadership of at most `elections_max` partitions to their preferred replica
    /// (rule 9), in partition order, and returns how many moved. Sessions expired by `now_ms`
    /// are fenced first, so a preferred replica silent for too long is never chosen.
    pub fn elect_preferred_leaders(&mut self, now_ms: u64, elections_max: usize) -> usize {
        self.expire_sessions(now_ms);
        let movable = self.partitions_where(|p| self.preferred_leader_eligible(p).is_some());
        let moved = movable.len().min(elections_max);
        for &id in &movable[..moved] {
            let p = &self.state.partitions[&id];
            let preferred = self.preferred_leader_eligible(p).expect("chosen as eligible");
            let next = PartitionState { leader: Some(preferred), ..p.clone() };
            self.commit(id, next, true);
        }
        moved
    }

    /// The preferred replica of `p`, if leadership should move to it (rule 9): it does not lead,
    /// it is in the ISR, unfenced and heard from by this controller.
    fn preferred_leader_eligible(&self, p: &PartitionState) -> Option<NodeId> {
        let &preferred = p.replicas.first()?;
        let heard = self.nodes.get(&preferred).is_some_and(|l| !l.fenced && l.heard);
        let eligible = p.leader != Some(preferred) && p.isr.contains(&preferred) && heard;
        eligible.then_some(preferred)
    }

    /// The next changed partition, with its newest state, to broadcast to its replicas. In the
    /// order of the partitions' latest changes; a partition changed twice before a poll comes
    /// once, with its newest state.
    pub fn poll_update(&mut self) -> Option<(PartitionId, PartitionState)> {
        let (_, id) = self.updates.pop_first()?;
        self.pending.remove(&id);
        Some((id, self.state.partitions[&id].clone()))
    }

    fn expire_sessions(&mut self, now_ms: u64) {
        let expired: Vec<NodeId> = (self.nodes.iter())
            .filter(|(_, l)| !l.fenced && now_ms >= l.session_end_ms)
            .map(|(&n, _)| n)
            .collect();
        for node in expired {
            self.fence(node);
        }
    }

    fn fence(&mut self, node: NodeId) {
        self.nodes.get_mut(&node).expect("fencing a known node").fenced = true;
        for id in self.partitions_where(|p| p.isr.contains(&node)) {
            let p = &self.state.partitions[&id];
            let mut next = election::remove_from_isr(p, node, self.min_insync_replicas(id));
            if p.leader == Some(node) {
                next = self.elect(&next);
            }
            self.commit(id, next, false);
        }
    }

    fn elect(&self, p: &PartitionState) -> PartitionState {
        election::elect(p, |n| self.is_fenced(n), self.config.unclean_leader_election)
    }

    fn partitions_where(&self, pred: impl Fn(&PartitionState) -> bool) -> Vec<PartitionId> {
        self.state.partitions.iter().filter(|(_, p)| pred(p)).map(|(&id, _)| id).collect()
    }

    /// Commits `next` as partition `id`'s state, unless it changes nothing: settles ISR and ELR
    /// (rule 4), bumps the epochs (rule 1; `new_leader_epoch` forces a leader epoch even for the
    /// same leader), checks the invariants and queues the update.
    fn commit(&mut self, id: PartitionId, next: PartitionState, new_leader_epoch: bool) -> &PartitionState {
        self.commit_as(id, next, new_leader_epoch, false)
    }

    /// [`commit`](Self::commit), with `bump` committing a new partition epoch even if nothing
    /// else changed.
    fn commit_as(
        &mut self,
        id: PartitionId,
        mut next: PartitionState,
        new_leader_epoch: bool,
        bump: bool,
    ) -> &PartitionState {
        election::settle(&mut next, self.min_insync_replicas(id));
        let old = &self.state.partitions[&id];
        if next == *old && !new_leader_epoch && !bump {
            return &self.state.partitions[&id];
        }
        let new_leader_epoch = new_leader_epoch || next.leader != old.leader;
        next.leader_epoch = old.leader_epoch + u32::from(new_leader_epoch);
        next.partition_epoch = old.partition_epoch + 1;
        self.check_live(&next);
        assert!(self.records.len() < RECORDS_MAX, "committed records are drained");
        self.records.push_back((id, next.clone()));
        self.state.partitions.insert(id, next);
        self.enqueue(id);
        &self.state.partitions[&id]
    }

    /// [`check`], and what only the controller can see: the leader and every ISR member are
    /// unfenced (rule 2 removes a fenced node from every ISR, and only unfenced nodes join one).
    fn check_live(&self, p: &PartitionState) {
        check(p);
        assert!(p.isr.iter().all(|&n| !self.is_fenced(n)), "fenced node in the ISR: {p:?}");
    }

    fn enqueue(&mut self, id: PartitionId) {
        let seq = self.next_update_seq;
        self.next_update_seq += 1;
        if let Some(older) = self.pending.insert(id, seq) {
            self.updates.remove(&older);
        }
        self.updates.insert(seq, id);
        assert!(self.pending.len() <= self.state.partitions.len(), "update queue beyond one per partition");
    }

    fn check_proposed_isr(&self, p: &PartitionState, isr: &[NodeId]) -> Result<(), ControllerError> {
        let invalid = |reason| Err(ControllerError::InvalidIsr { reason });
        if !p.leader.is_some_and(|l| isr.contains(&l)) {
            return invalid("the ISR must contain the leader");
        }
        if !isr.iter().all(|n| p.replicas.contains(n)) {
            return invalid("ISR member outside the assignment");
        }
        if isr.iter().enumerate().any(|(i, n)| isr[..i].contains(n)) {
            return invalid("duplicate ISR member");
        }
        match isr.iter().find(|&&n| !p.isr.contains(&n) && self.is_fenced(n)) {
            Some(&node) => Err(ControllerError::IneligibleReplica { node }),
            None => Ok(()),
        }
    }
}

/// Refuses a proposal from a node that is not the leader, from an older (or unknown future)
/// leader epoch, or made against a partition state that has changed since (rule 7).
fn check_proposer(p: &PartitionState, req: &AlterPartition) -> Result<(), ControllerError> {
    if p.leader != Some(req.leader) {
        return Err(ControllerError::NotLeader { leader: p.leader, requested: req.leader });
    }
    if req.leader_epoch != p.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch {
            current: p.leader_epoch,
            requested: req.leader_epoch,
        });
    }
    if req.partition_epoch != p.partition_epoch {
        let (current, requested) = (p.partition_epoch, req.partition_epoch);
        return Err(ControllerError::StalePartitionEpoch { current, requested });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION_MS: u64 = 1000;
    const P0: PartitionId = PartitionId(0);

    fn n(id: u32) -> NodeId {
        NodeId(id)
    }

    fn ns(ids: &[u32]) -> Vec<NodeId> {
        ids.iter().map(|&i| NodeId(i)).collect()
    }

    fn config(min_insync_replicas: usize, unclean_leader_election: bool) -> ControllerConfig {
        ControllerConfig { min_insync_replicas, unclean_leader_election, session_timeout_ms: SESSION_MS }
    }

    /// Nodes 1, 2 and 3, each heard from once (incarnation 1) at time 0, and partition 0 on
    /// [1, 2, 3]; the creation's update is drained.
    fn cluster(min_insync_replicas: usize, unclean: bool) -> Controller {
        let mut c = Controller::new(config(min_insync_replicas, unclean), &ns(&[1, 2, 3]), 0);
        beat(&mut c, 0, &[1, 2, 3]);
        c.create_partition(P0, ns(&[1, 2, 3]), 0).unwrap();
        drain(&mut c);
        c
    }

    fn beat(c: &mut Controller, now_ms: u64, nodes: &[u32]) {
        for &node in nodes {
            c.handle_heartbeat(now_ms, n(node), 1).unwrap();
        }
    }

    /// Fences `victim` by `now_ms` while `alive` stay alive: they beat just before, the victim
    /// (last heard at least a session before `now_ms`) does not.
    fn fence_at(c: &mut Controller, now_ms: u64, alive: &[u32], victim: u32) {
        beat(c, now_ms - 1, alive);
        c.tick(now_ms);
        assert!(c.is_fenced(n(victim)), "node {victim} not fenced at {now_ms}");
        assert!(alive.iter().all(|&a| !c.is_fenced(n(a))));
    }

    fn drain(c: &mut Controller) -> Vec<(PartitionId, PartitionState)> {
        std::iter::from_fn(|| c.poll_update()).collect()
    }

    fn p0(c: &Controller) -> PartitionState {
        c.partition(P0).unwrap().clone()
    }

    fn alter(c: &Controller, leader: u32, isr: &[u32]) -> AlterPartition {
        let p = c.partition(P0).unwrap();
        let (leader_epoch, partition_epoch) = (p.leader_epoch, p.partition_epoch);
        AlterPartition { partition: P0, leader: n(leader), leader_epoch, partition_epoch, isr: ns(isr) }
    }

    #[test]
    fn creation_elects_the_first_replica_with_every_live_replica_in_sync() {
        let mut c = Controller::new(config(2, false), &ns(&[1, 2, 3, 4]), 0);
        let p = c.create_partition(P0, ns(&[2, 1, 3]), 0).unwrap().clone();
        let want = PartitionState {
            replicas: ns(&[2, 1, 3]),
            leader: Some(n(2)),
            leader_epoch: 1,
            partition_epoch: 1,
            isr: ns(&[2, 1, 3]),
            elr: vec![],
        };
        assert_eq!(p, want);
        assert_eq!(drain(&mut c), vec![(P0, want.clone())]);
        let again = c.create_partition(P0, ns(&[1]), 0);
        assert_eq!(again.unwrap_err(), ControllerError::PartitionExists { partition: P0 });
        let unknown = c.create_partition(PartitionId(1), ns(&[1, 9]), 0);
        assert_eq!(unknown.unwrap_err(), ControllerError::UnknownNode { node: n(9) });
        let dup = c.create_partition(PartitionId(1), ns(&[1, 1]), 0);
        assert_eq!(dup.unwrap_err(), ControllerError::InvalidAssignment { reason: "duplicate replica" });
        let empty = c.create_partition(PartitionId(1), vec![], 0);
        assert_eq!(empty.unwrap_err(), ControllerError::InvalidAssignment { reason: "no replica" });
        // Node 1 goes silent: a partition created then leaves it out of the ISR.
        beat(&mut c, 999, &[2, 3, 4]);
        let p1 = c.create_partition(PartitionId(1), ns(&[1, 3, 4]), 1000).unwrap();
        assert_eq!((p1.leader, p1.isr.clone()), (Some(n(3)), ns(&[3, 4])));
        assert_eq!(c.partition(P0).unwrap().isr, ns(&[2, 3]), "node 1 left the older partition's ISR");
    }

    #[test]
    fn a_fenced_leader_is_replaced_by_an_isr_member_with_new_epochs() {
        let mut c = cluster(2, false);
        fence_at(&mut c, 1000, &[2, 3], 1);
        let p = p0(&c);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (Some(n(2)), 2, 2));
        assert_eq!((p.isr, p.elr), (ns(&[2, 3]), vec![]), "ISR still at min in-sync: no ELR");
        assert_eq!(drain(&mut c), vec![(P0, p0(&c))]);
    }

    #[test]
    fn a_heartbeat_at_its_deadline_keeps_its_sender_in() {
        let mut c = cluster(2, false);
        beat(&mut c, 999, &[2, 3]);
        beat(&mut c, 1000, &[1]);
        assert!([1, 2, 3].iter().all(|&i| !c.is_fenced(n(i))));
        assert_eq!(p0(&c).partition_epoch, 1);
        assert_eq!(c.poll_update(), None);
    }

    #[test]
    fn isr_shrinking_below_min_insync_fills_the_elr() {
        let mut c = cluster(2, false);
        fence_at(&mut c, 1000, &[2, 3], 1);
        fence_at(&mut c, 2000, &[3], 2);
        let p = p0(&c);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (Some(n(3)), 3, 3));
        assert_eq!((p.isr, p.elr), (ns(&[3]), ns(&[2])), "only node 2 left below min in-sync");
    }

    #[test]
    fn an_elr_member_is_elected_when_the_isr_is_empty() {
        let mut c = cluster(2, false);
        fence_at(&mut c, 1000, &[2, 3], 1);
        fence_at(&mut c, 2000, &[3], 2);
        c.tick(2999);
        c.tick(3000);
        let p = p0(&c);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (None, 4, 4));
        assert_eq!((p.isr, p.elr), (vec![], ns(&[2, 3])));
        // Node 1 comes back: it is not eligible (it left the ISR while the ISR was at min).
        beat(&mut c, 3500, &[1]);
        assert_eq!(p0(&c).leader, None);
        assert_eq!(p0(&c).partition_epoch, 4, "no change, no epoch");
        // Node 3 comes back: first live ELR member, alone in the ISR.
        beat(&mut c, 3600, &[3]);
        let p = p0(&c);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (Some(n(3)), 5, 5));
        assert_eq!((p.isr, p.elr), (ns(&[3]), ns(&[2])));
    }

    /// Partition 0 with ISR [1] at min in-sync 1 (so 2 and 3 are not eligible), then node 1 fenced.
    fn lone_leader_lost(unclean: bool) -> Controller {
        let mut c = cluster(1, unclean);
        c.handle_alter_partition(10, &alter(&c, 1, &[1])).unwrap();
        assert_eq!(p0(&c).elr, vec![], "ISR at min in-sync: nobody joins the ELR");
        fence_at(&mut c, 1000, &[2, 3], 1);
        c
    }

    #[test]
    fn an_unclean_leader_is_elected_only_when_allowed() {
        let c = lone_leader_lost(false);
        let p = p0(&c);
        assert_eq!((p.leader, p.isr, p.elr), (None, vec![], ns(&[1])), "2 and 3 may miss committed records");
        let c = lone_leader_lost(true);
        let p = p0(&c);
        assert_eq!((p.leader, p.isr, p.elr), (Some(n(2)), ns(&[2]), vec![]));
        assert_eq!((p.leader_epoch, p.partition_epoch), (2, 3));
    }

    #[test]
    fn a_restarted_leader_leads_again_in_a_new_epoch() {
        let mut c = cluster(2, false);
        let before = p0(&c);
        c.handle_heartbeat(100, n(1), 2).unwrap();
        let p = p0(&c);
        assert_eq!((p.leader, p.isr.clone()), (Some(n(1)), ns(&[1, 2, 3])), "its copy is durable: it stays");
        assert_eq!(
            (p.leader_epoch, p.partition_epoch),
            (before.leader_epoch + 1, before.partition_epoch + 1)
        );
        let stale = c.handle_heartbeat(200, n(1), 1);
        assert_eq!(stale.unwrap_err(), ControllerError::StaleIncarnation { current: 2, requested: 1 });
        // The previous incarnation's proposal is fenced by its leader epoch.
        let old = AlterPartition { leader_epoch: before.leader_epoch, ..alter(&c, 1, &[1, 2]) };
        let err = c.handle_alter_partition(300, &old).unwrap_err();
        assert_eq!(err, ControllerError::FencedLeaderEpoch { current: 2, requested: 1 });
        // The same incarnation again is no restart.
        c.handle_heartbeat(400, n(1), 2).unwrap();
        assert_eq!(p0(&c), p);
    }

    #[test]
    fn stale_or_foreign_proposals_are_refused_and_change_nothing() {
        let mut c = cluster(2, false);
        c.handle_alter_partition(10, &alter(&c, 1, &[1, 2])).unwrap();
        drain(&mut c);
        let state = p0(&c);
        let refused = [
            (alter(&c, 2, &[1, 2]), ControllerError::NotLeader { leader: Some(n(1)), requested: n(2) }),
            (
                AlterPartition { leader_epoch: 0, ..alter(&c, 1, &[1]) },
                ControllerError::FencedLeaderEpoch { current: 1, requested: 0 },
            ),
            (
                AlterPartition { partition_epoch: 1, ..alter(&c, 1, &[1]) },
                ControllerError::StalePartitionEpoch { current: 2, requested: 1 },
            ),
            (
                alter(&c, 1, &[2, 3]),
                ControllerError::InvalidIsr { reason: "the ISR must contain the leader" },
            ),
            (
                alter(&c, 1, &[1, 4]),
                ControllerError::InvalidIsr { reason: "ISR member outside the assignment" },
            ),
            (alter(&c, 1, &[1, 2, 2]), ControllerError::InvalidIsr { reason: "duplicate ISR member" }),
            (
                AlterPartition { partition: PartitionId(7), ..alter(&c, 1, &[1]) },
                ControllerError::UnknownPartition { partition: PartitionId(7) },
            ),
        ];
        for (req, want) in refused {
            assert_eq!(c.handle_alter_partition(20, &req), Err(want));
        }
        assert_eq!(p0(&c), state);
        assert_eq!(c.poll_update(), None);
    }

    #[test]
    fn a_fenced_node_may_not_join_the_isr() {
        let mut c = cluster(1, false);
        c.handle_alter_partition(10, &alter(&c, 1, &[1, 2])).unwrap();
        // Node 3's session expires; the proposal arrives before any tick: it is still refused.
        beat(&mut c, 999, &[1, 2]);
        let err = c.handle_alter_partition(1000, &alter(&c, 1, &[1, 2, 3])).unwrap_err();
        assert_eq!(err, ControllerError::IneligibleReplica { node: n(3) });
        assert!(c.is_fenced(n(3)));
        assert_eq!(p0(&c).isr, ns(&[1, 2]));
        beat(&mut c, 1100, &[3]);
        assert_eq!(c.handle_alter_partition(1100, &alter(&c, 1, &[1, 2, 3])).unwrap().isr, ns(&[1, 2, 3]));
    }

    #[test]
    fn expanding_the_isr_to_min_insync_clears_the_elr() {
        let mut c = cluster(3, false);
        let p = c.handle_alter_partition(10, &alter(&c, 1, &[1])).unwrap();
        assert_eq!((p.isr, p.elr, p.leader_epoch, p.partition_epoch), (ns(&[1]), ns(&[2, 3]), 1, 2));
        let p = c.handle_alter_partition(20, &alter(&c, 1, &[2, 1])).unwrap();
        assert_eq!((p.isr, p.elr), (ns(&[1, 2]), ns(&[3])), "a member joining the ISR leaves the ELR");
        let p = c.handle_alter_partition(30, &alter(&c, 1, &[1, 2, 3])).unwrap();
        assert_eq!((p.isr, p.elr, p.partition_epoch), (ns(&[1, 2, 3]), vec![], 4));
    }

    #[test]
    fn recover_keeps_the_durable_state_and_starts_every_session_afresh() {
        let mut c = cluster(2, false);
        fence_at(&mut c, 1000, &[2, 3], 1);
        fence_at(&mut c, 2000, &[3], 2);
        let durable = c.state().clone();
        // Node 4 is named by no one but the new controller's list; all nodes live from 5000 on.
        let mut r = Controller::recover(config(2, false), durable.clone(), &ns(&[3, 4]), 5000);
        assert_eq!(r.state(), &durable);
        assert!([1, 2, 3, 4].iter().all(|&i| !r.is_fenced(n(i))), "nodes of the state are known too");
        r.tick(5999);
        assert_eq!(r.state(), &durable);
        assert_eq!(r.poll_update(), None);
        // The new controller never heard node 3's incarnation: its first heartbeat re-elects.
        r.handle_heartbeat(5999, n(3), 1).unwrap();
        let p = r.partition(P0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (Some(n(3)), durable.partitions[&P0].leader_epoch + 1));
        r.tick(6000);
        assert!([1, 2, 4].iter().all(|&i| r.is_fenced(n(i))));
        assert!(!r.is_fenced(n(3)));
    }

    #[test]
    fn a_recovered_controller_told_an_incarnation_re_elects_only_for_a_newer_one() {
        let c = cluster(2, false);
        let durable = c.state().clone();
        let epoch = durable.partitions[&P0].leader_epoch;
        let mut r = Controller::recover(config(2, false), durable, &ns(&[1, 2, 3]), 5000);
        r.known_incarnations(&BTreeMap::from([(n(1), 1), (n(2), 1)]));
        // Node 1 leads P0 and heartbeats with the incarnation already handled: no new epoch.
        r.handle_heartbeat(5001, n(1), 1).unwrap();
        assert_eq!(r.partition(P0).unwrap().leader_epoch, epoch);
        assert_eq!(r.poll_update(), None);
        // An older one is refused; a newer one is a restart.
        assert!(matches!(r.handle_heartbeat(5002, n(2), 0), Err(ControllerError::StaleIncarnation { .. })));
        r.handle_heartbeat(5003, n(1), 2).unwrap();
        let p = r.partition(P0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (Some(n(1)), epoch + 1));
        // A partition left leaderless under the earlier controller is elected at the first
        // heartbeat of a replica, though its incarnation is known.
        let mut c = cluster(1, false);
        fence_at(&mut c, 1000, &[2, 3], 1);
        fence_at(&mut c, 2000, &[3], 2);
        c.tick(2000 + SESSION_MS);
        let left = c.partition(P0).unwrap().clone();
        assert_eq!((left.leader, left.elr.clone()), (None, ns(&[3])), "{left:?}");
        let mut l = Controller::recover(config(1, false), c.state().clone(), &ns(&[1, 2, 3]), 5000);
        l.known_incarnations(&BTreeMap::from([(n(1), 1), (n(2), 1), (n(3), 1)]));
        l.handle_heartbeat(5001, n(3), 1).unwrap();
        assert_eq!(l.partition(P0).unwrap().leader, Some(n(3)), "{:?}", l.partition(P0));
        // What it heard itself is not overwritten by a later, older report.
        r.known_incarnations(&BTreeMap::from([(n(1), 1)]));
        r.handle_heartbeat(5004, n(1), 2).unwrap();
        assert_eq!(r.partition(P0).unwrap().leader_epoch, epoch + 1);
    }

    #[test]
    fn first_sessions_end_early_only_for_nodes_not_heard_from() {
        let c = cluster(2, false);
        let mut r = Controller::recover(config(2, false), c.state().clone(), &ns(&[1, 2, 3]), 5000);
        r.first_sessions(5000, 300);
        // Node 2 is heard from in time and gets a whole session; 1 (the leader) and 3 do not.
        r.handle_heartbeat(5100, n(2), 1).unwrap();
        r.tick(5299);
        assert!(![1, 2, 3].iter().any(|&i| r.is_fenced(n(i))), "no session over before 5300");
        r.tick(5300);
        assert!(r.is_fenced(n(1)) && r.is_fenced(n(3)) && !r.is_fenced(n(2)));
        let p = r.partition(P0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (Some(n(2)), ns(&[2])), "node 2 leads alone");
        // A first session never lengthens one: a later, longer call changes nothing.
        r.first_sessions(5300, 10_000);
        r.tick(5100 + SESSION_MS);
        assert!(r.is_fenced(n(2)), "node 2's own session ended at {}", 5100 + SESSION_MS);
    }

    #[test]
    fn a_partition_of_its_own_min_insync_keeps_its_high_watermark_rules() {
        // The controller's default is 2; partition 1 is held to 1, so losing a member of its ISR
        // sends nobody to its ELR, while partition 0 (default) keeps the removed one there.
        let mut c = Controller::new(config(2, false), &ns(&[1, 2]), 0);
        c.create_partition(P0, ns(&[1, 2]), 0).unwrap();
        let p1 = PartitionId(1);
        c.create_partition_with(p1, ns(&[1, 2]), Some(1), 0).unwrap();
        assert_eq!(c.min_insync_replicas(p1), 1);
        assert_eq!(c.min_insync_replicas(P0), 2);
        c.handle_heartbeat(SESSION_MS, n(1), 1).unwrap();
        c.tick(SESSION_MS);
        assert!(c.is_fenced(n(2)));
        assert_eq!(c.partition(P0).unwrap().elr, ns(&[2]));
        assert_eq!(c.partition(p1).unwrap().elr, vec![]);
        let zero = c.create_partition_with(PartitionId(2), ns(&[1]), Some(0), SESSION_MS);
        assert!(matches!(zero, Err(ControllerError::InvalidAssignment { .. })));
    }

    #[test]
    fn a_removed_partition_is_forgotten_with_its_pending_update() {
        let mut c = cluster(2, false);
        let p1 = PartitionId(1);
        c.create_partition_with(p1, ns(&[2, 3]), Some(1), 1).unwrap();
        assert!(c.remove_partition(p1));
        assert!(!c.remove_partition(p1));
        assert_eq!(c.partition(p1), None);
        assert!(!c.state().min_insync_replicas.contains_key(&p1));
        assert_eq!(c.poll_update(), None, "the removed partition's update is dropped");
    }

    #[test]
    fn updates_come_in_change_order_once_per_partition_with_the_newest_state() {
        let mut c = cluster(1, false);
        let p1 = PartitionId(1);
        let p2 = PartitionId(2);
        c.create_partition(p2, ns(&[3, 1]), 1).unwrap();
        c.create_partition(p1, ns(&[2]), 1).unwrap();
        let order: Vec<PartitionId> = drain(&mut c).into_iter().map(|(id, _)| id).collect();
        assert_eq!(order, vec![p2, p1]);
        c.handle_alter_partition(2, &alter(&c, 1, &[1, 2])).unwrap();
        let shrink2 = AlterPartition {
            partition: p2,
            leader: n(3),
            leader_epoch: 1,
            partition_epoch: 1,
            isr: ns(&[3]),
        };
        c.handle_alter_partition(3, &shrink2).unwrap();
        c.handle_alter_partition(4, &alter(&c, 1, &[1])).unwrap();
        let updates = drain(&mut c);
        assert_eq!(updates, vec![(p2, c.partition(p2).unwrap().clone()), (P0, p0(&c))]);
        assert_eq!(updates[1].1.partition_epoch, 3, "the newest state of partition 0");
    }

    /// Node 1 (partition 0's preferred replica) fenced at 1000 and heard from again at 1100:
    /// node 2 leads, node 1 is unfenced and outside the ISR.
    fn preferred_back_outside_the_isr() -> Controller {
        let mut c = cluster(2, false);
        fence_at(&mut c, 1000, &[2, 3], 1);
        beat(&mut c, 1100, &[1, 2, 3]);
        drain(&mut c);
        let p = p0(&c);
        assert_eq!((p.leader, p.isr, c.is_fenced(n(1))), (Some(n(2)), ns(&[2, 3]), false));
        c
    }

    #[test]
    fn the_preferred_leader_leads_again_only_once_back_in_the_isr() {
        let mut c = preferred_back_outside_the_isr();
        let before = p0(&c);
        assert_eq!(c.elect_preferred_leaders(1100, 10), 0, "node 1 is outside the ISR");
        assert_eq!((p0(&c), c.poll_update()), (before.clone(), None));
        let p = c.handle_alter_partition(1200, &alter(&c, 2, &[1, 2, 3])).unwrap();
        assert_eq!((p.leader, p.isr), (Some(n(2)), ns(&[1, 2, 3])), "joining the ISR moves nothing");
        assert_eq!(c.elect_preferred_leaders(1200, 10), 1);
        let p = p0(&c);
        assert_eq!((p.leader, p.isr.clone(), p.elr.clone()), (Some(n(1)), ns(&[1, 2, 3]), vec![]));
        assert_eq!(
            (p.leader_epoch, p.partition_epoch),
            (before.leader_epoch + 1, before.partition_epoch + 2)
        );
        assert_eq!(drain(&mut c), vec![(P0, p.clone())]);
        assert_eq!(c.elect_preferred_leaders(1300, 10), 0, "the preferred replica leads already");
        assert_eq!((p0(&c), c.poll_update()), (p, None));
    }

    #[test]
    fn a_preferred_replica_whose_session_expired_is_not_elected() {
        let mut c = preferred_back_outside_the_isr();
        c.handle_alter_partition(1200, &alter(&c, 2, &[1, 2, 3])).unwrap();
        drain(&mut c);
        // Node 1 falls silent again; the call at its deadline fences it before choosing.
        beat(&mut c, 2099, &[2, 3]);
        assert_eq!(c.elect_preferred_leaders(2100, 10), 0);
        assert!(c.is_fenced(n(1)));
        let p = p0(&c);
        assert_eq!((p.leader, p.isr), (Some(n(2)), ns(&[2, 3])), "fenced: out of the ISR, not leading");
    }

    #[test]
    fn after_a_failover_the_preferred_replica_leads_again_only_once_heard_from() {
        let mut c = preferred_back_outside_the_isr();
        c.handle_alter_partition(1200, &alter(&c, 2, &[1, 2, 3])).unwrap();
        let durable = c.state().clone();
        let mut r = Controller::recover(config(2, false), durable.clone(), &ns(&[1, 2, 3]), 2000);
        assert_eq!(r.elect_preferred_leaders(2000, 10), 0, "node 1 is only presumed alive");
        assert_eq!(r.state(), &durable);
        beat(&mut r, 2100, &[1]);
        assert_eq!(r.elect_preferred_leaders(2100, 10), 1);
        assert_eq!(r.partition(P0).unwrap().leader, Some(n(1)));
    }

    #[test]
    fn preferred_elections_move_at_most_the_limit_per_call() {
        let mut c = cluster(1, false);
        let ids: Vec<PartitionId> = (1..=3).map(PartitionId).collect();
        for &id in &ids {
            c.create_partition(id, ns(&[1, 2, 3]), 1).unwrap();
        }
        fence_at(&mut c, 1000, &[2, 3], 1);
        beat(&mut c, 1100, &[1, 2, 3]);
        for id in [P0].iter().chain(&ids) {
            let p = c.partition(*id).unwrap();
            let req = AlterPartition { partition: *id, isr: ns(&[1, 2, 3]), ..alter(&c, 2, &[]) };
            let req =
                AlterPartition { leader_epoch: p.leader_epoch, partition_epoch: p.partition_epoch, ..req };
            c.handle_alter_partition(1100, &req).unwrap();
        }
        drain(&mut c);
        let leaders = |c: &Controller| -> Vec<Option<NodeId>> {
            c.state().partitions.values().map(|p| p.leader).collect()
        };
        assert_eq!(leaders(&c), vec![Some(n(2)); 4]);
        assert_eq!(c.elect_preferred_leaders(1200, 3), 3);
        assert_eq!(leaders(&c), vec![Some(n(1)), Some(n(1)), Some(n(1)), Some(n(2))], "in partition order");
        assert_eq!(drain(&mut c).len(), 3);
        assert_eq!(c.elect_preferred_leaders(1300, 3), 1, "the rest moves on the next call");
        assert_eq!(leaders(&c), vec![Some(n(1)); 4]);
        assert_eq!(c.elect_preferred_leaders(1400, 0), 0);
    }

    #[test]
    #[should_panic(expected = "ISR and ELR overlap")]
    fn check_refuses_a_node_in_both_isr_and_elr() {
        let p = PartitionState {
            replicas: ns(&[1, 2]),
            leader: Some(n(1)),
            leader_epoch: 1,
            partition_epoch: 1,
            isr: ns(&[1, 2]),
            elr: ns(&[2]),
        };
        check(&p);
    }

    #[test]
    #[should_panic(expected = "leader outside the ISR")]
    fn check_refuses_a_leader_outside_the_isr() {
        let p = PartitionState {
            replicas: ns(&[1, 2]),
            leader: Some(n(2)),
            leader_epoch: 1,
            partition_epoch: 1,
            isr: ns(&[1]),
            elr: vec![],
        };
        check(&p);
    }
}

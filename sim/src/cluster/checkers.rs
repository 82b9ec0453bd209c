//! The invariants, each a named checker, run as the simulation goes: after every step, on every
//! change to a log, every acknowledgement, every controller decision and every restart.
//!
//! 1. `acked-durable`: an acknowledged acks=all batch stays at its offset with its CRC on the
//!    leader and every ISR member, forever.
//! 2. `prefix`: two replicas holding a batch at the same (offset, epoch) hold the same log up to
//!    and including it.
//! 3. `high-watermark`: every batch below a high watermark any replica exposed is committed:
//!    never truncated anywhere, never exposed differently by another replica, and a leader's
//!    high watermark is never above the durable end of a member of the ISR; consumers read only
//!    committed batches.
//! 4. `epochs`: leader epochs and partition epochs never go back; one leader per epoch.
//! 5. `election`: the leader is in the ISR, the ISR within the replicas, and a new leader comes
//!    from the ISR or ELR before the election.
//! 6. `dense`: a log's offsets are dense and its epochs never go back (asserted by the model),
//!    and a restart keeps every batch the log called durable.

use super::data_node::Before;
use super::model::{BatchMeta, LogModel, agree_up_to};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use weir_replication::{NodeId, PartitionState};

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant `{}` broken: {}", self.invariant, self.detail)
    }
}

pub type Check = Result<(), Violation>;

fn fail(invariant: &'static str, detail: String) -> Check {
    Err(Violation { invariant, detail })
}

/// A replica as the checkers see it.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaView<'a> {
    pub node: NodeId,
    /// Which life of the node: two lives of one node are two leaders.
    pub incarnation: u64,
    pub model: &'a LogModel,
    pub high_watermark: u64,
    pub durable_end: u64,
    /// `Some(epoch)` if the replica leads in that epoch.
    pub leads: Option<u32>,
}

/// What the checkers remember.
#[derive(Debug, Default)]
pub struct Checkers {
    /// Acknowledged acks=all batches, by base offset.
    pub acked: BTreeMap<u64, BatchMeta>,
    /// Batches below some exposed high watermark, by base offset.
    committed: BTreeMap<u64, BatchMeta>,
    /// Per node, the high watermark up to which its batches were checked against `committed`.
    exposed_to: BTreeMap<NodeId, u64>,
    leader_of_epoch: BTreeMap<u32, (NodeId, u64)>,
    last_state: Option<PartitionState>,
    pub elections: u64,
    pub truncations: u64,
    /// The highest log start any node's retention reached: no log may start past it (a
    /// follower starts over only at a leader's log start), and only below it may acknowledged
    /// batches be missing.
    pub retention_floor: u64,
}

impl Checkers {
    /// Invariant 1 at acknowledgement: the batch is new, and every ISR member that is up holds it.
    pub fn on_acked(&mut self, meta: BatchMeta, isr: &[ReplicaView<'_>]) -> Check {
        if let Some((_, b)) = self.acked.range(..meta.end).next_back().filter(|(_, b)| b.end > meta.base) {
            return fail("acked-durable", format!("acknowledged {meta:?} overlaps acknowledged {b:?}"));
        }
        self.acked.insert(meta.base, meta);
        for r in isr {
            holds(r, &meta, self.retention_floor)?;
        }
        Ok(())
    }

    /// Invariant 1 for a replica that is (or just joined, or restarted in) the ISR: it holds
    /// every acknowledged batch.
    pub fn holds_all_acked(&self, r: &ReplicaView<'_>) -> Check {
        self.acked.values().try_for_each(|m| holds(r, m, self.retention_floor))
    }

    /// Invariant 2 for a batch appended to `r`'s log.
    pub fn on_appended(&self, r: &ReplicaView<'_>, meta: &BatchMeta, others: &[ReplicaView<'_>]) -> Check {
        // Cut again later in the same step: the truncation's checks cover it.
        if r.model.at(meta.base) != Some(*meta) {
            return Ok(());
        }
        for o in others {
            if o.model.at(meta.base).is_some_and(|theirs| theirs.epoch == meta.epoch)
                && !agree_up_to(r.model, o.model, meta.base)
            {
                let detail = format!(
                    "{:?} and {:?} both hold {meta:?} but their logs differ before it",
                    r.node, o.node
                );
                return fail("prefix", detail);
            }
        }
        Ok(())
    }

    /// Invariant 3: a truncation removed no committed batch.
    pub fn on_truncated(&mut self, node: NodeId, removed: &[BatchMeta]) -> Check {
        self.truncations += 1;
        for b in removed {
            if self.committed.get(&b.base) == Some(b) {
                return fail("high-watermark", format!("{node:?} truncated committed {b:?}"));
            }
        }
        if let Some(to) = self.exposed_to.get_mut(&node) {
            *to = (*to).min(removed.first().map_or(u64::MAX, |b| b.base));
        }
        Ok(())
    }

    /// Invariant 3 as the replica's high watermark moves: what it exposes is committed, the same
    /// everywhere.
    pub fn on_high_watermark(&mut self, r: &ReplicaView<'_>) -> Check {
        let from = self.exposed_to.get(&r.node).copied().unwrap_or(0);
        for b in r.model.range(from, r.high_watermark) {
            match self.committed.get(&b.base) {
                Some(c) if c != b => {
                    let detail = format!("{:?} exposes {b:?} where {c:?} was committed", r.node);
                    return fail("high-watermark", detail);
                }
                Some(_) => {}
                None => {
                    self.committed.insert(b.base, *b);
                }
            }
        }
        self.exposed_to.insert(r.node, r.high_watermark.max(from));
        Ok(())
    }

    /// A restarted replica's high watermark starts over.
    pub fn on_restart(&mut self, node: NodeId) {
        self.exposed_to.remove(&node);
    }

    /// Invariant 3 for a consumer: what it read is committed.
    pub fn on_consumed(&self, batches: &[BatchMeta], high_watermark: u64) -> Check {
        for b in batches {
            if b.end > high_watermark || self.committed.get(&b.base) != Some(b) {
                let detail = format!(
                    "a consumer read {b:?} (high watermark {high_watermark}), committed: {:?}",
                    self.committed.get(&b.base)
                );
                return fail("high-watermark", detail);
            }
        }
        Ok(())
    }

    /// Invariants 3 and 4, after every step: one leader per epoch, and a leader's high
    /// watermark within the durable copies of the ISR.
    pub fn each_step(&mut self, replicas: &[ReplicaView<'_>], isr: &[NodeId]) -> Check {
        for r in replicas {
            if r.model.start() > self.retention_floor {
                let detail = format!(
                    "{:?}'s log starts at {}, past every retention point ({})",
                    r.node,
                    r.model.start(),
                    self.retention_floor
                );
                return fail("acked-durable", detail);
            }
        }
        for r in replicas {
            let Some(epoch) = r.leads else { continue };
            let me = (r.node, r.incarnation);
            let leader = *self.leader_of_epoch.entry(epoch).or_insert(me);
            if leader != me {
                return fail(
                    "epochs",
                    format!("{leader:?} and {me:?} (node, incarnation) both led epoch {epoch}"),
                );
            }
            for m in replicas.iter().filter(|m| isr.contains(&m.node)) {
                if r.high_watermark > m.durable_end {
                    let detail = format!(
                        "leader {:?} high watermark {} above ISR member {:?}'s durable end {}",
                        r.node, r.high_watermark, m.node, m.durable_end
                    );
                    return fail("high-watermark", detail);
                }
            }
        }
        Ok(())
    }

    /// Invariants 4 and 5 for a state the controller committed. Returns the members that joined
    /// the ISR (each must hold every acknowledged batch).
    pub fn on_state(&mut self, s: &PartitionState) -> Result<Vec<NodeId>, Violation> {
        let bad = |detail: String| Err(Violation { invariant: "election", detail });
        if s.leader.is_some_and(|l| !s.isr.contains(&l)) || s.isr.iter().any(|n| !s.replicas.contains(n)) {
            return bad(format!("leader outside the ISR, or ISR outside the replicas: {s:?}"));
        }
        let Some(prev) = self.last_state.replace(s.clone()) else { return Ok(s.isr.clone()) };
        if s.partition_epoch <= prev.partition_epoch || s.leader_epoch < prev.leader_epoch {
            return Err(Violation { invariant: "epochs", detail: format!("{prev:?} then {s:?}") });
        }
        if s.leader_epoch != prev.leader_epoch {
            self.elections += 1;
            if let Some(l) = s.leader
                && !prev.isr.contains(&l)
                && !prev.elr.contains(&l)
            {
                return bad(format!("{l:?} elected from outside ISR {:?} and ELR {:?}", prev.isr, prev.elr));
            }
        }
        let before: BTreeSet<NodeId> = prev.isr.iter().copied().collect();
        Ok(s.isr.iter().copied().filter(|n| !before.contains(n)).collect())
    }

    /// Invariant 6 at a restart: the recovered log keeps every batch that was durable, and starts
    /// no later than the failed operation (if any) allowed.
    pub fn on_recovered(node: NodeId, before: &Before, after: &LogModel) -> Check {
        if after.start() > before.start_max {
            let detail = format!(
                "{node:?} recovered from {} though it started at {}",
                after.start(),
                before.start_max
            );
            return fail("dense", detail);
        }
        let durable = before.durable_end;
        for b in before.model.range(after.start(), durable).filter(|b| b.end <= durable) {
            if after.at(b.base) != Some(*b) {
                return fail("dense", format!("{node:?} lost durable {b:?} in a crash"));
            }
        }
        Ok(())
    }

    /// Invariant 2 between two whole logs (after a restart).
    pub fn prefixes_agree(a: &ReplicaView<'_>, b: &ReplicaView<'_>) -> Check {
        for m in a.model.batches() {
            if b.model.at(m.base).is_some_and(|y| y.epoch == m.epoch)
                && !agree_up_to(a.model, b.model, m.base)
            {
                let detail = format!(
                    "{:?} and {:?} both hold a batch at {} in epoch {} after different logs",
                    a.node, b.node, m.base, m.epoch
                );
                return fail("prefix", detail);
            }
        }
        Ok(())
    }
}

/// Invariant 1 for one replica and one acknowledged batch.
fn holds(r: &ReplicaView<'_>, m: &BatchMeta, retention_floor: u64) -> Check {
    // Retention deletes committed batches: below the log start is fine, if retention somewhere
    // reached that far.
    if m.end <= r.model.start() && m.end <= retention_floor {
        return Ok(());
    }
    match r.model.at(m.base) {
        Some(b) if b == *m => Ok(()),
        other => fail(
            "acked-durable",
            format!("ISR member {:?} holds {other:?} where {m:?} was acknowledged", r.node),
        ),
    }
}

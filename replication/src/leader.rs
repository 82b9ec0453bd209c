//! The leader's side of a replica: answering fetches, the high watermark, acks=all produces and
//! ISR proposals.

use crate::controller::AlterPartition;
use crate::error::ReplicaError;
use crate::ids::NodeId;
use crate::log_ops::{AppendedRange, LogFailure, LogOp};
use crate::messages::{Acks, FetchAnswer, FetchBody, FetchRefusal, FetchRequest};
use crate::mutation::{Mutation, active};
use crate::replica::{Output, Replica, Role};
use std::collections::BTreeMap;

/// What a leader knows of one follower, from its fetches in the current epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress {
    /// The durable end the follower last reported on a fetch that agreed with this log.
    durable: Option<u64>,
    /// When the follower's fetch last reached the leader's log end (Kafka's lastCaughtUpTime).
    caught_up_ms: u64,
    last_fetch_ms: u64,
    /// The leader's log end at the follower's last fetch.
    log_end_at_last_fetch: u64,
}

/// A produce appended or to be appended, waiting for its acknowledgement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingProduce {
    pub(crate) id: u64,
    acks: Acks,
    pub(crate) range: Option<AppendedRange>,
}

/// An ISR change sent to the controller and not yet answered.
#[derive(Debug, Clone)]
struct PendingAlter {
    request: AlterPartition,
    sent_ms: u64,
    /// Refused because the partition moved on: not sent again; ends when the newer state comes.
    awaiting_state: bool,
    /// Every follower proposed for the ISR against this partition epoch. Each counts towards
    /// the high watermark until the partition epoch moves on, refused or not: a copy of a refused
    /// proposal may still be in flight, and the controller may accept it later (a fenced
    /// follower back, say).
    added: Vec<NodeId>,
}

/// The leader's state in one leader epoch.
#[derive(Debug)]
pub(crate) struct LeaderState {
    followers: BTreeMap<NodeId, Progress>,
    /// Where this epoch starts in the log, once recorded.
    epoch_start: Option<u64>,
    pub(crate) produces: Vec<PendingProduce>,
    alter: Option<PendingAlter>,
    /// Followers whose addition the controller refused (fenced there, say), and until when
    /// they are not proposed again: each refusal costs a fencing commit.
    refused_until_ms: BTreeMap<NodeId, u64>,
}

impl Replica {
    /// Takes the lead in the epoch of the adopted state: records the epoch in the log before
    /// any append, and gives every follower the lag allowance from now (Kafka does the same).
    pub(crate) fn become_leader(&mut self, now_ms: u64) -> Role {
        let view = self.view.as_ref().expect("a leader was named by a state");
        let fresh =
            Progress { durable: None, caught_up_ms: now_ms, last_fetch_ms: now_ms, log_end_at_last_fetch: 0 };
        let followers = view.replicas.iter().filter(|&&r| r != self.id).map(|&r| (r, fresh)).collect();
        self.queue(LogOp::BeginEpoch { epoch: view.leader_epoch });
        Role::Leader(LeaderState {
            followers,
            epoch_start: None,
            produces: Vec::new(),
            alter: None,
            refused_until_ms: BTreeMap::new(),
        })
    }

    /// `epoch` was recorded at `start` (the `drive` after every log event then moves what a
    /// recorded epoch unblocks). The replica may have stopped leading it meanwhile:
    /// then, following, it drops the epoch again (it wrote nothing), else its log would refuse
    /// the new leader's batches of an older epoch.
    pub(crate) fn on_epoch_begun(&mut self, epoch: u32, start: u64) {
        self.epochs.assign(epoch, start);
        let current = self.offsets.leader_epoch();
        match &mut self.role {
            Role::Leader(l) if epoch == current => l.epoch_start = Some(start),
            Role::Follower(_) if start == self.offsets.log_end() => {
                self.queue(LogOp::Truncate { offset: start });
            }
            _ => {}
        }
    }

    /// Takes a produce: refused at once when not leading or, for acks=all, when too few
    /// replicas are in sync (nothing is appended then). Otherwise the append is queued and
    /// the outcome comes as [`Output::ProduceDone`].
    pub fn handle_produce(&mut self, now_ms: u64, produce: u64, acks: Acks) -> Result<(), ReplicaError> {
        let Role::Leader(_) = &self.role else { return Err(self.not_leader()) };
        if self.failed {
            return Err(ReplicaError::Storage { reason: "the log failed" });
        }
        let in_sync = self.view.as_ref().map_or(0, |v| v.isr.len());
        let required = self.config.min_insync_replicas;
        if acks == Acks::All && in_sync < required {
            return Err(ReplicaError::NotEnoughReplicas { in_sync, required });
        }
        let leader_epoch = self.offsets.leader_epoch();
        self.queue(LogOp::AppendProduce { produce, leader_epoch });
        if let Role::Leader(l) = &mut self.role {
            l.produces.push(PendingProduce { id: produce, acks, range: None });
        }
        self.drive(now_ms);
        Ok(())
    }

    pub(crate) fn on_produce_appended(&mut self, produce: u64, result: Result<AppendedRange, LogFailure>) {
        if let Ok(r) = result {
            self.on_appended(r);
        }
        let Role::Leader(l) = &mut self.role else {
            // Deposed while the append ran: the produce was already failed.
            self.failed |= result.is_err_and(|f| f.log_failed);
            return;
        };
        // A produce of an earlier leadership of this replica was failed when it ended.
        let Some(at) = l.produces.iter().position(|p| p.id == produce) else { return };
        match result {
            Ok(r) => l.produces[at].range = Some(r),
            Err(f) => {
                l.produces.remove(at);
                let result = Err(ReplicaError::Storage { reason: f.reason });
                self.out.push_back(Output::ProduceDone { produce, result });
                self.failed |= f.log_failed;
            }
        }
    }

    /// The produce's batch was in the log already at `range`: it is answered with that range
    /// once the range is as durable as its acks ask, as the original would have been.
    pub(crate) fn on_produce_found(&mut self, produce: u64, range: AppendedRange) {
        assert!(
            range.base < range.end && range.end <= self.offsets.log_end(),
            "found batches lie in the log"
        );
        let Role::Leader(l) = &mut self.role else { return };
        if let Some(p) = l.produces.iter_mut().find(|p| p.id == produce) {
            p.range = Some(range);
        }
    }

    /// Answers a follower's fetch: refused if it does not belong to this epoch, diverging if
    /// its log disagrees with this one (KIP-279), else records from its fetch offset. A fetch
    /// that agrees reports the follower's durable end, which may move the high watermark.
    pub fn handle_fetch(&mut self, now_ms: u64, req: &FetchRequest) -> FetchAnswer {
        let body = self.fetch_body(now_ms, req);
        if matches!(body, FetchBody::Records { .. }) {
            self.leader_drive(now_ms);
        }
        FetchAnswer {
            partition: self.partition,
            request_id: req.request_id,
            leader_epoch: self.offsets.leader_epoch(),
            high_watermark: self.offsets.high_watermark(),
            log_start: self.offsets.log_start(),
            body,
        }
    }

    fn fetch_body(&mut self, now_ms: u64, req: &FetchRequest) -> FetchBody {
        let refuse = FetchBody::Refused;
        let Role::Leader(l) = &self.role else { return refuse(FetchRefusal::NotLeader) };
        let epoch = self.offsets.leader_epoch();
        // Until the epoch is recorded, an append fetched before the election may still land:
        // answers from the log as it is now could be contradicted by it.
        if l.epoch_start.is_none() && req.leader_epoch == epoch {
            return refuse(FetchRefusal::LeaderNotReady);
        }
        if req.leader_epoch < epoch {
            return refuse(FetchRefusal::FencedLeaderEpoch);
        }
        if req.leader_epoch > epoch {
            return refuse(FetchRefusal::UnknownLeaderEpoch);
        }
        let (log_start, log_end) = (self.offsets.log_start(), self.offsets.log_end());
        match req.last_fetched_epoch {
            Some(asked) => match self.epochs.end_offset_for(asked, log_end) {
                None => return FetchBody::Diverging { epoch: None, end_offset: log_start },
                Some(e) if e.epoch != asked || e.end_offset < req.fetch_offset => {
                    return FetchBody::Diverging { epoch: Some(e.epoch), end_offset: e.end_offset };
                }
                Some(_) => {}
            },
            // An empty log has nothing to disagree with, wherever it starts within this one.
            None if req.log_start == req.fetch_offset && req.fetch_offset >= log_start => {}
            // Batches without an epoch to check them by (a log that lost its epoch cache), or an
            // empty log below this one's start: it starts over here.
            None => return FetchBody::Diverging { epoch: None, end_offset: log_start },
        }
        if req.fetch_offset < log_start {
            // Retention deleted what the follower lacks: it starts over at this log's start.
            return FetchBody::Diverging { epoch: None, end_offset: log_start };
        }
        if req.fetch_offset > log_end {
            return refuse(FetchRefusal::OffsetOutOfRange { log_start, log_end });
        }
        let Role::Leader(l) = &mut self.role else { unreachable!("checked above") };
        let Some(p) = l.followers.get_mut(&req.replica) else { return refuse(FetchRefusal::UnknownReplica) };
        // The follower's log agrees with this one up to its fetch offset: what it holds durably
        // below that is a copy of this log.
        p.durable = Some(req.durable_offset.min(req.fetch_offset));
        if req.fetch_offset >= log_end {
            p.caught_up_ms = now_ms;
        } else if req.fetch_offset >= p.log_end_at_last_fetch {
            p.caught_up_ms = p.caught_up_ms.max(p.last_fetch_ms);
        }
        p.last_fetch_ms = now_ms;
        p.log_end_at_last_fetch = log_end;
        FetchBody::Records { fetch_offset: req.fetch_offset }
    }

    /// The controller changed the ISR in this epoch (an accepted proposal, or a member it
    /// fenced): a proposal it supersedes is void, and the high watermark may move.
    pub(crate) fn on_isr_changed(&mut self, now_ms: u64) {
        let pe = self.view.as_ref().map_or(0, |v| v.partition_epoch);
        if let Role::Leader(l) = &mut self.role
            && l.alter.as_ref().is_some_and(|a| a.request.partition_epoch < pe)
        {
            l.alter = None;
        }
        self.leader_drive(now_ms);
    }

    /// The controller's answer to an ISR proposal. An accepted one is adopted like any newer
    /// state (which ends the proposal). A refusal because the partition moved on (a newer
    /// partition or leader epoch, another leader) keeps the proposal's additions counted until
    /// the newer state arrives: the refusal may answer a duplicate of a proposal the controller
    /// accepted, and a follower it added must keep holding the high watermark back. Any other
    /// refusal left the controller's state as it was, and ends the proposal.
    /// An answer to another proposal than the one pending (a duplicate, or a late one) says
    /// nothing about it, unless it carries a newer state.
    pub fn handle_alter_answer(
        &mut self,
        now_ms: u64,
        request: &AlterPartition,
        answer: Result<crate::controller::PartitionState, crate::error::ControllerError>,
    ) {
        use crate::error::ControllerError as E;
        let pending =
            matches!(&self.role, Role::Leader(l) if l.alter.as_ref().is_some_and(|a| a.request == *request));
        match answer {
            Ok(state) => self.handle_partition_state(now_ms, &state),
            Err(_) if !pending => {}
            Err(E::StalePartitionEpoch { .. } | E::FencedLeaderEpoch { .. } | E::NotLeader { .. }) => {
                if let Role::Leader(l) = &mut self.role
                    && let Some(a) = &mut l.alter
                {
                    a.awaiting_state = true;
                }
            }
            Err(_) => self.fence_proposals(now_ms),
        }
    }

    /// After a refusal that left the controller's state as it was: proposes the ISR as it is,
    /// which the controller accepts with a new partition epoch, so every copy of the refused
    /// proposal still in flight is refused from then on and its additions stop counting.
    fn fence_proposals(&mut self, now_ms: u64) {
        let Some(view) = self.view.clone() else { return };
        let Role::Leader(l) = &mut self.role else { return };
        let Some(a) = &mut l.alter else { return };
        let until = now_ms + self.config.alter_timeout_ms;
        for &n in &a.added {
            l.refused_until_ms.insert(n, until);
        }
        a.request.isr = view.isr.clone();
        a.sent_ms = now_ms;
        self.out.push_back(Output::AlterPartition(a.request.clone()));
    }

    pub(crate) fn leader_drive(&mut self, now_ms: u64) {
        self.advance_high_watermark();
        self.complete_produces();
        self.review_isr(now_ms);
    }

    /// The members the high watermark waits for: the controller's ISR and any follower this
    /// leader proposed to add (an expansion counts at once, a shrink only once accepted).
    fn maximal_isr(&self) -> Vec<NodeId> {
        let Some(view) = &self.view else { return Vec::new() };
        let mut isr = view.isr.clone();
        if let Role::Leader(l) = &self.role
            && let Some(a) = &l.alter
        {
            isr.extend(a.added.iter().filter(|n| !view.isr.contains(n)));
        }
        isr
    }

    /// Moves the high watermark to the lowest durable end over the maximal ISR, the leader's
    /// own included, if the controller's ISR has at least `min_insync_replicas` members.
    fn advance_high_watermark(&mut self) {
        let Role::Leader(l) = &self.role else { return };
        let committed_isr = self.view.as_ref().map_or(0, |v| v.isr.len());
        let candidate = if active(Mutation::HighWatermarkFromLeaderOnly) {
            self.offsets.log_end()
        } else {
            if committed_isr < self.config.min_insync_replicas || l.epoch_start.is_none() {
                return;
            }
            let followers = self.maximal_isr().into_iter().filter(|&n| n != self.id);
            followers
                .map(|n| l.followers.get(&n).and_then(|p| p.durable).unwrap_or(0))
                .fold(self.durable_end, u64::min)
        };
        self.offsets.advance_high_watermark(candidate.min(self.offsets.log_end()));
    }

    /// Answers the produces whose acknowledgement condition now holds.
    fn complete_produces(&mut self) {
        let (hw, durable) = (self.offsets.high_watermark(), self.durable_end);
        let Role::Leader(l) = &mut self.role else { return };
        let out = &mut self.out;
        l.produces.retain(|p| {
            let Some(r) = p.range else { return true };
            let done = match p.acks {
                Acks::Leader => durable >= r.end,
                Acks::All => hw >= r.end,
            };
            if done {
                out.push_back(Output::ProduceDone { produce: p.id, result: Ok(r) });
            }
            !done
        });
    }

    /// Proposes one ISR change at a time: first removing followers that lagged for longer than
    /// `replica_lag_time_max_ms`, else adding followers whose durable copy reached both the high
    /// watermark and the start of this epoch.
    fn review_isr(&mut self, now_ms: u64) {
        let (hw, lag_max) = (self.offsets.high_watermark(), self.config.replica_lag_time_max_ms);
        let Some(view) = self.view.clone() else { return };
        let Role::Leader(l) = &mut self.role else { return };
        if let Some(a) = &mut l.alter {
            if !a.awaiting_state && now_ms.saturating_sub(a.sent_ms) >= self.config.alter_timeout_ms {
                a.sent_ms = now_ms;
                self.out.push_back(Output::AlterPartition(a.request.clone()));
            }
            return;
        }
        let lagging =
            |n: &NodeId| l.followers.get(n).is_some_and(|p| now_ms.saturating_sub(p.caught_up_ms) > lag_max);
        let caught_up = |n: &NodeId| {
            if l.refused_until_ms.get(n).is_some_and(|&t| now_ms < t) {
                return false;
            }
            let reached = hw.max(l.epoch_start.unwrap_or(u64::MAX));
            l.followers.get(n).and_then(|p| p.durable).is_some_and(|d| d >= reached)
        };
        let shrunk: Vec<NodeId> = view.isr.iter().copied().filter(|n| *n == self.id || !lagging(n)).collect();
        let isr = if shrunk.len() < view.isr.len() {
            shrunk
        } else {
            let grown: Vec<NodeId> =
                view.replicas.iter().copied().filter(|n| view.isr.contains(n) || caught_up(n)).collect();
            if grown.len() == view.isr.len() {
                return;
            }
            grown
        };
        let request = AlterPartition {
            partition: self.partition,
            leader: self.id,
            leader_epoch: view.leader_epoch,
            partition_epoch: view.partition_epoch,
            isr,
        };
        let added = request.isr.iter().copied().filter(|n| !view.isr.contains(n)).collect();
        l.alter =
            Some(PendingAlter { request: request.clone(), sent_ms: now_ms, awaiting_state: false, added });
        self.out.push_back(Output::AlterPartition(request));
    }
}

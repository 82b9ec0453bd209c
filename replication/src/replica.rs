//! The replica state machine: one copy of one partition, as leader, follower or neither.
//!
//! Sans-IO, in the style of quinn-proto. Inputs are `handle_*` calls and [`Replica::tick`], each
//! with `now_ms`; outputs are taken with [`Replica::poll_log_op`] (log operations, performed by
//! the caller one at a time and reported back with [`Replica::handle_log_event`]) and
//! [`Replica::poll_output`] (messages to send and produce requests to complete).
//!
//! ```text
//!                 controller state names another leader
//!        ┌──────────────────────────────────────────────────────────┐
//!        ▼                                                          │
//!   ┌──────────┐  state names me leader (new epoch)  ┌────────┐      │
//!   │ Follower │ ──────────────────────────────────▶ │ Leader │ ─────┘
//!   └──────────┘ ◀─────────────────────────────────  └────────┘
//!     ▲      │    state names another leader            │  ▲
//!     │      │                                          │  │ state names me leader
//!     │      ▼ state names no leader, or I left the     ▼  │
//!   ┌──────────────────────────────────────────────────────────┐
//!   │ Offline: answers NotLeader; waits for the controller     │
//!   └──────────────────────────────────────────────────────────┘
//! ```
//!
//! Follower loop: `Fetch(fetch offset, last fetched epoch, durable offset, leader epoch)` →
//! `Records` (append the leader's batches with their offsets and epochs, then flush; the next
//! fetch reports the new durable offset) or `Diverging(epoch, end)` (truncate, fetch again, until
//! the logs agree: KIP-279) or `Refused` (back off).
//!
//! Leader: answers fetches from its epoch cache; counts a follower's *durable* offset towards
//! the high watermark, which is the lowest durable log end over the ISR (the leader's own
//! included) and moves only while the ISR has `min_insync_replicas` members; proposes ISR
//! changes to the controller (a shrink counts once accepted, an expansion at once: KIP-841).
//!
//! Owned by the shard that owns the partition replica; single-threaded, no I/O, no clock.

use crate::config::ReplicaConfig;
use crate::controller::{AlterPartition, PartitionState};
use crate::error::ReplicaError;
use crate::follower::FollowerState;
use crate::ids::{NodeId, PartitionId};
use crate::leader::LeaderState;
use crate::log_ops::{AppendedRange, LogEvent, LogOp};
use crate::messages::FetchRequest;
use crate::mutation::{Mutation, active};
use crate::replica_state::ReplicaState;
use std::collections::VecDeque;
use weir_log::epoch_cache::{EpochCache, EpochEntry};

/// What a replica wants sent or answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Fetch { to: NodeId, request: FetchRequest },
    AlterPartition(AlterPartition),
    ProduceDone { produce: u64, result: Result<AppendedRange, ReplicaError> },
}

/// A replica's role in its current leader epoch.
#[derive(Debug)]
pub(crate) enum Role {
    Offline,
    Leader(LeaderState),
    Follower(FollowerState),
}

/// What the log held when the replica was created (opened or reopened).
#[derive(Debug, Clone)]
pub struct Recovered {
    pub log_start: u64,
    pub log_end: u64,
    /// The log's leader-epoch cache, oldest first.
    pub epochs: Vec<EpochEntry>,
}

/// One replica of one partition. See the module documentation.
#[derive(Debug)]
pub struct Replica {
    pub(crate) id: NodeId,
    pub(crate) partition: PartitionId,
    pub(crate) config: ReplicaConfig,
    /// Distinguishes this replica's fetch ids from those of an earlier life of it.
    pub(crate) incarnation: u64,
    pub(crate) next_request: u64,
    /// The controller's latest decision this replica adopted.
    pub(crate) view: Option<PartitionState>,
    pub(crate) offsets: ReplicaState,
    /// Every offset below this is durable in the log.
    pub(crate) durable_end: u64,
    pub(crate) epochs: EpochCache,
    pub(crate) role: Role,
    ops: VecDeque<LogOp>,
    /// The operation the caller took and has not reported yet.
    taken: Option<LogOp>,
    pub(crate) out: VecDeque<Output>,
    pub(crate) failed: bool,
    /// Set once the controller answered this incarnation: states before that are ignored.
    registered: bool,
}

impl Replica {
    /// A replica over a log just opened, offline until it learns the controller's state. Its
    /// high watermark starts at the log start: it learns the committed end from its leader.
    pub fn new(
        id: NodeId,
        partition: PartitionId,
        config: ReplicaConfig,
        recovered: Recovered,
        incarnation: u64,
    ) -> Self {
        let mut epochs = EpochCache::default();
        for e in &recovered.epochs {
            assert!(epochs.assign(e.epoch, e.start_offset), "a log's epochs only grow");
        }
        let epoch = epochs.latest().map_or(0, |e| e.epoch);
        let (start, end) = (recovered.log_start, recovered.log_end);
        Self {
            id,
            partition,
            config,
            incarnation,
            next_request: 0,
            view: None,
            offsets: ReplicaState::recovered(start, end, start, epoch),
            durable_end: end,
            epochs,
            role: Role::Offline,
            ops: VecDeque::new(),
            taken: None,
            out: VecDeque::new(),
            failed: false,
            registered: false,
        }
    }

    /// This replica's incarnation: its node announces it to the controller (heartbeats), whose
    /// answer for it goes to [`handle_registration`](Self::handle_registration).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn offsets(&self) -> ReplicaState {
        self.offsets
    }

    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// Where this follower's log should start, learnt from its leader's (moved by a
    /// DeleteRecords there, or by its retention), as Kafka's followers do: at most its own high
    /// watermark, so only committed records go. `None` when it starts there already, or does
    /// not follow. The caller deletes the records below and reports the new start with
    /// [`handle_log_start`](Self::handle_log_start).
    pub fn log_start_to_follow(&self) -> Option<u64> {
        let Role::Follower(f) = &self.role else { return None };
        let target = f.leader_log_start.min(self.offsets.high_watermark());
        (target > self.offsets.log_start()).then_some(target)
    }

    /// The leader this replica follows, if it follows one.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(_) => Some(self.id),
            Role::Follower(f) => Some(f.leader),
            Role::Offline => None,
        }
    }

    pub fn view(&self) -> Option<&PartitionState> {
        self.view.as_ref()
    }

    /// The log failed an operation: the caller reopens it and makes a new replica over it.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The epoch of the last batch in the log: the latest epoch that starts below the log end
    /// (an epoch recorded at the end wrote nothing yet).
    pub(crate) fn last_batch_epoch(&self) -> Option<u32> {
        let end = self.offsets.log_end();
        self.epochs.entries().iter().rev().find(|e| e.start_offset < end).map(|e| e.epoch)
    }

    pub(crate) fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        (self.incarnation << 32) | self.next_request
    }

    /// The controller's answer to a heartbeat of `incarnation`: the state once it knew of it.
    /// Until this replica's own incarnation is answered, it adopts no state: one sent before
    /// the controller knew of the restart may name it leader of an epoch its previous life led,
    /// and two lives must never lead one epoch (the controller re-elects a restarted leader).
    pub fn handle_registration(&mut self, now_ms: u64, incarnation: u64, state: &PartitionState) {
        if incarnation == self.incarnation {
            self.registered = true;
            self.handle_partition_state(now_ms, state);
        }
    }

    /// Adopts the controller's decision if it is newer than the one held (by partition epoch,
    /// and never of an older leader epoch): a new leader epoch changes the role, a new ISR
    /// changes what the leader waits for. Ignored before [`handle_registration`](Self::handle_registration).
    pub fn handle_partition_state(&mut self, now_ms: u64, state: &PartitionState) {
        if self.failed || !self.registered {
            return;
        }
        let newer = self.view.as_ref().is_none_or(|v| state.partition_epoch > v.partition_epoch)
            && state.leader_epoch >= self.offsets.leader_epoch();
        if !newer && !active(Mutation::AcceptStaleEpoch) {
            return;
        }
        let epoch_changed = self.view.as_ref().is_none_or(|v| v.leader_epoch != state.leader_epoch);
        self.view = Some(state.clone());
        if !epoch_changed {
            if let Role::Leader(_) = self.role {
                self.on_isr_changed(now_ms);
            }
            return;
        }
        self.offsets.set_leader_epoch(state.leader_epoch);
        self.leave_role();
        self.role = match state.leader {
            Some(l) if l == self.id && state.replicas.contains(&self.id) => self.become_leader(now_ms),
            Some(l) if state.replicas.contains(&self.id) => self.become_follower(l),
            _ => Role::Offline,
        };
        self.drive(now_ms);
    }

    /// Follows `leader`: first drops, from the log, an epoch this replica began as leader and
    /// wrote nothing in, else its log would refuse the new leader's batches of an older epoch
    /// as stale.
    fn become_follower(&mut self, leader: NodeId) -> Role {
        let end = self.offsets.log_end();
        if self.epochs.latest().is_some_and(|e| e.start_offset >= end) {
            self.queue(LogOp::Truncate { offset: end });
        }
        Role::Follower(FollowerState::new(leader))
    }

    /// Ends the current role: operations queued for it are dropped (never started), and a
    /// leader's pending produces fail.
    fn leave_role(&mut self) {
        self.ops.retain(|op| matches!(op, LogOp::Flush));
        if let Role::Leader(leader) = std::mem::replace(&mut self.role, Role::Offline) {
            for p in leader.produces {
                let error = match p.range {
                    Some(_) => ReplicaError::LeadershipLost,
                    None if matches!(self.taken, Some(LogOp::AppendProduce { produce, .. }) if produce == p.id) => {
                        ReplicaError::LeadershipLost
                    }
                    None => self.not_leader(),
                };
                self.out.push_back(Output::ProduceDone { produce: p.id, result: Err(error) });
            }
        }
    }

    pub(crate) fn not_leader(&self) -> ReplicaError {
        let leader = self.view.as_ref().and_then(|v| v.leader);
        ReplicaError::NotLeader { leader, leader_epoch: self.offsets.leader_epoch() }
    }

    /// Time passed: a follower fetches when due, a leader reviews its ISR.
    pub fn tick(&mut self, now_ms: u64) {
        if !self.failed {
            self.drive(now_ms);
        }
    }

    /// The work every input may have made due.
    pub(crate) fn drive(&mut self, now_ms: u64) {
        if self.offsets.log_end() > self.durable_end && !self.flush_pending() {
            self.ops.push_back(LogOp::Flush);
        }
        match self.role {
            Role::Leader(_) => self.leader_drive(now_ms),
            Role::Follower(_) => {
                self.follower_high_watermark();
                self.follower_drive(now_ms);
            }
            Role::Offline => {}
        }
    }

    fn flush_pending(&self) -> bool {
        matches!(self.taken, Some(LogOp::Flush)) || self.ops.contains(&LogOp::Flush)
    }

    /// Whether an operation that moves the log end (an append of fetched batches or a
    /// truncation) is queued or under way: a follower fetches only from a settled log end.
    pub(crate) fn log_end_unsettled(&self) -> bool {
        // An epoch begun as leader, reported after the deposition, is cut again (see
        // `on_epoch_begun`): fetched batches must not land before that cut.
        let moves = |op: &LogOp| {
            matches!(
                op,
                LogOp::AppendFetched { .. }
                    | LogOp::Truncate { .. }
                    | LogOp::StartOver { .. }
                    | LogOp::BeginEpoch { .. }
            )
        };
        self.taken.as_ref().is_some_and(moves) || self.ops.iter().any(moves)
    }

    pub(crate) fn queue(&mut self, op: LogOp) {
        self.ops.push_back(op);
    }

    /// The next log operation to perform, once the previous one was reported.
    pub fn poll_log_op(&mut self) -> Option<LogOp> {
        if self.taken.is_some() || self.failed {
            return None;
        }
        self.taken = self.ops.pop_front();
        self.taken
    }

    /// The next message to send or produce to complete.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// A log operation from [`poll_log_op`](Self::poll_log_op) completed.
    pub fn handle_log_event(&mut self, now_ms: u64, event: LogEvent) {
        let op = self.taken.take();
        assert!(op.is_some(), "a log event without an operation under way: {event:?}");
        match event {
            LogEvent::EpochBegun { result: Ok(start) } => {
                let Some(LogOp::BeginEpoch { epoch }) = op else { panic!("{event:?} reports {op:?}") };
                self.on_epoch_begun(epoch, start);
            }
            LogEvent::ProduceAppended { produce, result } => self.on_produce_appended(produce, result),
            LogEvent::ProduceFound { produce, range } => self.on_produce_found(produce, range),
            LogEvent::FetchedAppended { request_id, appended, failure } => {
                for r in &appended {
                    self.on_appended(*r);
                }
                self.on_fetched_appended(now_ms, request_id, appended.is_empty(), failure);
            }
            LogEvent::Flushed { result: Ok(durable) } => self.on_flushed(durable),
            LogEvent::Truncated { result: Ok(end) } => self.on_truncated(now_ms, end),
            LogEvent::StartedOver { result: Ok(start) } => self.on_started_over(now_ms, start),
            LogEvent::EpochBegun { result: Err(_) }
            | LogEvent::Flushed { result: Err(_) }
            | LogEvent::Truncated { result: Err(_) }
            | LogEvent::StartedOver { result: Err(_) } => self.failed = true,
        }
        if !self.failed {
            self.drive(now_ms);
        }
    }

    /// Batches were appended to the log (by either role).
    pub(crate) fn on_appended(&mut self, r: AppendedRange) {
        assert_eq!(r.base, self.offsets.log_end(), "an append lands at the log end");
        assert!(r.end > r.base, "an append adds offsets");
        self.offsets.appended(r.end);
        self.epochs.assign(r.epoch, r.base);
    }

    /// What the new durable end moves (a high watermark, acknowledgements) the `drive` after
    /// every log event moves.
    fn on_flushed(&mut self, durable: u64) {
        assert!(durable <= self.offsets.log_end(), "durable end {durable} past the log end");
        self.durable_end = self.durable_end.max(durable);
    }

    /// Retention deleted the log's batches below `log_start`, which the caller ran between two
    /// log operations and only below the high watermark: committed records only.
    pub fn handle_log_start(&mut self, log_start: u64) {
        self.offsets.advance_log_start(log_start);
        self.epochs.truncate_from_start(log_start);
    }

    fn on_started_over(&mut self, now_ms: u64, start: u64) {
        self.offsets.start_over_at(start);
        self.durable_end = start;
        self.epochs = EpochCache::default();
        if let Role::Follower(f) = &mut self.role {
            f.fetch_after_ms = now_ms;
            f.agreed_end = start;
        }
    }

    fn on_truncated(&mut self, now_ms: u64, end: u64) {
        assert!(end <= self.offsets.log_end(), "a truncation never lengthens the log");
        if end < self.offsets.log_start() {
            // A cut below the log start empties the log, which starts again there.
            return self.on_started_over(now_ms, end);
        }
        self.offsets.truncate_to(end);
        self.durable_end = self.durable_end.min(end);
        self.epochs.truncate_from_end(end);
        if let Role::Follower(f) = &mut self.role {
            f.fetch_after_ms = now_ms;
            f.agreed_end = f.agreed_end.min(end);
        }
    }
}

//! A hand-driven harness for replica scenario tests: each replica runs over a fake log (a list
//! of `(base, end, epoch)` batches and a durable end), and fetches travel between replicas at
//! once, in order, unless a replica is cut off. Time moves only when a test says so.

#![allow(dead_code)]

use std::collections::HashMap;
use weir_log::epoch_cache::EpochEntry;
use weir_replication::{
    Acks, AlterPartition, AppendedRange, FetchAnswer, FetchBody, FetchRequest, LogEvent, LogFailure, LogOp,
    NodeId, Output, PartitionId, PartitionState, Recovered, Replica, ReplicaConfig, ReplicaError,
};

/// A batch of the fake log: offsets `[base, end)`, written in `epoch`.
pub type Batch = (u64, u64, u32);

pub const PARTITION: PartitionId = PartitionId(7);

/// The state of a partition over `replicas`, as the controller would publish it.
pub fn state(
    replicas: &[u32],
    leader: u32,
    leader_epoch: u32,
    partition_epoch: u32,
    isr: &[u32],
) -> PartitionState {
    PartitionState {
        replicas: replicas.iter().map(|&n| NodeId(n)).collect(),
        leader: Some(NodeId(leader)),
        leader_epoch,
        partition_epoch,
        isr: isr.iter().map(|&n| NodeId(n)).collect(),
        elr: Vec::new(),
    }
}

/// A config with short timings, so scenarios cross them in a few steps.
pub fn config(min_insync_replicas: usize) -> ReplicaConfig {
    ReplicaConfig {
        min_insync_replicas,
        replica_lag_time_max_ms: 1_000,
        fetch_backoff_ms: 100,
        fetch_timeout_ms: 500,
        alter_timeout_ms: 10_000,
    }
}

/// A log as a list of batches; every offset below `durable` survives a crash. Like the real
/// log it keeps an epoch cache, records an epoch begun before any append of it, and refuses a
/// fetched batch of an epoch older than its latest.
#[derive(Debug, Clone, Default)]
pub struct FakeLog {
    pub batches: Vec<Batch>,
    pub durable: u64,
    pub epochs: Vec<EpochEntry>,
    /// The log start: retention deleted every offset below it.
    pub start: u64,
}

impl FakeLog {
    pub fn end(&self) -> u64 {
        self.batches.last().map_or(self.start, |b| b.1)
    }

    /// The batches from `offset` on, as a leader sends them with a fetch answer.
    pub fn read_from(&self, offset: u64) -> Vec<Batch> {
        self.batches.iter().copied().filter(|b| b.0 >= offset).collect()
    }

    /// A log of `batches` from `start`, all durable, with the epoch cache it recovers.
    pub fn recovered(start: u64, batches: &[Batch]) -> Self {
        let mut log = Self { start, ..Self::default() };
        for &b in batches {
            log.push(b);
        }
        log.durable = log.end();
        log
    }

    pub fn latest_epoch(&self) -> Option<u32> {
        self.epochs.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start`, if it is newer than the latest.
    fn note_epoch(&mut self, epoch: u32, start: u64) {
        if self.latest_epoch().is_some_and(|l| l >= epoch) {
            return;
        }
        self.epochs.retain(|e| e.start_offset < start);
        self.epochs.push(EpochEntry { epoch, start_offset: start });
    }

    fn push(&mut self, b: Batch) {
        assert_eq!(b.0, self.end(), "a batch lands at the log end");
        self.note_epoch(b.2, b.0);
        self.batches.push(b);
    }

    /// Cuts the log at `offset` (at the start of the batch holding it), and drops the epochs
    /// that start there or later.
    fn truncate(&mut self, offset: u64) -> u64 {
        self.batches.retain(|b| b.1 <= offset);
        // A cut below the log start empties the log, which starts there from then on.
        self.start = self.start.min(offset);
        let end = self.end();
        self.durable = self.durable.min(end);
        self.epochs.retain(|e| e.start_offset < end);
        end
    }

    fn start_over(&mut self, offset: u64) -> u64 {
        assert!(offset > self.end(), "a log starts over past its end");
        self.batches.clear();
        self.epochs.clear();
        (self.start, self.durable) = (offset, offset);
        offset
    }

    /// Appends fetched batches at the log end, stopping at the first the log refuses.
    fn append_fetched(&mut self, batches: Vec<Batch>) -> (Vec<AppendedRange>, Option<LogFailure>) {
        let mut appended = Vec::new();
        for (base, end, epoch) in batches {
            if base != self.end() {
                return (appended, Some(refusal("offset gap or overlap")));
            }
            if self.latest_epoch().is_some_and(|l| epoch < l) {
                return (appended, Some(refusal("stale leader epoch")));
            }
            self.push((base, end, epoch));
            appended.push(AppendedRange { base, end, epoch });
        }
        (appended, None)
    }
}

fn refusal(reason: &'static str) -> LogFailure {
    LogFailure { reason, log_failed: false }
}

/// One replica, its fake log, and what it said.
#[derive(Debug)]
pub struct Node {
    pub replica: Replica,
    pub log: FakeLog,
    /// Every log operation the replica handed out, in order.
    pub ops: Vec<LogOp>,
    /// An operation taken but not performed, because `hold` matched it.
    pub held: Option<LogOp>,
    /// Operations this matches are taken but held back (a slow disk) until released.
    pub hold: Option<fn(&LogOp) -> bool>,
    /// The next produce append fails with this, and changes nothing.
    pub fail_next_produce: Option<LogFailure>,
    /// The batches of fetch answers the replica kept, by request id.
    fetched: HashMap<u64, Vec<Batch>>,
    pub outbox: Vec<(NodeId, FetchRequest)>,
    pub answers: Vec<FetchAnswer>,
    pub done: Vec<(u64, Result<AppendedRange, ReplicaError>)>,
    pub alters: Vec<AlterPartition>,
}

impl Node {
    pub fn new(id: u32, config: ReplicaConfig, batches: &[Batch]) -> Self {
        Self::starting_at(id, config, 0, batches)
    }

    /// A replica over a log whose start retention moved to `start`.
    pub fn starting_at(id: u32, config: ReplicaConfig, start: u64, batches: &[Batch]) -> Self {
        let log = FakeLog::recovered(start, batches);
        let (log_start, log_end, epochs) = (start, log.end(), log.epochs.clone());
        let recovered = Recovered { log_start, log_end, epochs };
        let replica = Replica::new(NodeId(id), PARTITION, config, recovered, 1);
        Self {
            replica,
            log,
            ops: Vec::new(),
            held: None,
            hold: None,
            fail_next_produce: None,
            fetched: HashMap::new(),
            outbox: Vec::new(),
            answers: Vec::new(),
            done: Vec::new(),
            alters: Vec::new(),
        }
    }

    /// Performs `op` on the fake log and returns its completion. A produce adds one offset.
    pub fn perform(&mut self, op: LogOp) -> LogEvent {
        match op {
            LogOp::BeginEpoch { epoch } => {
                let end = self.log.end();
                self.log.note_epoch(epoch, end);
                LogEvent::EpochBegun { result: Ok(end) }
            }
            LogOp::AppendProduce { produce, .. } if self.fail_next_produce.is_some() => {
                LogEvent::ProduceAppended { produce, result: Err(self.fail_next_produce.take().unwrap()) }
            }
            LogOp::AppendProduce { produce, leader_epoch } => {
                let base = self.log.end();
                self.log.push((base, base + 1, leader_epoch));
                let range = AppendedRange { base, end: base + 1, epoch: leader_epoch };
                LogEvent::ProduceAppended { produce, result: Ok(range) }
            }
            LogOp::AppendFetched { request_id } => {
                let batches = self.fetched.remove(&request_id).unwrap_or_default();
                let (appended, failure) = self.log.append_fetched(batches);
                LogEvent::FetchedAppended { request_id, appended, failure }
            }
            LogOp::Flush => {
                self.log.durable = self.log.end();
                LogEvent::Flushed { result: Ok(self.log.durable) }
            }
            LogOp::Truncate { offset } => LogEvent::Truncated { result: Ok(self.log.truncate(offset)) },
            LogOp::StartOver { offset } => LogEvent::StartedOver { result: Ok(self.log.start_over(offset)) },
        }
    }

    /// Takes the next operation (recording it) without performing it.
    pub fn take_op(&mut self) -> Option<LogOp> {
        let op = self.replica.poll_log_op()?;
        self.ops.push(op);
        Some(op)
    }

    /// Performs `op` and reports it to the replica.
    pub fn complete(&mut self, now_ms: u64, op: LogOp) {
        let event = self.perform(op);
        self.replica.handle_log_event(now_ms, event);
    }

    /// Performs operations until none is left, or one is held. Returns how many ran.
    pub fn run_log(&mut self, now_ms: u64) -> usize {
        let mut ran = 0;
        while self.held.is_none() {
            let Some(op) = self.take_op() else { break };
            if self.hold.is_some_and(|h| h(&op)) {
                self.held = Some(op);
                break;
            }
            self.complete(now_ms, op);
            ran += 1;
        }
        ran
    }

    /// Holds back every flush from now on.
    pub fn hold_flushes(&mut self) {
        self.hold = Some(|op| *op == LogOp::Flush);
    }

    /// Performs the held operation, and holds nothing from now on.
    pub fn release(&mut self, now_ms: u64) {
        self.hold = None;
        if let Some(op) = self.held.take() {
            self.complete(now_ms, op);
        }
    }

    /// Sorts what the replica output into the outbox and the records of the test.
    pub fn drain_outputs(&mut self) -> usize {
        let mut n = 0;
        while let Some(out) = self.replica.poll_output() {
            n += 1;
            match out {
                Output::Fetch { to, request } => self.outbox.push((to, request)),
                Output::AlterPartition(a) => self.alters.push(a),
                Output::ProduceDone { produce, result } => self.done.push((produce, result)),
            }
        }
        n
    }

    /// The outcome of produce `id`, if it came; asserts it came at most once.
    pub fn outcome(&self, id: u64) -> Option<Result<AppendedRange, ReplicaError>> {
        let mut it = self.done.iter().filter(|(p, _)| *p == id);
        let first = it.next().map(|(_, r)| *r);
        assert!(it.next().is_none(), "produce {id} completed twice: {:?}", self.done);
        first
    }

    pub fn hw(&self) -> u64 {
        self.replica.offsets().high_watermark()
    }
}

/// Replicas `0..n` of one partition, with the network between them.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub now_ms: u64,
    /// Fetches from these replicas are lost.
    pub cut: Vec<u32>,
}

impl Cluster {
    pub fn new(config: ReplicaConfig, logs: &[&[Batch]]) -> Self {
        let nodes = logs.iter().enumerate().map(|(i, l)| Node::new(i as u32, config, l)).collect();
        Self { nodes, now_ms: 0, cut: Vec::new() }
    }

    pub fn node(&mut self, id: u32) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    /// Gives `state` to every replica, as the answer to its heartbeat, then lets the cluster
    /// settle.
    pub fn publish(&mut self, state: &PartitionState) {
        for n in &mut self.nodes {
            let incarnation = n.replica.incarnation();
            n.replica.handle_registration(self.now_ms, incarnation, state);
        }
        self.settle();
    }

    pub fn produce(&mut self, leader: u32, produce: u64, acks: Acks) -> Result<(), ReplicaError> {
        let now = self.now_ms;
        let result = self.node(leader).replica.handle_produce(now, produce, acks);
        self.settle();
        result
    }

    /// Moves time on by `ms`, ticks every replica, and settles.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        for n in &mut self.nodes {
            n.replica.tick(self.now_ms);
        }
        self.settle();
    }

    /// Runs log operations and delivers fetches until nothing moves at this instant.
    pub fn settle(&mut self) {
        for _ in 0..1_000 {
            let mut moved = 0;
            for n in &mut self.nodes {
                moved += n.run_log(self.now_ms) + n.drain_outputs();
            }
            moved += self.deliver_fetches();
            if moved == 0 {
                return;
            }
        }
        panic!("the cluster did not settle at {} ms", self.now_ms);
    }

    /// Delivers every fetch in the outboxes (dropping those of cut replicas) and its answer.
    fn deliver_fetches(&mut self) -> usize {
        let mut n = 0;
        for from in 0..self.nodes.len() {
            for (to, request) in std::mem::take(&mut self.nodes[from].outbox) {
                n += 1;
                if !self.cut.contains(&(from as u32)) {
                    self.exchange(from, to, &request);
                }
            }
        }
        n
    }

    fn exchange(&mut self, from: usize, to: NodeId, request: &FetchRequest) {
        let leader = &mut self.nodes[to.0 as usize];
        let answer = leader.replica.handle_fetch(self.now_ms, request);
        let batches = match answer.body {
            FetchBody::Records { fetch_offset } => leader.log.read_from(fetch_offset),
            _ => Vec::new(),
        };
        let follower = &mut self.nodes[from];
        follower.answers.push(answer);
        let verdict = follower.replica.handle_fetch_answer(self.now_ms, to, &answer);
        if verdict == weir_replication::AnswerVerdict::Append {
            follower.fetched.insert(answer.request_id, batches);
        }
    }
}

//! Every partition replica runs through a `weir_replication::Replica`: produces, fetches between
//! replicas and controller states go in, and what comes out is acted on here. One driver task
//! per replica takes the replica's log operations one at a time and runs each to completion on
//! the log, then reports it back with exactly one `LogEvent`.
//!
//! The driver is detached and never dropped while an operation runs: a log change is never
//! cancelled halfway (the log would be cancel-safe all the same: a change interrupted across an
//! `.await` leaves it failed, see `begin_change` in `weir_log::log`). It stops between two
//! operations once its partition is closed.
//!
//! A node without a control plane ([`ReplicaSetup::standalone`]) gives each replica a
//! one-replica assignment itself: this node (node 0) leads, the ISR is itself, min ISR 1, and the
//! leader epoch is the log's latest epoch + 1 (0 for a log without epochs, so a new partition's
//! batches are stored exactly as sealed). Epochs so never go back across restarts: a
//! reopen keeps every epoch that wrote a batch, and drops only one begun and never written in,
//! which the next start may then lead again; nobody else ever followed it.
//!
//! Owned by the partition's shard; nothing here is `Send`.

use crate::partition::Partition;
use crate::runtime::Runtime;
use crate::service::local::{Aligned, log_failure, validate};
use crate::service::types::Failure;
use bytes::Bytes;
use futures::channel::oneshot;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use weir_log::batch::{BatchHeader, BatchView};
use weir_log::storage::Storage;
use weir_log::{AppendAllError, LogError, PartitionLog};
use weir_net::ErrorCode;
use weir_replication::{
    Acks, AppendedRange, LogEvent, LogFailure, LogOp, NodeId, Output, PartitionId, PartitionState, Recovered,
    Replica, ReplicaConfig, ReplicaError,
};

/// Fetch and AlterPartition outputs a replica may leave for its shard's replication to send:
/// a replica has at most one fetch and one ISR change in flight, so this is never reached by a
/// working shard; past it the oldest is dropped (the replica sends it again after its timeout).
pub const OUTBOX_MAX: usize = 16;

/// Epoch records (a small synced write each) a shard's replicas make at once at most: a topic
/// of thousands of partitions created, or a node started, begins every epoch together, and
/// glommio's registered I/O memory is small.
pub const EPOCH_WRITES_IN_FLIGHT_MAX: usize = 8;

thread_local! {
    /// One per shard: each shard is a thread of its own.
    static EPOCH_WRITES: Rc<tokio_rt::sync::Semaphore> =
        Rc::new(tokio_rt::sync::Semaphore::new(EPOCH_WRITES_IN_FLIGHT_MAX));
}

/// Who a replica is and how it is run.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaSetup {
    pub node: NodeId,
    pub partition: PartitionId,
    pub config: ReplicaConfig,
    /// The incarnation of the replica's node: a replica adopts controller states only once the
    /// controller has answered a heartbeat of it (`Replica::handle_registration`).
    pub incarnation: u64,
    /// No control plane: the replica is given a one-replica assignment here (module docs).
    pub standalone: bool,
    /// Flush with fdatasync (`fsync = true`); otherwise a flush writes the buffers out and the
    /// replica counts written-out batches as durable, as the node always did without fsync.
    pub fsync: bool,
}

impl ReplicaSetup {
    /// A replica of a node without peers.
    pub fn standalone(partition: PartitionId, fsync: bool) -> Self {
        let config = ReplicaConfig { min_insync_replicas: 1, ..ReplicaConfig::default() };
        let node = crate::placement::LOCAL_NODE;
        Self { node, partition, config, incarnation: 1, standalone: true, fsync }
    }
}

/// A produce the replica took: its batches until the append takes them, and who waits.
#[derive(Debug)]
struct ProduceSlot {
    batches: Option<Bytes>,
    /// Whether the batches may be Kafka batches kept as sent, or of a transaction (see
    /// `ProducePartition`).
    accepts: crate::service::types::Accepts,
    answer: Option<oneshot::Sender<Result<AppendedRange, Failure>>>,
    /// Why the append refused it, more precisely than the replica's `Storage` error says.
    failure: Option<Failure>,
    /// Told where the batches landed (or why not) as soon as the append is done, before they
    /// are durable: acks=none's answer.
    placed: Option<oneshot::Sender<Result<AppendedRange, Failure>>>,
}

/// A produce's answers: where its batches were placed, then its outcome once as durable as
/// its acks ask.
pub type ProduceAnswers =
    (oneshot::Receiver<Result<AppendedRange, Failure>>, oneshot::Receiver<Result<AppendedRange, Failure>>);

/// The replica of a partition and what its driver works on. See the module documentation.
#[derive(Debug)]
pub struct Replicated {
    setup: Cell<ReplicaSetup>,
    pub replica: RefCell<Replica>,
    produces: RefCell<BTreeMap<u64, ProduceSlot>>,
    next_produce: Cell<u64>,
    /// The batches of the fetch answer the replica kept to append, by request id.
    fetched: RefCell<Option<(u64, Bytes)>>,
    /// Wakes the driver: operations may be due.
    wake: tokio_rt::sync::Notify,
    /// Fetches and ISR changes for the shard's replication to send, bounded by [`OUTBOX_MAX`].
    pub outbox: RefCell<VecDeque<Output>>,
    /// Wakes the shard's replication when the outbox fills.
    pub outbox_wake: RefCell<Option<Rc<tokio_rt::sync::Notify>>>,
    /// Set once the replica recorded an epoch it leads in the log.
    pub epoch_begun: Cell<bool>,
    /// Woken when the log end moves: followers' fetches waiting at a leader's log end.
    pub grew: tokio_rt::sync::Notify,
    /// Woken after every input the replica took (a log event, a message).
    pub settled: tokio_rt::sync::Notify,
    /// Renewed in a cluster after a log failure: offline until the node restarts (see
    /// [`renew`](Self::renew)).
    retired: Cell<bool>,
}

/// The incarnation a retired replica is made with: no life of a node has it (an incarnation
/// counts up from the wall clock in microseconds), so no controller state ever registers it.
const RETIRED_INCARNATION: u64 = u64::MAX;

fn recovered<S: Storage>(log: &PartitionLog<S>) -> Recovered {
    Recovered { log_start: log.log_start(), log_end: log.next_offset(), epochs: log.leader_epochs().to_vec() }
}

/// The assignment a node without peers gives itself: it alone, leading `leader_epoch`.
pub fn standalone_state(node: NodeId, leader_epoch: u32, partition_epoch: u32) -> PartitionState {
    PartitionState {
        replicas: vec![node],
        leader: Some(node),
        leader_epoch,
        partition_epoch,
        isr: vec![node],
        elr: vec![],
    }
}

impl Replicated {
    pub fn new<S: Storage>(setup: ReplicaSetup, log: &PartitionLog<S>) -> Self {
        let s = setup;
        let replica = Replica::new(s.node, s.partition, s.config, recovered(log), s.incarnation);
        let this = Self {
            setup: Cell::new(setup),
            replica: RefCell::new(replica),
            produces: RefCell::new(BTreeMap::new()),
            next_produce: Cell::new(0),
            fetched: RefCell::new(None),
            wake: tokio_rt::sync::Notify::new(),
            outbox: RefCell::new(VecDeque::new()),
            outbox_wake: RefCell::new(None),
            epoch_begun: Cell::new(false),
            grew: tokio_rt::sync::Notify::new(),
            settled: tokio_rt::sync::Notify::new(),
            retired: Cell::new(false),
        };
        this.adopt_standalone(log, 1, 0);
        this
    }

    pub fn setup(&self) -> ReplicaSetup {
        self.setup.get()
    }

    /// A standalone replica leads at once, in the log's latest epoch + 1.
    fn adopt_standalone<S: Storage>(&self, log: &PartitionLog<S>, partition_epoch: u32, now_ms: u64) {
        let s = self.setup.get();
        if !s.standalone {
            return;
        }
        // Epoch 0 for a log without epochs (a new partition's batches are stored as sealed),
        // else one past the latest.
        let epoch = log.leader_epochs().last().map_or(0, |e| e.epoch + 1);
        let state = standalone_state(s.node, epoch, partition_epoch);
        let mut replica = self.replica.borrow_mut();
        let incarnation = replica.incarnation();
        replica.handle_registration(now_ms, incarnation, &state);
    }

    /// Replaces a failed replica with a new one over the reopened `log`. Standalone, it leads
    /// again at once; otherwise it waits offline: the controller must first hear of a new
    /// incarnation of this node, which only a restart brings (its previous life may have led
    /// the current epoch, and two lives must never lead one).
    /// So a clustered replica is made retired: with an incarnation no controller state carries,
    /// and skipped by the shard's metadata; its partition describes itself offline, saying why.
    pub fn renew<S: Storage>(&self, log: &PartitionLog<S>, now_ms: u64) {
        let mut s = self.setup.get();
        let partition_epoch = self.replica.borrow().view().map_or(0, |v| v.partition_epoch) + 1;
        let incarnation = if s.standalone {
            s.incarnation += 1;
            s.incarnation
        } else {
            self.retired.set(true);
            RETIRED_INCARNATION
        };
        self.setup.set(s);
        *self.replica.borrow_mut() = Replica::new(s.node, s.partition, s.config, recovered(log), incarnation);
        self.fetched.borrow_mut().take();
        self.adopt_standalone(log, partition_epoch, now_ms);
    }

    /// Whether the replica was renewed in a cluster and stays offline until the node restarts.
    pub fn is_retired(&self) -> bool {
        self.retired.get()
    }

    /// Wakes the driver.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Keeps the batches of fetch answer `request_id`, which the replica will append.
    pub fn keep_fetched(&self, request_id: u64, batches: Bytes) {
        *self.fetched.borrow_mut() = Some((request_id, batches));
    }
}

/// The wire answer to a produce the replica refused or failed. `leader` is where the leader
/// can be reached, if it is known (node id and address), for `NotLeader`.
pub fn replica_failure(e: ReplicaError, leader: Option<String>) -> Failure {
    match e {
        ReplicaError::NotLeader { leader: Some(_), .. } => {
            let at = leader.unwrap_or_else(|| "unknown address".into());
            Failure::new(ErrorCode::NotLeader, format!("{e}; leader: {at}"))
        }
        ReplicaError::NotLeader { leader: None, .. } => {
            Failure::new(ErrorCode::LeaderNotAvailable, e.to_string())
        }
        ReplicaError::NotEnoughReplicas { .. } => Failure::new(ErrorCode::NotEnoughReplicas, e.to_string()),
        ReplicaError::LeadershipLost => Failure::new(ErrorCode::OutcomeUnknown, e.to_string()),
        ReplicaError::Storage { .. } => Failure::new(ErrorCode::StorageError, e.to_string()),
        _ => Failure::new(ErrorCode::Unknown, e.to_string()),
    }
}

/// Whether any batch of `bytes` (framed, not yet validated) is transactional or a marker.
fn holds_transaction(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Ok(h) = BatchHeader::decode(rest) {
        if h.is_transactional() || h.is_control() {
            return true;
        }
        // A frame too short for its header is the validation's to refuse.
        let len = h.batch_len as usize;
        let Some(next) = rest.get(len..).filter(|_| len >= weir_log::batch::header::HEADER_BYTES) else {
            break;
        };
        rest = next;
    }
    false
}

/// Batches back to back in `bytes`, by their headers' lengths (a bad header ends the count).
fn count_batches(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while let Ok(h) = BatchHeader::decode(bytes) {
        let len = (h.batch_len as usize).max(1);
        n += 1;
        bytes = bytes.get(len..).unwrap_or_default();
    }
    n
}

fn log_failed<S: Storage>(log: &PartitionLog<S>, reason: &'static str) -> LogFailure {
    LogFailure { reason, log_failed: log.is_failed() }
}

impl<S: Storage + Clone + 'static> Partition<S> {
    /// Starts the partition's driver task. Called once, after the partition is opened.
    pub fn start_driver<R: Runtime>(self: &Rc<Self>, rt: &R) {
        let (p, clock) = (self.clone(), rt.clone());
        rt.spawn(Box::pin(async move { p.drive(clock).await }));
    }

    /// The driver: one log operation at a time, each run to completion and reported back.
    async fn drive<R: Runtime>(self: Rc<Self>, rt: R) {
        loop {
            if self.is_closed() {
                return;
            }
            let op = self.rep.replica.borrow_mut().poll_log_op();
            let Some(op) = op else {
                self.rep.wake.notified().await;
                continue;
            };
            // Wall-clock time for the log (append times), monotonic time for the replica's timers.
            let event = self.perform(op, rt.now_ms()).await;
            if matches!(event, LogEvent::EpochBegun { result: Ok(_) }) {
                self.rep.epoch_begun.set(true);
                self.wake_waiters();
            }
            self.rep.replica.borrow_mut().handle_log_event(rt.monotonic_ms(), event);
            self.settle();
        }
    }

    /// Acts on what the replica put out, and shows its offsets to consumers. Called after every
    /// input to the replica.
    pub fn settle(&self) {
        let (offsets, failed) = {
            let r = self.rep.replica.borrow();
            (r.offsets(), r.is_failed())
        };
        loop {
            let out = self.rep.replica.borrow_mut().poll_output();
            match out {
                None => break,
                Some(Output::ProduceDone { produce, result }) => self.produce_done(produce, result),
                Some(o) if self.rep.setup().standalone => {
                    tracing::debug!(partition = %self.name, output = ?o, "standalone replica output dropped")
                }
                Some(o) => {
                    let mut outbox = self.rep.outbox.borrow_mut();
                    if outbox.len() >= OUTBOX_MAX {
                        outbox.pop_front();
                    }
                    outbox.push_back(o);
                    if let Some(w) = self.rep.outbox_wake.borrow().as_ref() {
                        w.notify_one();
                    }
                }
            }
        }
        if failed {
            self.wake_waiters();
            // Whatever is pending waits on a log that must be reopened: its outcome is unknown.
            let pending: Vec<u64> = self.rep.produces.borrow().keys().copied().collect();
            for id in pending {
                self.produce_done(id, Err(ReplicaError::LeadershipLost));
            }
        }
        self.show(offsets);
        self.rep.settled.notify_waiters();
    }

    fn produce_done(&self, produce: u64, result: Result<AppendedRange, ReplicaError>) {
        let Some(slot) = self.rep.produces.borrow_mut().remove(&produce) else { return };
        let result = result.map_err(|e| slot.failure.unwrap_or_else(|| replica_failure(e, None)));
        if let Some(answer) = slot.answer {
            let _ = answer.send(result);
        }
    }

    /// Hands a produce to the replica. The answer comes once the batches are appended and as
    /// durable as `acks` asks (acks=none is taken as acks=leader here; its caller does not wait).
    pub fn submit_produce(
        &self,
        acks: weir_net::Acks,
        batches: Bytes,
        now_ms: u64,
    ) -> Result<oneshot::Receiver<Result<AppendedRange, Failure>>, ReplicaError> {
        self.submit(acks, batches, Default::default(), now_ms).map(|(_, done)| done)
    }

    /// [`submit_produce`](Self::submit_produce), also telling where the batches were placed
    /// once they are appended (validated and in the log, not yet durable).
    pub fn submit(
        &self,
        acks: weir_net::Acks,
        batches: Bytes,
        accepts: crate::service::types::Accepts,
        now_ms: u64,
    ) -> Result<ProduceAnswers, ReplicaError> {
        let id = self.rep.next_produce.get() + 1;
        self.rep.next_produce.set(id);
        let acks = if acks == weir_net::Acks::All { Acks::All } else { Acks::Leader };
        let (tx, rx) = oneshot::channel();
        let (placed_tx, placed_rx) = oneshot::channel();
        let slot = ProduceSlot {
            batches: Some(batches),
            accepts,
            answer: Some(tx),
            failure: None,
            placed: Some(placed_tx),
        };
        self.rep.produces.borrow_mut().insert(id, slot);
        let taken = self.rep.replica.borrow_mut().handle_produce(now_ms, id, acks);
        if let Err(e) = taken {
            self.rep.produces.borrow_mut().remove(&id);
            return Err(e);
        }
        self.settle();
        self.rep.wake();
        Ok((placed_rx, rx))
    }

    /// Tells a produce's `placed` answer where its append put the batches, or why it did not.
    fn tell_placed(&self, produce: u64, result: &Result<AppendedRange, LogFailure>) {
        let mut produces = self.rep.produces.borrow_mut();
        let Some(slot) = produces.get_mut(&produce) else { return };
        let Some(placed) = slot.placed.take() else { return };
        let answer = (*result).map_err(|f| {
            let unknown = || Failure::new(ErrorCode::OutcomeUnknown, f.reason.to_owned());
            slot.failure.clone().unwrap_or_else(unknown)
        });
        let _ = placed.send(answer);
    }

    /// Performs one log operation to completion.
    async fn perform(&self, op: LogOp, now_ms: u64) -> LogEvent {
        match op {
            LogOp::BeginEpoch { epoch } => {
                let permits = EPOCH_WRITES.with(Rc::clone);
                let _permit = permits.acquire().await.expect("the semaphore is never closed");
                let mut log = self.log.lock().await;
                let result = log.begin_epoch(epoch).await.map_err(|_| log_failed(&log, "begin epoch failed"));
                LogEvent::EpochBegun { result }
            }
            LogOp::AppendProduce { produce, leader_epoch } => {
                let placed = self.append_produce(produce, leader_epoch, now_ms).await;
                let result = placed.map(|p| p.range());
                self.tell_placed(produce, &result);
                match placed {
                    Ok(Placed::Found(range)) => LogEvent::ProduceFound { produce, range },
                    _ => LogEvent::ProduceAppended { produce, result },
                }
            }
            LogOp::AppendFetched { request_id } => self.append_fetched(request_id, now_ms).await,
            LogOp::Flush => LogEvent::Flushed { result: self.flush().await },
            LogOp::Truncate { offset } => {
                let mut log = self.log.lock().await;
                let result =
                    log.truncate_to(offset, now_ms).await.map_err(|_| log_failed(&log, "truncation failed"));
                LogEvent::Truncated { result }
            }
            LogOp::StartOver { offset } => {
                let mut log = self.log.lock().await;
                let result = log
                    .start_over_at(offset, now_ms)
                    .await
                    .map_err(|_| log_failed(&log, "start over failed"));
                LogEvent::StartedOver { result }
            }
        }
    }

    /// Makes every appended batch durable; without fsync, written out.
    async fn flush(&self) -> Result<u64, LogFailure> {
        if !self.rep.setup().fsync {
            let mut log = self.log.lock().await;
            return match log.write_out().await {
                Ok(()) => Ok(log.next_offset()),
                Err(_) => Err(log_failed(&log, "write-out failed")),
            };
        }
        // The fdatasync runs without the log locked: fetches and reads go on beside it.
        let end = self.log.lock().await.next_offset();
        let synced = self.log.wait_durable(end).await;
        let log = self.log.lock().await;
        match synced {
            Ok(()) => Ok(log.durable_offset()),
            Err(_) => Err(log_failed(&log, "flush failed")),
        }
    }

    /// Refuses the batches whole if a record lacks a key where the topic requires one (Kafka
    /// refuses such a record on a compacted topic as invalid).
    fn check_keys<'a>(&self, views: Vec<BatchView<'a>>) -> Result<Vec<BatchView<'a>>, Failure> {
        if !self.keys_required.get() {
            return Ok(views);
        }
        for view in &views {
            if let Some(i) = view.records().position(|r| r.key.is_none()) {
                let m = format!("record {i} of a batch has no key, which a compacted topic needs");
                return Err(Failure::new(ErrorCode::InvalidRecord, m));
            }
        }
        Ok(views)
    }

    /// A compacted topic stores Weir's columns only, whose keys its cleaner reads: Kafka
    /// batches kept as sent are converted here, where the topic's policy is known. `None`
    /// when nothing needs converting.
    fn columns_for_compaction(
        &self,
        bytes: &[u8],
        kafka_payloads: bool,
        limit: usize,
    ) -> Result<Option<rkyv::util::AlignedVec<16>>, Failure> {
        if !(kafka_payloads && self.keys_required.get()) {
            return Ok(None);
        }
        let limits = weir_kafka::batch::ConvertLimits { batch_bytes_max: limit };
        let corrupt = |m: String| Failure::new(ErrorCode::CorruptBatch, m);
        let converted = weir_kafka::batch::native_section(bytes, &limits, usize::MAX)
            .map_err(|e| corrupt(e.to_string()))?;
        // Every batch or none: a conversion that stopped early would drop the rest unanswered.
        if let Some(c) = &converted
            && count_batches(c) != count_batches(bytes)
        {
            return Err(corrupt("a Kafka batch did not convert to Weir's columns".into()));
        }
        Ok(converted)
    }

    /// Validates a produce's batches (once, here: CRC, header, rkyv, columns) and appends them
    /// all or none in `leader_epoch`; an idempotent producer's batch is checked against what the
    /// log has of its producer first (see [`check_idempotent`]).
    async fn append_produce(
        &self,
        produce: u64,
        leader_epoch: u32,
        now_ms: u64,
    ) -> Result<Placed, LogFailure> {
        let refused = LogFailure { reason: "the append was refused", log_failed: false };
        let taken = self
            .rep
            .produces
            .borrow_mut()
            .get_mut(&produce)
            .and_then(|s| Some((s.batches.take()?, s.accepts)));
        let Some((batches, accepts)) = taken else { return Err(refused) };
        let kafka_payloads = accepts.kafka_payloads;
        let record = |f: Failure| {
            if let Some(slot) = self.rep.produces.borrow_mut().get_mut(&produce) {
                slot.failure = Some(f);
            }
        };
        let aligned = Aligned::new(batches);
        if self.keys_required.get() && holds_transaction(aligned.bytes()) {
            // A compacted topic's cleaner rewrites batches, which a transaction's may not be (a
            // topic recreated compacted under an open transaction).
            record(Failure::new(ErrorCode::InvalidRecord, "a compacted topic takes no transaction batches"));
            return Err(refused);
        }
        let limit = self.log.lock().await.config().batch_bytes_max;
        let columns = match self.columns_for_compaction(aligned.bytes(), kafka_payloads, limit) {
            Ok(c) => c,
            Err(f) => {
                record(f);
                return Err(refused);
            }
        };
        let bytes = columns.as_deref().unwrap_or(aligned.bytes());
        let views = match validate(bytes, limit, kafka_payloads, accepts.txn).and_then(|v| self.check_keys(v))
        {
            Ok(v) => v,
            Err(f) => {
                record(f);
                return Err(refused);
            }
        };
        if views.iter().any(|v| v.header().is_transactional()) {
            self.txns_seen.set(true);
        }
        // Checked and appended under one lock: no other batch of the producer comes between.
        let mut log = self.log.lock().await;
        match check_idempotent(&log, &views) {
            Ok(None) => {}
            Ok(Some(found)) => {
                return Ok(Placed::Found(AppendedRange { base: found.0, end: found.1, epoch: leader_epoch }));
            }
            Err(f) => {
                record(f);
                return Err(refused);
            }
        }
        match log.append_all(&views, leader_epoch, now_ms).await {
            Ok(a) => Ok(Placed::Appended(AppendedRange {
                base: a.base_offset,
                end: a.last_offset + 1,
                epoch: leader_epoch,
            })),
            Err(AppendAllError::NotAppended { source }) => {
                record(log_failure(source));
                Err(log_failed(&log, "the log refused the append"))
            }
            Err(e) => {
                tracing::error!(partition = %self.name, error = %e, "log failed while appending");
                record(Failure::new(ErrorCode::OutcomeUnknown, e.to_string()));
                Err(LogFailure { reason: "the log failed while appending", log_failed: true })
            }
        }
    }

    /// Appends the batches of a fetch answer with the leader's offsets and epochs, validated
    /// fully first, stopping at the first the log refuses.
    async fn append_fetched(&self, request_id: u64, now_ms: u64) -> LogEvent {
        let kept = self.rep.fetched.borrow_mut().take_if(|(id, _)| *id == request_id).map(|(_, b)| b);
        let mut appended = Vec::new();
        let Some(bytes) = kept else {
            let failure = Some(LogFailure { reason: "no batches kept for the answer", log_failed: false });
            return LogEvent::FetchedAppended { request_id, appended, failure };
        };
        let aligned = Aligned::new(bytes);
        let mut rest = aligned.bytes();
        let mut log = self.log.lock().await;
        let limit = log.config().stored_batch_bytes_max();
        while !rest.is_empty() {
            // The leader's batches went through its front ends: Kafka batches kept as sent
            // are taken with their frame, CRC and header checked.
            let view = match BatchView::validate_stored(rest, limit) {
                Ok(v) => v,
                Err(_) => {
                    let failure = Some(LogFailure { reason: "an invalid fetched batch", log_failed: false });
                    return LogEvent::FetchedAppended { request_id, appended, failure };
                }
            };
            if view.header().is_transactional() {
                self.txns_seen.set(true);
            }
            match log.append_replicated(&view, now_ms).await {
                Ok(a) => {
                    let epoch = view.header().leader_epoch;
                    appended.push(AppendedRange { base: a.base_offset, end: a.last_offset + 1, epoch });
                }
                Err(e) => {
                    let reason = if matches!(e, LogError::Failed) {
                        "the log failed"
                    } else {
                        "the log refused a batch"
                    };
                    let failure = Some(log_failed(&log, reason));
                    return LogEvent::FetchedAppended { request_id, appended, failure };
                }
            }
            rest = &rest[view.bytes().len()..];
        }
        LogEvent::FetchedAppended { request_id, appended, failure: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::GlommioRuntime;
    use weir_log::LogConfig;
    use weir_log::storage::mem::MemStorage;

    /// Lets every other task of the executor run once.
    async fn yield_now() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                return std::task::Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await
    }

    /// A closed partition's driver ends and lets go of it, and of its files with it: a deleted
    /// topic's space comes back.
    #[test]
    fn closing_a_partition_ends_its_driver() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let setup = ReplicaSetup::standalone(PartitionId(0), true);
                let p = Partition::open(MemStorage::new(), LogConfig::default(), 0, "t/0".into(), setup);
                let p = Rc::new(p.await.unwrap());
                p.start_driver(&GlommioRuntime::new());
                p.until_caught_up().await;
                assert!(p.rep.replica.borrow().is_leader());
                p.close().await;
                for _ in 0..100 {
                    if Rc::strong_count(&p) == 1 {
                        return;
                    }
                    yield_now().await;
                }
                panic!("the driver still holds the closed partition");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// `renew` and `apply_states` say a clustered replica renewed after a log failure stays
    /// offline until the node restarts (two lives must never lead one epoch). It does not: it
    /// keeps the node's incarnation, so the next metadata applied makes it lead the very epoch
    /// its failed predecessor led, over a log that recovery may have cut.
    #[test]
    fn a_renewed_clustered_replica_does_not_lead_its_old_epoch_again_and_says_why() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let storage = MemStorage::new();
                let mut setup = ReplicaSetup::standalone(PartitionId(0), true);
                setup.standalone = false;
                setup.incarnation = 7;
                let me = setup.node;
                let p = Partition::open(storage.clone(), LogConfig::default(), 0, "t/0".into(), setup);
                let p = Rc::new(p.await.unwrap());
                let state = PartitionState {
                    replicas: vec![me, NodeId(9)],
                    leader: Some(me),
                    leader_epoch: 3,
                    partition_epoch: 5,
                    isr: vec![me, NodeId(9)],
                    elr: vec![],
                };
                p.rep.replica.borrow_mut().handle_registration(0, 7, &state);
                assert!(p.rep.replica.borrow().is_leader());
                // The log fails (a sync fails), and upkeep reopens it.
                storage.faults().fail_sync_in.set(1);
                let mut b = weir_log::batch::BatchBuilder::new(1 << 20);
                let rec =
                    weir_log::batch::Record { key: None, value: Some(b"v"), headers: &[], timestamp: 1 };
                b.push(&rec).unwrap();
                let sealed = b.seal(weir_log::batch::ProducerStamp::default());
                let view = BatchView::validate(sealed.as_bytes(), 1 << 20).unwrap();
                assert!(p.log.append_durable(&view, 3, 0).await.is_err());
                assert!(p.reopen_if_failed(1_000).await);
                // The shard applies the next metadata (any change in the cluster) with the
                // incarnation it registered with, as `apply_states` does.
                p.rep.replica.borrow_mut().handle_registration(2_000, 7, &state);
                assert!(
                    !p.rep.replica.borrow().is_leader(),
                    "a renewed replica leads epoch 3 again in the same incarnation"
                );
                // Describe says why it is offline.
                match p.status(2_000).await.health.state {
                    weir_net::health::PartitionState::Offline { cause, .. } => {
                        assert!(cause.contains("until the node restarts"), "{cause}")
                    }
                    other => panic!("a retired replica described as {other:?}"),
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    fn sealed(n: usize) -> Bytes {
        let mut b = weir_log::batch::BatchBuilder::new(1 << 20);
        for _ in 0..n {
            let rec = weir_log::batch::Record { key: None, value: Some(b"v"), headers: &[], timestamp: 1 };
            b.push(&rec).unwrap();
        }
        Bytes::copy_from_slice(b.seal(weir_log::batch::ProducerStamp::default()).as_bytes())
    }

    /// A standalone log reopened after a failure: a produce that arrives before the renewed
    /// replica has begun its epoch shows the new replica's high watermark (the log start) to
    /// consumers, who then get OffsetOutOfRange for offsets they had already been given.
    #[test]
    fn a_reopened_log_never_shows_a_lower_high_watermark() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let storage = MemStorage::new();
                let setup = ReplicaSetup::standalone(PartitionId(0), true);
                let p = Partition::open(storage.clone(), LogConfig::default(), 0, "t/0".into(), setup);
                let p = Rc::new(p.await.unwrap());
                let rt = GlommioRuntime::new();
                p.start_driver(&rt);
                p.until_caught_up().await;
                let done = p.submit_produce(weir_net::Acks::Leader, sealed(4), 0).unwrap();
                assert_eq!(done.await.unwrap().unwrap().end, 4);
                assert_eq!(p.high_watermark(), 4);
                storage.faults().fail_sync_in.set(1);
                let failed = p.submit_produce(weir_net::Acks::Leader, sealed(2), 0).unwrap();
                assert!(failed.await.unwrap().is_err());
                assert!(p.reopen_if_failed(1_000).await);
                assert!(p.high_watermark() >= 4, "after the reopen");
                // A produce right after the reopen, before the driver ran the new epoch.
                let _next = p.submit_produce(weir_net::Acks::Leader, sealed(1), 0).unwrap();
                assert!(p.high_watermark() >= 4, "high watermark went back to {}", p.high_watermark());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

/// Where a produce's batches are: appended now, or found in the log already (an idempotent
/// producer's retry).
#[derive(Debug, Clone, Copy)]
enum Placed {
    Appended(AppendedRange),
    Found(AppendedRange),
}

impl Placed {
    fn range(self) -> AppendedRange {
        match self {
            Placed::Appended(r) | Placed::Found(r) => r,
        }
    }
}

/// Checks an idempotent producer's batch against what the log has of its producer: `None` to
/// append, the offsets `[base, end)` it was appended at before if it is a retry, or the refusal.
/// A produce carrying such a batch carries only it (the SDK sends one batch per partition).
fn check_idempotent<S: Storage>(
    log: &PartitionLog<S>,
    views: &[BatchView<'_>],
) -> Result<Option<(u64, u64)>, Failure> {
    use weir_log::batch::header::NO_PRODUCER_ID;
    use weir_log::producers::{SequenceError, Verdict};
    let stamped = views.iter().filter(|v| v.header().producer_id != NO_PRODUCER_ID).count();
    if stamped == 0 {
        return Ok(None);
    }
    if views.len() != 1 {
        let why = "a produce with an idempotent producer's batch carries that one batch only";
        return Err(Failure::new(ErrorCode::InvalidArgument, why));
    }
    match log.check_producer(views[0].header()) {
        Ok(Verdict::Append) => Ok(None),
        Ok(Verdict::Duplicate { base_offset, last_offset }) => Ok(Some((base_offset, last_offset + 1))),
        Err(e @ SequenceError::Fenced { .. }) => Err(Failure::new(ErrorCode::ProducerFenced, e.to_string())),
        Err(e @ SequenceError::UnknownProducer { .. }) => {
            Err(Failure::new(ErrorCode::UnknownProducerId, e.to_string()))
        }
        Err(e) => Err(Failure::new(ErrorCode::OutOfOrderSequence, e.to_string())),
    }
}

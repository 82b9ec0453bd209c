//! A simulated data node: one replica of the partition, over its log on an in-memory disk that
//! survives the node's crashes (as much of it as was synced).

use super::model::LogModel;
use super::msg::{Msg, ProduceError, batch_views, payload};
use super::store::{Retention, Store, sim_log_config};
use fastrand::Rng;
use std::collections::BTreeMap;
use weir_log::storage::mem::{CrashMode, MemStorage};
use weir_replication::{AnswerVerdict, LogEvent, LogOp, NodeId, Output, PartitionId, Replica, ReplicaConfig};

/// Where messages go: (to, message).
pub type Outbox = Vec<(NodeId, Msg)>;

/// How often a node applies retention.
const RETENTION_INTERVAL_MS: u64 = 100;

/// The controller's address on the simulated network.
pub const CONTROLLER: NodeId = NodeId(1_000);

/// A node that is up: its log and replica, the log operation under way, and who asked for
/// which produce.
#[derive(Debug)]
pub struct Running {
    pub store: Store,
    pub replica: Replica,
    /// The operation under way and when it completes.
    op: Option<(u64, LogOp)>,
    /// Produces taken, by the node's own id: the client and the client's id.
    clients: BTreeMap<u64, (NodeId, u64)>,
    next_produce: u64,
    next_retention_ms: u64,
    next_heartbeat_ms: u64,
    /// The last log operation performed: if the log failed, it may have done part of its work.
    pub last_op: Option<LogOp>,
    /// Set if the log failed in retention below this high watermark.
    pub retention_failed_below: Option<u64>,
}

/// Timing of a node's I/O and heartbeats.
#[derive(Debug, Clone, Copy)]
pub struct NodeTiming {
    pub heartbeat_interval_ms: u64,
    pub append_ms_max: u64,
    pub flush_ms_max: u64,
}

/// One data node, up or down.
#[derive(Debug)]
pub struct DataNode {
    pub id: NodeId,
    pub storage: MemStorage,
    /// Bumped by every start: tells the controller that the node's memory is new.
    pub incarnation: u64,
    pub up: Option<Running>,
    pub crashes: u64,
    /// What the node's log held when it last crashed or failed, to check what it recovers.
    pub before_crash: Option<Before>,
    pub retention: Retention,
    /// The highest log start this node's retention reached.
    pub retained_to: u64,
    /// Appends the log refused whole (a full disk), the log still usable.
    pub refusals: u64,
}

impl DataNode {
    pub fn new(id: NodeId, retention: Retention) -> Self {
        Self {
            id,
            storage: MemStorage::new(),
            incarnation: 0,
            up: None,
            crashes: 0,
            before_crash: None,
            retention,
            retained_to: 0,
            refusals: 0,
        }
    }

    /// Starts the node: recovers its log and makes a replica over it, which waits to hear the
    /// controller's state.
    pub fn start(&mut self, now_ms: u64, config: ReplicaConfig) {
        assert!(self.up.is_none(), "a node starts once");
        self.incarnation += 1;
        // A reopen fails while the disk fails its syncs (an armed fault counts down with each
        // try); a node retries, as its upkeep would.
        let mut tries = 0;
        let (store, recovered) = loop {
            match Store::open(self.storage.clone(), sim_log_config(self.retention), now_ms) {
                Ok(opened) => break opened,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 10, "a simulated log reopens: {e}");
                }
            }
        };
        if super::world::trace() {
            eprintln!("{now_ms} {:?} starts, incarnation {}: {recovered:?}", self.id, self.incarnation);
        }
        let replica = Replica::new(self.id, PartitionId(0), config, recovered, self.incarnation);
        self.up = Some(Running {
            store,
            replica,
            op: None,
            clients: BTreeMap::new(),
            next_produce: 0,
            next_retention_ms: now_ms,
            next_heartbeat_ms: now_ms,
            last_op: None,
            retention_failed_below: None,
        });
    }

    /// Ends the process at once: operations under way are lost, and the disk keeps what was
    /// synced (and, torn, some of what was not).
    pub fn crash(&mut self, mode: CrashMode) {
        if let Some(r) = &self.up {
            self.before_crash = Some(Before::of(r));
        }
        if super::world::trace() {
            eprintln!("{:?} crashes ({mode:?})", self.id);
        }
        self.up = None;
        self.crashes += 1;
        self.storage.crash(mode);
    }

    /// Delivers one message.
    pub fn receive(&mut self, now_ms: u64, from: NodeId, msg: Msg, out: &mut Outbox) {
        let Some(r) = &mut self.up else { return };
        match msg {
            Msg::Fetch(req) => {
                let answer = r.replica.handle_fetch(now_ms, &req);
                let bytes = match answer.body {
                    weir_replication::FetchBody::Records { fetch_offset } => {
                        r.store.read(fetch_offset, u64::MAX).expect("a leader reads what it holds")
                    }
                    _ => payload(&[]),
                };
                out.push((from, Msg::FetchAnswer(answer, bytes)));
            }
            Msg::FetchAnswer(answer, bytes) => {
                // Bytes are validated where they enter the process: a batch damaged on the way
                // makes the answer as good as lost (the fetch times out and is sent again).
                if batch_views(&bytes).is_err() {
                    return;
                }
                if r.replica.handle_fetch_answer(now_ms, from, &answer) == AnswerVerdict::Append {
                    // A follower appends one answer at a time: an older one still kept was
                    // dropped with the role it was fetched in.
                    r.store.fetched.clear();
                    r.store.fetched.insert(answer.request_id, bytes);
                }
            }
            Msg::State(state) => r.replica.handle_partition_state(now_ms, &state),
            Msg::Registered { incarnation, state } => {
                r.replica.handle_registration(now_ms, incarnation, &state)
            }
            Msg::AlterAnswer(req, result) => r.replica.handle_alter_answer(now_ms, &req, result),
            Msg::Produce { produce, acks, batch } => {
                if batch_views(&batch).is_err() {
                    let result = Err(ProduceError::Corrupt);
                    out.push((from, Msg::ProduceAnswer { produce, result }));
                    return;
                }
                // The node's own id: a message the network duplicated is another produce.
                r.next_produce += 1;
                let id = r.next_produce;
                match r.replica.handle_produce(now_ms, id, acks) {
                    Ok(()) => {
                        r.store.produced.insert(id, batch);
                        r.clients.insert(id, (from, produce));
                    }
                    Err(e) => out
                        .push((from, Msg::ProduceAnswer { produce, result: Err(ProduceError::Replica(e)) })),
                }
            }
            Msg::Heartbeat { .. } | Msg::Alter(_) | Msg::ProduceAnswer { .. } => {
                unreachable!("not sent to data nodes")
            }
        }
    }

    /// Runs the node's due work: heartbeat, replica timers, the log operation that completes
    /// now and the next ones, and what the replica wants sent. Returns false if the log failed
    /// (the caller reopens it).
    pub fn step(&mut self, now_ms: u64, rng: &mut Rng, timing: NodeTiming, out: &mut Outbox) -> bool {
        let incarnation = self.incarnation;
        let Some(r) = &mut self.up else { return true };
        if now_ms >= r.next_heartbeat_ms {
            r.next_heartbeat_ms = now_ms + timing.heartbeat_interval_ms;
            out.push((CONTROLLER, Msg::Heartbeat { incarnation }));
        }
        r.replica.tick(now_ms);
        if r.op.is_none() && now_ms >= r.next_retention_ms {
            // Between two log operations, as a node's upkeep would, and only below the high
            // watermark.
            r.next_retention_ms = now_ms + RETENTION_INTERVAL_MS;
            let hw = r.replica.offsets().high_watermark();
            match r.store.upkeep(now_ms, hw) {
                Ok(Some(start)) => {
                    self.retained_to = self.retained_to.max(start);
                    r.replica.handle_log_start(start);
                }
                Ok(None) => {}
                // A failed sync: the log is failed, and the node reopens it. Retention may have
                // deleted segments below the high watermark before it failed.
                Err(_) => {
                    r.retention_failed_below = Some(hw);
                    return false;
                }
            }
        }
        loop {
            if let Some((due, op)) = r.op
                && due <= now_ms
            {
                r.op = None;
                r.last_op = Some(op);
                let event = r.store.perform(op, now_ms);
                if let LogEvent::ProduceAppended { result: Err(f), .. }
                | LogEvent::FetchedAppended { failure: Some(f), .. } = &event
                    && !f.log_failed
                {
                    self.refusals += 1;
                }
                if super::world::trace() {
                    eprintln!("{now_ms} {:?} {op:?} -> {event:?}", self.id);
                }
                r.replica.handle_log_event(now_ms, event);
            }
            if r.op.is_none()
                && let Some(op) = r.replica.poll_log_op()
            {
                let ms_max = if op == LogOp::Flush { timing.flush_ms_max } else { timing.append_ms_max };
                r.op = Some((now_ms + rng.u64(0..=ms_max), op));
                continue;
            }
            break;
        }
        while let Some(o) = r.replica.poll_output() {
            match o {
                Output::Fetch { to, request } => out.push((to, Msg::Fetch(request))),
                Output::AlterPartition(req) => out.push((CONTROLLER, Msg::Alter(req))),
                Output::ProduceDone { produce, result } => {
                    let (client, produce) = r.clients.remove(&produce).expect("a produce came from a client");
                    let result = result.map_err(ProduceError::Replica);
                    out.push((client, Msg::ProduceAnswer { produce, result }));
                }
            }
        }
        !r.replica.is_failed()
    }
}

/// A log as it was before a crash or failure, and what recovery may change of it.
#[derive(Debug, Clone)]
pub struct Before {
    pub model: LogModel,
    /// Every batch below this was durable, unless the failed operation removed it.
    pub durable_end: u64,
    /// The highest log start recovery may come back with: the old one, unless the failed
    /// operation was retention (up to the high watermark it used) or a start-over (its offset).
    pub start_max: u64,
    /// Whether the failed operation was retention: a start it moved to is a retention point.
    pub from_retention: bool,
}

impl Before {
    /// What `r`'s log must still hold, allowing for the operation that failed (if any).
    pub fn of(r: &Running) -> Self {
        let (durable, start) = (r.replica.durable_end(), r.store.model.start());
        let end = r.store.model.end();
        let (durable_end, start_max) = match (r.retention_failed_below, r.last_op) {
            (Some(hw), _) => (durable, start.max(hw)),
            (None, Some(LogOp::Truncate { offset })) => (durable.min(offset), start),
            // At the log end, a start-over removes segments oldest first: any suffix may come
            // back, holding every durable batch from its start.
            (None, Some(LogOp::StartOver { offset })) if offset == end => (durable, offset),
            // Past it, everything goes: the old log, a prefix of it, or none may come back.
            (None, Some(LogOp::StartOver { offset })) => (start, start.max(offset)),
            _ => (durable, start),
        };
        let from_retention = r.retention_failed_below.is_some();
        Self { model: r.store.model.clone(), durable_end, start_max, from_retention }
    }
}

//! The control plane of one node: [`start`] spawns one thread running a current-thread tokio
//! runtime with Raft, the RPC server, the controller host, the heartbeat loop and the node's
//! registration; a [`ControlHandle`] is how shards talk to it.
//!
//! Voters are the first three peers (five when there are at least five), the rest learners,
//! added by the leader. The lowest-id voter initialises the cluster when it starts with an
//! empty log. A node whose Raft state began empty is blank (see [`crate::blank`]): it votes
//! only in a brand-new cluster and, once it holds entries, starts no election until it caught
//! up. Every start bumps
//! the node's incarnation (`<data_dir>/raft/incarnation`, fsynced before use), so the
//! controller sees a restart as one.

use crate::blank::BlankGuard;
use crate::controller_host::{
    ControllerHost, HostConfig, HostRequest, HostSender, TOPIC_NAME_BYTES_MAX, TOPIC_PARTITIONS_MAX,
    host_channel,
};
use crate::durable::write_atomic;
use crate::error::{ControlError, MetaError};
use crate::log_store::LogStore;
use crate::meta::{ClusterMeta, NodeInfo};
use crate::network::{Dispatcher, NetworkFactory, Transport, serve};
use crate::rpc::{
    APPEND_ENTRIES_MAX, ClusterStatus, ControlCall, ControlReply, CreateTopic, Request, Response,
};
use crate::state_machine::StateMachine;
use crate::tls::NodeTls;
use crate::types::Raft;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use weir_replication::{AlterPartition, NodeId, PartitionState};

/// How a node's control plane runs. [`ControlConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub node_id: NodeId,
    /// Every member (this node included) and its cluster address (`host:port`, UDP).
    pub peers: Vec<(NodeId, String)>,
    /// The address the control plane binds; `None`: this node's own entry in `peers`.
    pub listen: Option<SocketAddr>,
    /// The control plane keeps its files in `<data_dir>/raft/`.
    pub data_dir: PathBuf,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    /// What this node registers.
    pub self_info: NodeInfo,
    pub heartbeat_interval_ms: u64,
    pub session_timeout_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub raft_heartbeat_interval_ms: u64,
    /// How often the controller checks sessions.
    pub controller_tick_ms: u64,
    /// Requests from handles waiting for the control plane's thread, at most.
    pub request_queue_max: usize,
    /// How long one RPC may take.
    pub rpc_timeout_ms: u64,
    /// A snapshot is taken after this many log entries since the last one.
    pub snapshot_every_entries: u64,
    /// Log entries kept behind a snapshot, so that a follower slightly behind catches up from
    /// the log rather than a snapshot.
    pub entries_kept_after_snapshot: u64,
    /// The most partitions one topic may have.
    pub topic_partitions_max: u32,
    /// The longest topic name, in bytes.
    pub topic_name_bytes_max: usize,
}

impl ControlConfig {
    /// A configuration with the defaults: heartbeats every 200 ms and a 1500 ms session (suited
    /// to a LAN), the Raft timing that follows from them ([`ControlConfig::set_timing`]).
    pub fn new(
        node_id: NodeId,
        peers: Vec<(NodeId, String)>,
        data_dir: PathBuf,
        ca_cert_pem: String,
        ca_key_pem: String,
        self_info: NodeInfo,
    ) -> Self {
        let mut config = Self {
            node_id,
            peers,
            listen: None,
            data_dir,
            ca_cert_pem,
            ca_key_pem,
            self_info,
            heartbeat_interval_ms: 0,
            session_timeout_ms: 0,
            election_timeout_min_ms: 0,
            election_timeout_max_ms: 0,
            raft_heartbeat_interval_ms: 0,
            controller_tick_ms: 100,
            request_queue_max: 256,
            rpc_timeout_ms: 2_000,
            snapshot_every_entries: 5_000,
            entries_kept_after_snapshot: 1_000,
            topic_partitions_max: TOPIC_PARTITIONS_MAX,
            topic_name_bytes_max: TOPIC_NAME_BYTES_MAX,
        };
        config.set_timing(200, 1500);
        config
    }

    /// Sets how often nodes heartbeat to the controller and their session, and derives the
    /// control plane's Raft timing from the session, so that a controller that dies is replaced
    /// well within one: elections after `session/6` to `session/3` of silence, beyond openraft's
    /// leader lease of `session/3` (a dead controller is noticed after about half a session),
    /// Raft heartbeats three times per shortest election timeout.
    pub fn set_timing(&mut self, heartbeat_interval_ms: u64, session_timeout_ms: u64) {
        self.heartbeat_interval_ms = heartbeat_interval_ms;
        self.session_timeout_ms = session_timeout_ms;
        self.election_timeout_max_ms = (session_timeout_ms / 3).max(60);
        self.election_timeout_min_ms = (session_timeout_ms / 6).max(30);
        self.raft_heartbeat_interval_ms = (self.election_timeout_min_ms / 3).max(10);
    }

    /// The session a new controller gives the nodes it has not heard from yet: half a session,
    /// but at least three heartbeat intervals (a live node reaches a new controller within two:
    /// one that may go to the old one, and the next).
    pub fn first_session_ms(&self) -> u64 {
        (self.session_timeout_ms / 2).max(3 * self.heartbeat_interval_ms).min(self.session_timeout_ms)
    }

    /// The voters: the first three peers, five when there are at least five.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        let count = if self.peers.len() >= 5 { 5 } else { 3 };
        self.peers.iter().take(count).map(|&(id, _)| id).collect()
    }
}

/// Attempts at a control call before it fails, and the pause between two that found no
/// controller (an election takes a few hundred milliseconds).
const CALL_ATTEMPTS: u32 = 25;
const CALL_BACKOFF_MS: u64 = 100;

type Answer = oneshot::Sender<Result<ControlReply, ControlError>>;

/// The way to a node's control plane: `Clone + Send + Sync`, cheap to clone. Its async methods
/// need no tokio runtime (they only use tokio's channels), so a glommio shard awaits them.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    node: NodeId,
    incarnation: u64,
    requests: mpsc::Sender<(ControlCall, Answer)>,
    meta: watch::Receiver<Arc<ClusterMeta>>,
    controller: watch::Receiver<Option<NodeId>>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ControlHandle {
    pub fn node_id(&self) -> NodeId {
        self.inner.node
    }

    /// This run's incarnation: one more than the previous run's.
    pub fn incarnation(&self) -> u64 {
        self.inner.incarnation
    }

    /// The applied metadata; only the newest state matters.
    pub fn meta(&self) -> watch::Receiver<Arc<ClusterMeta>> {
        self.inner.meta.clone()
    }

    /// The controller (Raft leader) as this node knows it.
    pub fn controller(&self) -> watch::Receiver<Option<NodeId>> {
        self.inner.controller.clone()
    }

    async fn call(&self, call: ControlCall) -> Result<ControlReply, ControlError> {
        let (answer, answered) = oneshot::channel();
        self.inner.requests.send((call, answer)).await.map_err(|_| ControlError::Stopped)?;
        answered.await.map_err(|_| ControlError::Stopped)?
    }

    /// Creates a topic; returns once it is committed.
    pub async fn create_topic(&self, topic: CreateTopic) -> Result<(), ControlError> {
        self.call(ControlCall::CreateTopic(topic)).await.map(|_| ())
    }

    /// Deletes a topic; returns once it is committed.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ControlError> {
        self.call(ControlCall::DeleteTopic { name: name.into() }).await.map(|_| ())
    }

    /// A partition leader's ISR proposal; the new state once committed.
    pub async fn alter_partition(&self, request: AlterPartition) -> Result<PartitionState, ControlError> {
        match self.call(ControlCall::AlterPartition((&request).into())).await? {
            ControlReply::Partition(state) => Ok(state),
            other => Err(ControlError::Rpc { reason: format!("unexpected answer {other:?}") }),
        }
    }

    /// A block of `count` producer ids never handed out before, committed: `[first, first + count)`.
    pub async fn allocate_producer_ids(&self, count: u32) -> Result<std::ops::Range<i64>, ControlError> {
        match self.call(ControlCall::AllocateProducerIds { count }).await? {
            ControlReply::ProducerIds { first, count } => Ok(first..first + i64::from(count)),
            other => Err(ControlError::Rpc { reason: format!("unexpected answer {other:?}") }),
        }
    }

    /// Adds access control bindings; returns once they are committed.
    pub async fn create_acls(&self, bindings: Vec<crate::acl::AclBinding>) -> Result<(), ControlError> {
        self.call(ControlCall::CreateAcls(bindings)).await.map(|_| ())
    }

    /// Removes the bindings the filters select; returns them, filter by filter, once committed.
    /// A retry after an attempt that committed unanswered finds nothing left to remove.
    pub async fn delete_acls(
        &self,
        filters: Vec<crate::acl::AclFilter>,
    ) -> Result<crate::acl::Matched, ControlError> {
        match self.call(ControlCall::DeleteAcls(filters)).await? {
            ControlReply::AclsDeleted(matched) => Ok(matched),
            other => Err(ControlError::Rpc { reason: format!("unexpected answer {other:?}") }),
        }
    }

    /// The members as the controller sees them.
    pub async fn status(&self) -> Result<ClusterStatus, ControlError> {
        match self.call(ControlCall::Status).await? {
            ControlReply::Status(status) => Ok(status),
            other => Err(ControlError::Rpc { reason: format!("unexpected answer {other:?}") }),
        }
    }

    /// Stops the control plane and joins its thread (blocking). Idempotent; any clone's
    /// requests fail with [`ControlError::Stopped`] after it.
    pub fn shutdown(&self) {
        if let Some(stop) = self.inner.stop.lock().expect("not poisoned").take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.inner.thread.lock().expect("not poisoned").take() {
            let _ = thread.join();
        }
    }
}

/// What the thread hands back once it runs.
struct Started {
    meta: watch::Receiver<Arc<ClusterMeta>>,
    controller: watch::Receiver<Option<NodeId>>,
}

/// Starts the control plane's thread; returns once Raft runs and the RPC server listens.
pub fn start(config: ControlConfig) -> Result<ControlHandle, ControlError> {
    let raft_dir = config.data_dir.join("raft");
    let incarnation = bump_incarnation(&raft_dir)?;
    let (requests, requests_rx) = mpsc::channel(config.request_queue_max);
    let (stop, stop_rx) = oneshot::channel();
    let (ready, ready_rx) = std::sync::mpsc::sync_channel(1);
    let node = config.node_id;
    let thread = std::thread::Builder::new()
        .name(format!("weir-control-{}", node.0))
        .spawn(move || run_thread(config, incarnation, requests_rx, stop_rx, ready))
        .map_err(|source| ControlError::Io { path: raft_dir.clone(), source })?;
    let started = match ready_rx.recv() {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => return Err(ControlError::Stopped),
    };
    let inner = HandleInner {
        node,
        incarnation,
        requests,
        meta: started.meta,
        controller: started.controller,
        stop: Mutex::new(Some(stop)),
        thread: Mutex::new(Some(thread)),
    };
    Ok(ControlHandle { inner: Arc::new(inner) })
}

/// Reads the previous incarnation (0 if none), and makes durable the next one: one more, or the
/// wall clock in microseconds if that is larger. The clock keeps incarnations growing when the
/// file is gone with a wiped data dir: the controller refuses an incarnation older than one it
/// has seen, and would never hear the node again.
fn bump_incarnation(raft_dir: &Path) -> Result<u64, ControlError> {
    let path = raft_dir.join("incarnation");
    let io = |source| ControlError::Io { path: path.clone(), source };
    std::fs::create_dir_all(raft_dir).map_err(io)?;
    let previous = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().map_err(|e| ControlError::Config {
            reason: format!("{} does not hold a number: {e}", path.display()),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(e)),
    };
    let clock_us =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    let next = (previous + 1).max(u64::try_from(clock_us).unwrap_or(u64::MAX));
    write_atomic(&path, next.to_string().as_bytes()).map_err(io)?;
    Ok(next)
}

fn run_thread(
    config: ControlConfig,
    incarnation: u64,
    requests: mpsc::Receiver<(ControlCall, Answer)>,
    stop: oneshot::Receiver<()>,
    ready: std::sync::mpsc::SyncSender<Result<Started, ControlError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(source) => {
            let _ = ready.send(Err(ControlError::Io { path: config.data_dir.clone(), source }));
            return;
        }
    };
    runtime.block_on(async move {
        let running = match boot(&config).await {
            Ok(running) => running,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let started = Started { meta: running.meta.clone(), controller: running.controller.clone() };
        let _ = ready.send(Ok(started));
        running.run(config, incarnation, requests, stop).await;
    });
}

/// Raft and the server, running.
struct Running {
    raft: Raft,
    caller: Caller,
    meta: watch::Receiver<Arc<ClusterMeta>>,
    controller: watch::Receiver<Option<NodeId>>,
}

fn resolve(peers: &[(NodeId, String)]) -> Result<BTreeMap<NodeId, SocketAddr>, ControlError> {
    let mut resolved = BTreeMap::new();
    for (id, addr) in peers {
        let found = addr.to_socket_addrs().ok().and_then(|mut a| a.next());
        let found =
            found.ok_or_else(|| ControlError::Config { reason: format!("cannot resolve {addr:?}") })?;
        if resolved.insert(*id, found).is_some() {
            return Err(ControlError::Config { reason: format!("node {} listed twice in peers", id.0) });
        }
    }
    Ok(resolved)
}

/// Openraft's configuration; a `blank` node with entries past index 0 starts no election (see
/// [`crate::blank`]).
fn raft_config(config: &ControlConfig, blank: bool) -> Result<openraft::Config, ControlError> {
    let raft = openraft::Config {
        cluster_name: "weir".into(),
        heartbeat_interval: config.raft_heartbeat_interval_ms,
        election_timeout_min: config.election_timeout_min_ms,
        election_timeout_max: config.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
        max_in_snapshot_log_to_keep: config.entries_kept_after_snapshot,
        // A command is at most `COMMAND_BYTES_MAX`: this many keep an AppendEntries frame well
        // below `FRAME_BYTES_MAX` (asserted in `rpc`).
        max_payload_entries: APPEND_ENTRIES_MAX,
        enable_elect: !blank,
        ..Default::default()
    };
    raft.validate().map_err(|e| ControlError::Config { reason: e.to_string() })
}

async fn boot(config: &ControlConfig) -> Result<Running, ControlError> {
    let me = config.node_id;
    let peers = resolve(&config.peers)?;
    let own = *peers
        .get(&me)
        .ok_or_else(|| ControlError::Config { reason: format!("node {} not in peers", me.0) })?;
    let tls = NodeTls::issue(&config.ca_cert_pem, &config.ca_key_pem, me)?;
    tls.store(&config.data_dir.join("cluster-tls"))?;
    let transport = Transport::bind(me, config.listen.unwrap_or(own), peers, &tls)?;
    let raft_dir = config.data_dir.join("raft");
    let storage = |e: openraft::StorageError<u64>| ControlError::Unavailable { reason: e.to_string() };
    let log = LogStore::open(&raft_dir)?;
    let blank = log.is_blank() && !crate::blank::blank_may_elect(log.vote_and_last_log_id().1);
    let store = log.clone();
    let state_machine = StateMachine::open(&raft_dir).map_err(storage)?;
    let meta = state_machine.subscribe();
    let network = NetworkFactory { transport: transport.clone() };
    let raft = Raft::new(u64::from(me.0), Arc::new(raft_config(config, blank)?), network, log, state_machine)
        .await
        .map_err(|e| ControlError::Unavailable { reason: e.to_string() })?;
    let (host_tx, host_rx) = host_channel(config.request_queue_max);
    let host_config = HostConfig {
        me,
        peers: config.peers.iter().cloned().collect(),
        voters: config.voters(),
        session_timeout_ms: config.session_timeout_ms,
        first_session_ms: config.first_session_ms(),
        tick_interval_ms: config.controller_tick_ms,
        write_timeout_ms: HostConfig::write_timeout_for(config.rpc_timeout_ms, config.session_timeout_ms),
        topic_partitions_max: config.topic_partitions_max,
        topic_name_bytes_max: config.topic_name_bytes_max,
    };
    // A caller waits for the controller's whole budget and the round trip: a call that timed
    // out at the caller has ended on the controller too, so its retry does not race it.
    let call_timeout = host_config.call_budget() + Duration::from_millis(config.rpc_timeout_ms);
    tokio::spawn(ControllerHost::new(host_config, raft.clone(), meta.clone()).run(host_rx));
    let members = config.peers.iter().map(|(id, _)| *id).collect();
    let blank = BlankGuard { store, raft: raft.clone() };
    tokio::spawn(blank.clone().watch_leadership());
    let dispatcher = Dispatcher { raft: raft.clone(), blank, host: host_tx.clone(), members, call_timeout };
    let rpc_timeout = Duration::from_millis(config.rpc_timeout_ms);
    tokio::spawn(serve(transport.endpoint().clone(), dispatcher, rpc_timeout));
    initialize(config, &raft).await?;
    let controller = watch_controller(&raft);
    let caller = Caller { me, raft: raft.clone(), transport, host: host_tx, call_timeout };
    Ok(Running { raft, caller, meta, controller })
}

/// The lowest-id voter initialises a cluster that has never run; a node with a log (or a
/// vote) is initialised already and skips it.
async fn initialize(config: &ControlConfig, raft: &Raft) -> Result<(), ControlError> {
    let voters = config.voters();
    if voters.first() != Some(&config.node_id) {
        return Ok(());
    }
    let initialized =
        raft.is_initialized().await.map_err(|e| ControlError::Unavailable { reason: e.to_string() })?;
    if initialized {
        return Ok(());
    }
    let addrs: BTreeMap<NodeId, &String> = config.peers.iter().map(|(id, a)| (*id, a)).collect();
    let members: BTreeMap<u64, openraft::BasicNode> =
        voters.iter().map(|id| (u64::from(id.0), openraft::BasicNode::new(addrs[id]))).collect();
    match raft.initialize(members).await {
        Ok(()) => Ok(()),
        Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(ControlError::Unavailable { reason: e.to_string() }),
    }
}

/// Publishes the Raft leader as this node sees it.
fn watch_controller(raft: &Raft) -> watch::Receiver<Option<NodeId>> {
    let mut metrics = raft.metrics();
    let leader =
        |m: &openraft::RaftMetrics<u64, openraft::BasicNode>| m.current_leader.map(|l| NodeId(l as u32));
    let (tx, rx) = watch::channel(leader(&metrics.borrow()));
    tokio::spawn(async move {
        while metrics.changed().await.is_ok() {
            let now = leader(&metrics.borrow_and_update());
            tx.send_if_modified(|seen| std::mem::replace(seen, now) != now);
        }
    });
    rx
}

impl Running {
    async fn run(
        self,
        config: ControlConfig,
        incarnation: u64,
        mut requests: mpsc::Receiver<(ControlCall, Answer)>,
        stop: oneshot::Receiver<()>,
    ) {
        let caller = self.caller.clone();
        tokio::spawn(heartbeats(
            caller.clone(),
            incarnation,
            config.heartbeat_interval_ms,
            config.session_timeout_ms,
        ));
        tokio::spawn(register(caller.clone(), config.self_info.clone()));
        // Requests are served concurrently (a call waits for a commit, or retries while there
        // is no controller), at most `request_queue_max` at a time.
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.request_queue_max));
        let serve_requests = async move {
            while let Some((call, answer)) = requests.recv().await {
                let caller = caller.clone();
                let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
                tokio::spawn(async move {
                    let _ = answer.send(caller.call(call, CALL_ATTEMPTS).await);
                    drop(permit);
                });
            }
        };
        tokio::select! {
            _ = serve_requests => {}
            _ = stop => {}
        }
        let _ = self.raft.shutdown().await;
        self.caller.transport.endpoint().close(0u32.into(), b"shutdown");
    }
}

/// The shortest time a heartbeat attempt is given, however short the interval.
const HEARTBEAT_ATTEMPT_MS_MIN: u64 = 100;

/// Sends a heartbeat to the controller every `interval_ms`.
async fn heartbeats(caller: Caller, incarnation: u64, interval_ms: u64, session_ms: u64) {
    let session = Duration::from_millis(session_ms);
    let (mut failed_since, mut warned) = (None, false);
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let heartbeat = ControlCall::Heartbeat { node: caller.me, incarnation };
        // One interval per attempt at most: a heartbeat stuck on a controller that died would
        // let this node's session expire at the next one, while the new controller waits.
        let attempt = Duration::from_millis(interval_ms.max(HEARTBEAT_ATTEMPT_MS_MIN));
        match caller.call_within(heartbeat, 2, attempt).await {
            Ok(_) => failed_since = None,
            Err(e) => {
                // Said once a session's worth of heartbeats failed: the controller fences this
                // node by then, and a node not heard from says why here.
                let since = *failed_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= session && !warned {
                    tracing::warn!(error = %e, "heartbeats have failed for a session: the controller takes this node for gone");
                    warned = true;
                }
                tracing::debug!("heartbeat: {e}");
                continue;
            }
        }
        warned = false;
    }
}

/// Registers this node's addresses, retrying until the registration is committed.
async fn register(caller: Caller, info: NodeInfo) {
    while let Err(e) = caller.call(ControlCall::Register(info.clone()), CALL_ATTEMPTS).await {
        tracing::debug!("registration: {e}");
        tokio::time::sleep(Duration::from_millis(CALL_BACKOFF_MS)).await;
    }
}

/// Makes control calls at the controller, wherever it is.
#[derive(Clone)]
struct Caller {
    me: NodeId,
    raft: Raft,
    transport: Arc<Transport>,
    host: HostSender,
    /// How long one attempt may take: longer than the controller's budget for a call.
    call_timeout: Duration,
}

impl Caller {
    /// Calls the controller, following `NotController` answers to the leader they name and
    /// retrying while there is none, `attempts` times at most.
    async fn call(&self, call: ControlCall, attempts: u32) -> Result<ControlReply, ControlError> {
        self.call_within(call, attempts, self.call_timeout).await
    }

    /// [`call`](Self::call), each attempt bounded by `attempt_timeout`.
    async fn call_within(
        &self,
        call: ControlCall,
        attempts: u32,
        attempt_timeout: Duration,
    ) -> Result<ControlReply, ControlError> {
        let mut target = self.raft.metrics().borrow().current_leader.map(|l| NodeId(l as u32));
        let mut last = ControlError::Unavailable { reason: "no controller".into() };
        // Whether an attempt of this call ended without an answer: it may have committed.
        let mut uncertain = false;
        for _ in 0..attempts {
            let result = match target {
                Some(node) if node == self.me => self.local(call.clone(), attempt_timeout).await,
                Some(node) => self.remote(node, call.clone(), attempt_timeout).await,
                None => Err(ControlError::Unavailable { reason: "no controller elected".into() }),
            };
            let result = settle_retry(&call, uncertain, result);
            uncertain |= matches!(result, Err(ControlError::Unavailable { .. } | ControlError::Rpc { .. }));
            match result {
                Err(ControlError::NotController { leader: Some(l) }) if Some(l) != target => target = Some(l),
                Err(
                    e @ (ControlError::NotController { .. }
                    | ControlError::Unavailable { .. }
                    | ControlError::Rpc { .. }),
                ) => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(CALL_BACKOFF_MS)).await;
                    target = self.raft.metrics().borrow().current_leader.map(|l| NodeId(l as u32));
                }
                done => return done,
            }
        }
        Err(last)
    }

    async fn local(&self, call: ControlCall, timeout: Duration) -> Result<ControlReply, ControlError> {
        let (request, answered) = HostRequest::new(call);
        self.host.call(request, answered, timeout).await
    }

    async fn remote(
        &self,
        node: NodeId,
        call: ControlCall,
        timeout: Duration,
    ) -> Result<ControlReply, ControlError> {
        match self.transport.call(node, Request::Control(call), timeout).await? {
            Response::Control(reply) => reply.map_err(Into::into),
            Response::Refused(e) => Err(e.into()),
            other => Err(ControlError::Rpc { reason: format!("unexpected answer {other:?}") }),
        }
    }
}

/// A delete retried after an attempt that may have committed finds the topic gone: that is its
/// own success. (A create needs no such care: the controller takes a topic that exists as
/// asked for as created.)
fn settle_retry(
    call: &ControlCall,
    uncertain: bool,
    result: Result<ControlReply, ControlError>,
) -> Result<ControlReply, ControlError> {
    match (call, result) {
        (
            ControlCall::DeleteTopic { name },
            Err(ControlError::Meta(MetaError::UnknownTopic { name: gone })),
        ) if uncertain && *name == gone => Ok(ControlReply::Done),
        (_, result) => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_retried_after_an_unanswered_attempt_takes_the_topic_gone_as_done() {
        let delete = ControlCall::DeleteTopic { name: "t".into() };
        let gone = || Err(ControlError::Meta(MetaError::UnknownTopic { name: "t".into() }));
        assert!(matches!(settle_retry(&delete, true, gone()), Ok(ControlReply::Done)));
        assert!(settle_retry(&delete, false, gone()).is_err(), "a first attempt finds no topic: an error");
        let other = ControlCall::DeleteTopic { name: "u".into() };
        assert!(settle_retry(&other, true, gone()).is_err(), "another topic's absence is no success");
    }

    #[test]
    fn incarnations_grow_even_when_the_file_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let first = bump_incarnation(dir.path()).unwrap();
        let second = bump_incarnation(dir.path()).unwrap();
        assert!(second > first);
        std::fs::remove_file(dir.path().join("incarnation")).unwrap();
        assert!(bump_incarnation(dir.path()).unwrap() > second, "a wiped node starts later still");
    }
}

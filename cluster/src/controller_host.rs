//! The controller's host: on the Raft leader only, a [`Controller`] recovered from the applied
//! metadata, fed heartbeats, alter-partition calls and topic changes, ticked, and every record
//! it produces proposed to Raft before the caller is answered.
//!
//! Lifecycle: one task on the control plane's runtime owns the host and serves
//! [`HostRequest`]s one at a time, so proposals are made in the order the controller made its
//! decisions. When this node becomes leader (or a new term starts) the controller is recovered
//! only after the leader has applied every entry before its term (`ensure_linearizable`), so
//! it starts from the metadata every earlier controller committed. A proposal that fails
//! because leadership was lost drops the controller; the next leader recovers its own.

use crate::error::{ControlError, MetaError};
use crate::meta::{ClusterMeta, MetaCommand, PartitionEntry, TopicEntry};
use crate::placement::place;
use crate::rpc::{
    COMMAND_BYTES_MAX, ClusterStatus, ControlCall, ControlReply, CreateTopic, NodeStatus, WireAlter,
};
use crate::types::Raft;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use weir_replication::{Controller, ControllerConfig, NodeId, PartitionId, PartitionState};

/// A control call, when it arrived at this node, and where to answer it.
#[derive(Debug)]
pub struct HostRequest {
    pub call: ControlCall,
    /// Stamped on arrival: a heartbeat is proof of life when it arrived, not when it is served
    /// (it may wait behind a proposal).
    pub received: Instant,
    pub answer: oneshot::Sender<Result<ControlReply, ControlError>>,
}

impl HostRequest {
    /// `call`, received now, and the receiver of its answer.
    pub fn new(call: ControlCall) -> (Self, oneshot::Receiver<Result<ControlReply, ControlError>>) {
        let (answer, answered) = oneshot::channel();
        (Self { call, received: Instant::now(), answer }, answered)
    }
}

/// The way into the host: heartbeats travel on their own queue, served ahead of every other
/// call, so a busy controller never fences a live node whose heartbeat waited behind a
/// proposal. Both queues are bounded. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HostSender {
    pub calls: mpsc::Sender<HostRequest>,
    pub heartbeats: mpsc::Sender<HostRequest>,
}

/// The receiving ends of a [`HostSender`].
#[derive(Debug)]
pub struct HostReceiver {
    calls: mpsc::Receiver<HostRequest>,
    heartbeats: mpsc::Receiver<HostRequest>,
}

/// The host's two queues, each holding at most `capacity` requests.
pub fn host_channel(capacity: usize) -> (HostSender, HostReceiver) {
    let (calls, calls_rx) = mpsc::channel(capacity);
    let (heartbeats, heartbeats_rx) = mpsc::channel(capacity);
    (HostSender { calls, heartbeats }, HostReceiver { calls: calls_rx, heartbeats: heartbeats_rx })
}

impl HostSender {
    /// Queues `request` and waits at most `timeout` for its answer.
    pub async fn call(&self, request: HostRequest, answered: Answered, timeout: Duration) -> Reply {
        let queue = match request.call {
            ControlCall::Heartbeat { .. } => &self.heartbeats,
            _ => &self.calls,
        };
        let served = async {
            queue.send(request).await.map_err(|_| ControlError::Stopped)?;
            answered.await.map_err(|_| ControlError::Stopped)?
        };
        tokio::time::timeout(timeout, served).await.unwrap_or_else(|_| {
            Err(ControlError::Unavailable { reason: "the controller did not answer in time".into() })
        })
    }
}

type Reply = Result<ControlReply, ControlError>;
type Answered = oneshot::Receiver<Reply>;

/// The default of `topic_partitions_max`: the node's `PARTITIONS_MAX`.
pub const TOPIC_PARTITIONS_MAX: u32 = 10_000;

/// The default of `topic_name_bytes_max`.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// How many times the write timeout one control call may take on the controller: the
/// leadership check, catching up with the log, the records due and the call's own proposal.
pub const CALL_WRITES_MAX: u32 = 4;

/// How often the controller moves leaders back to their preferred replicas (rule 9 of the
/// controller), at most. Leadership moves cost clients a retry, so they are paced, not made at
/// every tick.
pub const PREFERRED_ELECTION_INTERVAL_MS: u64 = 1_000;

/// The most partitions one round of preferred-leader elections moves: a node back after a long
/// absence takes its leaderships back over several rounds, not all in one storm of changes.
pub const PREFERRED_ELECTIONS_PER_ROUND_MAX: usize = 64;

/// Aborts the process if the host panics: a Raft leader whose controller died would answer
/// every call `Stopped` and never hand leadership over.
struct AbortOnPanic;

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("weir: the controller host panicked; aborting rather than lead without a controller");
            std::process::abort();
        }
    }
}

/// What the host needs to know of the cluster.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub me: NodeId,
    /// Every member, with its cluster address.
    pub peers: BTreeMap<NodeId, String>,
    pub voters: BTreeSet<NodeId>,
    pub session_timeout_ms: u64,
    /// The session of a node a new controller has not heard from yet (see
    /// [`Controller::first_sessions`]).
    pub first_session_ms: u64,
    pub tick_interval_ms: u64,
    /// How long a proposal or the leadership check may take. Without a quorum neither ends:
    /// the caller is answered `Unavailable` instead and the controller is dropped. Below the
    /// session timeout (see [`HostConfig::write_timeout_for`]).
    pub write_timeout_ms: u64,
    /// The most partitions one topic may have; a larger create is refused before anything.
    pub topic_partitions_max: u32,
    /// The longest topic name, in bytes.
    pub topic_name_bytes_max: usize,
}

impl HostConfig {
    /// A write timeout of `rpc_timeout_ms`, but at most half the session timeout, so that one
    /// stuck proposal cannot outlast a live node's session.
    pub fn write_timeout_for(rpc_timeout_ms: u64, session_timeout_ms: u64) -> u64 {
        rpc_timeout_ms.min(session_timeout_ms / 2).max(1)
    }

    /// The longest a control call may take on the controller; a caller waits longer than this
    /// before it gives up (and may retry).
    pub fn call_budget(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms * u64::from(CALL_WRITES_MAX))
    }
}

/// See the module documentation.
pub struct ControllerHost {
    config: HostConfig,
    raft: Raft,
    meta: watch::Receiver<Arc<ClusterMeta>>,
    /// The controller of the term it was recovered in, while this node leads that term.
    controller: Option<(u64, Controller)>,
    /// The lowest partition id not yet handed out by this host: ids of a topic whose creation
    /// is in flight are not yet in the applied metadata.
    reserved_partition_id: u32,
    started: Instant,
    /// When the next round of preferred-leader elections is due, on the controller's clock.
    preferred_election_due_ms: u64,
}

impl std::fmt::Debug for ControllerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let leading = self.controller.as_ref().map(|(term, _)| term);
        f.debug_struct("ControllerHost")
            .field("config", &self.config)
            .field("leading_term", &leading)
            .finish()
    }
}

/// A copy of `e` for another caller (errors carry no clone): its wire form.
fn copy_error(e: &ControlError) -> ControlError {
    crate::rpc::WireError::from(e).into()
}

fn not_controller(leader: Option<u64>) -> ControlError {
    ControlError::NotController { leader: leader.map(|l| NodeId(l as u32)) }
}

impl ControllerHost {
    pub fn new(config: HostConfig, raft: Raft, meta: watch::Receiver<Arc<ClusterMeta>>) -> Self {
        let started = Instant::now();
        let preferred_election_due_ms = PREFERRED_ELECTION_INTERVAL_MS;
        Self {
            config,
            raft,
            meta,
            controller: None,
            reserved_partition_id: 0,
            started,
            preferred_election_due_ms,
        }
    }

    /// Serves requests and ticks until the queues close. Heartbeats come first: before any
    /// other call or tick, every queued heartbeat is fed to the controller with its arrival
    /// time.
    pub async fn run(mut self, mut queues: HostReceiver) {
        let _abort = AbortOnPanic;
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.tick_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                beat = queues.heartbeats.recv() => {
                    let Some(beat) = beat else { return };
                    self.serve_heartbeats(beat, &mut queues.heartbeats).await;
                }
                _ = tick.tick() => {
                    self.drain_heartbeats(&mut queues.heartbeats).await;
                    self.on_tick().await;
                }
                request = queues.calls.recv() => {
                    let Some(HostRequest { call, received, answer }) = request else { return };
                    self.drain_heartbeats(&mut queues.heartbeats).await;
                    let _ = answer.send(self.handle(call, received).await);
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// `at` on the controller's clock.
    fn at_ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64
    }

    async fn drain_heartbeats(&mut self, queue: &mut mpsc::Receiver<HostRequest>) {
        if let Ok(first) = queue.try_recv() {
            self.serve_heartbeats(first, queue).await;
        }
    }

    /// Feeds `first` and every heartbeat queued behind it to the controller, each at its
    /// arrival time, proposes what they changed as one command, and answers them all.
    async fn serve_heartbeats(&mut self, first: HostRequest, queue: &mut mpsc::Receiver<HostRequest>) {
        let mut beats = vec![first];
        while let Ok(next) = queue.try_recv() {
            beats.push(next);
        }
        if let Err(e) = self.ensure_controller().await {
            beats.into_iter().for_each(|b| drop(b.answer.send(Err(copy_error(&e)))));
            return;
        }
        let mut answers = Vec::with_capacity(beats.len());
        let mut starts = Vec::new();
        for HostRequest { call, received, answer } in beats {
            let ControlCall::Heartbeat { node, incarnation } = call else {
                let _ = answer.send(Err(ControlError::Rpc { reason: "not a heartbeat".into() }));
                continue;
            };
            let at = self.at_ms(received);
            let result = self.controller_mut().handle_heartbeat(at, node, incarnation);
            if result.is_ok() {
                starts.push((node, incarnation));
            }
            answers.push((answer, result));
        }
        let proposed = match self.propose_records().await {
            Ok(()) => self.record_starts(starts).await,
            Err(e) => Err(e),
        };
        for (answer, result) in answers {
            let reply = match &proposed {
                Err(e) => Err(copy_error(e)),
                Ok(()) => result.map(|()| ControlReply::Done).map_err(Into::into),
            };
            let _ = answer.send(reply);
        }
    }

    async fn handle(&mut self, call: ControlCall, received: Instant) -> Result<ControlReply, ControlError> {
        self.ensure_controller().await?;
        match call {
            ControlCall::Heartbeat { node, incarnation } => {
                let at = self.at_ms(received);
                let result = self.controller_mut().handle_heartbeat(at, node, incarnation);
                self.propose_records().await?;
                if result.is_ok() {
                    self.record_starts(vec![(node, incarnation)]).await?;
                }
                result.map(|()| ControlReply::Done).map_err(Into::into)
            }
            ControlCall::AlterPartition(alter) => self.alter_partition(alter).await,
            ControlCall::CreateTopic(topic) => self.create_topic(topic).await.map(|()| ControlReply::Done),
            ControlCall::DeleteTopic { name } => self.delete_topic(&name).await.map(|()| ControlReply::Done),
            ControlCall::Register(info) => {
                self.propose(MetaCommand::RegisterNode(info)).await??;
                Ok(ControlReply::Done)
            }
            ControlCall::Status => Ok(ControlReply::Status(self.status())),
            ControlCall::AllocateProducerIds { count } => {
                // Calls are served one at a time and only the controller allocates: the next
                // free id is the applied one.
                let first = self.meta.borrow().next_producer_id;
                self.propose(MetaCommand::AllocateProducerIds { first, count }).await??;
                Ok(ControlReply::ProducerIds { first, count })
            }
            ControlCall::CreateAcls(bindings) => {
                self.propose(MetaCommand::CreateAcls(bindings)).await??;
                Ok(ControlReply::Done)
            }
            ControlCall::DeleteAcls(filters) => {
                // Calls are served one at a time: the bindings matched now are those the
                // command removes when applied.
                let matched = crate::acl::matching(&self.meta.borrow().acls, &filters);
                if !matched.bindings.is_empty() {
                    self.propose(MetaCommand::DeleteAcls(filters)).await??;
                }
                Ok(ControlReply::AclsDeleted(matched))
            }
        }
    }

    fn controller_mut(&mut self) -> &mut Controller {
        &mut self.controller.as_mut().expect("ensured").1
    }

    /// Ticks the controller, moves leaders back to their preferred replicas when a round is due,
    /// proposes what changed and adds missing learners, when leading.
    async fn on_tick(&mut self) {
        let leading = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.current_leader == Some(u64::from(self.config.me.0))
        };
        if !leading {
            self.controller = None;
            return;
        }
        if self.ensure_controller().await.is_err() {
            return;
        }
        let now = self.now_ms();
        self.controller_mut().tick(now);
        if now >= self.preferred_election_due_ms {
            self.preferred_election_due_ms = now + PREFERRED_ELECTION_INTERVAL_MS;
            self.controller_mut().elect_preferred_leaders(now, PREFERRED_ELECTIONS_PER_ROUND_MAX);
        }
        if let Err(e) = self.propose_records().await {
            tracing::warn!("controller tick: {e}");
        }
        self.add_missing_learners().await;
    }

    /// Recovers the controller if this node leads and has none for the current term; refuses
    /// with the leader's id otherwise.
    async fn ensure_controller(&mut self) -> Result<(), ControlError> {
        let (leader, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_leader, m.current_term)
        };
        if leader != Some(u64::from(self.config.me.0)) {
            self.controller = None;
            return Err(not_controller(leader));
        }
        if self.controller.as_ref().is_some_and(|(t, _)| *t == term) {
            return Ok(());
        }
        self.controller = None;
        // Everything committed before this term is applied once this returns (the read index is
        // at least the leader's first entry of its term).
        let timeout = Duration::from_millis(self.config.write_timeout_ms);
        match tokio::time::timeout(timeout, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(not_controller(e.forward_to_leader().and_then(|f| f.leader_id))),
            Err(_) => {
                return Err(ControlError::Unavailable { reason: "no quorum confirmed the leader".into() });
            }
        }
        self.wait_applied_own_log(timeout).await?;
        let meta = self.meta.borrow().clone();
        let config = ControllerConfig {
            min_insync_replicas: 1,
            unclean_leader_election: false,
            session_timeout_ms: self.config.session_timeout_ms,
        };
        let nodes: Vec<NodeId> = self.config.peers.keys().copied().collect();
        let now = self.now_ms();
        let mut controller = Controller::recover(config, meta.controller_state(), &nodes, now);
        controller.known_incarnations(&meta.incarnations);
        controller.first_sessions(now, self.config.first_session_ms);
        self.reserved_partition_id = self.reserved_partition_id.max(meta.next_partition_id);
        self.controller = Some((term, controller));
        tracing::info!(node = self.config.me.0, term, "controller recovered");
        Ok(())
    }

    /// Waits until this leader applied its whole log: a proposal of an earlier controller of
    /// this term that timed out may still be in it (after the entry `ensure_linearizable`
    /// covers), and a controller recovered without it would not know, say, a topic it created.
    async fn wait_applied_own_log(&self, timeout: Duration) -> Result<(), ControlError> {
        let last = self.raft.metrics().borrow().last_log_index;
        let waited = self.raft.wait(Some(timeout)).applied_index_at_least(last, "own log applied").await;
        waited
            .map(drop)
            .map_err(|e| ControlError::Unavailable { reason: format!("catching up with the log: {e}") })
    }

    /// Proposes `command` and waits for it to be applied. The outer error is a lost leadership
    /// (the controller is dropped); the inner one is the command's refusal.
    async fn propose(&mut self, command: MetaCommand) -> Result<Result<(), MetaError>, ControlError> {
        let timeout = Duration::from_millis(self.config.write_timeout_ms);
        let Ok(written) = tokio::time::timeout(timeout, self.raft.client_write(command)).await else {
            // It may still commit: the next controller recovers from the log whatever it holds.
            self.controller = None;
            return Err(ControlError::Unavailable {
                reason: "the proposal was not committed in time".into(),
            });
        };
        match written {
            Ok(response) => Ok(response.data),
            Err(e) => {
                self.controller = None;
                let leader = e.forward_to_leader().and_then(|f| f.leader_id);
                Err(match leader {
                    Some(_) => not_controller(leader),
                    None => ControlError::Unavailable { reason: e.to_string() },
                })
            }
        }
    }

    /// Drains the controller's records and proposes them as one `PartitionsChanged` command
    /// (split only past [`COMMAND_BYTES_MAX`]), in order. A refused command means this
    /// controller's view diverged from the log: it is dropped and recovered afresh.
    async fn propose_records(&mut self) -> Result<(), ControlError> {
        for changes in split_changes(self.drain_records(), COMMAND_BYTES_MAX) {
            if let Err(e) = self.propose(MetaCommand::PartitionsChanged(changes)).await? {
                self.controller = None;
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Commits `NodeStarted` for each (node, incarnation) the metadata does not record yet,
    /// after the changes those starts caused were committed (by the caller): a node acts on
    /// the metadata only once it records its current start (see `MetaCommand::NodeStarted`).
    async fn record_starts(&mut self, starts: Vec<(NodeId, u64)>) -> Result<(), ControlError> {
        for (node, incarnation) in starts {
            if self.meta.borrow().incarnations.get(&node) == Some(&incarnation) {
                continue;
            }
            match self.propose(MetaCommand::NodeStarted { node, incarnation }).await? {
                Ok(()) => {}
                // A later start of the node was recorded meanwhile: nothing to do for this one.
                Err(MetaError::StaleIncarnation { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn drain_records(&mut self) -> Vec<(PartitionId, PartitionState)> {
        let Some((_, controller)) = self.controller.as_mut() else { return Vec::new() };
        let records: Vec<_> = std::iter::from_fn(|| controller.poll_record()).collect();
        for (id, p) in &records {
            tracing::debug!(partition = id.0, leader = ?p.leader, leader_epoch = p.leader_epoch, isr = ?p.isr, "decided");
        }
        records
    }

    async fn alter_partition(&mut self, alter: WireAlter) -> Result<ControlReply, ControlError> {
        let now = self.now_ms();
        let result = self.controller_mut().handle_alter_partition(now, &alter.into());
        self.propose_records().await?;
        Ok(ControlReply::Partition(result?))
    }

    async fn create_topic(&mut self, request: CreateTopic) -> Result<(), ControlError> {
        // Decisions due now are proposed first, so that the records drained below are only the
        // new partitions' (which travel inside the CreateTopic command).
        let now = self.now_ms();
        self.controller_mut().tick(now);
        self.propose_records().await?;
        let meta = self.meta.borrow().clone();
        if meta.topics.get(&request.name).is_some_and(|t| same_topic(t, &request)) {
            // Our own earlier attempt may have committed before its answer was lost.
            return Ok(());
        }
        let (topic, partitions) = self.plan_topic(&meta, &request)?;
        let mut entries = Vec::with_capacity(partitions.len());
        for (i, (&id, replicas)) in topic.partitions.iter().zip(partitions).enumerate() {
            let nodes = replicas.iter().map(|r| r.node).collect();
            let min = Some(usize::from(topic.min_insync_replicas));
            match self.controller_mut().create_partition_with(id, nodes, min, now) {
                Ok(state) => {
                    let (topic, index, state) = (topic.name.clone(), i as u32, state.clone());
                    entries.push(PartitionEntry { topic, index, replicas, state });
                    // The first states travel inside the CreateTopic command, not as records;
                    // drained as they come so the controller's record queue never fills.
                    self.drain_records();
                }
                Err(e) => {
                    self.forget(&topic.partitions[..i]);
                    return Err(e.into());
                }
            }
        }
        self.drain_records();
        let ids = topic.partitions.clone();
        let command = MetaCommand::CreateTopic { topic, partitions: entries };
        let bytes = serde_json::to_vec(&command).map_or(usize::MAX, |b| b.len());
        if bytes > COMMAND_BYTES_MAX {
            self.forget(&ids);
            return Err(MetaError::CommandTooLarge { bytes, max: COMMAND_BYTES_MAX }.into());
        }
        if let Err(e) = self.propose(command).await? {
            self.forget(&ids);
            return Err(e.into());
        }
        Ok(())
    }

    /// The topic entry and the placement of a new topic; reserves its partition ids.
    fn plan_topic(
        &mut self,
        meta: &ClusterMeta,
        request: &CreateTopic,
    ) -> Result<(TopicEntry, Vec<Vec<weir_replication::ReplicaAddr>>), ControlError> {
        let name = request.name.clone();
        let invalid = |reason: &str| MetaError::InvalidTopic { name: name.clone(), reason: reason.into() };
        check_limits(&self.config, request)?;
        if meta.topics.contains_key(&name) {
            return Err(MetaError::TopicExists { name }.into());
        }
        let rf = request.replication_factor;
        if name.is_empty() || request.partitions == 0 || rf == 0 {
            return Err(invalid("a topic has a name, partitions and a replication factor").into());
        }
        // Replicas go only to members that registered: a registered node that is no longer a
        // peer gets no heartbeat session from this controller.
        let nodes: Vec<(NodeId, u16)> = (meta.nodes.values())
            .filter(|n| self.config.peers.contains_key(&n.id))
            .map(|n| (n.id, n.shard_ports.len().max(1) as u16))
            .collect();
        if usize::from(rf) > nodes.len() {
            return Err(ControlError::ReplicationFactor { requested: rf, nodes: nodes.len() });
        }
        let min_insync_replicas = request.min_insync_replicas.unwrap_or(rf.min(2));
        if min_insync_replicas == 0 || min_insync_replicas > rf {
            return Err(invalid("min_insync_replicas must be between 1 and the replication factor").into());
        }
        let first = self.reserved_partition_id.max(meta.next_partition_id);
        let last = first.checked_add(request.partitions).ok_or_else(|| invalid("partition ids exhausted"))?;
        self.reserved_partition_id = last;
        let placement = place(&nodes, request.partitions, rf, first as usize);
        let topic = TopicEntry {
            name,
            partitions: (first..last).map(PartitionId).collect(),
            replication_factor: rf,
            min_insync_replicas,
            retention_ms: request.retention_ms,
            retention_bytes: request.retention_bytes,
            cleanup_policy: request.cleanup_policy,
            delete_retention_ms: request.delete_retention_ms,
        };
        Ok((topic, placement))
    }

    fn forget(&mut self, partitions: &[PartitionId]) {
        if let Some((_, controller)) = self.controller.as_mut() {
            for &id in partitions {
                controller.remove_partition(id);
            }
        }
        self.drain_records();
    }

    async fn delete_topic(&mut self, name: &str) -> Result<(), ControlError> {
        let now = self.now_ms();
        self.controller_mut().tick(now);
        self.propose_records().await?;
        let meta = self.meta.borrow().clone();
        let topic = meta.topics.get(name).ok_or_else(|| MetaError::UnknownTopic { name: name.into() })?;
        self.forget(&topic.partitions);
        if let Err(e) = self.propose(MetaCommand::DeleteTopic { name: name.into() }).await? {
            // The controller forgot partitions the log still has: start over from the log.
            self.controller = None;
            return Err(e.into());
        }
        Ok(())
    }

    fn status(&self) -> ClusterStatus {
        let controller = &self.controller.as_ref().expect("ensured").1;
        let meta = self.meta.borrow();
        let nodes = (self.config.peers.iter())
            .map(|(&id, addr)| NodeStatus {
                id,
                cluster_addr: meta.nodes.get(&id).map_or_else(|| addr.clone(), |n| n.cluster_addr.clone()),
                up: !controller.is_fenced(id),
                is_controller: id == self.config.me,
                voter: self.config.voters.contains(&id),
            })
            .collect();
        ClusterStatus { nodes, controller: Some(self.config.me) }
    }

    /// Adds every member that is not a voter as a learner, if the membership lacks it.
    async fn add_missing_learners(&mut self) {
        let known: BTreeSet<u64> = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.membership_config.membership().nodes().map(|(&id, _)| id).collect()
        };
        let missing: Vec<(NodeId, String)> = (self.config.peers.iter())
            .filter(|(id, _)| !known.contains(&u64::from(id.0)))
            .map(|(&id, addr)| (id, addr.clone()))
            .collect();
        let timeout = Duration::from_millis(self.config.write_timeout_ms);
        for (id, addr) in missing {
            let node = openraft::BasicNode::new(addr);
            let adding = self.raft.add_learner(u64::from(id.0), node, false);
            match tokio::time::timeout(timeout, adding).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("adding learner {id:?}: {e}"),
                // The membership change may still commit; the next tick sees it or tries again.
                Err(_) => tracing::warn!("adding learner {id:?}: timed out"),
            }
        }
    }
}

/// `changes` in order, cut into runs of at most `bytes_max` bytes serialised (one change, if
/// larger alone, is a run of its own).
pub fn split_changes(
    changes: Vec<(PartitionId, PartitionState)>,
    bytes_max: usize,
) -> Vec<Vec<(PartitionId, PartitionState)>> {
    let mut runs: Vec<Vec<(PartitionId, PartitionState)>> = Vec::new();
    let mut run_bytes = 0;
    for change in changes {
        let bytes = serde_json::to_vec(&change).map_or(bytes_max, |b| b.len() + 1);
        match runs.last_mut() {
            Some(run) if run_bytes + bytes <= bytes_max => run.push(change),
            _ => {
                runs.push(vec![change]);
                run_bytes = 0;
            }
        }
        run_bytes += bytes;
    }
    runs
}

/// Refuses a topic above the named limits before anything is planned.
fn check_limits(config: &HostConfig, request: &CreateTopic) -> Result<(), MetaError> {
    if request.partitions > config.topic_partitions_max {
        let (requested, max) = (request.partitions, config.topic_partitions_max);
        return Err(MetaError::TooManyPartitions { name: request.name.clone(), requested, max });
    }
    if request.name.len() > config.topic_name_bytes_max {
        let (bytes, max) = (request.name.len(), config.topic_name_bytes_max);
        return Err(MetaError::TopicNameTooLong { bytes, max });
    }
    Ok(())
}

/// Whether the existing `topic` is what `request` asks for: a retried create that committed.
fn same_topic(topic: &TopicEntry, request: &CreateTopic) -> bool {
    let rf = request.replication_factor;
    topic.partitions.len() == request.partitions as usize
        && topic.replication_factor == rf
        && topic.min_insync_replicas == request.min_insync_replicas.unwrap_or(rf.min(2))
        && topic.retention_ms == request.retention_ms
        && topic.retention_bytes == request.retention_bytes
        && topic.cleanup_policy == request.cleanup_policy
        && topic.delete_retention_ms == request.delete_retention_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: u32) -> (PartitionId, PartitionState) {
        let replicas: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let state = PartitionState {
            replicas: replicas.clone(),
            leader: Some(NodeId(1)),
            leader_epoch: 1,
            partition_epoch: 2,
            isr: replicas,
            elr: vec![],
        };
        (PartitionId(id), state)
    }

    #[test]
    fn changes_are_split_into_runs_under_the_limit_in_order() {
        let one = serde_json::to_vec(&change(0)).unwrap().len() + 1;
        let changes: Vec<_> = (0..100).map(change).collect();
        let runs = split_changes(changes.clone(), one * 30);
        assert_eq!(runs.len(), 4, "30 changes a run");
        for run in &runs {
            let bytes = serde_json::to_vec(&MetaCommand::PartitionsChanged(run.clone())).unwrap().len();
            assert!(bytes <= one * 30 + 64, "a run of {bytes} bytes");
        }
        assert_eq!(runs.concat(), changes);
        assert_eq!(
            split_changes(vec![change(1)], 1),
            vec![vec![change(1)]],
            "one too large alone still goes"
        );
        assert!(split_changes(Vec::new(), 10).is_empty());
    }

    /// The largest topic of the default limits, at a replication factor of 5, fits one command.
    #[test]
    fn the_largest_topic_fits_one_command() {
        let entries: Vec<PartitionEntry> = (0..TOPIC_PARTITIONS_MAX)
            .map(|i| {
                let (_, state) = change(i);
                let replicas = (state.replicas.iter())
                    .map(|&node| weir_replication::ReplicaAddr { node, shard: weir_replication::ShardId(3) })
                    .collect();
                PartitionEntry { topic: "t".repeat(TOPIC_NAME_BYTES_MAX), index: i, replicas, state }
            })
            .collect();
        let topic = TopicEntry {
            name: "t".repeat(TOPIC_NAME_BYTES_MAX),
            partitions: (0..TOPIC_PARTITIONS_MAX).map(PartitionId).collect(),
            replication_factor: 5,
            min_insync_replicas: 2,
            retention_ms: Some(u64::MAX),
            retention_bytes: Some(u64::MAX),
            cleanup_policy: weir_log::CleanupPolicy::CompactDelete,
            delete_retention_ms: Some(u64::MAX),
        };
        let bytes =
            serde_json::to_vec(&MetaCommand::CreateTopic { topic, partitions: entries }).unwrap().len();
        assert!(bytes <= COMMAND_BYTES_MAX, "{bytes} bytes");
    }
}

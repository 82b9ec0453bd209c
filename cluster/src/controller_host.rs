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
use crate::rpc::{ClusterStatus, ControlCall, ControlReply, CreateTopic, NodeStatus, WireAlter};
use crate::types::Raft;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use weir_replication::{Controller, ControllerConfig, NodeId, PartitionId, PartitionState};

/// A control call and where to answer it.
#[derive(Debug)]
pub struct HostRequest {
    pub call: ControlCall,
    pub answer: oneshot::Sender<Result<ControlReply, ControlError>>,
}

/// What the host needs to know of the cluster.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub me: NodeId,
    /// Every member, with its cluster address.
    pub peers: BTreeMap<NodeId, String>,
    pub voters: BTreeSet<NodeId>,
    pub session_timeout_ms: u64,
    pub tick_interval_ms: u64,
    /// How long a proposal or the leadership check may take. Without a quorum neither ends:
    /// the caller is answered `Unavailable` instead and the controller is dropped.
    pub write_timeout_ms: u64,
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

fn not_controller(leader: Option<u64>) -> ControlError {
    ControlError::NotController { leader: leader.map(|l| NodeId(l as u32)) }
}

impl ControllerHost {
    pub fn new(config: HostConfig, raft: Raft, meta: watch::Receiver<Arc<ClusterMeta>>) -> Self {
        Self { config, raft, meta, controller: None, reserved_partition_id: 0, started: Instant::now() }
    }

    /// Serves `requests` and ticks until the channel closes.
    pub async fn run(mut self, mut requests: mpsc::Receiver<HostRequest>) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.tick_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(HostRequest { call, answer }) = request else { return };
                    let _ = answer.send(self.handle(call).await);
                }
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn handle(&mut self, call: ControlCall) -> Result<ControlReply, ControlError> {
        self.ensure_controller().await?;
        match call {
            ControlCall::Heartbeat { node, incarnation } => {
                let now = self.now_ms();
                let result = self.controller_mut().handle_heartbeat(now, node, incarnation);
                self.propose_records().await?;
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
        }
    }

    fn controller_mut(&mut self) -> &mut Controller {
        &mut self.controller.as_mut().expect("ensured").1
    }

    /// Ticks the controller and adds missing learners, when leading.
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
        let meta = self.meta.borrow().clone();
        let config = ControllerConfig {
            min_insync_replicas: 1,
            unclean_leader_election: false,
            session_timeout_ms: self.config.session_timeout_ms,
        };
        let nodes: Vec<NodeId> = self.config.peers.keys().copied().collect();
        let controller = Controller::recover(config, meta.controller_state(), &nodes, self.now_ms());
        self.reserved_partition_id = self.reserved_partition_id.max(meta.next_partition_id);
        self.controller = Some((term, controller));
        tracing::info!(node = self.config.me.0, term, "controller recovered");
        Ok(())
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

    /// Drains the controller's records and proposes each, in order. A refused record means this
    /// controller's view diverged from the log: it is dropped and recovered afresh.
    async fn propose_records(&mut self) -> Result<(), ControlError> {
        let records = self.drain_records();
        for (partition, state) in records {
            if let Err(e) = self.propose(MetaCommand::PartitionChanged { partition, state }).await? {
                self.controller = None;
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn drain_records(&mut self) -> Vec<(PartitionId, PartitionState)> {
        let Some((_, controller)) = self.controller.as_mut() else { return Vec::new() };
        std::iter::from_fn(|| controller.poll_record()).collect()
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
        let (topic, partitions) = self.plan_topic(&meta, &request)?;
        let mut entries = Vec::with_capacity(partitions.len());
        for (i, (&id, replicas)) in topic.partitions.iter().zip(partitions).enumerate() {
            let nodes = replicas.iter().map(|r| r.node).collect();
            let min = Some(usize::from(topic.min_insync_replicas));
            match self.controller_mut().create_partition_with(id, nodes, min, now) {
                Ok(state) => {
                    let (topic, index, state) = (topic.name.clone(), i as u32, state.clone());
                    entries.push(PartitionEntry { topic, index, replicas, state });
                }
                Err(e) => {
                    self.forget(&topic.partitions[..i]);
                    return Err(e.into());
                }
            }
        }
        self.drain_records();
        let ids = topic.partitions.clone();
        if let Err(e) = self.propose(MetaCommand::CreateTopic { topic, partitions: entries }).await? {
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
        if meta.topics.contains_key(&name) {
            return Err(MetaError::TopicExists { name }.into());
        }
        let rf = request.replication_factor;
        if name.is_empty() || request.partitions == 0 || rf == 0 {
            return Err(invalid("a topic has a name, partitions and a replication factor").into());
        }
        if usize::from(rf) > meta.nodes.len() {
            return Err(ControlError::ReplicationFactor { requested: rf, nodes: meta.nodes.len() });
        }
        let min_insync_replicas = request.min_insync_replicas.unwrap_or(rf.min(2));
        if min_insync_replicas == 0 || min_insync_replicas > rf {
            return Err(invalid("min_insync_replicas must be between 1 and the replication factor").into());
        }
        let first = self.reserved_partition_id.max(meta.next_partition_id);
        let last = first.checked_add(request.partitions).ok_or_else(|| invalid("partition ids exhausted"))?;
        self.reserved_partition_id = last;
        let nodes: Vec<(NodeId, u16)> =
            meta.nodes.values().map(|n| (n.id, n.shard_ports.len().max(1) as u16)).collect();
        let placement = place(&nodes, request.partitions, rf, first as usize);
        let topic = TopicEntry {
            name,
            partitions: (first..last).map(PartitionId).collect(),
            replication_factor: rf,
            min_insync_replicas,
            retention_ms: request.retention_ms,
            retention_bytes: request.retention_bytes,
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
        for (id, addr) in missing {
            let node = openraft::BasicNode::new(addr);
            if let Err(e) = self.raft.add_learner(u64::from(id.0), node, false).await {
                tracing::warn!("adding learner {id:?}: {e}");
            }
        }
    }
}

//! The cluster metadata: what the Raft log of the control plane replicates, as a deterministic
//! state machine. Every node applies the same commands in the same order and so holds the same
//! [`ClusterMeta`]; a command that does not apply is refused the same way everywhere.
//!
//! Partitions have cluster-wide ids ([`PartitionId`]), allocated when their topic is created and
//! never reused, so a topic deleted and created again under the same name never meets the old
//! one's replicas, epochs or files.
//!
//! No I/O, no clock: a snapshot is this value serialised (serde), the log is the commands.

use crate::acl::{AclBinding, AclFilter};
use crate::error::MetaError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_replication::{ControllerState, NodeId, PartitionId, PartitionState, ReplicaAddr};

/// A node as it registered: where the other nodes and clients reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// The control plane's address (`host:port`, UDP), as the node's entry in `peers` names it.
    pub cluster_addr: String,
    /// Host clients and peers' shards connect to.
    pub host: String,
    /// The port shared by the node's shards (QUIC and TCP).
    pub port: u16,
    /// Each shard's own port, by shard index; followers fetch from a leader's shard there.
    pub shard_ports: Vec<u16>,
    /// Where Kafka clients reach the node (`host`, `port`); `None` when its Kafka listener is
    /// off (and for nodes registered before it existed).
    #[serde(default)]
    pub kafka: Option<(String, u16)>,
}

/// A topic and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicEntry {
    pub name: String,
    /// The topic's partitions by index: partition `i` is `partitions[i]`.
    pub partitions: Vec<PartitionId>,
    pub replication_factor: u16,
    /// The high watermark moves, and acks=all produces are taken, only while a partition's ISR
    /// has at least this many members.
    pub min_insync_replicas: u16,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    /// Entries written before topics had a policy are `delete`.
    #[serde(default)]
    pub cleanup_policy: weir_log::CleanupPolicy,
    /// `None`: each node's `delete_retention_ms`.
    #[serde(default)]
    pub delete_retention_ms: Option<u64>,
}

/// One partition: where its replicas live and the controller's state of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    pub topic: String,
    pub index: u32,
    /// In preference order; the nodes are `state.replicas`, in the same order.
    pub replicas: Vec<ReplicaAddr>,
    pub state: PartitionState,
}

impl PartitionEntry {
    /// The replica (node and shard) that leads the partition now, if any.
    pub fn leader(&self) -> Option<ReplicaAddr> {
        let leader = self.state.leader?;
        self.replicas.iter().copied().find(|r| r.node == leader)
    }
}

/// A change to the metadata: an entry of the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Adds a node or replaces its addresses (they may change across restarts).
    RegisterNode(NodeInfo),
    /// Creates a topic with its partitions, placed and given their first state by the
    /// controller that proposes it. The ids are unused and at or above the next free id.
    CreateTopic {
        topic: TopicEntry,
        partitions: Vec<PartitionEntry>,
    },
    DeleteTopic {
        name: String,
    },
    /// The controller changed a partition's state (leader, ISR, epochs).
    PartitionChanged {
        partition: PartitionId,
        state: PartitionState,
    },
    /// The controller has heard `node` run as `incarnation` and committed what that start
    /// changed (a restarted leader re-elected with a new epoch) before this. A node acts on the
    /// metadata only from here on: an older state may name it leader of an epoch its previous
    /// life led.
    NodeStarted {
        node: NodeId,
        incarnation: u64,
    },
    /// Every change one controller call (or tick) made, in the order it made them: one
    /// proposal, one commit, however many partitions a fence moves. All or nothing: if any
    /// change is refused, none applies (the proposing controller diverged from the log and is
    /// recovered afresh). A partition may appear more than once; each change is checked
    /// against the one before it.
    PartitionsChanged(Vec<(PartitionId, PartitionState)>),
    /// Hands out producer ids `[first, first + count)` to a node, which gives them to idempotent
    /// producers. `first` is the next id never handed out when proposed; a command proposed
    /// against an older state (a deposed controller's) is refused, so no id is handed out
    /// twice.
    AllocateProducerIds {
        first: i64,
        count: u32,
    },
    /// Adds access control bindings (those already there are skipped); refused, all of them,
    /// past [`ACLS_MAX`](crate::acl::ACLS_MAX).
    CreateAcls(Vec<AclBinding>),
    /// Removes every access control binding one of these filters selects.
    DeleteAcls(Vec<AclFilter>),
}

/// See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub topics: BTreeMap<String, TopicEntry>,
    pub partitions: BTreeMap<PartitionId, PartitionEntry>,
    /// The lowest id never allocated.
    pub next_partition_id: u32,
    /// Each node's latest incarnation the controller has acted on ([`MetaCommand::NodeStarted`]).
    #[serde(default)]
    pub incarnations: BTreeMap<NodeId, u64>,
    /// The lowest idempotent-producer id never handed out ([`MetaCommand::AllocateProducerIds`]).
    #[serde(default)]
    pub next_producer_id: i64,
    /// The access control bindings, in the order they were added ([`crate::acl`]); shared, so
    /// that publishing the metadata after each change does not copy them.
    #[serde(default)]
    pub acls: std::sync::Arc<Vec<AclBinding>>,
}

impl ClusterMeta {
    /// Applies `command`, or refuses it and changes nothing. Checks the invariants after.
    pub fn apply(&mut self, command: &MetaCommand) -> Result<(), MetaError> {
        self.apply_unchecked(command)?;
        self.check();
        Ok(())
    }

    /// [`apply`](Self::apply) without the invariant check, for a caller that applies a batch
    /// and checks once after it (the check walks the whole metadata).
    pub fn apply_unchecked(&mut self, command: &MetaCommand) -> Result<(), MetaError> {
        match command {
            MetaCommand::RegisterNode(info) => {
                self.nodes.insert(info.id, info.clone());
            }
            MetaCommand::CreateTopic { topic, partitions } => self.create_topic(topic, partitions)?,
            MetaCommand::DeleteTopic { name } => {
                let topic = self.topics.remove(name).ok_or(MetaError::UnknownTopic { name: name.clone() })?;
                for id in &topic.partitions {
                    self.partitions.remove(id);
                }
            }
            MetaCommand::PartitionChanged { partition, state } => {
                let state = self.checked_change(*partition, state, None)?;
                self.partitions.get_mut(partition).expect("checked").state = state;
            }
            MetaCommand::PartitionsChanged(changes) => self.change_partitions(changes)?,
            MetaCommand::NodeStarted { node, incarnation } => {
                let known = self.incarnations.entry(*node).or_insert(0);
                if *incarnation < *known {
                    return Err(MetaError::StaleIncarnation {
                        node: *node,
                        current: *known,
                        requested: *incarnation,
                    });
                }
                *known = *incarnation;
            }
            MetaCommand::AllocateProducerIds { first, count } => {
                if *first != self.next_producer_id {
                    return Err(MetaError::StaleProducerIds {
                        next: self.next_producer_id,
                        requested: *first,
                    });
                }
                self.next_producer_id = first.checked_add(i64::from(*count)).expect("producer ids fit i64");
            }
            MetaCommand::CreateAcls(bindings) => {
                let mut acls = self.acls.as_ref().clone();
                crate::acl::add(&mut acls, bindings).map_err(|_| MetaError::TooManyAcls {
                    requested: self.acls.len() + bindings.len(),
                    max: crate::acl::ACLS_MAX,
                })?;
                self.acls = std::sync::Arc::new(acls);
            }
            MetaCommand::DeleteAcls(filters) => {
                crate::acl::remove_matching(std::sync::Arc::make_mut(&mut self.acls), filters)
            }
        }
        Ok(())
    }

    fn create_topic(&mut self, topic: &TopicEntry, partitions: &[PartitionEntry]) -> Result<(), MetaError> {
        let name = &topic.name;
        let invalid = |reason: &str| MetaError::InvalidTopic { name: name.clone(), reason: reason.into() };
        if self.topics.contains_key(name) {
            return Err(MetaError::TopicExists { name: name.clone() });
        }
        if topic.partitions.is_empty() || topic.partitions.len() != partitions.len() {
            return Err(invalid("its partitions do not match its entries"));
        }
        if topic.min_insync_replicas == 0 || topic.replication_factor == 0 {
            return Err(invalid("replication factor and min_insync_replicas must be at least 1"));
        }
        for (i, (id, p)) in topic.partitions.iter().zip(partitions).enumerate() {
            let fresh = id.0 >= self.next_partition_id && !topic.partitions[..i].contains(id);
            if !fresh || p.topic != *name || p.index != i as u32 {
                return Err(invalid("partition ids must be fresh and entries in index order"));
            }
            let nodes: Vec<NodeId> = p.replicas.iter().map(|r| r.node).collect();
            if nodes != p.state.replicas || nodes.len() != usize::from(topic.replication_factor) {
                return Err(invalid("replicas do not match the replication factor or the state"));
            }
            if let Some(r) = p.replicas.iter().find(|r| !self.nodes.contains_key(&r.node)) {
                return Err(MetaError::UnknownNode { node: r.node });
            }
            valid_state(*id, &p.state)?;
        }
        let next = topic.partitions.iter().map(|id| id.0).max().expect("not empty") + 1;
        self.next_partition_id = next;
        for (id, p) in topic.partitions.iter().zip(partitions) {
            self.partitions.insert(*id, p.clone());
        }
        self.topics.insert(name.clone(), topic.clone());
        Ok(())
    }

    /// Checks every change against the state before it (the applied one, or an earlier change
    /// of the same batch), then applies them all; refuses the batch on the first bad one.
    fn change_partitions(&mut self, changes: &[(PartitionId, PartitionState)]) -> Result<(), MetaError> {
        let mut next: BTreeMap<PartitionId, PartitionState> = BTreeMap::new();
        for (partition, state) in changes {
            let checked = self.checked_change(*partition, state, next.get(partition))?;
            next.insert(*partition, checked);
        }
        for (partition, state) in next {
            self.partitions.get_mut(&partition).expect("checked").state = state;
        }
        Ok(())
    }

    /// `state` as the next state of `partition` after `before` (the applied state if `None`),
    /// or why it is refused.
    fn checked_change(
        &self,
        partition: PartitionId,
        state: &PartitionState,
        before: Option<&PartitionState>,
    ) -> Result<PartitionState, MetaError> {
        let entry = self.partitions.get(&partition).ok_or(MetaError::UnknownPartition { partition })?;
        let old = before.unwrap_or(&entry.state);
        let current = old.partition_epoch;
        let stale = state.partition_epoch <= current
            || state.leader_epoch < old.leader_epoch
            || state.replicas != old.replicas;
        if stale {
            return Err(MetaError::StalePartitionEpoch {
                partition,
                current,
                requested: state.partition_epoch,
            });
        }
        valid_state(partition, state)?;
        Ok(state.clone())
    }

    /// Partition `index` of `topic`.
    pub fn partition(&self, topic: &str, index: u32) -> Option<(PartitionId, &PartitionEntry)> {
        let id = *self.topics.get(topic)?.partitions.get(index as usize)?;
        Some((id, &self.partitions[&id]))
    }

    /// What a controller recovers from when it takes over (see `Controller::recover`).
    pub fn controller_state(&self) -> ControllerState {
        let partitions = self.partitions.iter().map(|(&id, p)| (id, p.state.clone())).collect();
        let min_insync_replicas = (self.partitions.iter())
            .map(|(&id, p)| (id, usize::from(self.topics[&p.topic].min_insync_replicas)))
            .collect();
        ControllerState { partitions, min_insync_replicas }
    }

    /// Asserts the metadata's invariants (in release builds too): topics and partitions name
    /// each other, every partition's replicas are registered nodes, and ids are below the next.
    pub fn check(&self) {
        for (name, topic) in &self.topics {
            assert_eq!(*name, topic.name, "topic listed under another name");
            for (i, id) in topic.partitions.iter().enumerate() {
                let p = self.partitions.get(id).expect("a topic's partition exists");
                assert!(p.topic == *name && p.index == i as u32, "partition {id:?} names another topic");
            }
        }
        for (id, p) in &self.partitions {
            assert!(id.0 < self.next_partition_id, "partition id {id:?} not below the next id");
            let topic = self.topics.get(&p.topic).expect("a partition's topic exists");
            assert_eq!(topic.partitions.get(p.index as usize), Some(id), "topic does not list {id:?}");
            assert!(p.replicas.iter().all(|r| self.nodes.contains_key(&r.node)), "unknown node in {id:?}");
        }
        assert!(self.acls.len() <= crate::acl::ACLS_MAX, "{} access control bindings", self.acls.len());
    }
}

/// Refuses a partition state that breaks the controller's invariants (see
/// `weir_replication::controller::check`) rather than asserting: a bad command in the log must
/// be refused by every node alike, not crash them all on every restart.
fn valid_state(partition: PartitionId, p: &PartitionState) -> Result<(), MetaError> {
    let invalid = |reason: &'static str| Err(MetaError::InvalidState { partition, reason: reason.into() });
    let distinct = p.replicas.iter().enumerate().all(|(i, r)| !p.replicas[..i].contains(r));
    if p.replicas.is_empty() || !distinct {
        return invalid("replicas empty or duplicated");
    }
    // A subset of the replicas, in the replicas' order, without duplicates.
    let in_order = |set: &[NodeId]| {
        let mut at = 0;
        set.iter().all(|n| match p.replicas[at..].iter().position(|r| r == n) {
            Some(i) => {
                at += i + 1;
                true
            }
            None => false,
        })
    };
    if !in_order(&p.isr) || !in_order(&p.elr) {
        return invalid("ISR or ELR not an ordered subset of the replicas");
    }
    if p.isr.iter().any(|n| p.elr.contains(n)) {
        return invalid("ISR and ELR overlap");
    }
    if p.leader.is_some_and(|l| !p.isr.contains(&l)) {
        return invalid("leader outside the ISR");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_replication::ShardId;

    fn node(id: u32) -> NodeInfo {
        NodeInfo {
            id: NodeId(id),
            cluster_addr: format!("127.0.0.{id}:9100"),
            host: format!("127.0.0.{id}"),
            port: 9000,
            shard_ports: vec![9001],
            kafka: None,
        }
    }

    fn registered(ids: &[u32]) -> ClusterMeta {
        let mut meta = ClusterMeta::default();
        for &id in ids {
            meta.apply(&MetaCommand::RegisterNode(node(id))).unwrap();
        }
        meta
    }

    fn create(name: &str, first_id: u32, partitions: u32, nodes: &[u32]) -> MetaCommand {
        let ids: Vec<PartitionId> = (first_id..first_id + partitions).map(PartitionId).collect();
        let replicas: Vec<ReplicaAddr> =
            nodes.iter().map(|&n| ReplicaAddr { node: NodeId(n), shard: ShardId(0) }).collect();
        let state = PartitionState {
            replicas: replicas.iter().map(|r| r.node).collect(),
            leader: Some(replicas[0].node),
            leader_epoch: 1,
            partition_epoch: 1,
            isr: replicas.iter().map(|r| r.node).collect(),
            elr: vec![],
        };
        let entries = (0..partitions)
            .map(|i| PartitionEntry {
                topic: name.into(),
                index: i,
                replicas: replicas.clone(),
                state: state.clone(),
            })
            .collect();
        let topic = TopicEntry {
            name: name.into(),
            partitions: ids,
            replication_factor: nodes.len() as u16,
            min_insync_replicas: 2,
            retention_ms: None,
            retention_bytes: None,
            cleanup_policy: weir_log::CleanupPolicy::Delete,
            delete_retention_ms: None,
        };
        MetaCommand::CreateTopic { topic, partitions: entries }
    }

    #[test]
    fn a_topic_is_created_found_changed_and_deleted() {
        let mut meta = registered(&[1, 2, 3]);
        meta.apply(&create("orders", 0, 2, &[1, 2, 3])).unwrap();
        assert_eq!(meta.next_partition_id, 2);
        let (id, p) = meta.partition("orders", 1).unwrap();
        assert_eq!((id, p.leader().unwrap().node), (PartitionId(1), NodeId(1)));
        let mut state = p.state.clone();
        state.leader = Some(NodeId(2));
        state.isr = vec![NodeId(2), NodeId(3)];
        state.leader_epoch = 2;
        state.partition_epoch = 2;
        meta.apply(&MetaCommand::PartitionChanged { partition: id, state: state.clone() }).unwrap();
        assert_eq!(meta.controller_state().partitions[&id], state);
        assert_eq!(meta.controller_state().min_insync_replicas[&id], 2);
        meta.apply(&MetaCommand::DeleteTopic { name: "orders".into() }).unwrap();
        assert!(meta.partitions.is_empty() && meta.topics.is_empty());
        assert_eq!(meta.next_partition_id, 2, "ids are never reused");
    }

    #[test]
    fn refused_commands_change_nothing() {
        let mut meta = registered(&[1, 2]);
        meta.apply(&create("t", 0, 1, &[1, 2])).unwrap();
        let before = meta.clone();
        let exists = meta.apply(&create("t", 5, 1, &[1, 2]));
        assert_eq!(exists, Err(MetaError::TopicExists { name: "t".into() }));
        let reused = meta.apply(&create("u", 0, 1, &[1, 2]));
        assert!(matches!(reused, Err(MetaError::InvalidTopic { .. })), "{reused:?}");
        let unknown = meta.apply(&create("u", 1, 1, &[1, 9]));
        assert_eq!(unknown, Err(MetaError::UnknownNode { node: NodeId(9) }));
        let (id, p) = meta.partition("t", 0).unwrap();
        let stale = MetaCommand::PartitionChanged { partition: id, state: p.state.clone() };
        assert!(matches!(meta.apply(&stale), Err(MetaError::StalePartitionEpoch { .. })));
        let gone = meta.apply(&MetaCommand::DeleteTopic { name: "u".into() });
        assert_eq!(gone, Err(MetaError::UnknownTopic { name: "u".into() }));
        assert_eq!(meta, before);
    }

    #[test]
    fn producer_ids_are_handed_out_once_and_a_stale_allocation_is_refused() {
        let mut meta = registered(&[1]);
        let allocate = |first, count| MetaCommand::AllocateProducerIds { first, count };
        meta.apply(&allocate(0, 1000)).unwrap();
        meta.apply(&allocate(1000, 10)).unwrap();
        let stale = meta.apply(&allocate(0, 1000));
        assert_eq!(stale, Err(MetaError::StaleProducerIds { next: 1010, requested: 0 }));
        assert_eq!(meta.next_producer_id, 1010);
    }

    #[test]
    fn a_node_start_is_recorded_and_never_goes_back() {
        let mut meta = registered(&[1]);
        let started = |incarnation| MetaCommand::NodeStarted { node: NodeId(1), incarnation };
        meta.apply(&started(3)).unwrap();
        meta.apply(&started(3)).unwrap();
        assert!(matches!(meta.apply(&started(2)), Err(MetaError::StaleIncarnation { current: 3, .. })));
        assert_eq!(meta.incarnations[&NodeId(1)], 3);
    }

    #[test]
    fn the_metadata_round_trips_through_json() {
        let mut meta = registered(&[1, 2, 3]);
        meta.apply(&create("t", 0, 3, &[3, 1])).unwrap();
        let bytes = serde_json::to_vec(&meta).unwrap();
        assert_eq!(serde_json::from_slice::<ClusterMeta>(&bytes).unwrap(), meta);
    }

    fn changed(p: &PartitionEntry, epoch: u32, isr: &[u32]) -> PartitionState {
        let mut state = p.state.clone();
        state.partition_epoch = epoch;
        state.isr = isr.iter().map(|&n| NodeId(n)).collect();
        state
    }

    #[test]
    fn a_batch_of_changes_applies_all_or_nothing() {
        let mut meta = registered(&[1, 2, 3]);
        meta.apply(&create("t", 0, 2, &[1, 2, 3])).unwrap();
        let (p0, p1) = (meta.partitions[&PartitionId(0)].clone(), meta.partitions[&PartitionId(1)].clone());
        let batch = vec![
            (PartitionId(0), changed(&p0, 2, &[1, 2])),
            (PartitionId(0), changed(&p0, 3, &[1])),
            (PartitionId(1), changed(&p1, 2, &[1, 3])),
        ];
        meta.apply(&MetaCommand::PartitionsChanged(batch)).unwrap();
        assert_eq!(meta.partitions[&PartitionId(0)].state.isr, vec![NodeId(1)]);
        assert_eq!(meta.partitions[&PartitionId(1)].state.partition_epoch, 2);
        let before = meta.clone();
        let stale = vec![(PartitionId(1), changed(&p1, 3, &[1])), (PartitionId(0), changed(&p0, 3, &[1, 2]))];
        let refused = meta.apply(&MetaCommand::PartitionsChanged(stale));
        assert!(matches!(refused, Err(MetaError::StalePartitionEpoch { .. })), "{refused:?}");
        assert_eq!(meta, before, "a refused batch changes nothing, not even its first change");
    }

    /// A command with a state that breaks the controller's invariants is refused alike on every
    /// node; it once panicked every node applying the log, on every restart.
    #[test]
    fn an_invalid_state_is_refused_not_a_crash() {
        let mut meta = registered(&[1, 2, 3]);
        meta.apply(&create("t", 0, 1, &[1, 2, 3])).unwrap();
        let p = meta.partitions[&PartitionId(0)].clone();
        let mut outside = changed(&p, 2, &[2, 3]);
        outside.leader = Some(NodeId(1));
        let refused =
            meta.apply(&MetaCommand::PartitionChanged { partition: PartitionId(0), state: outside });
        assert!(matches!(refused, Err(MetaError::InvalidState { .. })), "{refused:?}");
        let mut unordered = create("u", 1, 1, &[1, 2, 3]);
        if let MetaCommand::CreateTopic { partitions, .. } = &mut unordered {
            partitions[0].state.isr = vec![NodeId(3), NodeId(1)];
        }
        assert!(matches!(meta.apply(&unordered), Err(MetaError::InvalidState { .. })));
        assert!(!meta.topics.contains_key("u"));
    }
}

//! A shard applying the cluster metadata: the replicas it hosts and their partition states.
//!
//! Only the newest metadata matters: the shard diffs it against what it serves. Partitions are
//! found by topic and index as on a node without peers (their directories are named so), but a
//! partition served under a cluster-wide id the metadata no longer gives that topic and index (the
//! topic was deleted and created again between two looks) is closed and its files removed before
//! the new one opens, so a recreated topic never reuses old files.

use crate::core::ShardCore;
use crate::disk::Disk;
use crate::metadata::{TopicMeta, TopicTable};
use crate::replica_driver::ReplicaSetup;
use crate::runtime::Runtime;
use std::sync::Arc;
use weir_cluster::ClusterMeta;
use weir_replication::{NodeId, PartitionId, ReplicaConfig};

/// What a shard of a node with a control plane knows of the cluster.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub node: NodeId,
    /// The node's incarnation the control link registered with the controller.
    pub incarnation: u64,
    pub meta: Arc<ClusterMeta>,
}

/// The topic table of `meta` as node `node` sees it: every topic, each partition's replicas.
pub fn table_from_meta(meta: &ClusterMeta, node: NodeId) -> TopicTable {
    let topics = meta
        .topics
        .values()
        .map(|t| {
            let replicas = t.partitions.iter().map(|id| meta.partitions[id].replicas.clone()).collect();
            let topic = TopicMeta {
                name: t.name.clone(),
                partitions: t.partitions.len() as u32,
                retention_ms: t.retention_ms,
                retention_bytes: t.retention_bytes,
                cleanup_policy: t.cleanup_policy,
                delete_retention_ms: t.delete_retention_ms,
                replicas,
            };
            (t.name.clone(), topic)
        })
        .collect();
    TopicTable { topics, node: Some(node) }
}

impl<D: Disk, R: Runtime> ShardCore<D, R> {
    /// Whether this shard runs under a control plane.
    pub fn clustered(&self) -> bool {
        self.cluster.borrow().is_some()
    }

    /// Starts following a control plane, before any partition is opened.
    pub fn join_cluster(&self, node: NodeId, incarnation: u64) {
        let meta = Arc::new(ClusterMeta::default());
        *self.cluster.borrow_mut() = Some(ClusterView { node, incarnation, meta });
        self.topics.borrow_mut().node = Some(node);
    }

    /// The replica setup of `partition` of `topic` under the cluster's metadata.
    pub fn cluster_setup(&self, view: &ClusterView, topic: &str, partition: u32) -> ReplicaSetup {
        let meta = &view.meta;
        let id = meta.partition(topic, partition).map_or(PartitionId(u32::MAX), |(id, _)| id);
        let min = meta.topics.get(topic).map_or(1, |t| usize::from(t.min_insync_replicas).max(1));
        let config = ReplicaConfig { min_insync_replicas: min, ..ReplicaConfig::default() };
        ReplicaSetup {
            node: view.node,
            partition: id,
            config,
            incarnation: view.incarnation,
            standalone: false,
            fsync: self.config.fsync,
        }
    }

    /// Applies the newest metadata: opens the replicas this shard hosts, closes those it no
    /// longer does, and gives every replica its partition's state. Returns the partitions that
    /// could not be opened (upkeep retries them).
    pub async fn apply_meta(&self, meta: Arc<ClusterMeta>) -> Vec<String> {
        let Some(mut view) = self.cluster.borrow().clone() else { return Vec::new() };
        view.meta = meta.clone();
        *self.cluster.borrow_mut() = Some(view.clone());
        let table = table_from_meta(&meta, view.node);
        // Served under another id than the metadata now gives: a topic deleted and created
        // again. Its old partitions go (files included) before the new ones open.
        let recreated: Vec<String> = (self.all_partitions().iter())
            .filter(|p| {
                let (topic, index) = p.key();
                meta.partition(&topic, index).is_some_and(|(id, _)| id != p.rep.setup().partition)
            })
            .map(|p| p.key().0)
            .collect();
        if !recreated.is_empty() {
            let mut without = table.clone();
            for t in &recreated {
                without.topics.remove(t);
            }
            self.apply_topics(without).await;
        }
        let failures = self.apply_topics(table).await;
        self.apply_states(&meta);
        failures
    }

    /// Gives every replica of this shard its partition's state in `meta`.
    pub fn apply_states(&self, meta: &ClusterMeta) {
        let now = self.rt.monotonic_ms();
        let incarnation = self.cluster.borrow().as_ref().map_or(0, |v| v.incarnation);
        for p in self.all_partitions() {
            let Some(entry) = meta.partitions.get(&p.rep.setup().partition) else { continue };
            // The link publishes metadata only once the controller answered this incarnation
            // (see `ControlLink`): every state seen here may be adopted. A replica renewed after
            // a log failure (retired) stays offline until the node restarts.
            if p.rep.is_retired() {
                continue;
            }
            p.rep.replica.borrow_mut().handle_registration(now, incarnation, &entry.state);
            p.settle();
            p.rep.wake();
        }
    }

    /// Partition `id` if this shard serves it.
    pub fn partition_by_id(
        &self,
        id: PartitionId,
    ) -> Option<std::rc::Rc<crate::partition::Partition<D::Storage>>> {
        let view = self.cluster.borrow();
        let entry = view.as_ref()?.meta.partitions.get(&id)?;
        let p = self.partition(&entry.topic, entry.index)?;
        (p.rep.setup().partition == id).then_some(p)
    }
}

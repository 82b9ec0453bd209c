//! The native protocol's answers that differ on a node of a cluster: topic changes go to the
//! controller through the node's [`ControlLink`], and Metadata, DescribeTopic and ClusterStatus
//! describe the cluster (every node, each partition's leader, replicas and ISR) from the
//! metadata this node has applied.
//!
//! High watermarks and log ends come from this node's own replicas: the leader's are exact, a
//! follower's lag behind, and a partition with no replica here shows 0 for both.

use crate::control_link::ControlLink;
use crate::metadata::{PARTITIONS_MAX, check_topic_name};
use crate::service::topics::TopicDescription;
use crate::service::types::{Failure, PartitionStatus};
use crate::shard::Shard;
use std::sync::Arc;
use std::time::Duration;
use weir_cluster::{ClusterMeta, ControlError, CreateTopic, MetaError};
use weir_net::api::{PartitionInfo, ShardAddr, TopicInfo};
use weir_net::cluster::{NodeInfo, NodeRole, NodeStatus, PartitionReplication, UnderReplicated};
use weir_net::health::{PartitionHealth, PartitionState as HealthState};
use weir_net::{ErrorCode, Response, TopicConfig};
use weir_replication::NodeId;

/// How long a topic change answered by the controller may take to reach this node's metadata
/// before the answer goes out anyway.
const APPLIED_WAIT_MS: u64 = 5000;

/// This node's link and the metadata it applied, if it is in a cluster.
pub fn cluster_of(shard: &Shard) -> Option<(Arc<dyn ControlLink>, Arc<ClusterMeta>)> {
    let link = shard.core().link.borrow().clone()?;
    let meta = shard.core().cluster.borrow().as_ref()?.meta.clone();
    Some((link, meta))
}

/// Why this node cannot yet answer for the cluster, if so: in a cluster, until the metadata it
/// applied records its current start (`NodeStarted`), it knows no topic it can vouch for, and
/// an answer of "unknown topic" would be a lie a client acts on.
pub fn not_ready(shard: &Shard) -> Option<Failure> {
    let core = shard.core();
    let view = core.cluster.borrow();
    let view = view.as_ref()?;
    if view.meta.incarnations.get(&view.node) == Some(&view.incarnation) {
        return None;
    }
    let m = format!("node {} is joining the cluster; retry, or ask another node", view.node.0);
    Some(Failure::new(ErrorCode::Unavailable, m))
}

/// The wire code of a control-plane error.
pub fn control_failure(e: ControlError) -> Failure {
    let code = match &e {
        ControlError::Meta(MetaError::TopicExists { .. }) => ErrorCode::TopicAlreadyExists,
        ControlError::Meta(MetaError::UnknownTopic { .. }) => ErrorCode::UnknownTopic,
        ControlError::Meta(
            MetaError::InvalidTopic { .. }
            | MetaError::TooManyPartitions { .. }
            | MetaError::TopicNameTooLong { .. }
            | MetaError::CommandTooLarge { .. }
            | MetaError::TooManyAcls { .. },
        )
        | ControlError::ReplicationFactor { .. } => ErrorCode::InvalidArgument,
        _ => ErrorCode::Unavailable,
    };
    Failure::new(code, e.to_string())
}

/// Creates a topic through the controller, then waits (a while) until this node has applied
/// it, so that a client asking this node next finds it.
pub async fn create_topic(
    link: &Arc<dyn ControlLink>,
    name: String,
    partitions: u32,
    config: TopicConfig,
    replication_factor: u16,
    min_insync_replicas: Option<u16>,
) -> Result<(), Failure> {
    check_topic_name(&name).map_err(|m| Failure::new(ErrorCode::InvalidArgument, m))?;
    if partitions == 0 || partitions > PARTITIONS_MAX {
        let m = format!("partitions must be within 1..={PARTITIONS_MAX}");
        return Err(Failure::new(ErrorCode::InvalidArgument, m));
    }
    if replication_factor == 0 || min_insync_replicas.is_some_and(|m| m == 0 || m > replication_factor) {
        let m = format!(
            "replication factor {replication_factor} with min_insync_replicas {min_insync_replicas:?}"
        );
        return Err(Failure::new(ErrorCode::InvalidArgument, format!("invalid {m}")));
    }
    let topic = CreateTopic {
        name: name.clone(),
        partitions,
        replication_factor,
        min_insync_replicas,
        retention_ms: config.retention_ms,
        retention_bytes: config.retention_bytes,
        cleanup_policy: config.cleanup_policy,
        delete_retention_ms: config.delete_retention_ms,
    };
    link.create_topic(topic).await.map_err(control_failure)?;
    applied(link, |m| m.topics.contains_key(&name)).await;
    Ok(())
}

/// Deletes a topic through the controller, then waits (a while) until this node applied it.
pub async fn delete_topic(link: &Arc<dyn ControlLink>, name: String) -> Result<(), Failure> {
    link.delete_topic(name.clone()).await.map_err(control_failure)?;
    applied(link, |m| !m.topics.contains_key(&name)).await;
    Ok(())
}

/// Waits until this node's metadata satisfies `done`, or [`APPLIED_WAIT_MS`] passed.
pub(crate) async fn applied(link: &Arc<dyn ControlLink>, done: impl Fn(&ClusterMeta) -> bool) {
    let mut meta = link.meta();
    let wait = async {
        while !done(&meta.borrow_and_update()) {
            if meta.changed().await.is_err() {
                return;
            }
        }
    };
    let timeout = glommio::timer::sleep(Duration::from_millis(APPLIED_WAIT_MS));
    futures::future::select(Box::pin(wait), Box::pin(timeout)).await;
}

/// Every node of the metadata, as clients reach it.
fn nodes(meta: &ClusterMeta) -> Vec<NodeInfo> {
    (meta.nodes.values())
        .map(|n| NodeInfo {
            node_id: n.id.0,
            host: n.host.clone(),
            port: n.port,
            shards: (n.shard_ports.iter().enumerate())
                .map(|(s, &port)| ShardAddr { shard: s as u16, host: n.host.clone(), port })
                .collect(),
        })
        .collect()
}

/// Partition `index` of `topic` as the metadata has it, with `status` (this node's replica's)
/// for its bounds.
fn replication(
    meta: &ClusterMeta,
    topic: &str,
    index: u32,
    status: Option<&PartitionStatus>,
) -> PartitionReplication {
    let Some((_, p)) = meta.partition(topic, index) else {
        return PartitionReplication::single_node(0, 0, 0, 0);
    };
    let bounds = status.and_then(|s| s.bounds);
    PartitionReplication {
        leader: p.state.leader.map(|n| n.0),
        leader_shard: p.leader().map_or(0, |r| r.shard.0),
        leader_epoch: p.state.leader_epoch,
        replicas: p.state.replicas.iter().map(|n| n.0).collect(),
        isr: p.state.isr.iter().map(|n| n.0).collect(),
        high_watermark: bounds.map_or(0, |b| b.high_watermark),
        log_end: bounds.map_or(0, |b| b.log_end),
    }
}

/// A topic of the metadata, with this node's partition statuses where it has them.
/// `statuses` are this node's (`me`'s) replicas'; a partition with no replica on `me` takes
/// none of them (its status there would only say that this node does not serve it).
fn topic_info(
    meta: &ClusterMeta,
    name: &str,
    statuses: Option<&[PartitionStatus]>,
    me: Option<NodeId>,
) -> TopicInfo {
    let Some(topic) = meta.topics.get(name) else {
        return TopicInfo {
            name: name.into(),
            error: ErrorCode::UnknownTopic,
            config: TopicConfig::default(),
            partitions: vec![],
        };
    };
    let partitions = (0..topic.partitions.len() as u32)
        .map(|i| {
            let held = meta
                .partition(name, i)
                .is_some_and(|(_, p)| me.is_some_and(|me| p.state.replicas.contains(&me)));
            let status = statuses.and_then(|s| s.get(i as usize)).filter(|_| held);
            let replication = replication(meta, name, i, status);
            // A DescribeTopic answers every partition's health: one with no replica here has
            // the metadata's word for it (online while it has a leader).
            let health = match (status, me) {
                (Some(s), _) => Some(s.health.clone()),
                (None, Some(_)) => Some(match replication.leader {
                    Some(_) => PartitionHealth::online(),
                    None => PartitionHealth {
                        state: HealthState::Offline { cause: "no leader".into(), retry_in_ms: None },
                        damaged: Vec::new(),
                    },
                }),
                (None, None) => None,
            };
            PartitionInfo {
                partition: i,
                shard: replication.leader_shard,
                log_start: status.and_then(|s| s.bounds).map_or(0, |b| b.log_start),
                log_end: replication.high_watermark,
                replication: Some(replication),
                health,
            }
        })
        .collect();
    let config = TopicConfig {
        retention_ms: topic.retention_ms,
        retention_bytes: topic.retention_bytes,
        cleanup_policy: topic.cleanup_policy,
        delete_retention_ms: topic.delete_retention_ms,
    };
    TopicInfo { name: name.into(), error: ErrorCode::None, config, partitions }
}

/// The metadata's view of `names` (every topic when empty), without bounds or health.
pub fn topic_infos(meta: &ClusterMeta, names: Vec<String>) -> Vec<TopicInfo> {
    let names = if names.is_empty() { meta.topics.keys().cloned().collect() } else { names };
    names.iter().map(|n| topic_info(meta, n, None, None)).collect()
}

/// Metadata of `topics` (all when empty) in the cluster.
pub fn metadata(shards: Vec<ShardAddr>, meta: &ClusterMeta, topics: Vec<String>) -> Response<'static> {
    let names = if topics.is_empty() { meta.topics.keys().cloned().collect() } else { topics };
    let mut infos: Vec<TopicInfo> = names.iter().map(|n| topic_info(meta, n, None, None)).collect();
    for p in infos.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        p.health = None;
    }
    Response::Metadata { shards, nodes: nodes(meta), topics: infos }
}

/// DescribeTopic in the cluster: the metadata's view, with this node's replicas' bounds.
pub fn describe(meta: &ClusterMeta, me: NodeId, name: &str, local: Option<TopicDescription>) -> TopicInfo {
    topic_info(meta, name, local.as_ref().map(|d| d.partitions.as_slice()), Some(me))
}

/// ClusterStatus: the controller's view of the nodes, and the partitions whose ISR is short.
pub async fn cluster_status(
    link: &Arc<dyn ControlLink>,
    meta: &ClusterMeta,
) -> Result<Response<'static>, Failure> {
    let status = link.status().await.map_err(control_failure)?;
    let nodes = (status.nodes.iter())
        .map(|n| {
            let registered = meta.nodes.get(&n.id);
            NodeStatus {
                node_id: n.id.0,
                host: registered.map_or_else(|| n.cluster_addr.clone(), |r| r.host.clone()),
                port: registered.map_or(0, |r| r.port),
                up: n.up,
                controller: n.is_controller,
                role: if n.voter { NodeRole::Voter } else { NodeRole::Learner },
            }
        })
        .collect();
    let under_replicated = (meta.partitions.values())
        .filter(|p| p.state.isr.len() < p.state.replicas.len())
        .map(|p| UnderReplicated {
            topic: p.topic.clone(),
            partition: p.index,
            replicas: p.state.replicas.iter().map(|n| n.0).collect(),
            isr: p.state.isr.iter().map(|n| n.0).collect(),
        })
        .collect();
    Ok(Response::ClusterStatus { nodes, under_replicated })
}

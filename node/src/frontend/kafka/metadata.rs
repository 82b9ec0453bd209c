//! Metadata: every node clients can reach on its Kafka port, and each partition's leader,
//! replicas and in-sync replicas, so that clients route produces and fetches straight to
//! leaders. A single node is node 0 and leads everything. Topics named but unknown are created
//! when `kafka_auto_create_topics` is on and the client allows it.

use crate::frontend::{cluster, native};
use crate::groups::offsets_topic::OFFSETS_TOPIC;
use crate::shard::Shard;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use weir_kafka::codes::kafka_code;
use weir_net::ErrorCode;
use weir_net::api::TopicInfo;

/// The cluster id Kafka clients are told (one node or many: the same id).
pub const CLUSTER_ID: &str = "weir";

/// The brokers clients may connect to: `(node id, host, port)`. This node is always among
/// them, even before its registration reached the metadata it applied: a client told of no
/// broker (or of a controller it cannot reach) waits for its next metadata refresh, minutes
/// away.
pub fn brokers(shard: &Shard) -> Vec<(i32, String, u16)> {
    let me = node_id(shard);
    // This node as its own configuration has it (its registration may lag a restart).
    let mut brokers: Vec<(i32, String, u16)> =
        shard.config.kafka_advertised().map(|(host, port)| (me, host, port)).into_iter().collect();
    if let Some((_, meta)) = cluster::cluster_of(shard) {
        let others = (meta.nodes.values()).filter(|n| n.id.0 as i32 != me);
        brokers.extend(others.filter_map(|n| n.kafka.as_ref().map(|(h, p)| (n.id.0 as i32, h.clone(), *p))));
    }
    brokers.sort_by_key(|b| b.0);
    brokers
}

/// This node's id as Kafka clients know it.
pub fn node_id(shard: &Shard) -> i32 {
    cluster::cluster_of(shard).map_or(0, |(link, _)| link.node_id().0 as i32)
}

/// The topics named (every topic for `None`), as this node knows them.
pub async fn topic_infos(shard: &Shard, names: Vec<String>) -> Vec<TopicInfo> {
    match cluster::cluster_of(shard) {
        Some((_, meta)) => cluster::topic_infos(&meta, names),
        None => native::local_topic_infos(shard, names).await,
    }
}

/// Whether a Metadata request asks for every topic: a null list, or in version 0 an empty one.
pub fn asks_all(req: &MetadataRequest, version: i16) -> bool {
    match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    }
}

pub async fn metadata(shard: &Rc<Shard>, req: MetadataRequest, version: i16) -> MetadataResponse {
    // Version 0 has no null: an empty list asks for every topic there.
    let names: Option<Vec<String>> = match req.topics {
        Some(t) if !t.is_empty() || version > 0 => {
            Some(t.into_iter().filter_map(|t| t.name.map(|n| n.0.to_string())).collect())
        }
        _ => None,
    };
    if cluster::not_ready(shard).is_some() {
        // Rejoining its cluster, this node knows no topic it can vouch for: each one named is
        // answered LEADER_NOT_AVAILABLE (retriable); an ask for all was closed before this.
        return not_ready(shard, names.unwrap_or_default());
    }
    let all = names.is_none();
    // An empty list asks for the brokers alone (version 1 on); `topic_infos` reads it as all.
    let mut infos = match &names {
        Some(n) if n.is_empty() => Vec::new(),
        _ => topic_infos(shard, names.clone().unwrap_or_default()).await,
    };
    let auto = shard.config.kafka_auto_create_topics && (req.allow_auto_topic_creation || version < 4);
    if auto && !all && infos.iter().any(|t| t.error == ErrorCode::UnknownTopic) {
        for t in infos.iter().filter(|t| t.error == ErrorCode::UnknownTopic) {
            let _ = super::admin::auto_create(shard, &t.name).await;
        }
        infos = topic_infos(shard, names.unwrap_or_default()).await;
    }
    let brokers = broker_list(shard);
    let controller = node_id(shard);
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(controller))
        .with_topics(infos.into_iter().map(topic).collect())
}

/// Metadata while this node rejoins its cluster: itself as the broker, and `names` without a
/// leader.
fn not_ready(shard: &Shard, names: Vec<String>) -> MetadataResponse {
    let code = kafka_code(ErrorCode::LeaderNotAvailable);
    let topics = names
        .into_iter()
        .map(|n| {
            MetadataResponseTopic::default()
                .with_error_code(code)
                .with_name(Some(TopicName(StrBytes::from_string(n))))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(broker_list(shard))
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(node_id(shard)))
        .with_topics(topics)
}

fn broker_list(shard: &Shard) -> Vec<MetadataResponseBroker> {
    brokers(shard)
        .into_iter()
        .map(|(id, host, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port as i32)
        })
        .collect()
}

fn topic(t: TopicInfo) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let r = p.replication.as_ref();
            let leader = r.map_or(Some(0), |r| r.leader).map_or(-1, |n| n as i32);
            let ids = |v: Option<&Vec<u32>>| {
                v.map_or(vec![BrokerId(0)], |v| v.iter().map(|&n| BrokerId(n as i32)).collect())
            };
            let error = if leader < 0 { kafka_code(ErrorCode::LeaderNotAvailable) } else { 0 };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p.partition as i32)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(r.map_or(-1, |r| r.leader_epoch as i32))
                .with_replica_nodes(ids(r.map(|r| &r.replicas)))
                .with_isr_nodes(ids(r.map(|r| &r.isr)))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(kafka_code(t.error))
        .with_is_internal(t.name == OFFSETS_TOPIC)
        .with_name(Some(TopicName(StrBytes::from_string(t.name))))
        .with_partitions(partitions)
}

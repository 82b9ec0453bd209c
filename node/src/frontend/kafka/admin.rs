//! Topic administration, producer ids and the cluster's description: CreateTopics,
//! DeleteTopics, DescribeConfigs, DescribeCluster, InitProducerId.

use super::metadata::{CLUSTER_ID, brokers, node_id};
use crate::frontend::{cluster, native};
use crate::groups::offsets_topic::OFFSETS_TOPIC;
use crate::service::types::Failure;
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::create_topics_response::{CreatableTopicResult, CreateTopicsResponse};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{DeletableTopicResult, DeleteTopicsResponse};
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{DescribeClusterBroker, DescribeClusterResponse};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use weir_kafka::codes::kafka_code;
use weir_log::CleanupPolicy;
use weir_net::{ErrorCode, TopicConfig};

/// Kafka's resource types in DescribeConfigs: a topic, a broker.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's config sources: a topic's own setting, the node's file, a default.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's config types.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

pub async fn init_producer_id(shard: &Rc<Shard>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let r = InitProducerIdResponse::default();
    if req.transactional_id.as_ref().is_some_and(|id| id.0.is_empty()) {
        // As Kafka: an empty transactional id is no id at all, and a malformed request.
        let code = ResponseError::InvalidRequest.code();
        return r.with_error_code(code).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    }
    if let Some(id) = &req.transactional_id {
        return super::transactions::init_producer_id(shard, id.0.as_str(), req.transaction_timeout_ms).await;
    }
    match shard.producer_ids.next().await {
        Ok(id) => r.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(f) => {
            r.with_error_code(kafka_code(f.code)).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
        }
    }
}

/// A topic named by a Metadata or Produce of a client, created with the node's defaults.
pub async fn auto_create(shard: &Shard, name: &str) -> Result<(), Failure> {
    let partitions = shard.config.kafka_auto_create_partitions;
    let rf = default_replication(shard);
    native::create_topic(shard, name.to_owned(), partitions, TopicConfig::default(), rf, None).await
}

/// Three copies in a cluster of three or more nodes, else one per node.
fn default_replication(shard: &Shard) -> u16 {
    cluster::cluster_of(shard).map_or(1, |(_, meta)| meta.nodes.len().clamp(1, 3) as u16)
}

pub async fn create_topics(shard: &Rc<Shard>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.clone();
        let mut r = CreatableTopicResult::default()
            .with_name(name)
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let outcome = match topic_settings(shard, &t) {
            Ok(_) if req.validate_only => Ok(()),
            Ok((partitions, rf, config, min_isr)) => {
                native::create_topic(shard, t.name.0.to_string(), partitions, config, rf, min_isr).await
            }
            Err(f) => Err(f),
        };
        if let Err(f) = outcome {
            let code = match f.code {
                ErrorCode::InvalidArgument => invalid_topic_code(&f.message),
                c => kafka_code(c),
            };
            r = r.with_error_code(code).with_error_message(Some(StrBytes::from_string(f.message)));
        } else if let Ok((p, rf, ..)) = topic_settings(shard, &t) {
            r = r.with_num_partitions(p as i32).with_replication_factor(rf as i16);
        }
        topics.push(r);
    }
    CreateTopicsResponse::default().with_topics(topics)
}

/// Kafka's code for a topic refused as invalid: which of its settings is wrong, as the message
/// (Weir's own, in `topic_settings`, `metadata` and the controller) names it.
fn invalid_topic_code(message: &str) -> i16 {
    let k = if message.contains("topic config") || message.contains("min_insync") {
        ResponseError::InvalidConfig
    } else if message.contains("assignment") {
        ResponseError::InvalidReplicaAssignment
    } else if message.contains("partitions") {
        ResponseError::InvalidPartitions
    } else if message.contains("replication factor") {
        ResponseError::InvalidReplicationFactor
    } else if message.contains("topic name") || message.contains("internal") {
        ResponseError::InvalidTopicException
    } else {
        ResponseError::InvalidConfig
    };
    k.code()
}

/// Partitions, replication factor, settings and min ISR of a topic to create.
fn topic_settings(
    shard: &Shard,
    t: &CreatableTopic,
) -> Result<(u32, u16, TopicConfig, Option<u16>), Failure> {
    let bad = |m: String| Failure::new(ErrorCode::InvalidArgument, m);
    if t.name.0.as_str() == OFFSETS_TOPIC {
        return Err(bad(format!("{OFFSETS_TOPIC} is internal")));
    }
    if !t.assignments.is_empty() {
        return Err(bad("manual replica assignment is not supported".into()));
    }
    let partitions = match t.num_partitions {
        -1 => shard.config.kafka_auto_create_partitions,
        n if n > 0 => n as u32,
        n => return Err(bad(format!("{n} partitions"))),
    };
    let rf = match t.replication_factor {
        -1 => default_replication(shard),
        n if n > 0 => n as u16,
        n => return Err(bad(format!("replication factor {n}"))),
    };
    let mut config = TopicConfig::default();
    let mut min_isr = None;
    for c in &t.configs {
        let value = c.value.as_ref().map(|v| v.as_str()).unwrap_or("");
        let number = || {
            value.parse::<i64>().map_err(|_| bad(format!("{}={value:?} is not a number", c.name.as_str())))
        };
        // -1 is Kafka's "unbounded".
        let bound = |n: i64| if n < 0 { Some(u64::MAX) } else { Some(n as u64) };
        match c.name.as_str() {
            "retention.ms" => config.retention_ms = bound(number()?),
            "retention.bytes" => config.retention_bytes = bound(number()?),
            "delete.retention.ms" => config.delete_retention_ms = Some(number()?.max(0) as u64),
            "min.insync.replicas" => min_isr = Some(number()?.clamp(1, u16::MAX as i64) as u16),
            "cleanup.policy" => {
                config.cleanup_policy = match value.replace(' ', "").as_str() {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    "compact,delete" | "delete,compact" => CleanupPolicy::CompactDelete,
                    other => return Err(bad(format!("cleanup.policy {other:?}"))),
                }
            }
            other => return Err(bad(format!("topic config {other:?} is not supported"))),
        }
    }
    Ok((partitions, rf, config, min_isr))
}

pub async fn delete_topics(shard: &Rc<Shard>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // Versions up to 5 name topics in `topic_names`, version 6 in `topics`.
    let names: Vec<TopicName> = if req.topics.is_empty() {
        req.topic_names
    } else {
        req.topics.into_iter().filter_map(|t| t.name).collect()
    };
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        let mut r = DeletableTopicResult::default().with_name(Some(name.clone()));
        let outcome = if name.0.as_str() == OFFSETS_TOPIC {
            Err(Failure::new(ErrorCode::InvalidArgument, format!("{OFFSETS_TOPIC} is internal")))
        } else {
            native::delete_topic(shard, name.0.to_string()).await
        };
        if let Err(f) = outcome {
            r = r
                .with_error_code(kafka_code(f.code))
                .with_error_message(Some(StrBytes::from_string(f.message)));
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn describe_configs(shard: &Rc<Shard>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let r = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let configs = match res.resource_type {
            RESOURCE_TOPIC => topic_configs(shard, res.resource_name.as_str()).await,
            RESOURCE_BROKER => broker_configs(shard, res.resource_name.as_str()),
            _ => Err(ResponseError::InvalidRequest.code()),
        };
        let r = match configs {
            Ok(mut configs) => {
                // Kafka's brokers describe every setting for a null list and for an empty one
                // alike (kafka-protocol's default is an empty list, so its clients send that).
                if let Some(keys) = res.configuration_keys.filter(|k| !k.is_empty()) {
                    configs.retain(|c| keys.iter().any(|k| k.as_str() == c.name.as_str()));
                }
                r.with_configs(configs)
            }
            Err(code) => r.with_error_code(code),
        };
        results.push(r);
    }
    DescribeConfigsResponse::default().with_results(results)
}

/// A config entry: its name, value, source and type; never sensitive, read-only for the
/// node's own settings.
fn config(name: &'static str, value: String, source: i8, kind: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(Some(StrBytes::from_string(value)))
        .with_config_source(source)
        .with_config_type(kind)
        .with_read_only(source == SOURCE_STATIC)
}

/// Kafka's "unbounded" is -1.
fn bound(v: Option<u64>) -> String {
    match v {
        Some(u64::MAX) | None => "-1".to_owned(),
        Some(v) => v.to_string(),
    }
}

async fn topic_configs(shard: &Shard, name: &str) -> Result<Vec<DescribeConfigsResourceResult>, i16> {
    let infos = super::metadata::topic_infos(shard, vec![name.to_owned()]).await;
    let info = infos.into_iter().next().filter(|t| t.error == ErrorCode::None);
    let c = info.ok_or(ResponseError::UnknownTopicOrPartition.code())?.config;
    let d = &shard.config;
    let source = |own: bool| if own { SOURCE_TOPIC } else { SOURCE_DEFAULT };
    let policy = match c.cleanup_policy {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
        CleanupPolicy::CompactDelete => "compact,delete",
    };
    Ok(vec![
        config(
            "retention.ms",
            bound(c.retention_ms.or(d.retention_ms)),
            source(c.retention_ms.is_some()),
            TYPE_LONG,
        ),
        config(
            "retention.bytes",
            bound(c.retention_bytes.or(d.retention_bytes)),
            source(c.retention_bytes.is_some()),
            TYPE_LONG,
        ),
        config(
            "delete.retention.ms",
            c.delete_retention_ms.unwrap_or(d.delete_retention_ms).to_string(),
            source(c.delete_retention_ms.is_some()),
            TYPE_LONG,
        ),
        config("cleanup.policy", policy.to_owned(), SOURCE_TOPIC, TYPE_LIST),
        config("segment.bytes", d.segment_bytes.to_string(), SOURCE_DEFAULT, TYPE_INT),
        config("segment.ms", d.segment_ms.to_string(), SOURCE_DEFAULT, TYPE_LONG),
        config("max.message.bytes", d.batch_bytes_max.to_string(), SOURCE_DEFAULT, TYPE_INT),
    ])
}

/// This node's settings, as Kafka names the ones it has; another broker's are its own to tell.
/// A setting is `STATIC_BROKER_CONFIG` (and read-only) when the node's configuration sets it,
/// `DEFAULT_CONFIG` when it is the default.
fn broker_configs(shard: &Shard, name: &str) -> Result<Vec<DescribeConfigsResourceResult>, i16> {
    if name.parse::<i32>().ok() != Some(node_id(shard)) {
        return Err(ResponseError::InvalidRequest.code());
    }
    let (d, default) = (&shard.config, crate::config::NodeConfig::default());
    let src = |set: bool| if set { SOURCE_STATIC } else { SOURCE_DEFAULT };
    let advertised = d.kafka_advertised().map_or_else(String::new, |(h, p)| format!("PLAINTEXT://{h}:{p}"));
    Ok(vec![
        config("advertised.listeners", advertised, src(d.kafka_advertised_address.is_some()), TYPE_STRING),
        config(
            "listeners",
            format!("PLAINTEXT://{}", d.kafka_listen),
            src(d.kafka_listen != default.kafka_listen),
            TYPE_STRING,
        ),
        config(
            "log.dirs",
            d.data_dir.display().to_string(),
            src(d.data_dir != default.data_dir),
            TYPE_STRING,
        ),
        config(
            "log.retention.ms",
            bound(d.retention_ms),
            src(d.retention_ms != default.retention_ms),
            TYPE_LONG,
        ),
        config(
            "log.retention.bytes",
            bound(d.retention_bytes),
            src(d.retention_bytes != default.retention_bytes),
            TYPE_LONG,
        ),
        config(
            "log.segment.bytes",
            d.segment_bytes.to_string(),
            src(d.segment_bytes != default.segment_bytes),
            TYPE_INT,
        ),
        config(
            "message.max.bytes",
            d.batch_bytes_max.to_string(),
            src(d.batch_bytes_max != default.batch_bytes_max),
            TYPE_INT,
        ),
        config(
            "socket.request.max.bytes",
            d.request_bytes_max.to_string(),
            src(d.request_bytes_max != default.request_bytes_max),
            TYPE_INT,
        ),
        config(
            "num.partitions",
            d.kafka_auto_create_partitions.to_string(),
            src(d.kafka_auto_create_partitions != default.kafka_auto_create_partitions),
            TYPE_INT,
        ),
        config(
            "auto.create.topics.enable",
            d.kafka_auto_create_topics.to_string(),
            src(d.kafka_auto_create_topics != default.kafka_auto_create_topics),
            TYPE_BOOLEAN,
        ),
    ])
}

pub fn describe_cluster(shard: &Rc<Shard>, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let brokers = brokers(shard)
        .into_iter()
        .map(|(id, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port as i32)
        })
        .collect();
    let controller = node_id(shard);
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_static_str(CLUSTER_ID))
        .with_controller_id(BrokerId(controller))
        .with_brokers(brokers)
}

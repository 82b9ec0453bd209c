//! The native protocol's front end: decodes a request frame once, calls the service, encodes the
//! answer. Produced batches go on as a slice of the frame's own buffer, not a copy.

use super::cluster;
use crate::connection::Outgoing;
use crate::service::topics::{TopicDescription, check_replication};
use crate::service::types::{Failure, FetchPartition, FetchedPartition, PartitionStatus, ProducePartition};
use crate::shard::{NodeService, Shard};
use bytes::Bytes;
use std::rc::Rc;
use weir_net::api::{API_VERSION, METADATA_CLUSTER_VERSION, PartitionInfo, ShardAddr, TopicInfo};
use weir_net::cluster::{NodeInfo, NodeRole, NodeStatus, PartitionReplication};
use weir_net::frame::{FLAG_ERROR, FRAME_HEADER_BYTES, FrameHeader, encode_frame, encode_frame_head};
use weir_net::wire::Writer;
use weir_net::{Acks, ApiKey, DecodeError, ErrorBody, ErrorCode, Request, Response, TopicConfig};
use weir_replication::PartitionId;

/// The answer frame of `resp`, in the first version of its API (for APIs with one version, and
/// answers that read the same in every version); see [`response_frame_version`].
pub fn response_frame(correlation_id: u32, resp: &Response<'_>) -> Vec<u8> {
    response_frame_version(correlation_id, API_VERSION, resp)
}

/// The answer frame of `resp` in `version` of its API, the request's; one the protocol cannot
/// carry (a name too long) becomes an error answer rather than a panic.
pub fn response_frame_version(correlation_id: u32, version: u16, resp: &Response<'_>) -> Vec<u8> {
    let mut w = Writer::default();
    match resp.encode_version(version, &mut w) {
        Ok(()) => encode_frame(resp.api_key() as u16, version, correlation_id, 0, &w.buf),
        Err(e) => {
            let mut w = Writer::default();
            ErrorBody { error: ErrorCode::Unknown, message: e.to_string() }.encode(&mut w);
            encode_frame(resp.api_key() as u16, version, correlation_id, FLAG_ERROR, &w.buf)
        }
    }
}

pub fn error_frame(header: &FrameHeader, error: ErrorCode, message: String) -> Vec<u8> {
    let mut w = Writer::default();
    ErrorBody { error, message }.encode(&mut w);
    encode_frame(header.api_key, header.api_version, header.correlation_id, FLAG_ERROR, &w.buf)
}

/// The code a decoding failure is answered with.
pub fn decode_error_code(e: &DecodeError) -> ErrorCode {
    match e {
        DecodeError::UnsupportedVersion { .. } | DecodeError::UnknownApi { .. } => {
            ErrorCode::UnsupportedVersion
        }
        DecodeError::FrameTooLarge { .. } => ErrorCode::RequestTooLarge,
        _ => ErrorCode::MalformedRequest,
    }
}

/// Answers one request frame (`frame` is header and body). Every problem becomes an error
/// answer; `Err` only for a body that does not decode, which closes the connection.
/// `peer` is who the connection's transport says is on the other end.
pub async fn handle(
    shard: &Rc<Shard>,
    header: FrameHeader,
    frame: Bytes,
    peer: &crate::peer::Peer,
) -> Result<Outgoing, Outgoing> {
    // A fetch's batches go out as they were read, after its encoded head: not copied.
    if header.api_key == ApiKey::Fetch as u16 && cluster::not_ready(shard).is_none() {
        let body = &frame[FRAME_HEADER_BYTES..];
        if let Ok(Request::Fetch { topic, partition, offset, max_bytes, max_wait_ms }) =
            Request::decode(header.api_key, header.api_version, body)
        {
            let part = FetchPartition {
                topic: topic.into(),
                partition: PartitionId(partition),
                offset,
                max_bytes: max_bytes as usize,
                read_committed: false,
            };
            return Ok(fetch(shard, &header, part, max_wait_ms).await);
        }
    }
    answer(shard, header, frame, peer).await.map(Outgoing::from).map_err(Outgoing::from)
}

/// Answers every request but a fetch that can be served: see [`handle`].
async fn answer(
    shard: &Rc<Shard>,
    header: FrameHeader,
    frame: Bytes,
    peer: &crate::peer::Peer,
) -> Result<Vec<u8>, Vec<u8>> {
    if header.api_key == crate::replication::wire::REPLICA_FETCH_API {
        return crate::replication::serve::replica_fetch(shard, header, frame, peer).await;
    }
    let req = match Request::decode(header.api_key, header.api_version, &frame[FRAME_HEADER_BYTES..]) {
        Ok(r) => r,
        Err(e) => return Err(error_frame(&header, decode_error_code(&e), e.to_string())),
    };
    let cid = header.correlation_id;
    let svc = &shard.service;
    let data = matches!(
        req,
        Request::Metadata { .. }
            | Request::DescribeTopic { .. }
            | Request::Produce { .. }
            | Request::Fetch { .. }
            | Request::ListOffsets { .. }
    );
    if let Request::Produce { topic: name, .. }
    | Request::CreateTopic { name, .. }
    | Request::DeleteTopic { name } = &req
        && name == crate::groups::offsets_topic::OFFSETS_TOPIC
    {
        // The groups' own log: a record a coordinator cannot read would take its groups down.
        let m = format!("{name} is internal: the group coordinators write it");
        return Ok(error_frame(&header, ErrorCode::InvalidArgument, m));
    }
    if let Some(f) = data.then(|| cluster::not_ready(shard)).flatten() {
        // A produce or fetch here went by metadata naming this node leader: its client should
        // learn the leader again (this node's leaderships moved when it restarted).
        let code = match req {
            Request::Produce { .. } | Request::Fetch { .. } | Request::ListOffsets { .. } => {
                ErrorCode::LeaderNotAvailable
            }
            _ => f.code,
        };
        return Ok(error_frame(&header, code, f.message));
    }
    Ok(match req {
        Request::InitProducerId => {
            let (error, message, producer_id) = match shard.producer_ids.next().await {
                Ok(id) => (ErrorCode::None, String::new(), id),
                Err(f) => (f.code, f.message, -1),
            };
            response_frame(cid, &Response::InitProducerId { error, message, producer_id, producer_epoch: 0 })
        }
        Request::ApiVersions => {
            let apis = ApiKey::ALL
                .iter()
                .map(|k| {
                    let (lowest, highest) = k.versions();
                    (*k as u16, lowest, highest)
                })
                .collect();
            response_frame(cid, &Response::ApiVersions { apis })
        }
        Request::Metadata { topics } => match cluster::cluster_of(shard) {
            Some((_, meta)) => {
                let resp = cluster::metadata(shard_addrs(shard), &meta, topics);
                response_frame_version(cid, header.api_version, &resp)
            }
            None => metadata(shard, cid, header.api_version, topics).await,
        },
        Request::CreateTopic { name, partitions, config, replication_factor, min_insync_replicas } => {
            let created =
                create_topic(shard, name, partitions, config, replication_factor, min_insync_replicas).await;
            let (error, message) = split(created);
            response_frame(cid, &Response::CreateTopic { error, message })
        }
        Request::DeleteTopic { name } => {
            let (error, message) = split(delete_topic(shard, name).await);
            response_frame(cid, &Response::DeleteTopic { error, message })
        }
        Request::DescribeTopic { name } => {
            let topic = match (cluster::cluster_of(shard), svc.describe_topic(&name).await) {
                (Some((link, meta)), local) => cluster::describe(&meta, link.node_id(), &name, local.ok()),
                (None, Ok(d)) => topic_info(d),
                (None, Err(f)) => unknown_topic(name, f.code),
            };
            response_frame_version(cid, header.api_version, &Response::DescribeTopic { topic })
        }
        Request::Produce { topic, partition, acks, batches, timeout_ms } => {
            let part = ProducePartition {
                topic: topic.into(),
                partition: PartitionId(partition),
                batches: frame.slice_ref(batches),
                kafka_payloads: false,
                txn: Default::default(),
            };
            produce(svc, cid, acks, part, timeout_ms.into()).await
        }
        Request::Fetch { topic, partition, offset, max_bytes, max_wait_ms } => {
            // Reached when the node is not ready (answered above) or the fast path declined.
            let part = FetchPartition {
                topic: topic.into(),
                partition: PartitionId(partition),
                offset,
                max_bytes: max_bytes as usize,
                read_committed: false,
            };
            let out = fetch(shard, &header, part, max_wait_ms).await;
            [out.head, out.tail.to_vec()].concat()
        }
        Request::ListOffsets { topic, partition, spec } => {
            let (error, message, offset) = match svc.list_offsets(&topic, partition, spec).await {
                Ok(o) => (ErrorCode::None, String::new(), o),
                Err(f) => (f.code, f.message, 0),
            };
            response_frame(cid, &Response::ListOffsets { error, message, offset })
        }
        Request::Group(g) => response_frame(cid, &Response::Group(crate::groups::handle(shard, g).await)),
        Request::NodeStats => {
            let resp = Response::NodeStats { shards: shard.counters.snapshot() };
            response_frame_version(cid, header.api_version, &resp)
        }
        Request::ClusterStatus => match cluster::cluster_of(shard) {
            Some((link, meta)) => match cluster::cluster_status(&link, &meta).await {
                Ok(resp) => response_frame(cid, &resp),
                Err(f) => error_frame(&header, f.code, f.message),
            },
            None => response_frame(cid, &cluster_status(shard)),
        },
    })
}

/// Creates a topic: through the controller in a cluster, on this node alone otherwise.
pub async fn create_topic(
    shard: &Shard,
    name: String,
    partitions: u32,
    config: TopicConfig,
    replication_factor: u16,
    min_insync_replicas: Option<u16>,
) -> Result<(), Failure> {
    match cluster::cluster_of(shard) {
        Some((link, _)) => {
            cluster::create_topic(&link, name, partitions, config, replication_factor, min_insync_replicas)
                .await
        }
        None => {
            check_replication(replication_factor, min_insync_replicas)?;
            shard.service.create_topic(name, partitions, config).await
        }
    }
}

/// Deletes a topic: through the controller in a cluster, on this node alone otherwise.
pub async fn delete_topic(shard: &Shard, name: String) -> Result<(), Failure> {
    match cluster::cluster_of(shard) {
        Some((link, _)) => cluster::delete_topic(&link, name).await,
        None => shard.service.delete_topic(name).await,
    }
}

async fn produce(
    svc: &NodeService,
    cid: u32,
    acks: Acks,
    part: ProducePartition,
    timeout_ms: u64,
) -> Vec<u8> {
    let answer =
        svc.produce_within(acks, vec![part], Some(timeout_ms)).await.pop().expect("one answer per partition");
    let (error, message, base_offset, log_start) = match answer {
        Ok(p) => (ErrorCode::None, String::new(), p.base_offset, p.log_start),
        Err(f) => (f.code, f.message, 0, 0),
    };
    response_frame(cid, &Response::Produce { error, message, base_offset, log_start })
}

/// A fetch's answer: its frame head, and its batches as the read gave them (not copied), but
/// for Kafka batches kept as sent, which a native consumer gets as Weir's columns.
async fn fetch(shard: &Shard, header: &FrameHeader, part: FetchPartition, max_wait_ms: u32) -> Outgoing {
    let max_bytes = part.max_bytes;
    let answer = shard.service.fetch(vec![part], max_wait_ms).await.pop().expect("one answer per partition");
    // The conversion is bounded as the read was: a decompressed batch may be much larger.
    let max_bytes = max_bytes.clamp(1, shard.config.request_bytes_max);
    let answer = answer.and_then(|f| as_columns(f, max_bytes));
    let (resp, tail) = match &answer {
        Ok(f) => {
            let (high_watermark, log_start) = (f.high_watermark, f.log_start);
            let resp = Response::Fetch {
                error: ErrorCode::None,
                message: String::new(),
                high_watermark,
                log_start,
                batches: &f.batches,
            };
            (resp, f.batches.clone())
        }
        Err(f) => {
            let resp = Response::Fetch {
                error: f.code,
                message: f.message.clone(),
                high_watermark: 0,
                log_start: 0,
                batches: &[],
            };
            (resp, Bytes::new())
        }
    };
    let mut w = Writer::default();
    match resp.encode_head_version(header.api_version, &mut w) {
        Ok(batches) => {
            let (key, version, cid) = (resp.api_key() as u16, header.api_version, header.correlation_id);
            let head = encode_frame_head(key, version, cid, 0, &w.buf, batches.len());
            Outgoing { head, tail }
        }
        Err(e) => error_frame(header, ErrorCode::Unknown, e.to_string()).into(),
    }
}

/// The read's batches with Weir's columns: Kafka batches kept as sent are converted, as many
/// as fit `max_bytes` (the others, and a read without Kafka batches, are not copied).
fn as_columns(mut f: FetchedPartition, max_bytes: usize) -> Result<FetchedPartition, Failure> {
    let limits = weir_kafka::batch::ConvertLimits::STORED;
    match weir_kafka::batch::native_section(&f.batches, &limits, max_bytes) {
        Ok(None) => Ok(f),
        Ok(Some(columns)) => {
            f.batches = Bytes::from_owner(columns);
            Ok(f)
        }
        Err(e) => {
            // The batch's CRC held when it was read and its records were walked when it was
            // written: this is a broken invariant, reported as the damage it is.
            tracing::error!(error = %e, "a stored Kafka batch does not convert to Weir's columns");
            Err(Failure::new(ErrorCode::CorruptBatch, e.to_string()))
        }
    }
}

fn split(r: Result<(), Failure>) -> (ErrorCode, String) {
    match r {
        Ok(()) => (ErrorCode::None, String::new()),
        Err(f) => (f.code, f.message),
    }
}

fn unknown_topic(name: String, error: ErrorCode) -> TopicInfo {
    TopicInfo { name, error, config: TopicConfig::default(), partitions: vec![] }
}

/// A single node's answer for one partition: node 0 leads it and is its only replica, at the
/// leader epoch and high watermark its owner reports (0 for one it does not serve).
fn single_replica(shard: u16, status: &PartitionStatus) -> PartitionReplication {
    let (epoch, hwm, end) =
        status.bounds.map_or((0, 0, 0), |b| (b.leader_epoch, b.high_watermark, b.log_end));
    PartitionReplication::single_node(shard, epoch, hwm, end)
}

fn topic_info(d: TopicDescription) -> TopicInfo {
    let partitions = (0..d.meta.partitions)
        .zip(d.partitions)
        .map(|(p, status)| {
            let shard = d.meta.local_shard(p).map_or(0, |s| s.0);
            PartitionInfo {
                partition: p,
                shard,
                log_start: status.bounds.map_or(0, |b| b.log_start),
                log_end: status.bounds.map_or(0, |b| b.high_watermark),
                replication: Some(single_replica(shard, &status)),
                health: Some(status.health),
            }
        })
        .collect();
    TopicInfo { config: d.meta.config(), error: ErrorCode::None, name: d.meta.name, partitions }
}

/// This node's shards, at its advertised host.
fn shard_addrs(shard: &Shard) -> Vec<ShardAddr> {
    let host = shard.config.advertised_host();
    (0..shard.config.shards)
        .map(|s| ShardAddr { shard: s as u16, host: host.clone(), port: shard.config.shard_port(s) })
        .collect()
}

/// Metadata. Version 1 reads only the topic table (no bounds); version 2 also asks each
/// partition's owner for its leader epoch and high watermark, as DescribeTopic does, and names
/// this node as node 0, the cluster's only one.
async fn metadata(shard: &Shard, cid: u32, version: u16, topics: Vec<String>) -> Vec<u8> {
    let names: Vec<String> = if topics.is_empty() {
        shard.service.core.topics.borrow().topics.keys().cloned().collect()
    } else {
        topics
    };
    let shards = shard_addrs(shard);
    let mut infos = Vec::with_capacity(names.len());
    for name in names {
        let meta = shard.service.core.topics.borrow().topics.get(&name).cloned();
        let info = match meta {
            None => unknown_topic(name, ErrorCode::UnknownTopic),
            Some(_) if version >= METADATA_CLUSTER_VERSION => match shard.service.describe_topic(&name).await
            {
                Ok(d) => {
                    // Metadata's partitions carry no bounds or health, in any version.
                    let mut t = topic_info(d);
                    for p in &mut t.partitions {
                        (p.log_start, p.log_end, p.health) = (0, 0, None);
                    }
                    t
                }
                // Deleted meanwhile.
                Err(f) => unknown_topic(name, f.code),
            },
            Some(meta) => TopicInfo {
                partitions: (0..meta.partitions)
                    .map(|p| PartitionInfo {
                        partition: p,
                        shard: meta.local_shard(p).map_or(0, |s| s.0),
                        log_start: 0,
                        log_end: 0,
                        health: None,
                        replication: None,
                    })
                    .collect(),
                config: meta.config(),
                error: ErrorCode::None,
                name,
            },
        };
        infos.push(info);
    }
    let node = NodeInfo {
        node_id: 0,
        host: shard.config.advertised_host(),
        port: shard.config.listen.port(),
        shards: shards.clone(),
    };
    let resp = Response::Metadata { shards, nodes: vec![node], topics: infos };
    response_frame_version(cid, version, &resp)
}

/// A single node's view of `names` (every topic when empty), each partition with its leader
/// epoch as its owner reports it; no bounds or health.
pub async fn local_topic_infos(shard: &Shard, names: Vec<String>) -> Vec<TopicInfo> {
    let names: Vec<String> = if names.is_empty() {
        shard.service.core.topics.borrow().topics.keys().cloned().collect()
    } else {
        names
    };
    let mut infos = Vec::with_capacity(names.len());
    for name in names {
        let info = match shard.service.describe_topic(&name).await {
            Ok(d) => topic_info(d),
            Err(f) => unknown_topic(name, f.code),
        };
        infos.push(info);
    }
    infos
}

/// A single node's ClusterStatus: itself, node 0, up, the controller and a voter; nothing is
/// under-replicated with one replica per partition.
fn cluster_status(shard: &Shard) -> Response<'static> {
    let me = NodeStatus {
        node_id: 0,
        host: shard.config.advertised_host(),
        port: shard.config.listen.port(),
        up: true,
        controller: true,
        role: NodeRole::Voter,
    };
    Response::ClusterStatus { nodes: vec![me], under_replicated: vec![] }
}

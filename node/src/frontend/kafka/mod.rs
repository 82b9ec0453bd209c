//! The Kafka wire protocol's front end: a second thin layer over the
//! [`PartitionService`](crate::service::PartitionService) and the group coordinators, so that
//! unmodified Kafka clients produce, consume and use groups.
//!
//! Every shard accepts on the Kafka port (SO_REUSEPORT). A connection is served like a native
//! one (`connection.rs`: the same request memory, budgets, timeouts and in-order answers); only
//! the framing (a 4-byte big-endian length) and the handling differ. Each request is checked
//! against Weir's own API table (`weir_kafka::versions`), decoded with `kafka-protocol`, answered
//! by one of the modules below, and encoded in the request's version. A request that cannot be
//! decoded closes the connection, as Kafka does; an unsupported ApiVersions version gets the v0
//! answer with the full list (KIP-511).

mod acls;
mod admin;
mod admin_cluster;
mod classic;
mod delete_records;
mod fetch;
mod group_delete;
mod group_describe;
mod groups;
mod metadata;
mod offsets;
mod partitions;
mod produce;
mod reassignments;
mod transactions;

use crate::connection::{Pending, Protocol, Reply};
use crate::frame_reader::{Frame, Framing};
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::rc::Rc;
use weir_net::DecodeError;

/// Kafka's frames: a big-endian i32 length, then the request header and body.
#[derive(Debug)]
pub struct KafkaFraming;

/// The length prefix of a Kafka frame.
#[derive(Debug, Clone, Copy)]
pub struct KafkaFrameHeader {
    /// Bytes after the length prefix.
    pub size: usize,
}

/// The smallest request: api key, api version and correlation id.
const REQUEST_HEADER_BYTES_MIN: usize = 8;

impl Framing for KafkaFraming {
    type Header = KafkaFrameHeader;
    const HEADER_BYTES: usize = 4;

    fn decode(head: &[u8], frame_bytes_max: usize) -> Result<KafkaFrameHeader, DecodeError> {
        let size = i32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
        if size < REQUEST_HEADER_BYTES_MIN as i32 {
            return Err(DecodeError::FrameTooSmall { len: size.max(0) as usize });
        }
        let size = size as usize;
        if size + 4 > frame_bytes_max {
            return Err(DecodeError::FrameTooLarge { len: size + 4, limit: frame_bytes_max });
        }
        Ok(KafkaFrameHeader { size })
    }

    fn frame_len(header: &KafkaFrameHeader) -> usize {
        4 + header.size
    }
}

/// The Kafka protocol, for `connection.rs`.
#[derive(Debug)]
pub struct KafkaProtocol;

/// The largest request other than a produce or a SyncGroup: Kafka's are small (a fetch of
/// 40,000 partitions fits), and decoding one allocates a multiple of its size.
const REQUEST_BYTES_MAX_BUT_PRODUCE: usize = 1 << 20;

/// The most bytes an answer other than a fetch is budgeted for.
const SMALL_REPLY_BYTES: usize = 64 << 10;

impl Protocol for KafkaProtocol {
    type Framing = KafkaFraming;

    fn malformed(e: &DecodeError) -> Vec<u8> {
        tracing::debug!(error = %e, "kafka frame refused; closing");
        Vec::new()
    }

    fn refusal(reason: String) -> Vec<u8> {
        tracing::debug!(reason = %reason, "kafka connection refused");
        Vec::new()
    }

    fn start(shard: &Rc<Shard>, frame: Frame<KafkaFraming>, _peer: &crate::peer::Peer) -> (usize, Pending) {
        let Frame { bytes, reservation, .. } = frame;
        let reply_max =
            fetch::reply_bytes_max(&bytes[4..], shard.config.batch_bytes_max).unwrap_or(SMALL_REPLY_BYTES);
        let cost = bytes.len() + reply_max;
        let handle = move |shard: Rc<Shard>| async move { handle(&shard, bytes.slice(4..)).await };
        crate::connection::spawn_request(shard, reservation, cost, handle, || Err(Default::default()))
    }
}

/// The partition a request names by Kafka's signed index. A negative index names no partition:
/// it maps to one beyond `PARTITIONS_MAX`, which the service answers as unknown, where clamping
/// it to 0 would answer with partition 0's records and offsets.
pub(crate) fn partition_index(index: i32) -> u32 {
    const NONE: u32 = u32::MAX;
    const { assert!(crate::metadata::PARTITIONS_MAX < NONE) };
    u32::try_from(index).unwrap_or(NONE)
}

/// What a handler answers: a response, none (acks=0), or a reason to close the connection.
pub(crate) enum Answer {
    Response(Box<ResponseKind>),
    Silent,
    Close(String),
}

/// Answers one request (`req` is the frame after its length prefix).
async fn handle(shard: &Rc<Shard>, req: Bytes) -> Reply {
    let api_key = i16::from_be_bytes([req[0], req[1]]);
    let version = i16::from_be_bytes([req[2], req[3]]);
    let Ok(key) = ApiKey::try_from(api_key) else {
        return close(format!("unknown api key {api_key}"));
    };
    if !weir_kafka::versions::is_served(api_key, version) {
        if key == ApiKey::ApiVersions {
            return unsupported_api_versions(&req);
        }
        return close(format!("{key:?} version {version} is not served"));
    }
    let bulky = matches!(key, ApiKey::Produce | ApiKey::SyncGroup);
    if !bulky && req.len() > REQUEST_BYTES_MAX_BUT_PRODUCE {
        // Decoded, a request takes up to some tens of times its wire size (the guard bounds
        // counts by the smallest wire size of an element): only a produce or a leader's
        // SyncGroup, whose bulk (records, assignments) stays slices of the frame, may be as
        // large as `request_bytes_max`.
        return close(format!("{key:?} of {} bytes is above {REQUEST_BYTES_MAX_BUT_PRODUCE}", req.len()));
    }
    let mut body = req.clone();
    let header = match RequestHeader::decode(&mut body, key.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return close(format!("request header: {e}")),
    };
    if key == ApiKey::Produce && version < weir_kafka::versions::PRODUCE_VERSION_MIN {
        return close(format!("Produce version {version} (message format 0 or 1) is not served"));
    }
    // The decoder allocates from counts read off the wire: they are checked against the bytes
    // there first.
    if let Err(e) = weir_kafka::guard::check_request(api_key, version, &body) {
        let head: Vec<u8> = req.iter().take(96).copied().collect();
        return close(format!("{key:?} v{version} refused by the guard: {e} (frame starts {head:02x?})"));
    }
    let request = match RequestKind::decode(key, &mut body, version) {
        Ok(r) => r,
        Err(e) => return close(format!("{key:?} v{version}: {e}")),
    };
    match dispatch(shard, &header, request).await {
        Answer::Response(resp) => encode(key, version, header.correlation_id, &resp),
        Answer::Silent => Ok(Default::default()),
        Answer::Close(why) => close(why),
    }
}

fn close(why: String) -> Reply {
    tracing::debug!(reason = %why, "kafka request refused; closing the connection");
    Err(Default::default())
}

async fn dispatch(shard: &Rc<Shard>, header: &RequestHeader, req: RequestKind) -> Answer {
    let v = header.request_api_version;
    let data = matches!(
        req,
        RequestKind::Produce(_)
            | RequestKind::Fetch(_)
            | RequestKind::ListOffsets(_)
            | RequestKind::OffsetForLeaderEpoch(_)
    );
    let all_topics = matches!(&req, RequestKind::Metadata(r) if metadata::asks_all(r, v));
    if (data || all_topics)
        && let Some(f) = crate::frontend::cluster::not_ready(shard)
    {
        // An ask for every topic is closed too: "no topics" would read as every topic gone.
        // A node rejoining its cluster knows no leader it can vouch for yet: its client
        // reconnects and learns the leaders again, rather than act on a stale answer. Metadata
        // says so itself (LEADER_NOT_AVAILABLE, retriable).
        return Answer::Close(f.message);
    }
    let resp = match req {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(0)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::metadata(shard, r, v).await),
        RequestKind::Produce(r) => return produce::produce(shard, r).await,
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::fetch(shard, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(offsets::list_offsets(shard, r).await),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offsets::for_leader_epoch(shard, r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(admin::init_producer_id(shard, r).await)
        }
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(admin::create_topics(shard, r).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(admin::delete_topics(shard, r).await),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(reassignments::alter(shard, r))
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(reassignments::list(r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::delete_records(shard, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(partitions::create_partitions(shard, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(admin::describe_configs(shard, r).await)
        }
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(admin::describe_cluster(shard, r)),
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create_acls(shard, r).await),
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe_acls(shard, r)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete_acls(shard, r).await),
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(transactions::add_partitions(shard, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(transactions::add_offsets(shard, r).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(transactions::end_txn(shard, r).await),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(transactions::txn_offset_commit(shard, r).await)
        }
        RequestKind::ElectLeaders(r) => ResponseKind::ElectLeaders(admin_cluster::elect_leaders(shard, r)),
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(admin_cluster::describe_log_dirs(shard, r).await)
        }
        RequestKind::AlterReplicaLogDirs(r) => {
            ResponseKind::AlterReplicaLogDirs(admin_cluster::alter_replica_log_dirs(shard, r))
        }
        other => return groups::dispatch(shard, header, other).await,
    };
    Answer::Response(Box::new(resp))
}

/// The ApiVersions answer: every served API, with `error_code`.
fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let api_keys = weir_kafka::versions::SERVED
        .iter()
        .map(|a| {
            kafka_protocol::messages::api_versions_response::ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect();
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(api_keys)
}

/// KIP-511: a client asking with an ApiVersions version this node does not know is answered in
/// version 0, with UNSUPPORTED_VERSION and the full list, so it can pick one it shares.
fn unsupported_api_versions(req: &[u8]) -> Reply {
    let correlation_id = i32::from_be_bytes([req[4], req[5], req[6], req[7]]);
    let code = kafka_protocol::ResponseError::UnsupportedVersion.code();
    encode(ApiKey::ApiVersions, 0, correlation_id, &ResponseKind::ApiVersions(api_versions(code)))
}

/// The answer frame: length, response header, body, in the request's version.
fn encode(key: ApiKey, version: i16, correlation_id: i32, resp: &ResponseKind) -> Reply {
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0; 4]);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(&mut buf, key.response_header_version(version))
        .and_then(|()| resp.encode(&mut buf, version));
    if let Err(e) = encoded {
        // A value the version cannot carry: the client asked for something it cannot be told.
        return close(format!("{key:?} v{version} answer does not encode: {e}"));
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    // The buffer becomes the answer as it is: no copy.
    Ok(Vec::from(buf).into())
}

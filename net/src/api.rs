//! Requests and responses of the native protocol. Every API has version 1; Metadata,
//! CreateTopic and DescribeTopic have later versions (see [`ApiKey::versions`]). A request is
//! encoded in the latest version of its API; a response in the version of its request.
//!
//! Produce and fetch carry record batches as opaque bytes borrowed from the frame: the node
//! validates produced batches once and writes them as received, and fetch returns stored bytes.

use crate::cluster::{
    self, NodeInfo, NodeStatus, PARTITION_REPLICATION_BYTES_MIN, PartitionReplication, UnderReplicated,
};
use crate::error::{DecodeError, EncodeError, ErrorCode};
use crate::groups::{GroupRequest, GroupResponse};
use crate::health::{self, PARTITION_HEALTH_BYTES_MIN, PartitionHealth};
use crate::wire::{Reader, Writer};
pub use weir_log::CleanupPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ApiKey {
    ApiVersions = 0,
    Metadata = 1,
    CreateTopic = 2,
    DeleteTopic = 3,
    DescribeTopic = 4,
    Produce = 5,
    Fetch = 6,
    ListOffsets = 7,
    NodeStats = 8,
    ClusterStatus = 9,
    InitProducerId = 10,
    FindCoordinator = 11,
    GroupHeartbeat = 12,
    OffsetCommit = 13,
    OffsetFetch = 14,
    ListGroups = 15,
    DescribeGroup = 16,
    DeleteGroup = 17,
}

impl ApiKey {
    pub const ALL: [ApiKey; 18] = [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::CreateTopic,
        ApiKey::DeleteTopic,
        ApiKey::DescribeTopic,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::NodeStats,
        ApiKey::ClusterStatus,
        ApiKey::InitProducerId,
        ApiKey::FindCoordinator,
        ApiKey::GroupHeartbeat,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::ListGroups,
        ApiKey::DescribeGroup,
        ApiKey::DeleteGroup,
    ];

    pub fn from_u16(v: u16) -> Result<Self, DecodeError> {
        Self::ALL.get(v as usize).copied().ok_or(DecodeError::UnknownApi { api_key: v })
    }

    /// The versions of this API this build speaks, lowest and highest. A client sends the
    /// highest; a node answers each request in the version it came in.
    pub fn versions(self) -> (u16, u16) {
        match self {
            ApiKey::Metadata => (API_VERSION, METADATA_CLEANUP_VERSION),
            ApiKey::CreateTopic => (API_VERSION, CREATE_TOPIC_CLEANUP_VERSION),
            ApiKey::DescribeTopic => (API_VERSION, DESCRIBE_TOPIC_CLEANUP_VERSION),
            ApiKey::NodeStats => (API_VERSION, NODE_STATS_CACHE_VERSION),
            _ => (API_VERSION, API_VERSION),
        }
    }

    pub fn latest_version(self) -> u16 {
        self.versions().1
    }
}

/// The first version of every API.
pub const API_VERSION: u16 = 1;
/// The version of DescribeTopic whose partitions carry their [`PartitionHealth`].
pub const DESCRIBE_TOPIC_HEALTH_VERSION: u16 = 2;
/// The version of DescribeTopic whose partitions also carry their [`PartitionReplication`].
pub const DESCRIBE_TOPIC_REPLICATION_VERSION: u16 = 3;
/// The version of Metadata that lists the cluster's nodes and each partition's
/// [`PartitionReplication`].
pub const METADATA_CLUSTER_VERSION: u16 = 2;
/// The version of CreateTopic that carries a replication factor and `min_insync_replicas`.
pub const CREATE_TOPIC_REPLICATION_VERSION: u16 = 2;
/// The versions of CreateTopic, Metadata and DescribeTopic whose topic settings also carry
/// `cleanup_policy` and `delete_retention_ms`.
pub const CREATE_TOPIC_CLEANUP_VERSION: u16 = 3;
pub const METADATA_CLEANUP_VERSION: u16 = 3;
pub const DESCRIBE_TOPIC_CLEANUP_VERSION: u16 = 4;
/// The version of NodeStats whose shards also carry their batch cache's counters.
pub const NODE_STATS_CACHE_VERSION: u16 = 2;

/// How much durability a produce waits for before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// No answer is awaited (the node still answers errors it can attribute).
    None = 0,
    /// The leader wrote the batch (and, with fsync-before-ack, synced it).
    Leader = 1,
    /// The high watermark passed the batch: it is durable on every in-sync replica. Refused
    /// with `NotEnoughReplicas` (nothing appended) while the in-sync replicas are fewer than the
    /// topic's `min_insync_replicas`. On a single node, the same as `Leader`.
    All = 2,
}

impl Acks {
    fn from_wire(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            2 => Ok(Acks::All),
            v => Err(DecodeError::BadValue { field: "acks", value: u64::from(v) }),
        }
    }
}

/// A topic's `min_insync_replicas` when CreateTopic leaves it to the cluster: 2, or the
/// replication factor when that is smaller, so that acks=all survives the loss of one replica
/// at RF 3 and a topic of RF 1 or 2 stays writable.
pub fn default_min_insync_replicas(replication_factor: u16) -> u16 {
    replication_factor.min(2)
}

/// Where ListOffsets looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first record with a timestamp at or after this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn to_wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
    fn from_wire(v: i64) -> Result<Self, DecodeError> {
        match v {
            -2 => Ok(OffsetSpec::Earliest),
            -1 => Ok(OffsetSpec::Latest),
            t if t >= 0 => Ok(OffsetSpec::Timestamp(t)),
            t => Err(DecodeError::BadValue { field: "offset spec", value: t as u64 }),
        }
    }
}

/// Per-topic settings a client may set at creation. `None` takes the node's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicConfig {
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub cleanup_policy: CleanupPolicy,
    /// How long a tombstone (a record with no value) of a compacted topic is kept after its
    /// segment's last append, so that consumers behind by less see every deletion.
    pub delete_retention_ms: Option<u64>,
}

/// A policy on the wire: `u8` 0 delete, 1 compact, 2 compact,delete.
fn cleanup_to_wire(policy: CleanupPolicy) -> u8 {
    match policy {
        CleanupPolicy::Delete => 0,
        CleanupPolicy::Compact => 1,
        CleanupPolicy::CompactDelete => 2,
    }
}

fn cleanup_from_wire(v: u8) -> Result<CleanupPolicy, DecodeError> {
    match v {
        0 => Ok(CleanupPolicy::Delete),
        1 => Ok(CleanupPolicy::Compact),
        2 => Ok(CleanupPolicy::CompactDelete),
        v => Err(DecodeError::BadValue { field: "cleanup policy", value: v.into() }),
    }
}

/// An optional number on the wire, `u64::MAX` for none.
pub(crate) fn opt_to_wire(v: Option<u64>) -> u64 {
    v.unwrap_or(u64::MAX)
}
pub(crate) fn opt_from_wire(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    ApiVersions,
    /// Metadata of these topics, or of all when empty.
    Metadata {
        topics: Vec<String>,
    },
    /// Version 1 carries neither `replication_factor` (decoded as 1) nor
    /// `min_insync_replicas` (decoded as `None`).
    CreateTopic {
        name: String,
        partitions: u32,
        config: TopicConfig,
        /// Copies of each partition, on as many nodes.
        replication_factor: u16,
        /// In-sync replicas acks=all needs; `None` takes [`default_min_insync_replicas`].
        min_insync_replicas: Option<u16>,
    },
    DeleteTopic {
        name: String,
    },
    DescribeTopic {
        name: String,
    },
    /// One or more record batches back to back, for one partition.
    Produce {
        topic: String,
        partition: u32,
        acks: Acks,
        timeout_ms: u32,
        batches: &'a [u8],
    },
    /// Whole batches from the one holding `offset`; waits up to `max_wait_ms` for data.
    Fetch {
        topic: String,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    },
    ListOffsets {
        topic: String,
        partition: u32,
        spec: OffsetSpec,
    },
    /// Counters of every shard of the node.
    NodeStats,
    /// The cluster's nodes and its under-replicated partitions.
    ClusterStatus,
    /// A producer id, unique in the cluster, for an idempotent producer.
    InitProducerId,
    /// A consumer-group request (see [`crate::groups`]).
    Group(GroupRequest),
}

/// Where a shard of the node listens for clients that talk to it directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardAddr {
    pub shard: u16,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    /// Shard that owns the partition.
    pub shard: u16,
    pub log_start: u64,
    pub log_end: u64,
    /// Online or offline, and the damaged ranges: in DescribeTopic from version 2 on, `None`
    /// elsewhere (Metadata, DescribeTopic version 1).
    pub health: Option<PartitionHealth>,
    /// Leader, replicas, in-sync replicas and high watermark: in Metadata from version 2 and
    /// DescribeTopic from version 3 on, `None` in earlier versions.
    pub replication: Option<PartitionReplication>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub error: ErrorCode,
    pub config: TopicConfig,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    ApiVersions {
        apis: Vec<(u16, u16, u16)>,
    },
    /// `shards` are the answering node's; `nodes` (version 2 on, empty before) every node of
    /// the cluster, the answering one included.
    Metadata {
        shards: Vec<ShardAddr>,
        nodes: Vec<NodeInfo>,
        topics: Vec<TopicInfo>,
    },
    CreateTopic {
        error: ErrorCode,
        message: String,
    },
    DeleteTopic {
        error: ErrorCode,
        message: String,
    },
    DescribeTopic {
        topic: TopicInfo,
    },
    Produce {
        error: ErrorCode,
        message: String,
        base_offset: u64,
        log_start: u64,
    },
    Fetch {
        error: ErrorCode,
        message: String,
        high_watermark: u64,
        log_start: u64,
        batches: &'a [u8],
    },
    ListOffsets {
        error: ErrorCode,
        message: String,
        offset: u64,
    },
    NodeStats {
        shards: Vec<ShardStats>,
    },
    ClusterStatus {
        nodes: Vec<NodeStatus>,
        under_replicated: Vec<UnderReplicated>,
    },
    /// A producer id never handed out before, and its first epoch.
    InitProducerId {
        error: ErrorCode,
        message: String,
        producer_id: i64,
        producer_epoch: i16,
    },
    Group(GroupResponse),
}

/// What one shard has done since the node started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardStats {
    pub shard: u16,
    /// TCP connections and QUIC streams accepted.
    pub connections: u64,
    /// Requests that arrived at this shard from clients.
    pub requests: u64,
    /// Of those, the ones this shard sent on to the owning shard.
    pub forwarded: u64,
    /// The shard's batch cache (zero from a node that does not tell, before
    /// [`NODE_STATS_CACHE_VERSION`]).
    pub batch_cache: BatchCacheStats,
}

pub use weir_log::BatchCacheStats;

/// A shard's batch cache counters, in their order on the wire.
fn cache_fields(c: &BatchCacheStats) -> [u64; 8] {
    [c.bytes, c.bytes_max, c.batches, c.hits, c.hit_bytes, c.misses, c.miss_bytes, c.evictions]
}

fn cache_from_fields(f: [u64; 8]) -> BatchCacheStats {
    let [bytes, bytes_max, batches, hits, hit_bytes, misses, miss_bytes, evictions] = f;
    BatchCacheStats { bytes, bytes_max, batches, hits, hit_bytes, misses, miss_bytes, evictions }
}

/// The body of a response whose frame has the error flag: the request as a whole failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

fn code(r: &mut Reader<'_>) -> Result<ErrorCode, DecodeError> {
    Ok(ErrorCode::from_u16(r.u16()?))
}

impl<'a> Request<'a> {
    pub fn api_key(&self) -> ApiKey {
        match self {
            Request::ApiVersions => ApiKey::ApiVersions,
            Request::Metadata { .. } => ApiKey::Metadata,
            Request::CreateTopic { .. } => ApiKey::CreateTopic,
            Request::DeleteTopic { .. } => ApiKey::DeleteTopic,
            Request::DescribeTopic { .. } => ApiKey::DescribeTopic,
            Request::Produce { .. } => ApiKey::Produce,
            Request::Fetch { .. } => ApiKey::Fetch,
            Request::ListOffsets { .. } => ApiKey::ListOffsets,
            Request::NodeStats => ApiKey::NodeStats,
            Request::ClusterStatus => ApiKey::ClusterStatus,
            Request::InitProducerId => ApiKey::InitProducerId,
            Request::Group(g) => ApiKey::from_u16(g.api_key()).expect("a group api key is known"),
        }
    }

    /// Encodes the request; a field too long for the protocol is refused, and `w` is then left
    /// with part of the request (the caller discards it).
    pub fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        let tail = self.encode_head(w)?;
        w.buf.extend_from_slice(tail);
        Ok(())
    }

    /// Encodes the request except its trailing record batches (produce), which it returns so
    /// that they go out after the encoded part without being copied into it; empty for the other
    /// requests.
    pub fn encode_head(&self, w: &mut Writer) -> Result<&'a [u8], EncodeError> {
        match self {
            Request::Produce { topic, partition, acks, timeout_ms, batches } => {
                w.str("topic", topic)?.u32(*partition).u8(*acks as u8).u32(*timeout_ms);
                w.batches_head(batches.len())?;
                return Ok(batches);
            }
            other => other.encode_fields(w)?,
        }
        Ok(&[])
    }

    fn encode_fields(&self, w: &mut Writer) -> Result<(), EncodeError> {
        match self {
            Request::ApiVersions | Request::NodeStats | Request::ClusterStatus | Request::InitProducerId => {}
            Request::Group(g) => g.encode(w)?,
            Request::Metadata { topics } => {
                w.u32(count("topics", topics.len())?);
                for t in topics {
                    w.str("topic", t)?;
                }
            }
            Request::CreateTopic { name, partitions, config, replication_factor, min_insync_replicas } => {
                w.str("topic", name)?.u32(*partitions).u64(opt_to_wire(config.retention_ms));
                w.u64(opt_to_wire(config.retention_bytes));
                w.u16(*replication_factor).u16(min_insync_replicas.unwrap_or(NO_MIN_INSYNC));
                encode_cleanup(w, config);
            }
            Request::DeleteTopic { name } | Request::DescribeTopic { name } => {
                w.str("topic", name)?;
            }
            Request::Produce { .. } => unreachable!("encoded by encode_head"),
            Request::Fetch { topic, partition, offset, max_bytes, max_wait_ms } => {
                w.str("topic", topic)?.u32(*partition).u64(*offset).u32(*max_bytes).u32(*max_wait_ms);
            }
            Request::ListOffsets { topic, partition, spec } => {
                w.str("topic", topic)?.u32(*partition).i64(spec.to_wire());
            }
        }
        Ok(())
    }

    /// Decodes a request body; the whole body must be used.
    pub fn decode(api_key: u16, version: u16, body: &[u8]) -> Result<Request<'_>, DecodeError> {
        let api = ApiKey::from_u16(api_key)?;
        // ApiVersions is answered whatever version it comes in (its body is ignored), so that a
        // client of any version can learn which versions this node speaks.
        if api == ApiKey::ApiVersions && version != API_VERSION {
            return Ok(Request::ApiVersions);
        }
        let (lowest, highest) = api.versions();
        if !(lowest..=highest).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key, version });
        }
        let mut r = Reader::new(body);
        let req = match api {
            ApiKey::ApiVersions => Request::ApiVersions,
            ApiKey::Metadata => {
                let n = r.count(2)?;
                Request::Metadata { topics: (0..n).map(|_| r.str()).collect::<Result<_, _>>()? }
            }
            ApiKey::CreateTopic => decode_create_topic(&mut r, version)?,
            ApiKey::DeleteTopic => Request::DeleteTopic { name: r.str()? },
            ApiKey::DescribeTopic => Request::DescribeTopic { name: r.str()? },
            ApiKey::Produce => {
                let topic = r.str()?;
                let partition = r.u32()?;
                let acks = Acks::from_wire(r.u8()?)?;
                Request::Produce { topic, partition, acks, timeout_ms: r.u32()?, batches: r.batches()? }
            }
            ApiKey::Fetch => Request::Fetch {
                topic: r.str()?,
                partition: r.u32()?,
                offset: r.u64()?,
                max_bytes: r.u32()?,
                max_wait_ms: r.u32()?,
            },
            ApiKey::ListOffsets => Request::ListOffsets {
                topic: r.str()?,
                partition: r.u32()?,
                spec: OffsetSpec::from_wire(r.i64()?)?,
            },
            ApiKey::NodeStats => Request::NodeStats,
            ApiKey::ClusterStatus => Request::ClusterStatus,
            ApiKey::InitProducerId => Request::InitProducerId,
            group => Request::Group(GroupRequest::decode(group as u16, &mut r)?),
        };
        r.finish()?;
        Ok(req)
    }
}

/// A count of items as its `u32` prefix, refused if larger.
pub(crate) fn count(field: &'static str, n: usize) -> Result<u32, EncodeError> {
    u32::try_from(n).map_err(|_| EncodeError::FieldTooLong { field, len: n, max: u32::MAX.into() })
}

/// `min_insync_replicas` none on the wire (CreateTopic version 2).
const NO_MIN_INSYNC: u16 = u16::MAX;

fn decode_create_topic<'a>(r: &mut Reader<'_>, version: u16) -> Result<Request<'a>, DecodeError> {
    let name = r.str()?;
    let partitions = r.u32()?;
    let mut config = TopicConfig {
        retention_ms: opt_from_wire(r.u64()?),
        retention_bytes: opt_from_wire(r.u64()?),
        ..TopicConfig::default()
    };
    let (replication_factor, min_insync_replicas) = if version >= CREATE_TOPIC_REPLICATION_VERSION {
        let rf = r.u16()?;
        let min = r.u16()?;
        (rf, (min != NO_MIN_INSYNC).then_some(min))
    } else {
        (1, None)
    };
    if version >= CREATE_TOPIC_CLEANUP_VERSION {
        decode_cleanup(r, &mut config)?;
    }
    Ok(Request::CreateTopic { name, partitions, config, replication_factor, min_insync_replicas })
}

/// What a version of a response carries of each partition besides its bounds.
#[derive(Debug, Clone, Copy)]
struct Layout {
    cleanup: bool,
    health: bool,
    replication: bool,
}

impl Layout {
    fn metadata(version: u16) -> Self {
        Self {
            cleanup: version >= METADATA_CLEANUP_VERSION,
            health: false,
            replication: version >= METADATA_CLUSTER_VERSION,
        }
    }

    fn describe(version: u16) -> Self {
        Self {
            cleanup: version >= DESCRIBE_TOPIC_CLEANUP_VERSION,
            health: version >= DESCRIBE_TOPIC_HEALTH_VERSION,
            replication: version >= DESCRIBE_TOPIC_REPLICATION_VERSION,
        }
    }
}

/// A topic's cleanup settings: the policy (`u8`), then `delete_retention_ms` (`u64`, none as
/// `u64::MAX`).
fn encode_cleanup(w: &mut Writer, config: &TopicConfig) {
    w.u8(cleanup_to_wire(config.cleanup_policy)).u64(opt_to_wire(config.delete_retention_ms));
}

fn decode_cleanup(r: &mut Reader<'_>, config: &mut TopicConfig) -> Result<(), DecodeError> {
    config.cleanup_policy = cleanup_from_wire(r.u8()?)?;
    config.delete_retention_ms = opt_from_wire(r.u64()?);
    Ok(())
}

/// Encodes a topic; each partition's health (`layout.health`), then its replication
/// (`layout.replication`) follow its bounds, and a partition without one its layout needs is
/// refused.
fn encode_topic(w: &mut Writer, t: &TopicInfo, layout: Layout) -> Result<(), EncodeError> {
    w.str("topic", &t.name)?.u16(t.error as u16);
    w.u64(opt_to_wire(t.config.retention_ms)).u64(opt_to_wire(t.config.retention_bytes));
    if layout.cleanup {
        encode_cleanup(w, &t.config);
    }
    w.u32(count("partitions", t.partitions.len())?);
    for p in &t.partitions {
        w.u32(p.partition).u16(p.shard).u64(p.log_start).u64(p.log_end);
        if layout.health {
            let h = p.health.as_ref().ok_or(EncodeError::MissingField { field: "partition health" })?;
            health::encode(w, h)?;
        }
        if layout.replication {
            let missing = EncodeError::MissingField { field: "partition replication" };
            cluster::encode_replication(w, p.replication.as_ref().ok_or(missing)?)?;
        }
    }
    Ok(())
}

/// Bytes of a partition's bounds: partition, shard, log start and end.
const PARTITION_BOUNDS_BYTES: usize = 4 + 2 + 8 + 8;

fn decode_topic(r: &mut Reader<'_>, layout: Layout) -> Result<TopicInfo, DecodeError> {
    let name = r.str()?;
    let error = code(r)?;
    let mut config = TopicConfig {
        retention_ms: opt_from_wire(r.u64()?),
        retention_bytes: opt_from_wire(r.u64()?),
        ..TopicConfig::default()
    };
    if layout.cleanup {
        decode_cleanup(r, &mut config)?;
    }
    let item_bytes_min = PARTITION_BOUNDS_BYTES
        + if layout.health { PARTITION_HEALTH_BYTES_MIN } else { 0 }
        + if layout.replication { PARTITION_REPLICATION_BYTES_MIN } else { 0 };
    let n = r.count(item_bytes_min)?;
    let partitions = (0..n)
        .map(|_| {
            Ok(PartitionInfo {
                partition: r.u32()?,
                shard: r.u16()?,
                log_start: r.u64()?,
                log_end: r.u64()?,
                health: if layout.health { Some(health::decode(r)?) } else { None },
                replication: if layout.replication { Some(cluster::decode_replication(r)?) } else { None },
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(TopicInfo { name, error, config, partitions })
}

/// Fewest bytes a [`TopicInfo`] takes: empty name, error, two retentions, empty partitions.
const TOPIC_INFO_BYTES_MIN: usize = 2 + 2 + 8 + 8 + 4;

impl<'a> Response<'a> {
    pub fn api_key(&self) -> ApiKey {
        match self {
            Response::ApiVersions { .. } => ApiKey::ApiVersions,
            Response::Metadata { .. } => ApiKey::Metadata,
            Response::CreateTopic { .. } => ApiKey::CreateTopic,
            Response::DeleteTopic { .. } => ApiKey::DeleteTopic,
            Response::DescribeTopic { .. } => ApiKey::DescribeTopic,
            Response::Produce { .. } => ApiKey::Produce,
            Response::Fetch { .. } => ApiKey::Fetch,
            Response::ListOffsets { .. } => ApiKey::ListOffsets,
            Response::NodeStats { .. } => ApiKey::NodeStats,
            Response::ClusterStatus { .. } => ApiKey::ClusterStatus,
            Response::InitProducerId { .. } => ApiKey::InitProducerId,
            Response::Group(g) => ApiKey::from_u16(g.api_key()).expect("a group api key is known"),
        }
    }

    /// Encodes the response in the latest version of its API. Messages too long for the
    /// protocol are cut to fit; a name too long (which a node that validates its names never
    /// holds) is refused.
    pub fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        self.encode_version(self.api_key().latest_version(), w)
    }

    /// Encodes the response in `version` of its API except its trailing record batches (a
    /// fetch's), which it returns so that they go out after the encoded part without being
    /// copied into it; empty for the other responses.
    pub fn encode_head_version(&self, version: u16, w: &mut Writer) -> Result<&'a [u8], EncodeError> {
        if let Response::Fetch { error, message, high_watermark, log_start, batches } = self {
            w.u16(*error as u16).text(message).u64(*high_watermark).u64(*log_start);
            w.batches_head(batches.len())?;
            return Ok(batches);
        }
        self.encode_version(version, w)?;
        Ok(&[])
    }

    /// Encodes the response in `version` of its API (the request's), which the caller checked
    /// is one this build speaks.
    pub fn encode_version(&self, version: u16, w: &mut Writer) -> Result<(), EncodeError> {
        match self {
            Response::ApiVersions { apis } => {
                w.u32(count("apis", apis.len())?);
                for (k, lo, hi) in apis {
                    w.u16(*k).u16(*lo).u16(*hi);
                }
            }
            Response::Metadata { shards, nodes, topics } => {
                cluster::encode_shards(w, shards)?;
                if version >= METADATA_CLUSTER_VERSION {
                    cluster::encode_nodes(w, nodes)?;
                }
                w.u32(count("topics", topics.len())?);
                for t in topics {
                    encode_topic(w, t, Layout::metadata(version))?;
                }
            }
            Response::CreateTopic { error, message } | Response::DeleteTopic { error, message } => {
                w.u16(*error as u16).text(message);
            }
            Response::DescribeTopic { topic } => encode_topic(w, topic, Layout::describe(version))?,
            Response::Produce { error, message, base_offset, log_start } => {
                w.u16(*error as u16).text(message).u64(*base_offset).u64(*log_start);
            }
            Response::Fetch { error, message, high_watermark, log_start, batches } => {
                w.u16(*error as u16).text(message).u64(*high_watermark).u64(*log_start).batches(batches)?;
            }
            Response::ListOffsets { error, message, offset } => {
                w.u16(*error as u16).text(message).u64(*offset);
            }
            Response::NodeStats { shards } => {
                w.u32(count("shards", shards.len())?);
                for s in shards {
                    w.u16(s.shard).u64(s.connections).u64(s.requests).u64(s.forwarded);
                    if version >= NODE_STATS_CACHE_VERSION {
                        for f in cache_fields(&s.batch_cache) {
                            w.u64(f);
                        }
                    }
                }
            }
            Response::ClusterStatus { nodes, under_replicated } => {
                cluster::encode_status(w, nodes, under_replicated)?
            }
            Response::InitProducerId { error, message, producer_id, producer_epoch } => {
                w.u16(*error as u16).text(message).i64(*producer_id).u16(*producer_epoch as u16);
            }
            Response::Group(g) => g.encode(w)?,
        }
        Ok(())
    }

    /// Decodes a response in the latest version of its API.
    pub fn decode(api: ApiKey, body: &[u8]) -> Result<Response<'_>, DecodeError> {
        Self::decode_version(api, api.latest_version(), body)
    }

    /// Decodes a response in `version` of its API (the one its frame header names).
    pub fn decode_version(api: ApiKey, version: u16, body: &[u8]) -> Result<Response<'_>, DecodeError> {
        let (lowest, highest) = api.versions();
        if !(lowest..=highest).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { api_key: api as u16, version });
        }
        let mut r = Reader::new(body);
        let resp = match api {
            ApiKey::ApiVersions => {
                let n = r.count(6)?;
                let apis =
                    (0..n).map(|_| Ok((r.u16()?, r.u16()?, r.u16()?))).collect::<Result<_, DecodeError>>()?;
                Response::ApiVersions { apis }
            }
            ApiKey::Metadata => {
                let shards = cluster::decode_shards(&mut r)?;
                let nodes =
                    if version >= METADATA_CLUSTER_VERSION { cluster::decode_nodes(&mut r)? } else { vec![] };
                let n = r.count(TOPIC_INFO_BYTES_MIN)?;
                let layout = Layout::metadata(version);
                let topics = (0..n).map(|_| decode_topic(&mut r, layout)).collect::<Result<_, _>>()?;
                Response::Metadata { shards, nodes, topics }
            }
            ApiKey::CreateTopic => Response::CreateTopic { error: code(&mut r)?, message: r.str()? },
            ApiKey::DeleteTopic => Response::DeleteTopic { error: code(&mut r)?, message: r.str()? },
            ApiKey::DescribeTopic => {
                Response::DescribeTopic { topic: decode_topic(&mut r, Layout::describe(version))? }
            }
            ApiKey::Produce => Response::Produce {
                error: code(&mut r)?,
                message: r.str()?,
                base_offset: r.u64()?,
                log_start: r.u64()?,
            },
            ApiKey::Fetch => Response::Fetch {
                error: code(&mut r)?,
                message: r.str()?,
                high_watermark: r.u64()?,
                log_start: r.u64()?,
                batches: r.batches()?,
            },
            ApiKey::ListOffsets => {
                Response::ListOffsets { error: code(&mut r)?, message: r.str()?, offset: r.u64()? }
            }
            ApiKey::NodeStats => {
                let cached = version >= NODE_STATS_CACHE_VERSION;
                let n = r.count(if cached { 26 + 64 } else { 26 })?;
                let shards = (0..n)
                    .map(|_| {
                        let (shard, connections, requests, forwarded) =
                            (r.u16()?, r.u64()?, r.u64()?, r.u64()?);
                        let mut cache = [0; 8];
                        if cached {
                            for f in &mut cache {
                                *f = r.u64()?;
                            }
                        }
                        let batch_cache = cache_from_fields(cache);
                        Ok(ShardStats { shard, connections, requests, forwarded, batch_cache })
                    })
                    .collect::<Result<_, DecodeError>>()?;
                Response::NodeStats { shards }
            }
            ApiKey::ClusterStatus => {
                let (nodes, under_replicated) = cluster::decode_status(&mut r)?;
                Response::ClusterStatus { nodes, under_replicated }
            }
            ApiKey::InitProducerId => Response::InitProducerId {
                error: code(&mut r)?,
                message: r.str()?,
                producer_id: r.i64()?,
                producer_epoch: r.u16()? as i16,
            },
            group => Response::Group(GroupResponse::decode(group as u16, &mut r)?),
        };
        r.finish()?;
        Ok(resp)
    }
}

impl ErrorBody {
    /// Encodes the error; a message too long for the protocol is cut to fit.
    pub fn encode(&self, w: &mut Writer) {
        w.u16(self.error as u16).text(&self.message);
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let e = ErrorBody { error: code(&mut r)?, message: r.str()? };
        r.finish()?;
        Ok(e)
    }
}

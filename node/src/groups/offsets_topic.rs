//! The internal topic `__consumer_offsets`: compacted, created on the first FindCoordinator (as
//! Kafka does). A group lives on partition `crc32c(group) % partitions`, and its coordinator is
//! that partition's leader; the partition holds the group's committed offsets and metadata, so
//! both survive restarts and, replicated, a failover.

use crate::frontend::cluster;
use crate::service::types::Failure;
use crate::shard::Shard;
use weir_net::{CleanupPolicy, ErrorCode, TopicConfig};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How long tombstones of deleted offsets and groups stay in the offsets topic.
const OFFSETS_DELETE_RETENTION_MS: u64 = 24 * 3600 * 1000;

/// The offsets partition of `group`, of `partitions`. Stable across versions: the group's
/// state is where this says.
pub fn partition_of(group: &str, partitions: u32) -> u32 {
    crc32c::crc32c(group.as_bytes()) % partitions
}

/// How many partitions the offsets topic has, if it exists.
pub fn partitions(shard: &Shard) -> Option<u32> {
    shard.core().topics.borrow().topics.get(OFFSETS_TOPIC).map(|t| t.partitions)
}

/// Creates the offsets topic if it does not exist yet: replicated on up to three nodes in a
/// cluster. A create that lost a race with another node's is fine.
pub async fn ensure(shard: &Shard) -> Result<u32, Failure> {
    if let Some(n) = partitions(shard) {
        return Ok(n);
    }
    let n = shard.config.offsets_topic_partitions;
    let config = TopicConfig {
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: Some(OFFSETS_DELETE_RETENTION_MS),
        ..TopicConfig::default()
    };
    let created = match cluster::cluster_of(shard) {
        Some((link, meta)) => {
            let rf = meta.nodes.len().clamp(1, 3) as u16;
            cluster::create_topic(&link, OFFSETS_TOPIC.into(), n, config, rf, None).await
        }
        None => shard.service.create_topic(OFFSETS_TOPIC.into(), n, config).await,
    };
    match created {
        Ok(()) => {}
        Err(f) if f.code == ErrorCode::TopicAlreadyExists => {}
        Err(f) => return Err(f),
    }
    partitions(shard).ok_or_else(|| {
        Failure::new(ErrorCode::CoordinatorLoadInProgress, format!("{OFFSETS_TOPIC} is being created"))
    })
}

//! Topic metadata: names, partition counts and per-topic settings, persisted in the data dir.
//!
//! Shard 0 owns changes: it writes `topics.json` atomically (temporary file, fsync, rename,
//! fsync of the directory) on glommio's blocking pool, never on a shard's thread, and then tells
//! the other shards. Every shard keeps a copy. Each topic carries its placement: which replicas
//! (node, shard) hold each partition (see [`crate::placement`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use weir_net::{CleanupPolicy, TopicConfig};
use weir_replication::{ReplicaAddr, ShardId};

pub const TOPICS_FILE: &str = "topics.json";
/// Partitions a topic may have at most; bounds the metadata a request can create.
pub const PARTITIONS_MAX: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub partitions: u32,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    /// Topics saved before they had a policy are `delete`.
    #[serde(default)]
    pub cleanup_policy: CleanupPolicy,
    /// `None`: the node's `delete_retention_ms`.
    #[serde(default)]
    pub delete_retention_ms: Option<u64>,
    /// Replicas of each partition, by partition index; the first is the leader. Files written
    /// before placement was stored have none: loading places them by the default policy.
    #[serde(default)]
    pub replicas: Vec<Vec<ReplicaAddr>>,
}

impl TopicMeta {
    pub fn config(&self) -> TopicConfig {
        TopicConfig {
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            cleanup_policy: self.cleanup_policy,
            delete_retention_ms: self.delete_retention_ms,
        }
    }

    /// The replica that serves `partition` (its leader), if the partition exists.
    pub fn leader(&self, partition: u32) -> Option<ReplicaAddr> {
        self.replicas.get(partition as usize).and_then(|r| r.first().copied())
    }

    /// The shard of this node that serves `partition`, if this node serves it.
    pub fn local_shard(&self, partition: u32) -> Option<ShardId> {
        self.leader(partition).filter(|r| r.node == crate::placement::LOCAL_NODE).map(|r| r.shard)
    }
}

/// Why the topic table could not be loaded. The node does not start on one it cannot trust: a
/// topic's name makes the paths of its files, so a crafted name could reach outside the data dir.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} does not parse: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{path}: invalid topic {topic:?}: {reason}")]
    InvalidTopic { path: PathBuf, topic: String, reason: String },
}

/// All topics of the node, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicTable {
    pub topics: BTreeMap<String, TopicMeta>,
    /// The node whose replicas [`local_shard`](Self::local_shard) looks for: this node's id in a
    /// cluster (the table is then the cluster metadata's, never saved), `None` for a node
    /// without peers (node 0).
    #[serde(skip)]
    pub node: Option<weir_replication::NodeId>,
}

/// Kafka's rule: 1 to 249 characters of ASCII letters, digits, `.`, `_` and `-`, not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!("topic name must be 1 to 249 characters, got {}", name.len()));
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'".into());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("topic name has an invalid character {c:?}"));
    }
    Ok(())
}

impl TopicTable {
    /// Reads the table, checks every topic in it as creation does (its name and partition
    /// count), and fits its placement to a node of `shards` shards (see
    /// [`crate::placement::fit`]).
    pub fn load(data_dir: &Path, shards: usize) -> Result<Self, LoadError> {
        let path = data_dir.join(TOPICS_FILE);
        let mut table: Self = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| LoadError::Parse { path: path.clone(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(source) => return Err(LoadError::Read { path, source }),
        };
        for (key, meta) in &table.topics {
            let invalid =
                |reason: String| LoadError::InvalidTopic { path: path.clone(), topic: key.clone(), reason };
            check_topic_name(key).map_err(invalid)?;
            if meta.name != *key {
                return Err(invalid(format!("listed under {key:?} but named {:?}", meta.name)));
            }
            if meta.partitions == 0 || meta.partitions > PARTITIONS_MAX {
                let reason = format!("{} partitions, not within 1..={PARTITIONS_MAX}", meta.partitions);
                return Err(invalid(reason));
            }
        }
        for meta in table.topics.values_mut() {
            let moved = crate::placement::fit(&meta.name, &mut meta.replicas, meta.partitions, shards);
            if moved > 0 {
                tracing::info!(topic = %meta.name, partitions = moved, "partitions placed by the default policy");
            }
        }
        Ok(table)
    }

    /// The shard of this node that serves `partition` of `topic`, if any.
    /// The shard of this node that holds a replica of the partition, if one does.
    pub fn local_shard(&self, topic: &str, partition: u32) -> Option<ShardId> {
        let node = self.node.unwrap_or(crate::placement::LOCAL_NODE);
        let replicas = self.topics.get(topic)?.replicas.get(partition as usize)?;
        replicas.iter().find(|r| r.node == node).map(|r| r.shard)
    }

    /// Writes the table so that a crash leaves either the old or the new one.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let tmp = data_dir.join(format!("{TOPICS_FILE}.tmp"));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, data_dir.join(TOPICS_FILE))
        })();
        if written.is_err() {
            // A full disk, say: leave no partial file behind.
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        std::fs::File::open(data_dir)?.sync_all()
    }
}

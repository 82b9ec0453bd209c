//! Topic metadata: names, partition counts and per-topic settings, persisted in the data dir.
//!
//! Shard 0 owns changes: it writes `topics.json` atomically (temporary file, fsync, rename,
//! fsync of the directory) and then tells the other shards. Every shard keeps a copy.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use weir_net::TopicConfig;

pub const TOPICS_FILE: &str = "topics.json";
/// Partitions a topic may have at most; bounds the metadata a request can create.
pub const PARTITIONS_MAX: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub partitions: u32,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}

impl TopicMeta {
    pub fn config(&self) -> TopicConfig {
        TopicConfig { retention_ms: self.retention_ms, retention_bytes: self.retention_bytes }
    }
}

/// All topics of the node, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicTable {
    pub topics: BTreeMap<String, TopicMeta>,
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
    pub fn load(data_dir: &Path) -> std::io::Result<Self> {
        match std::fs::read(data_dir.join(TOPICS_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the table so that a crash leaves either the old or the new one.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let tmp = data_dir.join(format!("{TOPICS_FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, data_dir.join(TOPICS_FILE))?;
        std::fs::File::open(data_dir)?.sync_all()
    }
}

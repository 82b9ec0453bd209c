//! A topic's cleanup policy: what makes room in its log, compaction or retention or both.

/// What makes room in a topic's log (Kafka's `cleanup.policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CleanupPolicy {
    /// Whole segments past `retention_ms` or `retention_bytes` are deleted.
    #[default]
    #[serde(rename = "delete")]
    Delete,
    /// Only each key's latest record is kept; retention deletes nothing.
    #[serde(rename = "compact")]
    Compact,
    /// Compaction, and retention deletes whole segments as for `Delete`.
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether the cleaner compacts the topic.
    pub fn compacts(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }

    /// Whether retention deletes the topic's old segments.
    pub fn deletes(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }
}

impl std::fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Delete => "delete",
            Self::Compact => "compact",
            Self::CompactDelete => "compact,delete",
        })
    }
}

/// A policy named as Kafka names it: `delete`, `compact`, or both comma-separated in any order.
impl std::str::FromStr for CleanupPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (mut compact, mut delete) = (false, false);
        for part in s.split(',').map(str::trim) {
            match part {
                "compact" if !compact => compact = true,
                "delete" if !delete => delete = true,
                _ => {
                    return Err(format!(
                        "cleanup policy must be delete, compact or compact,delete, got {s:?}"
                    ));
                }
            }
        }
        Ok(match (compact, delete) {
            (true, true) => Self::CompactDelete,
            (true, false) => Self::Compact,
            _ => Self::Delete,
        })
    }
}

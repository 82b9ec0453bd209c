//! What `weir topic describe` prints: per partition its leader, replicas and in-sync replicas,
//! its bounds, whether its owner serves it (and why not), and the offsets quarantined as
//! damaged, as a table in human units or as JSON of stable keys.

use crate::cli_units::{bytes_limit, duration_ms, node_list};
use weir_net::api::{PartitionInfo, TopicInfo};
use weir_net::{DamagedRangeInfo, PartitionState};

/// The table: a heading with the topic's settings, one line per partition, then a line per
/// damaged range and for an offline partition its cause, indented under it.
pub fn print_table(t: &TopicInfo) {
    print!("{}", table(t));
}

/// The table as [`print_table`] prints it.
pub fn table(t: &TopicInfo) -> String {
    let mut out = format!(
        "topic {}  partitions {}  retention {}  retention.bytes {}  cleanup.policy {}",
        t.name,
        t.partitions.len(),
        t.config.retention_ms.map_or_else(|| "unlimited".to_owned(), duration_ms),
        bytes_limit(t.config.retention_bytes),
        t.config.cleanup_policy,
    );
    if t.config.cleanup_policy.compacts() {
        let kept = t.config.delete_retention_ms.map_or_else(|| "node default".to_owned(), duration_ms);
        out.push_str(&format!("  delete.retention {kept}"));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:>9} {:>6} {:>10} {:>10} {:>6} {:>14} {:>14} {:>14}  STATE\n",
        "PARTITION", "LEADER", "REPLICAS", "ISR", "SHARD", "LOG_START", "HIGH_WATERMARK", "LOG_END"
    ));
    for p in &t.partitions {
        let r = p.replication.as_ref();
        let leader = match r {
            Some(r) => r.leader.map_or_else(|| "none".to_owned(), |l| l.to_string()),
            None => "?".to_owned(),
        };
        out.push_str(&format!(
            "{:>9} {:>6} {:>10} {:>10} {:>6} {:>14} {:>14} {:>14}  {}\n",
            p.partition,
            leader,
            r.map_or_else(|| "?".to_owned(), |r| node_list(&r.replicas)),
            r.map_or_else(|| "?".to_owned(), |r| node_list(&r.isr)),
            p.shard,
            p.log_start,
            high_watermark(p),
            log_end(p),
            state_word(p)
        ));
        for line in detail_lines(p) {
            out.push_str(&format!("{:>9}   {line}\n", ""));
        }
    }
    out
}

/// The high watermark: the replication's, or what a node of an older version reports as the
/// partition's end (its high watermark too).
fn high_watermark(p: &PartitionInfo) -> u64 {
    p.replication.as_ref().map_or(p.log_end, |r| r.high_watermark)
}

/// The leader's log end; a node of an older version reports only the high watermark.
fn log_end(p: &PartitionInfo) -> u64 {
    p.replication.as_ref().map_or(p.log_end, |r| r.log_end)
}

fn state_word(p: &PartitionInfo) -> &'static str {
    match p.health.as_ref().map(|h| &h.state) {
        Some(PartitionState::Online) => "online",
        Some(PartitionState::Offline { .. }) => "offline",
        // A node that answers DescribeTopic version 1 only, or (in a cluster) one that holds
        // no replica of the partition, does not say.
        None => "unknown",
    }
}

/// The lines under a partition: why it is offline, and each damaged range.
pub fn detail_lines(p: &PartitionInfo) -> Vec<String> {
    let Some(h) = &p.health else { return Vec::new() };
    let mut lines = Vec::new();
    if let PartitionState::Offline { cause, retry_in_ms } = &h.state {
        let retry = match retry_in_ms {
            Some(ms) => format!("next attempt in {ms} ms"),
            None => "no retry scheduled".to_owned(),
        };
        lines.push(format!("offline: {cause} ({retry})"));
    }
    for d in &h.damaged {
        lines.push(format!(
            "damaged {}..={} (segment {}): {}; reads there answer CorruptBatch, a consumer may seek past {}",
            d.first_offset, d.last_offset, d.segment, d.reason, d.last_offset
        ));
    }
    lines
}

/// The topic as JSON. Keys are stable: numbers in their base units (`retention_ms`,
/// `retention_bytes`, null for no limit), node ids as numbers, `leader` null when there is none.
pub fn json(t: &TopicInfo) -> serde_json::Value {
    let parts: Vec<_> = t.partitions.iter().map(partition_json).collect();
    serde_json::json!({
        "name": t.name,
        "retention_ms": t.config.retention_ms,
        "retention_bytes": t.config.retention_bytes,
        "cleanup_policy": t.config.cleanup_policy.to_string(),
        "delete_retention_ms": t.config.delete_retention_ms,
        "partitions": parts,
    })
}

fn partition_json(p: &PartitionInfo) -> serde_json::Value {
    let mut v = serde_json::json!({
        "partition": p.partition,
        "shard": p.shard,
        "log_start": p.log_start,
        "high_watermark": high_watermark(p),
        "log_end": log_end(p),
        "state": state_word(p),
    });
    if let Some(r) = &p.replication {
        v["leader"] = r.leader.into();
        v["leader_epoch"] = r.leader_epoch.into();
        v["replicas"] = r.replicas.clone().into();
        v["isr"] = r.isr.clone().into();
    }
    if let Some(h) = &p.health {
        if let PartitionState::Offline { cause, retry_in_ms } = &h.state {
            v["cause"] = cause.as_str().into();
            v["retry_in_ms"] = (*retry_in_ms).into();
        }
        v["damaged"] = h.damaged.iter().map(damaged_json).collect();
    }
    v
}

fn damaged_json(d: &DamagedRangeInfo) -> serde_json::Value {
    serde_json::json!({
        "first_offset": d.first_offset,
        "last_offset": d.last_offset,
        "segment": d.segment,
        "reason": d.reason,
    })
}

//! What `weir topic describe` prints: per partition its bounds, whether its owner serves it
//! (and why not), and the offsets quarantined as damaged, as a table or as JSON.

use weir_net::api::{PartitionInfo, TopicInfo};
use weir_net::{DamagedRangeInfo, PartitionState};

/// The table: one line per partition, then a line per damaged range and for an offline
/// partition its cause, indented under it.
pub fn print_table(t: &TopicInfo) {
    println!(
        "topic {} (retention_ms {:?}, retention_bytes {:?})",
        t.name, t.config.retention_ms, t.config.retention_bytes
    );
    println!("{:>9} {:>6} {:>14} {:>14}  STATE", "PARTITION", "SHARD", "LOG_START", "LOG_END");
    for p in &t.partitions {
        println!(
            "{:>9} {:>6} {:>14} {:>14}  {}",
            p.partition,
            p.shard,
            p.log_start,
            p.log_end,
            state_word(p)
        );
        for line in detail_lines(p) {
            println!("{:>9}   {line}", "");
        }
    }
}

fn state_word(p: &PartitionInfo) -> &'static str {
    match p.health.as_ref().map(|h| &h.state) {
        Some(PartitionState::Online) => "online",
        Some(PartitionState::Offline { .. }) => "offline",
        // A node that answers DescribeTopic version 1 only does not say.
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

pub fn json(t: &TopicInfo) -> serde_json::Value {
    let parts: Vec<_> = t.partitions.iter().map(partition_json).collect();
    serde_json::json!({
        "name": t.name,
        "retention_ms": t.config.retention_ms,
        "retention_bytes": t.config.retention_bytes,
        "partitions": parts,
    })
}

fn partition_json(p: &PartitionInfo) -> serde_json::Value {
    let mut v = serde_json::json!({
        "partition": p.partition,
        "shard": p.shard,
        "log_start": p.log_start,
        "log_end": p.log_end,
        "state": state_word(p),
    });
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

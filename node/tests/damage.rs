//! Damage in a stopped node's files, as `weir topic describe` reports it after a restart: the
//! quarantined offsets, named exactly, on a partition that stays online.

mod common;

use common::{Node, Via, batch_of, produce_raw, runtime};
use std::path::Path;
use weir_net::client::{Admin, Target};
use weir_net::{DamagedRangeInfo, ErrorCode, PartitionState, TopicConfig};

const RECORDS_PER_BATCH: usize = 10;
const BATCHES: usize = 40;

async fn produce_batch(target: &Target, topic: &str) {
    let values: Vec<String> =
        (0..RECORDS_PER_BATCH).map(|i| format!("record {i} with a few bytes of payload")).collect();
    let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let (error, message) = produce_raw(target, topic, 0, &batch_of(&values)).await;
    assert_eq!(error, ErrorCode::None, "{message}");
}

/// Flips a payload byte of the third batch of the first segment (a sealed one, with intact
/// batches after the flip); returns the offsets of the batch it damaged.
fn flip_third_batch(partition_dir: &Path) -> (u64, u64) {
    let path = partition_dir.join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&path).unwrap();
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    // Batches back to back: `batch_len` at 12, `last_offset_delta` at 32, payload from 80.
    let mut pos = 0;
    for _ in 0..2 {
        pos += u32_at(&bytes, pos + 12);
    }
    let len = u32_at(&bytes, pos + 12);
    assert!(pos + 2 * len < bytes.len(), "intact batches follow the flip");
    let base = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap());
    let last = base + u32_at(&bytes, pos + 32) as u64;
    bytes[pos + 100] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    (base, last)
}

#[test]
fn describe_reports_a_quarantined_range_of_an_online_partition() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: the flip lands in a sealed one, which only the scrubber checks.
    let env = [("WEIR_SEGMENT_BYTES", "4096"), ("WEIR_BATCH_BYTES_MAX", "4096")];
    let node = Node::start_with(dir.path(), 1, Node::free_port(1), &env);
    runtime().block_on(async {
        let target = node.target(Via::Tcp);
        Admin::connect(&target).await.unwrap().create_topic("d", 1, TopicConfig::default()).await.unwrap();
        for _ in 0..BATCHES {
            produce_batch(&target, "d").await;
        }
    });
    let (_, port) = node.stop();
    let (first, last) = flip_third_batch(&dir.path().join("partitions/d-0"));
    assert_eq!((first, last), (20, 29), "batches of ten records, one per produce");
    let node = Node::start_with(dir.path(), 1, port, &env);
    let expected =
        DamagedRangeInfo { segment: 0, first_offset: first, last_offset: last, reason: String::new() };
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        // The scrubber checks sealed segments in the background, at a bounded rate: wait for it
        // to reach the flip, with a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (info, health) = loop {
            let info = admin.describe_topic("d").await.unwrap();
            let health = info.partitions[0].health.clone().expect("describe carries health");
            if !health.damaged.is_empty() {
                break (info, health);
            }
            assert!(std::time::Instant::now() < deadline, "the damage is never reported: {health:?}");
            tokio_rt::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(health.state, PartitionState::Online, "damage does not take the partition offline");
        let [range] = &health.damaged[..] else { panic!("one damaged range: {health:?}") };
        assert!(!range.reason.is_empty(), "{range:?}");
        assert_eq!(DamagedRangeInfo { reason: String::new(), ..range.clone() }, expected);
        assert_eq!(info.partitions[0].log_end, (BATCHES * RECORDS_PER_BATCH) as u64);
    });
    let out = node.cli(Via::Tcp).args(["topic", "describe", "d"]).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{table}");
    assert!(table.contains("online"), "{table}");
    assert!(table.contains(&format!("damaged {first}..={last} (segment 0)")), "{table}");
    let out = node.cli(Via::Tcp).args(["topic", "describe", "d", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &json["partitions"][0];
    assert_eq!(p["state"], "online", "{json}");
    assert_eq!(
        (&p["damaged"][0]["first_offset"], &p["damaged"][0]["last_offset"]),
        (&first.into(), &last.into())
    );
}

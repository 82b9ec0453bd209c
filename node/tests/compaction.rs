//! Compaction on a real node: a compacted topic's sealed segments are cleaned in the background
//! to each key's latest record, at the records' own offsets, while the node serves; tombstones
//! go once their `delete_retention_ms` has passed and stay until then; a record without a key
//! is refused. Checked against a model of everything acknowledged, read back over the wire.

mod common;

use common::{Node, Via, free_ports, runtime};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use weir_net::client::{
    Admin, ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek,
};
use weir_net::{CleanupPolicy, ErrorCode, TopicConfig};

/// What a record is, as the model and a read know it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

const KEYS: u32 = 40;
const ROUNDS: u32 = 30;
/// How long a test waits for the cleaner before it fails.
const CLEAN_DEADLINE: Duration = Duration::from_secs(60);

/// A node whose segments are small, so a few hundred kilobytes make many sealed segments.
fn start(dir: &std::path::Path) -> Node {
    let env = [("WEIR_SEGMENT_BYTES", "65536"), ("WEIR_BATCH_BYTES_MAX", "16384")];
    Node::start_with(dir, 1, free_ports(2), &env)
}

fn compacted(delete_retention_ms: u64) -> TopicConfig {
    TopicConfig {
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: Some(delete_retention_ms),
        ..TopicConfig::default()
    }
}

/// Whether key `k` ends deleted: every tenth key's last record is a tombstone.
fn deleted(k: u32) -> bool {
    k % 10 == 3
}

/// Writes `ROUNDS` values of each of `KEYS` keys (the deleted keys' last as tombstones), then
/// filler records of five other keys that seal the segments before them. Returns the model:
/// every acknowledged record by offset.
async fn produce(node: &Node, topic: &str) -> BTreeMap<u64, Rec> {
    let config = ProducerConfig { batch_bytes: 8 << 10, ..ProducerConfig::default() };
    let producer = Producer::connect(&node.target(Via::Tcp), config).await.unwrap();
    let mut sent = Vec::new();
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let tombstone = round == ROUNDS - 1 && deleted(k);
            let value = (!tombstone).then(|| format!("{k}/{round}/{}", "v".repeat(180)).into_bytes());
            sent.push(Rec { key: format!("key-{k}").into_bytes(), value });
        }
    }
    for i in 0..400 {
        sent.push(Rec { key: format!("filler-{}", i % 5).into_bytes(), value: Some(vec![b'f'; 200]) });
    }
    let mut acks = Vec::new();
    for r in &sent {
        let record = ProducerRecord {
            topic: topic.into(),
            partition: Some(0),
            key: Some(r.key.clone()),
            value: r.value.clone(),
            ..Default::default()
        };
        acks.push(producer.enqueue(record).await.unwrap());
    }
    let mut model = BTreeMap::new();
    for (ack, r) in acks.into_iter().zip(sent) {
        model.insert(ack.await.expect("acknowledged"), r);
    }
    producer.close().await.unwrap();
    model
}

/// Everything the partition holds, read from its start up to `last`.
async fn read_all(node: &Node, topic: &str, last: u64) -> BTreeMap<u64, Rec> {
    let mut consumer = Consumer::connect(&node.target(Via::Tcp), ConsumerConfig::default()).await.unwrap();
    consumer.assign(topic, 0, Seek::Earliest).await.unwrap();
    let mut got = BTreeMap::new();
    while !got.contains_key(&last) {
        for r in consumer.poll(1_000).await.unwrap() {
            assert!(got.keys().next_back().is_none_or(|&o| o < r.offset), "offsets increase");
            got.insert(r.offset, Rec { key: r.key.unwrap(), value: r.value });
        }
    }
    got
}

/// Reads the partition until `cleaned` says the cleaner has been at it, or fails at the deadline.
async fn read_once_cleaned(
    node: &Node,
    topic: &str,
    model: &BTreeMap<u64, Rec>,
    cleaned: impl Fn(&BTreeMap<u64, Rec>) -> bool,
) -> BTreeMap<u64, Rec> {
    let last = *model.keys().next_back().unwrap();
    let deadline = Instant::now() + CLEAN_DEADLINE;
    loop {
        let got = read_all(node, topic, last).await;
        check_survivors(&got, model);
        if cleaned(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: not cleaned after {CLEAN_DEADLINE:?}: {} records",
            got.len()
        );
        tokio_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Survivors are acknowledged records at their own offsets; a superseded one kept to hold its
/// place in its segment may have lost its value. Each key reads as its latest state.
fn check_survivors(got: &BTreeMap<u64, Rec>, model: &BTreeMap<u64, Rec>) {
    for (o, r) in got {
        let m = &model[o];
        let placeholder = Rec { value: None, ..m.clone() };
        assert!(r == m || *r == placeholder, "offset {o} holds {r:?}, was {m:?}");
    }
    let keys: BTreeSet<&Vec<u8>> = model.values().map(|r| &r.key).collect();
    for key in keys {
        let latest = model.values().rev().find(|r| &r.key == key).unwrap();
        let last = got.values().rev().find(|r| &r.key == key);
        match latest.value {
            // The latest record of a key is in a sealed segment or the active one: never cleaned.
            Some(_) => assert_eq!(last, Some(latest), "key {key:?}"),
            None => {
                assert!(last.is_none_or(|r| r.value.is_none()), "deleted key {key:?} came back: {last:?}")
            }
        }
    }
}

/// Whether the keyed records before the filler are cleaned: at most the latest of each key and
/// one placeholder per sealed segment (64 KiB each of about 460 KB) are left. The filler's
/// keys are left out: its last segment is the active one, which is never cleaned.
fn few(got: &BTreeMap<u64, Rec>) -> bool {
    got.values().filter(|r| r.key.starts_with(b"key-")).count() <= (KEYS + 12) as usize
}

#[test]
fn a_compacted_topic_keeps_each_keys_latest_record_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic("kv", 1, compacted(0)).await.unwrap();
        admin.create_topic("kv-kept", 1, compacted(24 * 3600 * 1000)).await.unwrap();
        let info = admin.describe_topic("kv").await.unwrap();
        assert_eq!(
            (info.config.cleanup_policy, info.config.delete_retention_ms),
            (CleanupPolicy::Compact, Some(0))
        );

        // Tombstones past their retention (0 ms) go with the values they delete.
        let model = produce(&node, "kv").await;
        let got = read_once_cleaned(&node, "kv", &model, few).await;
        for (o, r) in &got {
            let k = String::from_utf8_lossy(&r.key);
            let gone = (0..KEYS).filter(|&k| deleted(k)).any(|d| k == format!("key-{d}"));
            assert!(!gone || r.value.is_none(), "a value of deleted key {k} at {o}");
        }
        let tombstones = got.values().filter(|r| r.value.is_none()).count();
        assert!(tombstones <= 12, "expired tombstones stayed: {tombstones}");

        // Within their retention, tombstones stay as their keys' latest records while the
        // values before them go.
        let model = produce(&node, "kv-kept").await;
        let got = read_once_cleaned(&node, "kv-kept", &model, few).await;
        for (o, m) in &model {
            let latest = model.range(o + 1..).all(|(_, later)| later.key != m.key);
            if m.value.is_none() && latest {
                assert_eq!(got.get(o), Some(m), "the tombstone at {o} is kept");
            }
        }
    });
}

#[test]
fn a_compacted_topic_refuses_a_record_without_a_key_and_goes_on_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic("kv", 1, compacted(1000)).await.unwrap();
        let producer = Producer::connect(&node.target(Via::Tcp), ProducerConfig::default()).await.unwrap();
        let record = |key: Option<&[u8]>| ProducerRecord {
            topic: "kv".into(),
            partition: Some(0),
            key: key.map(<[u8]>::to_vec),
            value: Some(b"v".to_vec()),
            ..Default::default()
        };
        match producer.send(record(None)).await {
            Err(ClientError::Server { code: ErrorCode::InvalidRecord, message }) => {
                assert!(message.contains("no key"), "{message}")
            }
            other => panic!("an unkeyed record was not refused: {other:?}"),
        }
        assert_eq!(producer.send(record(Some(b"k"))).await.unwrap(), 0, "nothing of the refused one stayed");
    });
}

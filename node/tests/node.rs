//! A real node, driven through the SDK and the CLI, over QUIC and over TCP.

mod common;

use common::{Node, Via, runtime};
use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use weir_net::client::partitioner::partition_for_key;
use weir_net::client::{
    Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek, Target,
};
use weir_net::{ErrorCode, TopicConfig};

const PARTITIONS: u32 = 8;
const PER_PRODUCER: u64 = 50_000;
const KEYS: u64 = 1000;

/// Reads every partition from the start; returns records by partition in the order read.
async fn read_all(target: &Target, topic: &str, expect: usize) -> HashMap<u32, Vec<(u64, String, String)>> {
    let mut consumer = Consumer::connect(target, ConsumerConfig::default()).await.unwrap();
    for p in 0..PARTITIONS {
        consumer.assign(topic, p, Seek::Earliest).await.unwrap();
    }
    let mut by_partition: HashMap<u32, Vec<(u64, String, String)>> = HashMap::new();
    let mut total = 0;
    while total < expect {
        let records = consumer.poll(2000).await.unwrap();
        assert!(!records.is_empty(), "stalled after {total} of {expect} records");
        for r in records {
            total += 1;
            let key = String::from_utf8(r.key.unwrap()).unwrap();
            let value = String::from_utf8(r.value.unwrap()).unwrap();
            by_partition.entry(r.partition).or_default().push((r.offset, key, value));
        }
    }
    assert!(consumer.poll(0).await.unwrap().is_empty(), "more records than produced");
    by_partition
}

fn check(by_partition: &HashMap<u32, Vec<(u64, String, String)>>) {
    let mut seen = 0;
    for (p, records) in by_partition {
        // Offsets are dense and in order; a key's records are in the order they were sent.
        let mut last_seq: HashMap<(&str, &str), u64> = HashMap::new();
        for (i, (offset, key, value)) in records.iter().enumerate() {
            assert_eq!(*offset, i as u64, "partition {p}");
            assert_eq!(partition_for_key(key.as_bytes(), PARTITIONS), *p, "key {key} in partition {p}");
            let (producer, seq) = value.split_once(':').unwrap();
            let seq: u64 = seq.parse().unwrap();
            if let Some(prev) = last_seq.insert((producer, key), seq) {
                assert!(seq > prev, "key {key} of {producer}: {seq} after {prev}");
            }
        }
        seen += records.len();
    }
    assert_eq!(seen as u64, 2 * PER_PRODUCER);
}

#[test]
fn two_producers_one_consumer_and_a_restart_over_quic() {
    two_producers_one_consumer_and_a_restart(Via::Quic);
}

#[test]
fn two_producers_one_consumer_and_a_restart_over_tcp() {
    two_producers_one_consumer_and_a_restart(Via::Tcp);
}

fn two_producers_one_consumer_and_a_restart(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let rt = runtime();
    let addr = node.target(via);
    rt.block_on(async {
        let mut admin = Admin::connect(&addr).await.unwrap();
        admin.create_topic("orders", PARTITIONS, TopicConfig::default()).await.unwrap();
        let err = admin.create_topic("orders", 2, TopicConfig::default()).await.unwrap_err();
        assert!(matches!(
            err,
            weir_net::client::ClientError::Server { code: ErrorCode::TopicAlreadyExists, .. }
        ));
        let producers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let addr = addr.clone();
                tokio_rt::spawn(async move {
                    let producer = Producer::connect(&addr, ProducerConfig::default()).await.unwrap();
                    let mut pending = std::collections::VecDeque::new();
                    for seq in 0..PER_PRODUCER {
                        let record = ProducerRecord {
                            topic: "orders".into(),
                            key: Some(format!("key-{}", seq % KEYS).into_bytes()),
                            value: Some(format!("{name}:{seq}").into_bytes()),
                            ..Default::default()
                        };
                        pending.push_back(producer.enqueue(record).await.unwrap());
                        if pending.len() > 8192 {
                            pending.pop_front().unwrap().await.unwrap();
                        }
                    }
                    for ack in pending {
                        ack.await.unwrap();
                    }
                    producer.close().await.unwrap();
                })
            })
            .collect();
        for p in producers {
            p.await.unwrap();
        }
        let described = admin.describe_topic("orders").await.unwrap();
        let total: u64 = described.partitions.iter().map(|p| p.log_end - p.log_start).sum();
        assert_eq!(total, 2 * PER_PRODUCER);
        assert!(
            described.partitions.iter().any(|p| p.shard == 0)
                && described.partitions.iter().any(|p| p.shard == 1)
        );
        check(&read_all(&addr, "orders", 2 * PER_PRODUCER as usize).await);
    });
    // A clean stop and a start on the same data: everything is read again.
    let (dir_path, port) = node.stop();
    let node = Node::start_on(&dir_path, 2, port);
    rt.block_on(async { check(&read_all(&node.target(via), "orders", 2 * PER_PRODUCER as usize).await) });
}

#[test]
fn the_cli_creates_produces_and_consumes_over_quic() {
    the_cli_creates_produces_and_consumes(Via::Quic);
}

#[test]
fn the_cli_creates_produces_and_consumes_over_tcp() {
    the_cli_creates_produces_and_consumes(Via::Tcp);
}

fn the_cli_creates_produces_and_consumes(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let out = node.cli(via).args(["topic", "create", "lines", "--partitions", "3"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut produce = node
        .cli(via)
        .args(["produce", "lines", "--key-separator", "="])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = (0..300).map(|i| format!("k{}=line {i}\n", i % 5)).collect();
    produce.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = produce.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("300 records acknowledged"));
    let out = node
        .cli(via)
        .args(["consume", "lines", "--from-beginning", "--count", "300", "--print-key", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 300);
    for l in &lines {
        let key = l["key"].as_str().unwrap();
        assert_eq!(l["partition"].as_u64().unwrap() as u32, partition_for_key(key.as_bytes(), 3));
    }
    let out = node.cli(via).args(["topic", "list", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list, serde_json::json!([{"name": "lines", "partitions": 3}]));
    // Errors exit non-zero with a message.
    let out =
        node.cli(via).args(["consume", "missing", "--from-beginning", "--count", "1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("UnknownTopic"));
    let out = node.cli(via).args(["topic", "create", "bad/name", "--partitions", "1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidArgument"));
    let out = node.cli(via).args(["topic", "delete", "lines"]).output().unwrap();
    assert!(out.status.success());
    let out = node.cli(via).args(["topic", "list", "--json"]).output().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
}

#[test]
fn concurrent_topic_changes_are_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let rt = runtime();
    let addr = node.target(Via::Quic);
    let names: Vec<String> = (0..16).map(|i| format!("c{i}")).collect();
    rt.block_on(async {
        let creates: Vec<_> = names
            .iter()
            .map(|name| {
                let (addr, name) = (addr.clone(), name.clone());
                tokio_rt::spawn(async move {
                    Admin::connect(&addr)
                        .await
                        .unwrap()
                        .create_topic(&name, 3, TopicConfig::default())
                        .await
                        .unwrap()
                })
            })
            .collect();
        for c in creates {
            c.await.unwrap();
        }
        let listed: Vec<String> = Admin::connect(&addr)
            .await
            .unwrap()
            .list_topics()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(listed.len(), names.len(), "{listed:?}");
    });
    let (dir_path, port) = node.stop();
    let node = Node::start_on(&dir_path, 2, port);
    rt.block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        assert_eq!(admin.list_topics().await.unwrap().len(), names.len());
        for name in &names {
            assert_eq!(admin.describe_topic(name).await.unwrap().partitions.len(), 3);
        }
    });
}

/// Requests forwarded between shards, summed over the node.
async fn forwarded(admin: &mut Admin) -> u64 {
    admin.node_stats().await.unwrap().iter().map(|s| s.forwarded).sum()
}

async fn produce_keyed(target: &Target, config: ProducerConfig, topic: &str, count: u64) {
    let producer = Producer::connect(target, config).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..count {
        let record = ProducerRecord {
            topic: topic.into(),
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("{i}").into_bytes()),
            ..Default::default()
        };
        pending.push(producer.enqueue(record).await.unwrap());
    }
    for ack in pending {
        ack.await.unwrap();
    }
    producer.close().await.unwrap();
}

#[test]
fn shard_aware_clients_reach_the_owning_shard_directly() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic("direct", PARTITIONS, TopicConfig::default()).await.unwrap();
        let before = admin.node_stats().await.unwrap();
        // Shard-aware (the default), over each transport: nothing crosses between shards.
        produce_keyed(&node.target(Via::Quic), ProducerConfig::default(), "direct", 2000).await;
        produce_keyed(&node.target(Via::Tcp), ProducerConfig::default(), "direct", 2000).await;
        for via in [Via::Quic, Via::Tcp] {
            let mut consumer = Consumer::connect(&node.target(via), ConsumerConfig::default()).await.unwrap();
            for p in 0..PARTITIONS {
                consumer.assign("direct", p, Seek::Earliest).await.unwrap();
            }
            let mut read = 0;
            while read < 4000 {
                let records = consumer.poll(2000).await.unwrap();
                assert!(!records.is_empty(), "stalled after {read} records");
                read += records.len();
            }
        }
        let after = admin.node_stats().await.unwrap();
        let forwarded_now: u64 = after.iter().map(|s| s.forwarded).sum();
        let forwarded_before: u64 = before.iter().map(|s| s.forwarded).sum();
        assert_eq!(forwarded_now, forwarded_before, "shard-aware requests were forwarded: {after:?}");
        // Both shards own partitions, and both served requests directly.
        for (b, a) in before.iter().zip(&after) {
            assert!(a.requests > b.requests + 4, "shard {} served no produce or fetch: {after:?}", a.shard);
        }
        // The same producer, not shard-aware, through the shared port: the shard its connection
        // lands on forwards the other shard's partitions.
        let config = ProducerConfig { shard_aware: false, ..ProducerConfig::default() };
        produce_keyed(&node.target(Via::Tcp), config, "direct", 2000).await;
        assert!(forwarded(&mut admin).await > forwarded_now, "some produce was forwarded");
    });
    // The CLI shows the same counters.
    let out = node.cli(Via::Quic).args(["stats", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats.as_array().unwrap().len(), 2);
}

#[test]
fn acks_none_records_are_answered_at_once_and_become_visible() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    runtime().block_on(async {
        let target = node.target(Via::Quic);
        Admin::connect(&target).await.unwrap().create_topic("fast", 2, TopicConfig::default()).await.unwrap();
        let config = ProducerConfig { acks: weir_net::Acks::None, ..ProducerConfig::default() };
        produce_keyed(&target, config, "fast", 3000).await;
        let mut consumer = Consumer::connect(&target, ConsumerConfig::default()).await.unwrap();
        for p in 0..2 {
            consumer.assign("fast", p, Seek::Earliest).await.unwrap();
        }
        let mut values = std::collections::HashSet::new();
        while values.len() < 3000 {
            let records = consumer.poll(2000).await.unwrap();
            assert!(!records.is_empty(), "stalled after {} records", values.len());
            values.extend(records.into_iter().map(|r| r.value.unwrap()));
        }
    });
}

/// Consumers keeping up read from the shards' batch caches, not the device; after a restart
/// (the caches start empty) and with the cache turned off, the files give the same records.
#[test]
fn recent_records_are_served_from_the_batch_cache() {
    let dir = tempfile::tempdir().unwrap();
    let port = Node::free_port(2);
    let node = Node::start_with(dir.path(), 2, port, &[("WEIR_BATCH_CACHE_BYTES_MAX", "67108864")]);
    let stats = |node: &Node| {
        let target = node.target(Via::Tcp);
        runtime().block_on(async { Admin::connect(&target).await.unwrap().node_stats().await.unwrap() })
    };
    let first = runtime().block_on(async {
        let target = node.target(Via::Tcp);
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_topic("tail", PARTITIONS, TopicConfig::default()).await.unwrap();
        produce_keyed(&target, ProducerConfig::default(), "tail", 3000).await;
        read_all(&target, "tail", 3000).await
    });
    for s in stats(&node) {
        let c = s.batch_cache;
        assert!(c.hit_bytes > 0 && c.miss_bytes == 0 && c.batches > 0, "shard {}: {c:?}", s.shard);
        assert_eq!((c.bytes_max, c.evictions), (64 << 20, 0));
    }
    // The CLI shows them too.
    let out = node.cli(Via::Tcp).args(["stats", "--json"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["batch_cache"]["hit_ratio"], 1.0, "{json}");
    node.stop();
    for cache in ["67108864", "0"] {
        let node = Node::start_with(dir.path(), 2, port, &[("WEIR_BATCH_CACHE_BYTES_MAX", cache)]);
        let again = runtime().block_on(read_all(&node.target(Via::Quic), "tail", 3000));
        assert_eq!(again, first, "cache {cache}");
        let read: u64 = stats(&node).iter().map(|s| s.batch_cache.miss_bytes).sum();
        let hit: u64 = stats(&node).iter().map(|s| s.batch_cache.hit_bytes).sum();
        // Read from the files; turned off, the cache counts nothing.
        assert_eq!((hit, read > 0), (0, cache != "0"), "cache {cache}");
        node.stop();
    }
}

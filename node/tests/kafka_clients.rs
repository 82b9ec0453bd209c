//! Unmodified Kafka clients against a real `weir serve`: kcat (librdkafka), confluent-kafka,
//! kafka-python and kafkajs produce, consume and use consumer groups through the Kafka
//! listener, and what they write reads back byte for byte, natively too. The clients come from
//! `.ci/kafka-clients`. kafka-python also checks the replica administration APIs (ElectLeaders,
//! DescribeLogDirs, AlterReplicaLogDirs) where its own integration tests do not.

mod common;

use common::kafka::{KafkaNode, kcat, nodejs, python, run_ok, script};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// Lines `key:value` for kcat's `-K:`; values carry bytes of every kind kcat passes through.
fn lines(codec: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{codec}-{i:05}:v{i} {codec} é\t{}", "x".repeat(i % 97))).collect()
}

/// Produces `lines` to `topic` with kcat, compressed with `codec`, and waits for every ack.
fn kcat_produce(bootstrap: &str, topic: &str, codec: &str, lines: &[String]) {
    let mut child = kcat()
        .args(["-b", bootstrap, "-P", "-t", topic, "-K:", "-z", codec, "-X", "acks=all"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("failed"), "kcat -P {codec}: {err}");
}

/// Everything in `topic`, as `partition:offset:key:value` lines.
fn kcat_consume_all(bootstrap: &str, topic: &str) -> Vec<(u32, u64, String)> {
    let out = run_ok(kcat().args(["-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-f", "%p:%o:%k:%s\\n"]));
    out.lines()
        .map(|l| {
            let mut it = l.splitn(3, ':');
            let p = it.next().unwrap().parse().unwrap();
            let o = it.next().unwrap().parse().unwrap();
            (p, o, it.next().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn kcat_produces_every_codec_and_reads_it_back_byte_exactly() {
    let node = KafkaNode::start(2, &[]);
    node.create_topic("codecs", 3, &[]);
    let mut sent = Vec::new();
    for codec in CODECS {
        let l = lines(codec, 10_000);
        kcat_produce(&node.bootstrap, "codecs", codec, &l);
        sent.extend(l);
    }
    let got = kcat_consume_all(&node.bootstrap, "codecs");
    // Offsets are dense and increasing in each partition, and a key's records keep their order.
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    let mut last_of_codec: BTreeMap<(u32, String), String> = BTreeMap::new();
    for (p, o, kv) in &got {
        let expected = next.entry(*p).or_insert(0);
        assert_eq!(*o, *expected, "partition {p}");
        *expected += 1;
        let key = kv.split(':').next().unwrap().to_owned();
        let codec = key.split('-').next().unwrap().to_owned();
        if let Some(prev) = last_of_codec.insert((*p, codec), key.clone()) {
            assert!(prev < key, "{prev} before {key} in partition {p}");
        }
    }
    let mut got: Vec<String> = got.into_iter().map(|(_, _, kv)| kv).collect();
    got.sort();
    sent.sort();
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "what was read differs from what was written");
}

#[test]
fn kcat_consumes_as_a_group_and_commits() {
    let node = KafkaNode::start(2, &[]);
    node.create_topic("grouped", 4, &[]);
    let sent = lines("none", 4000);
    kcat_produce(&node.bootstrap, "grouped", "lz4", &sent);
    let group = |expect_any: bool| {
        let out = run_ok(kcat().args([
            "-b",
            &node.bootstrap,
            "-G",
            "kc",
            "grouped",
            "-e",
            "-q",
            "-f",
            "%k:%s\\n",
            "-X",
            "auto.offset.reset=earliest",
            "-X",
            "enable.auto.commit=true",
            "-X",
            "auto.commit.interval.ms=100",
        ]));
        let _ = expect_any;
        out.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let mut first = group(true);
    first.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(first, expected, "the group read every record once");
    // Its offsets were committed as it closed: the group's lag is nothing.
    let described = run_ok(node.node.cli(common::Via::Tcp).args(["group", "describe", "kc", "--json"]));
    let v: serde_json::Value = serde_json::from_str(described.trim()).unwrap();
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4, "{v}");
    assert!(parts.iter().all(|p| p["lag"] == 0), "{v}");
    // A second run of the group starts where the first committed: nothing is left.
    assert!(group(false).is_empty());
}

#[test]
fn confluent_kafka_producer_consumer_groups_and_admin() {
    let node = KafkaNode::start(2, &[]);
    run_ok(python().arg(script("confluent_test.py")).arg(&node.bootstrap));
}

#[test]
fn kafkajs_produces_consumes_in_a_group_and_administers() {
    let node = KafkaNode::start(2, &[]);
    run_ok(
        nodejs()
            .args(["--test", "--test-reporter=spec"])
            .arg(script("kafkajs.test.js"))
            .env("KAFKA_BOOTSTRAP", &node.bootstrap),
    );
}

#[test]
fn kafka_python_elects_and_describes_and_moves_log_dirs() {
    let node = KafkaNode::start(2, &[]);
    run_ok(python().arg(script("admin_cluster_test.py")).arg(&node.bootstrap));
}

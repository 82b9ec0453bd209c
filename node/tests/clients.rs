//! The SDK and the CLI when the node goes away or is given input the protocol cannot carry: every
//! record is answered within the delivery timeout, the CLI exits with an error in seconds, an
//! oversize field is refused rather than panicked on, and errors say each thing once.

mod common;

use common::{Node, Via, runtime};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use weir_net::client::{
    Admin, ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek,
};
use weir_net::{ErrorCode, TopicConfig};

/// Generous bound on anything that must end "in seconds"; the settings under test are ~2-5 s.
const PROMPTLY: Duration = Duration::from_secs(15);

fn record(topic: &str, i: u32) -> ProducerRecord {
    ProducerRecord { topic: topic.into(), value: Some(format!("v{i}").into_bytes()), ..Default::default() }
}

#[test]
fn a_producer_fails_its_records_with_delivery_timeout_when_the_node_is_gone_over_quic() {
    records_fail_within_the_delivery_timeout(Via::Quic);
}

#[test]
fn a_producer_fails_its_records_with_delivery_timeout_when_the_node_is_gone_over_tcp() {
    records_fail_within_the_delivery_timeout(Via::Tcp);
}

fn records_fail_within_the_delivery_timeout(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    let target = node.target(via);
    runtime().block_on(async {
        Admin::connect(&target).await.unwrap().create_topic("t", 1, TopicConfig::default()).await.unwrap();
        // Retries without end: only the delivery timeout can end the attempts.
        let config = ProducerConfig {
            delivery_timeout_ms: 2_000,
            request_timeout_ms: 1_000,
            retries: u32::MAX,
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(&target, config).await.unwrap();
        producer.send(record("t", 0)).await.unwrap();
        node.kill();
        let start = Instant::now();
        let mut acks = Vec::new();
        for i in 1..100 {
            acks.push(producer.enqueue(record("t", i)).await.unwrap());
        }
        for ack in acks {
            // A batch sent on the connection before the client learned it was closed may have
            // been written, as far as the client can tell: it says so around the timeout.
            let e = match ack.await.unwrap_err() {
                ClientError::MaybeWritten { cause } => *cause,
                e => e,
            };
            assert!(
                matches!(e, ClientError::DeliveryTimeout { elapsed_ms, delivery_timeout_ms: 2_000 } if elapsed_ms >= 2_000),
                "{e}"
            );
        }
        assert!(start.elapsed() < PROMPTLY, "the records failed only after {:?}", start.elapsed());
    });
}

/// Waits for `child` to exit, failing the test if it has not after `PROMPTLY`.
fn exit_within(child: &mut Child) -> (ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, start.elapsed());
        }
        if start.elapsed() > PROMPTLY {
            let _ = child.kill();
            panic!("still running {PROMPTLY:?} after the node was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

/// Waits until the topic's partition 0 holds `count` records (written by another process).
fn wait_for_records(node: &Node, topic: &str, count: u64) {
    let start = Instant::now();
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        while admin.describe_topic(topic).await.unwrap().partitions[0].log_end < count {
            assert!(start.elapsed() < PROMPTLY, "the CLI did not produce {count} records");
            tokio_rt::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn the_cli_producer_exits_with_an_error_soon_after_the_node_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    let out = node.cli(Via::Tcp).args(["topic", "create", "t", "--partitions", "1"]).output().unwrap();
    assert!(out.status.success());
    let mut produce = node
        .cli(Via::Quic)
        .args(["produce", "t", "--delivery-timeout-ms", "2000"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = produce.stdin.take().unwrap();
    stdin.write_all(b"a\nb\nc\n").unwrap();
    wait_for_records(&node, "t", 3);
    node.kill();
    // Finite input that cannot be delivered any more.
    // (The CLI may stop reading at its first failure, before all of it is written.)
    for i in 0..1000 {
        let _ = writeln!(stdin, "line {i}");
    }
    drop(stdin);
    let (status, took) = exit_within(&mut produce);
    let stderr = stderr_of(&mut produce);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("delivery timeout of 2000 ms"), "{stderr}");
    // The three records are in the log before the kill, but their acknowledgements may still
    // have been on the way: at most those three are reported acknowledged.
    let acked = stderr.lines().find_map(|l| l.strip_suffix(" records acknowledged")?.parse::<u64>().ok());
    assert!(acked.is_some_and(|n| n <= 3), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(took < PROMPTLY, "{took:?}");
}

#[test]
fn the_cli_consumer_exits_with_an_error_soon_after_the_node_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    let out = node.cli(Via::Tcp).args(["topic", "create", "t", "--partitions", "1"]).output().unwrap();
    assert!(out.status.success());
    let mut produce = node.cli(Via::Tcp).args(["produce", "t"]).stdin(Stdio::piped()).spawn().unwrap();
    produce.stdin.take().unwrap().write_all(b"first\n").unwrap();
    assert!(produce.wait().unwrap().success());
    let mut consume = node
        .cli(Via::Quic)
        .args(["consume", "t", "--from-beginning"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The record read: the consumer is connected and long-polling for more.
    let mut line = String::new();
    BufReader::new(consume.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    node.kill();
    let (status, took) = exit_within(&mut consume);
    let stderr = stderr_of(&mut consume);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("QUIC idle timeout"), "{stderr}");
    assert!(took < PROMPTLY, "{took:?}");
}

#[test]
fn the_cli_refuses_a_topic_name_too_long_for_the_protocol_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    let long = "t".repeat(70_000);
    for via in [Via::Tcp, Via::Quic] {
        let mut produce = node
            .cli(via)
            .args(["produce", &long])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // (The CLI may have failed and exited before reading it.)
        let _ = produce.stdin.take().unwrap().write_all(b"x\ny\n");
        let out = produce.wait_with_output().unwrap();
        let consume = node.cli(via).args(["consume", &long, "--count", "1"]).output().unwrap();
        let create = node.cli(via).args(["topic", "create", &long, "--partitions", "1"]).output().unwrap();
        for out in [out, consume, create] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(
                stderr.contains("topic of 70000 bytes is longer than the protocol allows (65535 bytes)"),
                "{stderr}"
            );
        }
    }
}

#[test]
fn a_name_that_fits_the_request_but_not_the_answer_is_answered() {
    // The node's answer quotes the name, and so is longer than a message can be: it is cut to
    // fit, not panicked on.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    runtime().block_on(async {
        let target = node.target(Via::Tcp);
        let config = ConsumerConfig { shard_aware: false, ..ConsumerConfig::default() };
        let mut consumer = Consumer::connect(&target, config).await.unwrap();
        // ListOffsets of a topic that is not there: "no topic \"ttt…\"".
        let e = consumer.assign(&"t".repeat(65_530), 0, Seek::Earliest).await.unwrap_err();
        assert!(matches!(&e, ClientError::Server { code: ErrorCode::UnknownTopic, message } if message.len() <= 65_535), "{e}");
        Admin::connect(&target).await.unwrap().create_topic("still-served", 1, TopicConfig::default()).await.unwrap();
    });
}

#[test]
fn the_cli_says_each_thing_of_an_error_once() {
    // A batch larger than the node takes is refused, not retried: its error reaches the CLI as
    // the node gave it.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), 1, Node::free_port(1), &[("WEIR_BATCH_BYTES_MAX", "4096")]);
    let out = node.cli(Via::Tcp).args(["topic", "create", "t", "--partitions", "1"]).output().unwrap();
    assert!(out.status.success());
    let mut produce = node
        .cli(Via::Tcp)
        .args(["produce", "t"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = format!("{}\n", "x".repeat(20_000));
    produce.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
    let out = produce.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("BatchTooLarge").count(), 1, "{stderr}");
    assert!(stderr.contains("weir: BatchTooLarge: "), "{stderr}");
}

#[test]
fn the_produce_help_says_delivery_is_at_least_once() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_weir")).args(["produce", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("at least once"), "{help}");
    assert!(help.contains("--max-in-flight 1 keeps each partition's order"), "{help}");
    assert!(help.contains("--delivery-timeout-ms"), "{help}");
}

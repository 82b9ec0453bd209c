//! What a single node says of the cluster it is: Metadata version 2 (node 0 leads every
//! partition), `weir topic create|describe` with replication settings, `weir cluster status`,
//! acks=all, and clients given a bootstrap list whose first address is dead.

mod common;

use common::{Node, Via, runtime};
use std::process::Command;
use weir_net::api::Request;
use weir_net::client::connection::Connection;
use weir_net::client::{
    Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek, Target,
};
use weir_net::{Acks, ErrorCode, Response, TopicConfig};

/// A TCP address nothing listens on: bound, then released.
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn metadata_names_node_0_as_every_partitions_leader() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    runtime().block_on(async {
        let target = node.target(Via::Tcp);
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_replicated_topic("m", 4, 1, Some(1), TopicConfig::default()).await.unwrap();
        // The default acks is all: a single node answers it as acks=leader.
        assert_eq!(ProducerConfig::default().acks, Acks::All);
        let producer = Producer::connect(&target, ProducerConfig::default()).await.unwrap();
        for i in 0..10u32 {
            let r = ProducerRecord {
                topic: "m".into(),
                partition: Some(i % 2),
                value: Some(vec![1]),
                ..Default::default()
            };
            producer.send(r).await.unwrap();
        }
        producer.close().await.unwrap();
        let mut conn = Connection::connect(&target).await.unwrap();
        let frame = conn.call(&Request::Metadata { topics: vec!["m".into()] }).await.unwrap();
        let Response::Metadata { shards, nodes, topics } = frame.response().unwrap() else {
            panic!("not metadata")
        };
        let [me] = &nodes[..] else { panic!("one node: {nodes:?}") };
        assert_eq!((me.node_id, me.port, &me.shards), (0, node.port, &shards));
        for p in &topics[0].partitions {
            let r = p.replication.as_ref().expect("version 2 carries replication");
            assert_eq!((r.leader, &r.replicas, &r.isr), (Some(0), &vec![0], &vec![0]));
            assert_eq!(r.leader_shard, p.shard);
            assert_eq!(r.high_watermark, if p.partition < 2 { 5 } else { 0 }, "{p:?}");
        }
        // Replication beyond one node is refused, saying why; so is a minimum above the factor.
        let e = admin.create_replicated_topic("r3", 1, 3, None, TopicConfig::default()).await.unwrap_err();
        assert!(e.to_string().contains("replication factor 3 exceeds the 1 node of this cluster"), "{e}");
        // The SDK refuses it before sending; the node refuses it too when it comes.
        let e = admin.create_replicated_topic("m2", 1, 1, Some(2), TopicConfig::default()).await.unwrap_err();
        assert!(matches!(e, weir_net::client::ClientError::MinInsyncAboveReplication { .. }), "{e}");
        let req = Request::CreateTopic {
            name: "m2".into(),
            partitions: 1,
            config: TopicConfig::default(),
            replication_factor: 1,
            min_insync_replicas: Some(2),
        };
        let frame = conn.call(&req).await.unwrap();
        assert!(
            matches!(
                frame.response().unwrap(),
                Response::CreateTopic { error: ErrorCode::InvalidArgument, .. }
            ),
            "the node accepted it"
        );
        assert_eq!(admin.list_topics().await.unwrap().len(), 1, "nothing was created");
    });
}

#[test]
fn describe_and_cluster_status_speak_in_human_units_and_stable_json() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    run(node.cli(Via::Tcp).args([
        "topic",
        "create",
        "d",
        "--partitions",
        "2",
        "--replication-factor",
        "1",
        "--min-insync-replicas",
        "1",
        "--retention-ms",
        "604800000",
    ]));
    let out = node
        .cli(Via::Tcp)
        .args(["topic", "create", "d3", "--partitions", "1", "--replication-factor", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replication factor 3 exceeds the 1 node of this cluster"), "{err}");
    // 65535 is "none" on the wire: it once created a topic with the default instead.
    let out = node
        .cli(Via::Tcp)
        .args(["topic", "create", "m", "--partitions", "1", "--min-insync-replicas", "65535"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("min_insync_replicas 65535 is above the replication factor 1"), "{err}");
    let listed = run(node.cli(Via::Tcp).args(["topic", "list", "--json"]));
    assert!(!listed.contains("\"m\""), "{listed}");
    let help = run(node.cli(Via::Tcp).args(["topic", "describe", "--help"]));
    assert!(help.contains("`high_watermark`") && help.contains("`log_end`"), "{help}");
    let mut produce = node
        .cli(Via::Tcp)
        .args(["produce", "d", "--partition", "1"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = produce.stdin.take().unwrap();
        writeln!(stdin, "a\nb\nc").unwrap();
    }
    assert!(produce.wait().unwrap().success());

    let table = run(node.cli(Via::Tcp).args(["topic", "describe", "d"]));
    assert!(table.contains("retention 7d"), "{table}");
    assert!(table.contains("retention.bytes unlimited"), "{table}");
    assert!(!table.contains("Some("), "no debug output: {table}");
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "PARTITION",
            "LEADER",
            "REPLICAS",
            "ISR",
            "SHARD",
            "LOG_START",
            "HIGH_WATERMARK",
            "LOG_END",
            "STATE"
        ]
    );
    let row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(row, ["1", "0", "0", "0", "0", "0", "3", "3", "online"], "{table}");

    let json: serde_json::Value =
        serde_json::from_str(&run(node.cli(Via::Tcp).args(["topic", "describe", "d", "--json"]))).unwrap();
    assert_eq!(json["retention_ms"], 604_800_000u64);
    assert_eq!(json["retention_bytes"], serde_json::Value::Null);
    let p = &json["partitions"][1];
    assert_eq!(
        (&p["leader"], &p["replicas"], &p["isr"]),
        (&0.into(), &serde_json::json!([0]), &serde_json::json!([0]))
    );
    assert_eq!((&p["high_watermark"], &p["log_end"], &p["state"]), (&3.into(), &3.into(), &"online".into()));

    let status = run(node.cli(Via::Tcp).args(["cluster", "status"]));
    let row: Vec<&str> = status.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["0", &node.addr(), "up", "yes", "voter"], "{status}");
    assert!(status.contains("under-replicated partitions: 0"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&run(node.cli(Via::Quic).args(["cluster", "status", "--json"]))).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "nodes": [{"node_id": 0, "host": "127.0.0.1", "port": node.port, "up": true, "controller": true, "role": "voter"}],
            "under_replicated_count": 0,
            "under_replicated": [],
        })
    );

    // --server takes a bootstrap list; a dead first address is passed over.
    let list = format!("{},{}", dead_addr(), node.addr());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    let listed = run(cmd.args(["--server", &list, "--transport", "tcp", "topic", "list"]));
    assert!(listed.contains('d'), "{listed}");
}

#[test]
fn clients_given_a_bootstrap_list_with_a_dead_first_address_work() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    runtime().block_on(async {
        let target = Target::tcp(format!("{},{}", dead_addr(), node.addr()));
        Admin::connect(&target).await.unwrap().create_topic("b", 2, TopicConfig::default()).await.unwrap();
        let producer = Producer::connect(&target, ProducerConfig::default()).await.unwrap();
        for i in 0..20u32 {
            let r = ProducerRecord {
                topic: "b".into(),
                key: Some(i.to_le_bytes().to_vec()),
                value: Some(vec![7]),
                ..Default::default()
            };
            producer.send(r).await.unwrap();
        }
        producer.close().await.unwrap();
        let mut consumer = Consumer::connect(&target, ConsumerConfig::default()).await.unwrap();
        for p in 0..2 {
            consumer.assign("b", p, Seek::Earliest).await.unwrap();
        }
        let mut read = 0;
        while read < 20 {
            let records = consumer.poll(2000).await.unwrap();
            assert!(!records.is_empty(), "stalled after {read}");
            read += records.len();
        }
    });
}

//! Clusters of real `weir serve` processes on 127.0.0.1-3: membership and the control plane,
//! replication with acks=all, and failover when a leader's node is killed (SIGKILL).

mod common;

use common::cluster::TestCluster;
use common::runtime;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir_net::TopicConfig;
use weir_net::client::{
    Admin, ClusterStatus, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek, Target,
};

/// How long a cluster may take to reach a state a test waits for.
const SETTLE_MS: u64 = 30_000;

/// Asks the cluster (any node of the bootstrap list) for its status until `done` holds.
async fn wait_status(target: &Target, what: &str, done: impl Fn(&ClusterStatus) -> bool) -> ClusterStatus {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_MS);
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(mut admin) = Admin::connect(target).await {
            match admin.cluster_status().await {
                Ok(s) if done(&s) => return s,
                Ok(s) => last = Some(format!("{s:?}")),
                Err(e) => last = Some(e.to_string()),
            }
        }
        // Polls a condition with a deadline: the pause only spaces the questions.
        tokio_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cluster never reached: {what}; last: {last:?}");
}

/// `count` nodes registered (their client port known) and up, and a controller.
fn all_up(count: usize) -> impl Fn(&ClusterStatus) -> bool {
    move |s| {
        s.nodes.len() == count
            && s.nodes.iter().all(|n| n.up && n.port != 0)
            && s.nodes.iter().any(|n| n.controller)
    }
}

/// Asks for partition 0 of `topic` until its leader satisfies `done`; returns the leader.
async fn wait_leader(target: &Target, topic: &str, done: impl Fn(Option<u32>) -> bool) -> u32 {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_MS);
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(mut admin) = Admin::connect(target).await {
            match admin.describe_topic(topic).await {
                Ok(t) => {
                    let leader = t.partitions[0].replication.as_ref().and_then(|r| r.leader);
                    if done(leader) {
                        return leader.unwrap_or(u32::MAX);
                    }
                    last = Some(format!("{t:?}"));
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        tokio_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("partition 0 of {topic} never got the leader wanted; last: {last:?}");
}

fn record(topic: &str, value: u64) -> ProducerRecord {
    ProducerRecord {
        topic: topic.into(),
        partition: Some(0),
        value: Some(value.to_le_bytes().to_vec()),
        ..Default::default()
    }
}

/// Every record of partition 0 of `topic` from the start, up to `end` (the high watermark).
async fn read_all(target: &Target, topic: &str, count_min: usize) -> Vec<u64> {
    let mut consumer = Consumer::connect(target, ConsumerConfig::default()).await.unwrap();
    consumer.assign(topic, 0, Seek::Earliest).await.unwrap();
    let deadline = Instant::now() + Duration::from_millis(SETTLE_MS);
    let mut values = Vec::new();
    while values.len() < count_min && Instant::now() < deadline {
        for r in consumer.poll(500).await.unwrap() {
            values.push(u64::from_le_bytes(r.value.unwrap().try_into().unwrap()));
        }
    }
    values
}

#[test]
fn three_nodes_replicate_acks_all_and_a_killed_leader_loses_nothing() {
    let mut cluster = TestCluster::start(3, 1, &[]);
    let target = Target::tcp(&cluster.bootstrap());
    runtime().block_on(async {
        wait_status(&target, "three nodes up", all_up(3)).await;
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_replicated_topic("t", 1, 3, Some(2), TopicConfig::default()).await.unwrap();
        let described = admin.describe_topic("t").await.unwrap();
        let r = described.partitions[0].replication.clone().unwrap();
        assert_eq!(r.replicas.len(), 3, "{r:?}");
        let producer = Producer::connect(&target, ProducerConfig::default()).await.unwrap();
        let mut acked = BTreeMap::new();
        for i in 0..50u64 {
            acked.insert(i, producer.send(record("t", i)).await.unwrap());
        }
        let leader = r.leader.expect("a leader");
        drop(admin);
        cluster.kill(leader);
        let moved = wait_leader(&target, "t", |l| l.is_some_and(|l| l != leader)).await;
        eprintln!("leader {leader} killed: node {moved} leads");
        for i in 50..100u64 {
            acked.insert(i, producer.send(record("t", i)).await.unwrap());
        }
        producer.close().await.unwrap();
        cluster.start_node(leader);
        wait_status(&target, "three nodes up again", all_up(3)).await;
        let values = read_all(&target, "t", 100).await;
        for (value, offset) in &acked {
            assert_eq!(values.get(*offset as usize), Some(value), "acknowledged record {value} at {offset}");
        }
    });
}

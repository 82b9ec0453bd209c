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
use weir_net::cluster::PartitionReplication;

/// How long a cluster may take to reach a state a test waits for.
const SETTLE_MS: u64 = 30_000;

/// Asks the cluster (any node of the bootstrap list, through a new connection each time) with
/// `ask` until `done` accepts the answer; panics after [`SETTLE_MS`], naming `what` and the last
/// answer or error. The pause between questions only spaces them.
async fn poll<T, F>(target: &Target, what: &str, ask: impl Fn(Admin) -> F, done: impl Fn(&T) -> bool) -> T
where
    T: std::fmt::Debug,
    F: std::future::Future<Output = Result<T, weir_net::client::ClientError>>,
{
    let deadline = Instant::now() + Duration::from_millis(SETTLE_MS);
    let mut last = None;
    while Instant::now() < deadline {
        let answer = match Admin::connect(target).await {
            Ok(admin) => ask(admin).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(answer) if done(&answer) => return answer,
            Ok(answer) => last = Some(format!("{answer:?}")),
            Err(e) => last = Some(e.to_string()),
        }
        tokio_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never reached: {what}; last: {last:?}");
}

/// Asks the cluster for its status until `done` holds.
async fn wait_status(target: &Target, what: &str, done: impl Fn(&ClusterStatus) -> bool) -> ClusterStatus {
    poll(target, what, |mut admin| async move { admin.cluster_status().await }, done).await
}

/// What the cluster says of partition 0 of `topic`: leader, replicas, ISR.
async fn partition_0(
    mut admin: Admin,
    topic: String,
) -> Result<Option<PartitionReplication>, weir_net::client::ClientError> {
    Ok(admin.describe_topic(&topic).await?.partitions[0].replication.clone())
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
    let what = format!("partition 0 of {topic} with the leader wanted");
    let ask = |admin| partition_0(admin, topic.to_owned());
    let r = poll(target, &what, ask, |r| done(r.as_ref().and_then(|r| r.leader))).await;
    r.and_then(|r| r.leader).unwrap_or(u32::MAX)
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
    let target = Target::tcp(cluster.bootstrap());
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
            match producer.send(record("t", i)).await {
                Ok(offset) => acked.insert(i, offset),
                Err(e) => {
                    let t = Admin::connect(&target).await.unwrap().describe_topic("t").await;
                    panic!("record {i} after the failover: {e}; the partition: {t:?}");
                }
            };
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

/// Producers of the failover test, each with one produce in flight at a time.
const PRODUCERS: u64 = 3;

/// Rounds of the failover test: `WEIR_TEST_FAILOVER_ROUNDS` (the note's run uses 100), else 10.
fn failover_rounds() -> u32 {
    std::env::var("WEIR_TEST_FAILOVER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10)
}

/// A producer's records: `(producer << 32) | seq`, sent with acks=all one after another
/// until `stop`; returns each acknowledged value with its offset, and how many failed.
async fn produce_until(
    target: Target,
    topic: &'static str,
    producer_id: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acks: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> (Vec<(u64, u64)>, u64) {
    let config = ProducerConfig { linger_ms: 1, max_in_flight: 1, ..ProducerConfig::default() };
    let producer = Producer::connect(&target, config).await.unwrap();
    let (mut acked, mut failed) = (Vec::new(), 0);
    let mut seq = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let value = (producer_id << 32) | seq;
        match producer.send(record(topic, value)).await {
            Ok(offset) => {
                acked.push((value, offset));
                acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Err(e) => {
                failed += 1;
                eprintln!("producer {producer_id}: record {seq} failed: {e}");
            }
        }
        seq += 1;
    }
    producer.close().await.unwrap();
    (acked, failed)
}

/// Several idempotent producers with acks=all while the partition leader's node is killed
/// (SIGKILL) and restarted, round after round: after the last restart every acknowledged record
/// is at its acknowledged offset, every record is stored once (a retry after a lost answer is
/// recognised by the new leader), and each producer's records are in the order it sent them.
#[test]
fn acknowledged_records_survive_leaders_killed_round_after_round() {
    let env = [("WEIR_SESSION_TIMEOUT_MS", "1000"), ("WEIR_HEARTBEAT_INTERVAL_MS", "100")];
    let mut cluster = TestCluster::start(3, 1, &env);
    let target = Target::tcp(cluster.bootstrap());
    let rt = runtime();
    rt.block_on(async {
        wait_status(&target, "three nodes up", all_up(3)).await;
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_replicated_topic("rounds", 1, 3, Some(2), TopicConfig::default()).await.unwrap();
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| rt.spawn(produce_until(target.clone(), "rounds", id, stop.clone(), acks.clone())))
        .collect();
    let rounds = failover_rounds();
    let mut failovers = Vec::new();
    for round in 0..rounds {
        rt.block_on(async {
            wait_isr(target.clone(), "rounds", 3).await;
            let leader = wait_leader(&target, "rounds", |l| l.is_some()).await;
            let status = wait_status(&target, "a controller", |s| s.nodes.iter().any(|n| n.controller)).await;
            let controller = status.nodes.iter().any(|n| n.controller && n.node_id == leader);
            let before = acks.load(std::sync::atomic::Ordering::SeqCst);
            let killed_at = Instant::now();
            cluster.kill(leader);
            // Failover: from the SIGKILL to the first acks=all produce acknowledged after it by
            // another leader. Each producer has one produce in flight: the killed leader may
            // have answered those (PRODUCERS of them) just before it died.
            let after = before + PRODUCERS;
            wait_for(|| acks.load(std::sync::atomic::Ordering::SeqCst) > after, "a produce after the kill")
                .await;
            let failover = killed_at.elapsed();
            failovers.push((failover, controller));
            let what = if controller { "the controller's node" } else { "node" };
            eprintln!("round {round}: {what} {leader} killed; a produce succeeded {failover:?} later");
            cluster.start_node(leader);
            // Back in the cluster (it answers for its replica only once it joined): the next
            // round's kill is of one leader, not of one while another node is still joining.
            own_replica(&cluster, leader, "rounds", |_| true).await;
        });
    }
    report_failovers(failovers);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let results: Vec<_> = rt.block_on(async {
        let mut all = Vec::new();
        for p in producers {
            all.push(p.await.unwrap());
        }
        all
    });
    rt.block_on(async {
        wait_status(&target, "three nodes up at the end", all_up(3)).await;
        let acked: Vec<(u64, u64)> = results.iter().flat_map(|(a, _)| a.iter().copied()).collect();
        let failed: u64 = results.iter().map(|(_, f)| f).sum();
        let end = acked.iter().map(|(_, o)| o + 1).max().unwrap_or(0) as usize;
        let values = read_all(&target, "rounds", end).await;
        for (value, offset) in &acked {
            assert_eq!(values.get(*offset as usize), Some(value), "acknowledged record {value:#x} at offset {offset}");
        }
        let mut seen = std::collections::HashMap::new();
        for v in &values {
            *seen.entry(*v).or_insert(0u32) += 1;
        }
        let duplicates: u32 = seen.values().map(|n| n - 1).sum();
        eprintln!(
            "{rounds} rounds: {} records acknowledged and checked, {failed} failed, {} stored, {duplicates} stored twice or more",
            acked.len(),
            values.len()
        );
        assert!(acked.len() as u64 > u64::from(rounds), "producers made progress through the rounds");
        // The producers are idempotent (the default): retries through the failovers stored
        // every record once, and each producer's records in the order it sent them.
        assert_eq!(duplicates, 0, "records stored twice");
        for producer in 0..PRODUCERS {
            let mine: Vec<u64> = values.iter().copied().filter(|v| v >> 32 == producer).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "producer {producer}'s records out of order");
        }
    });
}

/// Prints the failover times (SIGKILL to the first acknowledged produce): all, and those where
/// the controller's node was killed too.
fn report_failovers(failovers: Vec<(Duration, bool)>) {
    let summary = |mut times: Vec<Duration>| match times.len() {
        0 => "none".to_owned(),
        n => {
            times.sort();
            let p90 = times[(n * 9 / 10).min(n - 1)];
            format!("{n} rounds, median {:?}, p90 {p90:?}, max {:?}", times[n / 2], times[n - 1])
        }
    };
    let all = failovers.iter().map(|(t, _)| *t).collect();
    let controller = failovers.iter().filter(|(_, c)| *c).map(|(t, _)| *t).collect();
    eprintln!("failover (SIGKILL to the first acknowledged produce): {}", summary(all));
    eprintln!("  of which the controller's node: {}", summary(controller));
}

/// Waits until `done` holds, checking every 10 ms, for [`SETTLE_MS`] at most.
async fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_millis(SETTLE_MS);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until partition 0 of `topic` has `count` in-sync replicas.
async fn wait_isr(target: Target, topic: &str, count: usize) {
    let what = format!("partition 0 of {topic} with {count} in-sync replicas");
    let ask = |admin| partition_0(admin, topic.to_owned());
    poll(&target, &what, ask, |r| r.as_ref().is_some_and(|r| r.isr.len() == count)).await;
}

/// A follower whose data dir is deleted while it is down comes back empty, rejoins, and rebuilds
/// its replica from the leader: it is in the ISR again and holds what the leader holds.
#[test]
fn a_wiped_follower_rebuilds_its_replica_from_the_leader() {
    let mut cluster = TestCluster::start(3, 1, &[]);
    let target = Target::tcp(cluster.bootstrap());
    runtime().block_on(async {
        wait_status(&target, "three nodes up", all_up(3)).await;
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_replicated_topic("w", 1, 3, Some(2), TopicConfig::default()).await.unwrap();
        let producer = Producer::connect(&target, ProducerConfig::default()).await.unwrap();
        for i in 0..200u64 {
            producer.send(record("w", i)).await.unwrap();
        }
        // The highest-numbered follower: never the node that initialises the cluster's Raft.
        let leader = wait_leader(&target, "w", |l| l.is_some()).await;
        let wiped = if leader == 3 { 2 } else { 3 };
        cluster.kill(wiped);
        std::fs::remove_dir_all(cluster.data_dir(wiped)).unwrap();
        for i in 200..300u64 {
            producer.send(record("w", i)).await.unwrap();
        }
        producer.close().await.unwrap();
        cluster.start_node(wiped);
        wait_isr(target.clone(), "w", 3).await;
        // The wiped node's own view of its replica: the leader's log, whole.
        let own = Target::tcp(format!("{}:{}", TestCluster::host(wiped), cluster.port));
        let mut admin = Admin::connect(&own).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(SETTLE_MS);
        loop {
            let t = admin.describe_topic("w").await.unwrap();
            let r = t.partitions[0].replication.clone().unwrap();
            if r.log_end == 300 {
                break;
            }
            assert!(Instant::now() < deadline, "the wiped replica never caught up: {r:?}");
            tokio_rt::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// The controller's node is killed: another node becomes the controller, the metadata is all
/// there, and topics can still be created; the old controller's node comes back as a member.
#[test]
fn a_killed_controller_is_replaced_and_the_metadata_survives() {
    let mut cluster = TestCluster::start(3, 1, &[]);
    let target = Target::tcp(cluster.bootstrap());
    runtime().block_on(async {
        let status = wait_status(&target, "three nodes up", all_up(3)).await;
        let controller = status.nodes.iter().find(|n| n.controller).unwrap().node_id;
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_replicated_topic("before", 3, 3, None, TopicConfig::default()).await.unwrap();
        drop(admin);
        cluster.kill(controller);
        let others_up = move |s: &ClusterStatus| {
            s.nodes.iter().any(|n| n.controller && n.node_id != controller)
                && s.nodes.iter().filter(|n| n.node_id != controller).all(|n| n.up)
        };
        wait_status(&target, "a new controller", others_up).await;
        let mut admin = Admin::connect(&target).await.unwrap();
        let before = admin.describe_topic("before").await.unwrap();
        assert_eq!(before.partitions.len(), 3, "{before:?}");
        admin.create_replicated_topic("after", 2, 2, None, TopicConfig::default()).await.unwrap();
        drop(admin);
        cluster.start_node(controller);
        wait_status(&target, "the old controller's node back", all_up(3)).await;
        // Every node, the restarted one included once it has joined, lists both topics.
        for id in 1..=3 {
            let node = Target::tcp(format!("{}:{}", TestCluster::host(id), cluster.port));
            let deadline = Instant::now() + Duration::from_millis(SETTLE_MS);
            let listed = loop {
                match Admin::connect(&node).await.unwrap().list_topics().await {
                    Ok(listed) => break listed,
                    Err(e) => assert!(Instant::now() < deadline, "node {id} never answered: {e}"),
                }
                tokio_rt::time::sleep(Duration::from_millis(50)).await;
            };
            let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["after", "before"], "node {id}");
        }
    });
}

/// Once three nodes are up: `topic` with one partition on all three (min in-sync 2) and records
/// `0..count` in it. Returns the producer, each record's offset, and the partition's leader.
async fn replicated_with_records(
    target: &Target,
    topic: &str,
    count: u64,
) -> (Producer, BTreeMap<u64, u64>, u32) {
    wait_status(target, "three nodes up", all_up(3)).await;
    let mut admin = Admin::connect(target).await.unwrap();
    admin.create_replicated_topic(topic, 1, 3, Some(2), TopicConfig::default()).await.unwrap();
    let producer = Producer::connect(target, ProducerConfig::default()).await.unwrap();
    let mut acked = BTreeMap::new();
    for i in 0..count {
        acked.insert(i, producer.send(record(topic, i)).await.unwrap());
    }
    let leader = wait_leader(target, topic, |l| l.is_some()).await;
    (producer, acked, leader)
}

/// The partition leader's node is cut off (SIGSTOP: nothing reaches it, it answers nothing):
/// it leaves the ISR, a new leader takes acks=all produces, and an acks=all produce sent to
/// the old leader while it was cut off never succeeds. Healed (SIGCONT), it catches up and
/// rejoins the ISR, and every acknowledged record is there.
#[test]
fn a_cut_off_leader_never_acknowledges_and_rejoins_when_healed() {
    use weir_net::client::connection::Connection;
    use weir_net::{Acks, ErrorCode, Request, Response};
    let cluster = TestCluster::start(
        3,
        1,
        &[("WEIR_SESSION_TIMEOUT_MS", "1000"), ("WEIR_HEARTBEAT_INTERVAL_MS", "100")],
    );
    // Over QUIC: a node that stops answering without closing its connections is noticed by
    // QUIC's idle timeout (a TCP connection to a paused process stays open).
    let target = Target::quic(cluster.bootstrap(), &weir_net::client::Trust::Insecure).unwrap();
    runtime().block_on(async {
        let (producer, mut acked, leader) = replicated_with_records(&target, "cut", 20).await;
        let old = Target::tcp(format!("{}:{}", TestCluster::host(leader), cluster.port));
        let mut to_old = Connection::connect(&old).await.unwrap();
        let pid = cluster.nodes[&leader].child.id();
        common::signal(pid, "-STOP");
        // Sent while the node is cut off; it reads it only once healed.
        let batch = common::batch_of(&[b"to the cut-off leader"]);
        let request = Request::Produce {
            topic: "cut".into(),
            partition: 0,
            acks: Acks::All,
            timeout_ms: 3000,
            batches: &batch,
        };
        let pending = to_old.send(&request).await.unwrap();
        let moved = wait_leader(&target, "cut", |l| l.is_some_and(|l| l != leader)).await;
        for i in 20..40u64 {
            acked.insert(i, producer.send(record("cut", i)).await.unwrap());
        }
        let isr = Admin::connect(&target).await.unwrap().describe_topic("cut").await.unwrap();
        let isr = isr.partitions[0].replication.clone().unwrap().isr;
        assert!(!isr.contains(&leader), "the cut-off node left the ISR: {isr:?} (node {moved} leads)");
        common::signal(pid, "-CONT");
        // Refused (an error frame, or an error in the answer) or the connection ended: never
        // an acknowledgement.
        if let Ok(frame) = to_old.receive(pending).await {
            match frame.response() {
                Ok(Response::Produce { error, message, .. }) => {
                    assert_ne!(error, ErrorCode::None, "the cut-off leader acknowledged acks=all: {message}")
                }
                other => eprintln!("the cut-off leader's answer: {other:?}"),
            }
        }
        wait_isr(target.clone(), "cut", 3).await;
        producer.close().await.unwrap();
        let values = read_all(&target, "cut", 40).await;
        for (value, offset) in &acked {
            assert_eq!(values.get(*offset as usize), Some(value), "acknowledged record {value} at {offset}");
        }
    });
}

/// Sends an acks=all produce of `value` to partition 0 of `topic` on `to` and returns the error
/// it is answered with; panics if it is acknowledged.
async fn produce_refused(
    to: &mut weir_net::client::connection::Connection,
    topic: &str,
    value: u64,
) -> weir_net::ErrorCode {
    use weir_net::{Acks, ErrorCode, Request, Response};
    let batch = common::batch_of(&[&value.to_le_bytes()]);
    let request = Request::Produce {
        topic: topic.into(),
        partition: 0,
        acks: Acks::All,
        timeout_ms: 2000,
        batches: &batch,
    };
    let pending = to.send(&request).await.unwrap();
    let answer = to.receive(pending).await.and_then(|frame| match frame.response()? {
        Response::Produce { error, message, .. } => Ok((error, message)),
        other => panic!("not a produce answer: {other:?}"),
    });
    match answer {
        Ok((error, message)) => {
            assert_ne!(error, ErrorCode::None, "acks=all acknowledged by a leader cut off: {message}");
            error
        }
        Err(weir_net::client::ClientError::Server { code, .. }) => code,
        Err(e) => panic!("no answer from the leader cut off: {e}"),
    }
}

/// Asks node `id` itself (over TCP, at its own address) for its replica of partition 0 of
/// `topic` until `done` accepts it.
async fn own_replica(
    cluster: &TestCluster,
    id: u32,
    topic: &str,
    done: impl Fn(&PartitionReplication) -> bool,
) -> PartitionReplication {
    let own = Target::tcp(format!("{}:{}", cluster.own_host(id), cluster.port));
    let what = format!("node {id}'s replica of {topic}-0 as wanted");
    let ask = |admin| partition_0(admin, topic.to_owned());
    poll(&own, &what, ask, |r| r.as_ref().is_some_and(&done)).await.expect("accepted above")
}

/// The partition leader's node is cut off by the relay while it keeps running: no peer and no
/// client reaches it, and it reaches none. It leaves the ISR and another node takes acks=all
/// produces, while acks=all produces sent to it directly (a client on its side of the cut)
/// are refused, never acknowledged. Healed, it drops what it wrote alone, catches up and
/// rejoins the ISR, and every acknowledged record is there.
#[test]
fn a_leader_cut_off_by_the_relay_never_acknowledges_and_rejoins_when_healed() {
    use weir_net::client::connection::Connection;
    let env = [("WEIR_SESSION_TIMEOUT_MS", "1000"), ("WEIR_HEARTBEAT_INTERVAL_MS", "100")];
    let cluster = TestCluster::start_relayed(3, 1, &env);
    let relay = cluster.relay.as_ref().unwrap();
    let target = Target::quic(cluster.bootstrap(), &weir_net::client::Trust::Insecure).unwrap();
    // Written only by the cut-off leader: never acknowledged, so never kept.
    let alone = u64::MAX - 1;
    runtime().block_on(async {
        let (producer, mut acked, leader) = replicated_with_records(&target, "iso", 20).await;
        let preferred = partition_0(Admin::connect(&target).await.unwrap(), "iso".into()).await.unwrap();
        assert_eq!(
            preferred.map(|r| r.replicas[0]),
            Some(leader),
            "the first leader is the preferred replica"
        );
        let own: std::net::IpAddr = cluster.own_host(leader).parse().unwrap();
        let mut to_cut = Connection::connect(&Target::tcp(format!("{own}:{}", cluster.port))).await.unwrap();
        relay.cut(own);
        let refused = produce_refused(&mut to_cut, "iso", alone).await;
        eprintln!("the cut-off leader refused acks=all: {refused:?}");
        // It wrote the record to its own log (past the 20 acknowledged), alone.
        own_replica(&cluster, leader, "iso", |r| r.log_end == 21).await;
        let moved = wait_leader(&target, "iso", |l| l.is_some_and(|l| l != leader)).await;
        for i in 20..40u64 {
            acked.insert(i, producer.send(record("iso", i)).await.unwrap());
        }
        let isr =
            partition_0(Admin::connect(&target).await.unwrap(), "iso".into()).await.unwrap().unwrap().isr;
        assert!(!isr.contains(&leader), "the cut-off node left the ISR: {isr:?} (node {moved} leads)");
        // Still cut off, with the others moved on: it still acknowledges nothing.
        produce_refused(&mut to_cut, "iso", alone).await;
        relay.heal(own);
        // Asked of the node that led meanwhile: the healed node's own metadata may be the old.
        own_replica(&cluster, moved, "iso", |r| r.isr.len() == 3).await;
        producer.close().await.unwrap();
        // The healed node is the partition's preferred replica: back in the ISR, it leads
        // again, and what is read from here on is its log.
        let back = own_replica(&cluster, moved, "iso", |r| r.leader == Some(leader)).await;
        let values = read_all(&target, "iso", back.log_end as usize).await;
        for (value, offset) in &acked {
            assert_eq!(values.get(*offset as usize), Some(value), "acknowledged record {value} at {offset}");
        }
        assert!(!values.contains(&alone), "a record only the cut-off leader wrote was kept");
        let mine = own_replica(&cluster, leader, "iso", |r| r.log_end == back.log_end).await;
        eprintln!("node {leader} back in the ISR with the whole log: {mine:?}");
    });
}

/// Every byte of the files under node `id`'s partition directory of `topic`-0.
fn partition_bytes(cluster: &TestCluster, id: u32, topic: &str) -> Vec<u8> {
    let dir = cluster.data_dir(id).join("partitions").join(format!("{topic}-0"));
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A topic deleted and created again while one of its replicas' nodes was down: that node,
/// back, must not take the old topic's files for the new topic's log (their epochs and offsets
/// match the new ones by number); it discards them and copies the new log.
#[test]
fn a_topic_recreated_while_a_node_was_down_never_reads_the_old_files() {
    let mut cluster = TestCluster::start(3, 1, &[]);
    let target = Target::tcp(cluster.bootstrap());
    runtime().block_on(async {
        wait_status(&target, "three nodes up", all_up(3)).await;
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_replicated_topic("re", 1, 3, Some(2), TopicConfig::default()).await.unwrap();
        let send = |value: &'static [u8]| ProducerRecord {
            topic: "re".into(),
            partition: Some(0),
            value: Some(value.to_vec()),
            ..Default::default()
        };
        let producer = Producer::connect(&target, ProducerConfig::default()).await.unwrap();
        for _ in 0..10 {
            producer.send(send(b"record-of-the-old-topic")).await.unwrap();
        }
        producer.close().await.unwrap();
        wait_isr(target.clone(), "re", 3).await;
        let leader = wait_leader(&target, "re", |l| l.is_some()).await;
        let away = if leader == 3 { 2 } else { 3 };
        assert!(contains(&partition_bytes(&cluster, away, "re"), b"record-of-the-old-topic"));
        cluster.kill(away);
        drop(admin);
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.delete_topic("re").await.unwrap();
        admin.create_replicated_topic("re", 1, 3, Some(2), TopicConfig::default()).await.unwrap();
        let producer = Producer::connect(&target, ProducerConfig::default()).await.unwrap();
        for _ in 0..10 {
            producer.send(send(b"record-of-the-new-topic")).await.unwrap();
        }
        producer.close().await.unwrap();
        cluster.start_node(away);
        wait_isr(target.clone(), "re", 3).await;
        let bytes = partition_bytes(&cluster, away, "re");
        assert!(!contains(&bytes, b"record-of-the-old-topic"), "node {away} kept the deleted topic's log");
        assert!(contains(&bytes, b"record-of-the-new-topic"), "node {away} copied the new topic's log");
    });
}

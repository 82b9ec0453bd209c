//! Consumer groups with real processes: `weir consume --group` consumers on a 24-partition
//! topic join, are killed, stop and restart while records keep coming, and the group shares
//! the partitions among them. Every record is processed at least once; only the partitions a
//! killed consumer held are processed twice; assignments are balanced; lag reaches zero; a
//! static member restarted within its session takes its partitions back without a rebalance;
//! a member the group fenced cannot commit.

mod common;

use common::{Node, Via, runtime, signal};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_net::ErrorCode;
use weir_net::client::{
    Admin, ClientError, GroupConfig, GroupConsumer, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};
use weir_net::groups::GroupInfo;

const TOPIC: &str = "events";
const PARTITIONS: u32 = 24;
const GROUP: &str = "g";
const SESSION_MS: &str = "3000";
const DEADLINE: Duration = Duration::from_secs(60);

/// What each consumer process printed: (partition, offset) per consumer name, in order.
type Seen = Arc<Mutex<BTreeMap<String, Vec<(u32, u64)>>>>;

/// A `weir consume --group` process whose printed records go to `seen` under `name`.
fn consumer(node: &Node, name: &str, instance_id: Option<&str>, seen: &Seen) -> Child {
    let mut cmd = node.cli(Via::Tcp);
    cmd.args(["consume", TOPIC, "--group", GROUP, "--from-beginning", "--json"]);
    cmd.args(["--session-timeout-ms", SESSION_MS, "--commit-interval-ms", "200"]);
    if let Some(id) = instance_id {
        cmd.args(["--instance-id", id]);
    }
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn a consumer");
    let out = BufReader::new(child.stdout.take().unwrap());
    let (seen, name) = (seen.clone(), name.to_owned());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON record");
            let at = (v["partition"].as_u64().unwrap() as u32, v["offset"].as_u64().unwrap());
            seen.lock().unwrap().entry(name.clone()).or_default().push(at);
        }
    });
    child
}

/// Produces `per_partition` records to every partition; returns each partition's log end.
async fn produce(node: &Node, per_partition: u32) -> BTreeMap<u32, u64> {
    produce_to(node, PARTITIONS, per_partition).await
}

/// Produces `per_partition` records to each of `partitions` partitions.
async fn produce_to(node: &Node, partitions: u32, per_partition: u32) -> BTreeMap<u32, u64> {
    let producer = Producer::connect(&node.target(Via::Tcp), ProducerConfig::default()).await.unwrap();
    let mut acks = Vec::new();
    for i in 0..per_partition {
        for p in 0..partitions {
            let value = Some(format!("{p}/{i}").into_bytes());
            let record =
                ProducerRecord { topic: TOPIC.into(), partition: Some(p), value, ..Default::default() };
            acks.push((p, producer.enqueue(record).await.unwrap()));
        }
    }
    let mut ends = BTreeMap::new();
    for (p, ack) in acks {
        let offset = ack.await.expect("acknowledged");
        ends.insert(p, offset + 1);
    }
    producer.close().await.unwrap();
    ends
}

/// Waits until `done` holds, or fails at the deadline saying `what`.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < DEADLINE, "not within {DEADLINE:?}: {what}");
        tokio_rt::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// Whether every record below `ends` was printed by some consumer.
fn all_seen(seen: &Seen, ends: &BTreeMap<u32, u64>) -> bool {
    let got: BTreeSet<(u32, u64)> = seen.lock().unwrap().values().flatten().copied().collect();
    ends.iter().all(|(&p, &end)| (0..end).all(|o| got.contains(&(p, o))))
}

async fn describe(admin: &mut Admin) -> GroupInfo {
    admin.describe_group(GROUP).await.unwrap()
}

/// The group is stable with `members` members, each owning its fair share (24 / members,
/// give or take one) and every partition owned once.
fn balanced(info: &GroupInfo, members: usize) -> bool {
    let counts: Vec<usize> =
        info.members.iter().map(|m| m.assignment.iter().map(|a| a.partitions.len()).sum()).collect();
    let owned: BTreeSet<u32> =
        info.members.iter().flat_map(|m| m.assignment.iter().flat_map(|a| a.partitions.clone())).collect();
    info.state == "stable"
        && counts.len() == members
        && owned.len() == PARTITIONS as usize
        && counts.iter().sum::<usize>() == PARTITIONS as usize
        && counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1
}

/// Whether the group's committed offsets reached `ends`: lag zero everywhere.
async fn lag_zero(admin: &mut Admin, ends: &BTreeMap<u32, u64>) -> bool {
    let committed = admin.committed_offsets(GROUP, vec![]).await.unwrap();
    let at: BTreeMap<u32, u64> = committed.iter().filter_map(|c| Some((c.partition, c.offset?))).collect();
    ends.iter().all(|(p, end)| at.get(p) == Some(end))
}

#[test]
fn consumer_processes_share_a_topic_through_joins_kills_stops_and_a_static_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let seen: Seen = Arc::default();
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic(TOPIC, PARTITIONS, Default::default()).await.unwrap();
        let mut ends = produce(&node, 20).await;

        // One consumer takes every partition and reads everything.
        let a = consumer(&node, "a", None, &seen);
        until("a reads everything", async || all_seen(&seen, &ends)).await;

        // Two more join: the partitions spread evenly, and new records reach all three.
        let join = Instant::now();
        let mut b = consumer(&node, "b", None, &seen);
        let mut c = consumer(&node, "c", Some("static-c"), &seen);
        until("three balanced members", async || balanced(&describe(&mut admin).await, 3)).await;
        let rebalance_ms = join.elapsed().as_millis();
        ends = produce(&node, 20).await;
        until("three read everything", async || all_seen(&seen, &ends)).await;
        until("lag zero with three", async || lag_zero(&mut admin, &ends).await).await;
        println!(
            "rebalance of a group of 3 on {PARTITIONS} partitions: {rebalance_ms} ms (join to balanced)"
        );

        // SIGKILL b: after its session its partitions go to the others; only they may be read
        // twice (b's last commits may lag what it printed).
        signal(b.id(), "-KILL");
        b.wait().unwrap();
        let killed_at: BTreeSet<u32> = seen.lock().unwrap()["b"].iter().map(|&(p, _)| p).collect();
        assert!(
            !killed_at.is_empty() && killed_at.len() < PARTITIONS as usize,
            "b read a share: {killed_at:?}"
        );
        until("two balanced members", async || balanced(&describe(&mut admin).await, 2)).await;
        ends = produce(&node, 20).await;
        until("two read everything", async || all_seen(&seen, &ends)).await;

        // Restart the static member within its session: it takes its place back under a new
        // member id, with the same partitions, and the group does not rebalance.
        let before = describe(&mut admin).await;
        let statics =
            |i: &GroupInfo| i.members.iter().find(|m| m.instance_id.as_deref() == Some("static-c")).cloned();
        let c_before = statics(&before).expect("c is a member");
        signal(c.id(), "-TERM");
        assert!(c.wait().unwrap().success(), "c stops cleanly");
        let c_again = consumer(&node, "c2", Some("static-c"), &seen);
        until("c2 takes static-c's place", async || {
            let now = describe(&mut admin).await;
            statics(&now)
                .is_some_and(|m| m.member_id != c_before.member_id && m.assignment == c_before.assignment)
                && now.group_epoch == before.group_epoch
                && balanced(&now, 2)
        })
        .await;
        ends = produce(&node, 20).await;
        until("a and c2 read everything", async || all_seen(&seen, &ends)).await;
        let c2_read: BTreeSet<u32> = seen.lock().unwrap()["c2"].iter().map(|&(p, _)| p).collect();
        let c_partitions: BTreeSet<u32> =
            c_before.assignment.iter().flat_map(|a| a.partitions.clone()).collect();
        assert_eq!(c2_read, c_partitions, "c2 read exactly static-c's partitions");
        assert_eq!(describe(&mut admin).await.group_epoch, before.group_epoch, "no rebalance");
        until("lag zero at the end", async || lag_zero(&mut admin, &ends).await).await;

        // Duplicates: only of partitions b could have held when it was killed.
        let mut count = BTreeMap::<(u32, u64), u32>::new();
        for at in seen.lock().unwrap().values().flatten() {
            *count.entry(*at).or_default() += 1;
        }
        for ((p, o), n) in count {
            assert!(n == 1 || killed_at.contains(&p), "{p}/{o} read {n} times");
        }
        for mut child in [a, c_again] {
            signal(child.id(), "-TERM");
            assert!(child.wait().unwrap().success());
        }
    });
}

/// A member the group removed (its session expired) is fenced: its commit is refused, and it
/// learns so at its next heartbeat and joins again.
#[test]
fn a_member_past_its_session_cannot_commit() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    runtime().block_on(async {
        let target = node.target(Via::Tcp);
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_topic(TOPIC, 2, Default::default()).await.unwrap();
        let mut config = GroupConfig::new(GROUP);
        config.session_timeout_ms = 1000;
        config.offset_reset = OffsetReset::Earliest;
        config.auto_commit = false;
        let mut member = GroupConsumer::subscribe(&target, config, &[TOPIC]).await.unwrap();
        assert_eq!(member.assignment().len(), 2);
        // Silent past its session: the coordinator removes it.
        // An empty group without offsets is gone altogether.
        until("the member removed", async || {
            admin.describe_group(GROUP).await.map_or(true, |g| g.members.is_empty())
        })
        .await;
        match member.commit().await {
            Err(ClientError::Server { code: ErrorCode::UnknownMemberId, .. }) => {}
            other => panic!("a fenced member committed: {other:?}"),
        }
        // Its next poll heartbeats, learns it is out, and joins again with a new id.
        let old = member.member().0.to_owned();
        until("joined again", async || {
            member.poll(10).await.unwrap();
            member.member().0 != old && member.assignment().len() == 2
        })
        .await;
    });
}

/// A group's committed offsets and members live in `__consumer_offsets`: a restarted node
/// loads them back, and the group carries on from its commits.
#[test]
fn committed_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let target = node.target(Via::Tcp);
    let ends = runtime().block_on(async {
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_topic(TOPIC, 4, Default::default()).await.unwrap();
        let ends = produce_to(&node, 4, 10).await;
        let mut config = GroupConfig::new(GROUP);
        config.offset_reset = OffsetReset::Earliest;
        let mut member = GroupConsumer::subscribe(&target, config, &[TOPIC]).await.unwrap();
        let mut got = 0;
        until("everything read", async || {
            got += member.poll(100).await.unwrap().len();
            got == 40
        })
        .await;
        member.close().await.unwrap();
        ends
    });
    let (dir_path, port) = node.stop();
    let node = Node::start_on(&dir_path, 2, port);
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        let committed = admin.committed_offsets(GROUP, vec![]).await.unwrap();
        let at: BTreeMap<u32, u64> =
            committed.iter().filter_map(|c| Some((c.partition, c.offset?))).collect();
        assert_eq!(at, ends, "every partition committed at its end, after the restart");
        // A member of the group starts where the commits say: nothing is read again.
        let mut config = GroupConfig::new(GROUP);
        config.offset_reset = OffsetReset::Earliest;
        let mut member = GroupConsumer::subscribe(&node.target(Via::Tcp), config, &[TOPIC]).await.unwrap();
        assert!(member.poll(500).await.unwrap().is_empty(), "nothing read twice");
        for (p, end) in &ends {
            assert_eq!(member.position(TOPIC, *p), Some(*end));
        }
    });
    drop(dir);
}

/// On a cluster `__consumer_offsets` is replicated: when the node that coordinates a group
/// dies, the partition's new leader serves the group's commits, and the member carries on.
#[test]
fn on_a_cluster_commits_outlive_the_coordinators_node() {
    let mut cluster = common::cluster::TestCluster::start(3, 1, &[]);
    let target = weir_net::client::Target::tcp(cluster.bootstrap());
    runtime().block_on(async {
        until("three nodes up", async || match Admin::connect(&target).await {
            Ok(mut a) => a.cluster_status().await.is_ok_and(|s| s.nodes.iter().filter(|n| n.up).count() == 3),
            Err(_) => false,
        })
        .await;
        let mut admin = Admin::connect(&target).await.unwrap();
        // Refused until every node has registered with the controller.
        until("the topic created", async || {
            match admin.create_replicated_topic(TOPIC, 4, 3, None, Default::default()).await {
                Ok(()) => true,
                Err(ClientError::Server { code: ErrorCode::TopicAlreadyExists, .. }) => true,
                Err(ClientError::Server { code: ErrorCode::InvalidArgument, .. }) => false,
                Err(e) => panic!("create: {e}"),
            }
        })
        .await;
        let producer = Producer::connect(&target, ProducerConfig::default()).await.unwrap();
        for i in 0..40u32 {
            let record = ProducerRecord {
                topic: TOPIC.into(),
                partition: Some(i % 4),
                value: Some(vec![1]),
                ..Default::default()
            };
            producer.send(record).await.unwrap();
        }
        let mut config = GroupConfig::new(GROUP);
        config.offset_reset = OffsetReset::Earliest;
        config.session_timeout_ms = 6000;
        let mut member = GroupConsumer::subscribe(&target, config, &[TOPIC]).await.unwrap();
        let mut got = 0;
        until("40 read", async || {
            got += member.poll(100).await.unwrap().len();
            got == 40
        })
        .await;
        member.commit().await.unwrap();
        // Kill the node that coordinates the group (not the one the test's admin talks to).
        let mut conn = weir_net::client::connection::Connection::connect(&target).await.unwrap();
        let find =
            weir_net::Request::Group(weir_net::groups::GroupRequest::FindCoordinator { group: GROUP.into() });
        let weir_net::Response::Group(weir_net::groups::GroupResponse::FindCoordinator { node_id, .. }) =
            conn.call(&find).await.unwrap().response().unwrap()
        else {
            panic!("not a FindCoordinator answer")
        };
        cluster.kill(node_id);
        let mut admin = Admin::connect(&target).await.unwrap();
        let served = until("the commits served by the new coordinator", async || {
            admin
                .committed_offsets(GROUP, vec![])
                .await
                .is_ok_and(|c| c.iter().filter_map(|c| c.offset).sum::<u64>() == 40)
        })
        .await;
        eprintln!("commits served again {served:?} after the coordinator's node died");
        let sent = Instant::now();
        for i in 0..40u32 {
            let record = ProducerRecord {
                topic: TOPIC.into(),
                partition: Some(i % 4),
                value: Some(vec![2]),
                ..Default::default()
            };
            producer.send(record).await.unwrap();
        }
        eprintln!("40 records sent in {:?}", sent.elapsed());
        let mut again = Vec::new();
        let read = until("the member reads on after the failover", async || {
            again.extend(member.poll(100).await.unwrap());
            again.len() >= 40
        })
        .await;
        eprintln!("the member read on {read:?} after the records were sent");
        assert!(
            again.iter().all(|r| r.value.as_deref() == Some(&[2][..])),
            "nothing committed is read again"
        );
    });
}

/// A committed offset outside its partition (here past its end, as after the topic was made
/// anew) starts over where the reset policy says, as Kafka's `auto.offset.reset` does.
#[test]
fn a_commit_outside_the_log_starts_over_at_the_reset_policy() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    runtime().block_on(async {
        let target = node.target(Via::Tcp);
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_topic(TOPIC, 1, Default::default()).await.unwrap();
        produce_to(&node, 1, 10).await;
        let far = weir_net::groups::OffsetCommitEntry {
            topic: TOPIC.into(),
            partition: 0,
            offset: 1000,
            metadata: String::new(),
        };
        admin.reset_offsets(GROUP, vec![far]).await.unwrap();
        let mut config = GroupConfig::new(GROUP);
        config.offset_reset = OffsetReset::Earliest;
        let mut member = GroupConsumer::subscribe(&target, config, &[TOPIC]).await.unwrap();
        assert_eq!(member.position(TOPIC, 0), Some(1000), "starts at the commit");
        let mut got = Vec::new();
        until("read from the start", async || {
            got.extend(member.poll(100).await.unwrap());
            got.len() == 10
        })
        .await;
        assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    });
}

/// Runs a `weir` command to success and returns what it printed.
fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The group commands of the CLI: a `weir consume --group` that stops after a count commits what
/// it printed; `group list` and `group describe` show the group and its lag; `reset-offsets` is
/// refused while the group has members and moves its commits otherwise; `delete` removes it;
/// and the offsets of a deleted topic go away.
#[test]
fn the_cli_lists_describes_resets_and_deletes_groups() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic(TOPIC, 2, Default::default()).await.unwrap();
        produce_to(&node, 2, 10).await;
    });
    let printed = run(node.cli(Via::Tcp).args([
        "consume",
        TOPIC,
        "--group",
        GROUP,
        "--from-beginning",
        "--count",
        "15",
    ]));
    assert_eq!(printed.lines().count(), 15);
    let list = run(node.cli(Via::Tcp).args(["group", "list"]));
    assert!(
        list.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [GROUP, "empty", "0"]),
        "{list}"
    );
    let describe = |node: &Node| -> serde_json::Value {
        serde_json::from_str(&run(node.cli(Via::Tcp).args(["group", "describe", GROUP, "--json"]))).unwrap()
    };
    let lag: u64 =
        describe(&node)["partitions"].as_array().unwrap().iter().map(|p| p["lag"].as_u64().unwrap()).sum();
    assert_eq!(lag, 5, "15 of 20 printed and committed");
    run(node.cli(Via::Tcp).args(["group", "reset-offsets", GROUP, "--topic", TOPIC, "--to-earliest"]));
    let d = describe(&node);
    assert!(d["partitions"].as_array().unwrap().iter().all(|p| p["committed"] == 0 && p["lag"] == 10), "{d}");

    // While a member is in the group, a reset is refused.
    let mut member = node.cli(Via::Tcp);
    member.args(["consume", TOPIC, "--group", GROUP, "--json"]).stdout(Stdio::piped());
    let mut member = member.spawn().unwrap();
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        until("the member joined", async || {
            admin.describe_group(GROUP).await.is_ok_and(|g| g.members.len() == 1)
        })
        .await;
    });
    let refused = node
        .cli(Via::Tcp)
        .args(["group", "reset-offsets", GROUP, "--topic", TOPIC, "--to-latest"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("GroupNotEmpty"), "{refused:?}");
    signal(member.id(), "-TERM");
    assert!(member.wait().unwrap().success());

    // The topic goes, and with it the group's offsets; then the empty group can be deleted.
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.delete_topic(TOPIC).await.unwrap();
        // The group had only those offsets: it goes with them.
        until("the offsets of the deleted topic gone", async || {
            match admin.committed_offsets(GROUP, vec![]).await {
                Ok(c) => c.is_empty(),
                Err(ClientError::Server { code: ErrorCode::GroupIdNotFound, .. }) => true,
                Err(e) => panic!("committed offsets: {e}"),
            }
        })
        .await;
    });
    let deleted = node.cli(Via::Tcp).args(["group", "delete", GROUP]).output().unwrap();
    let gone = String::from_utf8_lossy(&deleted.stderr).contains("GroupIdNotFound");
    assert!(deleted.status.success() || gone, "{deleted:?}");
    let list = run(node.cli(Via::Tcp).args(["group", "list"]));
    assert!(!list.contains(GROUP), "{list}");
}

//! Three real control planes in one process, on 127.0.0.1–3 with one UDP port per test, each
//! with its own data directory and a certificate from one CA. Waits are on the metadata and
//! controller watches, with deadlines.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_rt::sync::watch;
use weir_cluster::tls::generate_ca;
use weir_cluster::{
    ClusterMeta, ControlConfig, ControlError, ControlHandle, CreateTopic, MetaError, NodeInfo, start,
};
use weir_replication::{AlterPartition, ControllerError, NodeId, PartitionId};

const DEADLINE: Duration = Duration::from_secs(20);

struct Cluster {
    port: u16,
    ca: (String, String),
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Option<ControlHandle>>,
    /// `snapshot_every_entries` and `entries_kept_after_snapshot`.
    snapshots: (u64, u64),
}

fn info(id: u32, port: u16, client_port: u16) -> NodeInfo {
    NodeInfo {
        id: NodeId(id),
        cluster_addr: format!("127.0.0.{id}:{port}"),
        host: format!("127.0.0.{id}"),
        port: client_port,
        shard_ports: vec![client_port + 1, client_port + 2],
        kafka: None,
    }
}

impl Cluster {
    fn start(port: u16) -> Self {
        Self::start_n(port, 3)
    }

    fn start_n(port: u16, n: u32) -> Self {
        Self::start_with(port, n, (5_000, 1_000))
    }

    fn start_with(port: u16, n: u32, snapshots: (u64, u64)) -> Self {
        let ca = generate_ca().unwrap();
        let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut cluster = Self { port, ca, dirs, nodes: (0..n).map(|_| None).collect(), snapshots };
        for id in 1..=n {
            cluster.start_node(id, 9000);
        }
        cluster
    }

    fn config(&self, id: u32, dir: &Path, client_port: u16) -> ControlConfig {
        let count = self.nodes.len() as u32;
        let peers = (1..=count).map(|n| (NodeId(n), format!("127.0.0.{n}:{}", self.port))).collect();
        let (ca_cert, ca_key) = self.ca.clone();
        ControlConfig::new(NodeId(id), peers, dir.into(), ca_cert, ca_key, info(id, self.port, client_port))
    }

    fn start_node(&mut self, id: u32, client_port: u16) {
        let mut config = self.config(id, self.dirs[id as usize - 1].path(), client_port);
        (config.snapshot_every_entries, config.entries_kept_after_snapshot) = self.snapshots;
        self.nodes[id as usize - 1] = Some(start(config).unwrap());
    }

    fn node(&self, id: u32) -> &ControlHandle {
        self.nodes[id as usize - 1].as_ref().expect("running")
    }

    fn stop(&mut self, id: u32) {
        self.nodes[id as usize - 1].take().expect("running").shutdown();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.iter().flatten().for_each(ControlHandle::shutdown);
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Waits until the metadata satisfies `pred`; panics at the deadline.
fn wait_meta(handle: &ControlHandle, what: &str, pred: impl Fn(&ClusterMeta) -> bool) -> Arc<ClusterMeta> {
    let mut rx: watch::Receiver<Arc<ClusterMeta>> = handle.meta();
    block_on(async {
        let waited = tokio_rt::time::timeout(DEADLINE, rx.wait_for(|m| pred(m))).await;
        let meta = waited.unwrap_or_else(|_| panic!("{what}: not reached; now {:?}", handle.meta().borrow()));
        meta.expect("control plane running").clone()
    })
}

fn wait_controller(handle: &ControlHandle, pred: impl Fn(NodeId) -> bool) -> NodeId {
    let mut rx = handle.controller();
    block_on(async {
        let waited = tokio_rt::time::timeout(DEADLINE, rx.wait_for(|c| c.is_some_and(&pred))).await;
        waited.expect("a controller elected").expect("running").expect("some")
    })
}

fn topic(name: &str, partitions: u32, replication_factor: u16) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        partitions,
        replication_factor,
        min_insync_replicas: None,
        retention_ms: None,
        retention_bytes: None,
        cleanup_policy: Default::default(),
        delete_retention_ms: None,
    }
}

fn all_registered(m: &ClusterMeta) -> bool {
    m.nodes.len() == 3
}

#[test]
fn a_leader_is_elected_nodes_register_and_topics_are_placed_and_altered() {
    let cluster = Cluster::start(17_101);
    for id in 1..=3 {
        wait_meta(cluster.node(id), "all three registered", all_registered);
    }
    // The handle's calls need no tokio runtime: a plain executor drives them.
    futures::executor::block_on(cluster.node(2).create_topic(topic("orders", 3, 3))).unwrap();
    let mut meta = Arc::default();
    for id in 1..=3 {
        meta = wait_meta(cluster.node(id), "orders applied", |m| m.topics.contains_key("orders"));
    }
    let leaders: std::collections::BTreeSet<NodeId> =
        (0..3).map(|i| meta.partition("orders", i).unwrap().1.state.leader.unwrap()).collect();
    assert_eq!(leaders.len(), 3, "leaders spread over the nodes: {meta:?}");
    for i in 0..3 {
        let (_, p) = meta.partition("orders", i).unwrap();
        assert_eq!(p.state.isr.len(), 3);
        assert_eq!(p.state.leader, Some(p.replicas[0].node), "the first replica leads");
    }

    let too_many = futures::executor::block_on(cluster.node(1).create_topic(topic("wide", 1, 4)));
    assert!(
        matches!(too_many, Err(ControlError::ReplicationFactor { requested: 4, nodes: 3 })),
        "{too_many:?}"
    );
    let exists = futures::executor::block_on(cluster.node(3).create_topic(topic("orders", 1, 1)));
    assert!(
        matches!(exists, Err(ControlError::Meta(weir_cluster::MetaError::TopicExists { .. }))),
        "{exists:?}"
    );

    let status = futures::executor::block_on(cluster.node(3).status()).unwrap();
    assert!(status.controller.is_some());
    assert!(status.nodes.iter().all(|n| n.up && n.voter), "{status:?}");
    assert_eq!(status.nodes.iter().filter(|n| n.is_controller).count(), 1);

    let (id, p) = meta.partition("orders", 1).unwrap();
    let proposal = AlterPartition {
        partition: id,
        leader: p.state.leader.unwrap(),
        leader_epoch: p.state.leader_epoch,
        partition_epoch: p.state.partition_epoch,
        isr: p.state.isr.clone(),
    };
    // A partition leader speaks for itself only: every proposal comes from the leader's node.
    let leader = cluster.node(proposal.leader.0);
    let altered = futures::executor::block_on(leader.alter_partition(proposal.clone())).unwrap();
    assert_eq!(altered.partition_epoch, p.state.partition_epoch + 1);
    wait_meta(cluster.node(2), "the alteration applied", |m| m.partitions[&id].state == altered);
    let stale = futures::executor::block_on(leader.alter_partition(proposal.clone()));
    assert!(
        matches!(stale, Err(ControlError::Controller(ControllerError::StalePartitionEpoch { .. }))),
        "{stale:?}"
    );
    let deposed = AlterPartition { leader_epoch: altered.leader_epoch - 1, ..proposal };
    let deposed = futures::executor::block_on(leader.alter_partition(deposed));
    assert!(matches!(deposed, Err(ControlError::Controller(ControllerError::FencedLeaderEpoch { .. }))));

    futures::executor::block_on(cluster.node(3).delete_topic("orders")).unwrap();
    wait_meta(cluster.node(1), "orders deleted", |m| m.topics.is_empty() && m.partitions.is_empty());
}

#[test]
fn a_silent_node_is_fenced_leaves_isrs_and_its_partitions_get_new_leaders() {
    let mut cluster = Cluster::start(17_102);
    for id in 1..=3 {
        wait_meta(cluster.node(id), "all three registered", all_registered);
    }
    let controller = wait_controller(cluster.node(1), |_| true);
    block_on(cluster.node(1).create_topic(topic("t", 3, 3))).unwrap();
    let victim = (1..=3).find(|&n| NodeId(n) != controller).unwrap();
    let survivor = (1..=3).find(|&n| n != victim).unwrap();
    let before = wait_meta(cluster.node(survivor), "t applied", |m| m.topics.contains_key("t"));
    let led: Vec<(PartitionId, u32)> = (before.partitions.iter())
        .filter(|(_, p)| p.state.leader == Some(NodeId(victim)))
        .map(|(&id, p)| (id, p.state.leader_epoch))
        .collect();
    assert!(!led.is_empty(), "placement gives every node a partition to lead");

    cluster.stop(victim);
    let after = wait_meta(cluster.node(survivor), "victim fenced", |m| {
        let out_of_isrs = m.partitions.values().all(|p| !p.state.isr.contains(&NodeId(victim)));
        let reelected = led.iter().all(|(id, epoch)| {
            let s = &m.partitions[id].state;
            s.leader.is_some_and(|l| l != NodeId(victim)) && s.leader_epoch > *epoch
        });
        out_of_isrs && reelected
    });
    assert!(after.partitions.values().all(|p| p.state.isr.len() == 2), "{after:?}");
    let status = block_on(cluster.node(survivor).status()).unwrap();
    let down: Vec<NodeId> = status.nodes.iter().filter(|n| !n.up).map(|n| n.id).collect();
    assert_eq!(down, vec![NodeId(victim)]);
}

/// A node fenced and restarted takes back the leadership of the partitions it is the preferred
/// (first) replica of, but only once it is in their ISR again. Without a data path here, its
/// rejoining is the current leader's accepted proposal adding it back.
#[test]
fn a_restarted_node_leads_its_preferred_partitions_again_once_back_in_the_isr() {
    let mut cluster = Cluster::start(17_108);
    for id in 1..=3 {
        wait_meta(cluster.node(id), "all three registered", all_registered);
    }
    let controller = wait_controller(cluster.node(1), |_| true);
    block_on(cluster.node(1).create_topic(topic("t", 3, 3))).unwrap();
    let victim = (1..=3).find(|&n| NodeId(n) != controller).unwrap();
    let survivor = controller.0;
    let created = wait_meta(cluster.node(survivor), "t applied", |m| m.topics.contains_key("t"));
    let preferred: Vec<PartitionId> = (created.partitions.iter())
        .filter(|(_, p)| p.replicas[0].node == NodeId(victim))
        .map(|(&id, _)| id)
        .collect();
    assert!(!preferred.is_empty(), "placement makes every node some partition's first replica");

    cluster.stop(victim);
    wait_meta(cluster.node(survivor), "victim fenced, its partitions moved", |m| {
        m.partitions.values().all(|p| !p.state.isr.contains(&NodeId(victim)) && p.state.leader.is_some())
    });
    cluster.start_node(victim, 9000);
    let second_life = cluster.node(victim).incarnation();
    let restarted = wait_meta(cluster.node(survivor), "the restart recorded", |m| {
        m.incarnations.get(&NodeId(victim)) == Some(&second_life)
    });
    for id in &preferred {
        let s = &restarted.partitions[id].state;
        let leader = s.leader.expect("a leader");
        assert_ne!(leader, NodeId(victim), "led again from outside the ISR: {s:?}");
        // The leader's proposal adding the restarted node back, in assignment order.
        let isr = restarted.partitions[id].replicas.iter().map(|r| r.node);
        let isr = isr.filter(|n| s.isr.contains(n) || *n == NodeId(victim)).collect();
        let (leader_epoch, partition_epoch) = (s.leader_epoch, s.partition_epoch);
        let proposal = AlterPartition { partition: *id, leader, leader_epoch, partition_epoch, isr };
        let altered = block_on(cluster.node(leader.0).alter_partition(proposal)).unwrap();
        assert!(altered.isr.contains(&NodeId(victim)));
        let led = wait_meta(cluster.node(survivor), "the preferred replica leads again", |m| {
            m.partitions[id].state.leader == Some(NodeId(victim))
        });
        let s = &led.partitions[id].state;
        assert!(s.leader_epoch > altered.leader_epoch, "no new leader epoch: {s:?}");
        assert!(s.partition_epoch > altered.partition_epoch);
    }
}

#[test]
fn the_controller_fails_over_with_the_metadata_and_a_restarted_node_rejoins() {
    let mut cluster = Cluster::start(17_103);
    for id in 1..=3 {
        wait_meta(cluster.node(id), "all three registered", all_registered);
    }
    block_on(cluster.node(1).create_topic(topic("a", 2, 3))).unwrap();
    let old = wait_controller(cluster.node(1), |_| true);
    let survivor = (1..=3).find(|&n| NodeId(n) != old).unwrap();
    let before = wait_meta(cluster.node(survivor), "a applied", |m| m.topics.contains_key("a"));

    let first_life = cluster.node(old.0).incarnation();
    cluster.stop(old.0);
    let new = wait_controller(cluster.node(survivor), |c| c != old);
    assert_ne!(new, old);
    let meta = cluster.node(survivor).meta().borrow().clone();
    assert_eq!(meta.topics, before.topics, "the new controller has the metadata");
    assert_eq!(meta.nodes, before.nodes);
    block_on(cluster.node(survivor).create_topic(topic("b", 2, 3))).unwrap();
    let with_b = wait_meta(cluster.node(survivor), "b applied", |m| m.topics.contains_key("b"));
    let ids: Vec<u32> = with_b.topics["b"].partitions.iter().map(|p| p.0).collect();
    assert_eq!(ids, vec![2, 3], "partition ids continue after the failover");

    // The old controller restarts from its directory with a new client port: it keeps the
    // metadata, catches up, and registers its new addresses.
    cluster.start_node(old.0, 9100);
    let second_life = cluster.node(old.0).incarnation();
    assert!(second_life > first_life, "the incarnation grows at every start");
    let rejoined = wait_meta(cluster.node(old.0), "restarted node caught up, registered, started", |m| {
        m.topics.contains_key("b")
            && m.nodes[&old].port == 9100
            && m.incarnations.get(&old) == Some(&second_life)
    });
    assert_eq!(rejoined.topics["a"], before.topics["a"]);
    wait_meta(cluster.node(survivor), "re-registration seen by the others", |m| m.nodes[&old].port == 9100);
}

#[test]
fn a_fourth_member_joins_as_a_learner_and_follows_the_metadata() {
    let cluster = Cluster::start_n(17_105, 4);
    for id in 1..=4 {
        wait_meta(cluster.node(id), "all four registered", |m| m.nodes.len() == 4);
    }
    block_on(cluster.node(4).create_topic(topic("wide", 4, 4))).unwrap();
    let meta = wait_meta(cluster.node(4), "the learner applies the topic", |m| m.topics.contains_key("wide"));
    assert!(meta.partitions.values().all(|p| p.replicas.len() == 4));
    let status = block_on(cluster.node(4).status()).unwrap();
    let voters: Vec<(NodeId, bool)> = status.nodes.iter().map(|n| (n.id, n.voter)).collect();
    assert_eq!(voters, vec![(NodeId(1), true), (NodeId(2), true), (NodeId(3), true), (NodeId(4), false)]);
    assert!(status.nodes.iter().all(|n| n.up));
}

#[test]
fn a_node_behind_the_purged_log_catches_up_from_a_snapshot() {
    // Snapshots every 5 entries, no log kept behind them: a node away for more than that can
    // only catch up by installing the leader's snapshot over the network.
    let mut cluster = Cluster::start_with(17_106, 3, (5, 0));
    for id in 1..=3 {
        wait_meta(cluster.node(id), "all three registered", all_registered);
    }
    let controller = wait_controller(cluster.node(1), |_| true);
    let away = (1..=3).find(|&n| NodeId(n) != controller).unwrap();
    let stays = (1..=3).find(|&n| n != away && NodeId(n) != controller).unwrap();
    cluster.stop(away);
    let away_dir = cluster.dirs[away as usize - 1].path().join("raft");
    let away_last = block_on(async {
        use openraft::storage::RaftLogStorage;
        let mut log = weir_cluster::log_store::LogStore::open(&away_dir).unwrap();
        log.get_log_state().await.unwrap().last_log_id.unwrap().index
    });
    // The leader purges its log once no replication stream is using the entries: while the
    // away node's stream still is, more topics are created, each a real change, until it did.
    let leader_dir = cluster.dirs[controller.0 as usize - 1].path().join("raft");
    let purged = || {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(leader_dir.join("state")).unwrap()).unwrap();
        state["purged"]["index"].as_u64()
    };
    let mut created = 0;
    while created < 12 || purged().is_none_or(|p| p <= away_last) {
        assert!(created < 200, "the leader never purged past the away node's log");
        block_on(cluster.node(stays).create_topic(topic(&format!("t{created}"), 1, 2))).unwrap();
        created += 1;
    }
    let expected = wait_meta(cluster.node(stays), "all created", |m| m.topics.len() == created);
    cluster.start_node(away, 9000);
    let caught_up = wait_meta(cluster.node(away), "caught up", |m| m.topics.len() == created);
    assert_eq!(caught_up.topics, expected.topics);
}

/// A one-node cluster (node 1, the sole voter: it elects itself and runs the controller), its
/// registration applied.
fn one_node(port: u16, dir: &Path) -> ControlHandle {
    let ca = generate_ca().unwrap();
    let peers = vec![(NodeId(1), format!("127.0.0.1:{port}"))];
    let config = ControlConfig::new(NodeId(1), peers, dir.into(), ca.0, ca.1, info(1, port, 9000));
    let node = start(config).unwrap();
    wait_meta(&node, "node 1 registered", |m| m.nodes.contains_key(&NodeId(1)));
    node
}

/// A create above the controller's record queue (65 536) once panicked the controller host,
/// leaving the Raft leader without a controller (every later call `Stopped`). Topics above the
/// named limits are refused before anything, and the controller lives on.
#[test]
fn topics_above_the_limits_are_refused_and_the_controller_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(17_121, dir.path());
    let huge = futures::executor::block_on(node.create_topic(topic("huge", 70_000, 1)));
    assert!(matches!(huge, Err(ControlError::Meta(MetaError::TooManyPartitions { .. }))), "{huge:?}");
    let wide = futures::executor::block_on(node.create_topic(topic("wide", 10_001, 1)));
    assert!(matches!(wide, Err(ControlError::Meta(MetaError::TooManyPartitions { .. }))), "{wide:?}");
    let long = futures::executor::block_on(node.create_topic(topic(&"n".repeat(250), 1, 1)));
    assert!(matches!(long, Err(ControlError::Meta(MetaError::TopicNameTooLong { .. }))), "{long:?}");
    let small = futures::executor::block_on(node.create_topic(topic("small", 1, 1)));
    assert!(small.is_ok(), "the controller is gone after a huge create: {small:?}");
    node.shutdown();
}

/// A create retried after its answer was lost finds the topic it made: a topic that exists as
/// asked for counts as created; one with other settings is still `TopicExists`.
#[test]
fn creating_a_topic_again_as_it_is_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(17_124, dir.path());
    futures::executor::block_on(node.create_topic(topic("t", 2, 1))).unwrap();
    let again = futures::executor::block_on(node.create_topic(topic("t", 2, 1)));
    assert!(again.is_ok(), "{again:?}");
    let other = futures::executor::block_on(node.create_topic(topic("t", 3, 1)));
    assert!(matches!(other, Err(ControlError::Meta(MetaError::TopicExists { .. }))), "{other:?}");
    assert_eq!(node.meta().borrow().topics["t"].partitions.len(), 2);
    node.shutdown();
}

/// The controller once proposed a fence's records one at a time, each awaiting its commit,
/// serving no heartbeat meanwhile; heartbeats queued behind were stamped when served, so the
/// first one served found every other live node's session expired and fenced it too. Now a
/// fence is one command, and heartbeats count from their arrival and are served first.
#[test]
fn fencing_one_node_never_fences_the_live_ones() {
    let port = 17_123;
    let ca = generate_ca().unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let peers: Vec<_> = (1..=3).map(|n| (NodeId(n), format!("127.0.0.{n}:{port}"))).collect();
    let mut nodes: Vec<Option<ControlHandle>> = (1..=3u32)
        .map(|id| {
            let dir = dirs[id as usize - 1].path().into();
            let (cert, key) = ca.clone();
            let mut config =
                ControlConfig::new(NodeId(id), peers.clone(), dir, cert, key, info(id, port, 9000));
            config.set_timing(100, 600);
            Some(start(config).unwrap())
        })
        .collect();
    let one = nodes[0].clone().unwrap();
    wait_meta(&one, "all three registered", all_registered);
    futures::executor::block_on(one.create_topic(topic("t", 300, 3))).unwrap();
    let before = wait_meta(&one, "t applied", |m| m.topics.contains_key("t"));
    nodes[2].take().unwrap().shutdown();
    let three = NodeId(3);
    wait_meta(&one, "node 3 fenced", |m| m.partitions.values().all(|p| !p.state.isr.contains(&three)));
    // The controller serves this after every heartbeat that queued while it fenced node 3,
    // and after what those heartbeats changed is committed.
    let status = futures::executor::block_on(one.status()).unwrap();
    let controller = status.controller.expect("a controller answered");
    let up: Vec<NodeId> = status.nodes.iter().filter(|n| n.up).map(|n| n.id).collect();
    let after = nodes[controller.0 as usize - 1].as_ref().expect("a live controller").meta().borrow().clone();
    let disturbed = (before.partitions.iter())
        .filter(|(_, p)| p.state.leader != Some(three))
        .filter(|(id, p)| {
            let now = &after.partitions[id].state;
            now.leader != p.state.leader || now.leader_epoch != p.state.leader_epoch
        })
        .count();
    nodes.iter().flatten().for_each(ControlHandle::shutdown);
    assert_eq!(up, vec![NodeId(1), NodeId(2)], "live nodes fenced: {status:?}");
    assert_eq!(disturbed, 0, "partitions led by live nodes changed leader while node 3 was fenced");
}

/// A restarted node publishes the metadata it had committed as soon as it starts, not its
/// (older) snapshot's until a leader commits again: the log store keeps the committed log id,
/// and openraft applies the log up to it at start. Here the node restarts alone, without a
/// quorum, so nothing is committed after its start.
#[test]
fn a_restarted_node_publishes_what_it_had_committed_without_a_quorum() {
    let mut cluster = Cluster::start(17_126);
    for id in 1..=3 {
        wait_meta(cluster.node(id), "all three registered", all_registered);
    }
    futures::executor::block_on(cluster.node(1).create_topic(topic("kept", 2, 3))).unwrap();
    for id in 1..=3 {
        wait_meta(cluster.node(id), "kept applied", |m| m.topics.contains_key("kept"));
    }
    (1..=3).for_each(|id| cluster.stop(id));
    cluster.start_node(2, 9000);
    let meta = cluster.node(2).meta().borrow().clone();
    assert!(meta.topics.contains_key("kept"), "the committed topic is not published at start: {meta:?}");
    assert_eq!(meta.nodes.len(), 3);
}

/// The Raft state a node keeps in `state`, as JSON.
fn raft_state(cluster: &Cluster, id: u32) -> serde_json::Value {
    let path = cluster.dirs[id as usize - 1].path().join("raft").join("state");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Asks `to` for its vote as `from` would, from a transport of its own (another port, `from`'s
/// certificate), for a candidate whose log ends at index 5.
fn ask_vote(cluster: &Cluster, from: u32, to: u32) -> openraft::raft::VoteResponse<u64> {
    use weir_cluster::network::Transport;
    use weir_cluster::rpc::{Request, Response};
    let answer = block_on(async {
        let tls = weir_cluster::tls::NodeTls::issue(&cluster.ca.0, &cluster.ca.1, NodeId(from)).unwrap();
        let target = format!("127.0.0.{to}:{}", cluster.port).parse().unwrap();
        let own = format!("127.0.0.{from}:{}", cluster.port + 1_000).parse().unwrap();
        let transport = Transport::bind(NodeId(from), own, [(NodeId(to), target)].into(), &tls).unwrap();
        let vote = openraft::Vote::new(1_000, u64::from(from));
        let last = openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 5);
        let request = Request::Vote(openraft::raft::VoteRequest::new(vote, Some(last)));
        let answer = transport.call(NodeId(to), request, Duration::from_secs(5)).await.unwrap();
        transport.endpoint().close(0u32.into(), b"done");
        answer
    });
    match answer {
        Response::Vote(Ok(vote)) => vote,
        other => panic!("not a vote answer: {other:?}"),
    }
}

/// An entry commits on the leader and one follower while the other lags; the follower loses
/// its data dir, the leader stops, and the lagging node asks for votes. The wiped node once
/// granted them (an empty log is behind every candidate's), electing a leader without the
/// entry: committed metadata lost. Blank, it refuses every candidate with entries and starts
/// no election; once it caught up from the returning leader it is an ordinary voter again.
#[test]
fn a_wiped_voter_refuses_votes_until_it_caught_up_then_votes_again() {
    let mut cluster = Cluster::start(17_128);
    for id in 1..=3 {
        wait_meta(cluster.node(id), "all three registered", all_registered);
    }
    let leader = wait_controller(cluster.node(1), |_| true).0;
    let others: Vec<u32> = (1..=3).filter(|&n| n != leader).collect();
    let (lagging, wiped) = (others[0], others[1]);
    cluster.stop(lagging);
    block_on(cluster.node(leader).create_topic(topic("e", 1, 2))).unwrap();
    wait_meta(cluster.node(wiped), "e applied where it is wiped next", |m| m.topics.contains_key("e"));
    cluster.stop(wiped);
    std::fs::remove_dir_all(cluster.dirs[wiped as usize - 1].path().join("raft")).unwrap();
    cluster.stop(leader);
    cluster.start_node(wiped, 9000);
    cluster.start_node(lagging, 9000);

    let answer = ask_vote(&cluster, lagging, wiped);
    assert!(!answer.vote_granted, "a wiped node voted for a candidate with entries: {answer:?}");
    assert!(answer.last_log_id.is_none_or(|l| l.index == 0), "{answer:?}");
    assert_eq!(raft_state(&cluster, wiped)["blank"], true);

    // Only the node holding the entry can lead: the wiped node refuses the lagging one.
    cluster.start_node(leader, 9000);
    assert_eq!(wait_controller(cluster.node(lagging), |_| true), NodeId(leader));
    for id in 1..=3 {
        wait_meta(cluster.node(id), "the committed entry everywhere", |m| m.topics.contains_key("e"));
    }

    // A leader now needs the formerly wiped node's vote (or its own candidacy).
    cluster.stop(leader);
    let next = wait_controller(cluster.node(lagging), |c| c != NodeId(leader));
    assert_ne!(next, NodeId(leader));
    block_on(cluster.node(lagging).create_topic(topic("after", 1, 2))).unwrap();
    let meta = wait_meta(cluster.node(wiped), "after applied", |m| m.topics.contains_key("after"));
    assert!(meta.topics.contains_key("e"));
    assert_eq!(raft_state(&cluster, wiped)["blank"], false);
}

/// A brand-new cluster is all blank nodes: they vote for its initialisation, and leave the
/// blank state as they follow (or lead) it, so a second election succeeds without the first
/// leader.
#[test]
fn a_brand_new_cluster_of_blank_nodes_initialises_and_elects_again() {
    let mut cluster = Cluster::start(17_129);
    for id in 1..=3 {
        wait_meta(cluster.node(id), "all three registered", all_registered);
    }
    let first = wait_controller(cluster.node(1), |_| true);
    cluster.stop(first.0);
    let survivors: Vec<u32> = (1..=3).filter(|&n| NodeId(n) != first).collect();
    let second = wait_controller(cluster.node(survivors[0]), |c| c != first);
    assert!(survivors.contains(&second.0));
    block_on(cluster.node(survivors[1]).create_topic(topic("t", 1, 2))).unwrap();
    for &id in &survivors {
        wait_meta(cluster.node(id), "t applied", |m| m.topics.contains_key("t"));
        assert_eq!(raft_state(&cluster, id)["blank"], false);
    }
    assert_eq!(raft_state(&cluster, first.0)["blank"], false, "the initialising node led: not blank");
}

//! Review tests of the control plane against a one-node cluster (node 1 is the sole voter, so it
//! elects itself and runs the controller).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use weir_cluster::network::Transport;
use weir_cluster::rpc::{ControlCall, Request, Response};
use weir_cluster::tls::{NodeTls, generate_ca};
use weir_cluster::{ClusterMeta, ControlConfig, ControlHandle, CreateTopic, NodeInfo, start};
use weir_replication::NodeId;

const DEADLINE: Duration = Duration::from_secs(20);

fn info(id: u32, port: u16, host: &str) -> NodeInfo {
    NodeInfo {
        id: NodeId(id),
        cluster_addr: format!("127.0.0.{id}:{port}"),
        host: host.into(),
        port: 9000,
        shard_ports: vec![9001],
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn one_node(port: u16, dir: &std::path::Path, ca: &(String, String)) -> ControlHandle {
    let peers = vec![(NodeId(1), format!("127.0.0.1:{port}"))];
    let config = ControlConfig::new(
        NodeId(1),
        peers,
        dir.into(),
        ca.0.clone(),
        ca.1.clone(),
        info(1, port, "127.0.0.1"),
    );
    start(config).unwrap()
}

fn wait_meta(handle: &ControlHandle, pred: impl Fn(&ClusterMeta) -> bool) -> Arc<ClusterMeta> {
    let mut rx = handle.meta();
    block_on(async {
        let waited = tokio_rt::time::timeout(DEADLINE, rx.wait_for(|m| pred(m))).await;
        waited.expect("reached").expect("running").clone()
    })
}

fn topic(name: &str, partitions: u32) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: 1,
        min_insync_replicas: None,
        retention_ms: None,
        retention_bytes: None,
    }
}

/// A create-topic request with more partitions than the controller's record queue holds
/// (`RECORDS_MAX`, 65 536) must be refused with an error, not kill the controller host: a dead
/// host on the Raft leader leaves the whole cluster without a controller (every later call is
/// `Stopped`, which callers do not retry elsewhere) until that node restarts.
#[test]
fn a_huge_create_topic_is_refused_and_the_controller_lives_on() {
    let ca = generate_ca().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(17_121, dir.path(), &ca);
    wait_meta(&node, |m| m.nodes.contains_key(&NodeId(1)));
    let huge = block_on(node.create_topic(topic("huge", 70_000)));
    assert!(huge.is_err(), "70 000 partitions accepted");
    let small = block_on(node.create_topic(topic("small", 1)));
    assert!(small.is_ok(), "the controller is gone after a huge create: huge {huge:?}, small {small:?}");
    node.shutdown();
}

/// The envelope's sender is checked against the certificate, but not the node a call speaks
/// for: node 2 (not even a member) may register node 1's addresses (or heartbeat for it).
#[test]
fn a_node_cannot_register_or_heartbeat_for_another() {
    let ca = generate_ca().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = 17_122;
    let node = one_node(port, dir.path(), &ca);
    wait_meta(&node, |m| m.nodes.contains_key(&NodeId(1)));
    let two = NodeTls::issue(&ca.0, &ca.1, NodeId(2)).unwrap();
    let (register, heartbeat) = block_on(async {
        let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let peers = BTreeMap::from([(NodeId(1), server)]);
        let own: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
        let transport = Transport::bind(NodeId(2), own, peers, &two).unwrap();
        let spoof = ControlCall::Register(info(1, port, "attacker.example"));
        let register = transport.call(NodeId(1), Request::Control(spoof), DEADLINE).await;
        let beat = ControlCall::Heartbeat { node: NodeId(1), incarnation: 1_000 };
        let heartbeat = transport.call(NodeId(1), Request::Control(beat), DEADLINE).await;
        transport.endpoint().close(0u32.into(), b"done");
        (register, heartbeat)
    });
    let host = node.meta().borrow().nodes[&NodeId(1)].host.clone();
    node.shutdown();
    assert!(!matches!(register, Ok(Response::Control(Ok(_)))), "node 2 registered node 1: {register:?}");
    assert!(!matches!(heartbeat, Ok(Response::Control(Ok(_)))), "node 2 heartbeat for node 1: {heartbeat:?}");
    assert_eq!(host, "127.0.0.1", "node 1's registered host was rewritten by node 2");
}

/// The controller host proposes a fence's records one at a time, each awaiting its commit, and
/// serves no heartbeat meanwhile. When one node stops, fencing it takes one commit per
/// partition; heartbeats of the live nodes wait in the queue, and the first one served after
/// finds every other live node's session expired and fences it too. Live nodes must never be
/// fenced because the controller was busy.
#[test]
fn fencing_one_node_never_fences_the_live_ones() {
    let port = 17_123;
    let ca = generate_ca().unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let peers: Vec<_> = (1..=3).map(|n| (NodeId(n), format!("127.0.0.{n}:{port}"))).collect();
    let mut nodes: Vec<Option<ControlHandle>> = (1..=3u32)
        .map(|id| {
            let dir = dirs[id as usize - 1].path().into();
            let host = format!("127.0.0.{id}");
            let mut config = ControlConfig::new(
                NodeId(id),
                peers.clone(),
                dir,
                ca.0.clone(),
                ca.1.clone(),
                info(id, port, &host),
            );
            config.heartbeat_interval_ms = 100;
            config.session_timeout_ms = 600;
            Some(start(config).unwrap())
        })
        .collect();
    let one = nodes[0].clone().unwrap();
    wait_meta(&one, |m| m.nodes.len() == 3);
    let mut created = Err(weir_cluster::ControlError::Stopped);
    for _ in 0..5 {
        let mut t = topic("t", 1_500);
        t.replication_factor = 3;
        created = block_on(one.create_topic(t));
        if created.is_ok() {
            break;
        }
    }
    created.unwrap();
    let before = wait_meta(&one, |m| m.topics.contains_key("t"));
    nodes[2].take().unwrap().shutdown();
    let three = NodeId(3);
    let stopped = std::time::Instant::now();
    let mut rx = one.meta();
    let after = block_on(async {
        let waited = tokio_rt::time::timeout(
            Duration::from_secs(120),
            rx.wait_for(|m| m.partitions.values().all(|p| !p.state.isr.contains(&three))),
        )
        .await;
        waited.expect("node 3 fenced everywhere").expect("running").clone()
    });
    eprintln!("node 3 out of every ISR after {:?}", stopped.elapsed());
    let disturbed: Vec<_> = (before.partitions.iter())
        .filter(|(_, p)| p.state.leader != Some(three))
        .filter(|(id, p)| {
            let now = &after.partitions[id].state;
            now.leader != p.state.leader || now.leader_epoch != p.state.leader_epoch
        })
        .map(|(id, _)| *id)
        .collect();
    nodes.iter().flatten().for_each(ControlHandle::shutdown);
    assert!(
        disturbed.is_empty(),
        "{} partitions led by live nodes changed leader while node 3 was fenced",
        disturbed.len()
    );
}

//! Who may talk to a control plane, over real QUIC: a peer must hold a certificate of the
//! cluster CA, naming the node its requests claim to come from, and a server must be the node
//! that was dialled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use weir_cluster::network::Transport;
use weir_cluster::rpc::{ControlCall, Request, Response, WireError};
use weir_cluster::tls::{NodeTls, generate_ca};
use weir_cluster::{ControlConfig, ControlError, NodeInfo, start};
use weir_replication::NodeId;

const PORT: u16 = 17_104;

fn addr(node: u32) -> SocketAddr {
    format!("127.0.0.{node}:{PORT}").parse().unwrap()
}

fn status_from(me: u32, tls: &NodeTls, dial: u32, dialled_as: u32) -> Result<Response, ControlError> {
    let runtime = tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let peers = BTreeMap::from([(NodeId(dialled_as), addr(dial))]);
        let transport = Transport::bind(NodeId(me), addr(tls.node.0), peers, tls)?;
        let answer = transport
            .call(NodeId(dialled_as), Request::Control(ControlCall::Status), Duration::from_secs(5))
            .await;
        transport.endpoint().close(0u32.into(), b"done");
        answer
    })
}

#[test]
fn only_a_cluster_node_claiming_its_own_id_is_served() {
    let (ca, key) = generate_ca().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let peers = (1..=3).map(|n| (NodeId(n), addr(n).to_string())).collect();
    let info = NodeInfo {
        id: NodeId(1),
        cluster_addr: addr(1).to_string(),
        host: "127.0.0.1".into(),
        port: 9000,
        shard_ports: vec![9001],
        kafka: None,
    };
    let server =
        start(ControlConfig::new(NodeId(1), peers, dir.path().into(), ca.clone(), key.clone(), info))
            .unwrap();
    assert!(dir.path().join("cluster-tls/node.pem").exists());

    let three = NodeTls::issue(&ca, &key, NodeId(3)).unwrap();
    let honest = status_from(3, &three, 1, 1).unwrap();
    // Node 1 alone is no controller: it answers, with the refusal a non-leader gives.
    assert!(matches!(honest, Response::Control(Err(WireError::NotController { .. }))), "{honest:?}");

    let impostor = status_from(2, &three, 1, 1).unwrap();
    assert!(
        matches!(impostor, Response::Refused(WireError::WrongPeer { claimed: NodeId(2) })),
        "{impostor:?}"
    );

    let wrong_server = status_from(3, &three, 1, 2);
    assert!(
        matches!(wrong_server, Err(ControlError::Rpc { .. })),
        "node 1 answering as node 2: {wrong_server:?}"
    );

    let (other_ca, other_key) = generate_ca().unwrap();
    let stranger = NodeTls::issue(&other_ca, &other_key, NodeId(3)).unwrap();
    let foreign = status_from(3, &stranger, 1, 1);
    assert!(matches!(foreign, Err(ControlError::Rpc { .. })), "{foreign:?}");
    server.shutdown();
}

#[test]
fn a_frame_longer_than_the_limit_is_refused_before_it_is_read() {
    use weir_cluster::rpc::{FRAME_BYTES_MAX, read_frame};
    let (ca, key) = generate_ca().unwrap();
    let one = NodeTls::issue(&ca, &key, NodeId(1)).unwrap();
    let two = NodeTls::issue(&ca, &key, NodeId(2)).unwrap();
    let runtime = tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let port = 17_107;
        let server_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let peers = BTreeMap::from([(NodeId(1), server_addr)]);
        let server = Transport::bind(NodeId(1), server_addr, BTreeMap::new(), &one).unwrap();
        let client = Transport::bind(NodeId(2), format!("127.0.0.2:{port}").parse().unwrap(), peers, &two).unwrap();
        let accept = async {
            let connection = server.endpoint().accept().await.unwrap().await.unwrap();
            let (_send, mut recv) = connection.accept_bi().await.unwrap();
            read_frame::<serde_json::Value>(&mut recv).await
        };
        let send = async {
            let quic = quinn::ClientConfig::new(std::sync::Arc::new(
                quinn::crypto::rustls::QuicClientConfig::try_from(two.client_config().unwrap()).unwrap(),
            ));
            let connection = client.endpoint().connect_with(quic, server_addr, "node-1.weir-cluster").unwrap().await.unwrap();
            let (mut send, _recv) = connection.open_bi().await.unwrap();
            let len = (FRAME_BYTES_MAX + 1) as u32;
            send.write_all(&len.to_le_bytes()).await.unwrap();
            send.write_all(b"{}").await.unwrap();
            connection
        };
        let (refused, _connection) = tokio_rt::join!(accept, send);
        assert!(
            matches!(refused, Err(ControlError::FrameTooLong { len, max }) if len == FRAME_BYTES_MAX + 1 && max == FRAME_BYTES_MAX),
            "{refused:?}"
        );
    });
}

/// Sends `call` to node 1 at `server` as node `me` (holding `tls`), from `own`.
fn call_as(me: u32, tls: &NodeTls, own: SocketAddr, server: SocketAddr, call: ControlCall) -> Response {
    let runtime = tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let peers = BTreeMap::from([(NodeId(1), server)]);
        let transport = Transport::bind(NodeId(me), own, peers, tls).unwrap();
        let answer = transport.call(NodeId(1), Request::Control(call), Duration::from_secs(20)).await;
        transport.endpoint().close(0u32.into(), b"done");
        answer.unwrap()
    })
}

fn node_info(id: u32, port: u16, host: &str) -> NodeInfo {
    NodeInfo {
        id: NodeId(id),
        cluster_addr: format!("127.0.0.{id}:{port}"),
        host: host.into(),
        port: 9000,
        shard_ports: vec![9001],
        kafka: None,
    }
}

/// A control call speaks for its sender only: a member may not register, heartbeat or propose
/// an ISR for another node (the certificate proves who sends, not whom the call is about). The
/// server refuses before anything reaches the controller.
#[test]
fn a_member_cannot_speak_for_another_node() {
    let (ca, key) = generate_ca().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = 17_125;
    let peers = (1..=3).map(|n| (NodeId(n), format!("127.0.0.{n}:{port}"))).collect();
    let info = node_info(1, port, "127.0.0.1");
    let server =
        start(ControlConfig::new(NodeId(1), peers, dir.path().into(), ca.clone(), key.clone(), info))
            .unwrap();
    let three = NodeTls::issue(&ca, &key, NodeId(3)).unwrap();
    let (own, to) =
        (format!("127.0.0.3:{port}").parse().unwrap(), format!("127.0.0.1:{port}").parse().unwrap());
    let alter = weir_cluster::rpc::WireAlter {
        partition: weir_replication::PartitionId(0),
        leader: NodeId(2),
        leader_epoch: 1,
        partition_epoch: 1,
        isr: vec![NodeId(2)],
    };
    let calls = [
        ControlCall::Register(node_info(1, port, "attacker.example")),
        ControlCall::Heartbeat { node: NodeId(2), incarnation: 1_000 },
        ControlCall::AlterPartition(alter),
    ];
    for call in calls {
        let answer = call_as(3, &three, own, to, call.clone());
        assert!(matches!(answer, Response::Refused(WireError::WrongPeer { .. })), "{call:?}: {answer:?}");
    }
    server.shutdown();
}

/// A node of the cluster's CA that is not a member (not in `peers`) is refused, here as the
/// controller of a one-node cluster: it may not register node 1's addresses or heartbeat.
#[test]
fn a_node_that_is_not_a_member_is_refused() {
    let (ca, key) = generate_ca().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = 17_122;
    let peers = vec![(NodeId(1), format!("127.0.0.1:{port}"))];
    let info = node_info(1, port, "127.0.0.1");
    let server =
        start(ControlConfig::new(NodeId(1), peers, dir.path().into(), ca.clone(), key.clone(), info))
            .unwrap();
    let mut meta = server.meta();
    let runtime = tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let registered = meta.wait_for(|m| m.nodes.contains_key(&NodeId(1)));
        let waited = tokio_rt::time::timeout(Duration::from_secs(20), registered).await;
        waited.expect("node 1 registered in time").expect("running");
    });
    let two = NodeTls::issue(&ca, &key, NodeId(2)).unwrap();
    let (own, to) =
        (format!("127.0.0.2:{port}").parse().unwrap(), format!("127.0.0.1:{port}").parse().unwrap());
    let calls = [
        ControlCall::Register(node_info(2, port, "attacker.example")),
        ControlCall::Heartbeat { node: NodeId(2), incarnation: 1_000 },
        ControlCall::Status,
    ];
    for call in calls {
        let answer = call_as(2, &two, own, to, call.clone());
        assert!(
            matches!(answer, Response::Refused(WireError::NotAMember { node: NodeId(2) })),
            "{call:?}: {answer:?}"
        );
    }
    assert!(!server.meta().borrow().nodes.contains_key(&NodeId(2)), "a stranger registered");
    server.shutdown();
}

/// A peer that opens a stream and announces a frame it never sends does not hold the server's
/// stream: the server gives up after its read timeout (`rpc_timeout_ms`) and closes it.
#[test]
fn a_request_that_never_arrives_is_given_up() {
    let (ca, key) = generate_ca().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = 17_127;
    let peers = (1..=3).map(|n| (NodeId(n), format!("127.0.0.{n}:{port}"))).collect();
    let mut config = ControlConfig::new(
        NodeId(1),
        peers,
        dir.path().into(),
        ca.clone(),
        key.clone(),
        node_info(1, port, "h"),
    );
    config.rpc_timeout_ms = 300;
    let server = start(config).unwrap();
    let two = NodeTls::issue(&ca, &key, NodeId(2)).unwrap();
    let runtime = tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ended = runtime.block_on(async {
        let own: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let client = Transport::bind(NodeId(2), own, BTreeMap::new(), &two).unwrap();
        let quic = quinn::ClientConfig::new(std::sync::Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(two.client_config().unwrap()).unwrap(),
        ));
        let connection =
            client.endpoint().connect_with(quic, to, "node-1.weir-cluster").unwrap().await.unwrap();
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&(1u32 << 20).to_le_bytes()).await.unwrap();
        send.write_all(b"{").await.unwrap();
        // The server ends the stream (without an answer) once it gives up; quinn's idle timeout
        // (3 s) is not what ends it: the connection stays alive with keep-alives.
        let ended = tokio_rt::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 10)).await;
        drop(send);
        client.endpoint().close(0u32.into(), b"done");
        ended
    });
    server.shutdown();
    assert!(ended.is_ok(), "the server still waits for the frame");
}

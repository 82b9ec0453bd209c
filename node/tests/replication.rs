//! Two real nodes in one process (node 1 on 127.0.0.1, node 2 on 127.0.0.2, the same ports),
//! one shard each, replicating a partition between them. The control plane is a test
//! `ControlLink` over a `weir_replication::Controller` and a `ClusterMeta`: topic creation,
//! ISR changes and heartbeats go through the controller, and every change is published to both
//! nodes' shards through the metadata watch, as the real control plane will.

mod common;

use common::{Node, batch_of, runtime};
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_cluster::tls::NodeTls;
use weir_cluster::{ClusterMeta, MetaCommand, NodeInfo, PartitionEntry, TopicEntry};
use weir_net::api::{Request, Response};
use weir_net::client::Target;
use weir_net::client::connection::Connection;
use weir_net::{Acks, ErrorCode};
use weir_node::config::NodeConfig;
use weir_node::control_link::{AlterError, ControlLink};
use weir_replication::{
    AlterPartition, Controller, ControllerConfig, NodeId, PartitionId, PartitionState, ReplicaAddr, ShardId,
};

/// The controller and the metadata it keeps, shared by both nodes' links.
#[derive(Debug)]
struct TestCluster {
    inner: Mutex<(Controller, ClusterMeta)>,
    tx: tokio_rt::sync::watch::Sender<Arc<ClusterMeta>>,
    started: Instant,
    /// The cluster CA (`cert_pem`, `key_pem`) the nodes' certificates are issued from.
    ca: (String, String),
}

impl TestCluster {
    fn new() -> Arc<Self> {
        let config = ControllerConfig {
            min_insync_replicas: 2,
            unclean_leader_election: false,
            // No heartbeats in this test but at starts: sessions never expire.
            session_timeout_ms: u64::MAX / 4,
        };
        let controller = Controller::new(config, &[NodeId(1), NodeId(2)], 0);
        let (tx, _) = tokio_rt::sync::watch::channel(Arc::new(ClusterMeta::default()));
        Arc::new(Self {
            inner: Mutex::new((controller, ClusterMeta::default())),
            tx,
            started: Instant::now(),
            ca: weir_cluster::tls::generate_ca().unwrap(),
        })
    }

    /// A certificate for `node` under the cluster CA, as the control plane issues at a start.
    fn issue(&self, node: u32) -> NodeTls {
        NodeTls::issue(&self.ca.0, &self.ca.1, NodeId(node)).unwrap()
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Applies the controller's committed changes to the metadata and publishes it.
    fn commit(&self, inner: &mut (Controller, ClusterMeta)) {
        while let Some((partition, state)) = inner.0.poll_record() {
            inner.1.apply(&MetaCommand::PartitionChanged { partition, state }).unwrap();
        }
        while inner.0.poll_update().is_some() {}
        self.tx.send_replace(Arc::new(inner.1.clone()));
    }

    fn register(&self, node: u32, host: &str, port: u16) {
        let info = NodeInfo {
            id: NodeId(node),
            cluster_addr: format!("{host}:{}", port + 100),
            host: host.into(),
            port,
            shard_ports: vec![port + 1],
            kafka: None,
        };
        let mut inner = self.inner.lock().unwrap();
        inner.1.apply(&MetaCommand::RegisterNode(info)).unwrap();
        self.commit(&mut inner);
    }

    /// A heartbeat of a new incarnation: what a node's control plane sends at every start.
    fn heartbeat(&self, node: u32, incarnation: u64) {
        let mut inner = self.inner.lock().unwrap();
        let now = self.now_ms();
        inner.0.handle_heartbeat(now, NodeId(node), incarnation).unwrap();
        self.commit(&mut inner);
        // As the controller does: the start is recorded once what it changed is committed.
        inner.1.apply(&MetaCommand::NodeStarted { node: NodeId(node), incarnation }).unwrap();
        self.commit(&mut inner);
    }

    /// Creates a one-partition topic on `nodes` (shard 0 each), in preference order: the first
    /// leads.
    fn create_topic(&self, name: &str, nodes: [u32; 2]) -> PartitionId {
        let mut inner = self.inner.lock().unwrap();
        let id = self.create_locked(&mut inner, name, nodes);
        self.commit(&mut inner);
        id
    }

    /// Deletes the topic and creates it again, published as one change: the nodes see the same
    /// name with another partition id.
    fn recreate_topic(&self, name: &str, nodes: [u32; 2]) -> PartitionId {
        let mut inner = self.inner.lock().unwrap();
        let old = inner.1.topics[name].partitions.clone();
        inner.1.apply(&MetaCommand::DeleteTopic { name: name.into() }).unwrap();
        for id in old {
            inner.0.remove_partition(id);
        }
        let id = self.create_locked(&mut inner, name, nodes);
        self.commit(&mut inner);
        id
    }

    fn create_locked(
        &self,
        inner: &mut (Controller, ClusterMeta),
        name: &str,
        nodes: [u32; 2],
    ) -> PartitionId {
        let id = PartitionId(inner.1.next_partition_id);
        let now = self.now_ms();
        let state = inner.0.create_partition(id, nodes.map(NodeId).to_vec(), now).unwrap().clone();
        while inner.0.poll_record().is_some() {}
        let replicas = nodes.map(|n| ReplicaAddr { node: NodeId(n), shard: ShardId(0) }).to_vec();
        let topic = TopicEntry {
            name: name.into(),
            partitions: vec![id],
            replication_factor: 2,
            min_insync_replicas: 2,
            retention_ms: None,
            retention_bytes: None,
            cleanup_policy: Default::default(),
            delete_retention_ms: None,
        };
        let partitions = vec![PartitionEntry { topic: name.into(), index: 0, replicas, state }];
        inner.1.apply(&MetaCommand::CreateTopic { topic, partitions }).unwrap();
        id
    }

    fn state(&self, id: PartitionId) -> PartitionState {
        self.inner.lock().unwrap().1.partitions[&id].state.clone()
    }
}

#[derive(Debug)]
struct TestLink {
    node: NodeId,
    incarnation: u64,
    cluster: Arc<TestCluster>,
    identity: NodeTls,
}

impl ControlLink for TestLink {
    fn node_id(&self) -> NodeId {
        self.node
    }

    fn incarnation(&self) -> u64 {
        self.incarnation
    }

    fn identity(&self) -> Option<NodeTls> {
        Some(self.identity.clone())
    }

    fn meta(&self) -> tokio_rt::sync::watch::Receiver<Arc<ClusterMeta>> {
        self.cluster.tx.subscribe()
    }

    fn alter_partition(&self, req: AlterPartition) -> BoxFuture<'static, Result<PartitionState, AlterError>> {
        let mut inner = self.cluster.inner.lock().unwrap();
        let now = self.cluster.now_ms();
        let answer = inner.0.handle_alter_partition(now, &req).map_err(AlterError::Refused);
        self.cluster.commit(&mut inner);
        Box::pin(futures::future::ready(answer))
    }
}

/// A node running in this process until stopped.
struct RunningNode {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningNode {
    fn start(
        cluster: &Arc<TestCluster>,
        node: u32,
        incarnation: u64,
        dir: &Path,
        host: &str,
        port: u16,
    ) -> Self {
        // The controller hears of this start before the node acts on any state (ControlLink).
        cluster.heartbeat(node, incarnation);
        let config = NodeConfig {
            data_dir: dir.to_owned(),
            listen: format!("{host}:{port}").parse().unwrap(),
            shards: 1,
            storage_min_free_bytes: 0,
            kafka_listen: "off".into(),
            ..NodeConfig::default()
        };
        let identity = cluster.issue(node);
        let link: Arc<dyn ControlLink> =
            Arc::new(TestLink { node: NodeId(node), incarnation, cluster: cluster.clone(), identity });
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            weir_node::server::run_with_link(config, Some(link), stopping, move |_| {
                ready_tx.send(()).unwrap();
            })
            .unwrap();
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("node {node} ({incarnation}) on {host}:{port} starts: {e}"));
        Self { stop, thread: Some(thread) }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn produce(target: &Target, acks: Acks, batch: &[u8]) -> (ErrorCode, String, u64) {
    produce_within(target, acks, batch, 10_000).await
}

async fn produce_within(
    target: &Target,
    acks: Acks,
    batch: &[u8],
    timeout_ms: u32,
) -> (ErrorCode, String, u64) {
    let mut conn = Connection::connect(target).await.unwrap();
    let req = Request::Produce { topic: "t".into(), partition: 0, acks, timeout_ms, batches: batch };
    match conn.call(&req).await.unwrap().response().unwrap() {
        Response::Produce { error, message, base_offset, .. } => (error, message, base_offset),
        other => panic!("{other:?}"),
    }
}

/// The high watermark and batches a consumer is served from `offset`.
async fn fetch(target: &Target, offset: u64) -> (ErrorCode, u64, Vec<u8>) {
    let mut conn = Connection::connect(target).await.unwrap();
    let req = Request::Fetch { topic: "t".into(), partition: 0, offset, max_bytes: 1 << 20, max_wait_ms: 0 };
    match conn.call(&req).await.unwrap().response().unwrap() {
        Response::Fetch { error, high_watermark, batches, .. } => (error, high_watermark, batches.to_vec()),
        other => panic!("{other:?}"),
    }
}

/// The bytes of the partition's segment files, without the zeros past the data (preallocated
/// space).
fn segment_bytes(dir: &Path) -> Vec<u8> {
    let pdir = dir.join("partitions").join("t-0");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    names.sort();
    let mut all = Vec::new();
    for n in names {
        let mut bytes = std::fs::read(n).unwrap();
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        all.extend(bytes);
    }
    all
}

/// Whether `haystack` holds the batch's records bytes (everything after the header fields a
/// leader patches: base offset and leader epoch, in its first 16 bytes).
/// The needle goes without its trailing zeros, as [`segment_bytes`] cuts them at the end.
fn holds_batch(haystack: &[u8], batch: &[u8]) -> bool {
    let mut needle = &batch[16..];
    while let [rest @ .., 0] = needle {
        needle = rest;
    }
    haystack.windows(needle.len()).any(|w| w == needle)
}

struct Setup {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    dir1: PathBuf,
    dir2: PathBuf,
    port: u16,
    cluster: Arc<TestCluster>,
    partition: PartitionId,
}

fn setup(nodes: [u32; 2]) -> Setup {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = Node::free_port(1);
    let cluster = TestCluster::new();
    cluster.register(1, "127.0.0.1", port);
    cluster.register(2, "127.0.0.2", port);
    let partition = cluster.create_topic("t", nodes);
    let (dir1, dir2) = (d1.path().to_owned(), d2.path().to_owned());
    Setup { _dirs: (d1, d2), dir1, dir2, port, cluster, partition }
}

/// acks=all is answered only once the follower holds the batch durably; the follower's log
/// then holds the leader's bytes; a produce to the follower is refused with NotLeader naming
/// the leader.
#[test]
fn acks_all_waits_for_the_follower_and_a_follower_refuses_produce() {
    let s = setup([1, 2]);
    let n1 = RunningNode::start(&s.cluster, 1, 1, &s.dir1, "127.0.0.1", s.port);
    let n2 = RunningNode::start(&s.cluster, 2, 1, &s.dir2, "127.0.0.2", s.port);
    let leader = Target::tcp(format!("127.0.0.1:{}", s.port));
    let follower = Target::tcp(format!("127.0.0.2:{}", s.port));
    runtime().block_on(async {
        let batch = batch_of(&[b"one", b"two", b"three"]);
        let (error, message, base) = produce(&leader, Acks::All, &batch).await;
        assert_eq!(error, ErrorCode::None, "{message}");
        assert_eq!(base, 0);
        // Acknowledged: the follower has it in its files already (durable there).
        let on2 = segment_bytes(&s.dir2);
        assert!(
            holds_batch(&on2, &batch),
            "the follower's log lacks an acked batch: {} bytes {:?}",
            on2.len(),
            std::fs::read_dir(s.dir2.join("partitions"))
                .map(|d| d.map(|e| e.unwrap().path()).collect::<Vec<_>>())
        );
        let (error, hw, batches) = fetch(&leader, 0).await;
        assert_eq!((error, hw), (ErrorCode::None, 3));
        assert_eq!(&batches[16..], &batch[16..]);
        let (error, message, _) = produce(&follower, Acks::All, &batch).await;
        assert_eq!(error, ErrorCode::NotLeader, "{message}");
        assert!(message.contains(&format!("node 1 at 127.0.0.1:{}", s.port)), "{message}");
        let (error, _, _) = fetch(&follower, 0).await;
        assert_eq!(error, ErrorCode::NotLeader, "consumers read from the leader");
    });
    n2.stop();
    n1.stop();
    assert_eq!(segment_bytes(&s.dir1), segment_bytes(&s.dir2), "the logs hold the same bytes");
}

/// A follower that was down catches up; meanwhile consumers do not see what only the leader
/// holds (the high watermark waits for the ISR), and then they do. (Node 2 is down from the
/// start: a node restarted within one process would need a third glommio executor, past the
/// RLIMIT_MEMLOCK budget of a test process.)
#[test]
fn a_follower_that_was_down_catches_up_and_the_high_watermark_follows() {
    let s = setup([1, 2]);
    let n1 = RunningNode::start(&s.cluster, 1, 1, &s.dir1, "127.0.0.1", s.port);
    let leader = Target::tcp(format!("127.0.0.1:{}", s.port));
    let rt = runtime();
    let batches: Vec<Vec<u8>> = (0..20).map(|i| batch_of(&[format!("record {i}").as_bytes(); 50])).collect();
    rt.block_on(async {
        for b in &batches {
            let (error, message, _) = produce(&leader, Acks::Leader, b).await;
            assert_eq!(error, ErrorCode::None, "{message}");
        }
        // Durable on the leader, not on node 2, which the ISR still holds: not visible.
        let (error, hw, read) = fetch(&leader, 0).await;
        assert_eq!((error, hw), (ErrorCode::None, 0));
        assert!(read.is_empty());
    });
    assert_eq!(s.cluster.state(s.partition).isr, vec![NodeId(1), NodeId(2)]);
    let n2 = RunningNode::start(&s.cluster, 2, 1, &s.dir2, "127.0.0.2", s.port);
    rt.block_on(async {
        // An acks=all produce completes once node 2 caught up with everything before it.
        let last = batch_of(&[b"last"]);
        let (error, message, base) = produce(&leader, Acks::All, &last).await;
        assert_eq!(error, ErrorCode::None, "{message}");
        assert_eq!(base, 20 * 50);
        let (error, hw, read) = fetch(&leader, 0).await;
        assert_eq!((error, hw), (ErrorCode::None, base + 1));
        assert!(holds_batch(&read, &batches[0]));
    });
    n2.stop();
    n1.stop();
    let (log1, log2) = (segment_bytes(&s.dir1), segment_bytes(&s.dir2));
    assert!(batches.iter().all(|b| holds_batch(&log2, b)));
    assert_eq!(log1, log2, "the logs hold the same bytes");
}

/// The metadata says node 2 leads: node 1, which holds a replica too, refuses produce with
/// NotLeader naming node 2 and where to reach it; node 2 takes it, with node 1 in sync.
#[test]
fn a_node_the_metadata_does_not_name_leader_refuses_produce() {
    let s = setup([2, 1]);
    let n1 = RunningNode::start(&s.cluster, 1, 1, &s.dir1, "127.0.0.1", s.port);
    let n2 = RunningNode::start(&s.cluster, 2, 1, &s.dir2, "127.0.0.2", s.port);
    assert_eq!(s.cluster.state(s.partition).leader, Some(NodeId(2)));
    runtime().block_on(async {
        let batch = batch_of(&[b"x"]);
        let (error, message, _) =
            produce(&Target::tcp(format!("127.0.0.1:{}", s.port)), Acks::Leader, &batch).await;
        assert_eq!(error, ErrorCode::NotLeader, "{message}");
        assert!(message.contains(&format!("node 2 at 127.0.0.2:{}", s.port)), "{message}");
        let (error, message, base) =
            produce(&Target::tcp(format!("127.0.0.2:{}", s.port)), Acks::All, &batch).await;
        assert_eq!((error, base), (ErrorCode::None, 0), "{message}");
    });
    assert!(holds_batch(&segment_bytes(&s.dir1), &batch_of(&[b"x"])), "node 1 follows node 2");
    n2.stop();
    n1.stop();
}

/// A topic deleted and created again under the same name between two looks at the metadata
/// starts empty on both nodes: the old partition's files are removed before the new one opens.
#[test]
fn a_topic_deleted_and_created_again_starts_empty() {
    let s = setup([1, 2]);
    let n1 = RunningNode::start(&s.cluster, 1, 1, &s.dir1, "127.0.0.1", s.port);
    let n2 = RunningNode::start(&s.cluster, 2, 1, &s.dir2, "127.0.0.2", s.port);
    let leader = Target::tcp(format!("127.0.0.1:{}", s.port));
    let (old, new) = (batch_of(&[b"old"]), batch_of(&[b"new"]));
    runtime().block_on(async {
        assert_eq!(produce(&leader, Acks::All, &old).await.0, ErrorCode::None);
        assert_ne!(s.cluster.recreate_topic("t", [1, 2]), s.partition);
        // Until the leader's shard applied the change, the old partition still answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (error, hw, _) = fetch(&leader, 0).await;
            if (error, hw) == (ErrorCode::None, 0) {
                break;
            }
            assert!(Instant::now() < deadline, "the topic was never created again");
            tokio_rt::time::sleep(Duration::from_millis(20)).await;
        }
        let (error, message, base) = produce(&leader, Acks::All, &new).await;
        assert_eq!((error, base), (ErrorCode::None, 0), "{message}");
        let (error, hw, read) = fetch(&leader, 0).await;
        assert_eq!((error, hw), (ErrorCode::None, 1));
        assert!(holds_batch(&read, &new) && !holds_batch(&read, &old));
    });
    n2.stop();
    n1.stop();
    for dir in [&s.dir1, &s.dir2] {
        let log = segment_bytes(dir);
        assert!(holds_batch(&log, &new) && !holds_batch(&log, &old), "{}", dir.display());
    }
}

/// A `ReplicaFetch` moves the leader's high watermark: only a peer that proves, with a
/// certificate from the cluster CA, that it is the follower it names is served. Over TCP,
/// over QUIC without a certificate, or with another node's certificate, a fetch claiming to be
/// node 2 (which never ran) is refused, and the high watermark stays where it was.
#[test]
fn a_forged_replica_fetch_does_not_move_the_high_watermark() {
    use std::io::{Read, Write};
    use weir_net::frame::{FLAG_ERROR, FRAME_HEADER_BYTES, FrameHeader, encode_frame};
    use weir_node::replication::wire::{REPLICA_FETCH_API, REPLICA_FETCH_VERSION, ReplicaFetch};
    let s = setup([1, 2]);
    let n1 = RunningNode::start(&s.cluster, 1, 1, &s.dir1, "127.0.0.1", s.port);
    let leader = Target::tcp(format!("127.0.0.1:{}", s.port));
    let rt = runtime();
    rt.block_on(async {
        let (error, message, _) = produce(&leader, Acks::Leader, &batch_of(&[b"a", b"b", b"c"])).await;
        assert_eq!(error, ErrorCode::None, "{message}");
        let (error, hw, _) = fetch(&leader, 0).await;
        assert_eq!((error, hw), (ErrorCode::None, 0), "node 2 holds nothing");
    });
    let epoch = s.cluster.state(s.partition).leader_epoch;
    let forged = weir_replication::FetchRequest {
        partition: s.partition,
        replica: NodeId(2),
        request_id: 1,
        leader_epoch: epoch,
        fetch_offset: 3,
        log_start: 0,
        last_fetched_epoch: Some(epoch),
        durable_offset: u64::MAX,
    };
    let mut w = weir_net::wire::Writer::default();
    ReplicaFetch { follower: NodeId(2), partitions: vec![forged] }.encode(&mut w);
    let frame = encode_frame(REPLICA_FETCH_API, REPLICA_FETCH_VERSION, 1, 0, &w.buf);
    let refused = |head: &[u8; FRAME_HEADER_BYTES], how: &str| {
        let header = FrameHeader::decode(head, 1 << 20).unwrap();
        assert_ne!(header.flags & FLAG_ERROR, 0, "a forged fetch {how} was served");
    };
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    tcp.write_all(&frame).unwrap();
    let mut head = [0u8; FRAME_HEADER_BYTES];
    tcp.read_exact(&mut head).unwrap();
    refused(&head, "over TCP");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    rt.block_on(async {
        let anonymous = weir_net::tls::client_config(&weir_net::tls::Trust::Insecure).unwrap();
        refused(&quic_call(anonymous, addr, &frame).await, "over QUIC without a certificate");
        let mut node3 = s.cluster.issue(3).client_config().unwrap();
        node3.alpn_protocols = vec![weir_net::tls::ALPN.to_vec()];
        let node3 = quinn::crypto::rustls::QuicClientConfig::try_from(node3).unwrap();
        let node3 = quinn::ClientConfig::new(Arc::new(node3));
        refused(&quic_call(node3, addr, &frame).await, "with node 3's certificate");
        let (error, hw, _) = fetch(&leader, 0).await;
        assert_eq!((error, hw), (ErrorCode::None, 0), "a forged fetch moved the high watermark");
    });
    n1.stop();
}

/// Sends `frame` on a QUIC connection to node 1 (dialled by its cluster name) made with
/// `config`; the answer's header.
async fn quic_call(
    config: quinn::ClientConfig,
    addr: std::net::SocketAddr,
    frame: &[u8],
) -> [u8; weir_net::frame::FRAME_HEADER_BYTES] {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let conn = endpoint.connect(addr, "node-1.weir-cluster").unwrap().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(frame).await.unwrap();
    let mut head = [0u8; weir_net::frame::FRAME_HEADER_BYTES];
    recv.read_exact(&mut head).await.unwrap();
    head
}

/// A replica whose partition could not be opened when the metadata was applied is opened later
/// by upkeep's retry; it must then be given its partition's state and follow, not wait for the
/// next change of the metadata (which, with the follower out of the picture, may never come
/// before the ISR shrinks below `min_insync_replicas`).
#[test]
fn a_replica_opened_by_upkeep_follows_its_leader() {
    let s = setup([1, 2]);
    // Node 2 cannot create the partition's directory at first.
    let parts = s.dir2.join("partitions");
    std::fs::create_dir_all(&parts).unwrap();
    let blocker = parts.join("t-0");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let n1 = RunningNode::start(&s.cluster, 1, 1, &s.dir1, "127.0.0.1", s.port);
    let n2 = RunningNode::start(&s.cluster, 2, 1, &s.dir2, "127.0.0.2", s.port);
    std::fs::remove_file(&blocker).unwrap();
    let leader = Target::tcp(format!("127.0.0.1:{}", s.port));
    runtime().block_on(async {
        let batch = batch_of(&[b"one"]);
        let produce = produce(&leader, Acks::All, &batch);
        let answered = tokio_rt::time::timeout(Duration::from_secs(10), produce).await;
        let opened = blocker.is_dir();
        let (error, message, _) =
            answered.unwrap_or_else(|_| panic!("acks=all unanswered (node 2 opened its replica: {opened})"));
        assert_eq!(error, ErrorCode::None, "{message}");
    });
    n2.stop();
    n1.stop();
}

/// acks=all with the follower down cannot be acknowledged (min ISR 2): the produce is answered
/// `RequestTimedOut` after its `timeout_ms`, not held without limit; its batch stays appended,
/// so the next produce lands after it once the follower is back.
#[test]
fn acks_all_is_answered_request_timed_out_after_its_timeout() {
    let s = setup([1, 2]);
    let n1 = RunningNode::start(&s.cluster, 1, 1, &s.dir1, "127.0.0.1", s.port);
    let leader = Target::tcp(format!("127.0.0.1:{}", s.port));
    let rt = runtime();
    rt.block_on(async {
        let first = batch_of(&[b"first"]);
        let produce = produce_within(&leader, Acks::All, &first, 300);
        let answered = tokio_rt::time::timeout(Duration::from_secs(8), produce).await;
        let (error, message, _) = answered.expect("acks=all answered within its timeout");
        assert_eq!(error, ErrorCode::RequestTimedOut, "{message}");
    });
    let n2 = RunningNode::start(&s.cluster, 2, 1, &s.dir2, "127.0.0.2", s.port);
    rt.block_on(async {
        let (error, message, base) = produce(&leader, Acks::All, &batch_of(&[b"second"])).await;
        assert_eq!((error, base), (ErrorCode::None, 1), "{message}");
    });
    n2.stop();
    n1.stop();
}

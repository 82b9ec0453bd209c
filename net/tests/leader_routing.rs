//! The SDK follows a partition's leader: a producer or consumer refused with `NotLeader` asks
//! for metadata again and goes where it now points, and a bootstrap list whose first address is
//! dead still connects. Two in-process fake nodes stand for a cluster whose leader moved.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio_rt::io::{AsyncReadExt, AsyncWriteExt};
use weir_log::batch::{BatchBuilder, ProducerStamp, Record};
use weir_net::api::{PartitionInfo, ShardAddr, TopicInfo};
use weir_net::client::{
    Admin, ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek, Target,
};
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader, encode_frame};
use weir_net::wire::Writer;
use weir_net::{ErrorCode, NodeInfo, PartitionReplication, Request, Response, TopicConfig};

/// Two fake nodes, 1 and 2, with one topic `t` of one partition. Metadata names
/// `metadata_leader`; only node 2 leads it in truth, and node 1 refuses produces and fetches
/// with `NotLeader`, after which its metadata catches up.
struct Cluster {
    ports: [u16; 2],
    metadata_leader: AtomicU32,
    /// Produces and fetches each node received.
    produces: [AtomicU32; 2],
    fetches: [AtomicU32; 2],
    batch: Vec<u8>,
    /// Node 1 dies at its first produce or fetch instead of refusing it: it closes the
    /// connection and stops listening.
    node_1_dies: bool,
    /// Node 1's listener, to stop it.
    accept_1: std::sync::Mutex<Option<tokio_rt::task::JoinHandle<()>>>,
}

impl Cluster {
    fn metadata(&self) -> Response<'static> {
        let node = |i: usize| NodeInfo {
            node_id: i as u32 + 1,
            host: "127.0.0.1".into(),
            port: self.ports[i],
            shards: vec![ShardAddr { shard: 0, host: "127.0.0.1".into(), port: self.ports[i] }],
        };
        let leader = self.metadata_leader.load(Ordering::SeqCst);
        let replication = PartitionReplication {
            leader: Some(leader),
            leader_shard: 0,
            leader_epoch: leader,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            high_watermark: 1,
            log_end: 1,
        };
        let partition = PartitionInfo {
            partition: 0,
            shard: 0,
            log_start: 0,
            log_end: 0,
            health: None,
            replication: Some(replication),
        };
        let topic = TopicInfo {
            name: "t".into(),
            error: ErrorCode::None,
            config: TopicConfig::default(),
            partitions: vec![partition],
        };
        Response::Metadata { shards: node(0).shards, nodes: vec![node(0), node(1)], topics: vec![topic] }
    }

    /// Node `me`'s answer to `req`.
    fn answer(&self, me: usize, req: Request<'_>) -> Response<'_> {
        let not_leader =
            || format!("node {} does not lead t/0; node 2 at 127.0.0.1:{} does", me + 1, self.ports[1]);
        match req {
            Request::Metadata { .. } => self.metadata(),
            Request::InitProducerId => producer_id(),
            Request::Produce { .. } => {
                self.produces[me].fetch_add(1, Ordering::SeqCst);
                if me == 0 {
                    self.metadata_leader.store(2, Ordering::SeqCst);
                    if self.node_1_dies {
                        self.accept_1.lock().unwrap().take().expect("node 1 listening").abort();
                        return Response::ApiVersions { apis: vec![] };
                    }
                    let message = not_leader();
                    return Response::Produce {
                        error: ErrorCode::NotLeader,
                        message,
                        base_offset: 0,
                        log_start: 0,
                    };
                }
                Response::Produce {
                    error: ErrorCode::None,
                    message: String::new(),
                    base_offset: 41,
                    log_start: 0,
                }
            }
            Request::Fetch { .. } => {
                self.fetches[me].fetch_add(1, Ordering::SeqCst);
                if me == 0 {
                    self.metadata_leader.store(2, Ordering::SeqCst);
                    if self.node_1_dies {
                        self.accept_1.lock().unwrap().take().expect("node 1 listening").abort();
                        return Response::ApiVersions { apis: vec![] };
                    }
                    let message = not_leader();
                    let e = ErrorCode::NotLeader;
                    return Response::Fetch {
                        error: e,
                        message,
                        high_watermark: 0,
                        log_start: 0,
                        batches: &[],
                    };
                }
                let (error, message) = (ErrorCode::None, String::new());
                Response::Fetch { error, message, high_watermark: 1, log_start: 0, batches: &self.batch }
            }
            Request::ListOffsets { .. } => {
                if me == 0 {
                    self.metadata_leader.store(2, Ordering::SeqCst);
                    let message = not_leader();
                    return Response::ListOffsets { error: ErrorCode::NotLeader, message, offset: 0 };
                }
                Response::ListOffsets { error: ErrorCode::None, message: String::new(), offset: 41 }
            }
            other => panic!("not served here: {other:?}"),
        }
    }
}

async fn serve(mut s: tokio_rt::net::TcpStream, me: usize, cluster: Arc<Cluster>) {
    loop {
        let mut head = [0u8; FRAME_HEADER_BYTES];
        if s.read_exact(&mut head).await.is_err() {
            return;
        }
        let h = FrameHeader::decode(&head, usize::MAX).unwrap();
        let mut body = vec![0u8; h.body_len];
        s.read_exact(&mut body).await.unwrap();
        let req = Request::decode(h.api_key, h.api_version, &body).unwrap();
        let resp = cluster.answer(me, req);
        if matches!(resp, Response::ApiVersions { .. }) {
            // Dead: the connection closes unanswered.
            return;
        }
        let mut w = Writer::default();
        resp.encode_version(h.api_version, &mut w).unwrap();
        let frame = encode_frame(h.api_key, h.api_version, h.correlation_id, 0, &w.buf);
        if s.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Starts the two nodes; returns the cluster's shared state.
async fn start() -> Arc<Cluster> {
    start_with(false).await
}

async fn start_with(node_1_dies: bool) -> Arc<Cluster> {
    let a = tokio_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = tokio_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut builder = BatchBuilder::new(1 << 16);
    builder.push(&Record { key: None, value: Some(b"from the leader"), headers: &[], timestamp: 1 }).unwrap();
    let cluster = Arc::new(Cluster {
        ports: [a.local_addr().unwrap().port(), b.local_addr().unwrap().port()],
        metadata_leader: AtomicU32::new(1),
        produces: Default::default(),
        fetches: Default::default(),
        batch: builder.seal_reset(ProducerStamp::default()).as_bytes().to_vec(),
        node_1_dies,
        accept_1: std::sync::Mutex::new(None),
    });
    for (me, listener) in [a, b].into_iter().enumerate() {
        let c = cluster.clone();
        let task = tokio_rt::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio_rt::spawn(serve(s, me, c.clone()));
            }
        });
        if me == 0 {
            *cluster.accept_1.lock().unwrap() = Some(task);
        }
    }
    cluster
}

/// The fake nodes' answer to InitProducerId: producer 1.
fn producer_id() -> Response<'static> {
    Response::InitProducerId {
        error: ErrorCode::None,
        message: String::new(),
        producer_id: 1,
        producer_epoch: 0,
    }
}

/// A port nothing listens on: bound, then released.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn runtime() -> tokio_rt::runtime::Runtime {
    tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_producer_refused_by_a_former_leader_sends_to_the_new_one() {
    runtime().block_on(async {
        let cluster = start().await;
        // Bootstrapped through node 1, which metadata still names as the leader.
        let target = Target::tcp(format!("127.0.0.1:{}", cluster.ports[0]));
        let config = ProducerConfig { linger_ms: 0, retry_backoff_ms: 1, ..ProducerConfig::default() };
        let producer = Producer::connect(&target, config).await.unwrap();
        let record = ProducerRecord {
            topic: "t".into(),
            partition: Some(0),
            value: Some(b"v".to_vec()),
            ..Default::default()
        };
        assert_eq!(producer.send(record).await.unwrap(), 41);
        assert_eq!(cluster.produces[0].load(Ordering::SeqCst), 1, "one attempt at the former leader");
        assert_eq!(cluster.produces[1].load(Ordering::SeqCst), 1, "then the new leader's");
        producer.close().await.unwrap();
    });
}

#[test]
fn a_producer_whose_leader_dies_asks_metadata_and_sends_to_the_new_one() {
    runtime().block_on(async {
        let cluster = start_with(true).await;
        // Bootstrapped through node 2; metadata names node 1 as the leader until it dies.
        let target = Target::tcp(format!("127.0.0.1:{}", cluster.ports[1]));
        let config = ProducerConfig { linger_ms: 0, retry_backoff_ms: 1, ..ProducerConfig::default() };
        let producer = Producer::connect(&target, config).await.unwrap();
        let record = ProducerRecord {
            topic: "t".into(),
            partition: Some(0),
            value: Some(b"v".to_vec()),
            ..Default::default()
        };
        assert_eq!(producer.send(record).await.unwrap(), 41);
        assert_eq!(cluster.produces[0].load(Ordering::SeqCst), 1, "one attempt at the node that died");
        assert_eq!(cluster.produces[1].load(Ordering::SeqCst), 1, "then the new leader's");
        producer.close().await.unwrap();
    });
}

#[test]
fn a_consumer_refused_by_a_former_leader_reads_from_the_new_one() {
    runtime().block_on(async {
        let cluster = start().await;
        let target = Target::tcp(format!("127.0.0.1:{}", cluster.ports[0]));
        let config = ConsumerConfig { retry_backoff_ms: 1, ..ConsumerConfig::default() };
        let mut consumer = Consumer::connect(&target, config).await.unwrap();
        consumer.assign("t", 0, Seek::Offset(0)).await.unwrap();
        let mut records = Vec::new();
        for _ in 0..3 {
            records = consumer.poll(100).await.unwrap();
            if !records.is_empty() {
                break;
            }
        }
        assert_eq!(records.len(), 1, "the refusal is not the application's business");
        assert_eq!(records[0].value.as_deref(), Some(&b"from the leader"[..]));
        assert_eq!(cluster.fetches[0].load(Ordering::SeqCst), 1);
        assert_eq!(consumer.position("t", 0), Some(1));
    });
}

#[test]
fn a_bootstrap_list_whose_first_address_is_dead_still_connects() {
    runtime().block_on(async {
        let cluster = start().await;
        cluster.metadata_leader.store(2, Ordering::SeqCst);
        let target = Target::tcp(format!("127.0.0.1:{}, 127.0.0.1:{}", dead_port(), cluster.ports[1]));
        assert_eq!(target.addrs().len(), 2);
        let mut admin = Admin::connect(&target).await.unwrap();
        assert_eq!(admin.list_topics().await.unwrap()[0].name, "t");
        let producer =
            Producer::connect(&target, ProducerConfig { linger_ms: 0, ..Default::default() }).await.unwrap();
        let record = ProducerRecord {
            topic: "t".into(),
            partition: Some(0),
            value: Some(b"v".to_vec()),
            ..Default::default()
        };
        assert_eq!(producer.send(record).await.unwrap(), 41);
        // A list of dead addresses only fails, naming the last one tried.
        let dead = Target::tcp(format!("127.0.0.1:{},127.0.0.1:{}", dead_port(), dead_port()));
        assert!(Admin::connect(&dead).await.is_err());
    });
}

#[test]
fn a_consumer_whose_only_bootstrap_node_dies_asks_a_node_metadata_named() {
    runtime().block_on(async {
        let cluster = start_with(true).await;
        // Bootstrapped through node 1 alone, which leads until it dies; node 2 is known only
        // from metadata.
        let target = Target::tcp(format!("127.0.0.1:{}", cluster.ports[0]));
        let config = ConsumerConfig { retry_backoff_ms: 1, ..ConsumerConfig::default() };
        let mut consumer = Consumer::connect(&target, config).await.unwrap();
        consumer.assign("t", 0, Seek::Offset(0)).await.unwrap();
        let mut records = Vec::new();
        for _ in 0..3 {
            records = consumer.poll(100).await.unwrap();
            if !records.is_empty() {
                break;
            }
        }
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].value.as_deref(), Some(&b"from the leader"[..]));
        assert_eq!(cluster.fetches[1].load(Ordering::SeqCst), 1);
    });
}

/// A seek whose partition's leader moved since the consumer looked follows it: it asks for
/// metadata again and resolves the offset at the new leader (it once failed `NotLeader`).
#[test]
fn a_consumer_seek_refused_by_a_former_leader_resolves_at_the_new_one() {
    runtime().block_on(async {
        let cluster = start().await;
        let target = Target::tcp(format!("127.0.0.1:{}", cluster.ports[0]));
        let mut consumer = Consumer::connect(&target, ConsumerConfig::default()).await.unwrap();
        consumer.assign("t", 0, Seek::Offset(0)).await.unwrap();
        consumer.seek("t", 0, Seek::Latest).await.unwrap();
        assert_eq!(consumer.position("t", 0), Some(41));
    });
}

/// `min_insync_replicas` above the replication factor (65535 reads as "none" on the wire) is
/// refused before anything is sent.
#[test]
fn min_insync_replicas_above_the_replication_factor_is_refused_before_sending() {
    runtime().block_on(async {
        let cluster = start().await;
        let target = Target::tcp(format!("127.0.0.1:{}", cluster.ports[1]));
        let mut admin = Admin::connect(&target).await.unwrap();
        let created = admin.create_replicated_topic("u", 1, 3, Some(u16::MAX), TopicConfig::default()).await;
        match created {
            Err(ClientError::MinInsyncAboveReplication {
                min_insync_replicas: u16::MAX,
                replication_factor: 3,
            }) => {}
            other => panic!("not refused: {other:?}"),
        }
    });
}

/// Two fake nodes whose leader moves while batches are in flight at the former one.
mod leader_move {
    use super::runtime;

    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio_rt::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rt::sync::watch;
    use tokio_rt::time::Instant;
    use weir_log::batch::BatchView;
    use weir_net::api::{PartitionInfo, ShardAddr, TopicInfo};
    use weir_net::client::{ClientError, Producer, ProducerConfig, ProducerRecord, Target};
    use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader, encode_frame};
    use weir_net::wire::Writer;
    use weir_net::{ErrorCode, NodeInfo, PartitionReplication, Request, Response, TopicConfig};

    /// Node 1 led the partition; its first produce moves the leadership (metadata names node 2 from
    /// then on); it refuses every produce `NotLeader`, its n-th once `release` reaches n. With
    /// `node_1_silent`, node 1 never answers a produce at all. Node 2 stores what it is sent, in
    /// order, and refuses it `LeaderNotAvailable` (an election under way) until `elected`.
    struct MovingLeader {
        ports: [u16; 2],
        leader: AtomicU32,
        node_1_silent: bool,
        node_1_produces: watch::Sender<u32>,
        node_2_produces: watch::Sender<u32>,
        release: watch::Sender<u32>,
        stored: Mutex<Vec<Vec<u8>>>,
        elected: Instant,
        /// Partitions of `t` (all led alike).
        partitions: AtomicU32,
        /// The `timeout_ms` of each produce received.
        timeouts: Mutex<Vec<u32>>,
        /// Produces received, by both nodes.
        received: watch::Sender<u32>,
        /// How long a metadata answer takes (a busy node).
        metadata_ms: AtomicU32,
        /// Node 2 answers a produce it refuses only at `elected` (a slow election).
        refusals_wait: std::sync::atomic::AtomicBool,
        /// Node 2 refuses its next produce `NotEnoughReplicas` (its ISR shrank for a moment),
        /// answering at `elected`.
        refuse_once: std::sync::atomic::AtomicBool,
        /// Node 2 answers its next produce `UnknownProducerId` (it lost the producer's state).
        unknown_once: std::sync::atomic::AtomicBool,
        /// The producer epoch and first sequence of each batch node 2 stored.
        stamps: Mutex<Vec<(i16, i32)>>,
    }

    impl MovingLeader {
        fn metadata(&self) -> Response<'static> {
            let node = |i: usize| NodeInfo {
                node_id: i as u32 + 1,
                host: "127.0.0.1".into(),
                port: self.ports[i],
                shards: vec![ShardAddr { shard: 0, host: "127.0.0.1".into(), port: self.ports[i] }],
            };
            let leader = self.leader.load(Ordering::SeqCst);
            let replication = PartitionReplication {
                leader: Some(leader),
                leader_shard: 0,
                leader_epoch: leader,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                high_watermark: 0,
                log_end: 0,
            };
            let partition = |partition| PartitionInfo {
                partition,
                shard: 0,
                log_start: 0,
                log_end: 0,
                health: None,
                replication: Some(replication.clone()),
            };
            let topic = TopicInfo {
                name: "t".into(),
                error: ErrorCode::None,
                config: TopicConfig::default(),
                partitions: (0..self.partitions.load(Ordering::SeqCst)).map(partition).collect(),
            };
            Response::Metadata { shards: node(0).shards, nodes: vec![node(0), node(1)], topics: vec![topic] }
        }

        /// Node `me`'s answer to `req`; `None`: no answer ever.
        async fn answer(&self, me: usize, req: Request<'_>) -> Option<Response<'static>> {
            let batches = match req {
                Request::Metadata { .. } => {
                    let ms = self.metadata_ms.load(Ordering::SeqCst);
                    tokio_rt::time::sleep(Duration::from_millis(ms.into())).await;
                    return Some(self.metadata());
                }
                Request::InitProducerId => return Some(super::producer_id()),
                Request::Produce { batches, timeout_ms, .. } => {
                    self.timeouts.lock().unwrap().push(timeout_ms);
                    self.received.send_modify(|n| *n += 1);
                    batches.to_vec()
                }
                other => panic!("not served here: {other:?}"),
            };
            let ok = |base_offset| Response::Produce {
                error: ErrorCode::None,
                message: String::new(),
                base_offset,
                log_start: 0,
            };
            if me == 0 {
                self.node_1_produces.send_modify(|n| *n += 1);
                if self.node_1_silent {
                    return None;
                }
                let n = *self.node_1_produces.borrow();
                self.leader.store(2, Ordering::SeqCst);
                let _ = self.release.subscribe().wait_for(|r| *r >= n).await;
                let message = "node 1 does not lead t/0".to_owned();
                return Some(Response::Produce {
                    error: ErrorCode::NotLeader,
                    message,
                    base_offset: 0,
                    log_start: 0,
                });
            }
            if self.unknown_once.swap(false, Ordering::SeqCst) {
                return Some(Response::Produce {
                    error: ErrorCode::UnknownProducerId,
                    message: "producer unknown to the partition".into(),
                    base_offset: 0,
                    log_start: 0,
                });
            }
            if self.refuse_once.swap(false, Ordering::SeqCst) {
                // Answered at `elected`: what the client sends meanwhile waits behind it.
                tokio_rt::time::sleep_until(self.elected).await;
                return Some(Response::Produce {
                    error: ErrorCode::NotEnoughReplicas,
                    message: "in-sync replicas below the minimum".into(),
                    base_offset: 0,
                    log_start: 0,
                });
            }
            if Instant::now() < self.elected {
                if self.refusals_wait.load(Ordering::SeqCst) {
                    tokio_rt::time::sleep_until(self.elected).await;
                }
                return Some(Response::Produce {
                    error: ErrorCode::LeaderNotAvailable,
                    message: "node 2 is being elected".into(),
                    base_offset: 0,
                    log_start: 0,
                });
            }
            let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(batches.len());
            aligned.extend_from_slice(&batches);
            let base = {
                let mut stored = self.stored.lock().unwrap();
                let base = stored.len() as u64;
                let view = BatchView::validate(&aligned, usize::MAX).unwrap();
                stored.extend(view.records().map(|r| r.value.unwrap().to_vec()));
                let h = view.header();
                self.stamps.lock().unwrap().push((h.producer_epoch, h.base_sequence));
                base
            };
            self.node_2_produces.send_modify(|n| *n += 1);
            Some(ok(base))
        }
    }

    async fn serve(mut s: tokio_rt::net::TcpStream, me: usize, fake: Arc<MovingLeader>) {
        loop {
            let mut head = [0u8; FRAME_HEADER_BYTES];
            if s.read_exact(&mut head).await.is_err() {
                return;
            }
            let h = FrameHeader::decode(&head, usize::MAX).unwrap();
            let mut body = vec![0u8; h.body_len];
            s.read_exact(&mut body).await.unwrap();
            let req = Request::decode(h.api_key, h.api_version, &body).unwrap();
            let Some(resp) = fake.answer(me, req).await else {
                // Silent: the connection stays open, the request unanswered.
                continue;
            };
            let mut w = Writer::default();
            resp.encode_version(h.api_version, &mut w).unwrap();
            let frame = encode_frame(h.api_key, h.api_version, h.correlation_id, 0, &w.buf);
            if s.write_all(&frame).await.is_err() {
                return;
            }
        }
    }

    async fn start(node_1_silent: bool) -> Arc<MovingLeader> {
        start_with(node_1_silent, 1, Instant::now()).await
    }

    /// Metadata names `leader` at first; node 2 refuses produces until `elected`.
    async fn start_with(node_1_silent: bool, leader: u32, elected: Instant) -> Arc<MovingLeader> {
        let a = tokio_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = tokio_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Arc::new(MovingLeader {
            ports: [a.local_addr().unwrap().port(), b.local_addr().unwrap().port()],
            leader: AtomicU32::new(leader),
            node_1_silent,
            node_1_produces: watch::channel(0).0,
            node_2_produces: watch::channel(0).0,
            release: watch::channel(0).0,
            stored: Mutex::new(Vec::new()),
            elected,
            partitions: AtomicU32::new(1),
            timeouts: Mutex::new(Vec::new()),
            received: watch::channel(0).0,
            metadata_ms: AtomicU32::new(0),
            refusals_wait: Default::default(),
            refuse_once: Default::default(),
            unknown_once: Default::default(),
            stamps: Mutex::new(Vec::new()),
        });
        for (me, listener) in [a, b].into_iter().enumerate() {
            let f = fake.clone();
            tokio_rt::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    tokio_rt::spawn(serve(s, me, f.clone()));
                }
            });
        }
        fake
    }

    fn record(i: u32) -> ProducerRecord {
        ProducerRecord {
            topic: "t".into(),
            partition: Some(0),
            value: Some(i.to_string().into_bytes()),
            ..Default::default()
        }
    }

    /// `max_in_flight = 1` keeps each partition's order across a leader move: records the router
    /// handed to the former leader's worker before it learned of the move are taken back and go to
    /// the new leader before any record queued later (they once came back after such records).
    #[test]
    fn max_in_flight_1_keeps_the_order_across_a_leader_move() {
        runtime().block_on(async {
            let fake = start(false).await;
            let target = Target::tcp(format!("127.0.0.1:{}", fake.ports[0]));
            let config = ProducerConfig {
                linger_ms: 0,
                max_in_flight: 1,
                retry_backoff_ms: 1,
                ..ProducerConfig::default()
            };
            let producer = Producer::connect(&target, config).await.unwrap();
            let mut acks = vec![producer.enqueue(record(0)).await.unwrap()];
            fake.node_1_produces.subscribe().wait_for(|n| *n >= 1).await.unwrap();
            // Queued while the first batch is in flight at node 1: they go to node 1's worker.
            for i in 1..10 {
                acks.push(producer.enqueue(record(i)).await.unwrap());
            }
            fake.release.send_replace(1);
            // The first batch went to node 2 after node 1 refused it. The second is at node 1,
            // unanswered (sent before the router took the partition back), or at node 2 (taken
            // back before it went).
            fake.node_2_produces.subscribe().wait_for(|n| *n >= 1).await.unwrap();
            let (mut at_1, mut at_2) = (fake.node_1_produces.subscribe(), fake.node_2_produces.subscribe());
            tokio_rt::select! {
                r = at_1.wait_for(|n| *n >= 2) => drop(r.unwrap()),
                r = at_2.wait_for(|n| *n >= 2) => drop(r.unwrap()),
            }
            let before = *fake.node_2_produces.borrow();
            acks.push(producer.enqueue(record(10)).await.unwrap());
            // Record 10 must not reach node 2 while a batch before it is held at node 1. Not
            // synchronisation: a bound on how long the test gives it to overtake, which it did in
            // milliseconds when it could.
            let mut overtaken = fake.node_2_produces.subscribe();
            let _ = tokio_rt::time::timeout(Duration::from_millis(300), overtaken.wait_for(|n| *n > before))
                .await;
            fake.release.send_replace(u32::MAX);
            let mut offsets = Vec::new();
            for a in acks {
                offsets.push(a.await.unwrap());
            }
            let stored: Vec<String> =
                fake.stored.lock().unwrap().iter().map(|v| String::from_utf8(v.clone()).unwrap()).collect();
            let expected: Vec<String> = (0..=10).map(|i: u32| i.to_string()).collect();
            assert_eq!(stored, expected, "stored out of the order queued; offsets acknowledged: {offsets:?}");
            producer.close().await.unwrap();
        });
    }

    /// A batch sent and then given up in flight (its connection dropped because an older batch in
    /// flight ran out of time) may have been written: if it then fails, it must say so, as a batch
    /// whose connection broke does.
    #[test]
    fn a_batch_given_up_in_flight_fails_as_maybe_written() {
        runtime().block_on(async {
            let fake = start(true).await;
            let target = Target::tcp(format!("127.0.0.1:{}", fake.ports[0]));
            let config = ProducerConfig {
                linger_ms: 0,
                retries: 0,
                delivery_timeout_ms: 1000,
                request_timeout_ms: 500,
                ..ProducerConfig::default()
            };
            let producer = Producer::connect(&target, config).await.unwrap();
            let first = producer.enqueue(record(0)).await.unwrap();
            fake.node_1_produces.subscribe().wait_for(|n| *n >= 1).await.unwrap();
            // Not synchronisation: the second record is queued later, so that it has time left when
            // the first runs out.
            tokio_rt::time::sleep(std::time::Duration::from_millis(300)).await;
            let second = producer.enqueue(record(1)).await.unwrap();
            fake.node_1_produces.subscribe().wait_for(|n| *n >= 2).await.unwrap();
            assert!(matches!(first.await, Err(ClientError::DeliveryTimeout { .. })));
            // The node received the second batch: it may have written it.
            match second.await {
                Err(ClientError::MaybeWritten { .. } | ClientError::DeliveryTimeout { .. }) => {}
                other => {
                    panic!("a batch the node received fails without saying it may be written: {other:?}")
                }
            }
        });
    }

    /// An election longer than `retries` rounds of `retry_backoff_ms` (5 × 100 ms by default): the
    /// partition's leader refuses produces `LeaderNotAvailable` for 1.5 s, then takes them. The
    /// record waits for it within its delivery timeout (it once failed after the fifth refusal).
    #[test]
    fn a_record_waits_out_an_election_longer_than_its_retries() {
        runtime().block_on(async {
            let elected = Instant::now() + Duration::from_millis(1500);
            let fake = start_with(false, 2, elected).await;
            let target = Target::tcp(format!("127.0.0.1:{}", fake.ports[0]));
            let producer = Producer::connect(&target, ProducerConfig::default()).await.unwrap();
            assert_eq!(producer.send(record(7)).await.unwrap(), 0);
            assert!(Instant::now() >= elected);
            producer.close().await.unwrap();
        });
    }

    /// A delivery timeout shorter than `linger_ms + request_timeout_ms` is refused at connect, as
    /// Kafka's producer does: a batch could not wait for its answer.
    #[test]
    fn a_delivery_timeout_below_linger_and_request_timeout_is_refused() {
        runtime().block_on(async {
            let fake = start(false).await;
            let target = Target::tcp(format!("127.0.0.1:{}", fake.ports[0]));
            let config =
                ProducerConfig { delivery_timeout_ms: 30_004, linger_ms: 5, ..ProducerConfig::default() };
            match Producer::connect(&target, config).await {
                Err(ClientError::Config { setting: "delivery_timeout_ms", .. }) => {}
                other => panic!("accepted: {other:?}"),
            }
        });
    }

    /// A batch sent back to be rerouted while the producer is dropped is still rerouted and
    /// acknowledged (the reroute queue once went down with the producer: `Closed`).
    #[test]
    fn a_producer_dropped_with_a_batch_to_reroute_still_delivers_it() {
        runtime().block_on(async {
            let fake = start(false).await;
            let target = Target::tcp(format!("127.0.0.1:{}", fake.ports[0]));
            let config = ProducerConfig { linger_ms: 0, retry_backoff_ms: 1, ..ProducerConfig::default() };
            let producer = Producer::connect(&target, config).await.unwrap();
            let ack = producer.enqueue(record(0)).await.unwrap();
            fake.node_1_produces.subscribe().wait_for(|n| *n >= 1).await.unwrap();
            drop(producer);
            fake.release.send_replace(u32::MAX);
            assert_eq!(ack.await.unwrap(), 0);
        });
    }

    /// More batches refused at once than the reroute queue holds (`REROUTES_MAX`), metadata
    /// slow to come: each batch waits for room and reaches the new leader (those beyond it were
    /// once retried at the refusing node and failed `NotLeader`). The node is asked for a wait
    /// of at most `request_timeout_ms` (it was always 30 s).
    #[test]
    fn more_refused_batches_than_the_reroute_queue_holds_all_reach_the_new_leader() {
        runtime().block_on(async {
            let fake = start(false).await;
            let partitions = 3 * weir_net::client::producer::REROUTES_MAX as u32;
            fake.partitions.store(partitions, Ordering::SeqCst);
            fake.metadata_ms.store(5, Ordering::SeqCst);
            fake.release.send_replace(u32::MAX);
            let target = Target::tcp(format!("127.0.0.1:{}", fake.ports[0]));
            let config = ProducerConfig {
                linger_ms: 0,
                max_in_flight: partitions as usize,
                request_timeout_ms: 20_000,
                ..ProducerConfig::default()
            };
            let producer = Producer::connect(&target, config).await.unwrap();
            let mut acks = Vec::new();
            for p in 0..partitions {
                acks.push(
                    producer.enqueue(ProducerRecord { partition: Some(p), ..record(p) }).await.unwrap(),
                );
            }
            for (p, a) in acks.into_iter().enumerate() {
                if let Err(e) = a.await {
                    panic!("partition {p}: {e}");
                }
            }
            assert_eq!(fake.stored.lock().unwrap().len(), partitions as usize);
            // Each batch went to the former leader once at most: none was tried there again.
            let at_1 = *fake.node_1_produces.borrow();
            assert!(at_1 <= partitions, "node 1 was sent {at_1} produces for {partitions} batches");
            let timeouts = fake.timeouts.lock().unwrap().clone();
            assert!(timeouts.iter().all(|t| (1..=20_000).contains(t)), "{timeouts:?}");
            producer.close().await.unwrap();
        });
    }

    /// A batch the leader refused while metadata still names it goes back there after
    /// `retry_backoff_ms`; a record of the same partition waiting behind it (`max_in_flight =
    /// 1`) waits for it rather than going out first to the node that now takes produces.
    #[test]
    fn a_record_waiting_behind_a_refused_batch_goes_after_it() {
        runtime().block_on(async {
            // Node 2 leads from the start; it refuses the first record, answering only once it
            // is elected, and takes what comes after.
            let elected = Instant::now() + Duration::from_millis(300);
            let fake = start_with(false, 2, elected).await;
            fake.refusals_wait.store(true, Ordering::SeqCst);
            let target = Target::tcp(format!("127.0.0.1:{}", fake.ports[1]));
            let config = ProducerConfig {
                linger_ms: 0,
                max_in_flight: 1,
                retry_backoff_ms: 1000,
                ..ProducerConfig::default()
            };
            let producer = Producer::connect(&target, config).await.unwrap();
            let first = producer.enqueue(record(1)).await.unwrap();
            // The second goes once the first is on the wire: a batch of its own, behind it.
            fake.received.subscribe().wait_for(|n| *n >= 1).await.unwrap();
            let second = producer.enqueue(record(2)).await.unwrap();
            let (first, second) = (first.await.unwrap(), second.await.unwrap());
            assert!(first < second, "the second record stored first: offsets {first} and {second}");
            assert_eq!(*fake.stored.lock().unwrap(), [b"1".to_vec(), b"2".to_vec()]);
            assert!(fake.timeouts.lock().unwrap().len() >= 3, "the first record was refused once");
            producer.close().await.unwrap();
        });
    }

    /// An idempotent producer's first batch in a partition goes alone: refused for a moment
    /// (`NotEnoughReplicas`), it is sent again before any later batch, which a partition that
    /// does not know the producer yet would otherwise take first.
    #[test]
    fn a_first_idempotent_batch_refused_for_a_moment_is_stored_before_the_next() {
        runtime().block_on(async {
            let fake = start_with(false, 2, Instant::now() + Duration::from_millis(200)).await;
            fake.refuse_once.store(true, Ordering::SeqCst);
            let target = Target::tcp(format!("127.0.0.1:{}", fake.ports[1]));
            let config = ProducerConfig { linger_ms: 0, retry_backoff_ms: 50, ..ProducerConfig::default() };
            let producer = Producer::connect(&target, config).await.unwrap();
            let first = producer.enqueue(record(1)).await.unwrap();
            fake.received.subscribe().wait_for(|n| *n >= 1).await.unwrap();
            let second = producer.enqueue(record(2)).await.unwrap();
            let (first, second) = (first.await.unwrap(), second.await.unwrap());
            assert!(first < second, "offsets {first} and {second}");
            assert_eq!(*fake.stored.lock().unwrap(), [b"1".to_vec(), b"2".to_vec()]);
            producer.close().await.unwrap();
        });
    }

    /// A partition that lost an idempotent producer's state answers `UnknownProducerId`: the
    /// producer stamps the batch anew, in a new epoch from sequence 0, and its later batches
    /// follow in that epoch.
    #[test]
    fn a_batch_refused_as_of_an_unknown_producer_goes_again_in_a_new_epoch() {
        runtime().block_on(async {
            let fake = start_with(false, 2, Instant::now()).await;
            fake.unknown_once.store(true, Ordering::SeqCst);
            let target = Target::tcp(format!("127.0.0.1:{}", fake.ports[1]));
            let config = ProducerConfig { linger_ms: 0, ..ProducerConfig::default() };
            let producer = Producer::connect(&target, config).await.unwrap();
            let first = producer.send(record(1)).await.unwrap();
            let second = producer.send(record(2)).await.unwrap();
            assert!(first < second, "offsets {first} and {second}");
            assert_eq!(*fake.stored.lock().unwrap(), [b"1".to_vec(), b"2".to_vec()]);
            assert_eq!(*fake.stamps.lock().unwrap(), [(1, 0), (1, 1)], "epoch 1 from sequence 0");
            producer.close().await.unwrap();
        });
    }
}

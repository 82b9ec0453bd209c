//! Review tests of the producer across a leader move and of a batch given up in flight: two
//! in-process fake nodes, 1 and 2, with one topic `t` of one partition.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio_rt::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rt::sync::watch;
use weir_log::batch::BatchView;
use weir_net::api::{PartitionInfo, ShardAddr, TopicInfo};
use weir_net::client::{ClientError, Producer, ProducerConfig, ProducerRecord, Target};
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader, encode_frame};
use weir_net::wire::Writer;
use weir_net::{ErrorCode, NodeInfo, PartitionReplication, Request, Response, TopicConfig};

/// Node 1 led the partition; its first produce moves the leadership (metadata names node 2 from
/// then on); it refuses every produce `NotLeader`, its n-th once `release` reaches n. With `node_1_silent`, node 1 never answers a produce at all. Node 2
/// stores what it is sent, in order.
struct Fake {
    ports: [u16; 2],
    leader: AtomicU32,
    node_1_silent: bool,
    node_1_produces: watch::Sender<u32>,
    node_2_produces: watch::Sender<u32>,
    release: watch::Sender<u32>,
    stored: Mutex<Vec<Vec<u8>>>,
}

impl Fake {
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

    /// Node `me`'s answer to `req`; `None`: no answer ever.
    async fn answer(&self, me: usize, req: Request<'_>) -> Option<Response<'static>> {
        let batches = match req {
            Request::Metadata { .. } => return Some(self.metadata()),
            Request::Produce { batches, .. } => batches.to_vec(),
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
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(batches.len());
        aligned.extend_from_slice(&batches);
        let base = {
            let mut stored = self.stored.lock().unwrap();
            let base = stored.len() as u64;
            let view = BatchView::validate(&aligned, usize::MAX).unwrap();
            stored.extend(view.records().map(|r| r.value.unwrap().to_vec()));
            base
        };
        self.node_2_produces.send_modify(|n| *n += 1);
        Some(ok(base))
    }
}

async fn serve(mut s: tokio_rt::net::TcpStream, me: usize, fake: Arc<Fake>) {
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

async fn start(node_1_silent: bool) -> Arc<Fake> {
    let a = tokio_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = tokio_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = Arc::new(Fake {
        ports: [a.local_addr().unwrap().port(), b.local_addr().unwrap().port()],
        leader: AtomicU32::new(1),
        node_1_silent,
        node_1_produces: watch::channel(0).0,
        node_2_produces: watch::channel(0).0,
        release: watch::channel(0).0,
        stored: Mutex::new(Vec::new()),
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

fn runtime() -> tokio_rt::runtime::Runtime {
    tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn record(i: u32) -> ProducerRecord {
    ProducerRecord {
        topic: "t".into(),
        partition: Some(0),
        value: Some(i.to_string().into_bytes()),
        ..Default::default()
    }
}

/// README and `ProducerConfig::max_in_flight` say `max_in_flight = 1` keeps each partition's
/// order. Across a leader move it does not: records the router handed to the former leader's
/// worker before it learned of the move are sent back after records that went to the new leader
/// directly.
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
        // The first batch went to node 2 after node 1 refused it; the second is at node 1,
        // unanswered until the record queued next went to node 2 directly.
        fake.node_2_produces.subscribe().wait_for(|n| *n >= 1).await.unwrap();
        fake.node_1_produces.subscribe().wait_for(|n| *n >= 2).await.unwrap();
        acks.push(producer.enqueue(record(10)).await.unwrap());
        fake.node_2_produces.subscribe().wait_for(|n| *n >= 2).await.unwrap();
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
            other => panic!("a batch the node received fails without saying it may be written: {other:?}"),
        }
    });
}

//! An idempotent producer whose acknowledgements are lost on purpose: a TCP proxy between it and
//! the node closes the connection instead of passing on every third produce answer, after the
//! node wrote the batch. The node advertises the proxy's address, so the producer finds no way
//! around it. The producer sends those batches again; the node recognises them and
//! the log holds each record once, in order. Without idempotence the same faults store records
//! twice (so the test can tell).

mod common;

use common::{Node, Via, free_ports, runtime};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio_rt::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rt::net::{TcpListener, TcpStream};
use weir_net::client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek, Target};
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader};
use weir_net::{ApiKey, TopicConfig};

/// Reads one frame (header and body) from `s`.
async fn read_frame(s: &mut (impl AsyncReadExt + Unpin)) -> Option<(FrameHeader, Vec<u8>)> {
    let mut frame = vec![0u8; FRAME_HEADER_BYTES];
    s.read_exact(&mut frame).await.ok()?;
    let h = FrameHeader::decode(&frame, usize::MAX).ok()?;
    frame.resize(FRAME_HEADER_BYTES + h.body_len, 0);
    s.read_exact(&mut frame[FRAME_HEADER_BYTES..]).await.ok()?;
    Some((h, frame))
}

/// Relays one client connection to `node`, frame by frame, one request at a time: every third
/// produce answer is dropped with the connection. Counts the answers it dropped.
async fn relay(mut client: TcpStream, node: String, produces: Arc<AtomicU32>, dropped: Arc<AtomicU32>) {
    let Ok(mut upstream) = TcpStream::connect(&node).await else { return };
    while let Some((h, request)) = read_frame(&mut client).await {
        if upstream.write_all(&request).await.is_err() {
            return;
        }
        let Some((_, answer)) = read_frame(&mut upstream).await else { return };
        if h.api_key == ApiKey::Produce as u16 && produces.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
            dropped.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if client.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Where the proxy listens: the node's port on this address, which the node advertises.
const PROXY_HOST: &str = "127.0.0.5";

/// Sends records `0..count` through the proxy and returns what partition 0 holds after, and how
/// many answers the proxy dropped.
async fn produce_through_losses(node: &Node, topic: &str, idempotent: bool, count: u64) -> (Vec<u64>, u32) {
    let proxy = format!("{PROXY_HOST}:{}", node.port);
    let listener = TcpListener::bind(&proxy).await.unwrap();
    let (produces, dropped) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (p, d, upstream) = (produces.clone(), dropped.clone(), node.addr());
    let proxy_task = tokio_rt::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio_rt::spawn(relay(client, upstream.clone(), p.clone(), d.clone()));
        }
    });
    // Everything through the node's advertised address: the proxy.
    let config = ProducerConfig {
        idempotent,
        shard_aware: false,
        linger_ms: 0,
        retry_backoff_ms: 10,
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&Target::tcp(proxy), config).await.unwrap();
    // Two records in flight at a time, each its own batch: many produces, some pipelined.
    let mut acks = std::collections::VecDeque::new();
    for i in 0..count {
        let record = ProducerRecord {
            topic: topic.into(),
            partition: Some(0),
            value: Some(i.to_le_bytes().to_vec()),
            ..Default::default()
        };
        acks.push_back(producer.enqueue(record).await.unwrap());
        if acks.len() == 2 {
            acks.pop_front().unwrap().await.unwrap();
        }
    }
    for a in acks {
        a.await.unwrap();
    }
    producer.close().await.unwrap();
    proxy_task.abort();
    let mut consumer = Consumer::connect(&node.target(Via::Tcp), ConsumerConfig::default()).await.unwrap();
    consumer.assign(topic, 0, Seek::Earliest).await.unwrap();
    let mut values = Vec::new();
    // Everything acknowledged is there: read until the count, then what else is (a duplicate).
    loop {
        let polled = consumer.poll(200).await.unwrap();
        if polled.is_empty() && values.len() as u64 >= count {
            break;
        }
        values
            .extend(polled.iter().map(|r| u64::from_le_bytes(r.value.clone().unwrap().try_into().unwrap())));
    }
    (values, dropped.load(Ordering::SeqCst))
}

#[test]
fn an_idempotent_producer_whose_answers_are_lost_stores_each_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), 1, free_ports(2), &[("WEIR_ADVERTISED_HOST", PROXY_HOST)]);
    runtime().block_on(async {
        let mut admin = weir_net::client::Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic("once", 1, TopicConfig::default()).await.unwrap();
        admin.create_topic("twice", 1, TopicConfig::default()).await.unwrap();
        let (values, dropped) = produce_through_losses(&node, "once", true, 300).await;
        assert!(dropped > 0, "the proxy dropped no answer");
        assert_eq!(
            values,
            (0..300).collect::<Vec<_>>(),
            "each record once, in order ({dropped} answers lost)"
        );
        // The same faults without idempotence: the retries store records twice.
        let (values, dropped) = produce_through_losses(&node, "twice", false, 300).await;
        assert!(
            dropped > 0 && values.len() > 300,
            "{} records stored of 300 ({dropped} answers lost)",
            values.len()
        );
    });
}

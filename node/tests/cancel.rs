//! Clients that vanish mid-request never cost another client an acknowledged record: a request
//! that reached a partition finishes whether or not its connection is still there, and the log
//! stays whole across the node's kill and restart.

mod common;

use common::{Node, Via, request_frame, runtime};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weir_log::batch::{BatchBuilder, ProducerStamp, Record};
use weir_net::api::Request;
use weir_net::client::{
    Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek, Target,
};
use weir_net::{Acks, TopicConfig};

const TOPIC: &str = "reset";
/// Connections that each send `FRAMES` large produces and then reset, per round.
const RESETTERS: usize = 4;
const FRAMES: usize = 6;

/// A produce frame of about 1 MB to partition 0.
fn big_produce() -> Vec<u8> {
    let value = vec![b'x'; 1000];
    let mut b = BatchBuilder::new(2 << 20);
    for _ in 0..1000 {
        b.push(&Record { key: None, value: Some(&value), headers: &[], timestamp: 1 }).unwrap();
    }
    let batch = b.seal(ProducerStamp::default()).as_bytes().to_vec();
    let req = Request::Produce {
        topic: TOPIC.into(),
        partition: 0,
        acks: Acks::Leader,
        timeout_ms: 30_000,
        batches: &batch,
    };
    request_frame(&req, 1)
}

/// Connects, pipelines `FRAMES` produces (as many as the node takes within a moment), and
/// resets the connection (SO_LINGER 0), so the node sees it fail with requests in flight.
fn send_and_reset(addr: &str, frame: &[u8]) {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return };
    // The node stops reading a connection whose requests fill its budget: a bounded write
    // keeps this client from waiting on it. How much got through does not matter.
    stream.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    for _ in 0..FRAMES {
        if stream.write_all(frame).is_err() {
            break;
        }
    }
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
}

/// Every record of partition 0 up to `end`, with its offset; panics on a fetch error (a
/// corrupt batch, say) or a stall before `end`.
async fn read_all(target: &Target, end: u64) -> Vec<(u64, Vec<u8>)> {
    let mut consumer = Consumer::connect(target, ConsumerConfig::default()).await.unwrap();
    consumer.assign(TOPIC, 0, Seek::Earliest).await.unwrap();
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    while out.last().map_or(0, |(o, _)| o + 1) < end {
        let at = out.last().map_or(0, |(o, _)| o + 1);
        let records = consumer.poll(5000).await.unwrap_or_else(|e| panic!("fetch at {at} failed: {e}"));
        assert!(!records.is_empty(), "no records at {at}, below the log end {end}");
        out.extend(records.into_iter().map(|r| (r.offset, r.value.unwrap_or_default())));
    }
    out
}

async fn log_end(target: &Target) -> u64 {
    let topic = Admin::connect(target).await.unwrap().describe_topic(TOPIC).await.unwrap();
    topic.partitions[0].log_end
}

/// Checks the partition against what the surviving producer was told: offsets dense from 0,
/// and each acknowledged record at its offset.
fn check(stored: &[(u64, Vec<u8>)], acked: &[(u64, String)]) {
    for (i, (offset, _)) in stored.iter().enumerate() {
        assert_eq!(*offset, i as u64, "offsets are dense");
    }
    for (offset, value) in acked {
        let got = stored.get(*offset as usize).map(|(_, v)| v.as_slice());
        assert_eq!(got, Some(value.as_bytes()), "acknowledged record at {offset} lost");
    }
}

/// Produces small records to partition 0 until `stop`, keeping a window in flight; returns
/// the acknowledged ones.
async fn survivor(target: Target, stop: Arc<AtomicBool>) -> Vec<(u64, String)> {
    let config = ProducerConfig { retries: 0, linger_ms: 1, ..ProducerConfig::default() };
    let producer = Producer::connect(&target, config).await.unwrap();
    let mut pending = std::collections::VecDeque::new();
    let mut acked = Vec::new();
    let mut failed = 0usize;
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) || !pending.is_empty() {
        if !stop.load(Ordering::SeqCst) && pending.len() < 256 {
            let value = format!("s{seq}");
            seq += 1;
            let record = ProducerRecord {
                topic: TOPIC.into(),
                partition: Some(0),
                value: Some(value.clone().into_bytes()),
                ..Default::default()
            };
            pending.push_back((value, producer.enqueue(record).await.unwrap()));
            continue;
        }
        let (value, ack) = pending.pop_front().unwrap();
        match ack.await {
            Ok(offset) => acked.push((offset, value)),
            Err(_) => failed += 1,
        }
    }
    assert_eq!(failed, 0, "the surviving producer's requests all succeed");
    acked
}

fn resetting_clients_cost_no_acknowledged_record(fsync: bool, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = Node::free_port(2);
    let env = [("WEIR_FSYNC", if fsync { "true" } else { "false" })];
    let node = Node::start_with(dir.path(), 2, port, &env);
    let rt = runtime();
    let target = node.target(Via::Tcp);
    let shard = rt.block_on(async {
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_topic(TOPIC, 1, TopicConfig::default()).await.unwrap();
        admin.describe_topic(TOPIC).await.unwrap().partitions[0].shard as usize
    });
    let stop = Arc::new(AtomicBool::new(false));
    let producing = rt.spawn(survivor(target.clone(), stop.clone()));
    // Aimed at the owning shard's own port, so that the requests run where the connection is.
    let owner = node.shard_addr(shard);
    let frame = Arc::new(big_produce());
    let resetters: Vec<_> = (0..RESETTERS)
        .map(|_| {
            let (owner, frame) = (owner.clone(), frame.clone());
            std::thread::spawn(move || (0..rounds).for_each(|_| send_and_reset(&owner, &frame)))
        })
        .collect();
    resetters.into_iter().for_each(|t| t.join().unwrap());
    stop.store(true, Ordering::SeqCst);
    let acked = rt.block_on(producing).unwrap();
    assert!(acked.len() > 100, "the surviving producer got {} acknowledgements", acked.len());
    let end = rt.block_on(log_end(&target));
    check(&rt.block_on(read_all(&target, end)), &acked);
    // After a kill and a restart, recovery keeps all of it.
    node.kill();
    let node = Node::start_with(dir.path(), 2, port, &env);
    let target = node.target(Via::Tcp);
    let end_after = rt.block_on(log_end(&target));
    assert!(end_after >= acked.iter().map(|(o, _)| o + 1).max().unwrap(), "log end {end_after}");
    check(&rt.block_on(read_all(&target, end_after)), &acked);
}

#[test]
fn resetting_clients_cost_no_acknowledged_record_with_interval_flush() {
    resetting_clients_cost_no_acknowledged_record(false, 60);
}

#[test]
fn resetting_clients_cost_no_acknowledged_record_with_fsync() {
    resetting_clients_cost_no_acknowledged_record(true, 60);
}

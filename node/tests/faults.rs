//! A node under crashes and bad input: nothing acknowledged is lost, every bad request gets its
//! typed error, and the node keeps serving everyone else.

mod common;

use common::{Node, Via, runtime};
use std::io::{Read, Write};
use weir_log::batch::{BatchBuilder, ProducerStamp, Record};
use weir_net::api::{API_VERSION, Request, Response};
use weir_net::client::connection::Connection;
use weir_net::client::{
    Admin, ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek,
};
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader, encode_frame};
use weir_net::wire::Writer;
use weir_net::{Acks, ErrorBody, ErrorCode, TopicConfig};

#[test]
fn kill_9_during_produce_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let rt = runtime();
    // Over TCP: a killed node's connections are reset by its kernel at once, where a QUIC client
    // learns of it only at the idle timeout.
    let addr = node.target(Via::Tcp);
    let acked: Vec<(u32, u64, String)> = rt.block_on(async {
        Admin::connect(&addr).await.unwrap().create_topic("crash", 4, TopicConfig::default()).await.unwrap();
        // No retries: a retried batch whose first attempt was written would be a duplicate
        // (idempotent producers arrive later). A node that does not answer is waited for until
        // the delivery timeout: a short one, so that the records after the kill fail soon.
        let config = ProducerConfig {
            retries: 0,
            linger_ms: 1,
            delivery_timeout_ms: 10_000,
            request_timeout_ms: 5_000,
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(&addr, config).await.unwrap();
        let mut pending = std::collections::VecDeque::new();
        let mut acked = Vec::new();
        let mut node = Some(node);
        for seq in 0..200_000u64 {
            let key = format!("k{}", seq % 16);
            let record = ProducerRecord {
                topic: "crash".into(),
                key: Some(key.clone().into_bytes()),
                value: Some(format!("v{seq}").into_bytes()),
                ..Default::default()
            };
            let Ok(ack) = producer.enqueue(record).await else { break };
            pending.push_back((key, seq, ack));
            if pending.len() > 2000 {
                let (key, seq, ack) = pending.pop_front().unwrap();
                match ack.await {
                    Ok(offset) => acked.push((
                        weir_net::client::partitioner::partition_for_key(key.as_bytes(), 4),
                        offset,
                        format!("v{seq}"),
                    )),
                    Err(_) => break,
                }
            }
            // Kill the node mid-stream, once a good number of records were acknowledged.
            if acked.len() >= 20_000
                && let Some(n) = node.take()
            {
                n.kill();
            }
        }
        for (key, seq, ack) in pending {
            if let Ok(offset) = ack.await {
                acked.push((
                    weir_net::client::partitioner::partition_for_key(key.as_bytes(), 4),
                    offset,
                    format!("v{seq}"),
                ));
            }
        }
        assert!(node.is_none(), "the node was killed during the run");
        acked
    });
    assert!(acked.len() >= 20_000);
    let node = Node::start(dir.path(), 2);
    rt.block_on(async {
        let mut consumer =
            Consumer::connect(&node.target(Via::Quic), ConsumerConfig::default()).await.unwrap();
        let mut log: std::collections::HashMap<u32, Vec<(u64, String)>> = Default::default();
        for p in 0..4 {
            consumer.assign("crash", p, Seek::Earliest).await.unwrap();
        }
        loop {
            let records = consumer.poll(300).await.unwrap();
            if records.is_empty() {
                break;
            }
            for r in records {
                log.entry(r.partition)
                    .or_default()
                    .push((r.offset, String::from_utf8(r.value.unwrap()).unwrap()));
            }
        }
        for records in log.values() {
            for (i, (offset, _)) in records.iter().enumerate() {
                assert_eq!(*offset, i as u64, "offsets are dense after recovery");
            }
        }
        for (partition, offset, value) in &acked {
            let stored = log.get(partition).and_then(|r| r.get(*offset as usize));
            assert_eq!(stored.map(|(_, v)| v), Some(value), "acknowledged {partition}/{offset} lost");
            let copies = log[partition].iter().filter(|(_, v)| v == value).count();
            assert_eq!(copies, 1, "{value} stored {copies} times");
        }
    });
}

fn raw_request(req: &Request<'_>, cid: u32) -> Vec<u8> {
    let mut w = Writer::default();
    req.encode(&mut w).unwrap();
    encode_frame(req.api_key() as u16, API_VERSION, cid, 0, &w.buf)
}

fn read_frame(s: &mut std::net::TcpStream) -> Option<(FrameHeader, Vec<u8>)> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    if let Err(e) = s.read_exact(&mut head) {
        eprintln!("read_frame: {e}");
        return None;
    }
    let h = FrameHeader::decode(&head, usize::MAX).unwrap();
    let mut body = vec![0u8; h.body_len];
    s.read_exact(&mut body).ok()?;
    Some((h, body))
}

fn batch_bytes(n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(1 << 20);
    for i in 0..n {
        b.push(&Record { key: None, value: Some(format!("r{i}").as_bytes()), headers: &[], timestamp: 1 })
            .unwrap();
    }
    b.seal(ProducerStamp::default()).as_bytes().to_vec()
}

#[test]
fn bad_input_gets_typed_errors_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let rt = runtime();
    let addr = node.addr();
    let target = node.target(Via::Tcp);
    rt.block_on(async {
        Admin::connect(&target).await.unwrap().create_topic("t", 2, TopicConfig::default()).await.unwrap();
    });
    // A healthy client, kept open throughout.
    let mut healthy = rt.block_on(Connection::connect(&node.target(Via::Quic))).unwrap();

    // Garbage bytes: an error frame, then the connection closes.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"this is not a weir frame at all, not even close!").unwrap();
    let (h, body) = read_frame(&mut s).expect("an error frame");
    assert_eq!(h.flags & weir_net::frame::FLAG_ERROR, 1);
    let e = ErrorBody::decode(&body).unwrap();
    assert!(matches!(e.error, ErrorCode::RequestTooLarge | ErrorCode::MalformedRequest), "{e:?}");
    assert!(read_frame(&mut s).is_none(), "connection closed");

    // A huge length prefix: refused before anything is allocated.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let mut f = raw_request(&Request::ApiVersions, 1);
    f[0..4].copy_from_slice(&(u32::MAX - 8).to_le_bytes());
    s.write_all(&f).unwrap();
    let (_, body) = read_frame(&mut s).unwrap();
    assert_eq!(ErrorBody::decode(&body).unwrap().error, ErrorCode::RequestTooLarge);
    assert!(read_frame(&mut s).is_none());

    // An unknown API and an unknown version: typed error, connection closed.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(&encode_frame(77, 1, 5, 0, &[])).unwrap();
    let (h, body) = read_frame(&mut s).unwrap();
    assert_eq!(
        (h.correlation_id, ErrorBody::decode(&body).unwrap().error),
        (5, ErrorCode::UnsupportedVersion)
    );

    rt.block_on(async {
        // A batch with a flipped bit: CorruptBatch, and the connection stays usable.
        let mut bytes = batch_bytes(3);
        let last = bytes.len() - 20;
        bytes[last] ^= 4;
        let mut conn = Connection::connect(&target).await.unwrap();
        let req = Request::Produce {
            topic: "t".into(),
            partition: 0,
            acks: Acks::Leader,
            timeout_ms: 1000,
            batches: &bytes,
        };
        let r = conn.call(&req).await.unwrap();
        assert!(matches!(r.response().unwrap(), Response::Produce { error: ErrorCode::CorruptBatch, .. }));
        // A batch larger than batch_bytes_max (4 MiB by default) is refused as too large.
        let big = vec![0u8; 5 << 20];
        let mut builder = BatchBuilder::new(8 << 20);
        builder.push(&Record { key: None, value: Some(&big), headers: &[], timestamp: 1 }).unwrap();
        let big = builder.seal(ProducerStamp::default());
        let req = Request::Produce {
            topic: "t".into(),
            partition: 0,
            acks: Acks::Leader,
            timeout_ms: 1000,
            batches: big.as_bytes(),
        };
        let r = conn.call(&req).await.unwrap();
        assert!(matches!(r.response().unwrap(), Response::Produce { error: ErrorCode::BatchTooLarge, .. }));
        // Unknown topic and partition, offset out of range.
        let good = batch_bytes(2);
        for (topic, partition, code) in
            [("nope", 0, ErrorCode::UnknownTopic), ("t", 9, ErrorCode::UnknownPartition)]
        {
            let req = Request::Produce {
                topic: topic.into(),
                partition,
                acks: Acks::Leader,
                timeout_ms: 1000,
                batches: &good,
            };
            match conn.call(&req).await.unwrap().response().unwrap() {
                Response::Produce { error, .. } => assert_eq!(error, code),
                other => panic!("{other:?}"),
            }
        }
        let req =
            Request::Fetch { topic: "t".into(), partition: 0, offset: 1000, max_bytes: 1000, max_wait_ms: 0 };
        assert!(matches!(
            conn.call(&req).await.unwrap().response().unwrap(),
            Response::Fetch { error: ErrorCode::OffsetOutOfRange, .. }
        ));
        // Nothing bad was written, and the healthy connection still works.
        let req = Request::Produce {
            topic: "t".into(),
            partition: 0,
            acks: Acks::Leader,
            timeout_ms: 1000,
            batches: &good,
        };
        match healthy.call(&req).await.unwrap().response().unwrap() {
            Response::Produce { error: ErrorCode::None, base_offset: 0, .. } => {}
            other => panic!("{other:?}"),
        }
        let mut admin = Admin::connect(&target).await.unwrap();
        let t = admin.describe_topic("t").await.unwrap();
        assert_eq!(t.partitions[0].log_end, 2);
        let err = admin.describe_topic("missing").await.unwrap_err();
        assert!(matches!(err, ClientError::Server { code: ErrorCode::UnknownTopic, .. }));
    });
    // A bad flag is refused by the CLI with a usage error.
    let out = node.cli(Via::Quic).args(["topic", "create", "x", "--partitions", "many"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = node.cli(Via::Tcp).args(["topic", "list", "--transport", "udp"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_request_on_the_wrong_shard_is_forwarded_to_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let rt = runtime();
    rt.block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic("x", 8, TopicConfig::default()).await.unwrap();
        let t = admin.describe_topic("x").await.unwrap();
        // A partition owned by shard 1, reached through shard 0's own port.
        let p = t.partitions.iter().find(|p| p.shard == 1).expect("shard 1 owns a partition").partition;
        let before = admin.node_stats().await.unwrap();
        let mut conn = Connection::connect(&node.shard_target(0, Via::Quic)).await.unwrap();
        let bytes = batch_bytes(5);
        let req = Request::Produce {
            topic: "x".into(),
            partition: p,
            acks: Acks::Leader,
            timeout_ms: 1000,
            batches: &bytes,
        };
        assert!(matches!(
            conn.call(&req).await.unwrap().response().unwrap(),
            Response::Produce { error: ErrorCode::None, .. }
        ));
        let req =
            Request::Fetch { topic: "x".into(), partition: p, offset: 0, max_bytes: 1 << 20, max_wait_ms: 0 };
        let frame = conn.call(&req).await.unwrap();
        match frame.response().unwrap() {
            // The first batch of the partition gets base offset 0 and epoch 0, as sealed: the
            // stored bytes, served as they are, equal the produced ones.
            Response::Fetch { error: ErrorCode::None, high_watermark: 5, batches, .. } => {
                assert_eq!(batches, &bytes[..])
            }
            other => panic!("{other:?}"),
        }
        // Not shard-aware, so that it reads through shard 0 as well.
        let config = ConsumerConfig { shard_aware: false, ..ConsumerConfig::default() };
        let mut consumer = Consumer::connect(&node.shard_target(0, Via::Tcp), config).await.unwrap();
        consumer.assign("x", p, Seek::Earliest).await.unwrap();
        let records = consumer.poll(1000).await.unwrap();
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        // Shard 0 relayed them: produce, fetch, and the consumer's list-offsets and fetches.
        let after = admin.node_stats().await.unwrap();
        let delta: Vec<u64> = before.iter().zip(&after).map(|(b, a)| a.forwarded - b.forwarded).collect();
        assert!(delta[0] >= 4 && delta[1] == 0, "{before:?} then {after:?}");
    });
}

#[test]
fn a_second_node_on_the_same_data_dir_or_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 1);
    let other = tempfile::tempdir().unwrap();
    for (data, port) in [(dir.path(), node.port + 10), (other.path(), node.port)] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "--shards", "1", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--kafka-listen", "off"])
            .arg("--data-dir")
            .arg(data)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("in use") || err.contains("cannot listen"), "{err}");
    }
    // The first node still serves.
    runtime().block_on(async {
        Admin::connect(&node.target(Via::Quic)).await.unwrap().list_topics().await.unwrap()
    });
}

#[test]
fn shutdown_answers_the_requests_in_flight_first() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    // Started by hand to read its log: the fetch below announces when it starts waiting.
    let node = Node::start(dir.path(), 2);
    let addr = node.addr();
    let target = node.target(Via::Tcp);
    runtime().block_on(async {
        Admin::connect(&target)
            .await
            .unwrap()
            .create_topic("quiet", 1, TopicConfig::default())
            .await
            .unwrap();
    });
    let (_, _) = node.stop();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--shards", "2", "--listen", &addr])
        .args(["--kafka-listen", "off"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("WEIR_LOG", "weir_node::service=debug")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("weir: listening"), "{line}");
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let req =
        Request::Fetch { topic: "quiet".into(), partition: 0, offset: 0, max_bytes: 1024, max_wait_ms: 3000 };
    s.write_all(&raw_request(&req, 9)).unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "the node's log ended");
        if line.contains("fetch waiting for data") {
            break;
        }
    }
    common::signal(child.id(), "-TERM");
    let (h, body) = read_frame(&mut s).expect("the waiting fetch is answered before the node exits");
    assert_eq!(h.correlation_id, 9);
    match Response::decode(weir_net::ApiKey::Fetch, &body).unwrap() {
        Response::Fetch { error: ErrorCode::None, batches, .. } => assert!(batches.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(child.wait().unwrap().success());
}

/// Reads one response frame from a QUIC stream.
async fn read_quic_frame(recv: &mut quinn::RecvStream) -> Option<(FrameHeader, Vec<u8>)> {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    recv.read_exact(&mut head).await.ok()?;
    let h = FrameHeader::decode(&head, usize::MAX).unwrap();
    let mut body = vec![0u8; h.body_len];
    recv.read_exact(&mut body).await.ok()?;
    Some((h, body))
}

#[test]
fn bad_input_on_quic_closes_only_that_stream() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    runtime().block_on(async {
        let mut healthy = Connection::connect(&node.target(Via::Quic)).await.unwrap();
        let config = weir_net::tls::client_config(&weir_net::tls::Trust::Insecure).unwrap();
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn =
            endpoint.connect_with(config, node.addr().parse().unwrap(), "localhost").unwrap().await.unwrap();
        // Garbage on one stream: an error frame, then that stream ends.
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(b"this is not a weir frame at all, not even close!").await.unwrap();
        let (h, body) = read_quic_frame(&mut recv).await.expect("an error frame");
        assert_eq!(h.flags & weir_net::frame::FLAG_ERROR, 1);
        let e = ErrorBody::decode(&body).unwrap();
        assert!(matches!(e.error, ErrorCode::RequestTooLarge | ErrorCode::MalformedRequest), "{e:?}");
        assert!(recv.read_to_end(1024).await.unwrap().is_empty(), "the stream ends after the error");
        // A huge length prefix on a second stream of the same connection: refused, no allocation.
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let mut f = raw_request(&Request::ApiVersions, 1);
        f[0..4].copy_from_slice(&(u32::MAX - 8).to_le_bytes());
        send.write_all(&f).await.unwrap();
        let (_, body) = read_quic_frame(&mut recv).await.unwrap();
        assert_eq!(ErrorBody::decode(&body).unwrap().error, ErrorCode::RequestTooLarge);
        // The connection itself still serves a third stream.
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&raw_request(&Request::ApiVersions, 7)).await.unwrap();
        let (h, _) = read_quic_frame(&mut recv).await.unwrap();
        assert_eq!((h.correlation_id, h.flags & weir_net::frame::FLAG_ERROR), (7, 0));
        // So does everyone else.
        healthy.call(&Request::ApiVersions).await.unwrap();
        // A node whose certificate is not the pinned one is refused with a clear error.
        let wrong =
            weir_net::client::Target::quic(node.addr(), &weir_net::tls::Trust::Fingerprint([7; 32])).unwrap();
        let err = Connection::connect(&wrong).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Connect { .. }) && err.to_string().contains("fingerprint"),
            "{err}"
        );
        let ca = weir_net::tls::Trust::CaFile(dir.path().join("tls/cert.pem"));
        let by_ca = weir_net::client::Target::quic(node.addr(), &ca).unwrap();
        Connection::connect(&by_ca).await.unwrap().call(&Request::ApiVersions).await.unwrap();
    });
}

#[test]
fn a_client_that_stops_sending_still_gets_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    // TCP: two requests, then the write side closes; both answers arrive, then the end.
    let mut s = std::net::TcpStream::connect(node.addr()).unwrap();
    let mut out = raw_request(&Request::ApiVersions, 1);
    out.extend(raw_request(&Request::Metadata { topics: vec![] }, 2));
    // ApiVersions is answered in any version, so a newer client can find out what this node speaks.
    out.extend(encode_frame(weir_net::ApiKey::ApiVersions as u16, 9, 3, 0, &[]));
    s.write_all(&out).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    for cid in 1..=3 {
        let (h, _) = read_frame(&mut s).expect("an answer after the client closed its side");
        assert_eq!((h.correlation_id, h.flags), (cid, 0));
    }
    assert!(read_frame(&mut s).is_none());
    // QUIC: the same with a finished stream.
    runtime().block_on(async {
        let config = weir_net::tls::client_config(&weir_net::tls::Trust::Insecure).unwrap();
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn =
            endpoint.connect_with(config, node.addr().parse().unwrap(), "localhost").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&raw_request(&Request::ApiVersions, 4)).await.unwrap();
        send.finish().unwrap();
        let (h, _) = read_quic_frame(&mut recv).await.expect("an answer after finish");
        assert_eq!(h.correlation_id, 4);
        assert!(recv.read_to_end(1024).await.unwrap().is_empty());
    });
}

#[test]
fn quic_through_loss_duplication_and_reordering_delivers_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    runtime().block_on(async {
        Admin::connect(&node.target(Via::Tcp))
            .await
            .unwrap()
            .create_topic("lossy", 1, TopicConfig::default())
            .await
            .unwrap();
        let relay = common::lossy_relay(node.addr().parse().unwrap(), 0x5eed).await;
        let fp = weir_net::tls::parse_fingerprint(&node.fingerprint).unwrap();
        let target =
            weir_net::client::Target::quic(relay.to_string(), &weir_net::tls::Trust::Fingerprint(fp))
                .unwrap();
        // Not shard-aware: the relay stands for the shared address only.
        let config = ProducerConfig { shard_aware: false, ..ProducerConfig::default() };
        let producer = Producer::connect(&target, config).await.unwrap();
        let values: Vec<Vec<u8>> =
            (0..3000u32).map(|i| format!("{i}:").repeat(1 + i as usize % 200).into_bytes()).collect();
        let mut acks = Vec::new();
        for v in &values {
            let record =
                ProducerRecord { topic: "lossy".into(), value: Some(v.clone()), ..Default::default() };
            acks.push(producer.enqueue(record).await.unwrap());
        }
        for (i, ack) in acks.into_iter().enumerate() {
            assert_eq!(ack.await.unwrap(), i as u64);
        }
        producer.close().await.unwrap();
        let config = ConsumerConfig { shard_aware: false, ..ConsumerConfig::default() };
        let mut consumer = Consumer::connect(&target, config).await.unwrap();
        consumer.assign("lossy", 0, Seek::Earliest).await.unwrap();
        let mut read = Vec::new();
        while read.len() < values.len() {
            let records = consumer.poll(2000).await.unwrap();
            assert!(!records.is_empty(), "stalled after {} records", read.len());
            read.extend(records.into_iter().map(|r| r.value.unwrap()));
        }
        assert!(read == values, "every record, byte for byte, in order");
    });
}

#[test]
fn a_stopping_node_tells_its_quic_clients() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let rt = runtime();
    let conn = rt.block_on(async {
        let config = weir_net::tls::client_config(&weir_net::tls::Trust::Insecure).unwrap();
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn =
            endpoint.connect_with(config, node.addr().parse().unwrap(), "localhost").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&raw_request(&Request::ApiVersions, 1)).await.unwrap();
        read_quic_frame(&mut recv).await.unwrap();
        (endpoint, conn)
    });
    node.stop();
    // Told at once, well before the 30 s idle timeout would have ended it.
    let reason = rt.block_on(async {
        tokio_rt::time::timeout(std::time::Duration::from_secs(5), conn.1.closed()).await
    });
    match reason {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => {
            assert_eq!(&close.reason[..], b"node shutting down")
        }
        other => panic!("{other:?}"),
    }
}

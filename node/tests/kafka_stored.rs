//! Kafka batches kept as their producer sent them, on a real node: a Kafka consumer fetches
//! each byte for byte (compression kept), before and after a crash; a search by time finds the
//! record inside one; a native consumer reads their records; a compacted topic stores them as
//! Weir's columns; and the native protocol cannot send one.

mod common;
#[macro_use]
#[path = "kafka_wire/wire.rs"]
#[allow(dead_code)]
mod wire;
#[path = "kafka_wire/requests.rs"]
#[allow(dead_code)]
mod requests;

use bytes::Bytes;
use common::kafka::KafkaNode;
use common::{Node, Via, runtime};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use requests as req;
use weir_net::client::connection::Connection;
use weir_net::client::{Consumer, ConsumerConfig, Seek};
use weir_net::{Acks, ErrorCode, Request, Response};
use wire::Wire;

const CODECS: [Compression; 5] =
    [Compression::Zstd, Compression::Gzip, Compression::None, Compression::Lz4, Compression::Snappy];
const PER_BATCH: i64 = 20;
const T0: i64 = 1_700_000_000_000;

/// The timestamp of record `i` of batch `b`: out of order within a batch, rising across them.
fn timestamp(b: i64, i: i64) -> i64 {
    T0 + b * 1000 + (i * 37) % PER_BATCH * 10
}

/// Batch `b`, compressed with `codec`: keyed records with a header each.
fn kafka_batch(b: i64, codec: Compression) -> Bytes {
    let records: Vec<Record> = (0..PER_BATCH)
        .map(|i| {
            let key = Bytes::from(format!("k{}", i % 5));
            let value = Bytes::from(format!("batch {b} record {i} {}", "v".repeat(i as usize * 9)));
            let mut r = wire::record(i, timestamp(b, i), key, value);
            r.headers = [(StrBytes::from_static_str("h"), Some(Bytes::from(format!("{b}.{i}"))))]
                .into_iter()
                .collect();
            r
        })
        .collect();
    wire::encode(&records, codec)
}

/// The batch as a Kafka consumer must get it back: only its base offset and partition leader
/// epoch are the broker's (Kafka's CRC covers neither).
fn as_fetched(sent: &[u8], base_offset: i64, epoch: &[u8]) -> Vec<u8> {
    let mut b = sent.to_vec();
    b[0..8].copy_from_slice(&base_offset.to_be_bytes());
    b[12..16].copy_from_slice(epoch);
    b
}

fn produce(w: &mut Wire, topic: &str, batch: Bytes) -> i64 {
    let r = kind!(w.call(ApiKey::Produce, 9, req::produce(-1, topic, 0, batch)), Produce);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    p.base_offset
}

/// Every record byte a Kafka fetch from offset 0 returns.
fn fetch_all(w: &mut Wire, topic: &str) -> Bytes {
    let r = kind!(w.call(ApiKey::Fetch, 12, req::fetch(12, topic, 0, 0, 0)), Fetch);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    p.records.clone().unwrap_or_default()
}

/// The Kafka batches of a fetch answer, split by their lengths.
fn split(mut records: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !records.is_empty() {
        let len = 12 + i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize;
        out.push(&records[..len]);
        records = &records[len..];
    }
    out
}

fn check_fetched_as_sent(bootstrap: &str, sent: &[Bytes]) {
    let mut w = Wire::connect(bootstrap);
    let fetched = fetch_all(&mut w, "kept");
    let got = split(&fetched);
    assert_eq!(got.len(), sent.len());
    for (b, (got, sent)) in got.iter().zip(sent).enumerate() {
        let expected = as_fetched(sent, b as i64 * PER_BATCH, &got[12..16]);
        assert!(got[..] == expected[..], "batch {b} ({:?}) differs from what was sent", CODECS[b]);
    }
}

#[test]
fn kafka_batches_are_fetched_as_sent_before_and_after_a_crash_and_read_natively() {
    let node = KafkaNode::start(1, &[]);
    node.create_topic("kept", 1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    let sent: Vec<Bytes> = CODECS.iter().enumerate().map(|(b, c)| kafka_batch(b as i64, *c)).collect();
    for (b, batch) in sent.iter().enumerate() {
        assert_eq!(produce(&mut w, "kept", batch.clone()), b as i64 * PER_BATCH);
    }
    check_fetched_as_sent(&node.bootstrap, &sent);

    // A search by time finds the first record at or after it inside a kept batch.
    // Batch 0: zstd, so kept (an uncompressed batch converted would rebuild the same bytes).
    let (b, i) = (0, 7);
    let at = timestamp(b, i) - 5;
    let r = kind!(w.call(ApiKey::ListOffsets, 7, req::list_offsets("kept", at)), ListOffsets);
    let p = &r.topics[0].partitions[0];
    let want = (0..PER_BATCH).find(|j| timestamp(b, *j) >= at).unwrap();
    assert_ne!(want, 0, "the record is inside the batch");
    assert_eq!((p.error_code, p.offset, p.timestamp), (0, b * PER_BATCH + want, timestamp(b, want)), "{p:?}");

    // A native consumer seeking by time starts at the same record.
    let target = node.node.target(Via::Tcp);
    let position = runtime().block_on(async {
        let mut consumer = Consumer::connect(&target, ConsumerConfig::default()).await.unwrap();
        consumer.assign("kept", 0, Seek::Timestamp(at)).await.unwrap();
        consumer.position("kept", 0)
    });
    assert_eq!(position, Some((b * PER_BATCH + want) as u64));

    // A native consumer reads every record, with its key, value, header and timestamp.
    let read = runtime().block_on(async {
        let mut consumer = Consumer::connect(&target, ConsumerConfig::default()).await.unwrap();
        consumer.assign("kept", 0, Seek::Earliest).await.unwrap();
        let mut out = Vec::new();
        while out.len() < sent.len() * PER_BATCH as usize {
            out.extend(consumer.poll(5000).await.unwrap());
        }
        out
    });
    for (n, r) in read.iter().enumerate() {
        let (b, i) = (n as i64 / PER_BATCH, n as i64 % PER_BATCH);
        assert_eq!(r.offset, n as u64);
        assert_eq!(r.timestamp, timestamp(b, i));
        assert_eq!(r.key.as_deref(), Some(format!("k{}", i % 5).as_bytes()));
        assert!(r.value.as_deref().unwrap().starts_with(format!("batch {b} record {i} ").as_bytes()));
        assert_eq!(r.headers, vec![(b"h".to_vec(), format!("{b}.{i}").into_bytes())]);
    }

    // Recovered after a crash, the same bytes.
    let KafkaNode { node: n, bootstrap, _dir } = node;
    let (dir, port) = n.kill();
    let env = [("WEIR_KAFKA_LISTEN", bootstrap.as_str())];
    let _node = Node::start_with(&dir, 1, port, &env);
    check_fetched_as_sent(&bootstrap, &sent);
}

#[test]
fn a_compacted_topic_stores_kafka_batches_as_weir_columns() {
    let node = KafkaNode::start(1, &[]);
    node.create_topic("compacted", 1, &["--cleanup-policy", "compact"]);
    let mut w = Wire::connect(&node.bootstrap);
    let sent = kafka_batch(0, Compression::Zstd);
    assert_eq!(produce(&mut w, "compacted", sent.clone()), 0);
    let fetched = fetch_all(&mut w, "compacted");
    let got = split(&fetched);
    assert_eq!(got.len(), 1);
    // Converted: uncompressed now, with the same records.
    assert_eq!(i16::from_be_bytes([got[0][21], got[0][22]]) & 7, 0, "attributes");
    let values = wire::values(Some(fetched.clone()));
    let sent_values = wire::values(Some(sent));
    assert_eq!(values, sent_values);
}

#[test]
fn the_native_protocol_cannot_send_a_kafka_batch() {
    let node = KafkaNode::start(1, &[]);
    node.create_topic("kept", 1, &[]);
    let limits = weir_kafka::batch::ConvertLimits { batch_bytes_max: 1 << 20 };
    let stored = weir_kafka::batch::kafka_to_stored(&kafka_batch(0, Compression::Lz4), &limits).unwrap();
    let batch = stored[0].batch.as_bytes().to_vec();
    assert!(stored[0].batch.header().kafka_fields().is_some());
    let target = node.node.target(Via::Tcp);
    runtime().block_on(async {
        let mut conn = Connection::connect(&target).await.unwrap();
        let req = Request::Produce {
            topic: "kept".into(),
            partition: 0,
            acks: Acks::All,
            timeout_ms: 1000,
            batches: &batch,
        };
        let r = conn.call(&req).await.unwrap();
        assert!(matches!(r.response().unwrap(), Response::Produce { error: ErrorCode::CorruptBatch, .. }));
    });
    // Nothing was stored.
    let mut w = Wire::connect(&node.bootstrap);
    assert!(fetch_all(&mut w, "kept").is_empty());
}

/// A kept batch stays readable when the node comes back with a lower `batch_bytes_max`: its
/// records were walked within the limit of the node that took it.
#[test]
fn a_lower_batch_limit_after_a_restart_keeps_kept_batches_readable() {
    let node = KafkaNode::start(1, &[]);
    node.create_topic("kept", 1, &[]);
    let records: Vec<Record> = (0..50)
        .map(|i| {
            wire::record(
                i,
                T0 + i,
                Bytes::from(format!("k{i}")),
                Bytes::from(vec![b'a' + (i % 3) as u8; 2000]),
            )
        })
        .collect();
    let sent = wire::encode(&records, Compression::Zstd);
    assert!(sent.len() < 4096, "compressed well below the lower limit");
    assert_eq!(produce(&mut Wire::connect(&node.bootstrap), "kept", sent.clone()), 0);

    let KafkaNode { node: n, bootstrap, _dir } = node;
    let (dir, port) = n.stop();
    let env = [("WEIR_KAFKA_LISTEN", bootstrap.as_str()), ("WEIR_BATCH_BYTES_MAX", "16384")];
    let node = Node::start_with(&dir, 1, port, &env);
    let mut w = Wire::connect(&bootstrap);
    let fetched = fetch_all(&mut w, "kept");
    assert!(fetched[..] == as_fetched(&sent, 0, &fetched[12..16])[..], "fetched as sent");
    let r = kind!(w.call(ApiKey::ListOffsets, 7, req::list_offsets("kept", T0 + 17)), ListOffsets);
    assert_eq!(r.topics[0].partitions[0].offset, 17);
    let target = node.target(Via::Tcp);
    let read = runtime().block_on(async {
        let mut consumer = Consumer::connect(&target, ConsumerConfig::default()).await.unwrap();
        consumer.assign("kept", 0, Seek::Earliest).await.unwrap();
        consumer.poll(5000).await.unwrap()
    });
    assert_eq!(read.len(), 50);
    assert!(
        read.iter().enumerate().all(|(i, r)| r.offset == i as u64 && r.value.as_ref().unwrap().len() == 2000)
    );
}

/// With `kafka_batches_as_sent` off (a cluster upgrading from a version before the format),
/// Kafka batches are converted to Weir's columns, as they were.
#[test]
fn with_batches_as_sent_off_kafka_batches_are_converted() {
    let node = KafkaNode::start(1, &[("WEIR_KAFKA_BATCHES_AS_SENT", "false")]);
    node.create_topic("kept", 1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    let sent = kafka_batch(0, Compression::Zstd);
    assert_eq!(produce(&mut w, "kept", sent.clone()), 0);
    let fetched = fetch_all(&mut w, "kept");
    assert_eq!(i16::from_be_bytes([fetched[21], fetched[22]]) & 7, 0, "uncompressed");
    assert_eq!(wire::values(Some(fetched)), wire::values(Some(sent)));
}

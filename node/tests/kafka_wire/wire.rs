//! Kafka frames built and read by hand over a plain `TcpStream`, with `kafka-protocol`'s
//! client-side codec: length-prefixed (big-endian i32) request header and body out, response
//! header and body in, each in the version the API defines for it.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::ops::RangeInclusive;
use std::time::Duration;

/// How long a read waits for an answer before the test calls the connection hung.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The versions of `key` Weir advertises.
pub fn served(key: ApiKey) -> RangeInclusive<i16> {
    let a = weir_kafka::versions::served(key).unwrap_or_else(|| panic!("{key:?} is not served"));
    a.min..=a.max
}

/// Version `min + i` of `key`, or its highest: `i` in `0..10` walks every served version.
pub fn nth(key: ApiKey, i: i16) -> i16 {
    let r = served(key);
    (r.start() + i).min(*r.end())
}

pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// A whole request frame: length prefix, header, body.
pub fn frame(key: ApiKey, version: i16, correlation_id: i32, req: &RequestKind) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("kafka-wire-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap_or_else(|e| panic!("{key:?} v{version} encodes: {e}"));
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.to_vec()
}

/// How a read of one answer frame ended.
#[derive(Debug)]
pub enum Read1 {
    Frame(Vec<u8>),
    /// The node closed the connection (EOF or reset).
    Closed,
    /// Nothing within [`READ_TIMEOUT`].
    TimedOut,
}

/// Reads one length-prefixed frame (without its prefix).
pub fn read_frame(s: &mut TcpStream) -> Read1 {
    let mut head = [0u8; 4];
    if let Some(end) = read_all(s, &mut head) {
        return end;
    }
    let size = i32::from_be_bytes(head);
    assert!((0..64 << 20).contains(&size), "answer frame of {size} bytes");
    let mut body = vec![0u8; size as usize];
    if let Some(end) = read_all(s, &mut body) {
        panic!("answer cut short: {end:?}");
    }
    Read1::Frame(body)
}

fn read_all(s: &mut TcpStream, buf: &mut [u8]) -> Option<Read1> {
    match s.read_exact(buf) {
        Ok(()) => None,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Some(Read1::TimedOut),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            Some(Read1::Closed)
        }
        Err(e) => panic!("read: {e}"),
    }
}

/// The correlation id and body of an answer to `key` in `version`.
pub fn decode(key: ApiKey, version: i16, frame: Vec<u8>) -> (i32, ResponseKind) {
    let mut buf = Bytes::from(frame);
    let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{key:?} v{version} response header: {e}"));
    let body = ResponseKind::decode(key, &mut buf, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version} response: {e}"));
    assert!(buf.is_empty(), "{key:?} v{version}: {} bytes after the response", buf.len());
    (header.correlation_id, body)
}

/// One client connection to the Kafka listener.
pub struct Wire {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Wire {
    pub fn connect(addr: &str) -> Wire {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Wire { stream, next_correlation_id: 1000 }
    }

    /// Writes a request and returns its correlation id.
    pub fn send(&mut self, key: ApiKey, version: i16, req: &RequestKind) -> i32 {
        self.next_correlation_id += 7;
        let id = self.next_correlation_id;
        self.stream.write_all(&frame(key, version, id, req)).unwrap();
        id
    }

    /// Reads the next answer, which must be to `key` in `version` with `correlation_id`.
    pub fn recv(&mut self, key: ApiKey, version: i16, correlation_id: i32) -> ResponseKind {
        let body = match read_frame(&mut self.stream) {
            Read1::Frame(b) => b,
            other => panic!("{key:?} v{version}: no answer ({other:?})"),
        };
        let (id, resp) = decode(key, version, body);
        assert_eq!(id, correlation_id, "{key:?} v{version}: correlation id");
        resp
    }

    pub fn call(&mut self, key: ApiKey, version: i16, req: RequestKind) -> ResponseKind {
        let id = self.send(key, version, &req);
        self.recv(key, version, id)
    }

    /// Connects, or `None` if nothing listens there (yet).
    #[allow(dead_code)] // Each test crate that includes this file uses part of it.
    pub fn try_connect(addr: &str) -> Option<Wire> {
        let stream = TcpStream::connect(addr).ok()?;
        stream.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
        Some(Wire { stream, next_correlation_id: 1000 })
    }

    /// [`call`](Self::call), or `None` if the connection closes first (a node still joining
    /// its cluster closes some requests).
    #[allow(dead_code)]
    pub fn try_call(&mut self, key: ApiKey, version: i16, req: RequestKind) -> Option<ResponseKind> {
        self.next_correlation_id += 7;
        let id = self.next_correlation_id;
        self.stream.write_all(&frame(key, version, id, &req)).ok()?;
        match read_frame(&mut self.stream) {
            Read1::Frame(b) => {
                let (got, resp) = decode(key, version, b);
                (got == id).then_some(resp)
            }
            _ => None,
        }
    }
}

/// Takes the variant out of a `ResponseKind`, or panics with what came instead.
macro_rules! kind {
    ($resp:expr, $variant:ident) => {
        match $resp {
            kafka_protocol::messages::ResponseKind::$variant(x) => x,
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}

/// One v2 record batch of `values`, uncompressed, keys `k0`, `k1`, …
pub fn batch(values: &[String]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (key, value) = (Bytes::from(format!("k{i}")), Bytes::from(v.clone()));
            record(i as i64, 1_700_000_000_000 + i as i64, key, value)
        })
        .collect();
    encode(&records, Compression::None)
}

/// Record `offset` of a batch as a producer that is not idempotent sends it.
pub fn record(offset: i64, timestamp: i64, key: Bytes, value: Bytes) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // The encoder starts a batch wherever offset minus sequence changes; the batch's base
        // sequence is its first record's, -1.
        sequence: offset as i32 - 1,
        timestamp,
        key: Some(key),
        value: Some(value),
        headers: Default::default(),
    }
}

/// `records` as v2 batches (one, if their batch-level fields agree), compressed with `codec`.
pub fn encode(records: &[Record], codec: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records, &RecordEncodeOptions { version: 2, compression: codec })
        .unwrap();
    buf.freeze()
}

/// The values of every record in a fetch answer's record bytes, with their offsets.
pub fn values(records: Option<Bytes>) -> Vec<(i64, String)> {
    let mut buf = records.unwrap_or_default();
    let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
    sets.into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, String::from_utf8(r.value.unwrap().to_vec()).unwrap()))
        .collect()
}

//! A hand-built Kafka v2 batch writer for tests: unlike kafka-protocol's encoder it takes any
//! base timestamp (so deltas may be negative, as the Java producer's are), duplicate header
//! keys and null header values, and it can be told to lie.

#![allow(dead_code)]

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use weir_kafka::batch::varint::{write_varint, write_varlong};
use weir_kafka::batch::{Codec, KAFKA_HEADER_BYTES, KafkaBatchHeader, MAGIC_V2, compute_crc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub timestamp: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

pub const NO_STAMP: Stamp = Stamp { producer_id: -1, producer_epoch: -1, base_sequence: -1 };

fn field(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// The records section of `records`, uncompressed, with timestamps relative to `base_ts`.
pub fn records_section(records: &[TRecord], base_ts: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut body = vec![0u8];
        write_varlong(&mut body, r.timestamp - base_ts);
        write_varint(&mut body, i as i32);
        field(&mut body, r.key.as_deref());
        field(&mut body, r.value.as_deref());
        write_varint(&mut body, r.headers.len() as i32);
        for (k, v) in &r.headers {
            field(&mut body, Some(k));
            field(&mut body, v.as_deref());
        }
        write_varint(&mut out, body.len() as i32);
        out.extend_from_slice(&body);
    }
    out
}

pub fn compress(codec: Codec, section: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| -> anyhow::Result<()> {
        b.extend_from_slice(section);
        Ok(())
    };
    match codec {
        Codec::None => return section.to_vec(),
        Codec::Gzip => Gzip::compress(&mut out, fill).unwrap(),
        Codec::Snappy => Snappy::compress(&mut out, fill).unwrap(),
        Codec::Lz4 => Lz4::compress(&mut out, fill).unwrap(),
        Codec::Zstd => Zstd::compress(&mut out, fill).unwrap(),
    }
    out.to_vec()
}

/// A whole batch around an already encoded (and possibly compressed) records section.
pub fn frame(mut h: KafkaBatchHeader, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; KAFKA_HEADER_BYTES];
    out.extend_from_slice(body);
    h.batch_length = (out.len() - 12) as i32;
    h.encode(&mut out);
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The header a producer writes for `records`: base timestamp the first record's.
pub fn header_for(records: &[TRecord], codec: Codec, stamp: Stamp) -> KafkaBatchHeader {
    KafkaBatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: MAGIC_V2,
        crc: 0,
        attributes: i16::from(codec.bits()),
        last_offset_delta: records.len() as i32 - 1,
        base_timestamp: records[0].timestamp,
        max_timestamp: records.iter().map(|r| r.timestamp).max().unwrap(),
        producer_id: stamp.producer_id,
        producer_epoch: stamp.producer_epoch,
        base_sequence: stamp.base_sequence,
        records_count: records.len() as i32,
    }
}

pub fn kafka_batch(records: &[TRecord], codec: Codec, stamp: Stamp) -> Vec<u8> {
    let h = header_for(records, codec, stamp);
    frame(h, &compress(codec, &records_section(records, h.base_timestamp)))
}

/// Re-frames a batch after its header was edited, with a fresh CRC.
pub fn recrc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

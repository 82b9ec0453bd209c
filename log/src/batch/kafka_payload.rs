//! Sealing a Kafka-format batch: Weir's header in front of a Kafka v2 records section kept as
//! the producer sent it (see [`PayloadFormat::Kafka`] and `docs/format.md`).
//!
//! The log does not read Kafka records: `weir-kafka` walks them before it seals the batch here,
//! and converts them whenever someone needs records (a native consumer).

use super::header::{
    ATTR_PAYLOAD_KAFKA, ATTR_TXN_MASK, BATCH_MAGIC, BATCH_VERSION, BatchHeader, HEADER_BYTES,
    KAFKA_CODEC_MAX, PayloadFormat, align_batch, compute_crc,
};
use super::{Batch, BatchView, ProducerStamp};
use rkyv::util::AlignedVec;

/// The fields of a Kafka v2 batch header that Weir's header keeps, beside the offsets and the
/// leader epoch a leader assigns. With them, the 61-byte Kafka header is rebuilt exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaFields {
    /// Kafka's codec id, 0 (none) to 4 (zstd).
    pub codec: u16,
    /// The Kafka batch's CRC32C, which covers its attributes to its last record byte.
    pub kafka_crc: u32,
    /// At least 1; the records' offset deltas are `0..record_count`.
    pub record_count: u32,
    /// Kafka's baseTimestamp, from which the records' timestamps are deltas.
    pub base_timestamp: i64,
    /// Kafka's maxTimestamp, at least `base_timestamp`.
    pub max_timestamp: i64,
    pub producer: ProducerStamp,
    /// Transaction bits ([`ATTR_TXN_MASK`]): a transactional batch, a marker, a commit.
    pub txn: u16,
}

/// A Kafka-format batch of `section`, the records section of a Kafka v2 batch whose header
/// said `fields`, with base offset and leader epoch 0 for the leader to patch.
///
/// Panics on fields no Kafka-format batch may have (a codec above zstd, no record, a maximum
/// timestamp below the base one): the caller has checked them.
pub fn seal_kafka(fields: &KafkaFields, section: &[u8]) -> Batch {
    assert!(fields.codec <= KAFKA_CODEC_MAX, "Kafka codec {}", fields.codec);
    assert!(fields.record_count > 0 && fields.max_timestamp >= fields.base_timestamp);
    assert_eq!(fields.txn & !ATTR_TXN_MASK, 0, "transaction bits only");
    let batch_len = align_batch(HEADER_BYTES + section.len());
    let mut bytes = AlignedVec::<16>::with_capacity(batch_len);
    bytes.resize(HEADER_BYTES, 0);
    bytes.extend_from_slice(section);
    bytes.resize(batch_len, 0);
    let mut h = BatchHeader {
        base_offset: 0,
        leader_epoch: 0,
        batch_len: u32::try_from(batch_len).expect("a batch is below 4 GiB"),
        magic: BATCH_MAGIC,
        crc: 0,
        version: BATCH_VERSION,
        attributes: ATTR_PAYLOAD_KAFKA | fields.codec | fields.txn,
        record_count: fields.record_count,
        last_offset_delta: fields.record_count - 1,
        payload_len: section.len() as u32,
        first_timestamp: fields.base_timestamp,
        max_timestamp: fields.max_timestamp,
        producer_id: fields.producer.producer_id,
        producer_epoch: fields.producer.producer_epoch,
        reserved0: 0,
        base_sequence: fields.producer.base_sequence,
        reserved1: u64::from(fields.kafka_crc),
    };
    h.encode(&mut bytes[..HEADER_BYTES]);
    h.crc = compute_crc(&bytes);
    h.encode(&mut bytes[..HEADER_BYTES]);
    let batch = Batch::from_sealed(bytes);
    debug_assert!(BatchView::validate_stored(batch.as_bytes(), usize::MAX).is_ok_and(|v| v.is_kafka()));
    batch
}

impl BatchHeader {
    /// The Kafka fields of a Kafka-format batch's header; `None` for Weir's columns.
    pub fn kafka_fields(&self) -> Option<KafkaFields> {
        (self.payload_format() == Some(PayloadFormat::Kafka)).then(|| KafkaFields {
            codec: self.codec(),
            kafka_crc: self.reserved1 as u32,
            record_count: self.record_count,
            base_timestamp: self.first_timestamp,
            max_timestamp: self.max_timestamp,
            producer: ProducerStamp {
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
                base_sequence: self.base_sequence,
            },
            txn: self.attributes & ATTR_TXN_MASK,
        })
    }
}

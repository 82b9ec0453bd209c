//! Kafka batches kept as the producer sent them, behind Weir's header (Weir's
//! `PayloadFormat::Kafka`): sealed on produce, rebuilt exactly for a Kafka consumer, and
//! converted to Weir's columns for a native one.
//!
//! A batch is kept only when it converts to Weir's columns for certain (its records fit a Weir
//! batch, their timestamps lie within Weir's span) and its header tells the truth about its
//! records (the largest timestamp); otherwise it is converted on produce, as before. So a
//! native consumer can always read what a Kafka producer wrote.

use super::compression::{Codec, decompress};
use super::header::{
    ATTR_COMPRESSION_MASK, ATTR_CONTROL, ATTR_TRANSACTIONAL, KAFKA_HEADER_BYTES, KafkaBatchHeader,
    LOG_OVERHEAD, MAGIC_V2,
};
use super::to_weir::{
    ConvertLimits, Converted, Opened, Walked, build, convert_opened, each_batch, open, walk,
};
use crate::error::BatchConvertError;
use rkyv::util::AlignedVec;
use std::borrow::Cow;
use weir_log::batch::header::{HEADER_BYTES, align_batch};
use weir_log::batch::{Batch, BatchBuilder, BatchHeader, BatchView, KafkaFields, ProducerStamp, seal_kafka};

/// The `records` field of one partition in a Produce, one or more Kafka v2 batches, as batches
/// for the log: each kept as sent when it can be (see the module's doc), else converted as
/// [`kafka_to_weir`](super::kafka_to_weir) does. All or nothing, as `kafka_to_weir`.
///
/// Every record is walked and checked either way: a kept batch is as valid as a converted one.
pub fn kafka_to_stored(records: &[u8], limits: &ConvertLimits) -> Result<Vec<Converted>, BatchConvertError> {
    each_batch(records, |batch| {
        let opened = open(batch, limits)?;
        let walked = walk(&opened.header, &opened.section, |_, _| Ok(()))?;
        match keepable(&opened, &walked, limits) {
            true => Ok(keep(&opened, &walked)),
            false => convert_opened(&opened, limits),
        }
    })
}

/// Whether the batch may be kept as sent.
fn keepable(o: &Opened<'_>, w: &Walked, limits: &ConvertLimits) -> bool {
    let h = &o.header;
    let compressed = o.batch.len() - KAFKA_HEADER_BYTES;
    // Create time, no other bit but the transactional one: the rebuilt header has the codec and
    // the transaction bits alone.
    h.attributes & !(ATTR_COMPRESSION_MASK | ATTR_TRANSACTIONAL) == 0
        // Weir's max_timestamp (retention, the time index) is the records' largest.
        && h.max_timestamp == w.max_timestamp
        && h.base_timestamp <= h.max_timestamp
        // A native consumer's Weir batch takes the records, and their timestamps' span.
        && w.max_timestamp.abs_diff(w.min_timestamp) <= u64::from(u32::MAX)
        && BatchBuilder::records_bytes_bound(w.records, w.headers, w.data) <= limits.batch_bytes_max
        && align_batch(HEADER_BYTES + compressed) <= limits.batch_bytes_max
}

fn keep(o: &Opened<'_>, w: &Walked) -> Converted {
    let h = &o.header;
    let fields = KafkaFields {
        codec: u16::from(o.codec.bits()),
        kafka_crc: h.crc,
        record_count: h.records_count as u32,
        base_timestamp: h.base_timestamp,
        max_timestamp: h.max_timestamp,
        producer: ProducerStamp {
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
        },
        txn: if h.is_transactional() { weir_log::batch::header::ATTR_TRANSACTIONAL } else { 0 },
    };
    Converted {
        batch: seal_kafka(&fields, &o.batch[KAFKA_HEADER_BYTES..]),
        record_count: fields.record_count,
        codec: o.codec,
        has_null_key: w.has_null_key,
        max_timestamp: w.max_timestamp,
        kafka_bytes: o.batch.len(),
    }
}

/// The Kafka header of a kept batch, as its producer sent it but for the offsets and epoch
/// its leader assigned (which Kafka's CRC does not cover either).
fn kafka_header(h: &BatchHeader, f: &KafkaFields) -> KafkaBatchHeader {
    let batch_length = KAFKA_HEADER_BYTES - LOG_OVERHEAD + h.payload_len as usize;
    KafkaBatchHeader {
        base_offset: h.base_offset as i64,
        batch_length: i32::try_from(batch_length).expect("a stored batch is below 2 GiB"),
        partition_leader_epoch: h.leader_epoch as i32,
        magic: MAGIC_V2,
        crc: f.kafka_crc,
        // The Kafka bits of a transaction are Kafka's own (bits 4 and 5); Weir's commit bit is not.
        attributes: (f.codec | (f.txn & (ATTR_TRANSACTIONAL | ATTR_CONTROL) as u16)) as i16,
        last_offset_delta: h.last_offset_delta as i32,
        base_timestamp: f.base_timestamp,
        max_timestamp: f.max_timestamp,
        producer_id: f.producer.producer_id,
        producer_epoch: f.producer.producer_epoch,
        base_sequence: f.producer.base_sequence,
        records_count: h.record_count as i32,
    }
}

/// Appends the Kafka batch a kept batch was: the rebuilt 61-byte header and the stored
/// records section, byte for byte. `view` must be a Kafka-format batch.
pub(super) fn write_kept(view: &BatchView<'_>, out: &mut Vec<u8>) {
    let h = view.header();
    let f = h.kafka_fields().expect("a Kafka-format batch");
    let start = out.len();
    out.resize(start + KAFKA_HEADER_BYTES, 0);
    kafka_header(h, &f).encode(&mut out[start..]);
    out.extend_from_slice(view.payload());
    debug_assert_eq!(super::compute_crc(&out[start..]), f.kafka_crc, "a kept batch rebuilds exactly");
}

/// The Weir batch, with Weir's columns, of a kept Kafka batch: what a native consumer reads.
/// Offsets, leader epoch and producer stamp are the stored batch's.
pub fn stored_to_weir(view: &BatchView<'_>, limits: &ConvertLimits) -> Result<Batch, BatchConvertError> {
    let h = view.header();
    let f = h.kafka_fields().expect("a Kafka-format batch");
    let kh = kafka_header(h, &f);
    let codec = Codec::from_bits(f.codec as u8)?;
    let section: Cow<'_, [u8]> = match codec {
        Codec::None => Cow::Borrowed(view.payload()),
        codec => Cow::Owned(decompress(codec, view.payload(), limits.batch_bytes_max)?),
    };
    let mut batch = build(&kh, &section, limits)?.builder.seal(f.producer);
    if f.txn != 0 {
        // A native consumer skips a marker's record, as a Kafka consumer skips control batches.
        batch.set_txn_bits(f.txn);
    }
    batch.set_base_offset(h.base_offset, h.leader_epoch);
    Ok(batch)
}

/// The first record of the stored batch `view` at or after `offset` whose timestamp is at
/// least `at_least`, as `(offset, timestamp)`: a search by time that the log answered to the
/// batch. A kept Kafka batch is read through its Weir columns.
pub fn first_record_at(
    view: &BatchView<'_>,
    offset: u64,
    at_least: i64,
) -> Result<Option<(u64, i64)>, BatchConvertError> {
    let converted = match view.is_kafka() {
        true => Some(stored_to_weir(view, &ConvertLimits::STORED)?),
        false => None,
    };
    let view = converted.as_ref().map_or(*view, Batch::view);
    Ok(view
        .records()
        .find(|r| r.offset >= offset && r.timestamp >= at_least)
        .map(|r| (r.offset, r.timestamp)))
}

/// The batches of a read, back to back, as a native consumer reads them: Weir's columns.
/// `None` when no batch is a kept Kafka batch (the bytes serve as they are); else the batches,
/// the kept ones converted, as many as fit `bytes_max` (the first whatever its size: a
/// decompressed batch may be larger than the read, and the consumer reads on from the next).
/// A batch that does not convert ends the answer before it, or fails it if it is the first.
/// Every batch must be whole, as Weir's reads return them.
pub fn native_section(
    batches: &[u8],
    limits: &ConvertLimits,
    bytes_max: usize,
) -> Result<Option<AlignedVec<16>>, BatchConvertError> {
    let mut any = false;
    let mut rest = batches;
    while !rest.is_empty() && !any {
        let h = framed(rest)?;
        any = h.kafka_fields().is_some();
        rest = &rest[h.batch_len as usize..];
    }
    if !any {
        return Ok(None);
    }
    let mut out = AlignedVec::<16>::with_capacity(batches.len().min(bytes_max) * 2);
    let mut rest = batches;
    while !rest.is_empty() {
        let len = framed(rest)?.batch_len as usize;
        let converted = match columns_of(rest, limits) {
            Ok(c) => c,
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        };
        let one = converted.as_ref().map_or(&rest[..len], Batch::as_bytes);
        if !out.is_empty() && out.len() + one.len() > bytes_max {
            break;
        }
        out.extend_from_slice(one);
        rest = &rest[len..];
    }
    Ok(Some(out))
}

/// The header of the whole batch at the start of `bytes`, its frame checked.
fn framed(bytes: &[u8]) -> Result<BatchHeader, BatchConvertError> {
    let weir = |source| BatchConvertError::Weir { source };
    let h = BatchHeader::decode(bytes).map_err(weir)?;
    h.check_frame(usize::MAX).map_err(weir)?;
    let len = h.batch_len as usize;
    if bytes.len() < len {
        return Err(BatchConvertError::Truncated { needed: len, available: bytes.len() });
    }
    Ok(h)
}

/// The batch at the start of `bytes` converted to Weir's columns, or `None` if it has them
/// (served as read, as any native fetch: its consumer validates it).
fn columns_of(bytes: &[u8], limits: &ConvertLimits) -> Result<Option<Batch>, BatchConvertError> {
    if framed(bytes)?.kafka_fields().is_none() {
        return Ok(None);
    }
    let view =
        BatchView::validate_stored(bytes, usize::MAX).map_err(|source| BatchConvertError::Weir { source })?;
    stored_to_weir(&view, limits).map(Some)
}

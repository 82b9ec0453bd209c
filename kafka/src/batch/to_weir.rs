//! Kafka v2 batches (a Produce request's records) to Weir batches, one for one.

use super::compression::{Codec, decompress};
use super::header::{KAFKA_HEADER_BYTES, KafkaBatchHeader, MAGIC_V2, compute_crc};
use super::record::{KafkaRecord, RECORD_BYTES_MIN, RecordWalker};
use crate::error::BatchConvertError;
use std::borrow::Cow;
use weir_log::batch::{Batch, BatchBuilder, BuildError, ProducerStamp, Record};

/// Where the magic byte sits in every Kafka message format, old and new.
const MAGIC_AT: usize = 16;
/// Smallest `batch_bytes_max` a Weir builder accepts (header and fixed payload).
const BATCH_BYTES_MIN: usize = 256;

/// Bounds on one conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertLimits {
    /// Largest Weir batch, in bytes, and also the most a Kafka batch's records may decompress
    /// to: the records' bytes all reach the Weir batch, so a larger output could not fit anyway.
    pub batch_bytes_max: usize,
}

impl ConvertLimits {
    /// The limits for converting a batch already in a log, a Kafka batch kept as sent: its
    /// records were walked within the limit of the node that took it, and its CRC says they
    /// have not changed since. A limit lowered after (a restart, another leader) must not make
    /// it unreadable, so only the format's own bound applies.
    pub const STORED: Self = Self { batch_bytes_max: u32::MAX as usize };

    /// Panics when `batch_bytes_max` is below 256 bytes, too small for any Weir batch: that is
    /// a configuration error, not a bad request.
    pub fn new(batch_bytes_max: usize) -> Self {
        assert!(batch_bytes_max >= BATCH_BYTES_MIN, "batch_bytes_max below {BATCH_BYTES_MIN}");
        Self { batch_bytes_max }
    }
}

/// One Kafka batch converted: the Weir batch and what the node needs to answer the Produce.
#[derive(Debug, Clone)]
pub struct Converted {
    /// Sealed with base offset 0; the leader patches offsets as for any batch.
    pub batch: Batch,
    pub record_count: u32,
    /// The codec the producer used (the Weir batch is stored uncompressed).
    pub codec: Codec,
    /// Whether any record's key is null: a compacted topic refuses such records.
    pub has_null_key: bool,
    /// The largest record timestamp.
    pub max_timestamp: i64,
    /// Bytes of the Kafka batch as received, compressed.
    pub kafka_bytes: usize,
}

/// Converts the `records` field of one partition in a Produce request, one or more Kafka v2
/// batches back to back, to one Weir batch each. All or nothing: the first bad batch fails the
/// whole field, as Kafka fails the partition.
///
/// What does not carry over: a null header value becomes an empty one (Weir headers have no
/// null), record attributes (unused by Kafka) are dropped, the batch's maxTimestamp is
/// recomputed from the records, and the timestamp-type bit is ignored (a producer's timestamps
/// are create times).
pub fn kafka_to_weir(records: &[u8], limits: &ConvertLimits) -> Result<Vec<Converted>, BatchConvertError> {
    each_batch(records, |batch| convert_one(batch, limits))
}

/// `one` of each Kafka batch of a Produce's `records`, back to back (at least one), all or
/// nothing; `one` gets the bytes from its batch on and says how many it took.
pub(super) fn each_batch(
    records: &[u8],
    mut one: impl FnMut(&[u8]) -> Result<Converted, BatchConvertError>,
) -> Result<Vec<Converted>, BatchConvertError> {
    if records.is_empty() {
        return Err(BatchConvertError::Truncated { needed: KAFKA_HEADER_BYTES, available: 0 });
    }
    let mut out = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let converted = one(rest)?;
        rest = &rest[converted.kafka_bytes..];
        out.push(converted);
    }
    Ok(out)
}

/// Checks the frame, CRC and header of the batch at the start of `bytes`; returns the header
/// and the batch's bytes.
pub(super) fn check_batch(bytes: &[u8]) -> Result<(KafkaBatchHeader, &[u8]), BatchConvertError> {
    // The magic is at the same place in the old message formats, which are shorter than v2's
    // header: check it first so that an old message set is named as such.
    if let Some(&magic) = bytes.get(MAGIC_AT)
        && magic as i8 != MAGIC_V2
    {
        return Err(BatchConvertError::UnsupportedMagic { magic: magic as i8 });
    }
    let h = KafkaBatchHeader::parse(bytes)?;
    let len = h.total_len().ok_or(BatchConvertError::BadBatchLength { batch_length: h.batch_length })?;
    if len > bytes.len() {
        return Err(BatchConvertError::Truncated { needed: len, available: bytes.len() });
    }
    let batch = &bytes[..len];
    let actual = compute_crc(batch);
    if actual != h.crc {
        return Err(BatchConvertError::CrcMismatch { expected: h.crc, actual });
    }
    let refuse = |feature| Err(BatchConvertError::Unsupported { feature });
    if h.is_control() {
        // Markers are the coordinator's to write.
        return refuse("control batches from a producer");
    }
    if h.is_transactional() && h.producer_id < 0 {
        return refuse("a transactional batch without a producer id");
    }
    if h.has_delete_horizon() {
        return refuse("delete horizons");
    }
    if h.records_count < 1 {
        return Err(BatchConvertError::InvalidRecordCount {
            count: h.records_count,
            bytes: len - KAFKA_HEADER_BYTES,
        });
    }
    let expected = i64::from(h.records_count) - 1;
    if i64::from(h.last_offset_delta) != expected {
        let found = i64::from(h.last_offset_delta);
        return Err(BatchConvertError::InvalidOffsetDeltas { field: "lastOffsetDelta", expected, found });
    }
    Ok((h, batch))
}

fn convert_one(bytes: &[u8], limits: &ConvertLimits) -> Result<Converted, BatchConvertError> {
    let opened = open(bytes, limits)?;
    convert_opened(&opened, limits)
}

/// A checked Kafka batch with its records section decompressed.
pub(super) struct Opened<'b> {
    pub header: KafkaBatchHeader,
    /// The whole Kafka batch, header included.
    pub batch: &'b [u8],
    pub codec: Codec,
    /// The records section, decompressed.
    pub section: Cow<'b, [u8]>,
}

/// Checks the batch at the start of `bytes` ([`check_batch`]) and decompresses its records
/// within `batch_bytes_max`.
pub(super) fn open<'b>(bytes: &'b [u8], limits: &ConvertLimits) -> Result<Opened<'b>, BatchConvertError> {
    let (header, batch) = check_batch(bytes)?;
    let codec = header.codec()?;
    let compressed = &batch[KAFKA_HEADER_BYTES..];
    let section: Cow<'_, [u8]> = match codec {
        Codec::None => Cow::Borrowed(compressed),
        codec => Cow::Owned(decompress(codec, compressed, limits.batch_bytes_max)?),
    };
    // Refused before anything is allocated per record: each record takes 7 bytes at least.
    let count = header.records_count as usize;
    if count > section.len() / RECORD_BYTES_MIN {
        return Err(BatchConvertError::InvalidRecordCount {
            count: header.records_count,
            bytes: section.len(),
        });
    }
    Ok(Opened { header, batch, codec, section })
}

/// The Weir batch of an opened Kafka batch.
pub(super) fn convert_opened(o: &Opened<'_>, limits: &ConvertLimits) -> Result<Converted, BatchConvertError> {
    let h = &o.header;
    if h.is_transactional() {
        // Weir's columns have no transaction bits: such a batch is stored as sent or not at all.
        return Err(BatchConvertError::Unsupported {
            feature: "a transactional batch not stored as sent (a compacted topic, \
                      kafka_batches_as_sent off, or records a kept batch cannot hold)",
        });
    }
    let built = build(h, &o.section, limits)?;
    let stamp = ProducerStamp {
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
    };
    Ok(Converted {
        batch: built.builder.seal(stamp),
        record_count: h.records_count as u32,
        codec: o.codec,
        has_null_key: built.has_null_key,
        max_timestamp: built.max_timestamp,
        kafka_bytes: o.batch.len(),
    })
}

/// A builder holding a batch's records, and what was learnt walking them.
pub(super) struct Built {
    pub builder: BatchBuilder,
    pub has_null_key: bool,
    pub max_timestamp: i64,
}

/// Walks the records section and pushes every record into a Weir builder.
pub(super) fn build(
    h: &KafkaBatchHeader,
    section: &[u8],
    limits: &ConvertLimits,
) -> Result<Built, BatchConvertError> {
    let mut builder = BatchBuilder::new(limits.batch_bytes_max);
    // One scratch list for every record's headers, so a record costs no allocation.
    let mut headers: Vec<(&[u8], &[u8])> = Vec::new();
    let walked = walk(h, section, |r, timestamp| {
        headers.clear();
        // Weir headers have no null value: a null one is stored empty.
        headers.extend(r.headers().map(|(k, v)| (k, v.unwrap_or_default())));
        let record = Record { key: r.key, value: r.value, headers: &headers, timestamp };
        builder.push(&record).map_err(|e| build_error(e, limits))
    })?;
    Ok(Built { builder, has_null_key: walked.has_null_key, max_timestamp: walked.max_timestamp })
}

/// What walking a batch's records learnt of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Walked {
    pub records: usize,
    /// Headers of all records.
    pub headers: usize,
    /// Bytes of keys, header keys and values, and values: what a Weir batch's data holds.
    pub data: usize,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub has_null_key: bool,
}

/// Walks the records of a batch whose header is `h`, checking each exactly (lengths, offset
/// deltas, timestamps), and hands each with its timestamp to `each`.
pub(super) fn walk<'s>(
    h: &KafkaBatchHeader,
    section: &'s [u8],
    mut each: impl FnMut(&KafkaRecord<'s>, i64) -> Result<(), BatchConvertError>,
) -> Result<Walked, BatchConvertError> {
    let mut walker = RecordWalker::new(section, h.records_count as usize);
    let mut w = Walked {
        records: 0,
        headers: 0,
        data: 0,
        min_timestamp: i64::MAX,
        max_timestamp: i64::MIN,
        has_null_key: false,
    };
    while let Some(r) = walker.next_record()? {
        let index = w.records;
        if i64::from(r.offset_delta) != index as i64 {
            let (expected, found) = (index as i64, i64::from(r.offset_delta));
            return Err(BatchConvertError::InvalidOffsetDeltas { field: "offsetDelta", expected, found });
        }
        let timestamp = timestamp_of(h, &r, index)?;
        each(&r, timestamp)?;
        let header_bytes: usize = r.headers().map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len)).sum();
        w.headers += r.header_count();
        w.data += r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len) + header_bytes;
        w.has_null_key |= r.key.is_none();
        w.min_timestamp = w.min_timestamp.min(timestamp);
        w.max_timestamp = w.max_timestamp.max(timestamp);
        w.records += 1;
    }
    walker.finish()?;
    Ok(w)
}

fn timestamp_of(h: &KafkaBatchHeader, r: &KafkaRecord<'_>, index: usize) -> Result<i64, BatchConvertError> {
    h.base_timestamp.checked_add(r.timestamp_delta).ok_or(BatchConvertError::TimestampOverflow {
        index,
        base: h.base_timestamp,
        delta: r.timestamp_delta,
    })
}

fn build_error(e: BuildError, limits: &ConvertLimits) -> BatchConvertError {
    match e {
        BuildError::TimestampSpan { timestamp, first } => {
            BatchConvertError::TimestampSpan { timestamp, first }
        }
        // `Full`, and any kind a later builder adds: the record does not fit the batch.
        _ => BatchConvertError::TooLarge { what: "Weir batch", limit: limits.batch_bytes_max },
    }
}

//! Stored Weir batches to Kafka v2 batches, for a Kafka Fetch. A Kafka batch kept as sent is
//! rebuilt as it was (`stored`); one of Weir's columns is converted, as follows.
//!
//! Encodes straight into the caller's buffer: the 61-byte header is reserved, the records are
//! written with their lengths computed up front, then the header and its CRC are filled in. No
//! allocation per record; the output is uncompressed.

use super::header::{KAFKA_HEADER_BYTES, KafkaBatchHeader, LOG_OVERHEAD, MAGIC_V2, compute_crc};
use super::varint::{varint_len, varlong_len, write_varint, write_varlong};
use crate::error::BatchConvertError;
use weir_log::batch::{Batch, BatchHeader, BatchView, RecordView};

/// What [`fetch_section`] converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchConverted {
    pub batches: usize,
    pub records: usize,
}

/// Appends to `out` the Kafka v2 batch equivalent to the stored Weir batch at the start of
/// `batch`, and returns the Weir batch's length (bytes after it are ignored).
///
/// The batch is validated fully (CRC, header, columns) before it is read. Stored batches are
/// 16-byte aligned when the fetch buffer is; an unaligned one is copied once to align it.
/// On error `out` is unchanged.
pub fn weir_to_kafka(batch: &[u8], out: &mut Vec<u8>) -> Result<usize, BatchConvertError> {
    let weir = |source| BatchConvertError::Weir { source };
    if BatchHeader::decode(batch).map_err(weir)?.kafka_fields().is_some() {
        // Kept as its producer sent it: rebuilt, not converted (no alignment needed).
        let view = BatchView::validate_stored(batch, usize::MAX).map_err(weir)?;
        super::stored::write_kept(&view, out);
        Ok(view.bytes().len())
    } else if (batch.as_ptr() as usize).is_multiple_of(16) {
        let view = BatchView::validate(batch, usize::MAX).map_err(weir)?;
        write_batch(&view, out);
        Ok(view.bytes().len())
    } else {
        let owned = Batch::from_bytes(batch, usize::MAX).map_err(weir)?;
        write_batch(&owned.view(), out);
        Ok(owned.len())
    }
}

/// Converts the Weir batches of a fetch, back to back in `batches`, appending the Kafka
/// batches to `out`. Every batch must be whole: Weir reads return whole batches. On error,
/// `out` holds the batches converted before the bad one.
pub fn fetch_section(batches: &[u8], out: &mut Vec<u8>) -> Result<FetchConverted, BatchConvertError> {
    let mut done = FetchConverted::default();
    let mut rest = batches;
    while !rest.is_empty() {
        let header = BatchHeader::decode(rest).map_err(|source| BatchConvertError::Weir { source })?;
        let len = weir_to_kafka(rest, out)?;
        done.batches += 1;
        done.records += header.record_count as usize;
        rest = &rest[len..];
    }
    Ok(done)
}

/// Writes one validated batch as a Kafka batch at the end of `out`.
fn write_batch(view: &BatchView<'_>, out: &mut Vec<u8>) {
    let h = view.header();
    let start = out.len();
    out.resize(start + KAFKA_HEADER_BYTES, 0);
    for record in view.records() {
        write_record(out, &record, h);
    }
    let batch_length =
        i32::try_from(out.len() - start - LOG_OVERHEAD).expect("a Weir batch converts to under 2 GiB");
    let kafka = KafkaBatchHeader {
        base_offset: h.base_offset as i64,
        batch_length,
        partition_leader_epoch: h.leader_epoch as i32,
        magic: MAGIC_V2,
        crc: 0,
        // Uncompressed, create time, neither transactional nor control.
        attributes: 0,
        last_offset_delta: h.last_offset_delta as i32,
        base_timestamp: h.first_timestamp,
        max_timestamp: h.max_timestamp,
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
        records_count: h.record_count as i32,
    };
    kafka.encode(&mut out[start..]);
    let crc = compute_crc(&out[start..]);
    out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
}

/// Length of a nullable byte field's length varint plus its bytes.
fn field_len(bytes: Option<&[u8]>) -> usize {
    bytes.map_or(varint_len(-1), |b| varint_len(len_i32(b)) + b.len())
}

fn len_i32(bytes: &[u8]) -> i32 {
    // Weir batches are at most u32 bytes and their conversions are checked against i32 above.
    i32::try_from(bytes.len()).expect("a field of a Weir batch fits i32")
}

fn write_field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, len_i32(b));
            out.extend_from_slice(b);
        }
    }
}

/// Writes one record: its length varint, then its fields. The length is summed first, so the
/// record is written once and in place.
fn write_record(out: &mut Vec<u8>, r: &RecordView<'_>, h: &BatchHeader) {
    let offset_delta = i32::try_from(r.offset - h.base_offset).expect("offset deltas are u32 below i32");
    let timestamp_delta = r.timestamp - h.first_timestamp;
    let header_count = r.headers().count();
    let headers_len: usize = r.headers().map(|(k, v)| field_len(Some(k)) + field_len(Some(v))).sum();
    let body = 1
        + varlong_len(timestamp_delta)
        + varint_len(offset_delta)
        + field_len(r.key)
        + field_len(r.value)
        + varint_len(len_count(header_count))
        + headers_len;
    write_varint(out, i32::try_from(body).expect("a record of a Weir batch fits i32"));
    out.push(0); // Record attributes: unused by Kafka.
    write_varlong(out, timestamp_delta);
    write_varint(out, offset_delta);
    write_field(out, r.key);
    write_field(out, r.value);
    write_varint(out, len_count(header_count));
    for (k, v) in r.headers() {
        write_field(out, Some(k));
        write_field(out, Some(v));
    }
}

fn len_count(n: usize) -> i32 {
    i32::try_from(n).expect("a header count of a Weir batch fits i32")
}

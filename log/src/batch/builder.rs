//! Building and sealing a batch: what a producer does before it sends.

use super::columns::{Columns, bitmap_len, set_bit};
use super::header::{
    BATCH_ALIGN, BATCH_MAGIC, BATCH_VERSION, BatchHeader, CRC_START, HEADER_BYTES, NO_PRODUCER_ID,
    align_batch, compute_crc,
};
use super::{Batch, Record};
use rkyv::util::AlignedVec;

/// Bytes of fixed cost per batch beyond the header: the archived root (ten vectors of 8 bytes)
/// plus worst-case alignment padding. Used only to estimate the sealed size.
const PAYLOAD_FIXED_BYTES: usize = 10 * 8 + 10 * 4 + 16;

/// Why a record was not added to a builder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Adding the record would make the sealed batch larger than `batch_bytes_max`. The builder
    /// is unchanged; seal it and start another. A record that does not fit an empty builder can
    /// never be sent.
    #[error("record of {record_bytes} bytes does not fit the batch ({used} of {limit} bytes used)")]
    Full { record_bytes: usize, used: usize, limit: usize },
    /// Record timestamps in one batch must lie within `u32::MAX` ms of each other.
    #[error("timestamp {timestamp} is too far from the batch's first timestamp {first}")]
    TimestampSpan { timestamp: i64, first: i64 },
}

/// Producer identity stamped on a batch, for idempotence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl Default for ProducerStamp {
    fn default() -> Self {
        Self { producer_id: NO_PRODUCER_ID, producer_epoch: -1, base_sequence: -1 }
    }
}

/// Accumulates records column by column, then seals them into a [`Batch`].
///
/// Owned by one task; not shared. Appending copies key, value and headers once into the data
/// column; sealing copies the columns once more into the final aligned buffer.
#[derive(Debug)]
pub struct BatchBuilder {
    cols: Columns,
    timestamps: Vec<i64>,
    min_timestamp: i64,
    max_timestamp: i64,
    batch_bytes_max: usize,
}

impl BatchBuilder {
    /// A builder whose sealed batch will not exceed `batch_bytes_max` bytes.
    pub fn new(batch_bytes_max: usize) -> Self {
        assert!(batch_bytes_max >= HEADER_BYTES + PAYLOAD_FIXED_BYTES, "batch_bytes_max too small");
        Self {
            cols: Columns::default(),
            timestamps: Vec::new(),
            min_timestamp: i64::MAX,
            max_timestamp: i64::MIN,
            batch_bytes_max,
        }
    }

    pub fn len(&self) -> usize {
        self.cols.value_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An upper bound of the sealed batch's size in bytes.
    pub fn sealed_bytes_max(&self) -> usize {
        let c = &self.cols;
        let words = c.offset_deltas.len()
            + self.timestamps.len()
            + c.key_ends.len()
            + c.header_ends.len()
            + c.header_key_ends.len()
            + c.header_value_ends.len()
            + c.value_ends.len();
        align_batch(
            HEADER_BYTES + PAYLOAD_FIXED_BYTES + words * 4 + 2 * bitmap_len(self.len()) + c.data.len(),
        )
    }

    /// Bytes that always suffice for a builder to take `records` records with `headers`
    /// headers in all and `data` bytes of keys, header keys and values, and values, whatever
    /// their order: with `records_bytes_bound(..) <= batch_bytes_max`, no push fails for room.
    /// (Each push asks for the room bound so far plus the record's own cost, which at worst
    /// backfills the key and header columns: 24 bytes a record, 8 a header, at most.) A Kafka
    /// batch is kept as sent only when this says it converts, for a native consumer, anytime.
    pub fn records_bytes_bound(records: usize, headers: usize, data: usize) -> usize {
        HEADER_BYTES
            + PAYLOAD_FIXED_BYTES
            + BATCH_ALIGN
            + 1
            + 24 * records
            + 8 * headers
            + 2 * bitmap_len(records)
            + data
    }

    /// Bytes a record adds to the sealed batch at most.
    fn record_cost(record: &Record<'_>) -> usize {
        let data = record.key.map_or(0, <[u8]>::len)
            + record.value.map_or(0, <[u8]>::len)
            + record.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        // value end, key end, timestamp delta, header end, two ends per header, two bitmap bits.
        data + 4 * 4 + 8 * record.headers.len() + 1
    }

    /// Adds a record, or says why it does not fit; on error the builder is unchanged.
    pub fn push(&mut self, record: &Record<'_>) -> Result<(), BuildError> {
        let mut cost = Self::record_cost(record);
        // A column that starts with this record is backfilled for every earlier one.
        let earlier = self.len();
        if record.key.is_some() && self.cols.key_ends.is_empty() {
            cost += 4 * earlier;
        }
        if !record.headers.is_empty() && self.cols.header_ends.is_empty() {
            cost += 4 * earlier;
        }
        let used = self.sealed_bytes_max();
        if used + cost > self.batch_bytes_max {
            return Err(BuildError::Full { record_bytes: cost, used, limit: self.batch_bytes_max });
        }
        let lo = self.min_timestamp.min(record.timestamp);
        let hi = self.max_timestamp.max(record.timestamp);
        if !self.is_empty() && hi.abs_diff(lo) > u64::from(u32::MAX) {
            return Err(BuildError::TimestampSpan { timestamp: record.timestamp, first: lo });
        }
        self.min_timestamp = lo;
        self.max_timestamp = hi;
        self.timestamps.push(record.timestamp);

        let i = self.len();
        let c = &mut self.cols;
        let end = |data: &Vec<u8>| u32::try_from(data.len()).expect("batch data fits u32");
        // Keys: the column starts (earlier records getting null keys) with the first key.
        let keys_on = !c.key_ends.is_empty() || record.key.is_some();
        if keys_on && c.key_ends.len() < i {
            for j in 0..i {
                // An earlier record's null key is an empty range at the record's start.
                let start = if j == 0 { 0 } else { c.value_ends[j - 1] };
                c.key_ends.push(start);
                set_bit(&mut c.key_nulls, j);
            }
        }
        if let Some(key) = record.key {
            c.data.extend_from_slice(key);
        }
        if keys_on {
            c.key_ends.push(end(&c.data));
            if record.key.is_none() {
                set_bit(&mut c.key_nulls, i);
            }
        }
        // Headers: the column starts as zero headers for every earlier record.
        let headers_on = !c.header_ends.is_empty() || !record.headers.is_empty();
        if headers_on {
            c.header_ends.resize(i, 0);
        }
        for (k, v) in record.headers {
            c.data.extend_from_slice(k);
            c.header_key_ends.push(end(&c.data));
            c.data.extend_from_slice(v);
            c.header_value_ends.push(end(&c.data));
        }
        if headers_on {
            c.header_ends.push(c.header_key_ends.len() as u32);
        }
        if let Some(value) = record.value {
            c.data.extend_from_slice(value);
        } else {
            set_bit(&mut c.value_nulls, i);
        }
        c.value_ends.push(end(&c.data));
        Ok(())
    }

    /// Seals the records into a batch with base offset 0 and leader epoch 0; the leader patches
    /// both when it appends. Panics on an empty builder: there is no empty batch.
    pub fn seal(mut self, producer: ProducerStamp) -> Batch {
        self.seal_reset(producer)
    }

    /// Seals like [`seal`](Self::seal) and leaves the builder empty but with its columns'
    /// capacity, so a producer building batch after batch allocates (and page-faults) once.
    pub fn seal_reset(&mut self, producer: ProducerStamp) -> Batch {
        assert!(!self.is_empty(), "cannot seal an empty batch");
        let (min_timestamp, max_timestamp) = (self.min_timestamp, self.max_timestamp);
        let cols = &mut self.cols;
        let count = cols.value_ends.len();
        cols.timestamp_deltas.clear();
        if self.timestamps.iter().any(|&t| t != min_timestamp) {
            cols.timestamp_deltas.extend(self.timestamps.iter().map(|&t| (t - min_timestamp) as u32));
        }
        // Bitmaps are either empty or exactly one bit per record.
        for bitmap in [&mut cols.key_nulls, &mut cols.value_nulls] {
            if !bitmap.is_empty() {
                bitmap.resize(bitmap_len(count), 0);
            }
        }
        let capacity = self
            .batch_bytes_max
            .min(HEADER_BYTES + PAYLOAD_FIXED_BYTES + cols.data.len() + 24 * count + 2 * bitmap_len(count));
        let template = BatchHeader {
            base_offset: 0,
            leader_epoch: 0,
            batch_len: 0,
            magic: BATCH_MAGIC,
            crc: 0,
            version: BATCH_VERSION,
            attributes: 0,
            record_count: count as u32,
            last_offset_delta: count as u32 - 1,
            payload_len: 0,
            first_timestamp: min_timestamp,
            max_timestamp,
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
            reserved0: 0,
            base_sequence: producer.base_sequence,
            reserved1: 0,
        };
        let out = seal_columns(cols, template, capacity);
        for v in [
            &mut cols.offset_deltas,
            &mut cols.timestamp_deltas,
            &mut cols.key_ends,
            &mut cols.header_ends,
            &mut cols.header_key_ends,
            &mut cols.header_value_ends,
            &mut cols.value_ends,
        ] {
            v.clear();
        }
        for v in [&mut cols.key_nulls, &mut cols.value_nulls, &mut cols.data] {
            v.clear();
        }
        self.timestamps.clear();
        self.min_timestamp = i64::MAX;
        self.max_timestamp = i64::MIN;
        Batch::from_sealed(out)
    }
}

/// Serializes `cols` after an 80-byte header, pads the batch to
/// [`BATCH_ALIGN`](super::header::BATCH_ALIGN), and encodes
/// `header` with the resulting `batch_len`, `payload_len` and CRC. Every other header field is
/// the caller's: the producer's builder and compaction's rewrite both seal this way.
pub(crate) fn seal_columns(cols: &Columns, header: BatchHeader, capacity: usize) -> AlignedVec<16> {
    let mut out = AlignedVec::<16>::with_capacity(capacity);
    out.resize(HEADER_BYTES, 0);
    let mut out = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(cols, out)
        .expect("serializing plain vectors into memory cannot fail");
    let payload_len = out.len() - HEADER_BYTES;
    let batch_len = align_batch(out.len());
    out.resize(batch_len, 0);
    let header = BatchHeader {
        batch_len: u32::try_from(batch_len).expect("batch fits u32"),
        payload_len: payload_len as u32,
        crc: 0,
        ..header
    };
    header.encode(&mut out);
    let crc = compute_crc(&out);
    out[20..CRC_START].copy_from_slice(&crc.to_le_bytes());
    out
}

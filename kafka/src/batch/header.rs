//! Kafka's v2 record batch header: 61 big-endian bytes in front of the records.
//!
//! ```text
//! offset size field                 offset size field
//!      0    8 baseOffset                 27    8 baseTimestamp
//!      8    4 batchLength                35    8 maxTimestamp
//!     12    4 partitionLeaderEpoch       43    8 producerId
//!     16    1 magic (2)                  51    2 producerEpoch
//!     17    4 crc (CRC32C of 21..end)    53    4 baseSequence
//!     21    2 attributes                 57    4 recordsCount
//!     23    4 lastOffsetDelta            61      records
//! ```

use super::Codec;
use crate::error::BatchConvertError;

/// Bytes of a v2 batch header.
pub const KAFKA_HEADER_BYTES: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength itself.
pub const LOG_OVERHEAD: usize = 12;
/// Where the CRC32C's coverage starts: `attributes`.
pub const CRC_START: usize = 21;
/// The only magic Weir accepts.
pub const MAGIC_V2: i8 = 2;

/// Compression codec bits of `attributes`.
pub const ATTR_COMPRESSION_MASK: i16 = 0b111;
/// LogAppendTime rather than CreateTime.
pub const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;
pub const ATTR_CONTROL: i16 = 1 << 5;
/// The batch carries a delete horizon (set by compaction, never by a producer).
pub const ATTR_DELETE_HORIZON: i16 = 1 << 6;

/// The 61 header bytes of a Kafka v2 record batch, as fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaBatchHeader {
    pub base_offset: i64,
    /// Bytes after this field: the batch is `LOG_OVERHEAD + batch_length` bytes.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].try_into().expect("in bounds")
}

impl KafkaBatchHeader {
    /// Decodes the header at the start of `bytes`, checking only that 61 bytes are there.
    /// The magic is checked by the caller: an old message set has another layout, so its other
    /// fields here are garbage, but `magic` sits at byte 16 in every format.
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchConvertError> {
        if bytes.len() < KAFKA_HEADER_BYTES {
            return Err(BatchConvertError::Truncated { needed: KAFKA_HEADER_BYTES, available: bytes.len() });
        }
        Ok(Self {
            base_offset: i64::from_be_bytes(be(bytes, 0)),
            batch_length: i32::from_be_bytes(be(bytes, 8)),
            partition_leader_epoch: i32::from_be_bytes(be(bytes, 12)),
            magic: bytes[16] as i8,
            crc: u32::from_be_bytes(be(bytes, 17)),
            attributes: i16::from_be_bytes(be(bytes, 21)),
            last_offset_delta: i32::from_be_bytes(be(bytes, 23)),
            base_timestamp: i64::from_be_bytes(be(bytes, 27)),
            max_timestamp: i64::from_be_bytes(be(bytes, 35)),
            producer_id: i64::from_be_bytes(be(bytes, 43)),
            producer_epoch: i16::from_be_bytes(be(bytes, 51)),
            base_sequence: i32::from_be_bytes(be(bytes, 53)),
            records_count: i32::from_be_bytes(be(bytes, 57)),
        })
    }

    /// Writes the header into the first 61 bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        let o = &mut out[..KAFKA_HEADER_BYTES];
        o[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        o[8..12].copy_from_slice(&self.batch_length.to_be_bytes());
        o[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        o[16] = self.magic as u8;
        o[17..21].copy_from_slice(&self.crc.to_be_bytes());
        o[21..23].copy_from_slice(&self.attributes.to_be_bytes());
        o[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        o[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        o[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        o[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        o[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        o[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        o[57..61].copy_from_slice(&self.records_count.to_be_bytes());
    }

    /// Total bytes of the batch, header included, as its `batchLength` declares; `None` when
    /// `batchLength` is below what the header after it already takes.
    pub fn total_len(&self) -> Option<usize> {
        let len = usize::try_from(self.batch_length).ok()?;
        (len >= KAFKA_HEADER_BYTES - LOG_OVERHEAD).then_some(LOG_OVERHEAD + len)
    }

    /// The compression codec the attributes name.
    pub fn codec(&self) -> Result<Codec, BatchConvertError> {
        Codec::from_bits((self.attributes & ATTR_COMPRESSION_MASK) as u8)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & ATTR_DELETE_HORIZON != 0
    }

    /// Whether timestamps are the broker's append time rather than the producer's create time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
}

/// CRC32C of a whole encoded batch's covered range, `[CRC_START, end)`.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

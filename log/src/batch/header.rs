//! The fixed batch header: 80 little-endian bytes in front of every record batch.
//!
//! The header is the part of a batch a leader patches (base offset, leader epoch) and the part a
//! reader looks at to skip a batch without touching its payload. The byte layout is drawn in
//! `docs/format.md`; the offsets below are that drawing in code, and the `const` assertions tie
//! them to the `#[repr(C)]` struct so the two cannot drift apart.

use crate::error::BatchError;
use std::mem::{offset_of, size_of};

/// `b"WEIR"` read as a little-endian `u32`.
pub const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"WEIR");
/// The only payload format version this build writes and reads.
pub const BATCH_VERSION: u16 = 1;
/// Size of the header; the payload starts right after it.
pub const HEADER_BYTES: usize = 80;
/// Every batch starts and ends on this alignment, so its rkyv payload starts 16-byte aligned.
pub const BATCH_ALIGN: usize = 16;
/// The CRC32C covers `[CRC_START, batch_len)`: everything after the fields a leader may patch
/// (base offset, leader epoch) and the fields that frame the batch (length, magic, crc).
pub const CRC_START: usize = 24;

/// Compression codec bits of `attributes`: Kafka's codec ids, set only in a Kafka-format batch
/// (Weir's columns are never compressed).
pub const ATTR_COMPRESSION_MASK: u16 = 0b0000_0111;
/// The batch belongs to a transaction of its producer (Kafka's bit): a read-committed consumer
/// gets it only once the transaction commits.
pub const ATTR_TRANSACTIONAL: u16 = 1 << 4;
/// The batch is a control batch (Kafka's bit): a transaction marker written by the node, one
/// record that ends its producer's transaction in the partition. Always transactional.
pub const ATTR_CONTROL: u16 = 1 << 5;
/// The batch was rewritten by compaction: its base offset is pinned in `reserved1`, which the
/// CRC covers, so such a batch may follow a gap in the offsets (records removed before it)
/// without a flipped base offset passing for one.
pub const ATTR_COMPACTED: u16 = 1 << 6;
/// What the payload is (see [`PayloadFormat`]): bits 8-9.
pub const ATTR_PAYLOAD_FORMAT_MASK: u16 = 0b11 << 8;
/// The payload is a Kafka v2 records section (see [`PayloadFormat::Kafka`]).
pub const ATTR_PAYLOAD_KAFKA: u16 = 1 << 8;
/// Weir's own bit of a control batch: its marker commits the transaction (clear: aborts). The
/// marker's Kafka record says the same; this bit lets the log know it without reading records.
pub const ATTR_COMMIT: u16 = 1 << 10;
/// The bits of a transaction: what a Kafka-format batch carries beside its codec.
pub const ATTR_TXN_MASK: u16 = ATTR_TRANSACTIONAL | ATTR_CONTROL | ATTR_COMMIT;
/// Bits a version-1 batch may set at all.
pub const ATTR_KNOWN: u16 = ATTR_COMPRESSION_MASK
    | ATTR_TRANSACTIONAL
    | ATTR_CONTROL
    | ATTR_COMPACTED
    | ATTR_PAYLOAD_FORMAT_MASK
    | ATTR_COMMIT;
/// The largest Kafka codec id (zstd); 1 to 4 are gzip, snappy, lz4 and zstd.
pub const KAFKA_CODEC_MAX: u16 = 4;
/// The largest Kafka records section a batch may hold: with the 49 header bytes after Kafka's
/// `batchLength`, it must fit that i32.
pub const KAFKA_PAYLOAD_BYTES_MAX: u32 = i32::MAX as u32 - 49;

/// What follows the header, by the payload-format bits of `attributes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// Weir's rkyv columns (bits 00): what Weir's producers, the cleaner and the coordinators
    /// write.
    Columns,
    /// A Kafka v2 batch's records section (bits 01), byte for byte as a Kafka producer sent it,
    /// compressed by the codec in bits 0-2. Weir's header holds the Kafka header's fields and,
    /// in `reserved1`, its CRC, so the Kafka batch is rebuilt exactly on a Kafka fetch. Only the
    /// Kafka front end writes it, having walked every record.
    Kafka,
}

/// No producer id: the batch is not idempotent.
pub const NO_PRODUCER_ID: i64 = -1;

/// The batch header as fields. On the wire and on disk it is always little-endian, encoded by
/// [`BatchHeader::encode`]; the struct is `repr(C)` so its layout documents the byte layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record. Assigned by the leader; not covered by the CRC.
    pub base_offset: u64,
    /// Epoch of the leader that assigned the offsets. Not covered by the CRC.
    pub leader_epoch: u32,
    /// Total bytes of the batch: header, payload and padding; a multiple of 16.
    pub batch_len: u32,
    /// [`BATCH_MAGIC`].
    pub magic: u32,
    /// CRC32C (Castagnoli) of bytes `[CRC_START, batch_len)`.
    pub crc: u32,
    /// [`BATCH_VERSION`].
    pub version: u16,
    /// Compression, transaction, compaction and payload-format bits, see `ATTR_*`.
    pub attributes: u16,
    /// Number of records; at least 1.
    pub record_count: u32,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: u32,
    /// Bytes of rkyv payload after the header; the rest up to `batch_len` is zero padding.
    pub payload_len: u32,
    /// Smallest record timestamp (ms since the epoch); record timestamps are deltas from it.
    pub first_timestamp: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or [`NO_PRODUCER_ID`].
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Must be zero.
    pub reserved0: u16,
    /// Sequence number of the first record for the idempotent producer.
    pub base_sequence: i32,
    /// Zero; in a compacted batch its base offset, in a Kafka-format one its Kafka CRC.
    pub reserved1: u64,
}

const _: () = assert!(size_of::<BatchHeader>() == HEADER_BYTES);
const _: () = assert!(HEADER_BYTES.is_multiple_of(BATCH_ALIGN));
const _: () = assert!(offset_of!(BatchHeader, base_offset) == 0);
const _: () = assert!(offset_of!(BatchHeader, leader_epoch) == 8);
const _: () = assert!(offset_of!(BatchHeader, batch_len) == 12);
const _: () = assert!(offset_of!(BatchHeader, magic) == 16);
const _: () = assert!(offset_of!(BatchHeader, crc) == 20);
const _: () = assert!(offset_of!(BatchHeader, version) == CRC_START);
const _: () = assert!(offset_of!(BatchHeader, record_count) == 28);
const _: () = assert!(offset_of!(BatchHeader, payload_len) == 36);
const _: () = assert!(offset_of!(BatchHeader, first_timestamp) == 40);
const _: () = assert!(offset_of!(BatchHeader, producer_id) == 56);
const _: () = assert!(offset_of!(BatchHeader, base_sequence) == 68);
const _: () = assert!(offset_of!(BatchHeader, reserved1) == 72);

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Decodes the 80 header bytes without checking anything but their presence.
    pub fn decode(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::Truncated { needed: HEADER_BYTES, available: bytes.len() });
        }
        let b = &bytes[..HEADER_BYTES];
        Ok(Self {
            base_offset: u64_at(b, 0),
            leader_epoch: u32_at(b, 8),
            batch_len: u32_at(b, 12),
            magic: u32_at(b, 16),
            crc: u32_at(b, 20),
            version: u16_at(b, 24),
            attributes: u16_at(b, 26),
            record_count: u32_at(b, 28),
            last_offset_delta: u32_at(b, 32),
            payload_len: u32_at(b, 36),
            first_timestamp: u64_at(b, 40) as i64,
            max_timestamp: u64_at(b, 48) as i64,
            producer_id: u64_at(b, 56) as i64,
            producer_epoch: u16_at(b, 64) as i16,
            reserved0: u16_at(b, 66),
            base_sequence: u32_at(b, 68) as i32,
            reserved1: u64_at(b, 72),
        })
    }

    /// Writes the header into the first 80 bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        let o = &mut out[..HEADER_BYTES];
        o[0..8].copy_from_slice(&self.base_offset.to_le_bytes());
        o[8..12].copy_from_slice(&self.leader_epoch.to_le_bytes());
        o[12..16].copy_from_slice(&self.batch_len.to_le_bytes());
        o[16..20].copy_from_slice(&self.magic.to_le_bytes());
        o[20..24].copy_from_slice(&self.crc.to_le_bytes());
        o[24..26].copy_from_slice(&self.version.to_le_bytes());
        o[26..28].copy_from_slice(&self.attributes.to_le_bytes());
        o[28..32].copy_from_slice(&self.record_count.to_le_bytes());
        o[32..36].copy_from_slice(&self.last_offset_delta.to_le_bytes());
        o[36..40].copy_from_slice(&self.payload_len.to_le_bytes());
        o[40..48].copy_from_slice(&self.first_timestamp.to_le_bytes());
        o[48..56].copy_from_slice(&self.max_timestamp.to_le_bytes());
        o[56..64].copy_from_slice(&self.producer_id.to_le_bytes());
        o[64..66].copy_from_slice(&self.producer_epoch.to_le_bytes());
        o[66..68].copy_from_slice(&self.reserved0.to_le_bytes());
        o[68..72].copy_from_slice(&self.base_sequence.to_le_bytes());
        o[72..80].copy_from_slice(&self.reserved1.to_le_bytes());
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// Offset right after the batch: where the next batch starts.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }

    /// The payload's format; `None` for bits no version-1 batch has (refused by
    /// [`check_fields`](Self::check_fields)).
    pub fn payload_format(&self) -> Option<PayloadFormat> {
        match self.attributes & ATTR_PAYLOAD_FORMAT_MASK {
            0 => Some(PayloadFormat::Columns),
            ATTR_PAYLOAD_KAFKA => Some(PayloadFormat::Kafka),
            _ => None,
        }
    }

    /// The Kafka codec of a Kafka-format batch (0 is none).
    pub fn codec(&self) -> u16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    /// Whether the batch belongs to a transaction (see [`ATTR_TRANSACTIONAL`]).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether the batch is a transaction marker (see [`ATTR_CONTROL`]).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// For a marker: whether it commits its transaction (else it aborts it).
    pub fn commits(&self) -> bool {
        self.attributes & ATTR_COMMIT != 0
    }

    /// A transactional batch has a producer and is never compacted; a marker is transactional
    /// and holds one record; only a marker commits.
    fn transaction_bits_agree(&self) -> bool {
        let txn_ok = !self.is_transactional() || (self.producer_id != NO_PRODUCER_ID && !self.is_compacted());
        let control_ok = !self.is_control() || (self.is_transactional() && self.record_count == 1);
        txn_ok && control_ok && (!self.commits() || self.is_control())
    }

    /// Whether compaction rewrote the batch (see [`ATTR_COMPACTED`]).
    pub fn is_compacted(&self) -> bool {
        self.attributes & ATTR_COMPACTED != 0
    }

    /// Whether the batch may start above `expected`, the offset after the batch before it: only
    /// a compacted batch whose CRC-covered pin matches its base offset. Callers check the CRC
    /// (or full validity) first; a plain batch must start exactly at `expected`.
    pub fn may_start_at(&self, expected: u64) -> bool {
        self.base_offset == expected
            || (self.base_offset > expected && self.is_compacted() && self.reserved1 == self.base_offset)
    }

    /// Checks the framing fields a reader needs before it can trust `batch_len`: magic and a
    /// sane, aligned length no larger than `len_max`.
    pub fn check_frame(&self, len_max: usize) -> Result<(), BatchError> {
        if self.magic != BATCH_MAGIC {
            return Err(BatchError::BadMagic { found: self.magic });
        }
        let len = self.batch_len as usize;
        if len < HEADER_BYTES || !len.is_multiple_of(BATCH_ALIGN) {
            return Err(BatchError::BadHeader { field: "batch_len", value: len as u64 });
        }
        if len > len_max {
            return Err(BatchError::TooLarge { len, limit: len_max });
        }
        Ok(())
    }

    /// Checks the CRC-covered fields for ranges a version-1 batch allows.
    pub fn check_fields(&self) -> Result<(), BatchError> {
        if self.version != BATCH_VERSION {
            return Err(BatchError::UnsupportedVersion { version: self.version });
        }
        let bad = |field, value: u64| Err(BatchError::BadHeader { field, value });
        let attributes = u64::from(self.attributes);
        if self.attributes & !ATTR_KNOWN != 0 || !self.transaction_bits_agree() {
            return bad("attributes", attributes);
        }
        match self.payload_format() {
            Some(PayloadFormat::Columns) if self.codec() != 0 => return bad("attributes", attributes),
            Some(PayloadFormat::Columns) => {}
            // A Kafka payload is never compacted (the cleaner writes columns), its offsets are
            // dense, and `reserved1` holds its Kafka CRC.
            Some(PayloadFormat::Kafka) => {
                if self.codec() > KAFKA_CODEC_MAX || self.is_compacted() {
                    return bad("attributes", attributes);
                }
                if self.last_offset_delta != self.record_count.wrapping_sub(1) {
                    return bad("last_offset_delta", u64::from(self.last_offset_delta));
                }
                if self.reserved1 > u64::from(u32::MAX) {
                    return bad("reserved", self.reserved1);
                }
                // Its Kafka batch's length, 49 bytes more, must fit Kafka's i32 batchLength.
                if self.payload_len > KAFKA_PAYLOAD_BYTES_MAX {
                    return bad("payload_len", u64::from(self.payload_len));
                }
            }
            None => return bad("attributes", attributes),
        }
        if self.record_count == 0 {
            return bad("record_count", 0);
        }
        if self.last_offset_delta < self.record_count - 1 {
            return bad("last_offset_delta", u64::from(self.last_offset_delta));
        }
        let room = self.batch_len as usize - HEADER_BYTES;
        let payload = self.payload_len as usize;
        if payload > room || room - payload >= BATCH_ALIGN {
            return bad("payload_len", payload as u64);
        }
        if self.max_timestamp < self.first_timestamp {
            return bad("max_timestamp", self.max_timestamp as u64);
        }
        if self.reserved0 != 0 {
            return bad("reserved", u64::from(self.reserved0));
        }
        // A compacted batch pins its base offset in `reserved1`; any other leaves it zero, but a
        // Kafka-format one, which keeps its Kafka CRC there (checked above).
        let pin = if self.is_compacted() { self.base_offset } else { 0 };
        if self.reserved1 != pin && self.payload_format() != Some(PayloadFormat::Kafka) {
            return bad("reserved", self.reserved1);
        }
        if self.base_offset.checked_add(u64::from(self.last_offset_delta)).is_none() {
            return bad("base_offset", self.base_offset);
        }
        Ok(())
    }
}

/// Patches base offset and leader epoch in an encoded batch. The CRC does not cover them, so the
/// batch stays valid: this is how a leader assigns offsets without touching the payload.
pub fn patch_offsets(batch: &mut [u8], base_offset: u64, leader_epoch: u32) {
    batch[0..8].copy_from_slice(&base_offset.to_le_bytes());
    batch[8..12].copy_from_slice(&leader_epoch.to_le_bytes());
}

/// CRC32C of the covered region of an encoded batch of `batch_len` bytes.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Rounds `n` up to the batch alignment.
pub const fn align_batch(n: usize) -> usize {
    (n + BATCH_ALIGN - 1) & !(BATCH_ALIGN - 1)
}

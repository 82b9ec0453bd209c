//! Errors of the Kafka front end's sans-IO parts.

use crate::batch::Codec;

/// Why a Kafka request or record batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The frame is larger than the node accepts.
    #[error("request of {len} bytes is larger than request_bytes_max {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// The frame does not decode as the request its header names.
    #[error("malformed request: {reason}")]
    Malformed { reason: String },
}

/// Kafka's error codes for the batch errors, as Kafka's protocol guide numbers them.
mod code {
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const INVALID_RECORD: i16 = 87;
}

/// Why a record batch could not be converted between Kafka's v2 format and Weir's.
///
/// Positions (`at`) are byte offsets into the batch's records section after decompression,
/// counted from its first record, so a report can point at the damage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchConvertError {
    /// Fewer bytes than a header, a declared batch length or a declared field needs.
    #[error("Kafka batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// The batch is not a v2 record batch (magic 0 and 1 are the old message sets).
    #[error("unsupported Kafka record batch magic {magic}")]
    UnsupportedMagic { magic: i8 },
    /// The CRC32C in the header does not match the bytes from `attributes` to the end.
    #[error("Kafka batch checksum mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    /// A feature Weir does not serve yet: transactions, control batches, delete horizons.
    #[error("unsupported Kafka batch feature: {feature}")]
    Unsupported { feature: &'static str },
    /// Compression bits naming no codec (5 to 7).
    #[error("unknown Kafka compression codec {codec}")]
    UnknownCodec { codec: u8 },
    /// `batchLength` is below the 49 bytes that follow it in any v2 header.
    #[error("Kafka batchLength {batch_length} is too small")]
    BadBatchLength { batch_length: i32 },
    /// `recordsCount` is below 1, or more than the records' bytes can hold (7 bytes a record).
    #[error("Kafka recordsCount {count} is impossible for {bytes} bytes of records")]
    InvalidRecordCount { count: i32, bytes: usize },
    /// Offsets are not dense: `lastOffsetDelta` or a record's `offsetDelta` is not what a
    /// producer's batch has (`recordsCount - 1`, and `i` for record `i`).
    #[error("Kafka {field} is {found}, expected {expected}")]
    InvalidOffsetDeltas { field: &'static str, expected: i64, found: i64 },
    /// A varint or length is malformed, or bytes are left after the last record.
    #[error("malformed Kafka records at byte {at}: {reason}")]
    Malformed { reason: &'static str, at: usize },
    /// A record's length varint disagrees with the bytes its fields take.
    #[error("Kafka record {index} declares {declared} bytes but holds {actual}")]
    RecordLength { index: usize, declared: i64, actual: usize },
    /// The compressed records do not decompress.
    #[error("Kafka {codec:?} records do not decompress: {reason}")]
    Decompress { codec: Codec, reason: String },
    /// The decompressed records, or the Weir batch built from them, exceed `batch_bytes_max`.
    #[error("Kafka batch needs more than {limit} bytes ({what})")]
    TooLarge { what: &'static str, limit: usize },
    /// `baseTimestamp + timestampDelta` overflows an i64.
    #[error("Kafka record {index} timestamp overflows: base {base} + delta {delta}")]
    TimestampOverflow { index: usize, base: i64, delta: i64 },
    /// The record timestamps of one batch lie further apart than Weir's u32 ms deltas reach.
    #[error("Kafka record timestamp {timestamp} is more than u32::MAX ms from {first}")]
    TimestampSpan { timestamp: i64, first: i64 },
    /// A stored Weir batch handed to the Kafka writer is not valid.
    #[error("invalid Weir batch: {source}")]
    Weir {
        #[source]
        source: weir_log::error::BatchError,
    },
}

impl BatchConvertError {
    /// The Kafka error code a Produce or Fetch response carries for this error.
    ///
    /// A timestamp span beyond Weir's reach is `INVALID_TIMESTAMP` because that is Kafka's own
    /// word for a timestamp outside the range a broker accepts; clients show it as such.
    pub fn kafka_code(&self) -> i16 {
        match self {
            Self::TooLarge { .. } => code::MESSAGE_TOO_LARGE,
            Self::UnsupportedMagic { .. } | Self::Unsupported { .. } => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
            Self::InvalidOffsetDeltas { .. } | Self::TimestampOverflow { .. } => code::INVALID_RECORD,
            Self::TimestampSpan { .. } => code::INVALID_TIMESTAMP,
            Self::Truncated { .. }
            | Self::CrcMismatch { .. }
            | Self::UnknownCodec { .. }
            | Self::BadBatchLength { .. }
            | Self::InvalidRecordCount { .. }
            | Self::Malformed { .. }
            | Self::RecordLength { .. }
            | Self::Decompress { .. }
            | Self::Weir { .. } => code::CORRUPT_MESSAGE,
        }
    }
}

/// Why the frame guard refused a request body before it reached the decoder.
///
/// `field` names the schema field being read (a struct's tagged-field section is
/// "tagged fields"); `remaining` is the count of body bytes left at that point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The API key is unknown, or the version is outside those the guard has a schema for.
    #[error("no request schema for API key {api_key} version {api_version}")]
    UnsupportedVersion { api_key: i16, api_version: i16 },
    /// An array or tagged-field count claims more elements than the remaining bytes can hold.
    #[error("{field}: count {count} does not fit in the {remaining} bytes that remain")]
    CountTooLarge { field: &'static str, count: u64, remaining: usize },
    /// A field, or a length it announces, runs past the end of the body.
    #[error("{field}: needs {needed} bytes, {remaining} remain")]
    Truncated { field: &'static str, needed: usize, remaining: usize },
    /// An unsigned varint is longer than five bytes or does not fit 32 bits.
    #[error("{field}: malformed varint")]
    BadVarint { field: &'static str },
    /// A classic length or count below -1.
    #[error("{field}: negative length {length}")]
    NegativeLength { field: &'static str, length: i64 },
    /// A null where the field is not nullable.
    #[error("{field}: null is not allowed")]
    UnexpectedNull { field: &'static str },
    /// A known tagged field whose value does not fill exactly the size its header states.
    #[error("{field}: tagged field {tag} states {size} bytes but its value takes {used}")]
    TaggedFieldSize { field: &'static str, tag: u32, size: usize, used: usize },
}

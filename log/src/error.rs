//! Typed errors of the log crate.
//!
//! Two families: [`BatchError`] says why bytes are not a valid record batch (it is what a
//! producer's bad batch or a damaged disk block turns into), and [`LogError`] says why a
//! partition-log operation failed.

use std::io;

/// Why a byte range is not a valid record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than the header, or than the length the header declares.
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// The magic number is not Weir's.
    #[error("bad batch magic {found:#010x}")]
    BadMagic { found: u32 },
    /// The CRC32C stored in the header does not match the bytes.
    #[error("batch checksum mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    ChecksumMismatch { expected: u32, actual: u32 },
    /// A format version this build does not read.
    #[error("unsupported batch format version {version}")]
    UnsupportedVersion { version: u16 },
    /// A header field is out of its allowed range.
    #[error("bad batch header field {field}: {value}")]
    BadHeader { field: &'static str, value: u64 },
    /// The declared length is larger than the limit the caller set.
    #[error("batch of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    /// The rkyv payload failed its structural check.
    #[error("batch payload is malformed: {reason}")]
    BadPayload { reason: String },
    /// The payload's columns disagree with each other or with the header.
    #[error("batch payload is inconsistent: {reason}")]
    Inconsistent { reason: &'static str },
}

/// Why a partition-log operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("I/O error during {op} on {file}: {source}")]
    Io {
        op: &'static str,
        file: String,
        #[source]
        source: io::Error,
    },
    /// The device wrote fewer bytes than asked; treated like an I/O error.
    #[error("short write on {file}: wrote {written} of {expected} bytes at {pos}")]
    ShortWrite { file: String, pos: u64, written: usize, expected: usize },
    /// A batch handed to `append` or read back from disk is invalid.
    #[error("invalid batch at offset {offset}: {source}")]
    Batch {
        offset: u64,
        #[source]
        source: BatchError,
    },
    /// An earlier write or sync failed, so what is on disk is unknown; the log refuses further
    /// writes until it is reopened, which recovers it from what is durable.
    #[error("log is failed after an earlier I/O error or an interrupted write; reopen to recover")]
    Failed,
    /// The requested offset is outside `[log_start, log_end]`.
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    /// Stored bytes failed their checks when read: they are never served. The damage holds
    /// offsets `first_offset..=last_offset` as far as recovery, the scrubber or the read could
    /// tell; a consumer skips it by fetching from `last_offset + 1`.
    #[error(
        "corrupt data in segment {segment} at file position {pos}, offsets {first_offset}..={last_offset}: {source}"
    )]
    Corrupt {
        segment: u64,
        pos: u64,
        first_offset: u64,
        last_offset: u64,
        #[source]
        source: BatchError,
    },
    /// A replicated batch starts past the log end: batches in between are missing.
    #[error("replicated batch starts at offset {actual}, past the log end {expected}")]
    OffsetGap { expected: u64, actual: u64 },
    /// A replicated batch starts before the log end: the log already holds its offsets.
    #[error("replicated batch starts at offset {actual}, before the log end {expected}")]
    OffsetOverlap { expected: u64, actual: u64 },
    /// A replicated batch carries a leader epoch older than the latest one in the log.
    #[error("replicated batch has leader epoch {actual}, older than the log's latest {latest}")]
    StaleLeaderEpoch { latest: u32, actual: u32 },
    /// The configuration is not usable.
    #[error("invalid log config: {0}")]
    Config(&'static str),
}

impl LogError {
    pub(crate) fn io(op: &'static str, file: impl Into<String>, source: io::Error) -> Self {
        LogError::Io { op, file: file.into(), source }
    }

    /// True for errors caused by a full device, which a caller may report as back-pressure.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, LogError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

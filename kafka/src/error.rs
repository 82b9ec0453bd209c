//! Errors of the Kafka front end's sans-IO parts.

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
    /// Bytes follow the end of the request's schema.
    #[error("{count} bytes follow the end of the request")]
    TrailingBytes { count: usize },
}

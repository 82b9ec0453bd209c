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

//! Errors a client sees.

use crate::error::{DecodeError, EncodeError, ErrorCode};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered with an error code.
    #[error("{code:?}: {message}")]
    Server { code: ErrorCode, message: String },
    #[error("bad response from the server: {0}")]
    Decode(#[from] DecodeError),
    /// The request could not be encoded (a field too long for the protocol); nothing was sent.
    #[error("cannot send the request: {0}")]
    Encode(#[from] EncodeError),
    #[error("response {got} does not match request {expected}")]
    Correlation { expected: u32, got: u32 },
    /// A fetched batch failed validation; it is not handed to the application.
    #[error("corrupt batch from the server: {0}")]
    CorruptBatch(#[from] weir_log::BatchError),
    /// The QUIC transport could not be set up (trust settings, certificate files).
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A client setting is out of range, alone or with another; nothing was connected.
    #[error("invalid setting {setting}: {reason}")]
    Config { setting: &'static str, reason: String },
    /// A topic's `min_insync_replicas` above its replication factor: no write with acks=all
    /// could ever succeed. Refused before anything is sent.
    #[error("min_insync_replicas {min_insync_replicas} is above the replication factor {replication_factor}")]
    MinInsyncAboveReplication { min_insync_replicas: u16, replication_factor: u16 },
    /// The producer was closed before the record was sent.
    #[error("producer closed")]
    Closed,
    /// The record was not acknowledged within the producer's `delivery_timeout_ms`, retries
    /// included. Whether it was written is unknown: an attempt may have reached the node and
    /// only its answer been lost.
    #[error(
        "not acknowledged within the delivery timeout of {delivery_timeout_ms} ms ({elapsed_ms} ms \
         since the record was queued): the node is down or unreachable, or too slow; the record \
         may or may not have been written"
    )]
    DeliveryTimeout { elapsed_ms: u64, delivery_timeout_ms: u64 },
    /// The record's last attempt failed with `cause`, but an earlier attempt reached the node
    /// and its answer was lost, or the node said it could not tell: the record may have been
    /// written.
    #[error("not acknowledged, and an earlier attempt may have been written: {cause}")]
    MaybeWritten { cause: Box<ClientError> },
}

impl ClientError {
    /// Whether retrying the same request may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Server { code, .. } => code.is_retriable(),
            ClientError::Io(_) | ClientError::Connect { .. } => true,
            _ => false,
        }
    }

    /// Whether the node answered with an error code (rather than not answering).
    pub fn is_server_error(&self) -> bool {
        matches!(self, ClientError::Server { .. })
    }

    /// An equal error for another waiter (one failure answers every record of a batch): the
    /// same variant and fields, an I/O error's kind and text kept, a TLS error as its text.
    pub fn duplicate(&self) -> ClientError {
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            ClientError::Connect { addr, source } => {
                ClientError::Connect { addr: addr.clone(), source: io(source) }
            }
            ClientError::Io(e) => ClientError::Io(io(e)),
            ClientError::Server { code, message } => {
                ClientError::Server { code: *code, message: message.clone() }
            }
            ClientError::Decode(e) => ClientError::Decode(e.clone()),
            ClientError::Encode(e) => ClientError::Encode(e.clone()),
            ClientError::Correlation { expected, got } => {
                ClientError::Correlation { expected: *expected, got: *got }
            }
            ClientError::CorruptBatch(e) => ClientError::CorruptBatch(e.clone()),
            ClientError::Tls(e) => ClientError::InvalidArgument(e.to_string()),
            ClientError::InvalidArgument(m) => ClientError::InvalidArgument(m.clone()),
            ClientError::Config { setting, reason } => {
                ClientError::Config { setting, reason: reason.clone() }
            }
            ClientError::MinInsyncAboveReplication { min_insync_replicas, replication_factor } => {
                ClientError::MinInsyncAboveReplication {
                    min_insync_replicas: *min_insync_replicas,
                    replication_factor: *replication_factor,
                }
            }
            ClientError::Closed => ClientError::Closed,
            ClientError::MaybeWritten { cause } => {
                ClientError::MaybeWritten { cause: Box::new(cause.duplicate()) }
            }
            ClientError::DeliveryTimeout { elapsed_ms, delivery_timeout_ms } => {
                ClientError::DeliveryTimeout {
                    elapsed_ms: *elapsed_ms,
                    delivery_timeout_ms: *delivery_timeout_ms,
                }
            }
        }
    }

    pub(crate) fn check(code: ErrorCode, message: String) -> Result<(), ClientError> {
        if code == ErrorCode::None { Ok(()) } else { Err(ClientError::Server { code, message }) }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// One failure answers every record of a batch: each answer says each thing once, as the
    /// original does (it once read "StorageError: StorageError: ...").
    #[test]
    fn a_duplicated_error_reads_as_the_original() {
        let errors = [
            ClientError::Server { code: ErrorCode::StorageError, message: "disk full".into() },
            ClientError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer")),
            ClientError::Connect { addr: "x:1".into(), source: std::io::ErrorKind::ConnectionRefused.into() },
            ClientError::DeliveryTimeout { elapsed_ms: 2001, delivery_timeout_ms: 2000 },
        ];
        for e in &errors {
            let d = e.duplicate();
            assert_eq!(d.to_string(), e.to_string());
            assert_eq!(d.is_retriable(), e.is_retriable());
        }
        let d = errors[0].duplicate();
        assert_eq!(d.to_string(), "StorageError: disk full");
        assert!(matches!(d, ClientError::Server { code: ErrorCode::StorageError, .. }));
    }
}

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
    /// The producer was closed before the record was sent.
    #[error("producer closed")]
    Closed,
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

    pub(crate) fn check(code: ErrorCode, message: String) -> Result<(), ClientError> {
        if code == ErrorCode::None { Ok(()) } else { Err(ClientError::Server { code, message }) }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

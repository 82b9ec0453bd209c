//! Weir's native protocol: frames, requests and responses (sans-IO), and, as they land, the
//! transports and the client SDK.

pub mod api;
pub mod client;
pub mod error;
pub mod frame;
pub mod wire;

pub use api::{Acks, ApiKey, ErrorBody, OffsetSpec, Request, Response, TopicConfig};
pub use error::{DecodeError, ErrorCode};
pub use frame::{FrameDecoder, FrameHeader};

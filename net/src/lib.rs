//! Weir's native protocol: frames, requests and responses (sans-IO), TLS settings for QUIC, and
//! the client SDK over QUIC and TCP.

pub mod api;
pub mod client;
pub mod cluster;
pub mod error;
pub mod frame;
pub mod groups;
pub mod health;
pub mod tls;
pub mod wire;

pub use api::{Acks, ApiKey, CleanupPolicy, ErrorBody, OffsetSpec, Request, Response, TopicConfig};
pub use cluster::{NodeInfo, NodeRole, NodeStatus, PartitionReplication, UnderReplicated};
pub use error::{DecodeError, EncodeError, ErrorCode};
pub use frame::{FrameDecoder, FrameHeader};
pub use health::{DamagedRangeInfo, PartitionHealth, PartitionState};

//! The Rust client SDK (on tokio): `Admin`, `Producer` and `Consumer` over the native protocol,
//! on QUIC or TCP with the same API: a [`Target`] names the node and the transport.

pub mod admin;
mod admin_groups;
pub mod connection;
pub mod consumer;
pub mod coordinator;
pub mod error;
pub mod group;
mod idempotence;
pub mod partitioner;
pub mod producer;
pub mod routing;

pub use crate::tls::{QuicClientSettings, Trust};
pub use admin::{Admin, ClusterStatus};
pub use connection::{Target, Transport};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, Seek};
pub use error::ClientError;
pub use group::{GroupConfig, GroupConsumer, GroupEvent, OffsetReset};
pub use producer::{Acknowledgement, Producer, ProducerConfig, ProducerRecord};

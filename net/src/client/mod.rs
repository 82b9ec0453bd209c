//! The Rust client SDK (on tokio): `Admin`, `Producer` and `Consumer` over the native protocol
//! on TCP. QUIC and shard-aware routing arrive with the QUIC issue.

pub mod admin;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod partitioner;
pub mod producer;

pub use admin::Admin;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, Seek};
pub use error::ClientError;
pub use producer::{Acknowledgement, Producer, ProducerConfig, ProducerRecord};

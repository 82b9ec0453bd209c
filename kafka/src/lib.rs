//! The Kafka wire protocol, sans-IO: what the node's Kafka listener needs that does not touch a
//! socket or a shard.
//!
//! - `guard`: bounds a request frame before `kafka-protocol`'s decoder sees it, since that
//!   decoder allocates from counts read off the wire.
//! - `versions`: the APIs and versions Weir serves, Weir's own table.
//! - `codes`: Weir's error codes as Kafka's.
//! - `batch`: record batches in Kafka's v2 format, converted to Weir's and back.

pub mod error;
pub mod guard;

pub use error::KafkaError;

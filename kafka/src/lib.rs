//! The Kafka wire protocol, sans-IO: what the node's Kafka listener needs that does not touch a
//! socket or a shard.
//!
//! - `guard`: bounds a request frame before `kafka-protocol`'s decoder sees it, since that
//!   decoder allocates from counts read off the wire.
//! - `versions`: the APIs and versions Weir serves, Weir's own table.
//! - `codes`: Weir's error codes as Kafka's.
//! - `batch`: record batches in Kafka's v2 format, converted to Weir's on produce and back on
//!   fetch, exactly: keys, values and nulls, headers in order with duplicate keys, timestamps,
//!   offsets (gaps left by compaction included) and the idempotent producer's stamp. A null
//!   header value is stored empty, and a producer's compression is not kept in storage.
//!   Decompression is bounded by `batch_bytes_max`.

pub mod batch;
pub mod codes;
pub mod error;
pub mod guard;
pub mod versions;

pub use error::{BatchConvertError, KafkaError};

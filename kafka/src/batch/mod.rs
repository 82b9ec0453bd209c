//! Record batches in Kafka's v2 format ("magic 2"), converted to Weir's and back.
//!
//! A Kafka producer's batch becomes one Weir batch on produce ([`kafka_to_weir`]); a stored
//! Weir batch becomes one uncompressed Kafka batch on a Kafka fetch ([`weir_to_kafka`],
//! [`fetch_section`]). Both are sans-IO and run on the shard that handles the request.
//! `docs/format.md`, section "Kafka record batches", maps the fields one by one.
//!
//! - `header`: the 61-byte Kafka batch header.
//! - `varint`: Kafka's zigzag varints.
//! - `record`: the record walker, which keeps headers in order with duplicate keys.
//! - `compression`: the codecs, decompressed within `batch_bytes_max`.
//! - `to_weir`, `to_kafka`: the two directions.

mod compression;
mod control;
mod header;
mod record;
mod stored;
mod to_kafka;
mod to_weir;
pub mod varint;

pub use compression::Codec;
pub use control::{marker_batch, marker_commits};
pub use header::{
    ATTR_COMPRESSION_MASK, ATTR_CONTROL, ATTR_DELETE_HORIZON, ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL,
    KAFKA_HEADER_BYTES, KafkaBatchHeader, LOG_OVERHEAD, MAGIC_V2, compute_crc,
};
pub use record::{KafkaHeaders, KafkaRecord, RECORD_BYTES_MIN, RecordWalker};
pub use stored::{first_record_at, kafka_to_stored, native_section, stored_to_weir};
pub use to_kafka::{FetchConverted, fetch_section, weir_to_kafka};
pub use to_weir::{ConvertLimits, Converted, kafka_to_weir};

//! Fetch: one scatter-gather read through the `PartitionService`, long-polling up to
//! `max_wait_ms` when nothing is there yet; each partition's batches (whole, starting with the
//! one that holds the fetch offset) are converted to Kafka's v2 format. At least one batch is
//! returned even when larger than `max_bytes`; the answer as a whole is bounded by the
//! request's `max_bytes` and the connection's buffer. No data is zero-length records.

use crate::service::types::FetchPartition;
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{FetchResponse, FetchableTopicResponse, PartitionData};
use std::rc::Rc;
use std::sync::Arc;
use weir_kafka::codes::kafka_code;
use weir_replication::PartitionId;

/// The most bytes the answer to this request may take, if it is a fetch (`req` is the frame
/// after its length prefix): the connection's buffer, since every fetch is cut to it.
pub fn reply_bytes_max(req: &[u8], batch_bytes_max: usize) -> Option<usize> {
    let key = i16::from_be_bytes([req[0], req[1]]);
    (key == ApiKey::Fetch as i16).then_some(FETCH_REPLY_OVERHEAD_BYTES + batch_bytes_max)
}

/// Room for what a fetch answer holds beside its records.
const FETCH_REPLY_OVERHEAD_BYTES: usize = 64 << 10;

pub async fn fetch(shard: &Rc<Shard>, req: FetchRequest) -> FetchResponse {
    let mut asked = Vec::new();
    for t in &req.topics {
        let topic: Arc<str> = t.topic.0.as_str().into();
        for p in &t.partitions {
            asked.push(FetchPartition {
                topic: topic.clone(),
                partition: PartitionId(super::partition_index(p.partition)),
                offset: p.fetch_offset.max(0) as u64,
                max_bytes: p.partition_max_bytes.max(1) as usize,
            });
        }
    }
    let wait = req.max_wait_ms.max(0) as u32;
    let mut answers = shard.service.fetch(asked, wait).await.into_iter();
    // The whole answer stays within the request's max_bytes and one batch's bound, but always
    // carries the first batch found, whatever its size.
    let budget = (req.max_bytes.max(1) as usize).min(shard.config.batch_bytes_max);
    let mut used = 0usize;
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let answer = answers.next().expect("one answer per partition asked");
            let mut d = PartitionData::default()
                .with_partition_index(p.partition)
                .with_preferred_read_replica((-1).into());
            match answer {
                Ok(f) => {
                    let records = if used == 0 || used + f.batches.len() <= budget {
                        used += f.batches.len();
                        match to_kafka(&f.batches) {
                            Ok(r) => r,
                            Err(code) => {
                                partitions.push(d.with_error_code(code).with_records(Some(Bytes::new())));
                                continue;
                            }
                        }
                    } else {
                        Bytes::new()
                    };
                    d = d
                        .with_high_watermark(f.high_watermark as i64)
                        .with_last_stable_offset(f.high_watermark as i64)
                        .with_log_start_offset(f.log_start as i64)
                        .with_records(Some(records));
                }
                Err(f) => {
                    d = d
                        .with_error_code(kafka_code(f.code))
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_records(Some(Bytes::new()));
                }
            }
            partitions.push(d);
        }
        responses.push(FetchableTopicResponse::default().with_topic(t.topic).with_partitions(partitions));
    }
    FetchResponse::default().with_responses(responses)
}

/// Weir batches, back to back, as Kafka v2 batches. A batch that does not convert ends the
/// answer before it; if it is the first, the partition fails with a storage error (the stored
/// batch is damaged: its CRC held when it was read, so this is not the network's doing).
fn to_kafka(batches: &[u8]) -> Result<Bytes, i16> {
    if batches.is_empty() {
        return Ok(Bytes::new());
    }
    let mut out = Vec::with_capacity(batches.len() + batches.len() / 4);
    if let Err(e) = weir_kafka::batch::fetch_section(batches, &mut out) {
        tracing::error!(error = %e, "a stored batch does not convert to Kafka's format");
        if out.is_empty() {
            return Err(kafka_protocol::ResponseError::KafkaStorageError.code());
        }
    }
    Ok(Bytes::from(out))
}

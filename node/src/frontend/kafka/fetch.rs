//! Fetch: one scatter-gather read through the `PartitionService`, long-polling up to
//! `max_wait_ms` when nothing is there yet; each partition's batches (whole, starting with the
//! one that holds the fetch offset) are converted to Kafka's v2 format. At least one batch is
//! returned even when larger than `max_bytes`; the answer as a whole is bounded by the
//! request's `max_bytes` and the connection's buffer. No data is zero-length records.

use crate::service::types::{Failure, FetchPartition, FetchedPartition};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchResponse, FetchableTopicResponse, PartitionData,
};
use std::rc::Rc;
use std::sync::Arc;
use weir_kafka::codes::kafka_code;
use weir_replication::PartitionId;

/// The most bytes the answer to this request may take, if it is a fetch (`req` is the frame
/// after its length prefix): a fetch reads at most `batch_bytes_max` and one more batch.
pub fn reply_bytes_max(req: &[u8], batch_bytes_max: usize) -> Option<usize> {
    let key = i16::from_be_bytes([req[0], req[1]]);
    (key == ApiKey::Fetch as i16).then_some(FETCH_REPLY_OVERHEAD_BYTES + 2 * batch_bytes_max)
}

/// Kafka's isolation level that reads only committed transactions.
const READ_COMMITTED: i8 = 1;

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
                // A negative offset is below every log's start: out of range, as Kafka says.
                offset: u64::try_from(p.fetch_offset).unwrap_or(u64::MAX),
                max_bytes: p.partition_max_bytes.max(1) as usize,
                read_committed: req.isolation_level == READ_COMMITTED,
            });
        }
    }
    let wait = req.max_wait_ms.max(0) as u32;
    // Each owning shard reads within the request's max_bytes (and one batch's bound), in request
    // order, but always the first batch it finds whatever its size: however many partitions a
    // request names, it holds at most that much (and a batch) a shard.
    let budget = (req.max_bytes.max(1) as usize).min(shard.config.batch_bytes_max);
    let mut answers = shard.service.fetch_within(asked, wait, Some(budget)).await.into_iter();
    // Shards read within the budget each: the answer as a whole is cut to it, as Kafka's is
    // (past it, partitions keep their bounds and carry no records), the first batch aside.
    let mut used = 0usize;
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut answer = answers.next().expect("one answer per partition asked");
            if let Ok(f) = &mut answer {
                if used > 0 && used + f.batches.len() > budget {
                    f.batches = Bytes::new();
                }
                used += f.batches.len();
            }
            let d = PartitionData::default()
                .with_partition_index(p.partition)
                .with_preferred_read_replica((-1).into());
            partitions.push(partition_data(d, answer, req.isolation_level == READ_COMMITTED));
        }
        responses.push(FetchableTopicResponse::default().with_topic(t.topic).with_partitions(partitions));
    }
    FetchResponse::default().with_responses(responses)
}

/// One partition's answer, its records converted to Kafka's format.
fn partition_data(
    d: PartitionData,
    answer: Result<FetchedPartition, Failure>,
    committed: bool,
) -> PartitionData {
    let failed = |d: PartitionData, code: i16| {
        d.with_error_code(code)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_records(Some(Bytes::new()))
    };
    match answer {
        Ok(f) => match to_kafka(&f.batches) {
            Ok(records) => d
                .with_high_watermark(f.high_watermark as i64)
                .with_last_stable_offset(f.last_stable as i64)
                .with_log_start_offset(f.log_start as i64)
                .with_aborted_transactions(committed.then(|| aborted(&f)))
                .with_records(Some(records)),
            Err(code) => failed(d, code),
        },
        Err(f) => failed(d, kafka_code(f.code)),
    }
}

/// The aborted transactions in what a read-committed fetch read: a consumer drops their records.
fn aborted(f: &FetchedPartition) -> Vec<AbortedTransaction> {
    let one = |a: &weir_log::transactions::AbortedTxn| {
        AbortedTransaction::default()
            .with_producer_id(ProducerId(a.producer_id))
            .with_first_offset(a.first_offset as i64)
    };
    f.aborted.iter().map(one).collect()
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

//! ListOffsets and OffsetForLeaderEpoch.

use crate::service::local::Aligned;
use crate::service::types::{Failure, FetchPartition};
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use std::rc::Rc;
use weir_kafka::codes::kafka_code;
use weir_log::batch::BatchView;
use weir_net::{ErrorCode, OffsetSpec};
use weir_replication::PartitionId;

/// Kafka's special timestamps: the latest offset, the earliest, and the record with the largest
/// timestamp (KIP-734, not served); -4 and -5 are the earliest and latest local offsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn list_offsets(shard: &Rc<Shard>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_leader_epoch(-1);
            let spec = match p.timestamp {
                LATEST | LATEST_TIERED => OffsetSpec::Latest,
                EARLIEST | EARLIEST_LOCAL => OffsetSpec::Earliest,
                MAX_TIMESTAMP => {
                    partitions
                        .push(r.with_error_code(ResponseError::UnsupportedVersion.code()).with_offset(-1));
                    continue;
                }
                t => OffsetSpec::Timestamp(t),
            };
            let index = super::partition_index(p.partition_index);
            let topic = t.name.0.as_str();
            let r = match shard.service.list_offsets(topic, index, spec).await {
                Ok(o) if let OffsetSpec::Timestamp(at_least) = spec => {
                    // Kafka answers a search by time with the record found and its timestamp, or
                    // -1 for both when every record is older.
                    match first_record_at(shard, topic, index, o, at_least).await {
                        Ok(Some((offset, ts))) => r.with_offset(offset as i64).with_timestamp(ts),
                        Ok(None) => r.with_offset(-1),
                        Err(f) => r.with_error_code(kafka_code(f.code)).with_offset(-1),
                    }
                }
                Ok(o) if spec == OffsetSpec::Latest && req.isolation_level == READ_COMMITTED => {
                    match last_stable(shard, topic, index, o).await {
                        Ok(stable) => r.with_offset(stable as i64),
                        Err(f) => r.with_error_code(kafka_code(f.code)).with_offset(-1),
                    }
                }
                Ok(o) => r.with_offset(o as i64),
                Err(f) => r.with_error_code(kafka_code(f.code)).with_offset(-1),
            };
            partitions.push(r);
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// Kafka's isolation level that reads only committed transactions.
const READ_COMMITTED: i8 = 1;

/// The latest offset a read-committed consumer may start at: the last stable offset (below
/// the oldest open transaction), asked with a fetch at the high watermark `hw`, which reads
/// nothing.
async fn last_stable(shard: &Shard, topic: &str, partition: u32, hw: u64) -> Result<u64, Failure> {
    let part = FetchPartition {
        topic: topic.into(),
        partition: PartitionId(partition),
        offset: hw,
        max_bytes: 1,
        read_committed: true,
    };
    let fetched = shard.service.fetch(vec![part], 0).await.pop().expect("one answer")?;
    Ok(fetched.last_stable.min(hw))
}

/// The offset and timestamp of the first record at or after `offset` whose timestamp is at
/// least `at_least`, or `None` past the last. The log's search by time is exact to the record
/// in Weir's columns, and to the batch in a Kafka batch kept as sent, whose records are read
/// here.
async fn first_record_at(
    shard: &Shard,
    topic: &str,
    partition: u32,
    offset: u64,
    at_least: i64,
) -> Result<Option<(u64, i64)>, Failure> {
    let part = FetchPartition {
        topic: topic.into(),
        partition: PartitionId(partition),
        offset,
        max_bytes: 1,
        read_committed: false,
    };
    let fetched = shard.service.fetch(vec![part], 0).await.pop().expect("one answer")?;
    let aligned = Aligned::new(fetched.batches);
    let corrupt = |e: String| Failure::new(ErrorCode::CorruptBatch, e);
    let mut rest = aligned.bytes();
    while !rest.is_empty() {
        let stored = BatchView::validate_stored(rest, usize::MAX).map_err(|e| corrupt(e.to_string()))?;
        let found = weir_kafka::batch::first_record_at(&stored, offset, at_least)
            .map_err(|e| corrupt(e.to_string()))?;
        if found.is_some() {
            return Ok(found);
        }
        rest = &rest[stored.bytes().len()..];
    }
    Ok(None)
}

/// The end offset of a leader epoch, by which a consumer checks, after a leader change, that
/// the log it read was not truncated. Consumers read only below the high watermark, which is
/// never truncated: the answer is the partition's latest offset under the epoch asked, which
/// never reports a truncation that did not happen, and none can have happened below it.
pub async fn for_leader_epoch(
    shard: &Rc<Shard>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let r = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(p.leader_epoch);
            let index = super::partition_index(p.partition);
            let r = match shard.service.list_offsets(t.topic.0.as_str(), index, OffsetSpec::Latest).await {
                Ok(o) => r.with_end_offset(o as i64),
                Err(f) => r.with_error_code(kafka_code(f.code)).with_end_offset(-1).with_leader_epoch(-1),
            };
            partitions.push(r);
        }
        topics.push(OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions));
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

//! DeleteRecords: each partition's records below an offset go; -1 is the high watermark.
//! Answered per partition with the log start after. On a node of its own; in a cluster each
//! partition answers INVALID_REQUEST for now (its followers cannot follow a start inside a
//! batch yet).

use crate::service::types::Failure;
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use std::rc::Rc;
use weir_kafka::codes::kafka_code;
use weir_net::ErrorCode;

/// Kafka's offset for "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub async fn delete_records(shard: &Rc<Shard>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.as_str();
        let calls = t.partitions.iter().map(|p| async move {
            let r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            match delete_one(shard, name, p.partition_index, p.offset).await {
                Ok(start) => r.with_low_watermark(start as i64),
                Err(code) => r.with_low_watermark(-1).with_error_code(code),
            }
        });
        let partitions = futures::future::join_all(calls).await;
        topics.push(DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

async fn delete_one(shard: &Shard, topic: &str, partition: i32, offset: i64) -> Result<u64, i16> {
    if crate::frontend::cluster::cluster_of(shard).is_some() {
        // Not served in a cluster yet (see `delete_records_local`).
        return Err(ResponseError::InvalidRequest.code());
    }
    let offset = match offset {
        HIGH_WATERMARK => None,
        o if o >= 0 => Some(o as u64),
        _ => return Err(ResponseError::OffsetOutOfRange.code()),
    };
    let partition = super::partition_index(partition);
    shard.service.delete_records(topic, partition, offset).await.map_err(code_of)
}

fn code_of(f: Failure) -> i16 {
    match f.code {
        ErrorCode::InvalidArgument => ResponseError::InvalidTopicException.code(),
        c => kafka_code(c),
    }
}

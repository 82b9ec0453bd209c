//! CreatePartitions: a topic grows to more partitions, placed as a new topic's are. On a node
//! of its own; in a cluster the control plane places replicas, and growing a topic there is not
//! served yet (each topic says so).

use crate::service::types::Failure;
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsRequest, CreatePartitionsTopic};
use kafka_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashSet;
use std::rc::Rc;
use weir_kafka::codes::kafka_code;
use weir_net::ErrorCode;

pub async fn create_partitions(shard: &Rc<Shard>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let twice: HashSet<_> =
        req.topics.iter().filter(|t| !seen.insert(t.name.clone())).map(|t| t.name.clone()).collect();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let outcome = if twice.contains(&t.name) {
            Err((ResponseError::InvalidRequest.code(), "the topic is named twice".to_owned()))
        } else {
            grow(shard, t, req.validate_only).await
        };
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if let Err((code, message)) = outcome {
            r = r.with_error_code(code).with_error_message(Some(StrBytes::from_string(message)));
        }
        results.push(r);
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// One topic's change, or Kafka's code and why not.
async fn grow(shard: &Shard, t: &CreatePartitionsTopic, validate_only: bool) -> Result<(), (i16, String)> {
    if crate::frontend::cluster::cluster_of(shard).is_some() {
        let m = "growing a topic of a cluster is not served yet: its control plane places replicas";
        return Err((ResponseError::InvalidRequest.code(), m.into()));
    }
    let name = t.name.0.to_string();
    let invalid = |m: String| (ResponseError::InvalidPartitions.code(), m);
    let count = u32::try_from(t.count).map_err(|_| invalid(format!("{} partitions", t.count)))?;
    let current = shard.core().topics.borrow().topics.get(&name).map(|m| m.partitions);
    if name == crate::groups::offsets_topic::OFFSETS_TOPIC {
        let m = format!("{name} is internal: its partition count places the consumer groups");
        return Err((ResponseError::InvalidTopicException.code(), m));
    }
    if current.is_some_and(|c| count <= c) {
        return Err(invalid(format!("{name:?} has {} partitions already", current.unwrap_or(0))));
    }
    if let (Some(assignments), Some(current)) = (&t.assignments, current) {
        check_assignments(
            shard,
            assignments.iter().map(|a| &a.broker_ids[..]),
            count.saturating_sub(current),
        )?;
    }
    shard.service.add_partitions(name, count, validate_only).await.map_err(code_of)
}

/// Manual assignments, if given, name one per new partition, each this node alone: the only
/// placement a node of its own has.
fn check_assignments<'a>(
    shard: &Shard,
    assignments: impl ExactSizeIterator<Item = &'a [kafka_protocol::messages::BrokerId]>,
    new: u32,
) -> Result<(), (i16, String)> {
    let me = super::metadata::node_id(shard);
    let bad = |m: String| Err((ResponseError::InvalidReplicaAssignment.code(), m));
    if assignments.len() != new as usize {
        return bad(format!("{} assignments for {new} new partitions", assignments.len()));
    }
    for a in assignments {
        if a.len() != 1 || a[0].0 != me {
            let ids: Vec<i32> = a.iter().map(|b| b.0).collect();
            return bad(format!("replicas {ids:?}: this node ({me}) holds every partition, once"));
        }
    }
    Ok(())
}

fn code_of(f: Failure) -> (i16, String) {
    let code = match f.code {
        ErrorCode::InvalidArgument => ResponseError::InvalidPartitions.code(),
        c => kafka_code(c),
    };
    (code, f.message)
}

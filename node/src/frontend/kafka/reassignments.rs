//! Partition reassignments. Weir's placement decides where replicas live (the controller's, in
//! a cluster) and moving them is not served yet, so no reassignment is ever in progress: a list
//! is empty, a reassignment to the replicas a partition has already is done at once, any other
//! is refused saying so, and a cancellation finds nothing to cancel.

use crate::frontend::cluster::cluster_of;
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::alter_partition_reassignments_request::AlterPartitionReassignmentsRequest;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    AlterPartitionReassignmentsResponse, ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use kafka_protocol::messages::list_partition_reassignments_response::ListPartitionReassignmentsResponse;
use kafka_protocol::protocol::StrBytes;

pub fn alter(shard: &Shard, req: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                    match outcome(shard, t.name.0.as_str(), p.partition_index, p.replicas.as_deref()) {
                        Ok(()) => r,
                        Err((code, message)) => {
                            r.with_error_code(code).with_error_message(Some(StrBytes::from_string(message)))
                        }
                    }
                })
                .collect();
            ReassignableTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}

/// No reassignment is in progress, ever: every list is empty.
pub fn list(_req: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
}

fn outcome(
    shard: &Shard,
    topic: &str,
    partition: i32,
    target: Option<&[BrokerId]>,
) -> Result<(), (i16, String)> {
    let unknown =
        || (ResponseError::UnknownTopicOrPartition.code(), format!("no partition {topic}/{partition}"));
    let index = u32::try_from(partition).map_err(|_| unknown())?;
    let current = replicas(shard, topic, index).ok_or_else(unknown)?;
    let Some(target) = target else {
        return Err((
            ResponseError::NoReassignmentInProgress.code(),
            "no reassignment is in progress".into(),
        ));
    };
    let target: Vec<i32> = target.iter().map(|b| b.0).collect();
    if target == current {
        return Ok(());
    }
    let m = format!(
        "replicas {target:?}: moving replicas is not served yet; {topic}/{partition} stays on {current:?}"
    );
    Err((ResponseError::InvalidReplicaAssignment.code(), m))
}

/// The replicas of a partition, leader first, by node id; `None` if there is no such partition.
fn replicas(shard: &Shard, topic: &str, partition: u32) -> Option<Vec<i32>> {
    match cluster_of(shard) {
        Some((_, meta)) => {
            let (_, p) = meta.partition(topic, partition)?;
            Some(p.state.replicas.iter().map(|n| n.0 as i32).collect())
        }
        None => {
            let count = shard.core().topics.borrow().topics.get(topic).map(|t| t.partitions)?;
            (partition < count).then(|| vec![super::metadata::node_id(shard)])
        }
    }
}

//! Replica administration over Kafka's API: ElectLeaders, DescribeLogDirs, AlterReplicaLogDirs.
//!
//! A Weir node keeps every replica it holds in one log dir, its data dir, and its controller
//! moves leadership back to preferred replicas by itself. So these APIs tell how things stand
//! and change nothing: an election is never needed or cannot be run from here, and a replica
//! can only be "moved" to the dir it is already in.

use crate::frontend::cluster;
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::alter_replica_log_dirs_request::AlterReplicaLogDirsRequest;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult, AlterReplicaLogDirsResponse,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResponse, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::elect_leaders_request::ElectLeadersRequest;
use kafka_protocol::messages::elect_leaders_response::{
    ElectLeadersResponse, PartitionResult, ReplicaElectionResult,
};
use kafka_protocol::protocol::StrBytes;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Kafka's election type for a preferred-replica election; 1 (unclean) is not served.
const ELECTION_PREFERRED: i8 = 0;

/// The partition count of `topic`, as this node knows it: the cluster's metadata in a cluster,
/// the node's topic table otherwise.
fn partition_count(shard: &Shard, topic: &str) -> Option<u32> {
    match cluster::cluster_of(shard) {
        Some((_, meta)) => meta.topics.get(topic).map(|t| t.partitions.len() as u32),
        None => shard.core().topics.borrow().topics.get(topic).map(|t| t.partitions),
    }
}

/// Every topic this node knows, with its partition count.
fn all_topics(shard: &Shard) -> Vec<(String, u32)> {
    match cluster::cluster_of(shard) {
        Some((_, meta)) => {
            meta.topics.iter().map(|(name, t)| (name.clone(), t.partitions.len() as u32)).collect()
        }
        None => {
            let topics = shard.core().topics.borrow();
            topics.topics.values().map(|t| (t.name.clone(), t.partitions)).collect()
        }
    }
}

/// Whether `partition` exists (a negative index never does).
fn exists(shard: &Shard, topic: &str, partition: i32) -> bool {
    partition >= 0 && partition_count(shard, topic).is_some_and(|n| (partition as u32) < n)
}

/// Whether this node holds a replica of the partition.
fn held_here(shard: &Shard, topic: &str, partition: u32) -> bool {
    shard.core().topics.borrow().local_shard(topic, partition).is_some()
}

/// A preferred election's outcome for one partition: not needed where the preferred replica
/// (the first) leads, which a single node's only replica always does; where another leads, the
/// controller moves leadership back itself, so the preferred leader is not available yet.
fn preferred_election(shard: &Shard, topic: &str, partition: i32) -> ResponseError {
    if !exists(shard, topic, partition) {
        return ResponseError::UnknownTopicOrPartition;
    }
    let Some((_, meta)) = cluster::cluster_of(shard) else { return ResponseError::ElectionNotNeeded };
    let Some((_, entry)) = meta.partition(topic, partition as u32) else {
        return ResponseError::UnknownTopicOrPartition;
    };
    match (entry.state.replicas.first(), entry.state.leader) {
        (Some(preferred), Some(leader)) if *preferred == leader => ResponseError::ElectionNotNeeded,
        _ => ResponseError::PreferredLeaderNotAvailable,
    }
}

/// Elections are the controller's: a preferred one is answered with where it stands, an
/// unclean one refused. A null topic list asks for every partition.
pub fn elect_leaders(shard: &Rc<Shard>, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let asked: Vec<(TopicName, Vec<i32>)> = match req.topic_partitions {
        Some(topics) => topics.into_iter().map(|t| (t.topic, t.partitions)).collect(),
        None => all_topics(shard)
            .into_iter()
            .map(|(name, n)| (TopicName(StrBytes::from_string(name)), (0..n as i32).collect()))
            .collect(),
    };
    let results = asked
        .into_iter()
        .map(|(topic, partitions)| {
            let partition_result = partitions
                .into_iter()
                .map(|p| {
                    let outcome = if req.election_type == ELECTION_PREFERRED {
                        preferred_election(shard, topic.0.as_str(), p)
                    } else {
                        ResponseError::InvalidRequest
                    };
                    let message = match outcome {
                        ResponseError::InvalidRequest => "only preferred elections are served",
                        ResponseError::PreferredLeaderNotAvailable => {
                            "the controller moves leadership to the preferred replica once it is in sync"
                        }
                        _ => "",
                    };
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(outcome.code())
                        .with_error_message((!message.is_empty()).then(|| StrBytes::from_static_str(message)))
                })
                .collect();
            ReplicaElectionResult::default().with_topic(topic).with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// The node's one log dir, its data dir, as an absolute path (Kafka's log dirs are).
fn log_dir(shard: &Shard) -> PathBuf {
    let dir = &shard.config.data_dir;
    std::path::absolute(dir).unwrap_or_else(|_| dir.clone())
}

/// Whether `path` names the node's log dir, as DescribeLogDirs tells it or as configured.
fn is_log_dir(shard: &Shard, path: &str) -> bool {
    let path = Path::new(path);
    path == log_dir(shard) || path == shard.config.data_dir
}

/// The partitions of `topic` this node holds (of `asked`, or all), with their sizes in bytes as
/// their logs count them (0 for one not served now).
async fn held_partitions(shard: &Shard, topic: &str, asked: Option<&[i32]>) -> Vec<DescribeLogDirsPartition> {
    let Some(n) = partition_count(shard, topic) else { return Vec::new() };
    let held: Vec<u32> = (0..n)
        .filter(|&p| asked.is_none_or(|a| a.contains(&(p as i32))) && held_here(shard, topic, p))
        .collect();
    if held.is_empty() {
        return Vec::new();
    }
    let statuses = shard.service.describe_topic(topic).await.map(|d| d.partitions).unwrap_or_default();
    held.into_iter()
        .map(|p| {
            let bounds = statuses.get(p as usize).and_then(|s| s.bounds);
            DescribeLogDirsPartition::default()
                .with_partition_index(p as i32)
                .with_partition_size(bounds.map_or(0, |b| b.size_bytes as i64))
                .with_offset_lag(0)
                .with_is_future_key(false)
        })
        .collect()
}

/// One log dir, the data dir, with the partitions of the topics asked (all for null) that this
/// node holds, and (version 4) the size and free bytes of its filesystem.
pub async fn describe_log_dirs(shard: &Rc<Shard>, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let asked: Vec<(String, Option<Vec<i32>>)> = match req.topics {
        Some(topics) => topics.into_iter().map(|t| (t.topic.0.to_string(), Some(t.partitions))).collect(),
        None => all_topics(shard).into_iter().map(|(name, _)| (name, None)).collect(),
    };
    let mut topics = Vec::new();
    for (name, partitions) in asked {
        let held = held_partitions(shard, &name, partitions.as_deref()).await;
        if !held.is_empty() {
            let name = TopicName(StrBytes::from_string(name));
            topics.push(DescribeLogDirsTopic::default().with_name(name).with_partitions(held));
        }
    }
    let dir = log_dir(shard);
    let at = dir.clone();
    // statvfs may block on a slow filesystem: not on the shard's thread.
    let space = glommio::executor().spawn_blocking(move || crate::disk::space_bytes(&at)).await;
    let (total, usable) = space.map_or((-1, -1), |(t, u)| (t as i64, u as i64));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// Moving a replica to the log dir it is in, the data dir, changes nothing; there is no other.
pub fn alter_replica_log_dirs(
    shard: &Rc<Shard>,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let mut results = Vec::new();
    for dir in req.dirs {
        let here = is_log_dir(shard, dir.path.as_str());
        for t in dir.topics {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    let outcome = if !here {
                        ResponseError::LogDirNotFound.code()
                    } else if !exists(shard, t.name.0.as_str(), p) {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if !held_here(shard, t.name.0.as_str(), p as u32) {
                        ResponseError::NotLeaderOrFollower.code()
                    } else {
                        0
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(outcome)
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default().with_topic_name(t.name).with_partitions(partitions),
            );
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}

//! Consumer groups over Kafka's API: FindCoordinator, OffsetCommit, OffsetFetch, ListGroups,
//! DescribeGroups, DeleteGroups, and the classic protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup). The groups and offsets are the native groups' own: one coordinator per
//! `__consumer_offsets` partition, on the shard that leads it, reached over the bus from
//! whichever shard took the connection (`groups::call`).

use super::Answer;
use crate::groups::call::{CallError, GroupAnswer, GroupCall, route};
use crate::service::types::Failure;
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{BrokerId, GroupId, RequestHeader, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::rc::Rc;
use weir_groups::{CommittedOffset, GroupError};
use weir_kafka::codes::kafka_code;
use weir_net::ErrorCode;

pub async fn dispatch(shard: &Rc<Shard>, header: &RequestHeader, req: RequestKind) -> Answer {
    let v = header.request_api_version;
    let resp = match req {
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(find_coordinator(shard, r, v).await),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offset_commit(shard, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch(shard, r, v).await),
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(super::group_describe::list_groups(shard, r).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(super::group_describe::describe_groups(shard, r).await)
        }
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(super::classic::join(shard, header, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(super::classic::sync(shard, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(super::classic::heartbeat(shard, r).await),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(super::classic::leave(shard, r, v).await),
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(super::group_delete::delete_groups(shard, r).await)
        }
        other => return Answer::Close(format!("{:?} is not served", std::mem::discriminant(&other))),
    };
    Answer::Response(Box::new(resp))
}

/// The Kafka error code of a failed group call.
pub fn call_code(e: &CallError) -> i16 {
    match e {
        CallError::Node(f) => kafka_code(f.code),
        CallError::Group(g) => group_code(g),
    }
}

/// The Kafka error code of a coordinator's refusal.
pub fn group_code(e: &GroupError) -> i16 {
    use ResponseError as K;
    let k = match e {
        GroupError::UnknownMemberId { .. } => K::UnknownMemberId,
        GroupError::FencedMemberEpoch { .. } => K::FencedMemberEpoch,
        GroupError::StaleMemberEpoch { .. } => K::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId { .. } => K::UnreleasedInstanceId,
        GroupError::GroupMaxSizeReached { .. } => K::GroupMaxSizeReached,
        GroupError::InvalidRequest { .. } => K::InvalidRequest,
        GroupError::GroupNotEmpty { .. } => K::NonEmptyGroup,
        GroupError::GroupIdNotFound { .. } => K::GroupIdNotFound,
        GroupError::Txn(e) => return crate::transactions::txn_code(e),
        other => return super::classic::classic_code(other),
    };
    k.code()
}

/// The node that coordinates `group`: its id and where Kafka clients reach it.
async fn coordinator_of(shard: &Rc<Shard>, group: &str) -> Result<(i32, String, u16), Failure> {
    let node = crate::groups::locate(shard, group).await?.node.0 as i32;
    let brokers = super::metadata::brokers(shard);
    brokers.into_iter().find(|b| b.0 == node).ok_or_else(|| {
        Failure::new(ErrorCode::CoordinatorLoadInProgress, "the coordinator's node has no Kafka address yet")
    })
}

async fn find_coordinator(
    shard: &Rc<Shard>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 { req.coordinator_keys } else { vec![req.key] };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let mut c = Coordinator::default().with_key(key.clone()).with_node_id(BrokerId(-1)).with_port(-1);
        // A transactional id (key type 1) is coordinated where a group of its name would be;
        // a cluster has no transactions yet.
        let txn_refused = req.key_type == 1 && super::transactions::unavailable(shard).is_some();
        if !(req.key_type == 0 || req.key_type == 1) || txn_refused {
            c = c.with_error_code(ResponseError::CoordinatorNotAvailable.code());
        } else {
            match coordinator_of(shard, key.as_str()).await {
                Ok((id, host, port)) => {
                    c = c
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port as i32)
                }
                Err(f) => {
                    let code = match f.code {
                        ErrorCode::InvalidArgument => ResponseError::InvalidGroupId.code(),
                        ErrorCode::CoordinatorLoadInProgress | ErrorCode::Unavailable => {
                            ResponseError::CoordinatorNotAvailable.code()
                        }
                        code => kafka_code(code),
                    };
                    c = c.with_error_code(code).with_error_message(Some(StrBytes::from_string(f.message)));
                }
            }
        }
        coordinators.push(c);
    }
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.pop().expect("one key");
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

async fn offset_commit(shard: &Rc<Shard>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let mut offsets = Vec::new();
    let mut bad: BTreeMap<(String, i32), i16> = BTreeMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            if p.partition_index < 0 || p.committed_offset < 0 {
                bad.insert(
                    (t.name.0.to_string(), p.partition_index),
                    ResponseError::InvalidCommitOffsetSize.code(),
                );
                continue;
            }
            let leader_epoch = (p.committed_leader_epoch >= 0).then_some(p.committed_leader_epoch);
            let committed = CommittedOffset { offset: p.committed_offset as u64, metadata, leader_epoch };
            offsets.push((t.name.0.to_string(), p.partition_index as u32, committed));
        }
    }
    let call = GroupCall::Commit {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        generation: req.generation_id_or_member_epoch,
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        offsets,
    };
    let code = match route(shard, call).await {
        GroupAnswer::Done(Ok(())) => 0,
        GroupAnswer::Done(Err(e)) => call_code(&e),
        _ => ResponseError::UnknownServerError.code(),
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = bad.get(&(name.clone(), p.partition_index)).copied().unwrap_or(code);
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's committed offsets as OffsetFetch answers them, by topic; or the group's error.
type Fetched = Result<Vec<TopicOffsets>, i16>;

/// A topic's committed offsets.
type TopicOffsets = (String, Vec<PartitionOffset>);

/// One partition's committed offset as OffsetFetch answers it: offset and leader epoch -1
/// where none is committed; `code` UNSTABLE_OFFSET_COMMIT (offset -1) where a stable offset
/// was asked for and a transaction holds one pending, as Kafka answers it, partition by
/// partition.
#[derive(Debug, Clone)]
struct PartitionOffset {
    partition: i32,
    offset: i64,
    metadata: String,
    epoch: i32,
    code: i16,
}

async fn fetch_group(
    shard: &Rc<Shard>,
    group: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Fetched {
    let partitions = topics.as_ref().map(|t| {
        t.iter().flat_map(|(n, ps)| ps.iter().filter(|p| **p >= 0).map(|p| (n.clone(), *p as u32))).collect()
    });
    let (found, unstable) =
        match route(shard, GroupCall::FetchOffsets { group, partitions, require_stable }).await {
            GroupAnswer::Offsets(Ok(o)) => (o, Default::default()),
            GroupAnswer::StableOffsets(Ok(o)) => o,
            GroupAnswer::Offsets(Err(e)) | GroupAnswer::StableOffsets(Err(e)) => return Err(call_code(&e)),
            _ => return Err(ResponseError::UnknownServerError.code()),
        };
    let mut by_topic: Vec<TopicOffsets> = Vec::new();
    for (topic, partition, c) in found {
        let (offset, metadata, epoch) = c
            .map_or((-1, String::new(), -1), |c| (c.offset as i64, c.metadata, c.leader_epoch.unwrap_or(-1)));
        let mut one = PartitionOffset { partition: partition as i32, offset, metadata, epoch, code: 0 };
        if unstable.contains(&(topic.clone(), partition)) {
            let code = ResponseError::UnstableOffsetCommit.code();
            (one.offset, one.epoch, one.metadata, one.code) = (-1, -1, String::new(), code);
        }
        match by_topic.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, v)) => v.push(one),
            None => by_topic.push((topic, vec![one])),
        }
    }
    Ok(by_topic)
}

async fn offset_fetch(shard: &Rc<Shard>, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let topics = g
                .topics
                .map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
            let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(
                match fetch_group(shard, g.group_id.0.to_string(), topics, req.require_stable).await {
                    Ok(found) => out.with_topics(topics_of(found, |n, ps| {
                        let ps = ps.into_iter().map(|p| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p.partition)
                                .with_committed_offset(p.offset)
                                .with_committed_leader_epoch(p.epoch)
                                .with_metadata(Some(StrBytes::from_string(p.metadata)))
                                .with_error_code(p.code)
                        });
                        OffsetFetchResponseTopics::default().with_name(n).with_partitions(ps.collect())
                    })),
                    Err(code) => out.with_error_code(code),
                },
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics: Option<Vec<(String, Vec<i32>)>> =
        req.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let asked = topics.clone();
    let found = match fetch_group(shard, req.group_id.0.to_string(), topics, req.require_stable).await {
        Ok(found) => found,
        // Version 1 has no top-level error: each partition asked carries it, or the client would
        // take "not coordinator" for "nothing committed" and reset its position.
        Err(code) if version < 2 => {
            let failed = |partition| PartitionOffset {
                partition,
                offset: -1,
                metadata: String::new(),
                epoch: -1,
                code,
            };
            let asked = asked.unwrap_or_default().into_iter();
            asked.map(|(t, ps)| (t, ps.into_iter().map(failed).collect())).collect()
        }
        Err(code) => return OffsetFetchResponse::default().with_error_code(code),
    };
    OffsetFetchResponse::default().with_topics(topics_of(found, |n, ps| {
        let ps = ps.into_iter().map(|p| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(p.partition)
                .with_committed_offset(p.offset)
                .with_committed_leader_epoch(p.epoch)
                .with_metadata(Some(StrBytes::from_string(p.metadata)))
                .with_error_code(p.code)
        });
        OffsetFetchResponseTopic::default().with_name(n).with_partitions(ps.collect())
    }))
}

/// Committed offsets by topic, in the form of an OffsetFetch version: `topic` makes one topic's
/// answer of its name and its partitions'.
fn topics_of<T>(found: Vec<TopicOffsets>, topic: impl Fn(TopicName, Vec<PartitionOffset>) -> T) -> Vec<T> {
    found.into_iter().map(|(t, ps)| topic(TopicName(StrBytes::from_string(t)), ps)).collect()
}

/// A group id as Kafka's messages carry it.
pub fn group_id(s: String) -> GroupId {
    GroupId(StrBytes::from_string(s))
}

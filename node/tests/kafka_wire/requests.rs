//! Realistic requests, as a Kafka client would send them in a given version: only the fields
//! the version carries are set.

use super::wire::s;
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::messages::{ApiVersionsRequest, GroupId, RequestKind, TopicName};

pub fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

pub fn api_versions(version: i16) -> RequestKind {
    let mut r = ApiVersionsRequest::default();
    if version >= 3 {
        r = r.with_client_software_name(s("weir-wire-test")).with_client_software_version(s("1.0"));
    }
    RequestKind::ApiVersions(r)
}

/// Metadata of `topics`; `auto_create` is only carried from version 4.
pub fn metadata(version: i16, topics: &[&str], auto_create: bool) -> RequestKind {
    let topics = topics.iter().map(|t| MetadataRequestTopic::default().with_name(Some(topic(t)))).collect();
    let mut r = MetadataRequest::default().with_topics(Some(topics));
    if version >= 4 {
        r = r.with_allow_auto_topic_creation(auto_create);
    }
    RequestKind::Metadata(r)
}

pub fn produce(acks: i16, name: &str, partition: i32, records: Bytes) -> RequestKind {
    let part = PartitionProduceData::default().with_index(partition).with_records(Some(records));
    let t = TopicProduceData::default().with_name(topic(name)).with_partition_data(vec![part]);
    RequestKind::Produce(
        ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![t]),
    )
}

pub fn fetch(version: i16, name: &str, partition: i32, offset: i64, max_wait_ms: i32) -> RequestKind {
    let p = FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20);
    let t = FetchTopic::default().with_topic(topic(name)).with_partitions(vec![p]);
    let mut r = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(4 << 20)
        .with_topics(vec![t]);
    if version >= 7 {
        r = r.with_session_id(0).with_session_epoch(-1);
    }
    RequestKind::Fetch(r)
}

/// ListOffsets of `name`/0 at `timestamp` (-1 latest, -2 earliest).
pub fn list_offsets(name: &str, timestamp: i64) -> RequestKind {
    let p = ListOffsetsPartition::default().with_partition_index(0).with_timestamp(timestamp);
    let t = ListOffsetsTopic::default().with_name(topic(name)).with_partitions(vec![p]);
    RequestKind::ListOffsets(ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![t]))
}

pub fn join(version: i16, group: &str, member_id: &str, rebalance_timeout_ms: i32) -> RequestKind {
    let protocol = JoinGroupRequestProtocol::default()
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x06golden\0\0\0\0"));
    let mut r = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![protocol]);
    if version >= 1 {
        r = r.with_rebalance_timeout_ms(rebalance_timeout_ms);
    }
    if version >= 8 {
        r = r.with_reason(Some(s("test")));
    }
    RequestKind::JoinGroup(r)
}

/// Commits `offset` for `name`/0 in `group`, as `member` of `generation` (-1 and "" for a
/// commit from outside the group).
/// The leader epoch `commit` commits (OffsetCommit v6 on), which OffsetFetch v5 on returns.
pub const COMMITTED_EPOCH: i32 = 7;

pub fn commit(
    version: i16,
    group: &str,
    generation: i32,
    member: &str,
    name: &str,
    offset: i64,
) -> RequestKind {
    let p = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset)
        .with_committed_metadata(Some(s("meta")));
    let p = if version >= 6 { p.with_committed_leader_epoch(COMMITTED_EPOCH) } else { p };
    let t = OffsetCommitRequestTopic::default().with_name(topic(name)).with_partitions(vec![p]);
    let r = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![t]);
    RequestKind::OffsetCommit(r)
}

pub fn create_topics(name: &str, partitions: i32, validate_only: bool) -> RequestKind {
    let t = CreatableTopic::default()
        .with_name(topic(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1);
    let r = CreateTopicsRequest::default()
        .with_topics(vec![t])
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only);
    RequestKind::CreateTopics(r)
}

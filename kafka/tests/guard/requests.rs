//! Realistic requests for every API and version the guard covers, encoded with kafka-protocol's
//! client-side encoder. Each builder takes the version and whether to set nullable fields to
//! null (where the version allows) instead of filling them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

pub type Builder = fn(i16, bool) -> Bytes;

/// (API key, lowest version, highest version, builder).
pub const APIS: &[(i16, i16, i16, Builder)] = &[
    (18, 0, 4, api_versions),
    (3, 0, 12, metadata),
    (0, 0, 11, produce),
    (1, 4, 12, fetch),
    (2, 1, 7, list_offsets),
    (10, 0, 4, find_coordinator),
    (11, 0, 9, join_group),
    (14, 0, 5, sync_group),
    (12, 0, 4, heartbeat),
    (13, 0, 5, leave_group),
    (8, 2, 8, offset_commit),
    (9, 1, 8, offset_fetch),
    (16, 0, 4, list_groups),
    (15, 0, 5, describe_groups),
    (19, 2, 7, create_topics),
    (20, 1, 6, delete_topics),
    (22, 0, 4, init_producer_id),
    (23, 2, 4, offset_for_leader_epoch),
    (32, 1, 4, describe_configs),
    (34, 1, 2, alter_replica_log_dirs),
    (35, 1, 4, describe_log_dirs),
    (42, 0, 2, delete_groups),
    (43, 0, 2, elect_leaders),
    (60, 0, 1, describe_cluster),
    (21, 0, 2, delete_records),
    (37, 0, 3, create_partitions),
    (45, 0, 1, alter_partition_reassignments),
    (46, 0, 0, list_partition_reassignments),
    (29, 1, 3, describe_acls),
    (30, 1, 3, create_acls),
    (31, 1, 3, delete_acls),
    (24, 0, 3, add_partitions_to_txn),
    (25, 0, 3, add_offsets_to_txn),
    (26, 0, 3, end_txn),
    (28, 0, 3, txn_offset_commit),
];

const TOPIC_ID: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic(text: &'static str) -> TopicName {
    TopicName(s(text))
}

/// A nullable string: null when asked for nulls, else the text.
fn opt(nulls: bool, text: &'static str) -> Option<StrBytes> {
    (!nulls).then(|| s(text))
}

fn encode<T: Encodable>(request: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    request.encode(&mut buf, version).unwrap_or_else(|e| panic!("encode v{version}: {e}"));
    buf.freeze()
}

/// An unknown tagged field, which the decoder keeps as bytes; only flexible versions carry it.
fn unknown_tags(flexible: bool) -> std::collections::BTreeMap<i32, Bytes> {
    let mut tags = std::collections::BTreeMap::new();
    if flexible {
        tags.insert(99, Bytes::from_static(b"weir"));
    }
    tags
}

fn api_versions(v: i16, _nulls: bool) -> Bytes {
    let mut r = ApiVersionsRequest::default();
    if v >= 3 {
        r.client_software_name = s("weir-test");
        r.client_software_version = s("0.1.0");
        r.unknown_tagged_fields = unknown_tags(true);
    }
    encode(&r, v)
}

fn metadata(v: i16, nulls: bool) -> Bytes {
    use metadata_request::MetadataRequestTopic;
    let mut r = MetadataRequest::default();
    let mut t1 = MetadataRequestTopic::default();
    t1.name = Some(topic("orders"));
    let mut t2 = MetadataRequestTopic::default();
    t2.name = Some(topic("payments"));
    if v >= 10 {
        t1.topic_id = TOPIC_ID.parse().unwrap();
        t2.name = if nulls { None } else { t2.name };
    }
    r.topics = if nulls && v >= 1 { None } else { Some(vec![t1, t2]) };
    if v >= 4 {
        r.allow_auto_topic_creation = false;
    }
    if (8..=10).contains(&v) {
        r.include_cluster_authorized_operations = true;
    }
    if v >= 8 {
        r.include_topic_authorized_operations = true;
    }
    r.unknown_tagged_fields = unknown_tags(v >= 9);
    encode(&r, v)
}

/// Produce v0-2 left the protocol before kafka-protocol 0.18 (its decoder starts at v3): they
/// are v3 without the leading transactional id, so build v3 with a null id and drop its two
/// bytes.
fn produce(v: i16, nulls: bool) -> Bytes {
    use produce_request::{PartitionProduceData, TopicProduceData};
    let encode_version = v.max(3);
    let mut r = ProduceRequest::default();
    r.transactional_id = if v < 3 || nulls { None } else { Some(TransactionalId(s("tx-1"))) };
    r.acks = -1;
    r.timeout_ms = 30_000;
    let mut p0 = PartitionProduceData::default();
    p0.index = 0;
    p0.records = Some(Bytes::from(vec![7u8; 61]));
    let mut p1 = PartitionProduceData::default();
    p1.index = 1;
    p1.records = if nulls { None } else { Some(Bytes::from_static(b"not a batch, the guard does not look")) };
    let mut t = TopicProduceData::default();
    t.name = topic("orders");
    t.partition_data = vec![p0, p1];
    let mut t2 = TopicProduceData::default();
    t2.name = topic("empty");
    r.topic_data = vec![t, t2];
    r.unknown_tagged_fields = unknown_tags(v >= 9);
    let bytes = encode(&r, encode_version);
    if v < 3 { bytes.slice(2..) } else { bytes }
}

fn fetch(v: i16, nulls: bool) -> Bytes {
    use fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
    let mut r = FetchRequest::default();
    if v >= 12 {
        r.cluster_id = opt(nulls, "weir-cluster");
    }
    r.replica_id = BrokerId(-1);
    r.max_wait_ms = 500;
    r.min_bytes = 1;
    r.max_bytes = 52_428_800;
    r.isolation_level = 1;
    if v >= 7 {
        r.session_id = 12;
        r.session_epoch = 3;
        let mut f = ForgottenTopic::default();
        f.topic = topic("old");
        f.partitions = vec![4, 5, 6];
        r.forgotten_topics_data = vec![f];
    }
    let partition = |index: i32| {
        let mut p = FetchPartition::default();
        p.partition = index;
        p.fetch_offset = 1_000 + i64::from(index);
        p.partition_max_bytes = 1_048_576;
        if v >= 9 {
            p.current_leader_epoch = 2;
        }
        if v >= 12 {
            p.last_fetched_epoch = 1;
        }
        if v >= 5 {
            p.log_start_offset = 0;
        }
        p
    };
    let mut t = FetchTopic::default();
    t.topic = topic("orders");
    t.partitions = vec![partition(0), partition(1), partition(2)];
    r.topics = vec![t];
    if v >= 11 {
        r.rack_id = s("rack-a");
    }
    r.unknown_tagged_fields = unknown_tags(v >= 12);
    encode(&r, v)
}

fn list_offsets(v: i16, _nulls: bool) -> Bytes {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let mut r = ListOffsetsRequest::default();
    r.replica_id = BrokerId(-1);
    if v >= 2 {
        r.isolation_level = 1;
    }
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 3;
    p.timestamp = -1;
    if v >= 4 {
        p.current_leader_epoch = 7;
    }
    let mut t = ListOffsetsTopic::default();
    t.name = topic("orders");
    t.partitions = vec![p.clone(), p];
    r.topics = vec![t];
    r.unknown_tagged_fields = unknown_tags(v >= 6);
    encode(&r, v)
}

fn find_coordinator(v: i16, _nulls: bool) -> Bytes {
    let mut r = FindCoordinatorRequest::default();
    if v <= 3 {
        r.key = s("group-1");
    } else {
        r.coordinator_keys = vec![s("group-1"), s("group-2")];
    }
    if v >= 1 {
        r.key_type = 0;
    }
    r.unknown_tagged_fields = unknown_tags(v >= 3);
    encode(&r, v)
}

fn join_group(v: i16, nulls: bool) -> Bytes {
    use join_group_request::JoinGroupRequestProtocol;
    let mut r = JoinGroupRequest::default();
    r.group_id = GroupId(s("group-1"));
    r.session_timeout_ms = 45_000;
    if v >= 1 {
        r.rebalance_timeout_ms = 300_000;
    }
    r.member_id = s("member-1");
    if v >= 5 {
        r.group_instance_id = opt(nulls, "instance-1");
    }
    r.protocol_type = s("consumer");
    let mut p = JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 6, b'o', b'r', b'd', b'e', b'r', b's']);
    let mut q = JoinGroupRequestProtocol::default();
    q.name = s("cooperative-sticky");
    r.protocols = vec![p, q];
    if v >= 8 {
        r.reason = opt(nulls, "rejoining");
    }
    r.unknown_tagged_fields = unknown_tags(v >= 6);
    encode(&r, v)
}

fn sync_group(v: i16, nulls: bool) -> Bytes {
    use sync_group_request::SyncGroupRequestAssignment;
    let mut r = SyncGroupRequest::default();
    r.group_id = GroupId(s("group-1"));
    r.generation_id = 4;
    r.member_id = s("member-1");
    if v >= 3 {
        r.group_instance_id = opt(nulls, "instance-1");
    }
    if v >= 5 {
        r.protocol_type = opt(nulls, "consumer");
        r.protocol_name = opt(nulls, "range");
    }
    let mut a = SyncGroupRequestAssignment::default();
    a.member_id = s("member-1");
    a.assignment = Bytes::from_static(&[0, 1, 0, 0, 0, 0]);
    let mut b = SyncGroupRequestAssignment::default();
    b.member_id = s("member-2");
    r.assignments = vec![a, b];
    r.unknown_tagged_fields = unknown_tags(v >= 4);
    encode(&r, v)
}

fn heartbeat(v: i16, nulls: bool) -> Bytes {
    let mut r = HeartbeatRequest::default();
    r.group_id = GroupId(s("group-1"));
    r.generation_id = 4;
    r.member_id = s("member-1");
    if v >= 3 {
        r.group_instance_id = opt(nulls, "instance-1");
    }
    r.unknown_tagged_fields = unknown_tags(v >= 4);
    encode(&r, v)
}

fn leave_group(v: i16, nulls: bool) -> Bytes {
    use leave_group_request::MemberIdentity;
    let mut r = LeaveGroupRequest::default();
    r.group_id = GroupId(s("group-1"));
    if v <= 2 {
        r.member_id = s("member-1");
    } else {
        let mut m = MemberIdentity::default();
        m.member_id = s("member-1");
        m.group_instance_id = opt(nulls, "instance-1");
        if v >= 5 {
            m.reason = opt(nulls, "shutting down");
        }
        let mut n = MemberIdentity::default();
        n.member_id = s("member-2");
        r.members = vec![m, n];
    }
    r.unknown_tagged_fields = unknown_tags(v >= 4);
    encode(&r, v)
}

fn offset_commit(v: i16, nulls: bool) -> Bytes {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let mut r = OffsetCommitRequest::default();
    r.group_id = GroupId(s("group-1"));
    r.generation_id_or_member_epoch = 4;
    r.member_id = s("member-1");
    if v >= 7 {
        r.group_instance_id = opt(nulls, "instance-1");
    }
    if v <= 4 {
        r.retention_time_ms = 86_400_000;
    }
    let partition = |index: i32| {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = index;
        p.committed_offset = 42;
        if v >= 6 {
            p.committed_leader_epoch = 2;
        }
        p.committed_metadata = opt(nulls && index == 1, "meta");
        p
    };
    let mut t = OffsetCommitRequestTopic::default();
    t.name = topic("orders");
    t.partitions = vec![partition(0), partition(1)];
    r.topics = vec![t];
    r.unknown_tagged_fields = unknown_tags(v >= 8);
    encode(&r, v)
}

fn offset_fetch(v: i16, nulls: bool) -> Bytes {
    use offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics};
    let mut r = OffsetFetchRequest::default();
    if v <= 7 {
        r.group_id = GroupId(s("group-1"));
        let mut t = OffsetFetchRequestTopic::default();
        t.name = topic("orders");
        t.partition_indexes = vec![0, 1, 2];
        r.topics = if nulls && v >= 2 { None } else { Some(vec![t]) };
    } else {
        let mut t = OffsetFetchRequestTopics::default();
        t.name = topic("orders");
        t.partition_indexes = vec![0, 1, 2];
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = GroupId(s("group-1"));
        g.topics = Some(vec![t]);
        let mut h = OffsetFetchRequestGroup::default();
        h.group_id = GroupId(s("group-2"));
        h.topics = if nulls { None } else { Some(vec![]) };
        r.groups = vec![g, h];
    }
    if v >= 7 {
        r.require_stable = true;
    }
    r.unknown_tagged_fields = unknown_tags(v >= 6);
    encode(&r, v)
}

fn list_groups(v: i16, _nulls: bool) -> Bytes {
    let mut r = ListGroupsRequest::default();
    if v >= 4 {
        r.states_filter = vec![s("Stable"), s("Empty")];
    }
    r.unknown_tagged_fields = unknown_tags(v >= 3);
    encode(&r, v)
}

fn describe_groups(v: i16, _nulls: bool) -> Bytes {
    let mut r = DescribeGroupsRequest::default();
    r.groups = vec![GroupId(s("group-1")), GroupId(s("group-2"))];
    if v >= 3 {
        r.include_authorized_operations = true;
    }
    r.unknown_tagged_fields = unknown_tags(v >= 5);
    encode(&r, v)
}

fn create_topics(v: i16, nulls: bool) -> Bytes {
    use create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig};
    let mut r = CreateTopicsRequest::default();
    let mut a = CreatableReplicaAssignment::default();
    a.partition_index = 0;
    a.broker_ids = vec![BrokerId(1), BrokerId(2), BrokerId(3)];
    let mut c = CreatableTopicConfig::default();
    c.name = s("cleanup.policy");
    c.value = opt(nulls, "compact");
    let mut d = CreatableTopicConfig::default();
    d.name = s("retention.ms");
    d.value = Some(s("86400000"));
    let mut t = CreatableTopic::default();
    t.name = topic("orders");
    t.num_partitions = -1;
    t.replication_factor = -1;
    t.assignments = vec![a];
    t.configs = vec![c, d];
    let mut u = CreatableTopic::default();
    u.name = topic("payments");
    u.num_partitions = 6;
    u.replication_factor = 3;
    r.topics = vec![t, u];
    r.timeout_ms = 30_000;
    r.validate_only = v >= 3;
    r.unknown_tagged_fields = unknown_tags(v >= 5);
    encode(&r, v)
}

fn delete_topics(v: i16, nulls: bool) -> Bytes {
    use delete_topics_request::DeleteTopicState;
    let mut r = DeleteTopicsRequest::default();
    if v <= 5 {
        r.topic_names = vec![topic("orders"), topic("payments")];
    } else {
        let mut a = DeleteTopicState::default();
        a.name = Some(topic("orders"));
        let mut b = DeleteTopicState::default();
        b.name = if nulls { None } else { Some(topic("payments")) };
        b.topic_id = TOPIC_ID.parse().unwrap();
        r.topics = vec![a, b];
    }
    r.timeout_ms = 30_000;
    r.unknown_tagged_fields = unknown_tags(v >= 4);
    encode(&r, v)
}

fn init_producer_id(v: i16, nulls: bool) -> Bytes {
    let mut r = InitProducerIdRequest::default();
    r.transactional_id = if nulls { None } else { Some(TransactionalId(s("tx-1"))) };
    r.transaction_timeout_ms = 60_000;
    if v >= 3 {
        r.producer_id = ProducerId(1234);
        r.producer_epoch = 5;
    }
    r.unknown_tagged_fields = unknown_tags(v >= 2);
    encode(&r, v)
}

fn offset_for_leader_epoch(v: i16, _nulls: bool) -> Bytes {
    use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let mut r = OffsetForLeaderEpochRequest::default();
    if v >= 3 {
        r.replica_id = BrokerId(-1);
    }
    let mut p = OffsetForLeaderPartition::default();
    p.partition = 0;
    p.current_leader_epoch = 5;
    p.leader_epoch = 4;
    let mut t = OffsetForLeaderTopic::default();
    t.topic = topic("orders");
    t.partitions = vec![p.clone(), p];
    r.topics = vec![t];
    r.unknown_tagged_fields = unknown_tags(v >= 4);
    encode(&r, v)
}

fn describe_configs(v: i16, nulls: bool) -> Bytes {
    use describe_configs_request::DescribeConfigsResource;
    let mut r = DescribeConfigsRequest::default();
    let mut a = DescribeConfigsResource::default();
    a.resource_type = 2;
    a.resource_name = s("orders");
    a.configuration_keys = if nulls { None } else { Some(vec![s("retention.ms"), s("cleanup.policy")]) };
    let mut b = DescribeConfigsResource::default();
    b.resource_type = 4;
    b.resource_name = s("1");
    b.configuration_keys = Some(vec![]);
    r.resources = vec![a, b];
    r.include_synonyms = true;
    if v >= 3 {
        r.include_documentation = true;
    }
    r.unknown_tagged_fields = unknown_tags(v >= 4);
    encode(&r, v)
}

fn describe_cluster(v: i16, _nulls: bool) -> Bytes {
    let mut r = DescribeClusterRequest::default();
    r.include_cluster_authorized_operations = true;
    if v >= 1 {
        r.endpoint_type = 2;
    }
    r.unknown_tagged_fields = unknown_tags(true);
    encode(&r, v)
}

fn alter_replica_log_dirs(v: i16, _nulls: bool) -> Bytes {
    use alter_replica_log_dirs_request::{AlterReplicaLogDir, AlterReplicaLogDirTopic};
    let flexible = v >= 2;
    let mut t = AlterReplicaLogDirTopic::default();
    t.name = topic("orders");
    t.partitions = vec![0, 2];
    t.unknown_tagged_fields = unknown_tags(flexible);
    let mut d = AlterReplicaLogDir::default();
    d.path = s("/var/lib/weir");
    d.topics = vec![t, AlterReplicaLogDirTopic::default()];
    d.unknown_tagged_fields = unknown_tags(flexible);
    let mut r = AlterReplicaLogDirsRequest::default();
    r.dirs = vec![d, AlterReplicaLogDir::default()];
    r.unknown_tagged_fields = unknown_tags(flexible);
    encode(&r, v)
}

fn describe_log_dirs(v: i16, nulls: bool) -> Bytes {
    use describe_log_dirs_request::DescribableLogDirTopic;
    let mut t = DescribableLogDirTopic::default();
    t.topic = topic("orders");
    t.partitions = vec![0, 1, 2];
    t.unknown_tagged_fields = unknown_tags(v >= 2);
    let mut r = DescribeLogDirsRequest::default();
    r.topics = if nulls { None } else { Some(vec![t, DescribableLogDirTopic::default()]) };
    r.unknown_tagged_fields = unknown_tags(v >= 2);
    encode(&r, v)
}

fn delete_groups(v: i16, _nulls: bool) -> Bytes {
    let mut r = DeleteGroupsRequest::default();
    r.groups_names = vec![GroupId(s("billing")), GroupId(s(""))];
    r.unknown_tagged_fields = unknown_tags(v >= 2);
    encode(&r, v)
}

fn elect_leaders(v: i16, nulls: bool) -> Bytes {
    use elect_leaders_request::TopicPartitions;
    let mut t = TopicPartitions::default();
    t.topic = topic("orders");
    t.partitions = vec![0, 1];
    t.unknown_tagged_fields = unknown_tags(v >= 2);
    let mut r = ElectLeadersRequest::default();
    if v >= 1 {
        r.election_type = 1;
    }
    r.topic_partitions = if nulls { None } else { Some(vec![t, TopicPartitions::default()]) };
    r.timeout_ms = 30_000;
    r.unknown_tagged_fields = unknown_tags(v >= 2);
    encode(&r, v)
}

fn delete_records(v: i16, _nulls: bool) -> Bytes {
    use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let mut p = DeleteRecordsPartition::default();
    p.partition_index = 3;
    p.offset = -1;
    p.unknown_tagged_fields = unknown_tags(v >= 2);
    let mut t = DeleteRecordsTopic::default();
    t.name = topic("orders");
    t.partitions = vec![p, DeleteRecordsPartition::default()];
    t.unknown_tagged_fields = unknown_tags(v >= 2);
    let mut r = DeleteRecordsRequest::default();
    r.topics = vec![t, DeleteRecordsTopic::default()];
    r.timeout_ms = 30_000;
    r.unknown_tagged_fields = unknown_tags(v >= 2);
    encode(&r, v)
}

fn create_partitions(v: i16, nulls: bool) -> Bytes {
    use create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
    let mut a = CreatePartitionsAssignment::default();
    a.broker_ids = vec![BrokerId(0), BrokerId(2)];
    a.unknown_tagged_fields = unknown_tags(v >= 2);
    let mut t = CreatePartitionsTopic::default();
    t.name = topic("orders");
    t.count = 6;
    t.assignments = if nulls { None } else { Some(vec![a, CreatePartitionsAssignment::default()]) };
    t.unknown_tagged_fields = unknown_tags(v >= 2);
    let mut r = CreatePartitionsRequest::default();
    r.topics = vec![t, CreatePartitionsTopic::default()];
    r.timeout_ms = 30_000;
    r.validate_only = true;
    r.unknown_tagged_fields = unknown_tags(v >= 2);
    encode(&r, v)
}

fn alter_partition_reassignments(v: i16, nulls: bool) -> Bytes {
    use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    let mut p = ReassignablePartition::default();
    p.partition_index = 1;
    p.replicas = if nulls { None } else { Some(vec![BrokerId(1), BrokerId(2), BrokerId(3)]) };
    p.unknown_tagged_fields = unknown_tags(true);
    let mut t = ReassignableTopic::default();
    t.name = topic("orders");
    t.partitions = vec![p, ReassignablePartition::default()];
    t.unknown_tagged_fields = unknown_tags(true);
    let mut r = AlterPartitionReassignmentsRequest::default();
    r.timeout_ms = 30_000;
    if v >= 1 {
        r.allow_replication_factor_change = false;
    }
    r.topics = vec![t];
    r.unknown_tagged_fields = unknown_tags(true);
    encode(&r, v)
}

fn list_partition_reassignments(v: i16, nulls: bool) -> Bytes {
    use list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    let mut t = ListPartitionReassignmentsTopics::default();
    t.name = topic("orders");
    t.partition_indexes = vec![0, 4];
    t.unknown_tagged_fields = unknown_tags(true);
    let mut r = ListPartitionReassignmentsRequest::default();
    r.timeout_ms = 30_000;
    r.topics = if nulls { None } else { Some(vec![t, ListPartitionReassignmentsTopics::default()]) };
    r.unknown_tagged_fields = unknown_tags(true);
    encode(&r, v)
}

fn describe_acls(v: i16, nulls: bool) -> Bytes {
    let mut r = DescribeAclsRequest::default();
    r.resource_type_filter = 2;
    r.resource_name_filter = opt(nulls, "orders");
    r.pattern_type_filter = 3;
    r.principal_filter = opt(nulls, "User:alice");
    r.host_filter = opt(nulls, "*");
    r.operation = 3;
    r.permission_type = 3;
    r.unknown_tagged_fields = unknown_tags(v >= 2);
    encode(&r, v)
}

fn create_acls(v: i16, _nulls: bool) -> Bytes {
    use create_acls_request::AclCreation;
    let mut c = AclCreation::default();
    c.resource_type = 2;
    c.resource_name = s("orders");
    c.resource_pattern_type = 4;
    c.principal = s("User:alice");
    c.host = s("*");
    c.operation = 4;
    c.permission_type = 3;
    c.unknown_tagged_fields = unknown_tags(v >= 2);
    let mut r = CreateAclsRequest::default();
    r.creations = vec![c, AclCreation::default()];
    r.unknown_tagged_fields = unknown_tags(v >= 2);
    encode(&r, v)
}

fn delete_acls(v: i16, nulls: bool) -> Bytes {
    use delete_acls_request::DeleteAclsFilter;
    let mut f = DeleteAclsFilter::default();
    f.resource_type_filter = 1;
    f.resource_name_filter = opt(nulls, "orders");
    f.pattern_type_filter = 2;
    f.principal_filter = opt(nulls, "User:alice");
    f.host_filter = None;
    f.operation = 1;
    f.permission_type = 1;
    f.unknown_tagged_fields = unknown_tags(v >= 2);
    let mut r = DeleteAclsRequest::default();
    r.filters = vec![f, DeleteAclsFilter::default()];
    r.unknown_tagged_fields = unknown_tags(v >= 2);
    encode(&r, v)
}

fn add_partitions_to_txn(v: i16, _nulls: bool) -> Bytes {
    use add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let mut t = AddPartitionsToTxnTopic::default();
    t.name = topic("orders");
    t.partitions = vec![0, 3];
    t.unknown_tagged_fields = unknown_tags(v >= 3);
    let mut r = AddPartitionsToTxnRequest::default();
    r.v3_and_below_transactional_id = TransactionalId(s("tx"));
    r.v3_and_below_producer_id = ProducerId(42);
    r.v3_and_below_producer_epoch = 3;
    r.v3_and_below_topics = vec![t, AddPartitionsToTxnTopic::default()];
    r.unknown_tagged_fields = unknown_tags(v >= 3);
    encode(&r, v)
}

fn add_offsets_to_txn(v: i16, _nulls: bool) -> Bytes {
    let mut r = AddOffsetsToTxnRequest::default();
    r.transactional_id = TransactionalId(s("tx"));
    r.producer_id = ProducerId(42);
    r.producer_epoch = 3;
    r.group_id = GroupId(s("billing"));
    r.unknown_tagged_fields = unknown_tags(v >= 3);
    encode(&r, v)
}

fn end_txn(v: i16, _nulls: bool) -> Bytes {
    let mut r = EndTxnRequest::default();
    r.transactional_id = TransactionalId(s("tx"));
    r.producer_id = ProducerId(42);
    r.producer_epoch = 3;
    r.committed = true;
    r.unknown_tagged_fields = unknown_tags(v >= 3);
    encode(&r, v)
}

fn txn_offset_commit(v: i16, nulls: bool) -> Bytes {
    use txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
    let mut p = TxnOffsetCommitRequestPartition::default();
    p.partition_index = 1;
    p.committed_offset = 99;
    p.committed_leader_epoch = if v >= 2 { 5 } else { -1 };
    p.committed_metadata = opt(nulls, "meta");
    p.unknown_tagged_fields = unknown_tags(v >= 3);
    let mut t = TxnOffsetCommitRequestTopic::default();
    t.name = topic("orders");
    t.partitions = vec![p.clone(), p];
    t.unknown_tagged_fields = unknown_tags(v >= 3);
    let mut r = TxnOffsetCommitRequest::default();
    r.transactional_id = TransactionalId(s("tx"));
    r.group_id = GroupId(s("billing"));
    r.producer_id = ProducerId(42);
    r.producer_epoch = 3;
    if v >= 3 {
        r.generation_id = 4;
        r.member_id = s("member-1");
        r.group_instance_id = opt(nulls, "instance");
    }
    r.topics = vec![t];
    r.unknown_tagged_fields = unknown_tags(v >= 3);
    encode(&r, v)
}

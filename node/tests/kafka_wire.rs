//! Weir's Kafka listener on the wire, byte for byte: every served API in every advertised
//! version, encoded by `kafka-protocol`'s client side, sent over a plain TCP connection to a
//! real node and its answer decoded in the same version (golden tests); pipelined requests;
//! and a barrage of damaged frames the node must answer or refuse without hanging or dying.

mod common;
#[macro_use]
#[path = "kafka_wire/wire.rs"]
mod wire;
#[path = "kafka_wire/acls.rs"]
mod acls;
#[path = "kafka_wire/fuzz.rs"]
mod fuzz;
#[path = "kafka_wire/groups.rs"]
mod groups;
#[path = "kafka_wire/requests.rs"]
mod requests;
#[path = "kafka_wire/transactions.rs"]
mod transactions;

use common::kafka::KafkaNode;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    AlterPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
use kafka_protocol::messages::list_partition_reassignments_request::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsTopics,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, InitProducerIdRequest, RequestKind,
};
use requests::{self as req, topic};
use std::io::Write;
use wire::{Read1, Wire, batch, decode, frame, read_frame, s, served, values};

/// Every API the golden tests below exercise.
const COVERED: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::InitProducerId,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::DescribeCluster,
    ApiKey::DeleteGroups,
    ApiKey::ElectLeaders,
    ApiKey::DescribeLogDirs,
    ApiKey::AlterReplicaLogDirs,
    ApiKey::DescribeAcls,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
];

#[test]
fn every_served_api_has_a_golden_test() {
    for a in weir_kafka::versions::SERVED {
        assert!(COVERED.contains(&a.key), "{:?} is served but not tested on the wire", a.key);
    }
}

fn kafka_port(node: &KafkaNode) -> i32 {
    node.bootstrap.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// The (api key, min, max) triples of an ApiVersions answer, against Weir's table.
fn assert_lists_served(r: &kafka_protocol::messages::ApiVersionsResponse, what: &str) {
    let got: Vec<(i16, i16, i16)> =
        r.api_keys.iter().map(|a| (a.api_key, a.min_version, a.max_version)).collect();
    let want: Vec<(i16, i16, i16)> =
        weir_kafka::versions::SERVED.iter().map(|a| (a.key as i16, a.min, a.max)).collect();
    assert_eq!(got, want, "{what}");
}

#[test]
fn api_versions_lists_exactly_the_served_table_and_answers_unknown_versions_in_v0() {
    let node = KafkaNode::start(1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    for v in served(ApiKey::ApiVersions) {
        let r = kind!(w.call(ApiKey::ApiVersions, v, req::api_versions(v)), ApiVersions);
        assert_eq!(r.error_code, 0, "v{v}");
        assert_lists_served(&r, &format!("v{v}"));
    }
    // KIP-511: a newer client asks in its own version (header v2, flexible body); the answer is
    // in version 0, with UNSUPPORTED_VERSION and the whole list.
    let mut body = vec![0, 18, 0, 99];
    body.extend_from_slice(&77_i32.to_be_bytes());
    body.extend_from_slice(&[0, 4]);
    body.extend_from_slice(b"test");
    body.extend_from_slice(&[0, 5, b'w', b'e', b'i', b'r', 4, b'9', b'.', b'9', 0, 0]);
    let mut framed = (body.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    w.stream.write_all(&framed).unwrap();
    let Read1::Frame(answer) = read_frame(&mut w.stream) else { panic!("no answer to ApiVersions v99") };
    let (id, resp) = decode(ApiKey::ApiVersions, 0, answer);
    assert_eq!(id, 77);
    let r = kind!(resp, ApiVersions);
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    assert_lists_served(&r, "v99");
    // The connection still serves.
    kind!(w.call(ApiKey::ApiVersions, 3, req::api_versions(3)), ApiVersions);
}

#[test]
fn metadata_in_every_version_lists_the_broker_and_the_topic() {
    let node = KafkaNode::start(2, &[]);
    node.create_topic("golden", 3, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    for v in served(ApiKey::Metadata) {
        let r = kind!(w.call(ApiKey::Metadata, v, req::metadata(v, &["golden"], false)), Metadata);
        assert_eq!(r.brokers.len(), 1, "v{v}: {r:?}");
        let b = &r.brokers[0];
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", kafka_port(&node)), "v{v}");
        assert_eq!(r.topics.len(), 1, "v{v}");
        let t = &r.topics[0];
        assert_eq!(t.error_code, 0, "v{v}");
        assert_eq!(t.name.as_ref().map(|n| n.0.as_str()), Some("golden"), "v{v}");
        let mut parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        parts.sort();
        assert_eq!(parts, [0, 1, 2], "v{v}");
        assert!(t.partitions.iter().all(|p| p.error_code == 0 && p.leader_id == b.node_id), "v{v}: {t:?}");
        if v >= 1 {
            assert_eq!(r.controller_id, b.node_id, "v{v}");
        }
    }
    // From version 4 a client may ask not to create: an unknown topic is answered as such.
    let r = kind!(w.call(ApiKey::Metadata, 12, req::metadata(12, &["absent"], false)), Metadata);
    assert_eq!(r.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION: {r:?}");
}

/// Produces `values` to `name`/0 in `version`; returns the base offset.
fn produce(w: &mut Wire, version: i16, name: &str, vals: &[String]) -> i64 {
    let r = kind!(w.call(ApiKey::Produce, version, req::produce(-1, name, 0, batch(vals))), Produce);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((r.responses[0].name.0.as_str(), p.index, p.error_code), (name, 0, 0), "v{version}: {p:?}");
    p.base_offset
}

#[test]
fn produce_fetch_and_offsets_in_every_version() {
    let node = KafkaNode::start(2, &[]);
    node.create_topic("golden", 1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    let mut sent: Vec<(i64, String)> = Vec::new();
    for v in served(ApiKey::Produce).filter(|v| *v >= 3) {
        let vals: Vec<String> = (0..3).map(|i| format!("produce-v{v}-{i}")).collect();
        let base = produce(&mut w, v, "golden", &vals);
        assert_eq!(base, sent.len() as i64, "v{v}: base offset");
        sent.extend(vals.into_iter().enumerate().map(|(i, x)| (base + i as i64, x)));
    }
    let end = sent.len() as i64;
    for v in served(ApiKey::Fetch) {
        let r = kind!(w.call(ApiKey::Fetch, v, req::fetch(v, "golden", 0, 0, 0)), Fetch);
        let p = &r.responses[0].partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (0, end), "v{v}");
        assert_eq!(values(p.records.clone()), sent, "v{v}");
        // From the middle: the batch holding the offset comes first.
        let r = kind!(w.call(ApiKey::Fetch, v, req::fetch(v, "golden", 0, 4, 0)), Fetch);
        let got = values(r.responses[0].partitions[0].records.clone());
        assert!(got.first().is_some_and(|(o, _)| *o <= 4) && got.last() == sent.last(), "v{v}: {got:?}");
    }
    for v in served(ApiKey::ListOffsets) {
        for (ts, want) in [(-1, end), (-2, 0)] {
            let r = kind!(w.call(ApiKey::ListOffsets, v, req::list_offsets("golden", ts)), ListOffsets);
            let p = &r.topics[0].partitions[0];
            assert_eq!((p.error_code, p.offset), (0, want), "v{v} at {ts}: {p:?}");
        }
    }
    for v in served(ApiKey::OffsetForLeaderEpoch) {
        let p = OffsetForLeaderPartition::default().with_partition(0).with_leader_epoch(0);
        let t = OffsetForLeaderTopic::default().with_topic(topic("golden")).with_partitions(vec![p]);
        let body =
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_topics(vec![t]));
        let r = kind!(w.call(ApiKey::OffsetForLeaderEpoch, v, body), OffsetForLeaderEpoch);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{v}: {p:?}");
        assert!((0..=end).contains(&p.end_offset), "v{v}: {p:?}");
    }
}

/// A Produce frame in `version` 0, 1 or 2, which `kafka-protocol` does not encode: version 3's
/// without its transactional id (the only difference in the schema).
fn old_produce(version: i16) -> Vec<u8> {
    let v3 = frame(ApiKey::Produce, 3, 5, &req::produce(1, "golden", 0, batch(&["old".into()])));
    let header = 4 + 8 + 2 + usize::from(u16::from_be_bytes([v3[12], v3[13]]));
    assert_eq!(v3[header..header + 2], [0xff, 0xff], "a null transactional id");
    let mut body = v3[4..header].to_vec();
    body[2..4].copy_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&v3[header + 2..]);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

#[test]
fn produce_below_version_3_closes_the_connection_and_the_node_keeps_serving() {
    let node = KafkaNode::start(1, &[]);
    node.create_topic("golden", 1, &[]);
    for v in 0..3 {
        let mut w = Wire::connect(&node.bootstrap);
        w.stream.write_all(&old_produce(v)).unwrap();
        assert!(matches!(read_frame(&mut w.stream), Read1::Closed), "Produce v{v} is refused");
        let mut w = Wire::connect(&node.bootstrap);
        let r = kind!(w.call(ApiKey::Metadata, 1, req::metadata(1, &["golden"], true)), Metadata);
        assert_eq!(r.topics[0].error_code, 0);
    }
    // Nothing was written.
    let mut w = Wire::connect(&node.bootstrap);
    let r = kind!(w.call(ApiKey::ListOffsets, 1, req::list_offsets("golden", -1)), ListOffsets);
    assert_eq!(r.topics[0].partitions[0].offset, 0);
}

/// A DeleteRecords of `topic`'s partitions, each below its offset.
fn delete_below(topic: &str, offsets: &[(i32, i64)]) -> RequestKind {
    let partitions = offsets
        .iter()
        .map(|&(p, o)| DeleteRecordsPartition::default().with_partition_index(p).with_offset(o))
        .collect();
    let t = DeleteRecordsTopic::default().with_name(req::topic(topic)).with_partitions(partitions);
    RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![t]).with_timeout_ms(5000))
}

#[test]
fn delete_records_in_every_version_moves_the_log_start_for_good() {
    let node = KafkaNode::start(2, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    // (partition index, low watermark or error code)
    let call = |w: &mut Wire, v: i16, topic: &str, offsets: &[(i32, i64)]| -> Vec<(i32, i64, i16)> {
        let r = kind!(w.call(ApiKey::DeleteRecords, v, delete_below(topic, offsets)), DeleteRecords);
        r.topics[0].partitions.iter().map(|p| (p.partition_index, p.low_watermark, p.error_code)).collect()
    };
    for v in served(ApiKey::DeleteRecords) {
        let name = format!("deleted-{v}");
        node.create_topic(&name, 2, &[]);
        let vals: Vec<String> = (0..10).map(|i| format!("v{v}-{i}")).collect();
        for p in 0..2 {
            let r = kind!(w.call(ApiKey::Produce, 9, req::produce(-1, &name, p, batch(&vals))), Produce);
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        }
        let got = call(&mut w, v, &name, &[(0, 4), (1, -1)]);
        assert_eq!(got, vec![(0, 4, 0), (1, 10, 0)], "v{v}: below 4, and below the high watermark");
        // A lower offset moves nothing; one past the high watermark, a negative one, an unknown
        // partition and the groups' own topic are refused.
        assert_eq!(call(&mut w, v, &name, &[(0, 2)]), vec![(0, 4, 0)], "v{v}");
        assert_eq!(call(&mut w, v, &name, &[(0, 11), (0, -5)]), vec![(0, -1, 1), (0, -1, 1)], "v{v}");
        assert_eq!(call(&mut w, v, &name, &[(7, 1)]), vec![(7, -1, 3)], "v{v}");
        assert_eq!(call(&mut w, v, "__consumer_offsets", &[(0, 0)])[0].2, 17, "v{v}");
        // Reads start at the new log start: earliest is 4, a fetch below it is out of range.
        let r = kind!(w.call(ApiKey::ListOffsets, 7, req::list_offsets(&name, -2)), ListOffsets);
        assert_eq!(r.topics[0].partitions[0].offset, 4, "v{v}");
        let r = kind!(w.call(ApiKey::Fetch, 12, req::fetch(12, &name, 0, 3, 0)), Fetch);
        assert_eq!(r.responses[0].partitions[0].error_code, 1, "v{v}: OFFSET_OUT_OF_RANGE");
        let r = kind!(w.call(ApiKey::Fetch, 12, req::fetch(12, &name, 0, 4, 0)), Fetch);
        let p = &r.responses[0].partitions[0];
        assert_eq!((p.error_code, p.log_start_offset), (0, 4), "v{v}");
    }
    // The log start outlives a restart.
    let KafkaNode { node: n, bootstrap, _dir } = node;
    let (dir, port) = n.kill();
    let _node = common::Node::start_with(&dir, 2, port, &[("WEIR_KAFKA_LISTEN", bootstrap.as_str())]);
    let mut w = Wire::connect(&bootstrap);
    let r = kind!(w.call(ApiKey::ListOffsets, 7, req::list_offsets("deleted-2", -2)), ListOffsets);
    assert_eq!(r.topics[0].partitions[0].offset, 4);
}

/// Weir moves no replica yet: a reassignment to where a partition is is done, any other is
/// refused, a cancellation finds none in progress, and the list of those in progress is empty.
#[test]
fn partition_reassignments_in_every_version() {
    let node = KafkaNode::start(1, &[]);
    node.create_topic("placed", 2, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    let alter = |partition: i32, replicas: Option<Vec<i32>>| {
        let p = ReassignablePartition::default()
            .with_partition_index(partition)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()));
        ReassignableTopic::default().with_name(req::topic("placed")).with_partitions(vec![p])
    };
    for v in served(ApiKey::AlterPartitionReassignments) {
        let topics = vec![
            alter(0, Some(vec![0])),
            alter(1, Some(vec![0, 1])),
            alter(1, None),
            alter(5, Some(vec![0])),
        ];
        let body = AlterPartitionReassignmentsRequest::default().with_timeout_ms(5000).with_topics(topics);
        let r = kind!(
            w.call(ApiKey::AlterPartitionReassignments, v, RequestKind::AlterPartitionReassignments(body)),
            AlterPartitionReassignments
        );
        assert_eq!(r.error_code, 0, "v{v}");
        let codes: Vec<i16> = r.responses.iter().map(|t| t.partitions[0].error_code).collect();
        // Done; INVALID_REPLICA_ASSIGNMENT; NO_REASSIGNMENT_IN_PROGRESS; UNKNOWN_TOPIC_OR_PARTITION.
        assert_eq!(codes, vec![0, 39, 85, 3], "v{v}: {r:?}");
    }
    for v in served(ApiKey::ListPartitionReassignments) {
        for topics in [
            None,
            Some(vec![
                ListPartitionReassignmentsTopics::default()
                    .with_name(req::topic("placed"))
                    .with_partition_indexes(vec![0, 1]),
            ]),
        ] {
            let body = ListPartitionReassignmentsRequest::default().with_timeout_ms(5000).with_topics(topics);
            let r = kind!(
                w.call(ApiKey::ListPartitionReassignments, v, RequestKind::ListPartitionReassignments(body)),
                ListPartitionReassignments
            );
            assert_eq!((r.error_code, r.topics.len()), (0, 0), "v{v}");
        }
    }
}

/// A CreatePartitions of `topic` to `count`, with `assignments` if given.
fn grow(topic: &str, count: i32, assignments: Option<Vec<Vec<i32>>>, validate_only: bool) -> RequestKind {
    let assignments = assignments.map(|a| {
        a.into_iter()
            .map(|ids| {
                CreatePartitionsAssignment::default().with_broker_ids(ids.into_iter().map(BrokerId).collect())
            })
            .collect()
    });
    let t = CreatePartitionsTopic::default()
        .with_name(req::topic(topic))
        .with_count(count)
        .with_assignments(assignments);
    let body = CreatePartitionsRequest::default()
        .with_topics(vec![t])
        .with_timeout_ms(5000)
        .with_validate_only(validate_only);
    RequestKind::CreatePartitions(body)
}

#[test]
fn create_partitions_in_every_version_grows_a_topic_that_then_serves_them() {
    let node = KafkaNode::start(2, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    let code = |w: &mut Wire, v: i16, body: RequestKind| {
        let r = kind!(w.call(ApiKey::CreatePartitions, v, body), CreatePartitions);
        assert_eq!(r.results.len(), 1, "v{v}");
        r.results[0].error_code
    };
    for v in served(ApiKey::CreatePartitions) {
        let name = format!("grown-{v}");
        node.create_topic(&name, 1, &[]);
        assert_eq!(code(&mut w, v, grow(&name, 3, None, true)), 0, "v{v}: validate only");
        assert_eq!(code(&mut w, v, grow(&name, 2, None, false)), 0, "v{v}");
        assert_eq!(code(&mut w, v, grow(&name, 3, Some(vec![vec![0]]), false)), 0, "v{v}: assigned here");
        assert_eq!(code(&mut w, v, grow(&name, 3, None, false)), 37, "v{v}: INVALID_PARTITIONS, not more");
        assert_eq!(code(&mut w, v, grow(&name, 5, Some(vec![vec![7], vec![0]]), false)), 39, "v{v}");
        assert_eq!(code(&mut w, v, grow(&name, 5, Some(vec![vec![0]]), false)), 39, "v{v}: one of two");
        assert_eq!(code(&mut w, v, grow("no-such-topic", 5, None, false)), 3, "v{v}");
        assert_eq!(code(&mut w, v, grow("__consumer_offsets", 500, None, false)), 17, "v{v}: internal");
        let r = kind!(w.call(ApiKey::Metadata, 12, req::metadata(12, &[&name], false)), Metadata);
        assert_eq!(r.topics[0].partitions.len(), 3, "v{v}: validate_only changed nothing, the rest did");
        // The new partitions take records.
        let vals = vec![format!("in the new partition of v{v}")];
        let r = kind!(w.call(ApiKey::Produce, 9, req::produce(-1, &name, 2, batch(&vals))), Produce);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "v{v}");
        let r = kind!(w.call(ApiKey::Fetch, 12, req::fetch(12, &name, 2, 0, 0)), Fetch);
        assert_eq!(values(r.responses[0].partitions[0].records.clone()), vec![(0, vals[0].clone())]);
    }
    // Twice in one request: both refused.
    let t = CreatePartitionsTopic::default().with_name(req::topic("grown-0")).with_count(9);
    let body = CreatePartitionsRequest::default().with_topics(vec![t.clone(), t]).with_timeout_ms(5000);
    let r = kind!(w.call(ApiKey::CreatePartitions, 3, RequestKind::CreatePartitions(body)), CreatePartitions);
    assert!(r.results.iter().all(|t| t.error_code == 42), "{r:?}");
    // Grown partitions outlive a restart.
    let KafkaNode { node: n, bootstrap, _dir } = node;
    let (dir, port) = n.stop();
    let _node = common::Node::start_with(&dir, 2, port, &[("WEIR_KAFKA_LISTEN", bootstrap.as_str())]);
    let mut w = Wire::connect(&bootstrap);
    let r = kind!(w.call(ApiKey::Metadata, 12, req::metadata(12, &["grown-3"], false)), Metadata);
    assert_eq!(r.topics[0].partitions.len(), 3);
    let r = kind!(w.call(ApiKey::Fetch, 12, req::fetch(12, "grown-3", 2, 0, 0)), Fetch);
    assert_eq!(values(r.responses[0].partitions[0].records.clone()).len(), 1);
}

#[test]
fn topics_producer_ids_configs_and_the_cluster_in_every_version() {
    let node = KafkaNode::start(2, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    for v in served(ApiKey::CreateTopics) {
        let name = format!("created-{v}");
        let r = kind!(w.call(ApiKey::CreateTopics, v, req::create_topics(&name, 2, false)), CreateTopics);
        let t = &r.topics[0];
        assert_eq!((t.name.0.as_str(), t.error_code), (name.as_str(), 0), "v{v}: {t:?}");
        let r = kind!(w.call(ApiKey::CreateTopics, v, req::create_topics(&name, 2, false)), CreateTopics);
        assert_eq!(r.topics[0].error_code, 36, "v{v}: TOPIC_ALREADY_EXISTS");
    }
    let r = kind!(w.call(ApiKey::Metadata, 12, req::metadata(12, &["created-7"], false)), Metadata);
    assert_eq!((r.topics[0].error_code, r.topics[0].partitions.len()), (0, 2));
    for v in served(ApiKey::DescribeConfigs) {
        let res = DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("created-2"))
            .with_configuration_keys(None);
        let body = RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![res]));
        let r = kind!(w.call(ApiKey::DescribeConfigs, v, body), DescribeConfigs);
        let res = &r.results[0];
        assert_eq!((res.error_code, res.resource_name.as_str()), (0, "created-2"), "v{v}");
        let policy = res.configs.iter().find(|c| c.name.as_str() == "cleanup.policy");
        assert_eq!(
            policy.and_then(|c| c.value.as_ref()).map(|x| x.as_str()),
            Some("delete"),
            "v{v}: {res:?}"
        );
    }
    delete_created_topics(&mut w);
    let mut ids = Vec::new();
    for v in served(ApiKey::InitProducerId) {
        let body =
            InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000);
        let r = kind!(w.call(ApiKey::InitProducerId, v, RequestKind::InitProducerId(body)), InitProducerId);
        assert_eq!((r.error_code, r.producer_epoch), (0, 0), "v{v}");
        assert!(r.producer_id.0 >= 0 && !ids.contains(&r.producer_id.0), "v{v}: {r:?}");
        ids.push(r.producer_id.0);
    }
    for v in served(ApiKey::DescribeCluster) {
        let body = RequestKind::DescribeCluster(DescribeClusterRequest::default());
        let r = kind!(w.call(ApiKey::DescribeCluster, v, body), DescribeCluster);
        assert_eq!(r.error_code, 0, "v{v}");
        assert!(!r.cluster_id.is_empty(), "v{v}");
        assert_eq!(r.brokers.len(), 1, "v{v}");
        assert_eq!((r.brokers[0].host.as_str(), r.brokers[0].port), ("127.0.0.1", kafka_port(&node)));
        assert_eq!(r.controller_id, r.brokers[0].broker_id);
    }
}

/// Deletes the topics `created-{v}` in each DeleteTopics version, one a version; they are gone.
fn delete_created_topics(w: &mut Wire) {
    let created: Vec<i16> = served(ApiKey::CreateTopics).collect();
    for (i, v) in served(ApiKey::DeleteTopics).enumerate() {
        let name = format!("created-{}", created[i.min(created.len() - 1)]);
        let mut body = DeleteTopicsRequest::default().with_timeout_ms(10_000);
        body = if v >= 6 {
            body.with_topics(vec![DeleteTopicState::default().with_name(Some(topic(&name)))])
        } else {
            body.with_topic_names(vec![topic(&name)])
        };
        let r = kind!(w.call(ApiKey::DeleteTopics, v, RequestKind::DeleteTopics(body)), DeleteTopics);
        let t = &r.responses[0];
        assert_eq!(
            (t.name.as_ref().map(|n| n.0.as_str()), t.error_code),
            (Some(name.as_str()), 0),
            "v{v}: {t:?}"
        );
        let r = kind!(w.call(ApiKey::Metadata, 12, req::metadata(12, &[&name], false)), Metadata);
        assert_eq!(r.topics[0].error_code, 3, "v{v}: {name} is gone");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_and_acks_0_is_silent() {
    let node = KafkaNode::start(2, &[]);
    node.create_topic("empty", 1, &[]);
    node.create_topic("silent", 1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    let a = w.send(ApiKey::ApiVersions, 2, &req::api_versions(2));
    // A long poll on an empty partition: the Metadata behind it waits for its answer.
    let b = w.send(ApiKey::Fetch, 12, &req::fetch(12, "empty", 0, 0, 500));
    let c = w.send(ApiKey::Metadata, 9, &req::metadata(9, &["empty"], false));
    let silent = w.send(ApiKey::Produce, 9, &req::produce(0, "silent", 0, batch(&["quiet".into()])));
    let d = w.send(ApiKey::ListOffsets, 5, &req::list_offsets("empty", -1));
    let e = w.send(ApiKey::Fetch, 12, &req::fetch(12, "silent", 0, 0, 5000));
    assert_eq!(kind!(w.recv(ApiKey::ApiVersions, 2, a), ApiVersions).error_code, 0);
    let f = kind!(w.recv(ApiKey::Fetch, 12, b), Fetch);
    assert!(values(f.responses[0].partitions[0].records.clone()).is_empty());
    assert_eq!(kind!(w.recv(ApiKey::Metadata, 9, c), Metadata).topics[0].error_code, 0);
    // The acks=0 produce is not answered: the ListOffsets' answer comes next.
    let r = kind!(w.recv(ApiKey::ListOffsets, 5, d), ListOffsets);
    assert_eq!(r.topics[0].partitions[0].offset, 0);
    // Yet it was written: the long poll behind it finds the record.
    let f = kind!(w.recv(ApiKey::Fetch, 12, e), Fetch);
    assert_eq!(values(f.responses[0].partitions[0].records.clone()), [(0, "quiet".to_owned())]);
    assert_ne!(silent, e);
}

#[test]
fn damaged_frames_are_answered_or_refused_and_the_node_survives() {
    fuzz::barrage();
}

#[test]
fn consumer_group_apis_in_every_version() {
    groups::every_version();
}

/// The settings a DescribeConfigs of `created` answers when asked with `keys`.
fn described(w: &mut Wire, keys: Option<Vec<&str>>) -> Vec<String> {
    let res = DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("created"))
        .with_configuration_keys(keys.map(|k| k.into_iter().map(s).collect()));
    let body = RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![res]));
    let r = kind!(w.call(ApiKey::DescribeConfigs, 4, body), DescribeConfigs);
    assert_eq!(r.results[0].error_code, 0);
    r.results[0].configs.iter().map(|c| c.name.to_string()).collect()
}

#[test]
fn describe_configs_with_an_empty_key_list_describes_every_setting() {
    let node = KafkaNode::start(1, &[]);
    node.create_topic("created", 1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    let all = described(&mut w, None);
    assert!(all.iter().any(|n| n == "cleanup.policy") && all.len() > 1, "{all:?}");
    // As Kafka's brokers do, an empty list asks for everything, as a null one does.
    assert_eq!(described(&mut w, Some(vec![])), all);
    assert_eq!(described(&mut w, Some(vec!["cleanup.policy"])), ["cleanup.policy"]);
}

#[test]
fn a_negative_partition_is_unknown_not_partition_zero() {
    let node = KafkaNode::start(1, &[]);
    node.create_topic("one", 1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    produce(&mut w, 9, "one", &["in partition 0".to_owned()]);
    let unknown = 3;
    let r = kind!(w.call(ApiKey::Fetch, 12, req::fetch(12, "one", -1, 0, 0)), Fetch);
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.partition_index, p.error_code), (-1, unknown), "Fetch: {p:?}");
    assert!(values(p.records.clone()).is_empty(), "Fetch: partition 0's records");
    let mut body = req::list_offsets("one", -1);
    if let RequestKind::ListOffsets(l) = &mut body {
        l.topics[0].partitions[0].partition_index = -1;
    }
    let r = kind!(w.call(ApiKey::ListOffsets, 7, body), ListOffsets);
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.partition_index, p.error_code, p.offset), (-1, unknown, -1), "ListOffsets: {p:?}");
    let part = OffsetForLeaderPartition::default().with_partition(-1).with_leader_epoch(0);
    let t = OffsetForLeaderTopic::default().with_topic(topic("one")).with_partitions(vec![part]);
    let body = RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_topics(vec![t]));
    let r = kind!(w.call(ApiKey::OffsetForLeaderEpoch, 4, body), OffsetForLeaderEpoch);
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.partition, p.error_code, p.end_offset), (-1, unknown, -1), "OffsetForLeaderEpoch: {p:?}");
}

#[test]
fn groups_deleted_leaders_elected_and_log_dirs_in_every_version() {
    use kafka_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::{
        AlterReplicaLogDirsRequest, DeleteGroupsRequest, DescribeLogDirsRequest, ElectLeadersRequest, GroupId,
    };
    let node = KafkaNode::start(2, &[]);
    node.create_topic("dirs", 2, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    for v in served(ApiKey::DeleteGroups) {
        // No group by that name: GROUP_ID_NOT_FOUND (the offsets topic is made on first use).
        let body = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&format!("none-{v}")))]);
        let r = kind!(w.call(ApiKey::DeleteGroups, v, RequestKind::DeleteGroups(body)), DeleteGroups);
        assert!(matches!(r.results[0].error_code, 69 | 16), "v{v}: {r:?}");
    }
    for v in served(ApiKey::ElectLeaders) {
        let tp = TopicPartitions::default().with_topic(topic("dirs")).with_partitions(vec![0, 1, 7]);
        let body = ElectLeadersRequest::default().with_election_type(0).with_topic_partitions(Some(vec![tp]));
        let r = kind!(w.call(ApiKey::ElectLeaders, v, RequestKind::ElectLeaders(body)), ElectLeaders);
        let codes: Vec<(i32, i16)> = r.replica_election_results[0]
            .partition_result
            .iter()
            .map(|p| (p.partition_id, p.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![(0, 84), (1, 84), (7, 3)],
            "v{v}: ELECTION_NOT_NEEDED, UNKNOWN_TOPIC_OR_PARTITION"
        );
    }
    let mut dir = String::new();
    for v in served(ApiKey::DescribeLogDirs) {
        let t = DescribableLogDirTopic::default().with_topic(topic("dirs")).with_partitions(vec![0, 1]);
        let body = DescribeLogDirsRequest::default().with_topics(Some(vec![t]));
        let r =
            kind!(w.call(ApiKey::DescribeLogDirs, v, RequestKind::DescribeLogDirs(body)), DescribeLogDirs);
        assert_eq!(r.results.len(), 1, "v{v}: one log dir");
        let d = &r.results[0];
        assert_eq!(d.error_code, 0, "v{v}");
        assert_eq!(d.topics[0].partitions.len(), 2, "v{v}: {d:?}");
        dir = d.log_dir.to_string();
    }
    for v in served(ApiKey::AlterReplicaLogDirs) {
        let moves = [(dir.as_str(), 0), ("/elsewhere", 57)];
        for (path, code) in moves {
            let t = AlterReplicaLogDirTopic::default().with_name(topic("dirs")).with_partitions(vec![0]);
            let d = AlterReplicaLogDir::default().with_path(s(path)).with_topics(vec![t]);
            let body = AlterReplicaLogDirsRequest::default().with_dirs(vec![d]);
            let r = kind!(
                w.call(ApiKey::AlterReplicaLogDirs, v, RequestKind::AlterReplicaLogDirs(body)),
                AlterReplicaLogDirs
            );
            assert_eq!(r.results[0].partitions[0].error_code, code, "v{v} {path}");
        }
    }
}

#[test]
fn clients_cannot_write_the_groups_log_and_a_failed_acks_0_produce_closes() {
    let node = KafkaNode::start(1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    // Make the offsets topic exist (FindCoordinator creates it), then try to write it.
    let find = kafka_protocol::messages::FindCoordinatorRequest::default().with_key(s("g")).with_key_type(0);
    let r = kind!(w.call(ApiKey::FindCoordinator, 3, RequestKind::FindCoordinator(find)), FindCoordinator);
    assert_eq!(r.error_code, 0, "{r:?}");
    let body = req::produce(-1, "__consumer_offsets", 0, batch(&["x".to_owned()]));
    let r = kind!(w.call(ApiKey::Produce, 9, body), Produce);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 17, "INVALID_TOPIC_EXCEPTION: {r:?}");
    // The same with acks=0: not answered, so the connection closes (the client learns again).
    let body = req::produce(0, "__consumer_offsets", 0, batch(&["x".to_owned()]));
    w.send(ApiKey::Produce, 9, &body);
    assert!(matches!(read_frame(&mut w.stream), Read1::Closed), "an acks=0 produce that failed closes");
    // Nothing was written: the groups' log holds no client record.
    let mut w = Wire::connect(&node.bootstrap);
    let r = kind!(w.call(ApiKey::Fetch, 12, req::fetch(12, "__consumer_offsets", 0, 0, 0)), Fetch);
    assert!(values(r.responses[0].partitions[0].records.clone()).is_empty(), "{r:?}");
}

#[test]
fn a_fetch_naming_a_partition_many_times_reads_within_its_max_bytes() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let node = KafkaNode::start(1, &[]);
    node.create_topic("big", 1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    let value = "v".repeat(100_000);
    for _ in 0..20 {
        produce(&mut w, 9, "big", &vec![value.clone(); 10]);
    }
    // 2 MB in the partition; 200 copies of it asked, 8 MiB each, 1 MiB in all.
    let p =
        FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(8 << 20);
    let t = FetchTopic::default().with_topic(topic("big")).with_partitions(vec![p; 200]);
    let body = kafka_protocol::messages::FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![t])
        .with_session_epoch(-1);
    let r = kind!(w.call(ApiKey::Fetch, 12, RequestKind::Fetch(body)), Fetch);
    let parts = &r.responses[0].partitions;
    assert_eq!(parts.len(), 200);
    let total: usize = parts.iter().map(|p| p.records.as_ref().map_or(0, |b| b.len())).sum();
    // The budget and at most one batch (1 MB) past it.
    assert!(total <= (1 << 20) + 1_100_000, "{total} bytes answered");
    assert!(parts.iter().all(|p| p.error_code == 0 && p.high_watermark == 200), "bounds for all");
}

#[test]
fn metadata_with_an_empty_topic_list_names_the_brokers_only() {
    let node = KafkaNode::start(1, &[]);
    node.create_topic("exists", 1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    for v in 1..=12 {
        let r = kind!(w.call(ApiKey::Metadata, v, req::metadata(v, &[], false)), Metadata);
        assert!(r.topics.is_empty(), "v{v}: {r:?}");
        assert_eq!(r.brokers.len(), 1, "v{v}");
    }
    let r = kind!(w.call(ApiKey::Metadata, 0, req::metadata(0, &[], false)), Metadata);
    assert_eq!(r.topics.len(), 1, "v0: an empty list is every topic");
}

#[test]
fn a_large_request_other_than_a_produce_closes_the_connection() {
    let node = KafkaNode::start(1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    // 70,000 topic names of 16 bytes: over 1 MiB, each name well formed.
    let names: Vec<String> = (0..70_000).map(|i| format!("t-{i:013}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    w.send(ApiKey::Metadata, 12, &req::metadata(12, &refs, false));
    assert!(matches!(read_frame(&mut w.stream), Read1::Closed));
    // A smaller one is answered, and the node serves on.
    let mut w = Wire::connect(&node.bootstrap);
    let r = kind!(w.call(ApiKey::Metadata, 12, req::metadata(12, &refs[..1000], false)), Metadata);
    assert_eq!(r.topics.len(), 1000);
}

#[test]
fn acls_are_created_listed_kept_across_a_restart_and_deleted_in_every_version() {
    let KafkaNode { node, bootstrap, _dir } = KafkaNode::start(2, &[]);
    let mut w = Wire::connect(&bootstrap);
    assert!(acls::describe(&mut w, 3).is_empty());
    for v in served(ApiKey::CreateAcls) {
        let bad = acls::creation("t", "no-type").with_operation(acls::ANY);
        let codes = acls::create(&mut w, v, vec![acls::creation(&format!("t{v}"), "User:a"), bad]);
        assert_eq!(codes, [0, 42], "v{v}: the valid one is created, the other is INVALID_REQUEST");
        // Creating a binding again is no error and adds nothing.
        assert_eq!(acls::create(&mut w, v, vec![acls::creation(&format!("t{v}"), "User:a")]), [0]);
    }
    assert_eq!(acls::create(&mut w, 3, vec![acls::creation("t1", "User:b")]), [0]);
    let made: Vec<(String, String)> =
        [("t1", "User:a"), ("t2", "User:a"), ("t3", "User:a"), ("t1", "User:b")]
            .iter()
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect();
    // Kafka lists bindings by resource: both of t1's come together.
    let by_resource = acls::describe_by_resource(&mut w, 3);
    assert_eq!(by_resource.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 1], "{by_resource:?}");
    let listed = |w: &mut Wire, v| {
        let mut all = acls::describe(w, v);
        all.sort();
        all
    };
    let mut sorted = made.clone();
    sorted.sort();
    for v in served(ApiKey::DescribeAcls) {
        assert_eq!(listed(&mut w, v), sorted, "v{v}");
    }
    // A restart keeps them: they are on disk before they are acknowledged.
    drop(w);
    let (dir, port) = node.stop();
    let listen = bootstrap.clone();
    let env = [("WEIR_KAFKA_LISTEN", listen.as_str())];
    let _node = common::Node::start_with(&dir, 2, port, &env);
    let mut w = Wire::connect(&bootstrap);
    assert_eq!(listed(&mut w, 3), sorted);
    let (code, gone) = acls::delete(&mut w, 1, "t1", Some("User:b"));
    assert_eq!((code, gone), (0, vec![("t1".to_owned(), "User:b".to_owned())]));
    let (code, gone) = acls::delete(&mut w, 2, "t1", None);
    assert_eq!((code, gone.len()), (0, 1), "only User:a's is left on t1");
    let (code, gone) = acls::delete(&mut w, 3, "t1", None);
    assert_eq!((code, gone.len()), (0, 0), "nothing left to delete");
    // An invalid filter is refused on its own; the others are served.
    let bad = acls::filter("t2", None).with_resource_type_filter(0);
    let answers = acls::delete_with(&mut w, 3, vec![bad.clone(), acls::filter("none", None)]);
    assert_eq!(answers, [(42, vec![]), (0, vec![])]);
    // Too many filters in one request: every one is refused, nothing deleted.
    let many = vec![acls::filter("t2", None); 17];
    assert!(acls::delete_with(&mut w, 3, many).iter().all(|(code, gone)| *code == 42 && gone.is_empty()));
    assert_eq!(listed(&mut w, 2), sorted[2..], "t2 and t3 remain");
}

#[test]
fn transactions_in_every_version_commit_or_drop_their_offsets() {
    use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestGroup};
    let node = KafkaNode::start(2, &[]);
    node.create_topic("txn-golden", 1, &[]);
    node.create_topic("txn-lso", 1, &[]);
    let mut w = Wire::connect(&node.bootstrap);
    transactions::find_txn_coordinator(&mut w, "golden", kafka_port(&node));
    transactions::read_committed_waits_for_the_end(&mut w, "txn-lso");
    transactions::an_invalid_group_is_refused_when_added(&mut w);
    transactions::a_compacted_topic_takes_no_transaction(&mut w, &node, "txn-compacted");
    for v in served(ApiKey::EndTxn) {
        let commit = v % 2 == 0;
        let group = format!("txg-{v}");
        transactions::one_transaction(&mut w, v, &format!("golden-{v}"), "txn-golden", &group, 10, commit);
        let g = OffsetFetchRequestGroup::default()
            .with_group_id(kafka_protocol::messages::GroupId(wire::s(&group)))
            .with_topics(None);
        let body = RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![g]));
        let r = kind!(w.call(ApiKey::OffsetFetch, 8, body), OffsetFetch);
        let found: Vec<(i64, i32)> = r.groups[0]
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (p.committed_offset, p.committed_leader_epoch)))
            .collect();
        let epoch = if v >= 2 { 4 } else { -1 };
        let want = if commit { vec![(10, epoch)] } else { vec![] };
        assert_eq!(found, want, "v{v}: committed offsets are the group's, aborted ones gone");
    }
}

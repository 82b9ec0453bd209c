//! kafka-protocol's request decoder, dispatched by API key, for running it on frames the guard
//! passed.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

fn run<T: Decodable>(mut body: Bytes, version: i16) -> Result<(), String> {
    T::decode(&mut body, version).map(|_| ()).map_err(|e| e.to_string())
}

/// Decodes `body` as the request `api_key` at `version`; an error is a refusal, not a defect.
pub fn decode(api_key: i16, version: i16, body: Bytes) -> Result<(), String> {
    match api_key {
        18 => run::<ApiVersionsRequest>(body, version),
        3 => run::<MetadataRequest>(body, version),
        0 => run::<ProduceRequest>(body, version),
        1 => run::<FetchRequest>(body, version),
        2 => run::<ListOffsetsRequest>(body, version),
        10 => run::<FindCoordinatorRequest>(body, version),
        11 => run::<JoinGroupRequest>(body, version),
        14 => run::<SyncGroupRequest>(body, version),
        12 => run::<HeartbeatRequest>(body, version),
        13 => run::<LeaveGroupRequest>(body, version),
        8 => run::<OffsetCommitRequest>(body, version),
        9 => run::<OffsetFetchRequest>(body, version),
        16 => run::<ListGroupsRequest>(body, version),
        15 => run::<DescribeGroupsRequest>(body, version),
        19 => run::<CreateTopicsRequest>(body, version),
        20 => run::<DeleteTopicsRequest>(body, version),
        22 => run::<InitProducerIdRequest>(body, version),
        23 => run::<OffsetForLeaderEpochRequest>(body, version),
        32 => run::<DescribeConfigsRequest>(body, version),
        34 => run::<AlterReplicaLogDirsRequest>(body, version),
        35 => run::<DescribeLogDirsRequest>(body, version),
        42 => run::<DeleteGroupsRequest>(body, version),
        43 => run::<ElectLeadersRequest>(body, version),
        60 => run::<DescribeClusterRequest>(body, version),
        21 => run::<DeleteRecordsRequest>(body, version),
        37 => run::<CreatePartitionsRequest>(body, version),
        45 => run::<AlterPartitionReassignmentsRequest>(body, version),
        46 => run::<ListPartitionReassignmentsRequest>(body, version),
        29 => run::<DescribeAclsRequest>(body, version),
        30 => run::<CreateAclsRequest>(body, version),
        31 => run::<DeleteAclsRequest>(body, version),
        24 => run::<AddPartitionsToTxnRequest>(body, version),
        25 => run::<AddOffsetsToTxnRequest>(body, version),
        26 => run::<EndTxnRequest>(body, version),
        28 => run::<TxnOffsetCommitRequest>(body, version),
        other => panic!("no decoder wired for API key {other}"),
    }
}

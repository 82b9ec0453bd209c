//! The consumer group APIs on the wire: for each `i` in `0..10`, a group of its own walks
//! FindCoordinator, JoinGroup (twice from version 4: MEMBER_ID_REQUIRED first), SyncGroup,
//! Heartbeat, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups and LeaveGroup, each API in
//! version `min + i` (capped at its highest), so every served version of each is exercised.

use super::common::kafka::KafkaNode;
use super::requests as req;
use super::wire::{Wire, nth, s, served};
use bytes::Bytes;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{ApiKey, GroupId, RequestKind};

const ASSIGNMENT: &[u8] = b"\0\x01\0\0\0\x01\0\x06golden\0\0\0\x01\0\0\0\0\0\0\0\0";

pub fn every_version() {
    let node = KafkaNode::start(2, &[]);
    node.create_topic("golden", 1, &[]);
    let port: i32 = node.bootstrap.rsplit_once(':').unwrap().1.parse().unwrap();
    let apis = [
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::DescribeGroups,
        ApiKey::ListGroups,
        ApiKey::LeaveGroup,
    ];
    let rounds = apis.iter().map(|k| served(*k).len() as i16).max().unwrap();
    let mut w = Wire::connect(&node.bootstrap);
    for i in 0..rounds {
        let group = format!("group-{i}");
        find_coordinator(&mut w, nth(ApiKey::FindCoordinator, i), &group, port);
        let (generation, member) = join(&mut w, nth(ApiKey::JoinGroup, i), &group);
        sync(&mut w, nth(ApiKey::SyncGroup, i), &group, generation, &member);
        let v = nth(ApiKey::Heartbeat, i);
        let body = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(generation)
            .with_member_id(s(&member));
        let r = kind!(w.call(ApiKey::Heartbeat, v, RequestKind::Heartbeat(body)), Heartbeat);
        assert_eq!(r.error_code, 0, "Heartbeat v{v}");
        let v = nth(ApiKey::OffsetCommit, i);
        let offset = 10 + i64::from(i);
        let r = kind!(
            w.call(ApiKey::OffsetCommit, v, req::commit(v, &group, generation, &member, "golden", offset)),
            OffsetCommit
        );
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetCommit v{v}: {r:?}");
        let epoch = if v >= 6 { req::COMMITTED_EPOCH } else { -1 };
        offset_fetch(&mut w, nth(ApiKey::OffsetFetch, i), &group, offset, epoch);
        describe(&mut w, nth(ApiKey::DescribeGroups, i), &group, &member);
        let v = nth(ApiKey::ListGroups, i);
        let r = kind!(
            w.call(ApiKey::ListGroups, v, RequestKind::ListGroups(ListGroupsRequest::default())),
            ListGroups
        );
        assert_eq!(r.error_code, 0, "ListGroups v{v}");
        assert!(r.groups.iter().any(|g| g.group_id.0.as_str() == group), "ListGroups v{v}: {r:?}");
        leave(&mut w, nth(ApiKey::LeaveGroup, i), &group, &member);
        // Left: the group is empty, its offsets kept.
        let body = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]);
        let r = kind!(w.call(ApiKey::DescribeGroups, 5, RequestKind::DescribeGroups(body)), DescribeGroups);
        assert_eq!((r.groups[0].group_state.as_str(), r.groups[0].members.len()), ("Empty", 0), "{group}");
        offset_fetch(&mut w, 8, &group, offset, epoch);
    }
}

fn find_coordinator(w: &mut Wire, v: i16, group: &str, port: i32) {
    let mut body = FindCoordinatorRequest::default();
    body = if v >= 4 { body.with_coordinator_keys(vec![s(group)]) } else { body.with_key(s(group)) };
    let r = kind!(w.call(ApiKey::FindCoordinator, v, RequestKind::FindCoordinator(body)), FindCoordinator);
    let (code, host, got_port) = if v >= 4 {
        let c = &r.coordinators[0];
        assert_eq!(c.key.as_str(), group);
        (c.error_code, c.host.to_string(), c.port)
    } else {
        (r.error_code, r.host.to_string(), r.port)
    };
    assert_eq!((code, host.as_str(), got_port), (0, "127.0.0.1", port), "FindCoordinator v{v}: {r:?}");
}

/// Joins `group` as its only member: the generation and the member id.
fn join(w: &mut Wire, v: i16, group: &str) -> (i32, String) {
    let r = kind!(w.call(ApiKey::JoinGroup, v, req::join(v, group, "", 10_000)), JoinGroup);
    let mut member = r.member_id.to_string();
    let r = if v >= 4 {
        assert_eq!(r.error_code, 79, "JoinGroup v{v}: MEMBER_ID_REQUIRED");
        assert!(!member.is_empty(), "JoinGroup v{v}: a member id to join with");
        let r = kind!(w.call(ApiKey::JoinGroup, v, req::join(v, group, &member, 10_000)), JoinGroup);
        assert_eq!(r.member_id.as_str(), member, "JoinGroup v{v}");
        r
    } else {
        member = r.member_id.to_string();
        r
    };
    assert_eq!(r.error_code, 0, "JoinGroup v{v}: {r:?}");
    assert!(r.generation_id >= 1, "JoinGroup v{v}: {r:?}");
    assert_eq!(r.leader.as_str(), member, "JoinGroup v{v}: the only member leads");
    assert_eq!(r.protocol_name.as_ref().map(|p| p.as_str()), Some("range"), "JoinGroup v{v}");
    let members: Vec<&str> = r.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, [member.as_str()], "JoinGroup v{v}");
    (r.generation_id, member)
}

fn sync(w: &mut Wire, v: i16, group: &str, generation: i32, member: &str) {
    let a = SyncGroupRequestAssignment::default()
        .with_member_id(s(member))
        .with_assignment(Bytes::from_static(ASSIGNMENT));
    let mut body = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(vec![a]);
    if v >= 5 {
        body = body.with_protocol_type(Some(s("consumer"))).with_protocol_name(Some(s("range")));
    }
    let r = kind!(w.call(ApiKey::SyncGroup, v, RequestKind::SyncGroup(body)), SyncGroup);
    assert_eq!(r.error_code, 0, "SyncGroup v{v}: {r:?}");
    assert_eq!(&r.assignment[..], ASSIGNMENT, "SyncGroup v{v}");
}

/// OffsetFetch of `golden`/0 in `group`: `offset` was committed.
/// Checks the committed offset, its metadata and (v5 on) its leader epoch.
fn offset_fetch(w: &mut Wire, v: i16, group: &str, offset: i64, epoch: i32) {
    let mut body = OffsetFetchRequest::default();
    if v >= 8 {
        let t = OffsetFetchRequestTopics::default()
            .with_name(req::topic("golden"))
            .with_partition_indexes(vec![0]);
        let g =
            OffsetFetchRequestGroup::default().with_group_id(GroupId(s(group))).with_topics(Some(vec![t]));
        body = body.with_groups(vec![g]);
    } else {
        let t = OffsetFetchRequestTopic::default()
            .with_name(req::topic("golden"))
            .with_partition_indexes(vec![0]);
        body = body.with_group_id(GroupId(s(group))).with_topics(Some(vec![t]));
    }
    let r = kind!(w.call(ApiKey::OffsetFetch, v, RequestKind::OffsetFetch(body)), OffsetFetch);
    let (code, got, meta, got_epoch) = if v >= 8 {
        let g = &r.groups[0];
        assert_eq!((g.group_id.0.as_str(), g.error_code), (group, 0), "OffsetFetch v{v}");
        let p = &g.topics[0].partitions[0];
        (p.error_code, p.committed_offset, p.metadata.clone(), p.committed_leader_epoch)
    } else {
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.committed_offset, p.metadata.clone(), p.committed_leader_epoch)
    };
    assert_eq!((code, got), (0, offset), "OffsetFetch v{v}: {r:?}");
    if v >= 5 {
        assert_eq!(got_epoch, epoch, "OffsetFetch v{v}: the committed leader epoch");
    }
    assert_eq!(meta.as_ref().map(|m| m.as_str()), Some("meta"), "OffsetFetch v{v}");
}

fn describe(w: &mut Wire, v: i16, group: &str, member: &str) {
    let body = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let r = kind!(w.call(ApiKey::DescribeGroups, v, RequestKind::DescribeGroups(body)), DescribeGroups);
    let g = &r.groups[0];
    assert_eq!((g.error_code, g.group_id.0.as_str()), (0, group), "DescribeGroups v{v}");
    assert_eq!(
        (g.group_state.as_str(), g.protocol_type.as_str(), g.protocol_data.as_str()),
        ("Stable", "consumer", "range")
    );
    assert_eq!(g.members.len(), 1, "DescribeGroups v{v}");
    assert_eq!(g.members[0].member_id.as_str(), member);
    assert_eq!(&g.members[0].member_assignment[..], ASSIGNMENT, "DescribeGroups v{v}");
}

fn leave(w: &mut Wire, v: i16, group: &str, member: &str) {
    let mut body = LeaveGroupRequest::default().with_group_id(GroupId(s(group)));
    body = if v >= 3 {
        body.with_members(vec![MemberIdentity::default().with_member_id(s(member))])
    } else {
        body.with_member_id(s(member))
    };
    let r = kind!(w.call(ApiKey::LeaveGroup, v, RequestKind::LeaveGroup(body)), LeaveGroup);
    assert_eq!(r.error_code, 0, "LeaveGroup v{v}: {r:?}");
    if v >= 3 {
        assert_eq!(
            (r.members[0].member_id.as_str(), r.members[0].error_code),
            (member, 0),
            "LeaveGroup v{v}"
        );
    }
}

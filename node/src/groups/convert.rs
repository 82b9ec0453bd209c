//! Between the wire's group types (`weir_net::groups`) and the coordinator's (`weir_groups`).

use crate::service::types::Failure;
use weir_groups::{GroupDescription, GroupError, TopicPartitions};
use weir_net::ErrorCode;
use weir_net::groups::{GroupInfo, MemberInfo, TopicAssignment};

pub fn partitions_of(v: Vec<TopicAssignment>) -> Vec<TopicPartitions> {
    v.into_iter().map(|t| TopicPartitions { topic: t.topic, partitions: t.partitions }).collect()
}

pub fn assignments(v: Vec<TopicPartitions>) -> Vec<TopicAssignment> {
    v.into_iter().map(|t| TopicAssignment { topic: t.topic, partitions: t.partitions }).collect()
}

pub fn info(d: GroupDescription) -> GroupInfo {
    GroupInfo {
        group: d.group,
        state: d.state.to_string(),
        group_epoch: d.group_epoch,
        assignor: d.assignor.to_string(),
        members: d
            .members
            .into_iter()
            .map(|m| MemberInfo {
                member_id: m.member_id,
                instance_id: m.instance_id,
                member_epoch: m.member_epoch,
                topics: m.topics,
                assignment: assignments(m.assignment),
                target: assignments(m.target),
            })
            .collect(),
    }
}

/// The wire code of a coordinator's refusal.
pub fn group_failure(e: GroupError) -> Failure {
    let code = match &e {
        GroupError::UnknownMemberId { .. } => ErrorCode::UnknownMemberId,
        GroupError::FencedMemberEpoch { .. } => ErrorCode::FencedMemberEpoch,
        GroupError::StaleMemberEpoch { .. } => ErrorCode::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId { .. } => ErrorCode::UnreleasedInstanceId,
        GroupError::GroupMaxSizeReached { .. } => ErrorCode::GroupMaxSizeReached,
        GroupError::InvalidRequest { .. } => ErrorCode::InvalidArgument,
        GroupError::GroupNotEmpty { .. } => ErrorCode::GroupNotEmpty,
        GroupError::GroupIdNotFound { .. } => ErrorCode::GroupIdNotFound,
        _ => ErrorCode::Unknown,
    };
    Failure::new(code, e.to_string())
}

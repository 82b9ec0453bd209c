//! The classic group protocol over Kafka's API: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! carried to the group's coordinator (`groups::call`) and answered in the request's version.

use super::groups::{call_code, group_code};
use crate::groups::call::{GroupAnswer, GroupCall, route};
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::JoinGroupRequest;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_request::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use weir_groups::GroupError;

/// The Kafka code of a refusal only the classic protocol makes.
pub fn classic_code(e: &GroupError) -> i16 {
    use ResponseError as K;
    let k = match e {
        GroupError::MemberIdRequired { .. } => K::MemberIdRequired,
        GroupError::IllegalGeneration { .. } => K::IllegalGeneration,
        GroupError::RebalanceInProgress => K::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => K::InconsistentGroupProtocol,
        GroupError::FencedInstanceId { .. } => K::FencedInstanceId,
        _ => K::UnknownServerError,
    };
    k.code()
}

fn text(s: Option<String>) -> Option<StrBytes> {
    s.map(StrBytes::from_string)
}

pub async fn join(shard: &Rc<Shard>, header: &RequestHeader, r: JoinGroupRequest) -> JoinGroupResponse {
    let version = header.request_api_version;
    let req = weir_groups::JoinRequest {
        group: r.group_id.0.to_string(),
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.map(|i| i.to_string()),
        protocol_type: r.protocol_type.to_string(),
        protocols: r.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata.to_vec())).collect(),
        session_timeout_ms: r.session_timeout_ms.max(0) as u32,
        // Version 0 has no rebalance timeout: the session timeout serves for both.
        rebalance_timeout_ms: if version == 0 { r.session_timeout_ms } else { r.rebalance_timeout_ms }.max(0)
            as u32,
        require_known_member_id: version >= 4,
        client_id: header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        client_host: String::new(),
    };
    let failed = |code: i16, member: &str| {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_member_id(StrBytes::from_string(member.to_owned()))
    };
    let member = req.member_id.clone();
    let answer = match route(shard, GroupCall::Join(req)).await {
        GroupAnswer::Joined(Ok(a)) => a,
        GroupAnswer::Joined(Err(e)) => return failed(call_code(&e), &member),
        _ => return failed(ResponseError::UnknownServerError.code(), &member),
    };
    let code = answer.error.as_ref().map_or(0, group_code);
    let members = answer
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(text(m.instance_id))
                .with_metadata(m.metadata.into())
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(answer.generation_id)
        .with_protocol_type(text(answer.protocol_type))
        // Versions before 7 cannot carry a null protocol name.
        .with_protocol_name(Some(StrBytes::from_string(answer.protocol_name.unwrap_or_default())))
        .with_leader(StrBytes::from_string(answer.leader))
        .with_member_id(StrBytes::from_string(answer.member_id))
        .with_members(members)
}

pub async fn sync(shard: &Rc<Shard>, r: SyncGroupRequest) -> SyncGroupResponse {
    let req = weir_groups::SyncRequest {
        group: r.group_id.0.to_string(),
        generation_id: r.generation_id,
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.map(|i| i.to_string()),
        protocol_type: r.protocol_type.map(|p| p.to_string()),
        protocol_name: r.protocol_name.map(|p| p.to_string()),
        assignments: r
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment.to_vec()))
            .collect(),
    };
    let answer = match route(shard, GroupCall::Sync(req)).await {
        GroupAnswer::Synced(Ok(a)) => a,
        GroupAnswer::Synced(Err(e)) => return SyncGroupResponse::default().with_error_code(call_code(&e)),
        _ => return SyncGroupResponse::default().with_error_code(ResponseError::UnknownServerError.code()),
    };
    SyncGroupResponse::default()
        .with_error_code(answer.error.as_ref().map_or(0, group_code))
        .with_protocol_type(text(answer.protocol_type))
        .with_protocol_name(text(answer.protocol_name))
        .with_assignment(answer.assignment.into())
}

pub async fn heartbeat(shard: &Rc<Shard>, r: HeartbeatRequest) -> HeartbeatResponse {
    let call = GroupCall::Heartbeat {
        group: r.group_id.0.to_string(),
        generation: r.generation_id,
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.map(|i| i.to_string()),
    };
    let code = match route(shard, call).await {
        GroupAnswer::Done(Ok(())) => 0,
        GroupAnswer::Done(Err(e)) => call_code(&e),
        _ => ResponseError::UnknownServerError.code(),
    };
    HeartbeatResponse::default().with_error_code(code)
}

pub async fn leave(shard: &Rc<Shard>, r: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    // Versions up to 2 name one member; from 3 on, a list.
    let batched = version >= 3;
    let members: Vec<(String, Option<String>)> = match batched {
        false => vec![(r.member_id.to_string(), None)],
        true => r
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string())))
            .collect(),
    };
    let call = GroupCall::Leave { group: r.group_id.0.to_string(), members: members.clone() };
    match route(shard, call).await {
        GroupAnswer::Left(Ok(results)) => {
            let responses: Vec<MemberResponse> = members
                .into_iter()
                .zip(results)
                .map(|((id, instance), result)| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(text(instance))
                        .with_error_code(result.err().as_ref().map_or(0, group_code))
                })
                .collect();
            // A single member's answer (versions up to 2) is the top-level code.
            let top = if batched { 0 } else { responses.first().map_or(0, |m| m.error_code) };
            LeaveGroupResponse::default().with_error_code(top).with_members(if batched {
                responses
            } else {
                vec![]
            })
        }
        GroupAnswer::Left(Err(e)) => LeaveGroupResponse::default().with_error_code(call_code(&e)),
        _ => LeaveGroupResponse::default().with_error_code(ResponseError::UnknownServerError.code()),
    }
}

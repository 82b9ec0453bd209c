//! ListGroups and DescribeGroups: the groups every shard of this node coordinates, and one
//! group's state and members as its coordinator has them.

use super::groups::{call_code, group_id};
use crate::groups::call::{GroupAnswer, GroupCall, route, run};
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::{
    DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use weir_groups::{GroupDescription, GroupKind, GroupListing};

/// The groups of every shard of this node.
async fn all_groups(shard: &Rc<Shard>) -> Result<Vec<GroupListing>, i16> {
    let mut groups = Vec::new();
    for s in 0..shard.config.shards {
        let to = weir_replication::ShardId(s as u16);
        let answer = if to == shard.service.shard() {
            run(shard, GroupCall::List).await
        } else {
            match crate::bus::Bus::call(
                &*shard.service.bus,
                to,
                crate::bus::ShardRequest::Group(GroupCall::List),
            )
            .await
            {
                Ok(crate::bus::ShardReply::Group(a)) => a,
                _ => return Err(ResponseError::CoordinatorNotAvailable.code()),
            }
        };
        match answer {
            GroupAnswer::Listed(Ok(g)) => groups.extend(g),
            GroupAnswer::Listed(Err(e)) => return Err(call_code(&e)),
            _ => return Err(ResponseError::UnknownServerError.code()),
        }
    }
    Ok(groups)
}

pub async fn list_groups(shard: &Rc<Shard>, req: ListGroupsRequest) -> ListGroupsResponse {
    let groups = match all_groups(shard).await {
        Ok(g) => g,
        Err(code) => return ListGroupsResponse::default().with_error_code(code),
    };
    let listed = groups
        .into_iter()
        .map(|g| (g.state.kafka_name().to_owned(), g))
        .filter(|(state, _)| {
            req.states_filter.is_empty() || req.states_filter.iter().any(|f| f.as_str() == state)
        })
        .map(|(state, g)| {
            let kind = if g.protocol_type == "consumer" && state != "Empty" { "consumer" } else { "classic" };
            ListedGroup::default()
                .with_group_id(group_id(g.group))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_group_state(StrBytes::from_string(state))
                .with_group_type(StrBytes::from_static_str(kind))
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}

pub async fn describe_groups(shard: &Rc<Shard>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut described = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let name = g.0.to_string();
        let d = DescribedGroup::default().with_group_id(g);
        let d = match route(shard, GroupCall::Describe { group: name }).await {
            GroupAnswer::Described(Ok(Some(desc))) => group(d, desc),
            // An unknown group is described as Dead, as Kafka does.
            GroupAnswer::Described(Ok(None)) => d.with_group_state(StrBytes::from_static_str("Dead")),
            GroupAnswer::Described(Err(e)) => d.with_error_code(call_code(&e)),
            _ => d.with_error_code(ResponseError::UnknownServerError.code()),
        };
        described.push(d);
    }
    DescribeGroupsResponse::default().with_groups(described)
}

fn group(d: DescribedGroup, desc: GroupDescription) -> DescribedGroup {
    let classic = desc.kind == GroupKind::Classic;
    let members = desc
        .members
        .into_iter()
        .map(|m| {
            DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                .with_client_id(StrBytes::from_string(m.client_id))
                .with_client_host(StrBytes::from_string(m.client_host))
                .with_member_metadata(if classic { m.metadata.into() } else { Default::default() })
                .with_member_assignment(if classic {
                    m.classic_assignment.into()
                } else {
                    Default::default()
                })
        })
        .collect();
    d.with_group_state(StrBytes::from_static_str(desc.state.kafka_name()))
        .with_protocol_type(StrBytes::from_string(desc.protocol_type))
        .with_protocol_data(StrBytes::from_string(desc.protocol_name))
        .with_members(members)
}

//! DeleteGroups: each group deleted with its offsets by the coordinator that owns it, on the
//! shard that leads its `__consumer_offsets` partition, and refused while it has members.

use super::groups::call_code;
use crate::groups::call::{GroupAnswer, GroupCall, route};
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::{DeletableGroupResult, DeleteGroupsResponse};
use std::rc::Rc;

/// Answers every group named, in order: NON_EMPTY_GROUP while it has members,
/// GROUP_ID_NOT_FOUND for a group the coordinator does not know, INVALID_GROUP_ID for a name
/// no group can have, NOT_COORDINATOR when this node does not coordinate it.
pub async fn delete_groups(shard: &Rc<Shard>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group in req.groups_names {
        let code = if crate::groups::check_group_id(group.0.as_str()).is_err() {
            ResponseError::InvalidGroupId.code()
        } else {
            match route(shard, GroupCall::Delete { group: group.0.to_string() }).await {
                GroupAnswer::Done(Ok(())) => 0,
                GroupAnswer::Done(Err(e)) => call_code(&e),
                _ => ResponseError::UnknownServerError.code(),
            }
        };
        results.push(DeletableGroupResult::default().with_group_id(group).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}

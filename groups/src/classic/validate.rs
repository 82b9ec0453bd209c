//! Checks of the classic requests' fields and bounds, run before anything changes.

use crate::api::CoordinatorConfig;
use crate::classic::api::{JoinRequest, SyncRequest};
use crate::error::GroupError;
use crate::validate::{bounded, group_id, named};
use crate::{
    CLASSIC_ASSIGNMENT_BYTES_MAX, CLASSIC_METADATA_BYTES_MAX, CLASSIC_PROTOCOLS_MAX, CLIENT_ID_BYTES_MAX,
    INSTANCE_ID_BYTES_MAX, MEMBER_ID_BYTES_MAX, PROTOCOL_NAME_BYTES_MAX,
};

pub(crate) fn join(config: &CoordinatorConfig, req: &JoinRequest) -> Result<(), GroupError> {
    group_id(&req.group)?;
    bounded("member id", &req.member_id, MEMBER_ID_BYTES_MAX)?;
    if let Some(instance) = &req.instance_id {
        named("instance id", instance, INSTANCE_ID_BYTES_MAX)?;
    }
    bounded("client id", &req.client_id, CLIENT_ID_BYTES_MAX)?;
    bounded("client host", &req.client_host, CLIENT_ID_BYTES_MAX)?;
    named("protocol type", &req.protocol_type, PROTOCOL_NAME_BYTES_MAX)?;
    crate::validate::timeouts(config, req.session_timeout_ms, req.rebalance_timeout_ms)?;
    if req.protocols.is_empty() || req.protocols.len() > CLASSIC_PROTOCOLS_MAX {
        return Err(GroupError::invalid(format!(
            "{} protocols, outside 1..={CLASSIC_PROTOCOLS_MAX}",
            req.protocols.len()
        )));
    }
    let mut total = 0;
    for (i, (name, metadata)) in req.protocols.iter().enumerate() {
        named("protocol name", name, PROTOCOL_NAME_BYTES_MAX)?;
        if req.protocols[..i].iter().any(|(n, _)| n == name) {
            return Err(GroupError::invalid(format!("protocol {name:?} listed twice")));
        }
        total += metadata.len();
    }
    let metadata_max = config.classic_metadata_bytes_max.min(CLASSIC_METADATA_BYTES_MAX);
    if total > metadata_max {
        return Err(GroupError::invalid(format!(
            "protocol metadata of {total} bytes, above the limit of {metadata_max}"
        )));
    }
    Ok(())
}

pub(crate) fn sync(config: &CoordinatorConfig, req: &SyncRequest) -> Result<(), GroupError> {
    group_id(&req.group)?;
    bounded("member id", &req.member_id, MEMBER_ID_BYTES_MAX)?;
    if let Some(instance) = &req.instance_id {
        named("instance id", instance, INSTANCE_ID_BYTES_MAX)?;
    }
    for name in req.protocol_type.iter().chain(&req.protocol_name) {
        bounded("protocol name", name, PROTOCOL_NAME_BYTES_MAX)?;
    }
    if req.assignments.len() > config.group_members_max {
        return Err(GroupError::invalid(format!(
            "{} assignments, above the limit of {} members",
            req.assignments.len(),
            config.group_members_max
        )));
    }
    let assignment_max = config.classic_assignment_bytes_max.min(CLASSIC_ASSIGNMENT_BYTES_MAX);
    for (member_id, bytes) in &req.assignments {
        bounded("member id", member_id, MEMBER_ID_BYTES_MAX)?;
        if bytes.len() > assignment_max {
            return Err(GroupError::invalid(format!(
                "an assignment of {} bytes, above the limit of {assignment_max}",
                bytes.len()
            )));
        }
    }
    Ok(())
}

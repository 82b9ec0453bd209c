//! Checks of a request's fields and bounds, run before anything changes.

use crate::api::{CommittedOffset, CoordinatorConfig, HeartbeatRequest};
use crate::error::GroupError;
use crate::{
    COMMIT_OFFSETS_MAX, GROUP_ID_BYTES_MAX, INSTANCE_ID_BYTES_MAX, MEMBER_ID_BYTES_MAX, METADATA_BYTES_MAX,
    SUBSCRIPTION_TOPICS_MAX, TOPIC_NAME_BYTES_MAX,
};

pub(crate) fn bounded(what: &str, s: &str, max: usize) -> Result<(), GroupError> {
    if s.len() > max {
        return Err(GroupError::invalid(format!("{what} of {} bytes, above the limit of {max}", s.len())));
    }
    Ok(())
}

pub(crate) fn named(what: &str, s: &str, max: usize) -> Result<(), GroupError> {
    if s.is_empty() {
        return Err(GroupError::invalid(format!("an empty {what}")));
    }
    bounded(what, s, max)
}

/// A group id: 1 to [`GROUP_ID_BYTES_MAX`] bytes.
pub fn group_id(group: &str) -> Result<(), GroupError> {
    named("group id", group, GROUP_ID_BYTES_MAX)
}

pub(crate) fn heartbeat(
    config: &CoordinatorConfig,
    group: &str,
    req: &HeartbeatRequest,
) -> Result<(), GroupError> {
    group_id(group)?;
    bounded("member id", &req.member_id, MEMBER_ID_BYTES_MAX)?;
    if let Some(instance) = &req.instance_id {
        named("instance id", instance, INSTANCE_ID_BYTES_MAX)?;
    }
    match req.member_epoch {
        -2 if req.instance_id.is_none() => {
            return Err(GroupError::invalid("epoch -2 without an instance id"));
        }
        -2 | -1 => return Ok(()),
        e if e < -2 => return Err(GroupError::invalid(format!("member epoch {e}"))),
        _ => {}
    }
    crate::validate::timeouts(config, req.session_timeout_ms, req.rebalance_timeout_ms)?;
    if req.member_epoch == 0 && req.topics.as_ref().is_none_or(Vec::is_empty) {
        return Err(GroupError::invalid("a join without a subscription"));
    }
    subscription(req)
}

fn subscription(req: &HeartbeatRequest) -> Result<(), GroupError> {
    if let Some(topics) = &req.topics {
        if topics.len() > SUBSCRIPTION_TOPICS_MAX {
            return Err(GroupError::invalid(format!(
                "a subscription of {} topics, above the limit of {SUBSCRIPTION_TOPICS_MAX}",
                topics.len()
            )));
        }
        for topic in topics {
            named("topic name", topic, TOPIC_NAME_BYTES_MAX)?;
        }
    }
    for tp in req.owned.iter().flatten() {
        named("topic name", &tp.topic, TOPIC_NAME_BYTES_MAX)?;
    }
    Ok(())
}

pub(crate) fn commit(
    group: &str,
    member_id: &str,
    offsets: &[(String, u32, CommittedOffset)],
) -> Result<(), GroupError> {
    group_id(group)?;
    bounded("member id", member_id, MEMBER_ID_BYTES_MAX)?;
    if offsets.len() > COMMIT_OFFSETS_MAX {
        return Err(GroupError::invalid(format!(
            "a commit of {} offsets, above the limit of {COMMIT_OFFSETS_MAX}",
            offsets.len()
        )));
    }
    for (topic, _, committed) in offsets {
        named("topic name", topic, TOPIC_NAME_BYTES_MAX)?;
        bounded("offset metadata", &committed.metadata, METADATA_BYTES_MAX)?;
    }
    Ok(())
}

/// A member's session timeout within the coordinator's bounds, and a rebalance timeout.
pub(crate) fn timeouts(config: &CoordinatorConfig, session: u32, rebalance: u32) -> Result<(), GroupError> {
    if session < config.session_timeout_ms_min || session > config.session_timeout_ms_max {
        return Err(GroupError::invalid(format!(
            "session timeout {session} ms outside {}..={} ms",
            config.session_timeout_ms_min, config.session_timeout_ms_max
        )));
    }
    if rebalance == 0 {
        return Err(GroupError::invalid("a rebalance timeout of 0 ms"));
    }
    Ok(())
}

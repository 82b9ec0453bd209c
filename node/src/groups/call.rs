//! Group operations typed for the Kafka front end, carried to the shard that coordinates the
//! group (the leader of its `__consumer_offsets` partition) over the bus when the request came
//! in on another shard, and run there against its coordinator.
//!
//! Held answers (a JoinGroup waiting for the rebalance, a SyncGroup waiting for the leader's
//! assignment) are awaited on the coordinating shard without the slot's lock: the coordinator
//! releases them through `take_classic_answers`, which every operation and tick drains.

use super::slot::Slot;
use super::{convert::group_failure, offsets_topic, slot_of};
use crate::runtime::Runtime;
use crate::service::types::Failure;
use crate::shard::Shard;
use std::rc::Rc;
use weir_groups::{
    ClassicAnswer, CommittedOffset, GroupDescription, GroupError, GroupListing, JoinRequest, JoinResponse,
    SyncRequest, SyncResponse,
};
use weir_net::ErrorCode;

/// Why a group operation failed: the coordinator's refusal, or the node's (not coordinator,
/// loading, a write that failed).
#[derive(Debug, Clone)]
pub enum CallError {
    Group(GroupError),
    Node(Failure),
}

impl From<Failure> for CallError {
    fn from(f: Failure) -> Self {
        CallError::Node(f)
    }
}

impl From<GroupError> for CallError {
    fn from(e: GroupError) -> Self {
        CallError::Group(e)
    }
}

/// Committed offsets (topic, partition, offset if any), and the partitions pending in a
/// transaction.
pub type StableOffsets =
    (Vec<(String, u32, Option<CommittedOffset>)>, std::collections::BTreeSet<(String, u32)>);

/// One committed offset: topic, partition, offset and metadata.
pub type OffsetEntry = (String, u32, CommittedOffset);

/// See the module documentation.
#[derive(Debug, Clone)]
pub enum GroupCall {
    /// A classic member's commit (`generation` and `member_id`), or with generation -1 and no
    /// member an admin or simple consumer's.
    Commit {
        group: String,
        member_id: String,
        generation: i32,
        instance_id: Option<String>,
        offsets: Vec<OffsetEntry>,
    },
    /// The committed offsets of these partitions, or of every partition for `None`.
    FetchOffsets {
        group: String,
        partitions: Option<Vec<(String, u32)>>,
        /// Those a transaction holds pending are answered as such (UNSTABLE_OFFSET_COMMIT).
        require_stable: bool,
    },
    Describe {
        group: String,
    },
    /// The groups coordinated on this shard.
    List,
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat {
        group: String,
        generation: i32,
        member_id: String,
        instance_id: Option<String>,
    },
    /// Members leaving: (member id, instance id).
    Leave {
        group: String,
        members: Vec<(String, Option<String>)>,
    },
    /// Deletes a group with no members, and its offsets.
    Delete {
        group: String,
    },
    /// A transactional id's call, run where it is coordinated (see `crate::transactions`).
    Txn(crate::transactions::TxnCall),
}

#[derive(Debug, Clone)]
pub enum GroupAnswer {
    Done(Result<(), CallError>),
    Offsets(Result<Vec<(String, u32, Option<CommittedOffset>)>, CallError>),
    Described(Result<Option<GroupDescription>, CallError>),
    Listed(Result<Vec<GroupListing>, CallError>),
    Joined(Result<JoinResponse, CallError>),
    Synced(Result<SyncResponse, CallError>),
    Left(Result<Vec<Result<(), GroupError>>, CallError>),
    /// InitProducerId for a transactional id: its producer id and epoch.
    TxnProducer(Result<(i64, i16), CallError>),
    /// Offsets asked for stable: the offsets, and the partitions a transaction holds one of
    /// pending.
    StableOffsets(Result<StableOffsets, CallError>),
}

impl GroupCall {
    fn group(&self) -> Option<&str> {
        match self {
            GroupCall::Commit { group, .. }
            | GroupCall::FetchOffsets { group, .. }
            | GroupCall::Describe { group }
            | GroupCall::Heartbeat { group, .. }
            | GroupCall::Leave { group, .. }
            | GroupCall::Delete { group } => Some(group),
            GroupCall::Join(r) => Some(&r.group),
            GroupCall::Sync(r) => Some(&r.group),
            GroupCall::Txn(t) => Some(t.key()),
            GroupCall::List => None,
        }
    }
}

/// Runs `call` on this shard, which coordinates its group (or, for `List`, whichever groups it
/// coordinates).
pub async fn run(shard: &Rc<Shard>, call: GroupCall) -> GroupAnswer {
    match call {
        GroupCall::List => GroupAnswer::Listed(list(shard).await),
        GroupCall::Commit { group, member_id, generation, instance_id, offsets } => {
            GroupAnswer::Done(commit(shard, &group, &member_id, generation, instance_id, offsets).await)
        }
        GroupCall::Join(req) => GroupAnswer::Joined(join(shard, req).await),
        GroupCall::Sync(req) => GroupAnswer::Synced(sync(shard, req).await),
        GroupCall::Heartbeat { group, generation, member_id, instance_id } => GroupAnswer::Done(
            with_coordinator(shard, &group, |c, now| {
                Ok(c.classic_heartbeat(now, &group, generation, &member_id, instance_id.as_deref())?)
            })
            .await,
        ),
        GroupCall::Leave { group, members } => GroupAnswer::Left(
            with_coordinator(shard, &group, |c, now| Ok(c.classic_leave(now, &group, members))).await,
        ),
        GroupCall::FetchOffsets { group, partitions, require_stable: false } => GroupAnswer::Offsets(
            with_coordinator(shard, &group, |c, _| Ok(c.fetch_offsets(&group, partitions.as_deref()))).await,
        ),
        GroupCall::FetchOffsets { group, partitions, require_stable: true } => GroupAnswer::StableOffsets(
            with_coordinator(shard, &group, |c, _| {
                // As Kafka: the offsets asked for (or every committed one), each pending one
                // marked; a partition pending but never committed is listed only when asked for.
                let unstable = c.txn_offsets_pending(&group, partitions.as_deref());
                Ok((c.fetch_offsets(&group, partitions.as_deref()), unstable))
            })
            .await,
        ),
        GroupCall::Describe { group } => {
            GroupAnswer::Described(with_coordinator(shard, &group, |c, _| Ok(c.describe(&group))).await)
        }
        GroupCall::Delete { group } => {
            GroupAnswer::Done(with_coordinator(shard, &group, |c, _| Ok(c.delete(&group)?)).await)
        }
        GroupCall::Txn(call) => crate::transactions::run(shard, call).await,
    }
}

/// Runs `f` on the coordinator of `group`'s slot, loaded, then writes what it changed.
pub(crate) async fn with_coordinator<T>(
    shard: &Rc<Shard>,
    group: &str,
    f: impl FnOnce(&mut weir_groups::Coordinator, u64) -> Result<T, CallError>,
) -> Result<T, CallError> {
    let slot = slot_of(shard, group)?;
    with_slot(shard, &slot, |c, now, _| f(c, now)).await
}

/// Runs `f` on `slot`'s coordinator, loaded, writes what it changed, then releases the answers
/// it let go (only once written: a held request is answered for a change that is in the log).
async fn with_slot<T>(
    shard: &Rc<Shard>,
    slot: &Slot,
    f: impl FnOnce(&mut weir_groups::Coordinator, u64, &Slot) -> Result<T, CallError>,
) -> Result<T, CallError> {
    let mut state = slot.state.lock().await;
    let coordinator = slot.load(shard, &mut state).await?;
    let now = shard.core().rt.monotonic_ms();
    let out = f(coordinator, now, slot);
    let released = coordinator.take_classic_answers();
    slot.persist(shard, &mut state).await?;
    slot.release(released);
    out
}

/// Refused while the node shuts down: its coordinators hold no request any more.
fn not_closing(shard: &Shard) -> Result<(), CallError> {
    if shard.groups.closing.get() {
        return Err(Failure::new(ErrorCode::NotCoordinator, "the node is shutting down").into());
    }
    Ok(())
}

/// A JoinGroup, answered at once or once the rebalance completes.
async fn join(shard: &Rc<Shard>, req: JoinRequest) -> Result<JoinResponse, CallError> {
    let group = req.group.clone();
    let answer =
        held(shard, &group, |c, now, token| c.classic_join(now, token, req).map(ClassicAnswer::Join));
    match answer.await? {
        ClassicAnswer::Join(answer) => Ok(answer),
        ClassicAnswer::Sync(_) => Err(dropped("join")),
    }
}

/// A SyncGroup, answered at once or once the leader's assignment is in.
async fn sync(shard: &Rc<Shard>, req: SyncRequest) -> Result<SyncResponse, CallError> {
    let group = req.group.clone();
    let answer =
        held(shard, &group, |c, now, token| c.classic_sync(now, token, req).map(ClassicAnswer::Sync));
    match answer.await? {
        ClassicAnswer::Sync(answer) => Ok(answer),
        ClassicAnswer::Join(_) => Err(dropped("sync")),
    }
}

/// Runs a request the coordinator may hold: `f` answers it at once, or holds it under the token
/// it is given and answers it later through the slot, once the change releasing it is written.
async fn held(
    shard: &Rc<Shard>,
    group: &str,
    f: impl FnOnce(&mut weir_groups::Coordinator, u64, u64) -> Option<ClassicAnswer>,
) -> Result<ClassicAnswer, CallError> {
    not_closing(shard)?;
    let slot = slot_of(shard, group)?;
    let held = with_slot(shard, &slot, |c, now, slot| {
        let (token, rx) = slot.hold();
        Ok(match f(c, now, token) {
            Some(answer) => {
                slot.forget(token);
                Ok(answer)
            }
            None => Err(rx),
        })
    })
    .await?;
    match held {
        Ok(answer) => Ok(answer),
        // The waiter dropped: the coordinator that held the request is gone.
        Err(rx) => rx.await.map_err(|_| dropped("request")),
    }
}

fn dropped(what: &str) -> CallError {
    Failure::new(ErrorCode::NotCoordinator, format!("the held {what} was dropped: the coordinator moved"))
        .into()
}

async fn commit(
    shard: &Rc<Shard>,
    group: &str,
    member_id: &str,
    generation: i32,
    instance_id: Option<String>,
    offsets: Vec<OffsetEntry>,
) -> Result<(), CallError> {
    super::check_committed_partitions(shard, offsets.iter().map(|(t, p, _)| (t.as_str(), *p)))?;
    let wall = shard.core().rt.now_ms();
    with_coordinator(shard, group, |c, _| {
        Ok(c.classic_commit(wall, group, member_id, generation, instance_id.as_deref(), offsets)?)
    })
    .await
}

/// The groups of every offsets partition this shard leads.
pub(crate) async fn list(shard: &Rc<Shard>) -> Result<Vec<GroupListing>, CallError> {
    let mut groups = Vec::new();
    let Some(n) = offsets_topic::partitions(shard) else { return Ok(groups) };
    for partition in 0..n {
        let slot = shard.groups.slot(partition);
        if slot.leading(shard).is_err() {
            continue;
        }
        let mut state = slot.state.lock().await;
        groups.extend(slot.load(shard, &mut state).await?.list());
    }
    Ok(groups)
}

/// The shard of this node that coordinates `group`, if this node leads its partition.
pub fn coordinating_shard(shard: &Shard, group: &str) -> Option<weir_replication::ShardId> {
    let n = offsets_topic::partitions(shard)?;
    let partition = offsets_topic::partition_of(group, n);
    shard.core().topics.borrow().local_shard(offsets_topic::OFFSETS_TOPIC, partition)
}

/// `call` run where its group is coordinated: here, or on another shard over the bus.
pub async fn route(shard: &Rc<Shard>, call: GroupCall) -> GroupAnswer {
    let to = call.group().and_then(|g| coordinating_shard(shard, g)).unwrap_or(shard.service.shard());
    if to == shard.service.shard() {
        return run(shard, call).await;
    }
    let failed = |m: String| CallError::Node(Failure::new(ErrorCode::NotCoordinator, m));
    match crate::bus::Bus::call(&*shard.service.bus, to, crate::bus::ShardRequest::Group(call.clone())).await
    {
        Ok(crate::bus::ShardReply::Group(a)) => a,
        Ok(_) => answer_error(&call, failed("wrong reply over the bus".into())),
        Err(e) => answer_error(&call, failed(e.to_string())),
    }
}

/// `call`'s answer, failed with `e`.
pub fn answer_error(call: &GroupCall, e: CallError) -> GroupAnswer {
    match call {
        GroupCall::Commit { .. } => GroupAnswer::Done(Err(e)),
        GroupCall::FetchOffsets { require_stable: true, .. } => GroupAnswer::StableOffsets(Err(e)),
        GroupCall::FetchOffsets { .. } => GroupAnswer::Offsets(Err(e)),
        GroupCall::Describe { .. } => GroupAnswer::Described(Err(e)),
        GroupCall::List => GroupAnswer::Listed(Err(e)),
        GroupCall::Join(_) => GroupAnswer::Joined(Err(e)),
        GroupCall::Sync(_) => GroupAnswer::Synced(Err(e)),
        GroupCall::Heartbeat { .. } => GroupAnswer::Done(Err(e)),
        GroupCall::Leave { .. } => GroupAnswer::Left(Err(e)),
        GroupCall::Delete { .. } => GroupAnswer::Done(Err(e)),
        GroupCall::Txn(crate::transactions::TxnCall::Init { .. }) => GroupAnswer::TxnProducer(Err(e)),
        GroupCall::Txn(_) => GroupAnswer::Done(Err(e)),
    }
}

/// The failure of a coordinator's refusal, for callers that speak Weir's codes.
pub fn as_failure(e: CallError) -> Failure {
    match e {
        CallError::Group(g) => group_failure(g),
        CallError::Node(f) => f,
    }
}

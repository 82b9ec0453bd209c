//! Consumer groups on a node: each shard coordinates the groups of the `__consumer_offsets`
//! partitions it leads ([`slot`]), answering the group requests of `weir_net::groups` with the
//! sans-IO coordinator of `weir_groups`, and ticks them so that members whose sessions expired
//! go. Clients find a group's coordinator with FindCoordinator (any shard of any node answers)
//! and then talk to that shard directly; a shard that does not lead the group's partition
//! answers `NotCoordinator`.

pub mod call;
mod convert;
pub mod offsets_topic;
pub mod slot;

use crate::runtime::Runtime;
use crate::service::types::Failure;
use crate::shard::Shard;
use convert::{assignments, group_failure, info, partitions_of};
use offsets_topic::{OFFSETS_TOPIC, partition_of};
use slot::{Slot, Topics, not_coordinator};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use weir_net::ErrorCode;
use weir_net::groups::{CommittedOffsetInfo, GroupHeartbeat, GroupListing, GroupRequest, GroupResponse};

/// How often a shard ticks its coordinators.
pub const GROUP_TICK_INTERVAL_MS: u64 = 200;

/// The groups a shard coordinates, by offsets partition. Owned by the shard.
#[derive(Debug, Default)]
pub struct GroupService {
    slots: RefCell<BTreeMap<u32, Rc<Slot>>>,
    /// Set at shutdown: no request is held any more (a held join would keep it waiting).
    pub closing: std::cell::Cell<bool>,
    /// Transactional ids whose transaction is being ended on this shard (see
    /// `crate::transactions::drive`).
    pub driving: RefCell<std::collections::HashSet<String>>,
    /// When the tick may drive again a transaction whose drive failed, by transactional id.
    pub drive_retry_at: RefCell<std::collections::HashMap<String, u64>>,
}

impl GroupService {
    /// Answers every request the coordinators hold "not coordinator": at shutdown, held joins
    /// and syncs would otherwise keep requests in flight until the shutdown timeout.
    pub fn drop_held(&self) {
        self.closing.set(true);
        for slot in self.slots.borrow().values() {
            slot.drop_held();
        }
    }

    pub(crate) fn slot(&self, partition: u32) -> Rc<Slot> {
        self.slots.borrow_mut().entry(partition).or_insert_with(|| Rc::new(Slot::new(partition))).clone()
    }
}

/// Answers one group request on `shard`.
pub async fn handle(shard: &Rc<Shard>, req: GroupRequest) -> GroupResponse {
    let api_key = req.api_key();
    let answer = match req {
        GroupRequest::FindCoordinator { group } => find_coordinator(shard, &group).await,
        GroupRequest::ListGroups => list(shard).await,
        req => serve(shard, req).await,
    };
    answer.unwrap_or_else(|f| GroupResponse::failed(api_key, f.code, f.message))
}

/// The slot of `group` if this shard leads its partition.
pub(crate) fn slot_of(shard: &Shard, group: &str) -> Result<Rc<Slot>, Failure> {
    check_group_id(group)?;
    let Some(n) = offsets_topic::partitions(shard) else {
        return Err(not_coordinator(format!(
            "{OFFSETS_TOPIC} does not exist yet: find the coordinator first"
        )));
    };
    Ok(shard.groups.slot(partition_of(group, n)))
}

pub(crate) fn check_group_id(group: &str) -> Result<(), Failure> {
    weir_groups::check_group_id(group).map_err(group_failure)
}

/// Where `group` is coordinated, creating the offsets topic first if needed: its offsets
/// partition's leader in a cluster (node and shard), or this node's shard that owns it.
pub(crate) async fn locate(shard: &Shard, group: &str) -> Result<weir_replication::ReplicaAddr, Failure> {
    check_group_id(group)?;
    let n = offsets_topic::ensure(shard).await?;
    let partition = partition_of(group, n);
    let unavailable =
        || Failure::new(ErrorCode::CoordinatorLoadInProgress, "the coordinator has no leader yet");
    match crate::frontend::cluster::cluster_of(shard) {
        Some((_, meta)) => {
            let topic = meta.topics.get(OFFSETS_TOPIC).ok_or_else(unavailable)?;
            let entry = topic.partitions.get(partition as usize).and_then(|id| meta.partitions.get(id));
            entry.and_then(|e| e.leader()).ok_or_else(unavailable)
        }
        None => {
            let owner =
                shard.core().topics.borrow().local_shard(OFFSETS_TOPIC, partition).ok_or_else(unavailable)?;
            Ok(weir_replication::ReplicaAddr { node: weir_replication::NodeId(0), shard: owner })
        }
    }
}

/// The address of the shard that coordinates `group`, for the native protocol.
async fn find_coordinator(shard: &Rc<Shard>, group: &str) -> Result<GroupResponse, Failure> {
    let leader = locate(shard, group).await?;
    let unavailable =
        || Failure::new(ErrorCode::CoordinatorLoadInProgress, "the coordinator has no leader yet");
    let (host, port) = match crate::frontend::cluster::cluster_of(shard) {
        Some((_, meta)) => {
            let node = meta.nodes.get(&leader.node).ok_or_else(unavailable)?;
            let port = node.shard_ports.get(leader.shard.0 as usize).copied().ok_or_else(unavailable)?;
            (node.host.clone(), port)
        }
        None => (shard.config.advertised_host(), shard.config.shard_port(leader.shard.index())),
    };
    let node_id = leader.node.0;
    Ok(GroupResponse::FindCoordinator { error: ErrorCode::None, message: String::new(), node_id, host, port })
}

/// Refuses offsets of partitions that do not exist, as Kafka does: a commit for a topic this
/// node does not know would otherwise be kept, or swept, on a guess.
pub(crate) fn check_committed_partitions<'a>(
    shard: &Shard,
    mut partitions: impl Iterator<Item = (&'a str, u32)>,
) -> Result<(), Failure> {
    let topics = Topics(shard);
    match partitions.find(|(t, p)| weir_groups::TopicSource::partitions(&topics, t).is_none_or(|n| *p >= n)) {
        Some((t, p)) => {
            Err(Failure::new(ErrorCode::UnknownTopic, format!("no partition {p} of topic {t:?}")))
        }
        None => Ok(()),
    }
}

/// The requests about one group, served by its coordinator here.
async fn serve(shard: &Rc<Shard>, req: GroupRequest) -> Result<GroupResponse, Failure> {
    let group = req.group().expect("a request about a group").to_owned();
    let slot = slot_of(shard, &group)?;
    let mut state = slot.state.lock().await;
    // Sessions run on the monotonic clock: a wall clock stepped by NTP must not expire every
    // member at once, nor keep dead ones alive.
    let now = shard.core().rt.monotonic_ms();
    let coordinator = slot.load(shard, &mut state).await?;
    let ok = (ErrorCode::None, String::new());
    let answer = match req {
        GroupRequest::Heartbeat(h) => heartbeat(shard, coordinator, now, h)?,
        GroupRequest::OffsetCommit { member_id, member_epoch, offsets, .. } => {
            check_committed_partitions(shard, offsets.iter().map(|o| (o.topic.as_str(), o.partition)))?;
            let offsets = offsets
                .into_iter()
                .map(|o| {
                    (
                        o.topic,
                        o.partition,
                        weir_groups::CommittedOffset {
                            offset: o.offset,
                            metadata: o.metadata,
                            leader_epoch: None,
                        },
                    )
                })
                .collect();
            // The commit's time is a wall time: it is kept with the offset.
            let wall = shard.core().rt.now_ms();
            coordinator.commit(wall, &group, &member_id, member_epoch, offsets).map_err(group_failure)?;
            GroupResponse::OffsetCommit { error: ok.0, message: ok.1 }
        }
        GroupRequest::OffsetFetch { partitions, .. } => {
            let asked = (!partitions.is_empty()).then_some(&partitions[..]);
            let offsets = coordinator
                .fetch_offsets(&group, asked)
                .into_iter()
                .map(|(topic, partition, c)| CommittedOffsetInfo {
                    topic,
                    partition,
                    offset: c.as_ref().map(|c| c.offset),
                    metadata: c.map(|c| c.metadata).unwrap_or_default(),
                })
                .collect();
            GroupResponse::OffsetFetch { error: ok.0, message: ok.1, offsets }
        }
        GroupRequest::DescribeGroup { .. } => {
            let described = coordinator
                .describe(&group)
                .ok_or_else(|| Failure::new(ErrorCode::GroupIdNotFound, format!("no group {group:?}")))?;
            GroupResponse::DescribeGroup { error: ok.0, message: ok.1, group: Some(info(described)) }
        }
        GroupRequest::DeleteGroup { .. } => {
            coordinator.delete(&group).map_err(group_failure)?;
            GroupResponse::DeleteGroup { error: ok.0, message: ok.1 }
        }
        GroupRequest::FindCoordinator { .. } | GroupRequest::ListGroups => unreachable!("answered by handle"),
    };
    slot.persist(shard, &mut state).await?;
    Ok(answer)
}

fn heartbeat(
    shard: &Shard,
    coordinator: &mut weir_groups::Coordinator,
    now: u64,
    h: GroupHeartbeat,
) -> Result<GroupResponse, Failure> {
    let assignor = match h.assignor.as_deref() {
        Some(a) => Some(a.parse().map_err(|e: String| Failure::new(ErrorCode::InvalidArgument, e))?),
        None => None,
    };
    let req = weir_groups::HeartbeatRequest {
        member_id: h.member_id,
        instance_id: h.instance_id,
        member_epoch: h.member_epoch,
        topics: h.topics,
        owned: h.owned.map(partitions_of),
        session_timeout_ms: h.session_timeout_ms,
        rebalance_timeout_ms: h.rebalance_timeout_ms,
        assignor,
    };
    let r = coordinator.heartbeat(now, &h.group, req, &Topics(shard)).map_err(group_failure)?;
    Ok(GroupResponse::Heartbeat {
        error: ErrorCode::None,
        message: String::new(),
        member_id: r.member_id,
        member_epoch: r.member_epoch,
        heartbeat_interval_ms: r.heartbeat_interval_ms,
        assignment: r.assignment.map(assignments),
    })
}

/// The groups of every offsets partition this shard leads.
async fn list(shard: &Rc<Shard>) -> Result<GroupResponse, Failure> {
    let groups = call::list(shard).await.map_err(call::as_failure)?;
    let groups = groups
        .into_iter()
        .map(|g| GroupListing { group: g.group, state: g.state.to_string(), members: g.members })
        .collect();
    Ok(GroupResponse::ListGroups { error: ErrorCode::None, message: String::new(), groups })
}

/// Ticks in a row a busy slot may be skipped before the tick waits for it.
const TICK_SKIPS_MAX: u32 = 5;

/// How often the tick also forgets the offsets of deleted topics.
const DELETED_TOPICS_INTERVAL_MS: u64 = 10_000;

/// Ticks the coordinators of every offsets partition this shard leads, every
/// [`GROUP_TICK_INTERVAL_MS`], for as long as the shard runs: members whose sessions expired go,
/// offsets of deleted topics go, and what changed is written. A partition it leads is loaded
/// here if no request loaded it (after a restart or a failover), so its dead members expire
/// too; state of a leadership that ended is dropped.
pub async fn tick_loop(shard: Rc<Shard>) {
    let mut last_sweep = 0;
    // Topics in the table at the last sweep: offsets go only for topics that were there and
    // are gone, never for one this shard has not learned of yet.
    let mut known: Option<std::collections::BTreeSet<String>> = None;
    loop {
        shard.core().rt.sleep_ms(GROUP_TICK_INTERVAL_MS).await;
        let Some(n) = offsets_topic::partitions(&shard) else { continue };
        let now = shard.core().rt.monotonic_ms();
        let mut gone = std::collections::BTreeSet::new();
        if known.is_none() || now.saturating_sub(last_sweep) >= DELETED_TOPICS_INTERVAL_MS {
            last_sweep = now;
            let current: std::collections::BTreeSet<String> =
                shard.core().topics.borrow().topics.keys().cloned().collect();
            if let Some(known) = &known {
                gone = known.difference(&current).cloned().collect();
            }
            if !gone.is_empty() {
                tracing::info!(shard = shard.id, topics = ?gone, "forgetting the offsets of deleted topics");
            }
            known = Some(current);
        }
        for partition in 0..n {
            let slot = shard.groups.slot(partition);
            // A slot busy with a request is ticked next time, but not skipped for ever: its
            // classic rebalances and sessions time out only here.
            let mut state = match slot.state.try_lock() {
                Ok(state) => state,
                Err(_) if slot.ticks_skipped.get() < TICK_SKIPS_MAX => {
                    slot.ticks_skipped.set(slot.ticks_skipped.get() + 1);
                    continue;
                }
                Err(_) => slot.state.lock().await,
            };
            slot.ticks_skipped.set(0);
            // The wait for the lock may have taken a while: deadlines are judged on the time now.
            let now = shard.core().rt.monotonic_ms();
            if slot.leading(&shard).is_err() {
                slot.reset(&mut state);
                continue;
            }
            if now < slot.retry_at_ms.get() {
                continue;
            }
            match tick_slot(&shard, &slot, &mut state, now, &gone).await {
                Ok(due) => {
                    drop(state);
                    crate::transactions::drive_due(&shard, due);
                }
                Err(f) => {
                    // A partition that cannot be loaded (or written) rests, rather than being
                    // read again five times a second.
                    slot.retry_at_ms.set(now + slot::LOAD_RETRY_MS);
                    tracing::warn!(partition, error = %f.message, "groups of an offsets partition not ticked");
                }
            }
        }
    }
}

async fn tick_slot(
    shard: &Shard,
    slot: &Slot,
    state: &mut Option<slot::Loaded>,
    now: u64,
    deleted_topics: &std::collections::BTreeSet<String>,
) -> Result<Vec<weir_groups::TxnEnd>, Failure> {
    let coordinator = slot.load(shard, state).await?;
    coordinator.tick(now, &Topics(shard));
    // Transactions past their timeout are aborted; prepared ones (found by a load) ended.
    let due = coordinator.txn_due(now);
    // Offsets of topics deleted since the last sweep go away.
    for topic in deleted_topics {
        coordinator.delete_topic(topic);
    }
    let released = coordinator.take_classic_answers();
    slot.persist(shard, state).await?;
    slot.release(released);
    Ok(due)
}

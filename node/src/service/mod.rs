//! The `PartitionService`: the typed operations every front end calls (the native protocol
//! today, the Kafka listener later), the same whichever shard a request arrives on.
//!
//! Each operation names partitions; the service looks up their owners in the placement table,
//! runs what this shard owns itself ([`local`]) and sends the rest over the [`Bus`] as typed
//! [`ShardRequest`]s, batches moved as `Bytes`. Topic changes run on shard 0 ([`topics`]).
//!
//! One service per shard, owned by that shard's thread and shared by its tasks through `Rc`.

pub mod local;
pub mod topics;
pub mod types;

use crate::bus::{Bus, BusError, Serve, ShardReply, ShardRequest};
use crate::core::ShardCore;
use crate::disk::Disk;
use crate::runtime::Runtime;
use futures::future::LocalBoxFuture;
use std::rc::Rc;
use types::{Failure, FetchPartition, FetchedPartition, ProducePartition, Produced};
use weir_net::{Acks, ErrorCode, OffsetSpec};
use weir_replication::ShardId;

/// See the module documentation.
pub struct PartitionService<D: Disk, R: Runtime, B: Bus> {
    pub core: Rc<ShardCore<D, R>>,
    pub bus: Rc<B>,
    /// Serialises topic changes on shard 0: check, save, apply everywhere happen as one step,
    /// so two concurrent creates (or a create and a delete) cannot lose each other.
    topic_changes: tokio_rt::sync::Mutex<()>,
    /// Serves group calls other shards send this one; set once the shard (which owns the
    /// group coordinators) exists.
    group_handler: std::cell::RefCell<Option<GroupHandler>>,
}

/// Runs a group call on this shard's coordinators.
pub type GroupHandler =
    Rc<dyn Fn(crate::groups::call::GroupCall) -> LocalBoxFuture<'static, crate::groups::call::GroupAnswer>>;

impl<D: Disk, R: Runtime, B: Bus> std::fmt::Debug for PartitionService<D, R, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionService").field("shard", &self.core.id).finish_non_exhaustive()
    }
}

fn unavailable(e: BusError) -> Failure {
    Failure::new(ErrorCode::Unavailable, e.to_string())
}

fn wrong(to: ShardId, asked: &'static str, got: &ShardReply) -> Failure {
    let got = match got {
        ShardReply::Produce(_) => "Produce",
        ShardReply::Fetch(_) => "Fetch",
        ShardReply::ListOffsets(_) => "ListOffsets",
        ShardReply::RecordsDeleted(_) => "RecordsDeleted",
        ShardReply::Described(_) => "Described",
        ShardReply::TopicChanged(_) => "TopicChanged",
        ShardReply::TopicsApplied(_) => "TopicsApplied",
        ShardReply::Group(_) => "Group",
    };
    unavailable(BusError::WrongReply { shard: to.0, asked, got })
}

impl<D: Disk, R: Runtime, B: Bus> PartitionService<D, R, B> {
    pub fn new(core: Rc<ShardCore<D, R>>, bus: Rc<B>) -> Rc<Self> {
        Rc::new(Self {
            core,
            bus,
            topic_changes: tokio_rt::sync::Mutex::new(()),
            group_handler: std::cell::RefCell::new(None),
        })
    }

    /// Sets what serves the group calls of other shards.
    pub fn set_group_handler(&self, handler: GroupHandler) {
        *self.group_handler.borrow_mut() = Some(handler);
    }

    pub fn shard(&self) -> ShardId {
        self.core.id
    }

    /// The shard that serves `partition` of `topic`: the placement table's, or this one for a
    /// partition it does not know (it answers why).
    pub fn owner(&self, topic: &str, partition: u32) -> ShardId {
        self.core.topics.borrow().local_shard(topic, partition).unwrap_or(self.core.id)
    }

    /// Produces to each partition, all its batches or none; answers in request order.
    pub async fn produce(&self, acks: Acks, parts: Vec<ProducePartition>) -> Vec<Result<Produced, Failure>> {
        self.produce_within(acks, parts, None).await
    }

    /// [`produce`](Self::produce), answering `RequestTimedOut` for a partition whose acks did
    /// not come within `timeout_ms` (the batches stay appended: the outcome is unknown).
    pub async fn produce_within(
        &self,
        acks: Acks,
        parts: Vec<ProducePartition>,
        timeout_ms: Option<u64>,
    ) -> Vec<Result<Produced, Failure>> {
        if parts.iter().any(|p| &*p.topic == crate::groups::offsets_topic::OFFSETS_TOPIC) {
            // The groups' own log, written only by their coordinators (not through the service):
            // a record they cannot read would take the groups of its partition down.
            return Self::refuse_internal(parts);
        }
        let groups = self.group(parts, |p| self.owner(&p.topic, p.partition.0));
        let calls = groups.into_iter().map(|(to, idx, parts)| async move {
            let answers = if to == self.core.id {
                self.core.produce_many(acks, parts, timeout_ms).await
            } else {
                let n = parts.len();
                match self.bus.call(to, ShardRequest::Produce { acks, parts, timeout_ms }).await {
                    Ok(ShardReply::Produce(a)) => a,
                    Ok(other) => vec![Err(wrong(to, "Produce", &other)); n],
                    Err(e) => vec![Err(unavailable(e)); n],
                }
            };
            (idx, answers)
        });
        Self::ungroup(futures::future::join_all(calls).await)
    }

    /// Every partition of a produce refused, the internal ones as internal, the others as not
    /// attempted (a produce is refused whole).
    fn refuse_internal(parts: Vec<ProducePartition>) -> Vec<Result<Produced, Failure>> {
        let internal = crate::groups::offsets_topic::OFFSETS_TOPIC;
        parts
            .iter()
            .map(|p| {
                let m = if &*p.topic == internal {
                    format!("{internal} is internal: the group coordinators write it")
                } else {
                    format!("not written: the request also wrote to {internal}")
                };
                Err(Failure::new(ErrorCode::InvalidArgument, m))
            })
            .collect()
    }

    /// Reads each partition; when none has data, waits up to `max_wait_ms` for any to get some.
    /// Answers in request order.
    pub async fn fetch(
        &self,
        parts: Vec<FetchPartition>,
        max_wait_ms: u32,
    ) -> Vec<Result<FetchedPartition, Failure>> {
        self.fetch_within(parts, max_wait_ms, None).await
    }

    /// [`fetch`](Self::fetch), reading at most about `bytes_max` (if given) on each shard that
    /// owns some of the partitions: partitions past it are answered with their bounds only.
    pub async fn fetch_within(
        &self,
        parts: Vec<FetchPartition>,
        max_wait_ms: u32,
        bytes_max: Option<usize>,
    ) -> Vec<Result<FetchedPartition, Failure>> {
        let mut groups = self.group(parts, |p| self.owner(&p.topic, p.partition.0));
        if groups.len() == 1 {
            // One owner (always, for the native protocol): it waits for its own partitions.
            let (to, _, parts) = groups.pop().expect("one group");
            return self.fetch_from(to, parts, max_wait_ms, bytes_max).await;
        }
        // Several owners: look without waiting; if nothing is there, wait on all of them and
        // answer with the first that has data (the others' reads are dropped, nothing lost).
        let now = futures::future::join_all(groups.iter().map(|(to, idx, parts)| async move {
            (idx.clone(), self.fetch_from(*to, parts.clone(), 0, bytes_max).await)
        }))
        .await;
        let has_data = |a: &[Result<FetchedPartition, Failure>]| {
            a.iter().any(|r| r.as_ref().map_or(true, |f| !f.batches.is_empty()))
        };
        if max_wait_ms == 0 || now.iter().any(|(_, a)| has_data(a)) {
            return Self::ungroup(now);
        }
        let waits = groups.iter().map(|(to, idx, parts)| {
            Box::pin(async move {
                (idx.clone(), self.fetch_from(*to, parts.clone(), max_wait_ms, bytes_max).await)
            })
        });
        let (first, _, _) = futures::future::select_all(waits).await;
        let mut merged = now;
        if let Some(slot) = merged.iter_mut().find(|(idx, _)| *idx == first.0) {
            *slot = first;
        }
        Self::ungroup(merged)
    }

    async fn fetch_from(
        &self,
        to: ShardId,
        parts: Vec<FetchPartition>,
        max_wait_ms: u32,
        bytes_max: Option<usize>,
    ) -> Vec<Result<FetchedPartition, Failure>> {
        if to == self.core.id {
            return self.core.fetch_local(&parts, max_wait_ms, bytes_max).await;
        }
        let n = parts.len();
        match self.bus.call(to, ShardRequest::Fetch { parts, max_wait_ms, bytes_max }).await {
            Ok(ShardReply::Fetch(a)) => a,
            Ok(other) => vec![Err(wrong(to, "Fetch", &other)); n],
            Err(e) => vec![Err(unavailable(e)); n],
        }
    }

    pub async fn list_offsets(&self, topic: &str, partition: u32, spec: OffsetSpec) -> Result<u64, Failure> {
        let to = self.owner(topic, partition);
        if to == self.core.id {
            return self.core.list_offsets_local(topic, partition, spec).await;
        }
        let req = ShardRequest::ListOffsets { topic: topic.to_owned(), partition, spec };
        match self.bus.call(to, req).await {
            Ok(ShardReply::ListOffsets(a)) => a,
            Ok(other) => Err(wrong(to, "ListOffsets", &other)),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes the records of a partition below `offset` (`None`: its high watermark), as
    /// Kafka's DeleteRecords, on the shard that owns it; returns its log start after. Only its
    /// leader deletes; its followers follow (see `ShardCore::follow_log_starts`).
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        offset: Option<u64>,
    ) -> Result<u64, Failure> {
        let to = self.owner(topic, partition);
        if to == self.core.id {
            return self.core.delete_records_local(topic, partition, offset).await;
        }
        let req = ShardRequest::DeleteRecords { topic: topic.to_owned(), partition, offset };
        match self.bus.call(to, req).await {
            Ok(ShardReply::RecordsDeleted(a)) => a,
            Ok(other) => Err(wrong(to, "RecordsDeleted", &other)),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Splits items by owner, keeping each one's position in the request.
    fn group<T>(&self, items: Vec<T>, owner: impl Fn(&T) -> ShardId) -> Vec<(ShardId, Vec<usize>, Vec<T>)> {
        let mut groups: Vec<(ShardId, Vec<usize>, Vec<T>)> = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let to = owner(&item);
            match groups.iter_mut().find(|g| g.0 == to) {
                Some(g) => {
                    g.1.push(i);
                    g.2.push(item);
                }
                None => groups.push((to, vec![i], vec![item])),
            }
        }
        groups
    }

    /// Puts the answers of groups back in request order.
    fn ungroup<T>(groups: Vec<(Vec<usize>, Vec<T>)>) -> Vec<T> {
        let mut all: Vec<(usize, T)> =
            groups.into_iter().flat_map(|(idx, answers)| idx.into_iter().zip(answers)).collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, a)| a).collect()
    }

    /// Serves a request another shard sent this one.
    pub async fn serve_shard_request(&self, req: ShardRequest) -> ShardReply {
        match req {
            ShardRequest::Produce { acks, parts, timeout_ms } => {
                ShardReply::Produce(self.core.produce_many(acks, parts, timeout_ms).await)
            }
            ShardRequest::Fetch { parts, max_wait_ms, bytes_max } => {
                ShardReply::Fetch(self.core.fetch_local(&parts, max_wait_ms, bytes_max).await)
            }
            ShardRequest::ListOffsets { topic, partition, spec } => {
                ShardReply::ListOffsets(self.core.list_offsets_local(&topic, partition, spec).await)
            }
            ShardRequest::Describe { topic, partitions } => {
                ShardReply::Described(self.core.describe_local(&topic, &partitions).await)
            }
            ShardRequest::CreateTopic { name, partitions, config } => {
                ShardReply::TopicChanged(self.create_topic(name, partitions, config).await)
            }
            ShardRequest::DeleteTopic { name } => ShardReply::TopicChanged(self.delete_topic(name).await),
            ShardRequest::DeleteRecords { topic, partition, offset } => {
                ShardReply::RecordsDeleted(self.core.delete_records_local(&topic, partition, offset).await)
            }
            ShardRequest::AddPartitions { name, count, validate_only } => {
                ShardReply::TopicChanged(self.add_partitions(name, count, validate_only).await)
            }
            ShardRequest::ApplyTopics(table) => {
                ShardReply::TopicsApplied(self.core.apply_topics(table).await)
            }
            ShardRequest::Group(call) => {
                let handler = self.group_handler.borrow().clone();
                match handler {
                    Some(h) => ShardReply::Group(h(call).await),
                    None => {
                        let f = Failure::new(ErrorCode::NotCoordinator, "the shard is starting");
                        ShardReply::Group(crate::groups::call::answer_error(&call, f.into()))
                    }
                }
            }
        }
    }
}

impl<D: Disk, R: Runtime, B: Bus> Serve for PartitionService<D, R, B> {
    fn serve(self: Rc<Self>, _from: ShardId, req: ShardRequest) -> LocalBoxFuture<'static, ShardReply> {
        Box::pin(async move { self.serve_shard_request(req).await })
    }
}

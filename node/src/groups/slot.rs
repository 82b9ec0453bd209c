//! The coordinator of one partition of `__consumer_offsets`, on the shard that leads it: the
//! groups of that partition, loaded from its log on first use and again whenever the
//! partition's leader epoch changed, and every change written to it (acks=all) before the
//! request that made it is answered.
//!
//! One operation at a time: a request, a tick and a load each hold the slot's lock from the
//! state change to the end of its write, so the log holds changes in the order they were made.
//! A write that fails drops the loaded state: the next operation loads it again from the log,
//! which holds what was acknowledged.

use super::offsets_topic::OFFSETS_TOPIC;
use crate::runtime::Runtime;
use crate::service::local::Aligned;
use crate::service::types::{Failure, FetchPartition, ProducePartition};
use crate::shard::Shard;
use bytes::Bytes;
use weir_groups::{Coordinator, CoordinatorConfig, TopicSource};
use weir_log::batch::{BatchBuilder, BatchView, ProducerStamp, Record};
use weir_net::{Acks, ErrorCode};
use weir_replication::PartitionId;

/// Bytes a load reads at a time.
const LOAD_FETCH_BYTES: usize = 1 << 20;
/// How long a group change waits for its write to reach every in-sync replica. The slot is held
/// meanwhile, so its other members' heartbeats wait too: shorter than the default session
/// (45 s) by far, though not than the shortest allowed (1 s).
const PERSIST_TIMEOUT_MS: u64 = 5_000;

/// A loaded coordinator and the leader epoch it was loaded in.
#[derive(Debug)]
pub struct Loaded {
    pub coordinator: Coordinator,
    epoch: u32,
}

/// See the module documentation. Owned by the shard's group service.
#[derive(Debug)]
pub struct Slot {
    pub partition: u32,
    pub state: tokio_rt::sync::Mutex<Option<Loaded>>,
    /// The tick leaves the slot alone until then, after it failed to load or write it.
    pub retry_at_ms: std::cell::Cell<u64>,
    /// Requests the coordinator holds (classic joins and syncs), by the token it was given
    /// with them. Dropped, so answered "not coordinator", whenever the loaded state goes.
    waiters: std::cell::RefCell<std::collections::HashMap<u64, Waiter>>,
    next_token: std::cell::Cell<u64>,
    /// Ticks in a row that found the slot busy.
    pub ticks_skipped: std::cell::Cell<u32>,
}

/// Where a held request's answer goes.
type Waiter = futures::channel::oneshot::Sender<weir_groups::ClassicAnswer>;

/// How long the tick leaves a slot alone after it failed to load or write it.
pub const LOAD_RETRY_MS: u64 = 5_000;

/// The topics' partition counts, as this shard's topic table has them.
#[derive(Debug)]
pub struct Topics<'a>(pub &'a Shard);

impl TopicSource for Topics<'_> {
    fn partitions(&self, topic: &str) -> Option<u32> {
        self.0.core().topics.borrow().topics.get(topic).map(|t| t.partitions)
    }
}

impl Slot {
    pub fn new(partition: u32) -> Self {
        Self {
            partition,
            state: tokio_rt::sync::Mutex::new(None),
            retry_at_ms: std::cell::Cell::new(0),
            waiters: Default::default(),
            next_token: std::cell::Cell::new(0),
            ticks_skipped: std::cell::Cell::new(0),
        }
    }

    /// A token for a request the coordinator may hold, and where its answer will come.
    pub fn hold(&self) -> (u64, futures::channel::oneshot::Receiver<weir_groups::ClassicAnswer>) {
        let token = self.next_token.get() + 1;
        self.next_token.set(token);
        let (tx, rx) = futures::channel::oneshot::channel();
        self.waiters.borrow_mut().insert(token, tx);
        (token, rx)
    }

    /// A token whose request was answered at once.
    pub fn forget(&self, token: u64) {
        self.waiters.borrow_mut().remove(&token);
    }

    /// Delivers answers the coordinator released. A waiter gone (its request ended) is skipped.
    pub fn release(&self, answers: Vec<(u64, weir_groups::ClassicAnswer)>) {
        let mut waiters = self.waiters.borrow_mut();
        for (token, answer) in answers {
            if let Some(tx) = waiters.remove(&token) {
                let _ = tx.send(answer);
            }
        }
    }

    /// Answers every held request "not coordinator" (at shutdown: they would hold it up).
    pub fn drop_held(&self) {
        self.waiters.borrow_mut().clear();
    }

    /// Drops the loaded state and with it every held request, which is answered "not
    /// coordinator": the coordinator that held them is gone.
    pub fn reset(&self, state: &mut Option<Loaded>) {
        *state = None;
        self.waiters.borrow_mut().clear();
    }

    /// The partition's leader epoch if this shard leads it and its log is all committed (a new
    /// leader's high watermark may lag its log end until its followers catch up: the groups are
    /// loaded only once every record is readable).
    pub fn leading(&self, shard: &Shard) -> Result<u32, Failure> {
        let core = shard.core();
        let p = core.find(OFFSETS_TOPIC, self.partition).map_err(|f| not_coordinator(f.message))?;
        if !p.rep.replica.borrow().is_leader() {
            return Err(not_coordinator(format!("{OFFSETS_TOPIC}/{} is led elsewhere", self.partition)));
        }
        let state = p.state();
        if p.readable_end() < state.log_end() {
            let m = format!("{OFFSETS_TOPIC}/{} is catching up", self.partition);
            return Err(Failure::new(ErrorCode::CoordinatorLoadInProgress, m));
        }
        Ok(state.leader_epoch())
    }

    /// The loaded coordinator, loading it first if there is none or it is of an earlier
    /// leadership. The caller holds the lock.
    pub async fn load<'a>(
        &self,
        shard: &Shard,
        state: &'a mut Option<Loaded>,
    ) -> Result<&'a mut Coordinator, Failure> {
        let epoch = self.leading(shard)?;
        if state.as_ref().is_none_or(|l| l.epoch != epoch) {
            self.reset(state);
            let coordinator = self.read_log(shard, epoch).await?;
            *state = Some(Loaded { coordinator, epoch });
        }
        Ok(&mut state.as_mut().expect("loaded above").coordinator)
    }

    /// A coordinator rebuilt from every record of the partition, led in `epoch`.
    async fn read_log(&self, shard: &Shard, epoch: u32) -> Result<Coordinator, Failure> {
        let core = shard.core();
        let now = core.rt.monotonic_ms();
        let mut coordinator = Coordinator::new(coordinator_config(shard.config.batch_bytes_max));
        // Member ids of this load are unlike those of any other: a member fenced in an earlier
        // leadership (or before a restart) can never pass for a new one.
        let wall = core.rt.now_ms();
        coordinator.set_member_id_prefix(&format!("{epoch}-{wall:x}-"));
        let p = core.find(OFFSETS_TOPIC, self.partition).map_err(loading)?;
        let mut offset = p.log_start();
        let end = p.readable_end();
        let mut records = 0u64;
        while offset < end {
            let part = FetchPartition {
                topic: OFFSETS_TOPIC.into(),
                partition: PartitionId(self.partition),
                offset,
                max_bytes: LOAD_FETCH_BYTES,
                read_committed: false,
            };
            let fetched = core.fetch_now(&part).await.map_err(loading)?;
            if fetched.batches.is_empty() {
                break;
            }
            offset = replay(&mut coordinator, now, fetched.batches, offset, &mut records)?;
        }
        if offset < end {
            // Never serve groups from part of their log: offsets and members would be missing.
            return Err(loading(Failure::new(
                ErrorCode::Unavailable,
                format!("read stopped at {offset} of {end}"),
            )));
        }
        tracing::info!(partition = self.partition, records, end, "group coordinator loaded");
        Ok(coordinator)
    }

    /// Writes the coordinator's changes since the last write, and waits until every in-sync
    /// replica has them. On failure the loaded state is dropped (see the module docs).
    pub async fn persist(&self, shard: &Shard, state: &mut Option<Loaded>) -> Result<(), Failure> {
        let Some(loaded) = state.as_mut() else { return Ok(()) };
        let records = loaded.coordinator.take_records();
        if records.is_empty() {
            return Ok(());
        }
        let result = self.append(shard, &records).await;
        if let Err(f) = &result {
            tracing::warn!(partition = self.partition, error = %f.message, "group change not written; reloading");
            self.reset(state);
        }
        // Whatever kept it from the log (a leader move, a timeout), the client retries, if need
        // be at the new coordinator.
        result.map_err(loading)
    }

    async fn append(&self, shard: &Shard, records: &[weir_groups::Record]) -> Result<(), Failure> {
        let core = shard.core();
        let now = core.rt.now_ms() as i64;
        let mut batches = Vec::new();
        let mut builder = BatchBuilder::new(shard.config.batch_bytes_max);
        for r in records {
            let record =
                Record { key: Some(&r.key), value: r.value.as_deref(), headers: &[], timestamp: now };
            if builder.push(&record).is_err() {
                batches.extend_from_slice(builder.seal_reset(ProducerStamp::default()).as_bytes());
                builder.push(&record).map_err(|e| Failure::new(ErrorCode::InvalidArgument, e.to_string()))?;
            }
        }
        batches.extend_from_slice(builder.seal(ProducerStamp::default()).as_bytes());
        let part = ProducePartition {
            topic: OFFSETS_TOPIC.into(),
            partition: PartitionId(self.partition),
            batches: Bytes::from(batches),
            kafka_payloads: false,
            txn: Default::default(),
        };
        core.produce_local_within(Acks::All, part, Some(PERSIST_TIMEOUT_MS)).await.map(|_| ())
    }
}

/// Room a classic member's record needs beside its metadata and assignment (its key, its JSON,
/// the batch's header and columns), generously.
const CLASSIC_RECORD_OVERHEAD_BYTES: usize = 16 << 10;

/// The coordinators' settings on a node whose batches hold at most `batch_bytes_max`: a
/// classic member's metadata and assignment each within half of what a record may hold, so that
/// every record the coordinator writes fits a batch.
fn coordinator_config(batch_bytes_max: usize) -> CoordinatorConfig {
    let half = batch_bytes_max.saturating_sub(CLASSIC_RECORD_OVERHEAD_BYTES) / 2;
    let d = CoordinatorConfig::default();
    CoordinatorConfig {
        classic_metadata_bytes_max: d.classic_metadata_bytes_max.min(half),
        classic_assignment_bytes_max: d.classic_assignment_bytes_max.min(half),
        ..d
    }
}

/// Replays the records of `batches` at or after `from` into `coordinator`; returns the offset
/// after the last batch.
fn replay(
    coordinator: &mut Coordinator,
    now: u64,
    batches: Bytes,
    from: u64,
    records: &mut u64,
) -> Result<u64, Failure> {
    let aligned = Aligned::new(batches);
    let mut rest = aligned.bytes();
    let mut next = from;
    while !rest.is_empty() {
        // Validated in full, as a consumer does: a load is rare, and a view needs it.
        let view = BatchView::validate(rest, usize::MAX)
            .map_err(|e| Failure::new(ErrorCode::CorruptBatch, e.to_string()))?;
        for r in view.records().filter(|r| r.offset >= from) {
            let Some(key) = r.key else { continue };
            coordinator.replay(now, key, r.value).map_err(|e| {
                Failure::new(ErrorCode::CorruptBatch, format!("{OFFSETS_TOPIC} record at {}: {e}", r.offset))
            })?;
            *records += 1;
        }
        next = next.max(view.header().next_offset());
        rest = &rest[view.bytes().len()..];
    }
    Ok(next)
}

/// A failure to read or write the groups' log, as the client should take it: retriable, at
/// the coordinator that leads the partition now. Failures that will not pass by themselves (a
/// corrupt batch, a record too large) keep their codes: retrying them would only stall clients.
fn loading(f: Failure) -> Failure {
    let code = match f.code {
        ErrorCode::NotLeader
        | ErrorCode::NotOwner
        | ErrorCode::LeaderNotAvailable
        | ErrorCode::UnknownPartition => ErrorCode::NotCoordinator,
        ErrorCode::RequestTimedOut
        | ErrorCode::OutcomeUnknown
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::Unavailable
        | ErrorCode::StorageError => ErrorCode::CoordinatorLoadInProgress,
        code => code,
    };
    Failure::new(code, f.message)
}

pub fn not_coordinator(message: String) -> Failure {
    Failure::new(ErrorCode::NotCoordinator, message)
}

//! Operations on the partitions a shard serves itself: what the owner of a partition runs for a
//! produce, fetch or list-offsets, whichever shard the request came in on.

use super::types::{
    Accepts, Failure, FetchPartition, FetchedPartition, PartitionStatus, ProducePartition, Produced, TxnWrite,
};
use crate::core::ShardCore;
use crate::disk::Disk;
use crate::partition::Partition;
use crate::runtime::Runtime;
use bytes::Bytes;
use futures::FutureExt;
use std::rc::Rc;
use weir_log::batch::{BatchHeader, BatchView};
use weir_log::{BatchError, LogError};

use weir_net::{Acks, ErrorCode, OffsetSpec};

/// Longest a fetch may wait for data.
pub const FETCH_WAIT_MS_MAX: u32 = 30_000;

/// The answer to a failed log operation.
pub fn log_failure(e: LogError) -> Failure {
    let code = match &e {
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::Batch { source: BatchError::TooLarge { .. }, .. } => ErrorCode::BatchTooLarge,
        LogError::Batch { .. } | LogError::Corrupt { .. } => ErrorCode::CorruptBatch,
        _ => ErrorCode::StorageError,
    };
    Failure::new(code, e.to_string())
}

fn batch_failure(e: BatchError) -> Failure {
    match e {
        BatchError::TooLarge { .. } => Failure::new(ErrorCode::BatchTooLarge, e.to_string()),
        e => Failure::new(ErrorCode::CorruptBatch, e.to_string()),
    }
}

/// Where a fetch reads: the partition, its high watermark, and the end of what is readable.
type FetchPosition<S> = (Rc<Partition<S>>, u64, u64);

/// Batches of a produce in memory a batch view may borrow: 16-byte aligned, as rkyv needs.
/// Batches sit at 16-byte multiples within a frame, so a frame read into an aligned buffer needs
/// no copy; anything else is copied once, here.
pub(crate) enum Aligned {
    Shared(Bytes),
    Copied(rkyv::util::AlignedVec<16>),
}

impl Aligned {
    pub(crate) fn new(bytes: Bytes) -> Self {
        if (bytes.as_ptr() as usize).is_multiple_of(16) {
            return Aligned::Shared(bytes);
        }
        let mut v = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        v.extend_from_slice(&bytes);
        Aligned::Copied(v)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Aligned::Shared(b) => b,
            Aligned::Copied(v) => v,
        }
    }
}

/// Where a fetch of `part` must stop for its isolation: for read committed, the first offset of
/// the oldest open transaction of `p`, raised to its log start (as Kafka's last stable offset
/// never falls below it); else nowhere (`u64::MAX`). A partition that never held a
/// transaction's batch has none open: its log is not locked for it.
async fn first_unstable<S: weir_log::storage::Storage + Clone>(
    p: &Partition<S>,
    part: &FetchPartition,
) -> u64 {
    stable_view(p, part, None).await.0
}

/// [`first_unstable`], and with `readable` (the end of what the fetch may read otherwise) the
/// aborted transactions with records from the fetch offset to the end it may read: both under
/// one lock of the log.
async fn stable_view<S: weir_log::storage::Storage + Clone>(
    p: &Partition<S>,
    part: &FetchPartition,
    readable: Option<u64>,
) -> (u64, Vec<weir_log::transactions::AbortedTxn>) {
    if !part.read_committed || !p.txns_seen.get() {
        return (u64::MAX, Vec::new());
    }
    let log = p.log.lock().await;
    let txns = log.transactions();
    let first = txns.first_unstable().map_or(u64::MAX, |f| f.max(p.log_start()));
    let aborted = match readable.map(|r| r.min(first)) {
        Some(end) if part.offset < end => txns.aborted_between(part.offset, end),
        _ => Vec::new(),
    };
    (first, aborted)
}

/// Validates every batch (CRC, header, rkyv, columns) before any is appended: the request is
/// refused whole if one is bad. A Kafka batch kept as sent is taken only with `kafka_payloads`
/// (the Kafka front end walked its records; its frame, CRC and header are checked here).
pub(crate) fn validate(
    bytes: &[u8],
    limit: usize,
    kafka_payloads: bool,
    txn: TxnWrite,
) -> Result<Vec<BatchView<'_>>, Failure> {
    let mut views = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let h = BatchHeader::decode(rest)
            .and_then(|h| h.check_frame(limit).map(|()| h))
            .map_err(batch_failure)?;
        let len = h.batch_len as usize;
        let one = rest
            .get(..len)
            .ok_or_else(|| batch_failure(BatchError::Truncated { needed: len, available: rest.len() }))?;
        let view = if kafka_payloads && h.kafka_fields().is_some() {
            BatchView::validate_stored(one, limit)
        } else {
            BatchView::validate(one, limit)
        };
        let view = view.map_err(batch_failure)?;
        // Produced batches have dense offsets; the log refuses others, so refuse them here,
        // before anything of the request is appended.
        let h = view.header();
        let allowed = match txn {
            TxnWrite::None => !h.is_transactional(),
            TxnWrite::Data => h.is_transactional() && !h.is_control(),
            TxnWrite::Markers => h.is_control(),
        };
        if !allowed {
            let what = if h.is_control() { "a transaction marker" } else { "a transactional batch" };
            return Err(Failure::new(ErrorCode::InvalidRecord, format!("{what} is not taken here")));
        }
        if h.last_offset_delta != h.record_count - 1 {
            return Err(Failure::new(ErrorCode::CorruptBatch, "batch offsets are not dense"));
        }
        views.push(view);
        rest = &rest[len..];
    }
    if views.is_empty() {
        return Err(Failure::new(ErrorCode::InvalidArgument, "produce without batches"));
    }
    Ok(views)
}

impl<D: Disk, R: Runtime> ShardCore<D, R> {
    /// The partition of this shard, or why it cannot be served here.
    pub fn find(&self, topic: &str, partition: u32) -> Result<Rc<Partition<D::Storage>>, Failure> {
        let count = self.topics.borrow().topics.get(topic).map(|m| m.partitions);
        match count {
            None => Err(Failure::new(ErrorCode::UnknownTopic, format!("no topic {topic:?}"))),
            Some(n) if partition >= n => {
                Err(Failure::new(ErrorCode::UnknownPartition, format!("{topic} has {n} partitions")))
            }
            Some(_) => self.partition(topic, partition).ok_or_else(|| match self.offline(topic, partition) {
                // Retriable: upkeep keeps trying to open it.
                Some(o) => Failure::new(
                    ErrorCode::StorageError,
                    format!("{topic}/{partition} is offline: {}", o.error),
                ),
                // Being opened right now (a topic being created): retriable.
                None if self.topics.borrow().local_shard(topic, partition) == Some(self.id) => {
                    Failure::new(ErrorCode::Unavailable, format!("{topic}/{partition} is being opened"))
                }
                None if self.clustered() => self.not_hosted(topic, partition),
                None => Failure::new(
                    ErrorCode::NotOwner,
                    format!("{topic}/{partition} is not served by shard {}", self.id.0),
                ),
            }),
        }
    }

    /// Hands the batches to the partition's replica, which validates them (CRC, header, rkyv,
    /// columns) and appends them all or none, and answers once they are as durable as `acks`
    /// asks: the leader's copy (synced with fsync-before-ack, written out otherwise), or every
    /// in-sync replica's. With `Acks::None` the answer comes once the batches are appended (not
    /// yet durable), the rest running as a task of its own.
    pub async fn produce_local(&self, acks: Acks, part: ProducePartition) -> Result<Produced, Failure> {
        self.produce_local_within(acks, part, None).await
    }

    /// [`produce_local`](Self::produce_local), answering `RequestTimedOut` (outcome unknown,
    /// the batches staying appended) if the acks did not come within `timeout_ms`.
    pub async fn produce_local_within(
        &self,
        acks: Acks,
        part: ProducePartition,
        timeout_ms: Option<u64>,
    ) -> Result<Produced, Failure> {
        let p = self.find(&part.topic, part.partition.0)?;
        if let Some(why) = self.space_refusal() {
            return Err(Failure::new(ErrorCode::StorageError, why));
        }
        if part.batches.is_empty() {
            return Err(Failure::new(ErrorCode::InvalidArgument, "produce without batches"));
        }
        // Held until the answer is decided, in the detached task for acks=none too.
        let producing = p.begin_produce();
        let (placed, answer) = p
            .submit(
                acks,
                part.batches,
                Accepts { kafka_payloads: part.kafka_payloads, txn: part.txn },
                self.rt.monotonic_ms(),
            )
            .map_err(|e| crate::replica_driver::replica_failure(e, self.leader_address(&p)))?;
        if acks == Acks::None {
            let name = p.name.clone();
            self.rt.spawn(Box::pin(async move {
                let _producing = producing;
                if let Ok(Err(f)) = answer.await {
                    tracing::error!(partition = %name, message = %f.message, "write after an acks=none produce failed");
                }
            }));
            // Answered once the batches are validated and placed (not once durable): a corrupt
            // batch is refused, and the base offset is where they really landed.
            let range = placed.await.unwrap_or_else(|_| {
                Err(Failure::new(ErrorCode::OutcomeUnknown, "outcome unknown: the produce was dropped"))
            })?;
            return Ok(Produced { base_offset: range.base, log_start: p.log_start() });
        }
        let mut answer = answer;
        let timer = match timeout_ms {
            Some(ms) => self.rt.sleep_ms(ms),
            None => Box::pin(futures::future::pending()),
        };
        let result = match futures::future::select(&mut answer, timer).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(((), _)) => {
                // The produce goes on (its batches are appended, and may commit): the guard
                // stays held until it is decided, as for acks=none.
                self.rt.spawn(Box::pin(async move {
                    let _producing = producing;
                    let _ = answer.await;
                }));
                let why = format!("not acknowledged within {} ms; outcome unknown", timeout_ms.unwrap_or(0));
                return Err(Failure::new(ErrorCode::RequestTimedOut, why));
            }
        };
        let result = result.unwrap_or_else(|_| {
            Err(Failure::new(ErrorCode::OutcomeUnknown, "outcome unknown: the partition was closed"))
        });
        drop(producing);
        let range = result?;
        Ok(Produced { base_offset: range.base, log_start: p.log_start() })
    }

    /// Where the leader of `p` can be reached, as its replica knows it: the node's id and, when
    /// the cluster metadata names it, its host and port.
    pub fn leader_address(&self, p: &Partition<D::Storage>) -> Option<String> {
        let leader = p.rep.replica.borrow().view().and_then(|v| v.leader)?;
        Some(self.node_address(leader))
    }

    /// Produces to several partitions of this shard at once: their appends and syncs overlap.
    /// Answers in request order.
    pub async fn produce_many(
        &self,
        acks: Acks,
        parts: Vec<ProducePartition>,
        timeout_ms: Option<u64>,
    ) -> Vec<Result<Produced, Failure>> {
        let produce = |part| self.produce_local_within(acks, part, timeout_ms);
        futures::future::join_all(parts.into_iter().map(produce)).await
    }

    /// The answer for a partition of which this node holds no replica: `NotLeader`, naming the
    /// leader (id and address) if there is one.
    fn not_hosted(&self, topic: &str, partition: u32) -> Failure {
        let view = self.cluster.borrow();
        let leader =
            view.as_ref().and_then(|v| v.meta.partition(topic, partition)).and_then(|(_, e)| e.state.leader);
        drop(view);
        match leader {
            Some(l) => Failure::new(
                ErrorCode::NotLeader,
                format!("{topic}/{partition} is not led by this node; leader: {}", self.node_address(l)),
            ),
            None => {
                Failure::new(ErrorCode::LeaderNotAvailable, format!("{topic}/{partition} has no leader now"))
            }
        }
    }

    /// Reads what one partition has from `offset` now, without waiting: empty at the high
    /// watermark. In a cluster only the leader serves consumers.
    pub async fn fetch_now(&self, part: &FetchPartition) -> Result<FetchedPartition, Failure> {
        let (p, hw, readable) = self.fetch_position(part)?;
        let (offset, max_bytes) = (part.offset, part.max_bytes.clamp(1, self.config.request_bytes_max));
        // Read committed: nothing at or past the oldest open transaction. (Read uncommitted is
        // told the high watermark as its last stable offset, which it does not use: the log is
        // not locked for it.)
        let (first_unstable, aborted) = stable_view(&p, part, Some(readable)).await;
        let last_stable = hw.min(first_unstable);
        let readable = readable.min(first_unstable);
        let answer = |batches: Bytes, aborted: Vec<_>| FetchedPartition {
            high_watermark: hw,
            log_start: p.log_start(),
            batches,
            last_stable,
            aborted,
        };
        if offset >= readable {
            return Ok(answer(Bytes::new(), Vec::new()));
        }
        // A read ahead from this offset is on its way: its batches are the ones wanted.
        if let Some(reading) = p.read_ahead_at(offset) {
            reading.0.await;
        }
        // The shard's batch cache answers a read at the tail without I/O or a copy, what was
        // read ahead one catching up without I/O now.
        let plan = p.log.lock().await.plan_fetch(offset, max_bytes, readable).map_err(log_failure)?;
        let batches = match plan {
            Some(plan) => {
                let fetch = plan.execute().await.map_err(log_failure)?;
                if fetch.from_device && !fetch.bytes.is_empty() {
                    self.read_ahead(&p, fetch.next_offset);
                }
                fetch.bytes
            }
            None => Bytes::new(),
        };
        // The aborted transactions were taken with the stable end: the log only grows since,
        // and a transaction aborted since began at or past that end.
        let aborted = if batches.is_empty() { Vec::new() } else { aborted };
        Ok(answer(batches, aborted))
    }

    /// Starts reading ahead of a consumer catching up, which reads on from `from`, unless a read
    /// of `p` is in flight, enough is read already, or the log is busy (an append or sync holds
    /// it: the answer is not held back for this): the device reads while the consumer does,
    /// and the next fetch finds its batches in memory. A read that fails is dropped: the fetch
    /// that wants its batches reads (and reports) them itself.
    fn read_ahead(&self, p: &Rc<Partition<D::Storage>>, from: u64) {
        let bytes_max = self.config.read_ahead_bytes_max;
        if bytes_max == 0 || p.reading_ahead() {
            return;
        }
        let Some(planned) = p.log.try_lock().and_then(|log| log.plan_read_ahead(from, bytes_max)) else {
            return;
        };
        let (plan, generation, start) = planned;
        // Weak: the partition keeps the read in flight, and the read must not keep it.
        let part = Rc::downgrade(p);
        let reading = async move {
            let read = plan.execute().await;
            let Some(part) = part.upgrade() else { return };
            if let Ok(read) = read {
                let bytes = Bytes::copy_from_slice(read.bytes());
                part.log.lock().await.complete_read_ahead(bytes, generation, start);
            }
            part.read_ahead_done();
        };
        let reading = reading.boxed_local().shared();
        p.set_read_ahead(start, crate::partition::ReadingAhead(reading.clone()));
        self.rt.spawn(reading.boxed_local());
    }

    /// What a fetch of `part` would answer, without its records: its bounds, or why it fails.
    async fn fetch_bounds(&self, part: &FetchPartition) -> Result<FetchedPartition, Failure> {
        let (p, hw, _) = self.fetch_position(part)?;
        let first_unstable = first_unstable(&p, part).await;
        Ok(FetchedPartition {
            high_watermark: hw,
            log_start: p.log_start(),
            batches: Bytes::new(),
            last_stable: hw.min(first_unstable),
            aborted: Vec::new(),
        })
    }

    /// The partition a fetch reads, its high watermark and the end of what it may read (see
    /// [`FetchPosition`]); or why
    /// the fetch fails (not served here, not the leader, offset out of range).
    fn fetch_position(&self, part: &FetchPartition) -> Result<FetchPosition<D::Storage>, Failure> {
        let p = self.find(&part.topic, part.partition.0)?;
        if self.clustered() && !p.rep.replica.borrow().is_leader() {
            let (topic, index) = p.key();
            return Err(self.not_hosted(&topic, index));
        }
        let (offset, hw, start) = (part.offset, p.high_watermark(), p.log_start());
        // Records are read below the replica's own high watermark; an offset above it but within
        // what consumers were shown (after a reopen) or what the log holds (a new leader's high
        // watermark may start below its predecessor's) is answered empty: it will be readable.
        let readable = p.readable_end();
        let end = hw.max(p.state().log_end());
        if offset > end || offset < start {
            return Err(Failure::new(
                ErrorCode::OffsetOutOfRange,
                format!("offset {offset} outside [{start}, {end}]"),
            ));
        }
        Ok((p, hw, readable))
    }

    /// Reads `parts` in order, each within what is left of `bytes_max` (all of it at least one
    /// batch, whatever its size; the first read may take one batch past the budget): once it is
    /// spent, the rest are answered with their bounds only. So a fetch of many partitions holds
    /// at most `bytes_max` plus one batch, however many it names.
    async fn read_within(
        &self,
        parts: &[FetchPartition],
        bytes_max: usize,
    ) -> Vec<Result<FetchedPartition, Failure>> {
        let mut left = bytes_max;
        let mut answers = Vec::with_capacity(parts.len());
        for part in parts {
            if left == 0 {
                answers.push(self.fetch_bounds(part).await);
                continue;
            }
            let clamped = FetchPartition { max_bytes: part.max_bytes.min(left), ..part.clone() };
            let answer = self.fetch_now(&clamped).await;
            if let Ok(f) = &answer {
                left = left.saturating_sub(f.batches.len());
            }
            answers.push(answer);
        }
        answers
    }

    /// Reads each partition (within `bytes_max` in all, if given: see `read_within`); when none
    /// has data, waits up to `max_wait_ms` for any to get some.
    pub async fn fetch_local(
        &self,
        parts: &[FetchPartition],
        max_wait_ms: u32,
        bytes_max: Option<usize>,
    ) -> Vec<Result<FetchedPartition, Failure>> {
        if parts.is_empty() {
            return Vec::new();
        }
        // The clock reads whole milliseconds, cut down: one more, so a wait never ends early
        // (and none for no wait at all).
        let wait_ms = u64::from(max_wait_ms.min(FETCH_WAIT_MS_MAX));
        let deadline = self.rt.monotonic_ms() + wait_ms + u64::from(wait_ms > 0);
        loop {
            // A budget of nothing would read nothing and never wait: at least a byte.
            let answers = self.read_within(parts, bytes_max.map_or(usize::MAX, |b| b.max(1))).await;
            let ready = answers.iter().any(|a| a.as_ref().map_or(true, |f| !f.batches.is_empty()));
            let left = deadline.saturating_sub(self.rt.monotonic_ms());
            if ready || left == 0 {
                return answers;
            }
            // Wait for any of the partitions to grow, or the deadline. The waits are registered
            // before looking again, so a write that lands in between is not missed.
            let served: Option<Vec<_>> =
                parts.iter().map(|part| self.partition(&part.topic, part.partition.0)).collect();
            let Some(served) = served else { return answers };
            let waits: Option<Vec<_>> = served.iter().map(|p| p.wait()).collect();
            let Some(waits) = waits else { return answers };
            // Read committed reads below the oldest open transaction only: its end comes with a
            // marker, which wakes the wait.
            let mut readable_now = false;
            for (p, part) in served.iter().zip(parts) {
                let mut end = p.readable_end();
                if end > part.offset {
                    end = end.min(first_unstable(p, part).await);
                }
                readable_now |= end > part.offset;
            }
            if readable_now {
                continue;
            }
            tracing::debug!(partitions = parts.len(), wait_ms = left, "fetch waiting for data");
            let timer = self.rt.sleep_ms(left);
            let _ = futures::future::select(futures::future::select_all(waits), timer).await;
        }
    }

    pub async fn list_offsets_local(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<u64, Failure> {
        let p = self.find(topic, partition)?;
        let hw = p.high_watermark();
        match spec {
            OffsetSpec::Earliest => Ok(p.log_start()),
            OffsetSpec::Latest => Ok(hw),
            OffsetSpec::Timestamp(ts) => {
                // Planned under the lock, read without it.
                let lookup = p.log.lock().await.plan_timestamp_lookup(ts);
                let found = lookup.execute().await.map_err(log_failure)?;
                match found {
                    Some(o) if o < hw => Ok(Self::record_at_or_after(&p, o, ts, hw).await?.min(hw)),
                    _ => Ok(hw),
                }
            }
        }
    }

    /// The first record at or after `offset` whose timestamp is at least `ts`: `offset` itself
    /// when the log's search was exact (Weir's columns), one inside the batch it found when
    /// that is a Kafka batch kept as sent (the log answers those to the batch).
    async fn record_at_or_after(
        p: &Partition<D::Storage>,
        offset: u64,
        ts: i64,
        hw: u64,
    ) -> Result<u64, Failure> {
        let plan = p.log.lock().await.plan_read(offset, 1, hw).map_err(log_failure)?;
        let Some(plan) = plan else { return Ok(offset) };
        let read = plan.execute().await.map_err(log_failure)?;
        let corrupt = |e: String| Failure::new(ErrorCode::CorruptBatch, e);
        let header = BatchHeader::decode(read.bytes()).map_err(|e| corrupt(e.to_string()))?;
        if header.kafka_fields().is_none() {
            return Ok(offset);
        }
        let stored =
            BatchView::validate_stored(read.bytes(), usize::MAX).map_err(|e| corrupt(e.to_string()))?;
        let found =
            weir_kafka::batch::first_record_at(&stored, offset, ts).map_err(|e| corrupt(e.to_string()))?;
        // The batch's largest timestamp reached `ts`, or the log would not have named it.
        Ok(found.map_or(stored.header().next_offset(), |(o, _)| o))
    }

    /// Deletes the records of a partition of this node (not of a cluster, yet) below `offset`
    /// (`None`: its high watermark), which may not pass the high watermark: only committed
    /// records go, as retention's. Returns the log start after, which a lower offset leaves
    /// where it is.
    pub async fn delete_records_local(
        &self,
        topic: &str,
        partition: u32,
        offset: Option<u64>,
    ) -> Result<u64, Failure> {
        if topic == crate::groups::offsets_topic::OFFSETS_TOPIC {
            let m = format!("{topic} is internal: its records are the consumer groups'");
            return Err(Failure::new(ErrorCode::InvalidArgument, m));
        }
        if self.clustered() {
            // Its followers would have to follow the new start, which a start inside a batch
            // does not allow them yet (they copy whole batches).
            let m = "deleting records of a cluster's partitions is not served yet";
            return Err(Failure::new(ErrorCode::InvalidArgument, m));
        }
        let p = self.find(topic, partition)?;
        // Between two of the replica's log operations, as retention: the driver waits for the
        // lock this holds. The high watermark is read under it: a log reopened meanwhile
        // starts its replica again.
        let mut log = p.log.lock().await;
        let hw = p.readable_end();
        let offset = offset.unwrap_or(hw);
        if offset > hw {
            let m = format!("offset {offset} is past the high watermark {hw}");
            return Err(Failure::new(ErrorCode::OffsetOutOfRange, m));
        }
        let end = log.next_offset();
        let start = log.delete_records(offset.min(end)).await.map_err(log_failure)?;
        p.rep.replica.borrow_mut().handle_log_start(start);
        p.set_log_start(start);
        Ok(start)
    }

    /// The status of each partition (bounds, state, damaged ranges), as this shard sees them:
    /// one it does not serve is offline, with the cause it failed to open for if it did.
    pub async fn describe_local(&self, topic: &str, partitions: &[u32]) -> Vec<PartitionStatus> {
        let now = self.rt.now_ms();
        let mut out = Vec::with_capacity(partitions.len());
        for &p in partitions {
            out.push(match (self.partition(topic, p), self.offline(topic, p)) {
                (Some(served), _) => served.status(now).await,
                (None, Some(o)) => {
                    PartitionStatus::offline(format!("cannot open: {}", o.error), o.retry_in_ms(now))
                }
                (None, None) => PartitionStatus::offline(
                    format!("not served by shard {} (being opened or removed)", self.id.0),
                    None,
                ),
            });
        }
        out
    }
}

//! The data-plane state of one shard: the topic table it was told, the partitions it serves, and
//! those that would not open. Generic over where partitions live ([`Disk`]) and over the clock
//! and spawner ([`Runtime`]), so a node runs it on direct I/O and glommio, and the simulator in
//! memory with simulated time.
//!
//! Owned by its shard's thread; its tasks share it through `Rc`. Nothing here is `Send`.

use crate::disk::Disk;
use crate::metadata::{TopicMeta, TopicTable};
use crate::partition::{Backoff, Partition};
use crate::runtime::Runtime;
use futures::stream::{self, StreamExt};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use weir_log::io_budget::IoBudget;
use weir_log::{BatchCache, FlushPolicy, LogConfig};
use weir_replication::ShardId;

/// What a shard's data path is configured with; a node takes it from its `NodeConfig`.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub shards: usize,
    pub fsync: bool,
    pub flush_interval_ms: u64,
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub batch_bytes_max: usize,
    pub request_bytes_max: usize,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    /// Tombstones of compacted topics that set none stay this long after their segment's last
    /// append.
    pub delete_retention_ms: u64,
    /// The shard's cleaner reads and writes at most this many bytes per second.
    pub compaction_bytes_per_s_max: u64,
    /// Produce is refused below this much free space on the partitions' device; 0: never.
    pub storage_min_free_bytes: u64,
    /// Bytes of batches the shard's batch cache holds; 0: no cache.
    pub batch_cache_bytes_max: usize,
    /// Bytes a read ahead of a consumer catching up reads at once; 0: none.
    pub read_ahead_bytes_max: usize,
}

impl From<&crate::config::NodeConfig> for CoreConfig {
    fn from(c: &crate::config::NodeConfig) -> Self {
        Self {
            shards: c.shards,
            fsync: c.fsync,
            flush_interval_ms: c.flush_interval_ms,
            segment_bytes: c.segment_bytes,
            segment_ms: c.segment_ms,
            batch_bytes_max: c.batch_bytes_max,
            request_bytes_max: c.request_bytes_max,
            retention_ms: c.retention_ms,
            retention_bytes: c.retention_bytes,
            delete_retention_ms: c.delete_retention_ms,
            compaction_bytes_per_s_max: c.compaction_bytes_per_s_max,
            storage_min_free_bytes: c.storage_min_free_bytes,
            batch_cache_bytes_max: c.batch_cache_bytes_max.expect("resolved at start") as usize,
            read_ahead_bytes_max: c.read_ahead_bytes_max as usize,
        }
    }
}

/// How often a shard runs its upkeep (interval flush, roll by age, recovery of failed logs).
pub const UPKEEP_INTERVAL_MS: u64 = 50;
/// How often a shard enforces retention.
pub const RETENTION_INTERVAL_MS: u64 = 60_000;
/// Interval of upkeep's pass over every partition for work on a scale of seconds.
pub const SLOW_PASS_MS: u64 = 1000;

/// A partition of this shard that could not be opened: why, and when to try again.
#[derive(Debug, Clone)]
pub struct Offline {
    pub error: String,
    backoff: Backoff,
}

impl Offline {
    /// In how many milliseconds upkeep tries to open it again; `None` once it tries no more.
    pub fn retry_in_ms(&self, now_ms: u64) -> Option<u64> {
        self.backoff.retry_in_ms(now_ms)
    }
}

type Key = (String, u32);

/// Partitions of one topic change a shard opens at once: enough to overlap their file creations
/// and syncs, few enough to bound the open files and buffers in flight.
const PARTITION_OPENS_IN_FLIGHT_MAX: usize = 64;

/// See the module documentation.
#[derive(Debug)]
pub struct ShardCore<D: Disk, R: Runtime> {
    pub id: ShardId,
    pub config: CoreConfig,
    pub disk: D,
    pub rt: R,
    /// Recently appended batches of this shard's partitions (see [`weir_log::batch_cache`]);
    /// `None` when turned off.
    pub batch_cache: Option<BatchCache>,
    pub topics: RefCell<TopicTable>,
    /// Ordered maps: upkeep visits partitions in the same order every run, so a simulation
    /// replays exactly from its seed.
    partitions: RefCell<BTreeMap<Key, Rc<Partition<D::Storage>>>>,
    /// Partitions of this shard that failed to open; upkeep retries them.
    offline: RefCell<BTreeMap<Key, Offline>>,
    /// Held while a partition's files are opened or removed: a topic change and upkeep's
    /// retries never work on the same directory at once, and each looks again, under it, at
    /// whether its work is still wanted.
    files: tokio_rt::sync::Mutex<()>,
    /// Free bytes on the partitions' device when last looked, while below
    /// `storage_min_free_bytes`; `None` while there is room.
    low_space: Cell<Option<u64>>,
    /// When upkeep last ran its once-a-second pass ([`SLOW_PASS_MS`]).
    last_slow_pass_ms: Cell<u64>,
    /// The shard's scrubbing rate, shared by its partitions in turn (`weir_log::scrub`).
    scrub: RefCell<IoBudget>,
    /// The shard's log cleaner (`crate::cleaner`).
    pub(crate) cleaner: RefCell<crate::cleaner::Cleaner<D::Storage>>,
    /// The cluster as this shard last applied it; `None` on a node without peers.
    pub cluster: RefCell<Option<crate::replication::apply::ClusterView>>,
    /// The control plane, on a node with peers: topic changes and cluster status go there.
    pub link: RefCell<Option<std::sync::Arc<dyn crate::control_link::ControlLink>>>,
    /// Wakes the shard's replication client when a replica has a fetch or ISR change to send.
    pub outbox_wake: RefCell<Option<Rc<tokio_rt::sync::Notify>>>,
}

impl<D: Disk, R: Runtime> ShardCore<D, R> {
    pub fn new(id: ShardId, config: CoreConfig, disk: D, rt: R) -> Rc<Self> {
        let compaction_bytes_per_s_max = config.compaction_bytes_per_s_max;
        let batch_cache =
            (config.batch_cache_bytes_max > 0).then(|| BatchCache::new(config.batch_cache_bytes_max));
        Rc::new(Self {
            batch_cache,
            id,
            config,
            disk,
            rt,
            topics: RefCell::new(TopicTable::default()),
            partitions: RefCell::new(BTreeMap::new()),
            offline: RefCell::new(BTreeMap::new()),
            files: tokio_rt::sync::Mutex::new(()),
            low_space: Cell::new(None),
            last_slow_pass_ms: Cell::new(0),
            scrub: RefCell::new(IoBudget::scrub()),
            cleaner: RefCell::new(crate::cleaner::Cleaner::new(compaction_bytes_per_s_max)),
            cluster: RefCell::new(None),
            link: RefCell::new(None),
            outbox_wake: RefCell::new(None),
        })
    }

    pub fn shards(&self) -> usize {
        self.config.shards
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<Rc<Partition<D::Storage>>> {
        self.partitions.borrow().get(&(topic.to_owned(), partition)).cloned()
    }

    /// Every partition this shard serves.
    pub fn all_partitions(&self) -> Vec<Rc<Partition<D::Storage>>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Why a partition this shard should serve is offline, if it is.
    pub fn offline(&self, topic: &str, partition: u32) -> Option<Offline> {
        self.offline.borrow().get(&(topic.to_owned(), partition)).cloned()
    }

    pub fn log_config(&self, topic: &TopicMeta) -> LogConfig {
        let c = &self.config;
        LogConfig {
            segment_bytes_max: c.segment_bytes,
            segment_ms: c.segment_ms,
            batch_bytes_max: c.batch_bytes_max,
            flush: if c.fsync {
                FlushPolicy::Sync
            } else {
                FlushPolicy::Interval { flush_interval_ms: c.flush_interval_ms }
            },
            // A compact-only topic keeps every key's latest record however old: retention never
            // deletes its segments.
            retention_ms: topic.retention_ms.filter(|_| topic.cleanup_policy.deletes()),
            retention_bytes: topic.retention_bytes.filter(|_| topic.cleanup_policy.deletes()),
            write_behind_buffers_max: 2,
            preallocate_bytes: (c.segment_bytes / 16).clamp(1 << 20, 32 << 20),
            batch_cache: self.batch_cache.clone(),
            ..LogConfig::default()
        }
    }

    /// Opens the partitions of `table` this shard owns and closes (and deletes) those of topics
    /// no longer in it. Returns the partitions that could not be opened, each with its cause;
    /// they stay offline, answering a storage error, while upkeep retries them.
    pub async fn apply_topics(&self, table: TopicTable) -> Vec<String> {
        // The table first: from now on a deleted topic's requests answer UnknownTopic, and those
        // of a partition still being opened a retriable error.
        *self.topics.borrow_mut() = table.clone();
        self.remove_gone(&table).await;
        let mut new = Vec::new();
        for meta in table.topics.values() {
            for partition in 0..meta.partitions {
                // An offline partition is upkeep's to retry, not a failure of this change.
                let known = self.partition(&meta.name, partition).is_some()
                    || self.offline(&meta.name, partition).is_some();
                if table.local_shard(&meta.name, partition) == Some(self.id) && !known {
                    new.push((meta, partition));
                }
            }
        }
        if new.is_empty() {
            return Vec::new();
        }
        // One hold of the files lock for the whole batch: upkeep's retries and removals wait for
        // it, and each open still looks again, under it, at whether it is wanted.
        let _files = self.files.lock().await;
        let opens = new.into_iter().map(|(meta, partition)| async move {
            (meta, partition, self.open_partition_locked(meta, partition, false).await)
        });
        let results: Vec<_> =
            stream::iter(opens).buffer_unordered(PARTITION_OPENS_IN_FLIGHT_MAX).collect().await;
        let mut failures = Vec::new();
        for (meta, partition, result) in results {
            match result {
                Err(error) => {
                    failures.push(format!("{}/{partition}: {error}", meta.name));
                    self.note_offline(&meta.name, partition, error, Backoff::default());
                }
                // A replica that leads alone shows what recovery kept once it has begun its
                // epoch: before the shard takes requests.
                Ok(()) => match self.partition(&meta.name, partition) {
                    Some(p) if p.rep.setup().standalone => p.until_caught_up().await,
                    _ => {}
                },
            }
        }
        failures
    }

    /// Closes and deletes the partitions of topics no longer in `table`, served or offline.
    async fn remove_gone(&self, table: &TopicTable) {
        let _files = self.files.lock().await;
        // Gone: its topic was deleted, or (in a cluster) this shard no longer holds a replica.
        let gone = |(t, p): &&Key| table.local_shard(t, *p) != Some(self.id);
        let mut doomed: Vec<Key> = self.partitions.borrow().keys().filter(gone).cloned().collect();
        doomed.extend(self.offline.borrow().keys().filter(gone).cloned());
        for (topic, partition) in doomed {
            let served = self.partitions.borrow_mut().remove(&(topic.clone(), partition));
            self.offline.borrow_mut().remove(&(topic.clone(), partition));
            if let Some(p) = served {
                // Whoever still holds it (a produce, upkeep) can write nothing more into a
                // directory that a topic of the same name may soon reuse.
                p.close().await;
            }
            self.remove_files(&topic, partition).await;
        }
    }

    /// Records a partition that failed to open, unless it is served or its topic went meanwhile.
    fn note_offline(&self, topic: &str, partition: u32, error: String, mut backoff: Backoff) {
        let key = (topic.to_owned(), partition);
        let wanted = self.topics.borrow().local_shard(topic, partition) == Some(self.id);
        if !wanted || self.partitions.borrow().contains_key(&key) {
            self.offline.borrow_mut().remove(&key);
            return;
        }
        backoff.failed(self.rt.now_ms());
        self.offline.borrow_mut().insert(key, Offline { error, backoff });
    }

    async fn remove_files(&self, topic: &str, partition: u32) {
        match self.disk.remove_partition(topic, partition).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let place = self.disk.describe(topic, partition);
                tracing::warn!(partition = %place, error = %e, "could not remove a deleted partition");
            }
        }
    }

    /// Opens a partition this shard serves, unless, by the time it may touch the files, it is
    /// served already, its topic is gone, or (`retry`) it is no longer offline. The caller holds
    /// the `files` lock. Several may run at once under one hold: each touches only its own
    /// partition's files and looks at the maps only between awaits.
    async fn open_partition_locked(
        &self,
        meta: &TopicMeta,
        partition: u32,
        retry: bool,
    ) -> Result<(), String> {
        let key = (meta.name.clone(), partition);
        let wanted = self.topics.borrow().local_shard(&meta.name, partition) == Some(self.id);
        let offline = self.offline.borrow().contains_key(&key);
        if !wanted || self.partitions.borrow().contains_key(&key) || (retry && !offline) {
            return Ok(());
        }
        let name = format!("{}/{partition}", meta.name);
        let setup = self.replica_setup(&meta.name, partition);
        if !setup.standalone {
            // Files of a topic of the same name deleted while this node was away are not this
            // partition's: a log of another topic must never pass for it.
            let discarded = (self.disk.claim_partition(&meta.name, partition, setup.partition.0).await)
                .map_err(|e| format!("cannot claim {}: {e}", self.disk.describe(&meta.name, partition)))?;
            if discarded {
                tracing::warn!(topic = %meta.name, partition, "removed the files of an earlier topic of this name");
            }
        }
        let storage = self
            .disk
            .partition(&meta.name, partition)
            .await
            .map_err(|e| format!("cannot create {}: {e}", self.disk.describe(&meta.name, partition)))?;
        let p = match Partition::open(storage, self.log_config(meta), self.rt.now_ms(), name, setup).await {
            Ok(p) => {
                p.keys_required.set(meta.cleanup_policy.compacts());
                Rc::new(p)
            }
            Err(e) => {
                tracing::error!(topic = %meta.name, partition, error = %e, "cannot open partition");
                return Err(e.to_string());
            }
        };
        // A topic deleted meanwhile had its table applied before its files are removed, under
        // the lock this open holds: the removal that follows takes this partition out again.
        self.offline.borrow_mut().remove(&key);
        self.partitions.borrow_mut().insert(key, p.clone());
        *p.rep.outbox_wake.borrow_mut() = self.outbox_wake.borrow().clone();
        p.start_driver(&self.rt);
        Ok(())
    }

    /// Runs [`maintain`](Self::maintain) every [`UPKEEP_INTERVAL_MS`], with retention every
    /// [`RETENTION_INTERVAL_MS`], for as long as `running` says: a node's shard until it stops,
    /// a simulated one for good.
    pub async fn upkeep_while(&self, running: impl Fn() -> bool) {
        let mut last_retention = self.rt.monotonic_ms();
        while running() {
            self.rt.sleep_ms(UPKEEP_INTERVAL_MS).await;
            let now = self.rt.monotonic_ms();
            let retention_due = now.saturating_sub(last_retention) >= RETENTION_INTERVAL_MS;
            self.maintain(retention_due).await;
            if retention_due {
                last_retention = now;
            }
        }
    }

    /// Periodic upkeep, every few tens of milliseconds: flushes logs whose interval passed and
    /// rolls segments by age, enforces retention when `retention_due`, and recovers offline
    /// partitions and failed logs.
    pub async fn maintain(&self, retention_due: bool) {
        // One statvfs: at every upkeep, so a fast producer cannot write far past the floor.
        self.check_space().await;
        // Work whose own intervals are a second or more (idle buffers, retries of offline
        // partitions and failed logs) runs once a second, not at every upkeep: with thousands
        // of partitions it is a pass over all of them.
        let now = self.rt.now_ms();
        let slow_pass = now.saturating_sub(self.last_slow_pass_ms.get()) >= SLOW_PASS_MS;
        if slow_pass {
            self.last_slow_pass_ms.set(now);
        }
        // With fsync-before-ack there is nothing to flush on a timer: leave the partitions'
        // locks alone until retention is due. Segments then roll by age at that pace, which is
        // fine against `segment_ms` of hours.
        if !self.config.fsync || retention_due {
            // A failed log waits for its reopen; ticking it would only log the failure again.
            for p in self.all_partitions().into_iter().filter(|p| !p.is_failed()) {
                // The interval flush's fdatasync runs without the partition locked.
                if let Err(e) = p.log.tick(now).await {
                    tracing::error!(partition = %p.name, error = %e, "interval flush or roll failed");
                }
                if retention_due {
                    let mut log = p.log.lock().await;
                    match log.enforce_retention_below(now, p.readable_end()).await {
                        Ok(deleted) if !deleted.is_empty() => {
                            // Between two of the replica's log operations: the driver waits for
                            // the lock this holds.
                            p.rep.replica.borrow_mut().handle_log_start(log.log_start());
                            p.set_log_start(log.log_start());
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(partition = %p.name, error = %e, "retention failed"),
                    }
                }
            }
        } else if slow_pass {
            // Under fsync the tick waits for retention's pace, but idle partitions still give
            // their write buffers back within seconds (without I/O); one in use is left alone.
            for p in self.all_partitions() {
                if let Some(mut log) = p.log.try_lock() {
                    log.release_idle_buffers(now);
                }
            }
        }
        if slow_pass {
            self.recover_partitions(now).await;
        }
        self.tick_replicas();
        self.scrub_step(now).await;
    }

    /// The replicas' timers: a follower fetches when due, a leader reviews its ISR. A standalone
    /// replica has no timer that does anything, so a node without peers skips the pass.
    fn tick_replicas(&self) {
        let now = self.rt.monotonic_ms();
        for p in self.all_partitions() {
            if p.rep.setup().standalone {
                continue;
            }
            p.rep.replica.borrow_mut().tick(now);
            p.settle();
            p.rep.wake();
        }
    }

    /// How the replica of `partition` of `topic` on this shard is set up.
    pub fn replica_setup(&self, topic: &str, partition: u32) -> crate::replica_driver::ReplicaSetup {
        if let Some(view) = self.cluster.borrow().as_ref() {
            return self.cluster_setup(view, topic, partition);
        }
        let id = weir_replication::PartitionId(partition);
        crate::replica_driver::ReplicaSetup::standalone(id, self.config.fsync)
    }

    /// How a client reaches node `node`: its id, and its address when the metadata names it.
    pub fn node_address(&self, node: weir_replication::NodeId) -> String {
        let view = self.cluster.borrow();
        match view.as_ref().and_then(|v| v.meta.nodes.get(&node)) {
            Some(info) => format!("node {} at {}:{}", node.0, info.host, info.port),
            None => format!("node {}", node.0),
        }
    }

    /// One step of the background scrubber: the next partition in turn checks the CRCs of its
    /// sealed segments, as many bytes as the shard's budget has accrued (at most
    /// `weir_log::scrub::SCRUB_STEP_BYTES_MAX`, at `SCRUB_BYTES_PER_SEC` over the shard). The
    /// reads run without the partition locked. Damage found is quarantined by the log.
    async fn scrub_step(&self, now: u64) {
        let parts = self.all_partitions();
        let Some(bytes) = (!parts.is_empty()).then(|| self.scrub.borrow_mut().grant(now)).flatten() else {
            return;
        };
        let p = &parts[self.scrub.borrow_mut().next_turn(parts.len())];
        if p.is_failed() || p.scrub_pause.get().paused(now) {
            return;
        }
        let Some(plan) = p.log.lock().await.plan_scrub(bytes) else { return };
        let outcome = match plan.execute().await {
            Ok(outcome) => outcome,
            // Deleted meanwhile: its files went with it.
            Err(_) if p.is_closed() => return,
            Err(e) => {
                let mut pause = p.scrub_pause.get();
                pause.failed(now);
                p.scrub_pause.set(pause);
                let pause_ms = weir_log::scrub::SCRUB_ERROR_PAUSE_MS;
                return tracing::error!(partition = %p.name, error = %e, pause_ms, "scrubbing failed; pausing it");
            }
        };
        self.scrub.borrow_mut().spend(outcome.read_bytes.max(outcome.checked_bytes));
        match p.log.lock().await.complete_scrub(outcome).await {
            Ok(Some(d)) => tracing::warn!(
                partition = %p.name,
                segment = d.segment,
                first_offset = d.first_offset,
                last_offset = d.last_offset,
                reason = %d.reason,
                "scrubber found damaged batches; quarantined"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(partition = %p.name, error = %e, "recording a scrub step failed"),
        }
    }

    /// Retries opening the offline partitions and recovers failed logs in place, each when its
    /// backoff says.
    async fn recover_partitions(&self, now: u64) {
        let due: Vec<(Key, Offline)> = self
            .offline
            .borrow()
            .iter()
            .filter(|(_, o)| o.backoff.due(now))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        // Upkeep never waits for a topic change opening many partitions (it would hold back
        // interval flushes and reopens meanwhile): while the files are busy, the retries are
        // left for a later round.
        if !due.is_empty()
            && let Ok(_files) = self.files.try_lock()
        {
            let mut opened = false;
            for ((topic, partition), o) in due {
                let Some(meta) = self.topics.borrow().topics.get(&topic).cloned() else { continue };
                match self.open_partition_locked(&meta, partition, true).await {
                    Ok(()) => opened = true,
                    Err(error) => self.note_offline(&topic, partition, error, o.backoff),
                }
            }
            // In a cluster a replica follows the controller's state for its partition: one
            // opened now gets the state applied while it was offline, not only the next change.
            let meta = self.cluster.borrow().as_ref().map(|v| v.meta.clone());
            if let (true, Some(meta)) = (opened, meta) {
                self.apply_states(&meta);
            }
        }
        for p in self.all_partitions() {
            p.reopen_if_failed(now).await;
        }
    }

    /// Looks at the free space on the partitions' device, for produce's floor. Says so once
    /// when it falls below the floor and once when it is back.
    pub async fn check_space(&self) {
        let min = self.config.storage_min_free_bytes;
        if min == 0 {
            return;
        }
        let free = match self.disk.free_bytes().await {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the free space of the data dir");
                return;
            }
        };
        let low = (free < min).then_some(free);
        match (self.low_space.replace(low), low) {
            (None, Some(free)) => {
                tracing::error!(
                    shard = self.id.0,
                    free,
                    min,
                    "free space below storage_min_free_bytes: produce refused"
                )
            }
            (Some(_), None) => {
                tracing::warn!(shard = self.id.0, free, min, "free space back above storage_min_free_bytes");
                self.retry_now();
            }
            _ => {}
        }
    }

    /// Makes every retry of an offline partition or a failed log due at the next upkeep.
    fn retry_now(&self) {
        for offline in self.offline.borrow_mut().values_mut() {
            offline.backoff.retry_now();
        }
        for p in self.all_partitions() {
            p.retry_now();
        }
    }

    /// Why produce is refused now for lack of space, if it is.
    pub fn space_refusal(&self) -> Option<String> {
        let free = self.low_space.get()?;
        let min = self.config.storage_min_free_bytes;
        Some(format!(
            "not enough free space: {free} bytes free on the data dir's device, below storage_min_free_bytes ({min}); \
             produce is refused until space is freed (delete topics, lower retention)"
        ))
    }

    /// Makes every partition durable: at shutdown.
    pub async fn flush_all(&self) {
        for p in self.all_partitions() {
            if let Err(e) = p.log.lock().await.flush().await {
                tracing::error!(partition = %p.name, error = %e, "flush failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;
    use crate::runtime::GlommioRuntime;
    use weir_log::batch::{BatchBuilder, BatchView, ProducerStamp, Record};
    use weir_log::scrub::{SCRUB_BYTES_PER_SEC, SCRUB_STEP_BYTES_MAX};
    use weir_replication::ReplicaAddr;

    #[test]
    fn upkeep_scrubs_sealed_segments_and_quarantines_a_flip() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let config = test_config();
                let disk = MemDisk::default();
                let core = ShardCore::new(ShardId(0), config, disk.clone(), GlommioRuntime::new());
                add_topic_t(&core).await;
                let p = core.partition("t", 0).unwrap();
                for t in 0..200u32 {
                    let mut b = BatchBuilder::new(1 << 20);
                    let value = vec![b'v'; 1000];
                    for _ in 0..4 {
                        b.push(&Record { key: None, value: Some(&value), headers: &[], timestamp: t.into() })
                            .unwrap();
                    }
                    let b = b.seal(ProducerStamp::default());
                    let view = BatchView::validate(b.as_bytes(), 1 << 20).unwrap();
                    p.log.append_durable(&view, 0, 0).await.unwrap();
                }
                let bases = p.log.lock().await.segment_bases();
                assert!(bases.len() >= 4, "{bases:?}");
                let storage = disk.storage("t", 0).unwrap();
                let name = format!("{:020}.log", bases[2]);
                storage.flip_bit(&name, 5000, 3);
                // The steps the shard's rate allows before the scrubber reaches the flip, with
                // room for steps that end short at a batch boundary.
                let before = 2 * (64 << 10) + 5000;
                let step_ms = 1000 * SCRUB_STEP_BYTES_MAX / SCRUB_BYTES_PER_SEC;
                let steps_max = before / SCRUB_STEP_BYTES_MAX + 3;
                for step in 0..=steps_max {
                    core.scrub_step(1_000 + step * step_ms).await;
                }
                let log = p.log.lock().await;
                let [d] = log.damaged_ranges() else { panic!("{:?}", log.damaged_ranges()) };
                assert_eq!(d.segment, bases[2]);
                let offset = d.first_offset;
                assert!(matches!(log.read(offset, 1 << 20).await, Err(weir_log::LogError::Corrupt { .. })));
                assert!(log.read(d.last_offset + 1, 1 << 20).await.is_ok(), "a read after it works");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// One shard, small segments, fsync before acknowledging, no retention.
    fn test_config() -> CoreConfig {
        CoreConfig {
            shards: 1,
            fsync: true,
            flush_interval_ms: 10,
            segment_bytes: 64 << 10,
            segment_ms: u64::MAX,
            batch_bytes_max: 16 << 10,
            request_bytes_max: 1 << 20,
            retention_ms: None,
            retention_bytes: None,
            delete_retention_ms: 24 * 3600 * 1000,
            compaction_bytes_per_s_max: 64 << 20,
            storage_min_free_bytes: 0,
            batch_cache_bytes_max: 1 << 20,
            read_ahead_bytes_max: 1 << 20,
        }
    }

    fn one_partition_core() -> Rc<ShardCore<crate::disk::MemDisk, GlommioRuntime>> {
        ShardCore::new(ShardId(0), test_config(), MemDisk::default(), GlommioRuntime::new())
    }

    fn sealed(n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1 << 20);
        for _ in 0..n {
            b.push(&Record { key: None, value: Some(b"v"), headers: &[], timestamp: 1 }).unwrap();
        }
        b.seal(ProducerStamp::default()).as_bytes().to_vec()
    }

    async fn one_topic_core() -> Rc<ShardCore<crate::disk::MemDisk, GlommioRuntime>> {
        let core = one_partition_core();
        add_topic_t(&core).await;
        core
    }

    /// Topic `t`, one partition on this shard, applied to `core`.
    async fn add_topic_t(core: &ShardCore<crate::disk::MemDisk, GlommioRuntime>) {
        let local = ReplicaAddr { node: crate::placement::LOCAL_NODE, shard: ShardId(0) };
        let meta = TopicMeta {
            name: "t".into(),
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            cleanup_policy: Default::default(),
            delete_retention_ms: None,
            replicas: vec![vec![local]],
        };
        let table = TopicTable { topics: [("t".to_owned(), meta)].into(), ..TopicTable::default() };
        assert!(core.apply_topics(table).await.is_empty());
    }

    fn part(bytes: Vec<u8>) -> crate::service::types::ProducePartition {
        crate::service::types::ProducePartition {
            topic: "t".into(),
            partition: weir_replication::PartitionId(0),
            batches: bytes::Bytes::from(bytes),
            kafka_payloads: false,
            txn: Default::default(),
        }
    }

    /// acks=none answered with the base offset where the batches landed.
    #[test]
    fn acks_none_names_the_base_offset_of_its_batches() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let core = one_topic_core().await;
                let first = core.produce_local(weir_net::Acks::None, part(sealed(4))).await.unwrap();
                let second = core.produce_local(weir_net::Acks::None, part(sealed(4))).await.unwrap();
                assert_eq!((first.base_offset, second.base_offset), (0, 4), "base offsets of acks=none");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// acks=none validated the batches before answering: a corrupt batch was refused.
    #[test]
    fn acks_none_refuses_a_corrupt_batch() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let core = one_topic_core().await;
                let mut bad = sealed(2);
                let last = bad.len() - 1;
                bad[last] ^= 1;
                let r = core.produce_local(weir_net::Acks::None, part(bad)).await;
                assert!(r.is_err(), "a corrupt batch answered as produced: {r:?}");
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

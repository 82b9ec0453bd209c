//! A simulated node: the node's shards ([`ShardCore`] and [`PartitionService`]) on a
//! [`MemDisk`], joined by a [`MemHub`], all on one `LocalPool` with a [`SimRuntime`].

use crate::runtime::SimRuntime;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use weir_log::storage::mem::CrashMode;
use weir_node::bus::{MemBus, MemHub};
use weir_node::core::{CoreConfig, ShardCore};
use weir_node::disk::MemDisk;
use weir_node::runtime::Runtime;
use weir_node::service::PartitionService;
use weir_replication::ShardId;

pub type SimService = PartitionService<MemDisk, SimRuntime, MemBus>;

/// One simulated node. Dropping it (or [`crash`](Self::crash)) drops every task in flight,
/// as the end of a process would.
pub struct SimNode {
    pool: LocalPool,
    pub rt: SimRuntime,
    pub disk: MemDisk,
    pub services: Vec<Rc<SimService>>,
    hub: MemHub,
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode").field("rt", &self.rt).field("shards", &self.services.len()).finish()
    }
}

/// A small node's settings for simulations: fsync before acknowledging, small segments (so runs
/// roll often, and crashes land around rolls too), no retention.
pub fn sim_config(shards: usize) -> CoreConfig {
    CoreConfig {
        shards,
        fsync: true,
        flush_interval_ms: 100,
        segment_bytes: 64 << 10,
        segment_ms: 3_600_000,
        batch_bytes_max: 16 << 10,
        request_bytes_max: 1 << 20,
        retention_ms: None,
        retention_bytes: None,
        delete_retention_ms: 24 * 3600 * 1000,
        compaction_bytes_per_s_max: 64 << 20,
        storage_min_free_bytes: 1 << 20,
        // A few batches per shard: fetches at the tail hit it, older ones read the disk.
        batch_cache_bytes_max: 256 << 10,
        // Reads ahead of consumers that fall behind the cache.
        read_ahead_bytes_max: 64 << 10,
    }
}

impl SimNode {
    /// Starts a node on `disk` with the clock at `start_ms`: each shard opens its partitions of
    /// the topic table last saved there, as a real node does, and runs its upkeep.
    pub fn start(disk: MemDisk, config: CoreConfig, start_ms: u64) -> Self {
        let pool = LocalPool::new();
        let rt = SimRuntime::new(&pool, start_ms);
        let hub = MemHub::default();
        let mut services = Vec::new();
        for s in 0..config.shards {
            let id = ShardId(s as u16);
            let core = ShardCore::new(id, config.clone(), disk.clone(), rt.clone());
            let service = PartitionService::new(core, Rc::new(hub.bus(id)));
            let spawner = rt.clone();
            hub.register(id, service.clone(), move |task| spawner.spawn(task));
            services.push(service);
        }
        let mut node = Self { pool, rt, disk, services, hub };
        let table = node.disk.topics();
        for service in node.services.clone() {
            let table = table.clone();
            node.block_on(async move { service.core.apply_topics(table).await })
                .expect("opening needs no time");
        }
        for service in node.services.clone() {
            node.rt.spawn(Box::pin(async move { service.core.upkeep_while(|| true).await }));
        }
        node
    }

    pub fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        self.pool.spawner().spawn_local(task).expect("the pool runs");
    }

    /// Runs the node until `fut` completes, moving the clock whenever every task waits. `None`
    /// if nothing could make progress any more.
    pub fn block_on<T: 'static>(&mut self, fut: impl Future<Output = T> + 'static) -> Option<T> {
        let slot = Rc::new(RefCell::new(None));
        let out = slot.clone();
        self.spawn(async move {
            *out.borrow_mut() = Some(fut.await);
        });
        loop {
            self.pool.run_until_stalled();
            if let Some(v) = slot.borrow_mut().take() {
                return Some(v);
            }
            if !self.rt.advance() {
                return None;
            }
        }
    }

    /// Runs every task that can run, without moving the clock.
    pub fn run_until_stalled(&mut self) {
        self.pool.run_until_stalled();
    }

    /// Runs every task that can run, then moves the clock to the next deadline. One step of a
    /// simulation.
    pub fn step(&mut self) {
        self.pool.run_until_stalled();
        self.rt.advance();
    }

    /// Ends the node at once, as a power cut would: every task is dropped mid-flight, and each
    /// partition's disk loses or tears what was not synced (`mode` per partition, by index).
    pub fn crash(self, mode: impl Fn(u64) -> CrashMode) -> MemDisk {
        let disk = self.disk.clone();
        self.hub.clear();
        drop(self.services);
        drop(self.pool);
        disk.crash(mode);
        disk
    }
}

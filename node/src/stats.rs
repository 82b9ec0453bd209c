//! Per-shard counters, readable by every shard: each shard writes only its own (relaxed atomics
//! on a cache line of its own, so no line bounces between cores on the hot path), and a reader
//! sums or lists them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use weir_log::batch_cache::CacheCounters;
use weir_net::api::{BatchCacheStats, ShardStats};

/// Counters of one shard.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct ShardCounters {
    /// Client requests being handled (including while forwarded to another shard).
    pub in_flight: AtomicUsize,
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    /// The shard's batch cache's counters, once the shard has made its cache.
    batch_cache: OnceLock<Arc<CacheCounters>>,
}

impl ShardCounters {
    /// Shows the counters of the shard's batch cache from now on.
    pub fn set_batch_cache(&self, counters: Arc<CacheCounters>) {
        assert!(self.batch_cache.set(counters).is_ok(), "a shard makes one batch cache");
    }

    fn cache(&self) -> BatchCacheStats {
        self.batch_cache.get().map_or_else(BatchCacheStats::default, |c| c.snapshot())
    }
}

/// The counters of every shard of the node, indexed by shard.
#[derive(Debug)]
pub struct NodeCounters(Vec<ShardCounters>);

impl NodeCounters {
    pub fn new(shards: usize) -> Self {
        Self((0..shards).map(|_| ShardCounters::default()).collect())
    }

    pub fn shard(&self, shard: usize) -> &ShardCounters {
        &self.0[shard]
    }

    /// Requests in flight on the whole node: a shard must not stop while another still waits for
    /// its reply (the reply would go with the stopped shard's end of the mesh).
    pub fn in_flight(&self) -> usize {
        self.0.iter().map(|c| c.in_flight.load(Ordering::SeqCst)).sum()
    }

    pub fn snapshot(&self) -> Vec<ShardStats> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.0
            .iter()
            .enumerate()
            .map(|(i, c)| ShardStats {
                shard: i as u16,
                connections: get(&c.connections),
                requests: get(&c.requests),
                forwarded: get(&c.forwarded),
                batch_cache: c.cache(),
            })
            .collect()
    }
}

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

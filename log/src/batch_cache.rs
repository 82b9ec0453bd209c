//! The shard's batch cache: batches recently appended, kept in memory so that a fetch at the
//! tail (a consumer or follower keeping up with the producers) is answered without reading the
//! device.
//!
//! Direct I/O bypasses the page cache: without this, every fetch reads the device, even of a
//! batch appended a millisecond ago. Each partition log puts a copy of every batch it appends
//! here, exactly as stored (offsets and leader epoch patched in, so the same CRC), and answers a
//! fetch from here when the batch holding the offset asked for is cached. Batches read from the
//! device are not put here: a consumer catching up on a backlog would evict the tail that the
//! consumers keeping up read.
//!
//! The cache never disagrees with the files. A log drops the cached batches of offsets that a
//! truncation, retention, DeleteRecords, compaction or a quarantine changes; a failed log reads
//! only its files; and a log's batches leave the cache when the log is dropped, so a reopened
//! log starts cold.
//!
//! Bounded by `bytes_max` bytes of batches per shard: the batches used least recently go first,
//! whichever partition they belong to. A batch larger than the whole bound is not cached.
//!
//! Ownership: one cache per shard, shared by the shard's logs (it is `Rc`-based); only the
//! [`Bytes`] it hands out and its [`CacheCounters`] may cross threads.

use crate::batch::header::patch_offsets;
use bytes::Bytes;
use rkyv::util::AlignedVec;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Cached copies start on this alignment, as batches in a file do, so that a batch's rkyv
/// payload stays 16-byte aligned whatever the allocator gives.
const CACHE_ALIGN: usize = 16;

/// Counters of a shard's cache, for `weir stats` and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCacheStats {
    /// Bytes of batches held now, and the bound.
    pub bytes: u64,
    pub bytes_max: u64,
    pub batches: u64,
    /// Fetches answered from the cache, and their bytes.
    pub hits: u64,
    pub hit_bytes: u64,
    /// Fetches that read the device, and the bytes they read.
    pub misses: u64,
    pub miss_bytes: u64,
    /// Batches dropped to stay within the bound.
    pub evictions: u64,
}

/// A cache's counters, written by its shard alone and readable from any thread (another shard
/// answers `weir stats`): relaxed atomics on a cache line of their own, so the hot path pays an
/// uncontended add.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct CacheCounters {
    bytes: AtomicU64,
    bytes_max: AtomicU64,
    batches: AtomicU64,
    hits: AtomicU64,
    hit_bytes: AtomicU64,
    misses: AtomicU64,
    miss_bytes: AtomicU64,
    evictions: AtomicU64,
}

impl CacheCounters {
    pub fn snapshot(&self) -> BatchCacheStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BatchCacheStats {
            bytes: get(&self.bytes),
            bytes_max: get(&self.bytes_max),
            batches: get(&self.batches),
            hits: get(&self.hits),
            hit_bytes: get(&self.hit_bytes),
            misses: get(&self.misses),
            miss_bytes: get(&self.miss_bytes),
            evictions: get(&self.evictions),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Whole batches answered from the cache, exactly as stored.
#[derive(Debug, Clone)]
pub struct CachedRead {
    pub bytes: Bytes,
    /// Base offset of the first batch, at or below the offset asked for.
    pub first_offset: u64,
    /// Offset after the last batch: where the next fetch starts.
    pub next_offset: u64,
    pub batch_count: usize,
}

/// One shard's cache. Cloning shares it.
#[derive(Clone)]
pub struct BatchCache {
    inner: Rc<RefCell<Inner>>,
}

impl std::fmt::Debug for BatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BatchCache").field(&self.stats()).finish()
    }
}

#[derive(Default)]
struct Inner {
    bytes_max: usize,
    bytes: usize,
    next_log: u64,
    /// A clock of uses: a larger tick is a more recent use.
    tick: u64,
    /// Each log's cached batches by base offset.
    logs: HashMap<u64, BTreeMap<u64, Entry>>,
    /// Every cached batch by its last use: (log, base offset).
    lru: BTreeMap<u64, (u64, u64)>,
    counters: Arc<CacheCounters>,
}

struct Entry {
    batch: Bytes,
    next_offset: u64,
    /// Where the batch ends in the file: its segment's base and the position after it.
    stored_end: StoredAt,
    tick: u64,
}

/// A position in a log's files: the base offset of a segment, and a byte position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredAt {
    pub segment: u64,
    pub pos: u64,
}

impl BatchCache {
    /// A cache of at most `bytes_max` bytes of batches; 0 caches nothing.
    pub fn new(bytes_max: usize) -> Self {
        let counters = Arc::new(CacheCounters::default());
        counters.bytes_max.store(bytes_max as u64, Ordering::Relaxed);
        let inner = Inner { bytes_max, counters, ..Inner::default() };
        Self { inner: Rc::new(RefCell::new(inner)) }
    }

    pub fn stats(&self) -> BatchCacheStats {
        self.inner.borrow().counters.snapshot()
    }

    /// The counters, to read from another thread.
    pub fn counters(&self) -> Arc<CacheCounters> {
        self.inner.borrow().counters.clone()
    }

    /// Counts a fetch that read `bytes` from the device.
    pub fn note_miss_bytes(&self, bytes: usize) {
        add(&self.inner.borrow().counters.miss_bytes, bytes as u64);
    }

    /// A part of the cache for one log, empty; it is emptied again when dropped.
    pub fn register(&self) -> CachedLog {
        let mut i = self.inner.borrow_mut();
        let id = i.next_log;
        i.next_log += 1;
        i.logs.insert(id, BTreeMap::new());
        CachedLog { cache: self.clone(), id }
    }
}

/// One log's part of its shard's cache: the batches it appended and has not dropped. Owned by
/// the log; dropping it drops them.
pub struct CachedLog {
    cache: BatchCache,
    id: u64,
}

impl std::fmt::Debug for CachedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedLog").field("id", &self.id).finish()
    }
}

impl Drop for CachedLog {
    fn drop(&mut self) {
        self.retain(|_| false);
        self.cache.inner.borrow_mut().logs.remove(&self.id);
    }
}

impl CachedLog {
    /// Caches a copy of `batch`, a batch just appended at `base` in `leader_epoch`, with them
    /// patched in as the file holds them, then evicts down to the bound. `stored_end` is where
    /// the batch ends in the log's files. Batches are cached in offset order.
    pub fn insert(&self, batch: &[u8], base: u64, next_offset: u64, leader_epoch: u32, stored_end: StoredAt) {
        let mut i = self.cache.inner.borrow_mut();
        if batch.len() > i.bytes_max {
            return;
        }
        let mut copy = AlignedVec::<CACHE_ALIGN>::with_capacity(batch.len());
        copy.extend_from_slice(batch);
        patch_offsets(&mut copy, base, leader_epoch);
        let batch = Bytes::from_owner(copy);
        i.tick += 1;
        let tick = i.tick;
        i.bytes += batch.len();
        i.lru.insert(tick, (self.id, base));
        let entry = Entry { batch, next_offset, stored_end, tick };
        let log = i.logs.get_mut(&self.id).expect("a registered log has a map");
        // A log drops what it cached of a cut before it appends again.
        assert!(log.range(base..).next().is_none(), "a batch is cached past the log end");
        log.insert(base, entry);
        i.evict();
        i.publish_size();
    }

    /// Whole cached batches from the one holding `offset`: it, then the batches that follow it
    /// without a gap while the total stays within `max_bytes`, leaving out batches at or past
    /// `max_offset` and those not yet written to the files: in the segment `written.segment`
    /// (the active one), past `written.pos`. So the cache answers what a read of the files
    /// would, never a batch a failed write may yet lose. `None` (a miss) when the batch holding
    /// `offset` is not cached.
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        max_offset: u64,
        written: StoredAt,
    ) -> Option<CachedRead> {
        let mut i = self.cache.inner.borrow_mut();
        let i = &mut *i;
        let log = i.logs.get_mut(&self.id).expect("a registered log has a map");
        let visible = |e: &Entry| e.stored_end.segment != written.segment || e.stored_end.pos <= written.pos;
        let holding = log.range(..=offset).next_back().filter(|(_, e)| e.next_offset > offset && visible(e));
        let Some(start) = holding.map(|(b, _)| *b).filter(|b| *b < max_offset) else {
            add(&i.counters.misses, 1);
            return None;
        };
        let mut picked: Vec<(u64, &mut Entry)> = Vec::new();
        let mut total = 0;
        for (base, e) in log.range_mut(start..) {
            let follows = picked.last().is_none_or(|(_, prev)| prev.next_offset == *base);
            let fits = picked.is_empty() || total + e.batch.len() <= max_bytes;
            if *base >= max_offset || !fits || !follows || !visible(e) {
                break;
            }
            total += e.batch.len();
            picked.push((*base, e));
        }
        let (first_offset, batch_count) = (start, picked.len());
        let next_offset = picked.last().expect("the batch holding the offset is picked").1.next_offset;
        let bytes = match &picked[..] {
            [(_, one)] => one.batch.clone(),
            many => {
                let mut joined = AlignedVec::<CACHE_ALIGN>::with_capacity(total);
                many.iter().for_each(|(_, e)| joined.extend_from_slice(&e.batch));
                Bytes::from_owner(joined)
            }
        };
        for (base, e) in picked {
            i.lru.remove(&e.tick);
            i.tick += 1;
            e.tick = i.tick;
            i.lru.insert(e.tick, (self.id, base));
        }
        add(&i.counters.hits, 1);
        add(&i.counters.hit_bytes, bytes.len() as u64);
        Some(CachedRead { bytes, first_offset, next_offset, batch_count })
    }

    /// Drops the batches holding offsets at or past `offset` (a truncation).
    pub fn remove_from(&self, offset: u64) {
        self.retain(|e| e.next_offset <= offset);
    }

    /// Drops the batches wholly below `offset` (a new log start).
    pub fn remove_below(&self, offset: u64) {
        self.retain(|e| e.next_offset > offset);
    }

    /// Drops the batches holding any offset in `[first, end)` (a segment rewritten or
    /// quarantined).
    pub fn remove_range(&self, first: u64, end: u64) {
        self.retain(|e| e.next_offset <= first || e.base >= end);
    }

    /// Drops every batch of this log.
    pub fn clear(&self) {
        self.retain(|_| false);
    }

    fn retain(&self, keep: impl Fn(&Span) -> bool) {
        let mut i = self.cache.inner.borrow_mut();
        let Some(log) = i.logs.get_mut(&self.id) else { return };
        let gone: Vec<u64> = log
            .iter()
            .filter(|(b, e)| !keep(&Span { base: **b, next_offset: e.next_offset }))
            .map(|(b, _)| *b)
            .collect();
        let gone: Vec<Entry> = gone.into_iter().filter_map(|b| log.remove(&b)).collect();
        for e in gone {
            i.forget(&e);
        }
        i.publish_size();
    }
}

/// The offsets a cached batch holds: `[base, next_offset)`.
struct Span {
    base: u64,
    next_offset: u64,
}

impl Inner {
    /// Takes a batch already removed from its log's map out of the order and the count.
    fn forget(&mut self, e: &Entry) {
        self.lru.remove(&e.tick);
        self.bytes -= e.batch.len();
    }

    /// Drops the least recently used batches until the cache is within its bound.
    fn evict(&mut self) {
        while self.bytes > self.bytes_max {
            let (_, (log, base)) = self.lru.pop_first().expect("bytes are held by batches in the order");
            let e =
                self.logs.get_mut(&log).and_then(|l| l.remove(&base)).expect("an ordered batch is cached");
            self.bytes -= e.batch.len();
            add(&self.counters.evictions, 1);
        }
    }

    /// Sets the counters of what the cache holds.
    fn publish_size(&self) {
        self.counters.bytes.store(self.bytes as u64, Ordering::Relaxed);
        self.counters.batches.store(self.lru.len() as u64, Ordering::Relaxed);
    }
}

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
//! Batches are copied, back to back whatever their partition, into chunks of memory that the
//! cache keeps and reuses: the batch bytes it hands out share their chunk's allocation. The
//! chunks are bounded by `bytes_max` bytes per shard, and the chunk used least recently (read or
//! written) is the first to go, with every batch in it. Its memory is reused for the next chunk
//! rather than given back to the allocator, and all of it is allocated and touched when the
//! cache is made: memory fresh from the kernel costs a page fault and a zeroing per page, which
//! on the append path made a filling cache cost a loaded node more delivery latency than its
//! reads saved. A batch larger than a chunk is not cached.
//!
//! Ownership: one cache per shard, shared by the shard's logs (it is `Rc`-based); only the
//! [`Bytes`] it hands out and its [`CacheCounters`] may cross threads.

use crate::batch::header::patch_offsets;
use bytes::Bytes;
use bytes::BytesMut;
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

impl BatchCacheStats {
    /// The share of fetched bytes the cache served; `None` before any fetch read bytes.
    pub fn hit_ratio(&self) -> Option<f64> {
        let total = self.hit_bytes + self.miss_bytes;
        (total > 0).then(|| self.hit_bytes as f64 / total as f64)
    }
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
    /// Offset after the last batch: where the next fetch starts.
    pub next_offset: u64,
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

/// Chunks are this share of the bound, within [`CHUNK_BYTES_MIN`, `CHUNK_BYTES_MAX`]: enough
/// chunks that evicting one drops a small part of the cache.
const CHUNKS_PER_CACHE: usize = 16;
const CHUNK_BYTES_MIN: usize = 16 << 10;
const CHUNK_BYTES_MAX: usize = 8 << 20;
/// The smallest cache that holds a chunk: a smaller one caches nothing.
pub const CACHE_BYTES_MIN: usize = CHUNK_BYTES_MIN + CACHE_ALIGN;
/// A part of a buffer at least this share of it is handed out without a copy.
const ZERO_COPY_SHARE: usize = 4;

#[derive(Default)]
struct Inner {
    chunk_bytes: usize,
    /// Chunks in use and free together never pass this.
    chunks_max: usize,
    chunks: HashMap<u64, Chunk>,
    next_chunk: u64,
    /// The chunk batches are being written into.
    current: Option<u64>,
    /// Memory of chunks emptied or evicted, to reuse.
    free: Vec<BytesMut>,
    next_log: u64,
    /// A clock of uses: a larger tick is a more recent use.
    tick: u64,
    /// Each log's cached batches by base offset.
    logs: HashMap<u64, BTreeMap<u64, Entry>>,
    /// Every chunk in use by its last use.
    lru: BTreeMap<u64, u64>,
    /// Batches cached now.
    batches: usize,
    counters: Arc<CacheCounters>,
}

/// A chunk of memory batches are copied into, back to back.
struct Chunk {
    /// Its room not yet written; the batches before it were split off it.
    room: BytesMut,
    /// The batches written into it, as (log, base offset); some may have left the cache since.
    written: Vec<(u64, u64)>,
    /// Of those, the ones still cached.
    live: usize,
    tick: u64,
}

struct Entry {
    batch: Bytes,
    next_offset: u64,
    /// Where the batch ends in the file: its segment's base and the position after it.
    stored_end: StoredAt,
    chunk: u64,
}

/// A position in a log's files: the base offset of a segment, and a byte position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredAt {
    pub segment: u64,
    pub pos: u64,
}

impl BatchCache {
    /// A cache of at most `bytes_max` bytes of chunks; one too small for a chunk caches
    /// nothing.
    pub fn new(bytes_max: usize) -> Self {
        let chunk_bytes = (bytes_max / CHUNKS_PER_CACHE).clamp(CHUNK_BYTES_MIN, CHUNK_BYTES_MAX);
        let counters = Arc::new(CacheCounters::default());
        counters.bytes_max.store(bytes_max as u64, Ordering::Relaxed);
        let chunks_max = bytes_max / (chunk_bytes + CACHE_ALIGN);
        let free = (0..chunks_max).map(|_| touched(chunk_bytes + CACHE_ALIGN)).collect();
        let inner = Inner { chunk_bytes, chunks_max, counters, free, ..Inner::default() };
        inner.publish_size();
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
    pub fn note_miss(&self, bytes: usize) {
        let i = self.inner.borrow();
        add(&i.counters.misses, 1);
        add(&i.counters.miss_bytes, bytes as u64);
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
    /// patched in as the file holds them. `stored_end` is where the batch ends in the log's
    /// files. Batches are cached in offset order.
    pub fn insert(&self, batch: &[u8], base: u64, next_offset: u64, leader_epoch: u32, stored_end: StoredAt) {
        let mut i = self.cache.inner.borrow_mut();
        let i = &mut *i;
        // A log drops what it cached of a cut before it appends again.
        let log = i.logs.get(&self.id).expect("a registered log has a map");
        assert!(log.range(base..).next().is_none(), "a batch is cached past the log end");
        let Some(chunk) = i.chunk_with_room(batch.len()) else { return };
        i.touch(chunk);
        let c = i.chunks.get_mut(&chunk).expect("the chunk with room is in use");
        c.room.extend_from_slice(batch);
        patch_offsets(&mut c.room, base, leader_epoch);
        let batch = c.room.split().freeze();
        c.written.push((self.id, base));
        c.live += 1;
        let log = i.logs.get_mut(&self.id).expect("a registered log has a map");
        log.insert(base, Entry { batch, next_offset, stored_end, chunk });
        i.batches += 1;
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
        let start = holding.map(|(b, _)| *b).filter(|b| *b < max_offset)?;
        let mut picked: Vec<(u64, &Entry)> = Vec::new();
        let mut total = 0;
        for (base, e) in log.range(start..) {
            let follows = picked.last().is_none_or(|(_, prev)| prev.next_offset == *base);
            let fits = picked.is_empty() || total + e.batch.len() <= max_bytes;
            if *base >= max_offset || !fits || !follows || !visible(e) {
                break;
            }
            total += e.batch.len();
            picked.push((*base, e));
        }
        let next_offset = picked.last().expect("the batch holding the offset is picked").1.next_offset;
        let bytes = match &picked[..] {
            [(_, one)] => lent_or_copied(one.batch.clone(), i.chunk_bytes),
            many => {
                let mut joined = AlignedVec::<CACHE_ALIGN>::with_capacity(total);
                many.iter().for_each(|(_, e)| joined.extend_from_slice(&e.batch));
                Bytes::from_owner(joined)
            }
        };
        let chunks: Vec<u64> = picked.iter().map(|(_, e)| e.chunk).collect();
        for chunk in chunks {
            i.touch(chunk);
        }
        add(&i.counters.hits, 1);
        add(&i.counters.hit_bytes, bytes.len() as u64);
        Some(CachedRead { bytes, next_offset })
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
    /// Marks a chunk used now.
    fn touch(&mut self, chunk: u64) {
        self.tick += 1;
        let c = self.chunks.get_mut(&chunk).expect("a touched chunk is in use");
        self.lru.remove(&c.tick);
        c.tick = self.tick;
        self.lru.insert(self.tick, chunk);
    }

    /// The chunk to write a batch of `len` bytes into: the current one if it has room, else a
    /// new one, made of free memory, or of the least recently used chunk's. `None` when the
    /// batch is larger than a chunk, or the cache has room for none.
    fn chunk_with_room(&mut self, len: usize) -> Option<u64> {
        if len > self.chunk_bytes || self.chunks_max == 0 {
            return None;
        }
        if let Some(c) = self.current.filter(|c| self.chunks[c].room.capacity() >= len) {
            return Some(c);
        }
        // The current chunk is full: it stays until it is evicted, or emptied.
        if let Some(full) = self.current.take()
            && self.chunks[&full].live == 0
        {
            self.release(full);
        }
        let room = self.room()?;
        let id = self.next_chunk;
        self.next_chunk += 1;
        self.chunks.insert(id, Chunk { room, written: Vec::new(), live: 0, tick: 0 });
        self.touch(id);
        self.current = Some(id);
        Some(id)
    }

    /// Memory for a new chunk: free memory, a new allocation while the bound allows one, or
    /// the least recently used chunk's, evicted. Memory still held by a batch being sent is
    /// left to it, and the chunk allocated anew.
    fn room(&mut self) -> Option<BytesMut> {
        while let Some(mut room) = self.free.pop() {
            room.clear();
            if room.try_reclaim(self.chunk_bytes) {
                return Some(aligned(room));
            }
        }
        if self.chunks.len() >= self.chunks_max {
            let (_, oldest) = self.lru.pop_first()?;
            self.evict(oldest);
            let mut room = self.free.pop().expect("an evicted chunk's memory is free");
            room.clear();
            if room.try_reclaim(self.chunk_bytes) {
                return Some(aligned(room));
            }
        }
        Some(aligned(touched(self.chunk_bytes + CACHE_ALIGN)))
    }

    /// Drops every batch still cached in `chunk`, and frees its memory.
    fn evict(&mut self, chunk: u64) {
        let c = self.chunks.get(&chunk).expect("an evicted chunk is in use");
        let written = c.written.clone();
        for (log, base) in written {
            let Some(l) = self.logs.get_mut(&log) else { continue };
            if l.get(&base).is_some_and(|e| e.chunk == chunk) {
                let e = l.remove(&base).expect("just found");
                self.forget(&e);
                add(&self.counters.evictions, 1);
            }
        }
        if self.chunks.contains_key(&chunk) {
            self.release(chunk);
        }
    }

    /// Takes a batch already removed from its log's map out of its chunk; a chunk left empty
    /// (and not being written) is freed.
    fn forget(&mut self, e: &Entry) {
        self.batches -= 1;
        let c = self.chunks.get_mut(&e.chunk).expect("a cached batch's chunk is in use");
        c.live -= 1;
        if c.live == 0 && self.current != Some(e.chunk) {
            self.release(e.chunk);
        }
    }

    /// Frees a chunk's memory for reuse.
    fn release(&mut self, chunk: u64) {
        let c = self.chunks.remove(&chunk).expect("a released chunk is in use");
        self.lru.remove(&c.tick);
        if self.current == Some(chunk) {
            self.current = None;
        }
        self.free.push(c.room);
    }

    /// Sets the counters of what the cache holds: its chunks' memory, and its batches.
    fn publish_size(&self) {
        let held = (self.chunks.len() + self.free.len()) * (self.chunk_bytes + CACHE_ALIGN);
        self.counters.bytes.store(held as u64, Ordering::Relaxed);
        self.counters.batches.store(self.batches as u64, Ordering::Relaxed);
    }
}

/// `part` of a buffer of `whole` bytes, to hand out: lent if large, copied if small. A part
/// lent keeps the whole buffer alive while it is sent (past its owner's bound, if the owner
/// reuses or drops the buffer meanwhile), so only a large one is: a stalled consumer holds at
/// most a few times the bytes it was sent.
pub(crate) fn lent_or_copied(part: Bytes, whole: usize) -> Bytes {
    match part.len() * ZERO_COPY_SHARE >= whole {
        true => part,
        false => Bytes::copy_from_slice(&part),
    }
}

/// An empty buffer of `len` bytes whose pages are already in memory (written once).
fn touched(len: usize) -> BytesMut {
    let mut room = BytesMut::with_capacity(len);
    room.resize(len, 0);
    room.clear();
    room
}

/// `room` from its first [`CACHE_ALIGN`]-aligned byte on.
fn aligned(mut room: BytesMut) -> BytesMut {
    let pad = room.as_ptr().align_offset(CACHE_ALIGN);
    if pad > 0 {
        room.resize(pad, 0);
        drop(room.split());
    }
    room
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64) -> StoredAt {
        StoredAt { segment, pos: 0 }
    }

    /// Once the bound is reached, a new chunk is made of an evicted chunk's memory: the
    /// batches of the fourth chunk lie where the first chunk's did.
    #[test]
    fn evicted_memory_is_reused() {
        let cache = BatchCache::new(CACHE_BYTES_MIN * 3);
        let log = cache.register();
        let batch = vec![0u8; 4096];
        let mut ptrs = Vec::new();
        for i in 0..16u64 {
            log.insert(&batch, i, i + 1, 0, at(0));
            let read = log.read(i, 1, u64::MAX, at(1)).expect("just cached");
            ptrs.push(read.bytes.as_ptr() as usize);
        }
        // Four batches a chunk (with the alignment pad, exactly); the first chunk went for the
        // fourth, and its memory with it.
        assert_eq!(cache.stats().evictions, 4);
        assert_eq!(cache.stats().batches, 12);
        let first = ptrs[0]..ptrs[3] + 4096;
        assert!(ptrs[12..].iter().all(|p| first.contains(p)), "{ptrs:x?}");
        assert!(ptrs.iter().all(|p| p % CACHE_ALIGN == 0));
    }
}

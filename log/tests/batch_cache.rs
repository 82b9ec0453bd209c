//! The shard's batch cache: fetches at the tail are answered from memory with exactly the
//! stored bytes, the bound holds with the least recently used batches going first whichever log
//! they belong to, and a failed log or a quarantined range is read from the files.
//! (`model.rs` checks the cache against the log model under every operation, `compaction.rs`
//! against cleaned segments.)

mod common;

use common::{batch, records_of_bytes, small_config};
use futures::executor::block_on;
use weir_log::batch::{Batch, BatchView};
use weir_log::storage::mem::MemStorage;
use weir_log::{BatchCache, LogConfig, PartitionLog};

fn cached_config(cache: &BatchCache) -> LogConfig {
    LogConfig { batch_cache: Some(cache.clone()), ..small_config() }
}

/// Batches of 4 records of 100 bytes: each is the same size.
fn four(tag: u64) -> Batch {
    batch(tag, 4, 100, tag as i64)
}

async fn fetch(log: &PartitionLog<MemStorage>, offset: u64, max_bytes: usize) -> (bool, bytes::Bytes) {
    let plan = log.plan_fetch(offset, max_bytes, u64::MAX).unwrap().expect("below the end");
    let cached = plan.is_cached();
    (cached, plan.execute().await.unwrap().bytes)
}

#[test]
fn a_tail_fetch_is_answered_from_the_cache_with_the_stored_bytes() {
    block_on(async {
        let cache = BatchCache::new(1 << 20);
        let (mut log, _) = PartitionLog::open(MemStorage::new(), cached_config(&cache), 0).await.unwrap();
        let len = four(1).view().bytes().len();
        for tag in 1..=3 {
            log.append(&four(tag).view(), 7, 0).await.unwrap();
        }
        log.flush().await.unwrap();
        // From the middle of the second batch: that batch, then the third, as the file has them.
        let (cached, bytes) = fetch(&log, 6, 2 * len).await;
        assert!(cached);
        assert_eq!(bytes[..], log.read(6, 2 * len).await.unwrap().bytes()[..]);
        let offsets: Vec<u64> = records_of_bytes(&bytes).iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (4..12).collect::<Vec<_>>());
        // Offsets and epoch are patched in, under the same CRC; the payload stays aligned.
        let first = BatchView::validate(&bytes[..len], usize::MAX).expect("a cached batch is valid");
        assert_eq!((first.header().base_offset, first.header().leader_epoch), (4, 7));
        assert_eq!(bytes.as_ptr() as usize % 16, 0);
        // One batch at least, whatever the bound.
        let (cached, one) = fetch(&log, 0, 1).await;
        assert!(cached && one.len() == len);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.batches), (2, 0, 3));
        // Its chunks are made at once: as many of 64 KiB (and an alignment pad) as fit.
        assert_eq!((stats.hit_bytes, stats.bytes), (3 * len as u64, 15 * ((64 << 10) + 16)));
        // A batch still in the write buffer is not served, as a read of the file would not.
        log.append(&four(4).view(), 7, 0).await.unwrap();
        assert_eq!(fetch(&log, 12, 1 << 20).await, (false, bytes::Bytes::new()));
        assert_eq!(fetch(&log, 8, 1 << 20).await.1.len(), len, "the batch before it alone");
        log.write_out().await.unwrap();
        assert!(fetch(&log, 12, 1 << 20).await.0);
    });
}

/// Batches of 4 records of 900 bytes: several fill a 16 KiB chunk.
fn large(tag: u64) -> Batch {
    batch(tag, 4, 900, tag as i64)
}

#[test]
fn the_least_recently_used_chunk_goes_first_whichever_logs_it_holds() {
    block_on(async {
        // Three chunks of 16 KiB (and an alignment pad).
        let held = 3 * ((16 << 10) + 16);
        let cache = BatchCache::new(held);
        let len = large(1).view().bytes().len();
        let per_chunk = (16 << 10) / len;
        let config =
            LogConfig { batch_bytes_max: 64 << 10, segment_bytes_max: 1 << 20, ..cached_config(&cache) };
        let (mut a, _) = PartitionLog::open(MemStorage::new(), config.clone(), 0).await.unwrap();
        let (mut b, _) = PartitionLog::open(MemStorage::new(), config, 0).await.unwrap();
        for first in [true, false, true] {
            let log = if first { &mut a } else { &mut b };
            for _ in 0..per_chunk {
                log.append(&large(1).view(), 0, 0).await.unwrap();
            }
        }
        a.flush().await.unwrap();
        b.flush().await.unwrap();
        let stats = cache.stats();
        assert_eq!((stats.bytes as usize, stats.batches, stats.evictions), (held, 3 * per_chunk as u64, 0));
        // A's first chunk is read: B's is now the least recently used, and goes for the next.
        assert!(fetch(&a, 0, 1).await.0);
        b.append(&large(2).view(), 0, 0).await.unwrap();
        b.flush().await.unwrap();
        let stats = cache.stats();
        assert_eq!((stats.bytes as usize, stats.batches), (held, 2 * per_chunk as u64 + 1));
        assert_eq!(stats.evictions, per_chunk as u64);
        let (cached, bytes) = fetch(&b, 0, 1).await;
        assert!(!cached, "evicted");
        assert_eq!(records_of_bytes(&bytes)[0].0, 0, "read from the file instead");
        assert_eq!(cache.stats().miss_bytes, len as u64);
        let last_of_b = 4 * per_chunk as u64;
        assert!(
            fetch(&a, 0, 1).await.0 && fetch(&a, last_of_b, 1).await.0 && fetch(&b, last_of_b, 1).await.0
        );
        // A batch larger than a chunk is not cached, and evicts nothing.
        let big = batch(5, 40, 900, 5);
        assert!(big.view().bytes().len() > 16 << 10);
        b.append(&big.view(), 0, 0).await.unwrap();
        b.flush().await.unwrap();
        assert!(!fetch(&b, last_of_b + 4, 1).await.0);
        assert_eq!(cache.stats().batches, 2 * per_chunk as u64 + 1);
        // A log's batches leave with it; their chunks are kept for reuse, within the bound.
        drop(a);
        assert_eq!((cache.stats().batches, cache.stats().bytes as usize), (1, held));
        for _ in 0..3 * per_chunk {
            b.append(&large(3).view(), 0, 0).await.unwrap();
        }
        b.flush().await.unwrap();
        // B's chunk took `per_chunk - 1` of them; two fresh chunks took two chunks' worth (the
        // memory A's left); the last one took B's first chunk's memory, evicted.
        let stats = cache.stats();
        assert_eq!((stats.bytes as usize, stats.batches), (held, 2 * per_chunk as u64 + 1), "{stats:?}");
    });
}

#[test]
fn a_failed_log_reads_its_files() {
    block_on(async {
        let cache = BatchCache::new(1 << 20);
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), cached_config(&cache), 0).await.unwrap();
        log.append(&four(1).view(), 0, 0).await.unwrap();
        log.flush().await.unwrap();
        log.append(&four(2).view(), 0, 0).await.unwrap();
        st.faults().fail_write_in.set(1);
        assert!(log.flush().await.is_err());
        assert!(log.is_failed());
        // The second batch never reached the file: a fetch does not find it in the cache.
        let plan = log.plan_fetch(4, 1 << 20, u64::MAX).unwrap();
        assert!(plan.is_none_or(|p| !p.is_cached()));
        let (cached, bytes) = fetch(&log, 0, 1 << 20).await;
        assert!(!cached);
        assert_eq!(records_of_bytes(&bytes).len(), 4);
    });
}

#[test]
fn a_quarantined_range_is_read_from_the_files() {
    block_on(async {
        let cache = BatchCache::new(1 << 20);
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), cached_config(&cache), 0).await.unwrap();
        for tag in 1..=3 {
            log.append(&four(tag).view(), 0, 0).await.unwrap();
        }
        log.roll(0).await.unwrap();
        // The second batch of the sealed segment is damaged on the device after it was cached.
        let len = four(1).view().bytes().len();
        st.flip_bit(&format!("{:020}.log", 0), (len + 300) as u64, 3);
        assert!(fetch(&log, 4, 1).await.0, "the cache does not know yet");
        let mut found = None;
        while found.is_none() {
            let outcome = log.plan_scrub(u64::MAX).unwrap().execute().await.unwrap();
            found = log.complete_scrub(outcome).await.unwrap();
        }
        assert!(log.plan_fetch(4, 1, u64::MAX).is_err(), "quarantined, as the file says");
        assert!(fetch(&log, 0, 1).await.0 && fetch(&log, 8, 1).await.0, "the rest stays cached");
    });
}

/// A cut rescans the active segment from its last index entry: damage it finds there leaves the
/// cache too, and a cut that lands lower (at the damage) drops what it cached past that.
#[test]
fn damage_a_cut_finds_is_read_from_the_files() {
    block_on(async {
        let cache = BatchCache::new(1 << 20);
        let st = MemStorage::new();
        // No index entry inside the segment: a cut rescans it from its start.
        let config = LogConfig { index_interval_bytes: 1 << 20, ..cached_config(&cache) };
        let (mut log, _) = PartitionLog::open(st.clone(), config, 0).await.unwrap();
        for tag in 1..=4 {
            log.append(&four(tag).view(), 0, 0).await.unwrap();
        }
        log.flush().await.unwrap();
        let len = four(1).view().bytes().len();
        st.flip_bit(&format!("{:020}.log", 0), (len + 300) as u64, 3);
        st.flip_bit(&format!("{:020}.log", 0), (2 * len + 300) as u64, 3);
        assert!(fetch(&log, 4, 1).await.0, "the cache does not know yet");
        log.truncate_to(13, 0).await.unwrap();
        assert!(log.plan_fetch(4, 1, u64::MAX).is_err(), "quarantined by the cut's scan");
        assert!(log.plan_fetch(8, 1, u64::MAX).is_err());
        // A cut inside the damage ends the log at its start; appending there again is fine.
        assert_eq!(log.truncate_to(10, 0).await.unwrap(), 4);
        log.append(&four(9).view(), 0, 0).await.unwrap();
        log.flush().await.unwrap();
        let (cached, bytes) = fetch(&log, 4, 1).await;
        assert!(cached);
        assert_eq!(
            records_of_bytes(&bytes)[0],
            (4, b"9:0:".iter().copied().chain(std::iter::repeat_n(b'x', 96)).collect())
        );
    });
}

/// What was read ahead of a consumer answers its next fetches, within their bounds, and goes
/// when the log is cut.
#[test]
fn a_read_ahead_answers_the_next_fetch_until_a_cut() {
    use weir_log::FetchPlan;
    block_on(async {
        let (mut log, _) = PartitionLog::open(MemStorage::new(), small_config(), 0).await.unwrap();
        for tag in 1..=6 {
            log.append(&four(tag).view(), 0, 0).await.unwrap();
        }
        log.flush().await.unwrap();
        let len = four(1).view().bytes().len();
        let first = log.plan_fetch(0, len, u64::MAX).unwrap().unwrap().execute().await.unwrap();
        assert!(first.from_device && first.next_offset == 4);
        let (plan, generation, start) = log.plan_read_ahead(4, 3 * len).unwrap();
        assert_eq!(start, 4);
        let read = plan.execute().await.unwrap();
        log.complete_read_ahead(bytes::Bytes::copy_from_slice(read.bytes()), generation, start);
        // Enough is read ahead of a consumer at 4; one at 12 is read ahead of from there.
        assert!(log.plan_read_ahead(4, 3 * len).is_none());
        assert_eq!(log.plan_read_ahead(8, 3 * len).unwrap().2, 16);
        // From the middle of a batch, within the bytes and below the offset asked.
        let plan = log.plan_fetch(5, 2 * len, 12).unwrap().unwrap();
        assert!(matches!(plan, FetchPlan::ReadAhead { .. }));
        let fetch = plan.execute().await.unwrap();
        assert_eq!((fetch.next_offset, fetch.from_device), (12, true));
        assert_eq!(fetch.bytes[..], log.read(5, 2 * len).await.unwrap().bytes()[..]);
        let one = log.plan_fetch(8, 2 * len, 12).unwrap().unwrap().execute().await.unwrap();
        assert_eq!(one.bytes.len(), len);
        // A cut: the batches read ahead may no longer be the log's.
        log.truncate_to(8, 0).await.unwrap();
        assert!(matches!(log.plan_fetch(4, len, u64::MAX).unwrap().unwrap(), FetchPlan::File { .. }));
    });
}

/// A stretch read from an offset in a compaction's gap holds that offset: a fetch there is
/// answered from it (its first batch, as a read of the file would give).
#[test]
fn a_stretch_read_from_a_gap_holds_the_gap() {
    use weir_log::read_ahead::{ReadAhead, ReadGeneration};
    let mut bytes = four(1).view().bytes().to_vec();
    weir_log::batch::patch_offsets(&mut bytes, 25, 0);
    let generation = ReadGeneration { log: 0, cuts: 0, swaps: 0 };
    let stretch = ReadAhead::new(bytes::Bytes::from(bytes.clone()), generation, 20).unwrap();
    assert!(stretch.holds(20) && stretch.holds(28) && !stretch.holds(29) && !stretch.holds(19));
    let (answer, next) = stretch.answer(22, 1, u64::MAX).unwrap();
    assert_eq!((answer.to_vec(), next), (bytes, 29));
    assert!(stretch.answer(22, 1, 25).is_none(), "its batch is past the offset asked");
}

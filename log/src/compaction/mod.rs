//! Log compaction: a background cleaner that rewrites sealed segments of a compacted topic,
//! keeping the latest record of every key.
//!
//! Contract, as with the scrubber: a pass is planned from the log without I/O
//! ([`crate::PartitionLog::plan_clean`]), carried out without borrowing the log
//! ([`CleanPlan::step`], called until it says it is done, each step reading about a budget of
//! bytes and reporting what it read and wrote, so the caller paces it at
//! `compaction_bytes_per_s_max`; a step may exceed its grant, by a batch larger than it or by
//! the unchanged start of a segment copied at its first change, and the caller's budget then
//! carries the debt, as the scrubber's does), and each rewritten
//! segment is swapped in by [`crate::PartitionLog::complete_clean`], which holds the log only
//! for the renames and drops the result if the segment changed meanwhile (deleted by retention,
//! cut by a truncation, found damaged, or cleaned by another pass). Appends and reads go on
//! while a pass runs: it only reads the old segments, through handles that stay valid, and
//! writes files of its own. A pass belongs to the shard that owns the partition; run at most
//! one per partition at a time. Dropping a pass between steps leaves `.cleaned` files that the
//! next pass of the segment overwrites, or the next open removes.
//!
//! What a pass keeps:
//! - Offsets never change: a batch keeps its base offset and offset range, and records that
//!   stay keep their offsets (see [`crate::batch::retain`]). Log start, log end, the epoch cache
//!   and retention are untouched.
//! - A record goes when a later record with the same key exists in the part of the log the
//!   pass's key map covers. The map is bounded by [`CleanConfig::map_bytes_max`]: a pass maps
//!   keys from the segment holding `map_from` on until the map is full or the cleanable range
//!   ends, then rewrites every segment from the oldest one to the last the map reaches into.
//!   The caller keeps `map_from` between passes (Kafka's cleaner checkpoint): it starts at the
//!   log start and moves to [`CleanPlan::mapped_to`] after a pass whose cleaned segments were
//!   all swapped in (or left unchanged), so each pass maps only what earlier passes did not. A
//!   pass with nothing new to map still reads every cleanable segment, and rewrites those
//!   whose tombstones expired.
//! - A tombstone (null value) that is its key's latest record goes once `delete_retention_ms`
//!   passed since its segment's last append (`max_append_ms`, the broker's clock), and only
//!   once a key map (this pass's or an earlier one's) covered it, so that the key's older
//!   records are gone first and cannot come back (see [`rewrite::keep_flags`]). The append time
//!   is the latest the tombstone can have been appended (record timestamps are the producer's
//!   and may be anything), so a consumer that reads the partition to its end at least once per
//!   `delete_retention_ms` sees every tombstone.
//! - Records without a key stay (a compacted topic should refuse them; keeping them is safe).
//! - The last batch of a segment keeps at least its last record, superseded or not, so that
//!   the segment still ends at its end offset (see [`rewrite::keep_flags`]). A superseded
//!   record kept so loses its value: a deleted key never comes back through it.
//! - So does each idempotent producer's latest batch, as the plan found them
//!   ([`rewrite::KeptBatches`]): a log whose producers' state is rebuilt from its batches (no
//!   snapshot, a follower that copied it) still knows each producer's last sequence, so its
//!   retries are recognised and its next batch is not refused as out of order.

mod chunk;
mod offset_map;
pub mod rewrite;
pub mod schedule;
pub mod swap;

pub use offset_map::{MAP_ENTRY_OVERHEAD_BYTES, OffsetMap};
pub use rewrite::CleanedSegment;
pub use schedule::{CleanSchedule, Cleanable};

use crate::error::Result;
use crate::storage::Storage;
use rewrite::Rewrite;
use std::rc::Rc;

/// The cleaning settings of a compacted partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanConfig {
    /// How long a tombstone stays after its segment's last append, in ms.
    pub delete_retention_ms: u64,
    /// Bound of a pass's key map, in bytes: each key counts its length plus
    /// [`MAP_ENTRY_OVERHEAD_BYTES`]. A pass may pass it by one batch's keys. At least 1.
    pub map_bytes_max: usize,
}

impl Default for CleanConfig {
    fn default() -> Self {
        Self { delete_retention_ms: 24 * 3600 * 1000, map_bytes_max: 64 << 20 }
    }
}

/// A sealed segment as a pass planned it: it holds the file, so it stays readable if the log
/// deletes the segment meanwhile.
#[derive(Debug)]
pub struct CleanSegment<F> {
    pub base: u64,
    pub next_offset: u64,
    pub size: u64,
    pub max_append_ms: u64,
    pub file: Rc<F>,
}

/// What one step did.
#[derive(Debug)]
pub struct CleanStep<F> {
    /// Bytes read from and written to the device: what the step costs the I/O budget.
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// A segment rewritten and ready to swap in with [`crate::PartitionLog::complete_clean`].
    pub cleaned: Option<CleanedSegment<F>>,
    /// The pass is over; further steps do nothing.
    pub done: bool,
}

#[derive(Debug)]
enum Phase<F: crate::storage::StorageFile> {
    /// Mapping keys: at segment `seg`, file position `pos`.
    Map {
        seg: usize,
        pos: u64,
    },
    /// Rewriting segment `seg`, of the first `until` segments.
    Rewrite {
        seg: usize,
        until: usize,
        rewrite: Option<Box<Rewrite<F>>>,
    },
    Done,
}

/// One cleaning pass over a partition's cleanable segments, planned by
/// [`crate::PartitionLog::plan_clean`]. Owned by the task that runs it; see the module
/// documentation for the contract.
#[derive(Debug)]
pub struct CleanPlan<S: Storage> {
    pub(crate) storage: S,
    pub(crate) segments: Vec<CleanSegment<S::File>>,
    pub(crate) config: CleanConfig,
    pub(crate) now_ms: u64,
    pub(crate) index_interval_bytes: u64,
    map: OffsetMap,
    phase: Phase<S::File>,
    mapped_to: Option<u64>,
    /// Batches ending at or below this were mapped by earlier passes.
    map_from: u64,
    /// Batches that keep a record whatever happens: see [`rewrite::KeptBatches`].
    kept: rewrite::KeptBatches,
    /// The log's [`crate::PartitionLog::cuts`] when the pass was planned.
    pub(crate) cuts: u64,
}

impl<S: Storage> CleanPlan<S> {
    pub(crate) fn new(
        storage: S,
        segments: Vec<CleanSegment<S::File>>,
        map_from: u64,
        config: CleanConfig,
        now_ms: u64,
        index_interval_bytes: u64,
        kept: rewrite::KeptBatches,
    ) -> Self {
        assert!(config.map_bytes_max > 0, "a key map holds at least one key");
        assert!(segments.iter().all(|s| s.size > 0), "only segments with batches are cleaned");
        let map = OffsetMap::new(config.map_bytes_max);
        let first = segments.partition_point(|s| s.next_offset <= map_from);
        let mut plan = Self {
            storage,
            segments,
            config,
            now_ms,
            index_interval_bytes,
            map,
            phase: Phase::Map { seg: first, pos: 0 },
            mapped_to: None,
            kept,
            map_from,
            cuts: 0,
        };
        if first == plan.segments.len() {
            // Nothing new to map: the pass rewrites for the tombstones alone.
            let end = plan.segments.last().map_or(map_from, |s| s.next_offset);
            plan.end_map(first, end);
        }
        plan
    }

    /// Once the keys are mapped (from the first step that rewrites, and when the pass is
    /// done): the first offset the map does not cover, where the next pass maps from.
    pub fn mapped_to(&self) -> Option<u64> {
        self.mapped_to
    }

    /// Base offsets of the segments the pass may clean, oldest first.
    pub fn segment_bases(&self) -> Vec<u64> {
        self.segments.iter().map(|s| s.base).collect()
    }

    /// Does the next piece of work, reading about `budget_bytes` (at least one batch): maps
    /// keys, or rewrites part of a segment. A step that finishes a segment returns it in
    /// [`CleanStep::cleaned`], for the caller to swap in before the next step.
    pub async fn step(&mut self, budget_bytes: u64) -> Result<CleanStep<S::File>> {
        let mut out = CleanStep { read_bytes: 0, written_bytes: 0, cleaned: None, done: false };
        match &mut self.phase {
            Phase::Map { seg, pos } => {
                let (seg, pos) = (*seg, *pos);
                out.read_bytes = self.map_step(seg, pos, budget_bytes).await?;
            }
            Phase::Rewrite { .. } => self.rewrite_step(budget_bytes, &mut out).await?,
            Phase::Done => {}
        }
        out.done = matches!(self.phase, Phase::Done);
        Ok(out)
    }

    /// Maps the keys of the next chunk of segment `seg` from `pos`; moves to rewriting once
    /// the map is full or every segment is mapped.
    async fn map_step(&mut self, seg: usize, pos: u64, budget_bytes: u64) -> Result<u64> {
        let s = &self.segments[seg];
        let name = crate::segment::data_file_name(s.base);
        let chunk = chunk::read_chunk(&*s.file, &name, s.base, (pos, s.size), budget_bytes).await?;
        for &at in &chunk.batches {
            let view = chunk.batch(at)?;
            if view.header().next_offset() <= self.map_from {
                continue; // mapped by an earlier pass
            }
            if self.map.is_full() {
                // Segments up to this one are covered, this one only in part.
                self.end_map(seg + usize::from(at > 0), view.header().base_offset);
                return Ok(chunk.read_bytes);
            }
            for r in view.records() {
                if let Some(key) = r.key {
                    self.map.insert(key, r.offset);
                }
            }
        }
        match chunk.end_pos >= s.size {
            true if seg + 1 == self.segments.len() => self.end_map(seg + 1, s.next_offset),
            true => self.phase = Phase::Map { seg: seg + 1, pos: 0 },
            false => self.phase = Phase::Map { seg, pos: chunk.end_pos },
        }
        Ok(chunk.read_bytes)
    }

    /// Ends the mapping at offset `mapped_to`: the first `until` segments are rewritten.
    fn end_map(&mut self, until: usize, mapped_to: u64) {
        self.mapped_to = Some(mapped_to);
        self.phase = match until {
            0 => Phase::Done,
            _ => Phase::Rewrite { seg: 0, until, rewrite: None },
        };
    }

    async fn rewrite_step(&mut self, budget_bytes: u64, out: &mut CleanStep<S::File>) -> Result<()> {
        let Phase::Rewrite { seg, until, rewrite } = &mut self.phase else { unreachable!("rewriting") };
        let s = &self.segments[*seg];
        let rw = rewrite.get_or_insert_with(|| Box::new(Rewrite::new(s, self.index_interval_bytes)));
        let expired = self.now_ms.saturating_sub(s.max_append_ms) >= self.config.delete_retention_ms;
        let tombstones = rewrite::Tombstones { expired, map_from: self.map_from };
        let (read, written) =
            rw.step(&self.storage, s, &self.map, (tombstones, &self.kept), budget_bytes).await?;
        (out.read_bytes, out.written_bytes) = (read, written);
        if !rw.read_all(s) {
            return Ok(());
        }
        let rw = rewrite.take().expect("a rewrite in progress");
        let (cleaned, index_bytes) = rw.finish(&self.storage, s).await?;
        out.written_bytes += index_bytes;
        out.cleaned = cleaned.map(|c| CleanedSegment { cuts: self.cuts, ..c });
        *seg += 1;
        if *seg >= *until {
            self.phase = Phase::Done;
        }
        Ok(())
    }
}

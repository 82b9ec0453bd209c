//! The partition log: an ordered sequence of segments with one active segment at the end.
//!
//! Owned by the shard that owns the partition. Writes (`append`, `flush`, `roll`, `truncate_to`,
//! `enforce_retention`) take `&mut self` and run one at a time; reads are planned from `&self`
//! without I/O ([`PartitionLog::plan_read`]) and carried out afterwards, so a reader never holds
//! the log across an I/O. Offsets below [`durable_offset`](PartitionLog::durable_offset) survive
//! a crash; offsets above it were acknowledged to nobody who asked for durability.
//!
//! A leader appends with [`append`](PartitionLog::append), which assigns offsets; a follower
//! with [`append_replicated`](PartitionLog::append_replicated), which keeps the leader's. Both
//! keep the leader-epoch cache (`epoch_cache.rs`, stored by `epoch_store.rs`) in step.
//!
//! Background work runs without the log borrowed and is recorded under `&mut self` briefly,
//! dropped if the log changed meanwhile: scrubbing ([`PartitionLog::plan_scrub`],
//! [`PartitionLog::complete_scrub`]) and, for compacted topics, cleaning
//! ([`PartitionLog::plan_clean`], [`PartitionLog::complete_clean`], see [`crate::compaction`]).

use crate::appender::{Appender, AppenderConfig};
use crate::batch::{BatchHeader, BatchView, patch_offsets};
use crate::batch_cache::{BatchCache, CachedLog, StoredAt};
use crate::compaction::{CleanConfig, CleanPlan, CleanSegment, Cleanable, CleanedSegment, swap};
use crate::damage::DamagedRange;
use crate::epoch_cache::{EpochEnd, EpochEntry};
use crate::epoch_store::{EpochStore, Opened};
use crate::error::{BatchError, LogError, Result};
use crate::fetch_plan::FetchPlan;
use crate::group_commit::PendingSync;
use crate::index::{INDEX_ENTRY_BYTES, IndexEntry, SealedInfo, SegmentIndex};
use crate::producers::ProducerTable;
use crate::read_ahead::{READ_AHEADS_MAX, ReadAhead, ReadGeneration, next_log_instance};
use crate::scrub::{ScrubCursor, ScrubOutcome, ScrubPlan};
use crate::segment::{
    Fetched, ReadPlan, Scan, ScanEnd, ScanKind, Segment, data_file_name, index_file_name,
    parse_data_file_name, scan,
};
use crate::start_store::StartStore;
use crate::storage::{Storage, StorageFile};
use crate::timestamp_lookup::{Candidate, TimestampLookup};
use bytes::Bytes;
use std::collections::VecDeque;
use std::rc::Rc;

/// When appended batches become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Acknowledge only after fdatasync; concurrent appends share one (group commit, see
    /// [`crate::SharedLog`]).
    Sync,
    /// Sync when `flush_interval_ms` has passed since the last sync ([`PartitionLog::tick`]).
    Interval { flush_interval_ms: u64 },
}

/// Settings of one partition log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A segment rolls before it would grow past this. At most `u32::MAX`.
    pub segment_bytes_max: u64,
    /// A segment rolls once this long has passed since its first batch: at the next append or
    /// [`PartitionLog::tick`].
    pub segment_ms: u64,
    /// Bytes of batches between two sparse index entries.
    pub index_interval_bytes: u64,
    /// Largest batch accepted.
    pub batch_bytes_max: usize,
    pub write_buffer_bytes: usize,
    pub write_behind_buffers_max: usize,
    pub preallocate_bytes: u64,
    pub flush: FlushPolicy,
    /// Delete sealed segments whose last batch was appended longer ago than this (by the
    /// broker's clock, `now_ms`, not the records' timestamps).
    pub retention_ms: Option<u64>,
    /// Delete sealed segments, oldest first, while the log stays at least this large without them.
    pub retention_bytes: Option<u64>,
    /// The shard's cache of recently appended batches, which fetches read before the files
    /// (see [`crate::batch_cache`]); `None` reads the files only.
    pub batch_cache: Option<BatchCache>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes_max: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            batch_bytes_max: 4 << 20,
            write_buffer_bytes: 1 << 20,
            write_behind_buffers_max: 4,
            preallocate_bytes: 32 << 20,
            flush: FlushPolicy::Sync,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            batch_cache: None,
        }
    }
}

impl LogConfig {
    fn check(&self) -> Result<()> {
        let bad = |what| Err(LogError::Config(what));
        if self.segment_bytes_max > u64::from(u32::MAX) || self.segment_bytes_max < 4096 {
            return bad("segment_bytes_max must be within [4096, 2^32)");
        }
        if self.write_buffer_bytes < 4096 || !self.write_buffer_bytes.is_multiple_of(4096) {
            return bad("write_buffer_bytes must be a positive multiple of 4096");
        }
        if self.write_behind_buffers_max == 0 {
            return bad("write_behind_buffers_max must be at least 1");
        }
        if self.batch_bytes_max as u64 > self.segment_bytes_max || self.batch_bytes_max < 4096 {
            return bad("batch_bytes_max must be within [4096, segment_bytes_max]");
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes must be positive");
        }
        Ok(())
    }

    /// Largest batch a stored frame may declare: the format's bound. Reads and recovery check
    /// against this, not `batch_bytes_max` or `segment_bytes_max`: lowering a limit must not make
    /// batches stored under the old one look corrupt. The file's size bounds them in practice.
    pub fn stored_batch_bytes_max(&self) -> usize {
        u32::MAX as usize
    }

    fn data_appender(&self) -> AppenderConfig {
        AppenderConfig {
            write_buffer_bytes: self.write_buffer_bytes,
            write_behind_buffers_max: self.write_behind_buffers_max,
            preallocate_bytes: self.preallocate_bytes,
        }
    }
}

/// Active-segment index hints are written in whole 4 KiB blocks of entries. Recovery scans at
/// most this many batches more than it would with every hint written.
const HINTS_PER_WRITE: usize = 4096 / INDEX_ENTRY_BYTES;

const INDEX_APPENDER: AppenderConfig =
    AppenderConfig { write_buffer_bytes: 64 << 10, write_behind_buffers_max: 4, preallocate_bytes: 0 };

/// How often the periodic chore looks whether the active segment's appenders went idle. An
/// appender gives its write buffers back at the first look after one with no append in between,
/// so a partition not written for one to two intervals holds no full-size buffer.
pub const BUFFER_IDLE_CHECK_MS: u64 = 1000;

/// Where appended records landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
}

/// What a [`PartitionLog::tick`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    /// An interval flush moved the durable offset.
    pub flushed: bool,
    /// The active segment was old enough and was rolled.
    pub rolled: bool,
}

/// A cut made by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Segment and file position of the first batch that was dropped.
    pub segment: u64,
    pub position: u64,
    /// The log ends here after recovery.
    pub offset: u64,
    pub reason: BatchError,
}

/// What opening a log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Sealed segments whose index was missing or damaged and was rebuilt.
    pub rebuilt_indexes: Vec<u64>,
    /// Set when the active segment ended in a torn write (nothing intact after it) and the log
    /// was cut before it.
    pub truncated: Option<Truncation>,
    /// Damage found in the middle of segments, with intact batches after it: quarantined, not
    /// cut (see [`PartitionLog::damaged_ranges`]).
    pub damaged: Vec<DamagedRange>,
    /// Segments removed because they followed a cut, or were empty.
    pub removed_segments: Vec<u64>,
    /// The leader-epoch slot files held bytes but neither held an intact cache, so the log
    /// starts with an empty one: it cannot answer for epochs before the next it writes.
    pub epoch_cache_lost: bool,
}

/// The segment being appended to.
#[derive(Debug)]
struct Active<F: StorageFile> {
    seg: Segment<F>,
    data: Appender<F>,
    index_out: Appender<F>,
    /// Index entries handed to `index_out` so far.
    index_persisted: usize,
    /// Index entries whose batches were durable as of the last sync: the ones that may go out.
    index_durable: usize,
    /// Where the segment's age counts from (`segment_ms`): when its first batch was appended,
    /// or, for a segment that held batches when it became active (at open, after a
    /// truncation), that moment, as when its batches went in is not known.
    opened_ms: u64,
    /// Identifies this active segment: a sync records its coverage only if the segment it was
    /// prepared on is still active (a roll or truncation makes a new `Active`).
    token: Rc<()>,
    /// The segment holds quarantined damage: no more index hints are written, so that recovery
    /// scans it from before the damage and finds the damage again.
    hints_frozen: bool,
    /// When the appenders were last asked to give back idle buffers.
    idle_check_ms: u64,
}

/// A partition's log. See the module documentation for its contract.
#[derive(Debug)]
pub struct PartitionLog<S: Storage> {
    storage: S,
    config: LogConfig,
    sealed: VecDeque<Segment<S::File>>,
    active: Active<S::File>,
    durable_offset: u64,
    last_flush_ms: u64,
    failed: bool,
    /// Leader epoch → start offset, kept in step with the log's two ends.
    epochs: EpochStore<S::File>,
    /// The log start a DeleteRecords set, which may lie inside the first segment.
    start: StartStore<S::File>,
    /// Quarantined damage, ordered by segment and position. Not stored in a file of its own: a
    /// segment holding damage keeps no sealed index (and its hints stop before the damage), so
    /// every open scans it again and finds the same damage.
    damaged: Vec<DamagedRange>,
    /// Where the scrubber goes on: see [`crate::scrub`].
    scrub: ScrubCursor,
    /// Idempotent producers' last batches: see [`crate::producers`]. Rebuilt at open.
    pub(crate) producers: ProducerTable,
    /// The partition's transactions, kept with the producers (see [`crate::transactions`]).
    pub(crate) txns: crate::transactions::TxnTable,
    /// The base of `producers.snapshot`, if there is one (see [`crate::producer_snapshot`]).
    pub(crate) producers_snapshot_base: Option<u64>,
    /// This log's part of the shard's batch cache, if it has one.
    cache: Option<CachedLog>,
    /// Batches read from the files ahead of a consumer (see [`crate::read_ahead`]).
    ahead: VecDeque<ReadAhead>,
    /// Tells this log from any other the process opened, a reopened one of the same files
    /// included: for [`ReadGeneration`].
    instance: u64,
    /// How many times batches were cut off the log (truncations and new starts): a cleaner's
    /// checkpoint taken before a cut no longer describes the log.
    cuts: u64,
    /// Cleaned segments swapped in so far, which outdates scrubbing steps planned before.
    swaps: u64,
}

fn io_err(op: &'static str, name: &str) -> impl FnOnce(std::io::Error) -> LogError {
    let name = name.to_owned();
    move |e| LogError::io(op, name, e)
}

fn encode_entries(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = vec![0u8; entries.len() * INDEX_ENTRY_BYTES];
    for (e, chunk) in entries.iter().zip(out.chunks_exact_mut(INDEX_ENTRY_BYTES)) {
        e.encode(chunk);
    }
    out
}

/// Replaces a small file's contents and makes them durable.
pub(crate) async fn write_whole<F: StorageFile>(file: &Rc<F>, name: &str, bytes: &[u8]) -> Result<()> {
    file.truncate(0).await.map_err(io_err("truncate", name))?;
    let mut out = Appender::open(file.clone(), name.to_owned(), 0, INDEX_APPENDER).await?;
    out.append(bytes, |_| {}).await?;
    out.finish().await?;
    // Also when `bytes` is empty: the truncation itself must be durable.
    file.sync().await.map_err(io_err("sync", name))
}

pub(crate) async fn read_whole<F: StorageFile>(file: &F, name: &str) -> Result<Vec<u8>> {
    let len = file.size().await.map_err(io_err("size", name))?;
    let aligned = crate::storage::align_up(len, file.alignment()) as usize;
    let buf = file.read_at(0, aligned).await.map_err(io_err("read", name))?;
    Ok(buf[..(len as usize).min(buf.len())].to_vec())
}

impl<S: Storage> PartitionLog<S> {
    /// Opens the log in `storage`, recovering it: sealed segments with a valid index are trusted;
    /// a sealed segment without one is scanned and its index rebuilt; the active segment is
    /// scanned from its last good index entry with every batch validated. Damage followed by
    /// intact batches is quarantined ([`damaged_ranges`](Self::damaged_ranges)) and everything
    /// valid is kept; only a torn tail of the active segment (nothing intact after it) is cut.
    /// No segment is removed unless it holds no batch or follows a gap or overlap left by an
    /// interrupted truncation. `now_ms` is the wall clock, for segment age.
    pub async fn open(storage: S, config: LogConfig, now_ms: u64) -> Result<(Self, RecoveryReport)> {
        config.check()?;
        let mut names = storage.list().await.map_err(io_err("list", "data dir"))?;
        // A cleaning a crash interrupted is rolled back or forward before any segment is read.
        if crate::compaction::swap::recover(&storage, &names).await? {
            names = storage.list().await.map_err(io_err("list", "data dir"))?;
        }
        let mut bases: Vec<u64> = names.iter().filter_map(|n| parse_data_file_name(n)).collect();
        bases.sort_unstable();
        for name in &names {
            if let Some(digits) = name.strip_suffix(".index")
                && digits.parse::<u64>().map_or(true, |b| !bases.contains(&b))
            {
                storage.remove(name).await.map_err(io_err("remove", name))?;
            }
        }
        let mut report = RecoveryReport::default();
        let mut sealed: VecDeque<Segment<S::File>> = VecDeque::new();
        let mut active: Option<Active<S::File>> = None;
        let mut damaged = Vec::new();
        let mut i = 0;
        while i < bases.len() {
            let base = bases[i];
            let prev_next = sealed.back().map(|s: &Segment<S::File>| s.next_offset);
            if prev_next.is_some_and(|n| base != n) {
                // Segments follow each other without gap or overlap; anything else is left over
                // from an interrupted truncation and is not part of the log.
                break;
            }
            i += 1;
            let name = data_file_name(base);
            let file = Rc::new(storage.open(&name, false).await.map_err(io_err("open", &name))?);
            let file_len = file.size().await.map_err(io_err("size", &name))?;
            let kind = bases.get(i).map_or(ScanKind::Active, |&end_offset| ScanKind::Sealed { end_offset });
            if kind != ScanKind::Active
                && let Some(seg) = Self::open_sealed(&storage, &config, base, &file, file_len).await?
            {
                sealed.push_back(seg);
                continue;
            }
            let Some((seg, found)) = Self::recover_segment(
                &storage,
                &config,
                base,
                file,
                file_len,
                kind,
                sealed.is_empty(),
                now_ms,
                &mut report,
            )
            .await?
            else {
                report.removed_segments.push(base);
                continue;
            };
            let hints_before = found.first().map(|d| d.start_pos);
            damaged.extend(found);
            if kind == ScanKind::Active {
                active = Some(Self::resume_active(&storage, &config, seg, now_ms, hints_before).await?);
                break;
            }
            Self::seal_index(&storage, &seg, hints_before.is_some()).await?;
            report.rebuilt_indexes.push(base);
            sealed.push_back(seg);
        }
        // Whatever follows a cut (or an overlap) is not part of the log any more.
        for &base in &bases[i..] {
            Self::remove_segment(&storage, base).await?;
            report.removed_segments.push(base);
        }
        let active = match active {
            Some(a) => a,
            None => {
                let base = sealed.back().map_or(0, |s| s.next_offset);
                Self::create_active(&storage, &config, base, now_ms).await?
            }
        };
        report.damaged = damaged.clone();
        // What recovery kept may include writes that were never synced before a crash: sync it
        // before claiming it durable.
        active.seg.file.sync().await.map_err(io_err("sync", &data_file_name(active.seg.base)))?;
        report.segments = sealed.len() + 1;
        let durable_offset = active.seg.next_offset;
        let log_start = sealed.front().map_or(active.seg.base, |s| s.base);
        let mut start = StartStore::open(&storage).await?;
        // A crash may have lost records a DeleteRecords had reached (a node without fsync): the
        // log cannot start past its end, and records appended again there must stay readable.
        if start.start > durable_offset {
            start.set(&storage, durable_offset).await?;
        }
        let epochs =
            Self::open_epochs(&storage, log_start.max(start.start), durable_offset, &mut report).await?;
        storage.sync_dir().await.map_err(io_err("sync", "data dir"))?;
        let cache = config.batch_cache.as_ref().map(BatchCache::register);
        let log = Self {
            storage,
            config,
            cache,
            ahead: VecDeque::new(),
            instance: next_log_instance(),
            sealed,
            active,
            durable_offset,
            last_flush_ms: now_ms,
            failed: false,
            epochs,
            start,
            damaged,
            scrub: Default::default(),
            producers: ProducerTable::default(),
            txns: Default::default(),
            cuts: 0,
            producers_snapshot_base: None,
            swaps: 0,
        };
        let mut log = log;
        log.recover_producers().await?;
        Ok((log, report))
    }

    /// Scans a segment that has no trusted sealed index: the active one, whose torn tail is cut,
    /// or a sealed one, which is never cut. Returns it with the damage found in it, or `None`
    /// when it was a sealed segment without a batch, now removed.
    #[allow(clippy::too_many_arguments)]
    async fn recover_segment(
        storage: &S,
        config: &LogConfig,
        base: u64,
        file: Rc<S::File>,
        file_len: u64,
        kind: ScanKind,
        first: bool,
        now_ms: u64,
        report: &mut RecoveryReport,
    ) -> Result<Option<(Segment<S::File>, Vec<DamagedRange>)>> {
        let name = data_file_name(base);
        let hints = if kind == ScanKind::Active {
            Self::check_hints(storage, config, base, &file, file_len).await?
        } else {
            Vec::new()
        };
        // With no hints this is a fresh index, and the scan starts at the segment's start.
        let mut index = SegmentIndex::resume(config.index_interval_bytes, &hints);
        let (from_pos, from_offset) =
            hints.last().map_or((0, base), |e| (u64::from(e.position), base + u64::from(e.rel_offset)));
        let max = config.stored_batch_bytes_max();
        let found: Scan =
            scan(&*file, &name, &mut index, base, (from_pos, from_offset), file_len, max, kind).await?;
        if let ScanEnd::Damaged(reason) = &found.end {
            tracing::warn!(segment = base, position = found.end_pos, %reason, "log cut at a torn write");
            report.truncated = Some(Truncation {
                segment: base,
                position: found.end_pos,
                offset: found.next_offset,
                reason: reason.clone(),
            });
        }
        let mut found = found;
        if let ScanKind::Sealed { end_offset } = kind
            && found.end_pos == 0
            && found.damaged.is_empty()
        {
            // Without a batch: a segment created but never written (as by a truncation below
            // the log start) is removed. One between segments that hold batches lost its data,
            // and its offsets are quarantined: removing it would leave a gap.
            if first {
                drop(file);
                Self::remove_segment(storage, base).await?;
                return Ok(None);
            }
            let reason = BatchError::Inconsistent { reason: "segment holds no batch" };
            let all = DamagedRange {
                segment: base,
                start_pos: 0,
                end_pos: file_len,
                first_offset: base,
                last_offset: end_offset.max(base + 1) - 1,
                reason,
            };
            found =
                Scan { end_pos: file_len, next_offset: end_offset, end: ScanEnd::Clean, damaged: vec![all] };
        }
        // Only a torn tail or unwritten space is cut; a sealed segment's damage stays in place.
        if file_len != found.end_pos && (kind == ScanKind::Active || found.damaged.is_empty()) {
            file.truncate(found.end_pos).await.map_err(io_err("truncate", &name))?;
            file.sync().await.map_err(io_err("sync", &name))?;
        }
        // When its batches were appended is not known: the open time stands in (see
        // `Segment::max_append_ms`).
        let seg = Segment {
            base,
            next_offset: found.next_offset,
            size: found.end_pos,
            index,
            file,
            max_append_ms: now_ms,
        };
        Ok(Some((seg, found.damaged)))
    }

    /// Loads the leader-epoch cache and fits it to the recovered log `[start, end)`: a crash may
    /// have lost the batches of an epoch recorded before them, or the cache update that
    /// followed a truncation or a retention deletion.
    async fn open_epochs(
        storage: &S,
        start: u64,
        end: u64,
        report: &mut RecoveryReport,
    ) -> Result<EpochStore<S::File>> {
        let Opened { mut store, lost } = EpochStore::open(storage).await?;
        report.epoch_cache_lost = lost;
        let cut = store.cache.truncate_from_end(end);
        // A log whose start is its end keeps its last epoch as it was: moved to the end, the
        // next open would drop it as past the end.
        let moved = start < end && store.cache.truncate_from_start(start);
        if moved || cut {
            store.persist().await?;
        }
        Ok(store)
    }

    /// A sealed segment with a valid index, or `None` when its index must be rebuilt.
    async fn open_sealed(
        storage: &S,
        config: &LogConfig,
        base: u64,
        file: &Rc<S::File>,
        file_len: u64,
    ) -> Result<Option<Segment<S::File>>> {
        let name = index_file_name(base);
        let Ok(index_file) = storage.open(&name, false).await else { return Ok(None) };
        let bytes = read_whole(&index_file, &name).await?;
        let Some((index, info)) = SegmentIndex::decode_sealed(&bytes, config.index_interval_bytes) else {
            tracing::warn!(segment = base, "sealed index missing or damaged; rebuilding");
            return Ok(None);
        };
        if info.size != file_len || info.next_offset <= base {
            tracing::warn!(segment = base, "sealed index disagrees with its segment; rebuilding");
            return Ok(None);
        }
        Ok(Some(Segment {
            base,
            next_offset: info.next_offset,
            size: info.size,
            index,
            file: file.clone(),
            max_append_ms: info.max_append_ms,
        }))
    }

    /// The active segment's index entries that point at intact batches: the longest prefix of
    /// the hints whose last entry is a batch with a matching offset and a good CRC.
    async fn check_hints(
        storage: &S,
        config: &LogConfig,
        base: u64,
        file: &Rc<S::File>,
        file_len: u64,
    ) -> Result<Vec<IndexEntry>> {
        let name = index_file_name(base);
        let Ok(index_file) = storage.open(&name, false).await else { return Ok(Vec::new()) };
        let mut hints = SegmentIndex::parse_hints(&read_whole(&index_file, &name).await?);
        while let Some(last) = hints.last() {
            let pos = u64::from(last.position);
            let align = file.alignment() as u64;
            let start = pos & !(align - 1);
            let ok = pos < file_len && {
                let head =
                    file.read_at(start, (align as usize).max(4096)).await.map_err(io_err("read", &name))?;
                let at = (pos - start) as usize;
                let header = crate::batch::BatchHeader::decode(head.get(at..).unwrap_or(&[])).ok();
                match header {
                    Some(h)
                        if h.check_frame(config.stored_batch_bytes_max()).is_ok()
                            && h.base_offset == base + u64::from(last.rel_offset) =>
                    {
                        let len = h.batch_len as usize;
                        let whole = file
                            .read_at(
                                start,
                                crate::storage::align_up((at + len) as u64, align as usize) as usize,
                            )
                            .await
                            .map_err(io_err("read", &name))?;
                        crate::batch::check_frame_and_crc(&whole[at..], config.stored_batch_bytes_max())
                            .is_ok()
                    }
                    _ => false,
                }
            };
            if ok {
                break;
            }
            hints.pop();
        }
        Ok(hints)
    }

    async fn remove_segment(storage: &S, base: u64) -> Result<()> {
        for name in [data_file_name(base), index_file_name(base)] {
            match storage.remove(&name).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("remove", name, e)),
            }
        }
        Ok(())
    }

    /// Writes a sealed segment's index with its footer; for a segment holding quarantined
    /// damage (`damaged`), an empty index instead, so every open scans it and finds the damage.
    async fn seal_index(storage: &S, seg: &Segment<S::File>, damaged: bool) -> Result<()> {
        let name = index_file_name(seg.base);
        let file = Rc::new(storage.open(&name, true).await.map_err(io_err("open", &name))?);
        if damaged {
            return write_whole(&file, &name, &[]).await;
        }
        let info = SealedInfo {
            next_offset: seg.next_offset,
            size: seg.size,
            max_timestamp: seg.index.max_timestamp(),
            max_append_ms: seg.max_append_ms,
        };
        write_whole(&file, &name, &seg.index.encode_sealed(info)).await
    }

    async fn create_active(
        storage: &S,
        config: &LogConfig,
        base: u64,
        now_ms: u64,
    ) -> Result<Active<S::File>> {
        let name = data_file_name(base);
        let file = Rc::new(storage.open(&name, true).await.map_err(io_err("create", &name))?);
        file.truncate(0).await.map_err(io_err("truncate", &name))?;
        let seg = Segment {
            base,
            next_offset: base,
            size: 0,
            index: SegmentIndex::new(config.index_interval_bytes),
            file,
            max_append_ms: 0,
        };
        Self::resume_active(storage, config, seg, now_ms, None).await
    }

    /// Makes `seg` the active segment: appends continue at its end, and its index file is
    /// rewritten from the in-memory index as hints. With `hints_before` (the position of
    /// quarantined damage in it) only the hints before it are written, and no later ones.
    async fn resume_active(
        storage: &S,
        config: &LogConfig,
        seg: Segment<S::File>,
        now_ms: u64,
        hints_before: Option<u64>,
    ) -> Result<Active<S::File>> {
        let name = data_file_name(seg.base);
        let data = Appender::open(seg.file.clone(), name, seg.size, config.data_appender()).await?;
        let index_name = index_file_name(seg.base);
        let index_file =
            Rc::new(storage.open(&index_name, true).await.map_err(io_err("create", &index_name))?);
        let entries = seg.index.entries();
        let kept =
            hints_before.map_or(entries.len(), |p| entries.partition_point(|e| u64::from(e.position) < p));
        let hints = encode_entries(&entries[..kept]);
        write_whole(&index_file, &index_name, &hints).await?;
        let index_out = Appender::open(index_file, index_name, hints.len() as u64, INDEX_APPENDER).await?;
        let persisted = seg.index.entries().len();
        Ok(Active {
            index_persisted: persisted,
            index_durable: persisted,
            seg,
            data,
            index_out,
            opened_ms: now_ms,
            token: Rc::new(()),
            hints_frozen: hints_before.is_some(),
            idle_check_ms: now_ms,
        })
    }

    pub(crate) fn storage(&self) -> &S {
        &self.storage
    }

    /// First offset in the log: its first segment's base, or past it where a DeleteRecords
    /// deleted the records below (see [`delete_records`](Self::delete_records)).
    pub fn log_start(&self) -> u64 {
        self.segments_start().max(self.start.start)
    }

    /// The partition's transactions: the open ones and the aborted ones remembered.
    pub fn transactions(&self) -> &crate::transactions::TxnTable {
        &self.txns
    }

    /// The base of the first segment, which may hold deleted records below the log start.
    pub fn segments_start(&self) -> u64 {
        self.sealed.front().map_or(self.active.seg.base, |s| s.base)
    }

    /// Offset the next appended record gets (the log end offset).
    pub fn next_offset(&self) -> u64 {
        self.active.seg.next_offset
    }

    /// Every offset below this is durable.
    pub fn durable_offset(&self) -> u64 {
        self.durable_offset
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Bytes of batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.size).sum::<u64>() + self.active.seg.size
    }

    /// The quarantined damage: byte ranges of segments whose batches fail their checks while
    /// intact batches follow them, ordered by offset. Reads of their offsets get
    /// [`LogError::Corrupt`]; reads after them work.
    pub fn damaged_ranges(&self) -> &[DamagedRange] {
        &self.damaged
    }

    /// Base offsets of all segments, oldest first; the last is the active one.
    pub fn segment_bases(&self) -> Vec<u64> {
        self.sealed.iter().map(|s| s.base).chain([self.active.seg.base]).collect()
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Refuses every later write, as a failed log does: for a log whose partition is being
    /// deleted, so nothing still holding it writes into a directory that may be reused.
    pub fn fence(&mut self) {
        self.failed = true;
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed { Err(LogError::Failed) } else { Ok(()) }
    }

    /// Starts an operation that changes the log across an `.await`. The log counts as failed
    /// until the operation says how it ended, so one whose future is dropped halfway (an
    /// interrupted append, sync, roll or truncation) leaves a log that refuses every later
    /// write until it is reopened and recovered from its files, instead of one whose memory
    /// disagrees with its files. Every operation ends by setting `failed` itself.
    fn begin_change(&mut self) -> Result<()> {
        self.check_usable()?;
        self.failed = true;
        Ok(())
    }

    /// Appends a validated batch, assigning it the next offsets and `leader_epoch` (patched in
    /// the write buffer, the caller's bytes are untouched). The batch is buffered: it is readable
    /// after [`write_out`](Self::write_out) and durable after [`flush`](Self::flush).
    pub async fn append(
        &mut self,
        batch: &BatchView<'_>,
        leader_epoch: u32,
        now_ms: u64,
    ) -> Result<Appended> {
        self.check_usable()?;
        // A compacted batch pins its base offset, which a leader would change: only replicas
        // of a compacted log take such batches, with the leader's offsets.
        let h = batch.header();
        if h.is_compacted() {
            let source = BatchError::BadHeader { field: "attributes", value: u64::from(h.attributes) };
            return Err(LogError::Batch { offset: self.next_offset(), source });
        }
        self.write_batch(batch, leader_epoch, self.next_offset(), now_ms).await
    }

    /// Appends a batch replicated from the leader, keeping the base offset and leader epoch the
    /// leader gave it, so the follower's log holds the leader's bytes. The batch must start at
    /// the log end and carry an epoch no older than the last one appended; otherwise it is
    /// refused with [`LogError::OffsetGap`], [`LogError::OffsetOverlap`] or
    /// [`LogError::StaleLeaderEpoch`] and the log is unchanged.
    ///
    /// The one exception is a compacted batch (see [`crate::compaction`]), which may start past
    /// the log end, and hold sparse offsets: a leader whose log was cleaned sends batches with
    /// gaps between them. That is safe because the gap is in the leader's log too: the leader
    /// had no records left at those offsets, so the follower misses none, and the batch's base
    /// offset is pinned under its CRC, so a damaged base offset does not pass for a gap. A plain
    /// batch past the log end still means missing batches and is refused.
    pub async fn append_replicated(&mut self, batch: &BatchView<'_>, now_ms: u64) -> Result<Appended> {
        self.check_usable()?;
        let h = batch.header();
        let expected = self.next_offset();
        if h.base_offset > expected && !h.may_start_at(expected) {
            return Err(LogError::OffsetGap { expected, actual: h.base_offset });
        }
        if h.base_offset < expected {
            return Err(LogError::OffsetOverlap { expected, actual: h.base_offset });
        }
        if let Some(latest) = self.epochs.cache.latest()
            && h.leader_epoch < latest.epoch
        {
            return Err(LogError::StaleLeaderEpoch { latest: latest.epoch, actual: h.leader_epoch });
        }
        self.write_batch(batch, h.leader_epoch, h.base_offset, now_ms).await
    }

    /// The write path of both appends: checks the batch, rolls if due, records a new epoch,
    /// then buffers the batch at `base` (the log end, or past it after a compaction gap) with
    /// `leader_epoch`.
    async fn write_batch(
        &mut self,
        batch: &BatchView<'_>,
        leader_epoch: u32,
        base: u64,
        now_ms: u64,
    ) -> Result<Appended> {
        let bytes = batch.bytes();
        let h = *batch.header();
        assert!(base >= self.next_offset(), "a batch is written at or past the log end");
        self.check_appendable(&h, bytes.len(), base)?;
        let a = &self.active;
        let rel_last = base - a.seg.base + u64::from(h.last_offset_delta);
        if self.roll_due(now_ms)
            || (a.seg.size > 0
                && (a.seg.size + bytes.len() as u64 > self.config.segment_bytes_max
                    || rel_last > u64::from(u32::MAX)))
        {
            self.roll(now_ms).await?;
        }
        // Past a compaction gap the batch may still lie beyond what a segment's relative
        // offsets reach: only when the leader's segments did not agree with the follower's.
        if base - self.active.seg.base + u64::from(h.last_offset_delta) > u64::from(u32::MAX) {
            let source = BatchError::BadHeader { field: "base_offset", value: base };
            return Err(LogError::Batch { offset: base, source });
        }
        self.note_epoch(leader_epoch, base).await?;
        let a = &mut self.active;
        let position = a.seg.size;
        let before = a.data.end();
        // Set before the append's I/O and cleared after it: see `begin_change`.
        self.failed = true;
        if let Err(e) = a.data.append(bytes, |head| patch_offsets(head, base, leader_epoch)).await {
            // Nothing was buffered (a full device at preallocation): the log is still whole.
            self.failed = a.data.end() != before;
            return Err(e);
        }
        self.failed = false;
        if a.seg.size == 0 {
            a.opened_ms = now_ms;
        }
        a.seg.size += bytes.len() as u64;
        a.seg.max_append_ms = a.seg.max_append_ms.max(now_ms);
        a.seg.next_offset = base
            .checked_add(u64::from(h.last_offset_delta) + 1)
            .expect("offsets fit u64: a dense batch adds at most 2^32 to a u64 below 2^63");
        a.seg.index.on_batch((base - a.seg.base) as u32, position as u32, h.batch_len, h.max_timestamp);
        self.producers.on_append(&h, base);
        self.txns.on_append(&h, base);
        if let Some(cache) = &self.cache {
            let stored_end = StoredAt { segment: a.seg.base, pos: a.seg.size };
            cache.insert(bytes, base, a.seg.next_offset, leader_epoch, stored_end);
        }
        Ok(Appended { base_offset: base, last_offset: base + u64::from(h.last_offset_delta) })
    }

    /// Refuses a batch the log does not take, whoever sent it.
    fn check_appendable(&self, h: &BatchHeader, len: usize, base: u64) -> Result<()> {
        if len > self.config.batch_bytes_max {
            let source = BatchError::TooLarge { len, limit: self.config.batch_bytes_max };
            return Err(LogError::Batch { offset: base, source });
        }
        // Appended batches have dense offsets (sparse ones only arise from compaction, which
        // rewrites segments, and are replicated as the leader's log holds them): otherwise one
        // batch could claim billions of offsets.
        if h.last_offset_delta != h.record_count - 1 && !h.is_compacted() {
            let source =
                BatchError::BadHeader { field: "last_offset_delta", value: u64::from(h.last_offset_delta) };
            return Err(LogError::Batch { offset: base, source });
        }
        Ok(())
    }

    /// Records that `epoch` starts at `offset` if it is newer than the latest, durably and
    /// before the batch is buffered: a crash may then leave an epoch without batches (recovery
    /// drops it), never batches of an epoch the cache does not know.
    async fn note_epoch(&mut self, epoch: u32, offset: u64) -> Result<()> {
        if !self.epochs.cache.assign(epoch, offset) {
            return Ok(());
        }
        // The cache in memory is ahead of its file until the write completes: see `begin_change`.
        self.begin_change()?;
        let r = self.epochs.persist().await;
        self.failed = r.is_err();
        r
    }

    /// Records, durably, that leader epoch `epoch` starts at the log end, before anything is
    /// appended in it: a leader does this at its election, so it answers a follower's question
    /// about the previous epoch's end with this offset even before it appended. An epoch no newer
    /// than the latest is left alone. Returns the log end. (A reopen drops an epoch that wrote
    /// nothing; its leader's election is over by then, and the next one records its own.)
    pub async fn begin_epoch(&mut self, epoch: u32) -> Result<u64> {
        self.check_usable()?;
        let end = self.next_offset();
        self.note_epoch(epoch, end).await?;
        Ok(end)
    }

    /// The leader epochs that wrote to this log and their start offsets, oldest first.
    pub fn leader_epochs(&self) -> &[EpochEntry] {
        self.epochs.cache.entries()
    }

    /// Where `epoch` ends in this log, as a leader answers a follower's OffsetsForLeaderEpoch:
    /// see [`EpochCache::end_offset_for`](crate::epoch_cache::EpochCache::end_offset_for).
    pub fn epoch_end_offset(&self, epoch: u32) -> Option<EpochEnd> {
        self.epochs.cache.end_offset_for(epoch, self.next_offset())
    }

    /// Hands buffered batches to the file so readers see them, without syncing.
    pub async fn write_out(&mut self) -> Result<()> {
        self.begin_change()?;
        let r = self.active.data.write_out().await;
        self.failed = r.is_err();
        r
    }

    /// Makes every appended batch durable; returns the new durable offset. The three steps of
    /// [`prepare_sync`](Self::prepare_sync) in one: a sync dropped while in flight changes nothing.
    pub async fn flush(&mut self) -> Result<u64> {
        let Some(sync) = self.prepare_sync().await? else { return Ok(self.durable_offset) };
        let result = sync.run().await;
        self.complete_sync(sync, result)
    }

    /// Prepares a sync of every batch appended so far, to run without the log borrowed (see
    /// [`crate::group_commit`] for the contract): writes out the buffered batches and the index
    /// hints that may go out, and returns what the sync covers. `None` if all is durable. Run it
    /// with [`PendingSync::run`], then record it with [`complete_sync`](Self::complete_sync).
    pub async fn prepare_sync(&mut self) -> Result<Option<PendingSync<S::File>>> {
        self.check_usable()?;
        if self.durable_offset == self.next_offset() && self.active.data.pending_bytes() == 0 {
            return Ok(None);
        }
        self.begin_change()?;
        let r = self.write_out_for_sync().await;
        self.failed = r.is_err();
        r?;
        let a = &self.active;
        Ok(Some(PendingSync {
            file: a.seg.file.clone(),
            name: a.data.name().to_owned(),
            offset: a.seg.next_offset,
            index_entries: a.seg.index.entries().len(),
            segment: a.token.clone(),
        }))
    }

    async fn write_out_for_sync(&mut self) -> Result<()> {
        let a = &mut self.active;
        // Index entries go out only once the batches they point at are durable, so recovery may
        // trust every batch before a hint it finds intact. They go out in whole blocks
        // (HINTS_PER_WRITE entries), alongside this sync's data: hints only shorten recovery's
        // scan, so they cost no I/O in sequence and at most one write per block of entries.
        // Both writes are made here, under the lock: only the fdatasync runs without it.
        let ready = if a.hints_frozen { 0 } else { a.index_durable - a.index_persisted };
        let count = ready - ready % HINTS_PER_WRITE;
        let hints = encode_entries(&a.seg.index.entries()[a.index_persisted..a.index_persisted + count]);
        let write_hints = async {
            if !hints.is_empty() {
                a.index_out.append(&hints, |_| {}).await?;
                a.index_out.write_out().await?;
            }
            Ok(())
        };
        futures::try_join!(a.data.write_out(), write_hints)?;
        a.index_persisted += count;
        Ok(())
    }

    /// Records the outcome of a sync from [`prepare_sync`](Self::prepare_sync); returns the
    /// durable offset. A failed sync fails the log. A successful one moves the durable offset to
    /// the end it covered, unless the log failed or its active segment was replaced (rolled or
    /// cut) since the sync was prepared: that operation set the durable offset itself.
    pub fn complete_sync(&mut self, sync: PendingSync<S::File>, result: Result<()>) -> Result<u64> {
        if let Err(e) = result {
            self.failed = true;
            return Err(e);
        }
        let a = &mut self.active;
        if !self.failed && Rc::ptr_eq(&a.token, &sync.segment) {
            assert!(sync.offset <= a.seg.next_offset, "an active segment only grows");
            self.durable_offset = self.durable_offset.max(sync.offset);
            a.index_durable = a.index_durable.max(sync.index_entries);
        }
        Ok(self.durable_offset)
    }

    /// The periodic chore of a partition, called by its shard on a timer: for
    /// [`FlushPolicy::Interval`], flushes when the interval has passed; under either policy,
    /// rolls a non-empty active segment that has reached `segment_ms` of age, so a partition that
    /// stopped receiving data still seals its last segment and retention can delete it.
    pub async fn tick(&mut self, now_ms: u64) -> Result<Tick> {
        let flushed = match self.interval_flush_due(now_ms) {
            Some(_) => {
                let before = self.durable_offset;
                self.flush().await? != before
            }
            None => false,
        };
        let rolled = self.roll_if_due(now_ms).await?;
        Ok(Tick { flushed, rolled })
    }

    /// For [`FlushPolicy::Interval`]: whether the interval has passed since the last interval
    /// flush, starting a new interval if so; `Some` of the log end to make durable. A caller
    /// that shares the log ([`crate::SharedLog::tick`]) syncs up to it without the log locked.
    pub fn interval_flush_due(&mut self, now_ms: u64) -> Option<u64> {
        let FlushPolicy::Interval { flush_interval_ms } = self.config.flush else { return None };
        if now_ms.saturating_sub(self.last_flush_ms) < flush_interval_ms {
            return None;
        }
        self.last_flush_ms = now_ms;
        Some(self.next_offset())
    }

    /// Rolls the active segment if it holds batches and has been active for `segment_ms`.
    /// Returns whether it rolled. Being the periodic chore's, it also gives back the write
    /// buffers of appenders that went idle ([`BUFFER_IDLE_CHECK_MS`]).
    pub async fn roll_if_due(&mut self, now_ms: u64) -> Result<bool> {
        self.release_idle_buffers(now_ms);
        let due = self.roll_due(now_ms);
        if due {
            self.roll(now_ms).await?;
        }
        Ok(due)
    }

    /// Gives back the write buffers of the active segment's appenders if nothing was appended
    /// to them for a check interval and all they hold is written. No I/O, so no change to undo.
    /// A failed log is left as it is: its reopen makes new appenders. Checks at most once every
    /// [`BUFFER_IDLE_CHECK_MS`]; called by `roll_if_due`, and by the node's upkeep.
    pub fn release_idle_buffers(&mut self, now_ms: u64) {
        let a = &mut self.active;
        // A wall clock stepped back starts the interval over rather than stopping releases.
        a.idle_check_ms = a.idle_check_ms.min(now_ms);
        if self.failed || now_ms - a.idle_check_ms < BUFFER_IDLE_CHECK_MS {
            return;
        }
        a.idle_check_ms = now_ms;
        a.data.release_if_idle();
        a.index_out.release_if_idle();
    }

    /// Bytes of write buffers the log holds: an idle log holds at most its partial tail blocks.
    pub fn buffered_bytes(&self) -> usize {
        self.active.data.buffered_bytes() + self.active.index_out.buffered_bytes()
    }

    /// Whether the active segment holds batches and has been active for `segment_ms`.
    fn roll_due(&self, now_ms: u64) -> bool {
        let a = &self.active;
        a.seg.size > 0 && now_ms.saturating_sub(a.opened_ms) >= self.config.segment_ms
    }

    /// Seals the active segment and starts a new one at the log end. An empty active segment
    /// stays as it is: a new one would have the same base offset, and so the same file.
    pub async fn roll(&mut self, now_ms: u64) -> Result<()> {
        self.check_usable()?;
        if self.active.seg.size == 0 {
            return Ok(());
        }
        self.begin_change()?;
        let r = self.roll_inner(now_ms).await;
        self.failed = r.is_err();
        if r.is_ok() {
            self.save_producers().await;
        }
        r
    }

    async fn roll_inner(&mut self, now_ms: u64) -> Result<()> {
        self.active.data.finish().await?;
        self.durable_offset = self.active.seg.next_offset;
        Self::seal_index(&self.storage, &self.active.seg, self.active.hints_frozen).await?;
        let next =
            Self::create_active(&self.storage, &self.config, self.active.seg.next_offset, now_ms).await?;
        self.storage.sync_dir().await.map_err(io_err("sync", "data dir"))?;
        let old = std::mem::replace(&mut self.active, next);
        self.sealed.push_back(old.seg);
        Ok(())
    }

    /// Plans a read of whole batches from the one holding `offset`, up to `max_bytes` (at least
    /// one batch), leaving out batches at or past `max_offset` (a high watermark, say). `None`
    /// when `offset` is the log end: nothing to read yet.
    pub fn plan_read(
        &self,
        offset: u64,
        max_bytes: usize,
        max_offset: u64,
    ) -> Result<Option<ReadPlan<S::File>>> {
        self.plan_read_from(self.log_start(), offset, max_bytes, max_offset)
    }

    /// [`plan_read`](Self::plan_read) of anything the segments hold from `start` on, deleted
    /// records below the log start included: for the log's own scans (the producers' state).
    fn plan_read_from(
        &self,
        start: u64,
        offset: u64,
        max_bytes: usize,
        max_offset: u64,
    ) -> Result<Option<ReadPlan<S::File>>> {
        let end = self.next_offset();
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        if offset == end {
            return Ok(None);
        }
        let active = std::iter::once((&self.active.seg, self.active.data.written()));
        let seg = self
            .sealed
            .iter()
            .map(|s| (s, s.size))
            .chain(active)
            .find(|(s, _)| offset < s.next_offset)
            .expect("an offset below the log end lies in a segment");
        let (seg, mut visible_end) = seg;
        let rel = offset.saturating_sub(seg.base).min(u64::from(u32::MAX)) as u32;
        let mut start_pos = seg.index.lookup_offset(rel).map_or(0, |e| u64::from(e.position));
        // Quarantined ranges are never walked through: the read starts after one that lies
        // before `offset` and stops at one after it.
        for d in self.damaged.iter().filter(|d| d.segment == seg.base) {
            if d.contains_offset(offset) {
                return Err(d.error());
            }
            if d.last_offset < offset {
                start_pos = start_pos.max(d.end_pos);
            } else {
                visible_end = visible_end.min(d.start_pos);
                break;
            }
        }
        Ok(Some(ReadPlan {
            file: seg.file.clone(),
            name: data_file_name(seg.base),
            segment_base: seg.base,
            start_pos,
            visible_end,
            offset,
            max_offset,
            max_bytes,
            batch_bytes_max: self.config.stored_batch_bytes_max(),
        }))
    }

    /// Plans a fetch: [`plan_read`](Self::plan_read), answered from the shard's batch cache when
    /// it holds the batch at `offset`. A failed log reads its files only: what it cached may be
    /// ahead of them.
    pub fn plan_fetch(
        &self,
        offset: u64,
        max_bytes: usize,
        max_offset: u64,
    ) -> Result<Option<FetchPlan<S::File>>> {
        let readable = offset >= self.log_start() && offset < self.next_offset() && !self.failed;
        if let Some(cache) = self.cache.as_ref().filter(|_| readable)
            && let Some(read) = cache.read(offset, max_bytes, max_offset, self.written_end())
        {
            return Ok(Some(FetchPlan::Cached(read)));
        }
        let generation = self.read_generation();
        let ahead = self.ahead.iter().filter(|a| readable && a.generation == generation);
        if let Some((bytes, next_offset)) =
            ahead.filter_map(|a| a.answer(offset, max_bytes, max_offset)).next()
        {
            return Ok(Some(FetchPlan::ReadAhead {
                bytes,
                next_offset,
                cache: self.config.batch_cache.clone(),
            }));
        }
        let plan = self.plan_read(offset, max_bytes, max_offset)?;
        Ok(plan.map(|plan| FetchPlan::File { plan, cache: self.config.batch_cache.clone() }))
    }

    /// The log's shape as reads see it (see [`ReadGeneration`]).
    pub fn read_generation(&self) -> ReadGeneration {
        ReadGeneration { log: self.instance, cuts: self.cuts, swaps: self.swaps }
    }

    /// Plans a read ahead of a consumer that reads on from `from`, of up to `bytes_max`, unless
    /// that much is read ahead already: from the end of what is, or from `from`. Returns the
    /// plan and the generation to hand back with its bytes to
    /// [`complete_read_ahead`](Self::complete_read_ahead), and where the read starts.
    pub fn plan_read_ahead(
        &self,
        from: u64,
        bytes_max: usize,
    ) -> Option<(ReadPlan<S::File>, ReadGeneration, u64)> {
        if self.failed || from < self.log_start() || bytes_max == 0 {
            return None;
        }
        let generation = self.read_generation();
        let (mut start, mut buffered) = (from, 0);
        for a in self.ahead.iter().filter(|a| a.generation == generation) {
            if a.holds(start) {
                buffered += a.bytes_from(start);
                start = a.next_offset;
            }
        }
        if buffered >= bytes_max || start >= self.next_offset() {
            return None;
        }
        let plan = self.plan_read(start, bytes_max, u64::MAX).ok()??;
        Some((plan, generation, start))
    }

    /// Keeps what a read ahead from `start` returned, if the log is still as it was when the
    /// read was planned (no cut, swap, quarantine of its offsets or start past them since), in
    /// place of the stretches it overlaps; past [`READ_AHEADS_MAX`], the stretch lowest in the
    /// log goes.
    pub fn complete_read_ahead(&mut self, bytes: Bytes, generation: ReadGeneration, start: u64) {
        if generation != self.read_generation() || self.failed {
            return;
        }
        let Some(read) = ReadAhead::new(bytes, generation, start) else { return };
        let quarantined = self
            .damaged
            .iter()
            .any(|d| d.first_offset < read.next_offset && d.last_offset >= read.first_offset);
        if quarantined || read.next_offset <= self.log_start() {
            return;
        }
        let overlaps = |a: &ReadAhead| a.first_offset < read.next_offset && read.first_offset < a.next_offset;
        self.ahead.retain(|a| a.generation == generation && !overlaps(a));
        self.ahead.push_back(read);
        self.ahead.make_contiguous().sort_by_key(|a| a.first_offset);
        while self.ahead.len() > READ_AHEADS_MAX {
            self.ahead.pop_front();
        }
    }

    /// The end of what the files hold, written if not yet durable: every sealed segment whole,
    /// and the active one up to what its appender handed to the file.
    fn written_end(&self) -> StoredAt {
        StoredAt { segment: self.active.seg.base, pos: self.active.data.written() }
    }

    /// Runs `f` on this log's part of the batch cache, if it has one.
    fn uncache(&self, f: impl FnOnce(&CachedLog)) {
        if let Some(cache) = &self.cache {
            f(cache);
        }
    }

    /// Reads whole stored batches; see [`plan_read`](Self::plan_read).
    pub async fn read(
        &self,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Fetched<<S::File as StorageFile>::ReadBuf>> {
        match self.plan_read(offset, max_bytes, u64::MAX)? {
            Some(plan) => plan.execute().await,
            None => Ok(Fetched::empty(offset)),
        }
    }

    /// [`read`](Self::read) of what the segments hold, deleted records below the log start
    /// included (see [`plan_read_from`](Self::plan_read_from)).
    pub(crate) async fn read_segments(
        &self,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Fetched<<S::File as StorageFile>::ReadBuf>> {
        match self.plan_read_from(self.segments_start(), offset, max_bytes, u64::MAX)? {
            Some(plan) => plan.execute().await,
            None => Ok(Fetched::empty(offset)),
        }
    }

    /// Plans a search for the first record whose timestamp is at least `ts`, without I/O: the
    /// caller runs [`TimestampLookup::execute`] after letting go of the log. It searches what
    /// was readable when planned.
    pub fn plan_timestamp_lookup(&self, ts: i64) -> TimestampLookup<S::File> {
        let active = std::iter::once((&self.active.seg, self.active.data.written()));
        let candidates =
            self.sealed
                .iter()
                .map(|s| (s, s.size))
                .chain(active)
                .filter(|(seg, _)| seg.index.max_timestamp() >= ts)
                .map(|(seg, visible_end)| {
                    let (start_pos, start_offset) = seg.index.lookup_time(ts).map_or((0, seg.base), |e| {
                        (u64::from(e.position), seg.base + u64::from(e.rel_offset))
                    });
                    Candidate {
                        file: seg.file.clone(),
                        base: seg.base,
                        next_offset: seg.next_offset,
                        start_pos,
                        start_offset,
                        visible_end,
                    }
                })
                .collect();
        let log_start = self.log_start();
        TimestampLookup { ts, candidates, batch_bytes_max: self.config.stored_batch_bytes_max(), log_start }
    }

    /// Removes every batch holding an offset at or after `offset`, so the log ends at or before
    /// it (at the start of the batch that holds `offset`), and every leader epoch that starts
    /// there or later. Makes the cut durable. For a follower whose log diverged from its
    /// leader's, and for a replica that stops leading: a cut at the log end drops the epoch it
    /// began without writing, so the next leader's older epoch is not refused as stale. Returns
    /// the new log end.
    pub async fn truncate_to(&mut self, offset: u64, now_ms: u64) -> Result<u64> {
        self.check_usable()?;
        if offset > self.next_offset() {
            return Ok(self.next_offset());
        }
        // Before the cut: a snapshot of producers past it would outlive its batches.
        self.drop_snapshot_past(offset).await?;
        if offset == self.next_offset() {
            if self.epochs.cache.truncate_from_end(offset) {
                self.begin_change()?;
                let r = self.epochs.persist().await;
                self.failed = r.is_err();
                r?;
            }
            return Ok(offset);
        }
        self.begin_change()?;
        self.cuts += 1;
        let r = match self.truncate_inner(offset, now_ms).await {
            // The cut lands at the start of the batch holding `offset`, which may lie below the
            // start: the log cannot start past its end. Moved down only once the cut is
            // durable (a crash before would serve deleted records again); a crash between the
            // two leaves a start past the end, which the next open brings back to it.
            Ok(end) if end < self.start.start => self.start.set(&self.storage, end).await.map(|()| end),
            r => r,
        };
        let r = match r {
            // Epochs that started at or after the new end wrote nothing that is left.
            Ok(end) if self.epochs.cache.truncate_from_end(end) => self.epochs.persist().await.map(|()| end),
            r => r,
        };
        self.failed = r.is_err();
        if let Ok(end) = r {
            self.producers.truncate_from(end);
            if self.txns.seen() {
                // A cut may take a marker and open its transaction again: the table is read
                // anew from the log (cuts are rare; most land at the log end, returned above).
                if let Err(e) = self.recover_producers().await {
                    self.failed = true;
                    return Err(e);
                }
            }
            // Reads ignore both while the cut runs (the log counts as failed, then its
            // generation has moved on), and a cut that fails leaves a failed log, which reads
            // its files: dropped once it is done. It may land below `offset`, at quarantined
            // damage before it.
            self.uncache(|c| c.remove_from(end));
            self.ahead.clear();
        }
        r
    }

    /// Empties the log and starts it again at `offset`, at or past its end: for a follower
    /// whose leader's log starts there (retention deleted what this log lacks, or what this log
    /// cannot show to agree with). Every batch and epoch goes, durably. Returns `offset`, the
    /// new log start and end.
    ///
    /// In steps that each leave a log recovery opens as it is. At the log end, the log never
    /// ends anywhere else (a replica in the ISR holds its high watermark through a crash): a roll,
    /// then the sealed segments removed oldest first, as retention does. Past it (a replica far
    /// behind): a cut at the log start (one empty segment stays), then a new empty segment at
    /// `offset`, then the old one removed. A crash between the last two leaves two empty
    /// segments, and recovery drops the first.
    pub async fn start_over_at(&mut self, offset: u64, now_ms: u64) -> Result<u64> {
        self.check_usable()?;
        assert!(offset >= self.next_offset(), "a log starts over at or past its end");
        self.uncache(CachedLog::clear);
        self.ahead.clear();
        // Whatever it knew of producers was of batches that go: the snapshot first, so that a
        // failure leaves the table with the log it describes.
        self.drop_snapshot().await?;
        self.producers.clear();
        self.txns = Default::default();
        self.cuts += 1;
        if offset == self.next_offset() {
            self.roll(now_ms).await?;
            self.begin_change()?;
            self.scrub = ScrubCursor::default();
            let r = self.drop_sealed().await;
            self.failed = r.is_err();
            return r.map(|()| offset);
        }
        let start = self.segments_start();
        if self.next_offset() > start {
            self.truncate_to(start, now_ms).await?;
        }
        self.begin_change()?;
        self.scrub = ScrubCursor::default();
        let r = self.move_empty_to(offset, now_ms).await;
        self.failed = r.is_err();
        r.map(|()| offset)
    }

    /// Removes every sealed segment, oldest first (a crash leaves a suffix of the log, which
    /// recovers as it is), and forgets every epoch: the active segment is empty.
    async fn drop_sealed(&mut self) -> Result<()> {
        assert_eq!(self.active.seg.size, 0, "only an empty active segment stays alone");
        while let Some(seg) = self.sealed.pop_front() {
            Self::remove_segment(&self.storage, seg.base).await?;
        }
        self.damaged.clear();
        self.storage.sync_dir().await.map_err(io_err("sync", "data dir"))?;
        if self.epochs.cache.truncate_from_end(0) {
            self.epochs.persist().await?;
        }
        Ok(())
    }

    /// Moves an empty log (one empty segment) to start at `offset`, and forgets every epoch.
    async fn move_empty_to(&mut self, offset: u64, now_ms: u64) -> Result<()> {
        assert!(self.sealed.is_empty() && self.active.seg.size == 0, "only an empty log moves");
        if self.active.seg.base != offset {
            let old = self.active.seg.base;
            self.active = Self::create_active(&self.storage, &self.config, offset, now_ms).await?;
            self.storage.sync_dir().await.map_err(io_err("sync", "data dir"))?;
            Self::remove_segment(&self.storage, old).await?;
            self.storage.sync_dir().await.map_err(io_err("sync", "data dir"))?;
            self.durable_offset = offset;
            self.damaged.clear();
        }
        if self.epochs.cache.truncate_from_end(0) {
            self.epochs.persist().await?;
        }
        Ok(())
    }

    /// Nothing stays: start over, empty, at `offset`, outside the segments' offsets. The new
    /// segment is created before the old ones go, newest first, so a crash before the directory
    /// sync leaves the old log or a prefix of it (recovery drops the empty segment after a gap,
    /// or before the old ones), never an empty directory, which recovery would restart at offset
    /// 0. A cut at the log start itself takes the other path: the first segment's file would be
    /// reused by name.
    async fn start_empty_at(&mut self, offset: u64, now_ms: u64) -> Result<u64> {
        let bases = self.segment_bases();
        self.active = Self::create_active(&self.storage, &self.config, offset, now_ms).await?;
        self.sealed.clear();
        self.damaged.clear();
        for base in bases.into_iter().rev() {
            Self::remove_segment(&self.storage, base).await?;
        }
        self.durable_offset = offset;
        self.storage.sync_dir().await.map_err(io_err("sync", "data dir"))?;
        Ok(offset)
    }

    async fn truncate_inner(&mut self, offset: u64, now_ms: u64) -> Result<u64> {
        // The scrubber starts over: positions it had reached may hold other batches after the
        // cut and new appends.
        self.scrub = ScrubCursor::default();
        self.active.data.sync().await?;
        self.durable_offset = self.next_offset();
        if offset < self.segments_start() {
            return self.start_empty_at(offset, now_ms).await;
        }
        // Find the segment holding `offset` and the position of the batch that holds it: the
        // start of the damage if `offset` is quarantined.
        let (cut_pos, new_end) = match self.damaged.iter().find(|d| d.contains_offset(offset)) {
            Some(d) => (d.start_pos, d.first_offset),
            None => {
                // Below the log start too, where the start lies past the cut.
                let fetched = self.read_segments(offset, 1).await?;
                // In a gap left by compaction the read finds the batch after it: the log then
                // ends where the batch before the gap ends.
                let end = match fetched.first_offset > offset {
                    true => self.end_before(fetched.first_offset, fetched.position).await?,
                    false => fetched.first_offset,
                };
                (fetched.position, end)
            }
        };
        self.damaged.retain(|d| d.first_offset < new_end);
        let seg_base =
            self.segment_bases().into_iter().rev().find(|&b| b <= new_end).expect("offset lies in a segment");
        // Segments after the one cut go away entirely; the cut one becomes the active segment.
        if self.active.seg.base != seg_base {
            let mut doomed = vec![self.active.seg.base];
            while self.sealed.back().is_some_and(|s| s.base != seg_base) {
                doomed.extend(self.sealed.pop_back().map(|s| s.base));
            }
            let target = self.sealed.pop_back().expect("the cut segment precedes the active one");
            self.active = Self::resume_active(&self.storage, &self.config, target, now_ms, None).await?;
            for base in doomed {
                Self::remove_segment(&self.storage, base).await?;
            }
        }
        // The removals must be durable before the cut: were the cut durable and a removal not,
        // recovery would find the removed segments again after the cut one.
        self.storage.sync_dir().await.map_err(io_err("sync", "data dir"))?;
        let a = &mut self.active;
        let name = data_file_name(a.seg.base);
        a.seg.file.truncate(cut_pos).await.map_err(io_err("truncate", &name))?;
        a.seg.file.sync().await.map_err(io_err("sync", &name))?;
        // Rebuild the index tail from the last entry before the cut, as recovery would.
        let kept: Vec<IndexEntry> =
            a.seg.index.entries().iter().copied().filter(|e| u64::from(e.position) < cut_pos).collect();
        let mut index = SegmentIndex::resume(self.config.index_interval_bytes, &kept);
        let (from_pos, from_offset) = kept
            .last()
            .map_or((0, a.seg.base), |e| (u64::from(e.position), a.seg.base + u64::from(e.rel_offset)));
        // The kept prefix was synced: scan it as a sealed segment, so quarantined damage in it
        // is found again and kept, not taken for a torn tail.
        let found = scan(
            &*a.seg.file,
            &name,
            &mut index,
            a.seg.base,
            (from_pos, from_offset),
            cut_pos,
            self.config.stored_batch_bytes_max(),
            ScanKind::Sealed { end_offset: new_end },
        )
        .await?;
        // The kept prefix was validated when written; if it no longer scans clean, the disk
        // changed it (bit rot). Say so rather than serve or keep a damaged log.
        if (found.end_pos, found.next_offset) != (cut_pos, new_end) {
            let source = BatchError::Inconsistent { reason: "segment ends elsewhere than its index says" };
            let (first_offset, last_offset) = (found.next_offset, new_end.max(found.next_offset));
            return Err(LogError::Corrupt {
                segment: a.seg.base,
                pos: found.end_pos,
                first_offset,
                last_offset,
                source,
            });
        }
        for d in found.damaged {
            if !self.damaged.contains(&d) {
                // Cached before the disk damaged them: reads must fail as the file's do.
                if let Some(c) = &self.cache {
                    c.remove_range(d.first_offset, d.last_offset.saturating_add(1));
                }
                self.damaged.push(d);
            }
        }
        self.damaged.sort_by_key(|d| d.first_offset);
        let hints_before = self.damaged.iter().find(|d| d.segment == a.seg.base).map(|d| d.start_pos);
        let seg = Segment {
            base: a.seg.base,
            next_offset: new_end,
            size: cut_pos,
            index,
            file: a.seg.file.clone(),
            max_append_ms: a.seg.max_append_ms,
        };
        self.active = Self::resume_active(&self.storage, &self.config, seg, now_ms, hints_before).await?;
        self.durable_offset = self.durable_offset.min(new_end);
        self.storage.sync_dir().await.map_err(io_err("sync", "data dir"))?;
        Ok(new_end)
    }

    /// The offset after the batch that ends at `pos` in the segment holding `offset` (the
    /// segment's base if `pos` is its start), found by walking the batch headers from the
    /// nearest index entry.
    async fn end_before(&self, offset: u64, pos: u64) -> Result<u64> {
        let seg = self
            .sealed
            .iter()
            .chain([&self.active.seg])
            .find(|s| offset < s.next_offset)
            .expect("an offset below the log end lies in a segment");
        let entries = seg.index.entries();
        let from = entries.partition_point(|e| u64::from(e.position) < pos);
        let (mut at, mut end) =
            from.checked_sub(1).map_or((0, seg.base), |i| (u64::from(entries[i].position), seg.base));
        let name = data_file_name(seg.base);
        while at < pos {
            let start = crate::storage::align_down(at, seg.file.alignment());
            let head = crate::segment::read(&*seg.file, &name, start, (at - start) as usize + 80).await?;
            let h =
                BatchHeader::decode(&head[(at - start) as usize..]).map_err(|source| LogError::Corrupt {
                    segment: seg.base,
                    pos: at,
                    first_offset: end,
                    last_offset: offset,
                    source,
                })?;
            (at, end) = (at + u64::from(h.batch_len), h.next_offset());
        }
        assert_eq!(at, pos, "batch headers lead to the batch after the gap");
        Ok(end)
    }

    /// Deletes whole sealed segments from the old end while retention says so; never the active
    /// one. Returns the base offsets of the segments deleted.
    pub async fn enforce_retention(&mut self, now_ms: u64) -> Result<Vec<u64>> {
        self.enforce_retention_below(now_ms, u64::MAX).await
    }

    /// [`enforce_retention`](Self::enforce_retention), deleting only segments that end at or
    /// below `committed_end` (a high watermark): records not yet committed are never deleted,
    /// so the log start never passes the high watermark.
    pub async fn enforce_retention_below(&mut self, now_ms: u64, committed_end: u64) -> Result<Vec<u64>> {
        self.begin_change()?;
        let r = self.retention_inner(now_ms, committed_end).await;
        self.failed = r.is_err();
        r
    }

    /// Deletes the records below `offset`, at most the log end, as Kafka's DeleteRecords: the
    /// log starts there from now on, durably, and the sealed segments wholly below it go (the
    /// first one left may still hold deleted records, never served). The caller keeps `offset`
    /// at or below the high watermark, as retention does. Returns the log start, which a lower
    /// `offset` does not move.
    pub async fn delete_records(&mut self, offset: u64) -> Result<u64> {
        self.check_usable()?;
        assert!(offset <= self.next_offset(), "records are deleted below the log end");
        if offset <= self.log_start() {
            return Ok(self.log_start());
        }
        self.begin_change()?;
        let r = self.delete_records_inner(offset).await;
        self.failed = r.is_err();
        r
    }

    async fn delete_records_inner(&mut self, offset: u64) -> Result<u64> {
        // The start first: a crash after it leaves segments that a later open reads from it.
        self.start.set(&self.storage, offset).await?;
        let mut deleted = false;
        while let Some(base) = self.sealed.front().filter(|s| s.next_offset <= offset).map(|s| s.base) {
            Self::remove_segment(&self.storage, base).await?;
            self.sealed.pop_front();
            deleted = true;
        }
        self.settle_start(deleted).await?;
        Ok(self.log_start())
    }

    /// After the log start moved (`removed`: by segments taken off the front): the removed
    /// segments' damage is forgotten and their removal made durable, and the epochs below the
    /// start are dropped. A log whose start is its end keeps its last epoch as it was: moved to
    /// the end, the next open would drop it as past the end.
    async fn settle_start(&mut self, removed: bool) -> Result<()> {
        if removed {
            let first = self.segments_start();
            self.damaged.retain(|d| d.segment >= first);
            self.storage.sync_dir().await.map_err(io_err("sync", "data dir"))?;
        }
        let start = self.log_start();
        self.txns.remove_below(start);
        self.uncache(|c| c.remove_below(start));
        self.ahead.retain(|a| a.next_offset > start);
        if start < self.next_offset() && self.epochs.cache.truncate_from_start(start) {
            self.epochs.persist().await?;
        }
        Ok(())
    }

    async fn retention_inner(&mut self, now_ms: u64, committed_end: u64) -> Result<Vec<u64>> {
        let mut deleted = Vec::new();
        let mut total = self.size_bytes();
        while let Some(front) = self.sealed.front().filter(|s| s.next_offset <= committed_end) {
            // By the broker's append time, not producer timestamps: a producer's clock must not
            // keep data forever or delete it at once.
            let by_time =
                self.config.retention_ms.is_some_and(|r| front.max_append_ms < now_ms.saturating_sub(r));
            let by_size = self.config.retention_bytes.is_some_and(|r| total - front.size >= r);
            if !(by_time || by_size) {
                break;
            }
            let (base, size) = (front.base, front.size);
            Self::remove_segment(&self.storage, base).await?;
            self.sealed.pop_front();
            total -= size;
            deleted.push(base);
        }
        if !deleted.is_empty() {
            self.settle_start(true).await?;
        }
        Ok(deleted)
    }

    /// Plans one scrubbing step of at most `budget_bytes` (see [`crate::scrub`]): the sealed
    /// segment at the cursor, from where the last step stopped. `None` without sealed segments.
    pub fn plan_scrub(&self, budget_bytes: u64) -> Option<ScrubPlan<S::File>> {
        let c = self.scrub;
        let seg = self.sealed.iter().find(|s| s.base >= c.segment).or(self.sealed.front())?;
        let from = if seg.base == c.segment {
            c
        } else {
            ScrubCursor { segment: seg.base, pos: 0, offset: seg.base }
        };
        Some(ScrubPlan {
            file: seg.file.clone(),
            name: data_file_name(seg.base),
            segment: seg.base,
            end_offset: seg.next_offset,
            size: seg.size,
            from,
            budget_bytes,
            known: self.damaged.iter().filter(|d| d.segment == seg.base).cloned().collect(),
            batch_bytes_max: self.config.stored_batch_bytes_max(),
            swaps: self.swaps,
        })
    }

    /// Records a scrubbing step: moves the cursor on and quarantines new damage, which is
    /// returned. The quarantine is made to last by emptying the segment's sealed index, so
    /// every later open scans the segment and finds the damage again. A step on a segment that
    /// is no longer sealed (deleted or cut meanwhile) is dropped, and so is a step planned before
    /// a cleaned segment was swapped in: it may have read the old file, and the cursor stays
    /// where it was, so the next step reads the new one.
    pub async fn complete_scrub(&mut self, outcome: ScrubOutcome) -> Result<Option<DamagedRange>> {
        if outcome.swaps != self.swaps {
            return Ok(None);
        }
        let Some(at) = self.sealed.iter().position(|s| s.base == outcome.segment) else {
            self.scrub = ScrubCursor { segment: outcome.segment + 1, pos: 0, offset: 0 };
            return Ok(None);
        };
        self.scrub = match outcome.segment_done {
            true => ScrubCursor { segment: outcome.segment + 1, pos: 0, offset: 0 },
            false => outcome.next,
        };
        let Some(d) = outcome.damage else { return Ok(None) };
        // A failed or fenced log writes nothing (a fenced one's directory may be reused).
        if self.failed || self.damaged.iter().any(|k| k.segment == d.segment && k.start_pos == d.start_pos) {
            return Ok(None);
        }
        self.uncache(|c| c.remove_range(d.first_offset, d.last_offset.saturating_add(1)));
        self.ahead.clear();
        self.damaged.push(d.clone());
        self.damaged.sort_by_key(|d| d.first_offset);
        // Emptying the index makes every open scan the segment and find the damage again; a
        // write dropped halfway counts the log failed, as any change does.
        self.begin_change()?;
        let r = Self::seal_index(&self.storage, &self.sealed[at], true).await;
        self.failed = r.is_err();
        r.map(|()| Some(d))
    }

    /// Plans a cleaning pass (see [`crate::compaction`]) over the sealed segments that lie
    /// entirely below `clean_below` (the high watermark: nothing uncommitted is cleaned), from
    /// the oldest, leaving out segments with quarantined damage. Keys are mapped from the
    /// segment holding `map_from` (the caller's checkpoint, see [`CleanPlan::mapped_to`]). The active segment is never
    /// cleaned. `now_ms` is the broker's clock, for tombstones. `None` when nothing is
    /// cleanable or the log has failed. Run the plan with [`CleanPlan::step`] and hand each
    /// segment it returns to [`complete_clean`](Self::complete_clean).
    pub fn plan_clean(
        &self,
        map_from: u64,
        clean_below: u64,
        config: CleanConfig,
        now_ms: u64,
    ) -> Option<CleanPlan<S>>
    where
        S: Clone,
    {
        if self.failed {
            return None;
        }
        let segments: Vec<CleanSegment<S::File>> = self
            .sealed
            .iter()
            .take_while(|s| s.next_offset <= clean_below)
            // A pass stops before the first damaged segment: records past it must not make
            // older ones in it go, nor their tombstones expire while it still holds them.
            .take_while(|s| !self.damaged.iter().any(|d| d.segment == s.base))
            .filter(|s| s.size > 0)
            .map(|s| CleanSegment {
                base: s.base,
                next_offset: s.next_offset,
                size: s.size,
                max_append_ms: s.max_append_ms,
                file: s.file.clone(),
            })
            .collect();
        let interval = self.config.index_interval_bytes;
        (!segments.is_empty()).then(|| {
            let kept = self.producers.latest_batch_bases();
            let mut plan =
                CleanPlan::new(self.storage.clone(), segments, map_from, config, now_ms, interval, kept);
            plan.cuts = self.cuts;
            plan
        })
    }

    /// How many times batches were cut off the log since it was opened (see
    /// [`crate::compaction::CleanSchedule::observe_cuts`]).
    pub fn cuts(&self) -> u64 {
        self.cuts
    }

    /// The sealed bytes below `clean_below` a cleaning pass could read, split at the checkpoint
    /// `map_from` (see [`crate::compaction::schedule`]). No I/O.
    pub fn cleanable(&self, map_from: u64, clean_below: u64) -> Cleanable {
        let mut c = Cleanable::default();
        let undamaged = |s: &&Segment<S::File>| !self.damaged.iter().any(|d| d.segment == s.base);
        for s in self.sealed.iter().take_while(|s| s.next_offset <= clean_below).take_while(undamaged) {
            match s.next_offset <= map_from {
                true => c.clean_bytes += s.size,
                false => c.dirty_bytes += s.size,
            }
        }
        c
    }

    /// Swaps a cleaned segment in (see [`crate::compaction::swap`]), holding the log only for
    /// the renames. Returns whether it was swapped in: a segment that is no longer exactly the
    /// one cleaned (deleted by retention, cut or replaced by a truncation, quarantined, or
    /// already swapped by another pass), or that belongs to a log cut anywhere since the pass
    /// was planned (the records whose keys made older ones go may be gone), is left as it is and
    /// the cleaned files are removed.
    /// Reads planned before the swap keep reading the old file through their handles.
    pub async fn complete_clean(&mut self, cleaned: CleanedSegment<S::File>) -> Result<bool> {
        self.check_usable()?;
        let base = cleaned.base;
        let unchanged = |s: &Segment<S::File>| {
            s.base == base
                && Rc::ptr_eq(&s.file, &cleaned.old_file)
                && s.size == cleaned.old_size
                && s.next_offset == cleaned.next_offset
                && cleaned.cuts == self.cuts
        };
        let at = self.sealed.iter().position(unchanged);
        let Some(at) = at.filter(|_| !self.damaged.iter().any(|d| d.segment == base)) else {
            swap::discard(&self.storage, base).await?;
            return Ok(false);
        };
        self.begin_change()?;
        let r = self.swap_in(at, cleaned).await;
        self.failed = r.is_err();
        r.map(|()| true)
    }

    async fn swap_in(&mut self, at: usize, cleaned: CleanedSegment<S::File>) -> Result<()> {
        let base = cleaned.base;
        // The cleaned segment's batches differ from the old ones: reads go to the new file.
        self.uncache(|c| c.remove_range(base, cleaned.next_offset));
        self.ahead.clear();
        swap::swap(&self.storage, base).await?;
        let name = data_file_name(base);
        let file = Rc::new(self.storage.open(&name, false).await.map_err(io_err("open", &name))?);
        let seg = &mut self.sealed[at];
        assert_eq!(seg.next_offset, cleaned.next_offset, "cleaning keeps a segment's offsets");
        seg.file = file;
        seg.size = cleaned.size;
        seg.index = cleaned.index;
        seg.max_append_ms = cleaned.max_append_ms;
        self.swaps += 1;
        // Positions the scrubber reached in the old file mean nothing in the new one.
        if self.scrub.segment == base {
            self.scrub = ScrubCursor { segment: base, pos: 0, offset: base };
        }
        Ok(())
    }

    /// Flushes and trims the active segment's preallocated space. The log is not usable after.
    pub async fn close(mut self) -> Result<()> {
        self.flush().await?;
        let a = &mut self.active;
        let hints =
            if a.hints_frozen { &[][..] } else { &a.seg.index.entries()[a.index_persisted..a.index_durable] };
        a.index_out.append(&encode_entries(hints), |_| {}).await?;
        a.index_out.finish().await?;
        a.data.finish().await
    }
}

//! A simulated node's partition log on its in-memory disk, and the operations a replica asks
//! of it. Every operation runs to completion before the next (the replica's contract), and the
//! store keeps a model of the log's batches, checked against the log's own reads at every open.

use super::model::{BatchMeta, LogModel};
use super::msg::{Payload, batch_views, payload};
use futures::executor::block_on;
use std::collections::BTreeMap;
use weir_log::batch::BatchView;
use weir_log::storage::mem::MemStorage;
use weir_log::{BatchCache, FlushPolicy, LogConfig, LogError, PartitionLog};
use weir_replication::{AppendedRange, LogEvent, LogFailure, LogOp, Recovered};

/// Most bytes a fetch answer carries.
pub const FETCH_BYTES_MAX: usize = 64 << 10;

/// How a run deletes old data: not at all, by size, or by age (with segments rolled by age, so
/// an idle log's last segment is sealed and goes too, and a log can end up empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    None,
    Bytes(u64),
    Time { retention_ms: u64, segment_ms: u64 },
}

/// Small segments and buffers, so runs roll segments and crashes land around rolls too.
pub fn sim_log_config(retention: Retention) -> LogConfig {
    let (retention_bytes, retention_ms, segment_ms) = match retention {
        Retention::None => (None, None, u64::MAX / 4),
        Retention::Bytes(b) => (Some(b), None, u64::MAX / 4),
        Retention::Time { retention_ms, segment_ms } => (None, Some(retention_ms), segment_ms),
    };
    LogConfig {
        segment_bytes_max: 64 << 10,
        segment_ms,
        index_interval_bytes: 4096,
        batch_bytes_max: 16 << 10,
        write_buffer_bytes: 16 << 10,
        write_behind_buffers_max: 2,
        // Small, so a segment allocates as it grows, and a full disk refuses appends.
        preallocate_bytes: 8 << 10,
        flush: FlushPolicy::Sync,
        retention_ms,
        retention_bytes,
        // Small, so that fetches at the tail hit it and older ones miss; a log opened after a
        // crash starts with an empty one, as a restarted node does.
        batch_cache: Some(BatchCache::new(SIM_BATCH_CACHE_BYTES)),
    }
}

/// Bytes of batches a simulated node's cache holds: a few of the largest batches.
const SIM_BATCH_CACHE_BYTES: usize = 64 << 10;

/// One node's log, the batches its replica's pending operations will append, and the model.
#[derive(Debug)]
pub struct Store {
    log: PartitionLog<MemStorage>,
    /// Batches of fetch answers the replica kept, by request id.
    pub fetched: BTreeMap<u64, Payload>,
    /// Batches of produce requests the replica took, by produce id.
    pub produced: BTreeMap<u64, Payload>,
    pub model: LogModel,
    /// What changed in the model since the checkers last looked.
    pub changes: Vec<ModelChange>,
}

/// A change to a log, for the checkers.
#[derive(Debug, Clone)]
pub enum ModelChange {
    Appended(BatchMeta),
    /// The batches a truncation removed.
    Truncated(Vec<BatchMeta>),
}

fn failure(log: &PartitionLog<MemStorage>, _e: LogError) -> LogFailure {
    LogFailure { reason: "the log failed", log_failed: log.is_failed() }
}

impl Store {
    /// Opens (recovers) the log and reads it whole into the model.
    pub fn open(storage: MemStorage, config: LogConfig, now_ms: u64) -> Result<(Self, Recovered), LogError> {
        let (log, report) = block_on(PartitionLog::open(storage, config, now_ms))?;
        // Slots are written in turn, so a crash tears at most the newest copy; both are unreadable
        // only when the very first write tore, before any batch could follow it.
        let empty = log.next_offset() == log.log_start();
        assert!(!report.epoch_cache_lost || empty, "both epoch-cache copies lost under batches");
        let model = LogModel::from_batches(log.log_start(), &read_all(&log)?);
        let recovered = Recovered {
            log_start: log.log_start(),
            log_end: log.next_offset(),
            epochs: log.leader_epochs().to_vec(),
        };
        assert_eq!(model.end(), log.next_offset(), "the model ends where the log does");
        let store =
            Self { log, fetched: BTreeMap::new(), produced: BTreeMap::new(), model, changes: Vec::new() };
        Ok((store, recovered))
    }

    pub fn log(&self) -> &PartitionLog<MemStorage> {
        &self.log
    }

    /// Performs one log operation; returns its completion and the batches it appended.
    pub fn perform(&mut self, op: LogOp, now_ms: u64) -> LogEvent {
        match op {
            LogOp::BeginEpoch { epoch } => {
                let result = block_on(self.log.begin_epoch(epoch)).map_err(|e| failure(&self.log, e));
                LogEvent::EpochBegun { result }
            }
            LogOp::AppendProduce { produce, leader_epoch } => {
                let bytes = self.produced.remove(&produce).expect("a produce taken keeps its bytes");
                let views = batch_views(&bytes).expect("validated at arrival");
                let [view] = views.as_slice() else { panic!("a produce holds one batch") };
                let result = self.append(view, Some(leader_epoch), now_ms);
                LogEvent::ProduceAppended { produce, result }
            }
            LogOp::AppendFetched { request_id } => {
                let bytes = self.fetched.remove(&request_id).expect("an answer kept keeps its bytes");
                let (appended, failure) = self.append_all(&bytes, now_ms);
                LogEvent::FetchedAppended { request_id, appended, failure }
            }
            LogOp::Flush => {
                let result = block_on(self.log.flush()).map_err(|e| failure(&self.log, e));
                LogEvent::Flushed { result }
            }
            LogOp::StartOver { offset } => {
                let result =
                    block_on(self.log.start_over_at(offset, now_ms)).map_err(|e| failure(&self.log, e));
                // Every batch dropped lies below the leader's log start, which is at or below the
                // retention floor (checked every step): deleted there by retention, or never
                // committed, so not a truncation the checkers look at.
                if let Ok(start) = result {
                    assert!(self.model.end() <= start, "a log starts over at or past its end");
                    self.model = LogModel::from_batches(start, &[]);
                }
                LogEvent::StartedOver { result }
            }
            LogOp::Truncate { offset } => {
                let result =
                    block_on(self.log.truncate_to(offset, now_ms)).map_err(|e| failure(&self.log, e));
                if let Ok(end) = result {
                    let removed: Vec<BatchMeta> = self.model.range(end, u64::MAX).copied().collect();
                    self.model.truncate(end);
                    self.changes.push(ModelChange::Truncated(removed));
                }
                LogEvent::Truncated { result }
            }
        }
    }

    /// Appends one batch, as leader (`epoch` given: the log assigns offsets) or as follower (the
    /// batch keeps the leader's), and makes it readable.
    fn append(
        &mut self,
        view: &BatchView<'_>,
        epoch: Option<u32>,
        now_ms: u64,
    ) -> Result<AppendedRange, LogFailure> {
        let appended = match epoch {
            Some(e) => block_on(self.log.append(view, e, now_ms)),
            None => block_on(self.log.append_replicated(view, now_ms)),
        };
        let a = appended.map_err(|e| failure(&self.log, e))?;
        block_on(self.log.write_out()).map_err(|e| failure(&self.log, e))?;
        let epoch = epoch.unwrap_or(view.header().leader_epoch);
        let range = AppendedRange { base: a.base_offset, end: a.last_offset + 1, epoch };
        let meta = BatchMeta { base: range.base, end: range.end, epoch, crc: view.header().crc };
        self.model.push(meta);
        self.changes.push(ModelChange::Appended(meta));
        Ok(range)
    }

    fn append_all(&mut self, bytes: &[u8], now_ms: u64) -> (Vec<AppendedRange>, Option<LogFailure>) {
        let mut appended = Vec::new();
        for view in batch_views(bytes).expect("validated at arrival") {
            match self.append(&view, None, now_ms) {
                Ok(r) => appended.push(r),
                Err(f) => return (appended, Some(f)),
            }
        }
        (appended, None)
    }

    /// The periodic chore: rolls a segment that reached `segment_ms`, then deletes sealed
    /// segments below `high_watermark` that retention says go; returns the new log start if it
    /// moved.
    pub fn upkeep(&mut self, now_ms: u64, high_watermark: u64) -> Result<Option<u64>, LogError> {
        block_on(self.log.roll_if_due(now_ms))?;
        if block_on(self.log.enforce_retention_below(now_ms, high_watermark))?.is_empty() {
            return Ok(None);
        }
        self.model.advance_start(self.log.log_start());
        Ok(Some(self.log.log_start()))
    }

    /// Whole batches from `offset` (at most [`FETCH_BYTES_MAX`] bytes, at least one batch), and
    /// below `max_offset`.
    pub fn read(&self, offset: u64, max_offset: u64) -> Result<Payload, LogError> {
        let Some(plan) = self.log.plan_fetch(offset, FETCH_BYTES_MAX, max_offset)? else {
            return Ok(payload(&[]));
        };
        Ok(payload(&block_on(plan.execute())?.bytes))
    }
}

/// Every batch of the log, validated, as stored.
fn read_all(log: &PartitionLog<MemStorage>) -> Result<Vec<BatchMeta>, LogError> {
    let mut out = Vec::new();
    let mut offset = log.log_start();
    while offset < log.next_offset() {
        let fetched = block_on(log.read(offset, 1 << 20))?;
        out.extend(metas(fetched.bytes()));
        offset = fetched.next_offset;
    }
    Ok(out)
}

/// The batches of `bytes`, each validated (CRC included).
pub fn metas(bytes: &[u8]) -> Vec<BatchMeta> {
    let views = batch_views(bytes).expect("stored and sent batches are valid");
    views
        .iter()
        .map(|v| {
            let h = v.header();
            let end = h.base_offset + u64::from(h.last_offset_delta) + 1;
            BatchMeta { base: h.base_offset, end, epoch: h.leader_epoch, crc: h.crc }
        })
        .collect()
}

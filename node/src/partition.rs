//! A partition replica served by its owning shard: its log, its replica state (log start, high
//! watermark, log end, leader epoch), and the fetches waiting for it to grow.
//!
//! Owned by one shard; shared by that shard's tasks through `Rc`. Generic over the log's
//! [`Storage`], so the same code runs on direct I/O in a node and in memory in tests.
//!
//! A log that fails (an I/O error, an interrupted change) refuses writes until it is recovered
//! from its files. The shard's maintenance calls [`Partition::reopen_if_failed`], which recovers
//! it in place, with attempts spaced by a growing delay (a minute at most) that never stop.

use crate::replica_driver::{ReplicaSetup, Replicated};
use crate::service::types::{Bounds, PartitionStatus};
use futures::channel::oneshot;
use futures::future::{LocalBoxFuture, Shared};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use weir_log::compaction::CleanSchedule;
use weir_log::damage::DamagedRange;
use weir_log::scrub::ScrubPause;
use weir_log::storage::Storage;
use weir_log::{LogConfig, PartitionLog, SharedLog};
use weir_net::{DamagedRangeInfo, PartitionHealth, PartitionState};
use weir_replication::ReplicaState;

/// Fetches waiting for data on one partition at most; more are answered at once, empty.
pub const WAITERS_MAX: usize = 4096;
/// Delay before the first retry of a failed log (or a partition that would not open); each
/// later one waits twice as long, up to `REOPEN_DELAY_MS_MAX`, and retries never stop: the cause
/// (a full disk, a file an operator moved away) may go at any time. Retries are due at once when
/// free space comes back ([`Backoff::retry_now`]).
pub const REOPEN_DELAY_MS: u64 = 1000;
pub const REOPEN_DELAY_MS_MAX: u64 = 60_000;

/// How long to wait after the `attempts`-th failed attempt (1 for the first) before the next.
pub fn reopen_delay_ms(attempts: u32) -> u64 {
    (REOPEN_DELAY_MS << attempts.saturating_sub(1).min(16)).min(REOPEN_DELAY_MS_MAX)
}

/// A read ahead of a consumer, which any number of fetches may wait for.
#[derive(Clone)]
pub struct ReadingAhead(pub Shared<LocalBoxFuture<'static, ()>>);

impl std::fmt::Debug for ReadingAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadingAhead")
    }
}

#[derive(Debug)]
pub struct Partition<S: Storage + Clone> {
    pub log: SharedLog<S>,
    /// Where the log lives, kept to reopen it.
    storage: S,
    config: LogConfig,
    /// Offsets below the high watermark are visible to consumers: durable ones with
    /// fsync-before-ack, written ones otherwise.
    state: Cell<ReplicaState>,
    /// The highest high watermark ever shown to consumers. What they are shown never goes
    /// below it: a renewed replica (after a reopen) or one that just became leader may start
    /// lower, and a consumer at an offset it was given must be answered empty, not told its
    /// offset is out of range.
    shown_high_watermark: Cell<u64>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    /// `topic/partition`, for the node's log.
    pub name: String,
    reopen: Cell<Backoff>,
    /// Why the last attempt at reopening the failed log failed, until one succeeds.
    reopen_error: RefCell<Option<String>>,
    /// Produces between their append and their answer. A failed log is reopened only when
    /// there are none: a produce waiting on the old log's sync must not be answered from the new
    /// log, where its offsets may hold other records.
    producing: Rc<Cell<usize>>,
    /// Set once the partition is deleted: its log is fenced and never reopened.
    closed: Cell<bool>,
    /// Rests the partition's scrubbing after a step failed to read.
    pub scrub_pause: Cell<ScrubPause>,
    /// When the cleaner next compacts the partition, if its topic is compacted, and from where
    /// it maps keys (`crate::cleaner`). A reopened log starts it over.
    pub clean: Cell<CleanSchedule>,
    /// Whether the log ever held a transaction's batch: read-committed fetches of a partition
    /// that never did skip the log lock for its transactions (nothing is unstable or aborted).
    pub txns_seen: Cell<bool>,
    /// Whether every produced record must have a key: the partition's topic is compacted, and
    /// compaction keeps records by key. Set when the partition is opened.
    pub keys_required: Cell<bool>,
    /// The replica state machine and what its driver task works on (`crate::replica_driver`).
    pub rep: Replicated,
    /// A read ahead of a consumer in flight (one at a time): where it starts, and its end, for
    /// the fetch that wants its batches to wait for.
    read_ahead: RefCell<Option<(u64, ReadingAhead)>>,
}

/// Counts a produce in flight on a partition for as long as it lives.
#[derive(Debug)]
pub struct Producing(Rc<Cell<usize>>);

impl Drop for Producing {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Attempts at something that failed (reopening a log, opening a partition), spaced by
/// [`reopen_delay_ms`], without end.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backoff {
    attempts: u32,
    next_ms: u64,
}

impl Backoff {
    /// Whether another attempt is allowed at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_ms
    }

    /// In how many milliseconds the next attempt is allowed (0: at the next upkeep). Always
    /// `Some`: the protocol keeps `None` for a node that gives up.
    pub fn retry_in_ms(&self, now_ms: u64) -> Option<u64> {
        Some(self.next_ms.saturating_sub(now_ms))
    }

    /// Records a failed attempt at `now_ms`.
    pub fn failed(&mut self, now_ms: u64) {
        self.attempts = self.attempts.saturating_add(1);
        self.next_ms = now_ms + reopen_delay_ms(self.attempts);
    }

    /// Makes the next attempt due at once, keeping the count (so the delays after it stay long
    /// if it fails again).
    pub fn retry_now(&mut self) {
        self.next_ms = 0;
    }
}

impl<S: Storage + Clone> Partition<S> {
    /// Opens the log and makes a replica over it, offline until it is given a partition state
    /// (`crate::replica_driver`); the caller then starts its driver task.
    pub async fn open(
        storage: S,
        config: LogConfig,
        now_ms: u64,
        name: String,
        setup: ReplicaSetup,
    ) -> weir_log::error::Result<Self> {
        let log = Self::open_log(&storage, &config, now_ms, &name).await?;
        let (start, end) = (log.log_start(), log.next_offset());
        // Nothing is visible before the replica learns (or, alone, decides) what is committed.
        let state = ReplicaState::recovered(start, end, start, latest_epoch(&log));
        let rep = Replicated::new(setup, &log);
        let txns_seen = Cell::new(log.transactions().seen());
        Ok(Self {
            txns_seen,
            log: SharedLog::new(log),
            storage,
            config,
            state: Cell::new(state),
            shown_high_watermark: Cell::new(start),
            waiters: RefCell::new(Vec::new()),
            name,
            reopen: Cell::new(Backoff::default()),
            reopen_error: RefCell::new(None),
            producing: Rc::new(Cell::new(0)),
            closed: Cell::new(false),
            scrub_pause: Cell::new(ScrubPause::default()),
            clean: Cell::new(CleanSchedule::default()),
            keys_required: Cell::new(false),
            rep,
            read_ahead: RefCell::new(None),
        })
    }

    async fn open_log(
        storage: &S,
        config: &LogConfig,
        now_ms: u64,
        name: &str,
    ) -> weir_log::error::Result<PartitionLog<S>> {
        let (log, report) = PartitionLog::open(storage.clone(), config.clone(), now_ms).await?;
        if report.truncated.is_some() || !report.rebuilt_indexes.is_empty() || !report.damaged.is_empty() {
            tracing::warn!(partition = name, ?report, "partition recovered");
        }
        for d in &report.damaged {
            tracing::warn!(
                partition = name,
                segment = d.segment,
                first_offset = d.first_offset,
                last_offset = d.last_offset,
                reason = %d.reason,
                "damaged batches quarantined; reads of these offsets fail, the rest is served"
            );
        }
        Ok(log)
    }

    /// Sets the replica state the partition shows (consumers read below its high watermark),
    /// waking the fetches waiting for the high watermark if it moved.
    pub(crate) fn show(&self, state: ReplicaState) {
        let moved = state.high_watermark() != self.state.get().high_watermark();
        self.shown_high_watermark.set(self.shown_high_watermark.get().max(state.high_watermark()));
        if state.log_end() > self.state.get().log_end() {
            self.rep.grew.notify_waiters();
        }
        self.state.set(state);
        if moved {
            self.wake_waiters();
        }
    }

    /// The partition's topic and index, from its name.
    pub fn key(&self) -> (String, u32) {
        let (topic, index) = self.name.rsplit_once('/').expect("a partition is named topic/index");
        (topic.to_owned(), index.parse().expect("a partition's index is a number"))
    }

    pub fn state(&self) -> ReplicaState {
        self.state.get()
    }

    /// The high watermark consumers are shown: never lower than one shown before. Records up
    /// to it may not be readable yet (see [`readable_end`](Self::readable_end)).
    pub fn high_watermark(&self) -> u64 {
        self.shown_high_watermark.get().max(self.state.get().high_watermark())
    }

    /// The replica's own high watermark now: consumers read below it.
    pub fn readable_end(&self) -> u64 {
        self.state.get().high_watermark()
    }

    pub fn log_start(&self) -> u64 {
        self.state.get().log_start()
    }

    fn update(&self, change: impl FnOnce(&mut ReplicaState)) {
        let mut s = self.state.get();
        change(&mut s);
        self.state.set(s);
    }

    /// Retention deleted the records below `start`.
    pub fn set_log_start(&self, start: u64) {
        self.update(|s| s.advance_log_start(start));
    }

    /// Records were appended: the log now ends at `log_end`.
    pub fn appended(&self, log_end: u64) {
        self.update(|s| s.appended(log_end));
    }

    /// Moves the high watermark and wakes the fetches waiting for it.
    pub fn advance(&self, high_watermark: u64) {
        let mut s = self.state.get();
        if s.advance_high_watermark(high_watermark) {
            self.state.set(s);
            for w in self.waiters.borrow_mut().drain(..) {
                let _ = w.send(());
            }
        }
    }

    /// Cuts the log to end at or before `offset`, as a follower does with what its leader does
    /// not have; the high watermark drops with it (never below the log start). Returns the new
    /// log end.
    pub async fn truncate_to(&self, offset: u64, now_ms: u64) -> weir_log::error::Result<u64> {
        let mut log = self.log.lock().await;
        // A produce between its append and its answer would advance the high watermark past
        // the cut: a replica truncates as a follower, which takes no produces.
        assert_eq!(self.producing.get(), 0, "truncating {} while a produce is in flight", self.name);
        let end = log.truncate_to(offset, now_ms).await?;
        let old = self.state.get();
        // A cut below the log start starts the log over at the cut: recovered() covers both.
        self.state.set(ReplicaState::recovered(
            log.log_start(),
            end,
            old.high_watermark(),
            old.leader_epoch(),
        ));
        Ok(end)
    }

    /// Wakes every fetch waiting for the high watermark: it moved, or never will (the log
    /// failed).
    pub(crate) fn wake_waiters(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            let _ = w.send(());
        }
    }

    /// Returns once the replica has begun its epoch and the high watermark reached the log end
    /// the partition had when called, or the replica failed: a replica that leads alone shows
    /// its log again once it has begun its epoch. Bounds the log writes of many partitions
    /// opened at once by the opens' own bound.
    pub async fn until_caught_up(&self) {
        let end = self.state().log_end();
        let waiting = || !self.rep.epoch_begun.get() || self.readable_end() < end;
        while waiting() && !self.rep.replica.borrow().is_failed() && !self.is_closed() {
            match self.wait() {
                Some(w) => {
                    let _ = w.await;
                }
                None => return,
            }
        }
    }

    /// The read ahead in flight from `offset`, if any: a fetch there wants its batches.
    pub fn read_ahead_at(&self, offset: u64) -> Option<ReadingAhead> {
        self.read_ahead.borrow().as_ref().filter(|(start, _)| *start == offset).map(|(_, r)| r.clone())
    }

    pub fn reading_ahead(&self) -> bool {
        self.read_ahead.borrow().is_some()
    }

    /// Records a read ahead from `start` as in flight, until [`read_ahead_done`](Self::read_ahead_done).
    pub fn set_read_ahead(&self, start: u64, reading: ReadingAhead) {
        assert!(self.read_ahead.replace(Some((start, reading))).is_none(), "one read ahead at a time");
    }

    pub fn read_ahead_done(&self) {
        self.read_ahead.borrow_mut().take();
    }

    /// A future that resolves when the high watermark moves, or `None` if too many wait.
    pub fn wait(&self) -> Option<oneshot::Receiver<()>> {
        let mut waiters = self.waiters.borrow_mut();
        waiters.retain(|w| !w.is_canceled());
        if waiters.len() >= WAITERS_MAX {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiters.push(tx);
        Some(rx)
    }

    /// Fences the partition for good, before its files are deleted: every later write through
    /// anyone still holding it is refused (as by a failed log), and it is never reopened. Waits
    /// for the write in progress, if any.
    pub async fn close(&self) {
        let mut log = self.log.lock().await;
        log.fence();
        self.closed.set(true);
        // Its driver ends at its next look; it holds the partition (and its files) until then.
        self.rep.wake();
        // Reads planned before the fence may still run: they keep the files open now, and never
        // reopen one by name, which a topic created under the same name may soon reuse.
        self.storage.forget_names();
    }

    /// Whether the partition was deleted (and its log fenced).
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Whether the log is failed (and waits to be reopened); false while someone uses it.
    pub fn is_failed(&self) -> bool {
        self.log.try_lock().is_some_and(|log| log.is_failed())
    }

    /// Its bounds, whether it serves, and its damaged ranges, for describing its topic. Waits
    /// for the write in progress, if any: under the lock, a failed log is failed indeed (a
    /// change marks the log failed only while it runs), not merely busy.
    pub async fn status(&self, now_ms: u64) -> PartitionStatus {
        let log = self.log.lock().await;
        let damaged = log.damaged_ranges().iter().map(damage).collect();
        let state = if log.is_failed() && !self.closed.get() {
            let mut cause = "the log failed (an I/O error or an interrupted write) and refuses writes until \
                             it is reopened from its files"
                .to_owned();
            if let Some(e) = self.reopen_error.borrow().as_ref() {
                cause.push_str(&format!("; the last reopen failed: {e}"));
            }
            PartitionState::Offline { cause, retry_in_ms: self.reopen.get().retry_in_ms(now_ms) }
        } else if self.rep.is_retired() {
            let cause =
                "the log failed and was reopened; in a cluster the replica stays offline until the node \
                         restarts, so that two lives of this node never lead one epoch"
                    .to_owned();
            PartitionState::Offline { cause, retry_in_ms: None }
        } else {
            PartitionState::Online
        };
        let s = self.state();
        let bounds = Bounds {
            log_start: s.log_start(),
            high_watermark: s.high_watermark(),
            log_end: s.log_end(),
            leader_epoch: s.leader_epoch(),
            size_bytes: log.size_bytes(),
        };
        PartitionStatus { bounds: Some(bounds), health: PartitionHealth { state, damaged } }
    }

    /// Counts a produce in flight until the guard drops: take it before appending, drop it once
    /// the answer is decided.
    pub fn begin_produce(&self) -> Producing {
        self.producing.set(self.producing.get() + 1);
        Producing(self.producing.clone())
    }

    /// Recovers a failed log in place when its next attempt is due: reopens it from its files
    /// (recovery keeps every intact batch) and serves again. Returns whether it reopened the log.
    pub async fn reopen_if_failed(&self, now_ms: u64) -> bool {
        let mut backoff = self.reopen.get();
        if !backoff.due(now_ms) || self.producing.get() > 0 {
            return false;
        }
        // A log in use is not failed, or its user is about to learn it: look again next time.
        let Some(mut log) = self.log.try_lock() else { return false };
        if !log.is_failed() || self.closed.get() {
            return false;
        }
        match Self::open_log(&self.storage, &self.config, now_ms, &self.name).await {
            Ok(reopened) => {
                self.log.replace(&mut log, reopened);
                self.txns_seen.set(self.txns_seen.get() || log.transactions().seen());
                self.clean.set(CleanSchedule::default());
                let old = self.state.get();
                let epoch = latest_epoch(&log).max(old.leader_epoch());
                let hw = old.high_watermark().clamp(log.log_start(), log.next_offset());
                let s = ReplicaState::recovered(log.log_start(), log.next_offset(), hw, epoch);
                self.state.set(s);
                // The old replica is failed for good; a new one takes the recovered log.
                self.rep.renew(&log, now_ms);
                self.rep.wake();
                self.reopen.set(Backoff::default());
                self.reopen_error.replace(None);
                tracing::warn!(partition = %self.name, log_end = s.log_end(), "failed log reopened and serving again");
                true
            }
            Err(e) => {
                backoff.failed(now_ms);
                self.reopen.set(backoff);
                self.reopen_error.replace(Some(e.to_string()));
                let retry_in_ms = reopen_delay_ms(backoff.attempts);
                tracing::error!(partition = %self.name, error = %e, retry_in_ms, "cannot reopen a failed log");
                false
            }
        }
    }
}

impl<S: Storage + Clone> Partition<S> {
    /// Makes the next reopen of a failed log due at once: its cause may have gone (free space
    /// came back).
    pub fn retry_now(&self) {
        let mut backoff = self.reopen.get();
        backoff.retry_now();
        self.reopen.set(backoff);
    }
}

fn damage(d: &DamagedRange) -> DamagedRangeInfo {
    DamagedRangeInfo {
        segment: d.segment,
        first_offset: d.first_offset,
        last_offset: d.last_offset,
        reason: d.reason.to_string(),
    }
}

/// The newest leader epoch the log holds batches of (0 for a log without any).
pub(crate) fn latest_epoch<S: Storage>(log: &PartitionLog<S>) -> u32 {
    log.leader_epochs().last().map_or(0, |e| e.epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_log::batch::{BatchBuilder, BatchView, ProducerStamp, Record};
    use weir_log::storage::mem::MemStorage;

    fn setup() -> ReplicaSetup {
        ReplicaSetup::standalone(weir_replication::PartitionId(0), true)
    }

    fn batch(n: usize) -> weir_log::batch::Batch {
        let mut b = BatchBuilder::new(1 << 20);
        for i in 0..n {
            b.push(&Record {
                key: None,
                value: Some(format!("r{i}").as_bytes()),
                headers: &[],
                timestamp: 1,
            })
            .unwrap();
        }
        b.seal(ProducerStamp::default())
    }

    async fn append(p: &Partition<MemStorage>, n: usize) -> weir_log::error::Result<u64> {
        let b = batch(n);
        let view = BatchView::validate(b.as_bytes(), 1 << 20).unwrap();
        let a = p.log.append_durable(&view, 0, 0).await?;
        p.appended(a.last_offset + 1);
        p.advance(a.last_offset + 1);
        Ok(a.last_offset + 1)
    }

    #[test]
    fn a_failed_log_is_reopened_in_place_with_bounded_retries() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let storage = MemStorage::new();
                let p = Partition::open(storage.clone(), LogConfig::default(), 0, "t/0".into(), setup())
                    .await
                    .unwrap();
                assert_eq!(append(&p, 4).await.unwrap(), 4);
                storage.faults().fail_sync_in.set(1);
                assert!(append(&p, 2).await.is_err(), "the sync fails");
                assert!(
                    matches!(append(&p, 1).await, Err(weir_log::LogError::Failed)),
                    "failed until reopened"
                );
                let offline = |s: PartitionStatus| match s.health.state {
                    PartitionState::Offline { cause, retry_in_ms } => (cause, retry_in_ms),
                    PartitionState::Online => panic!("a failed log is offline"),
                };
                let (cause, retry) = offline(p.status(500).await);
                assert!(cause.contains("the log failed"), "{cause}");
                assert_eq!(retry, Some(0), "retried at the next upkeep");
                // Reopening fails while the storage does, and backs off.
                storage.faults().fail_sync_in.set(1);
                assert!(!p.reopen_if_failed(1_000).await);
                let (cause, retry) = offline(p.status(1_200).await);
                assert!(cause.contains("the last reopen failed"), "{cause}");
                assert_eq!(retry, Some(reopen_delay_ms(1) - 200));
                assert!(!p.reopen_if_failed(1_500).await, "not due before the delay");
                assert!(p.reopen_if_failed(1_000 + reopen_delay_ms(1)).await);
                assert_eq!(p.status(1_000 + reopen_delay_ms(1)).await.health.state, PartitionState::Online);
                // Serving again: what the failed sync left unsynced was written, and recovery
                // keeps every intact batch.
                let s = p.state();
                assert_eq!((s.log_start(), s.high_watermark()), (0, 4));
                assert!(s.log_end() >= 4);
                let end = append(&p, 3).await.unwrap();
                assert_eq!(end, s.log_end() + 3);
                assert!(!p.reopen_if_failed(u64::MAX / 2).await, "a healthy log is left alone");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn truncation_lowers_the_high_watermark_with_the_log_end() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let p = Partition::open(MemStorage::new(), LogConfig::default(), 0, "t/0".into(), setup())
                    .await
                    .unwrap();
                for _ in 0..3 {
                    append(&p, 2).await.unwrap();
                }
                assert_eq!((p.state().high_watermark(), p.state().log_end()), (6, 6));
                assert_eq!(p.truncate_to(4, 0).await.unwrap(), 4);
                let s = p.state();
                assert_eq!((s.log_start(), s.high_watermark(), s.log_end()), (0, 4, 4));
                assert_eq!(append(&p, 1).await.unwrap(), 5, "appends go on from the cut");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// Retries go on for good, a minute apart at most, and are due at once when asked.
    #[test]
    fn retries_never_stop() {
        let mut backoff = Backoff::default();
        let mut now = 0;
        for _ in 0..1000 {
            backoff.failed(now);
            assert!(!backoff.due(now));
            now += REOPEN_DELAY_MS_MAX;
            assert!(backoff.due(now), "still retried after {now} ms");
        }
        backoff.failed(now);
        backoff.retry_now();
        assert!(backoff.due(now));
        assert_eq!(reopen_delay_ms(1), REOPEN_DELAY_MS);
        assert_eq!(reopen_delay_ms(u32::MAX), REOPEN_DELAY_MS_MAX);
    }
}

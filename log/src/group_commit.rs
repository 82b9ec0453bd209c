//! Group commit: many tasks of one shard append to one log and share its fdatasyncs, which run
//! without the log locked, so a read never waits behind a sync.
//!
//! A task that needs its batch durable waits until the durable offset passes it. If no sync is in
//! flight, it leads one in three steps: under the log's lock it prepares the sync
//! ([`PartitionLog::prepare_sync`]: the buffered batches and the index hints that may go out are
//! written, and what the sync covers is taken: the log end, the segment file, the active segment
//! it belongs to); it releases the lock and runs the fdatasync ([`PendingSync::run`]); it takes
//! the lock again and records the outcome ([`PartitionLog::complete_sync`]). While the fdatasync
//! runs, fetches plan their reads and producers append. At most one sync is in flight per log:
//! tasks that need an offset it does not cover wait for it (on a FIFO leader token), and the next
//! leader covers all of them, so N concurrent producers cost about two syncs, not N.
//!
//! The contract of a sync run without the lock:
//! - Only the fdatasync runs unlocked. Every write (batches, index hints) is made under the lock
//!   before it, so no write is ever in flight unlocked: a roll or truncation meanwhile cannot race
//!   one (an index hint landing in an index file a roll has since rewritten as sealed, say). An
//!   fdatasync changes no bytes. Appends may rewrite the active segment's partial tail block
//!   beside it; they keep the bytes it covers as they were.
//! - It covers what was written when it was prepared: the offsets below the log end then, in the
//!   active segment then. On success the durable offset becomes the larger of its value and that
//!   end, and the index hints of those batches may go out with the next sync; both only if that
//!   segment is still the active one and the log has not failed. A roll or truncation meanwhile
//!   replaced the active segment and set the durable offset itself (a roll syncs everything; a
//!   truncation makes its cut durable). The old sync must add nothing: after a truncation and new
//!   appends, the offsets it covered hold other, unsynced batches, and the new active segment's
//!   index bookkeeping (`index_persisted`, `index_durable`) is not about the old one's entries.
//! - A failed fdatasync fails the log until it is reopened: the kernel may have dropped the
//!   writes it failed on, and a later sync that succeeds proves nothing about them.
//! - Cancel-safety. A leader dropped while preparing leaves the log failed, as any write dropped
//!   halfway does (see `begin_change` in the log). A leader dropped while its fdatasync is in
//!   flight changes nothing: the durable offset stays, the log stays usable, and the next waiter
//!   takes the leader token and syncs. A leader dropped after its fdatasync returned, while it
//!   waits for the lock, leaves the outcome in a slot that the next task to lock the log records,
//!   so neither a success nor a failure is lost.
//!
//! The interval flush ([`SharedLog::tick`]) leads a sync the same way. A caller with the log
//! locked may still [`flush`](PartitionLog::flush) it (a shutdown): that sync runs under the
//! lock and may overlap a leader's, which is harmless.
//!
//! The locks are FIFO (tokio's, which need no tokio runtime): a task that just synced cannot jump
//! ahead of the appenders queued behind it, which is what makes the next sync cover them.
//!
//! Single-shard (`!Send`): held in an `Rc` by the tasks of the shard that owns the partition.

use crate::batch::BatchView;
use crate::error::{LogError, Result};
use crate::log::{Appended, PartitionLog, Tick};
use crate::storage::{Storage, StorageFile};
use std::cell::RefCell;
use std::rc::Rc;
use tokio::sync::{Mutex, MutexGuard};

/// A sync prepared under the log's lock, to run without it. Made by
/// [`PartitionLog::prepare_sync`]; recorded by [`PartitionLog::complete_sync`].
#[derive(Debug)]
pub struct PendingSync<F: StorageFile> {
    pub(crate) file: Rc<F>,
    pub(crate) name: String,
    /// Every offset below this was written when the sync was prepared.
    pub(crate) offset: u64,
    /// Index entries of the active segment then.
    pub(crate) index_entries: usize,
    /// The active segment then.
    pub(crate) segment: Rc<()>,
}

impl<F: StorageFile> PendingSync<F> {
    /// The log end this sync makes durable.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The fdatasync. Dropping it halfway is safe: nothing is recorded.
    pub async fn run(&self) -> Result<()> {
        self.file.sync().await.map_err(|e| LogError::io("sync", &self.name, e))
    }
}

/// A sync that ran to its end, with its outcome.
type Finished<S> = (PendingSync<<S as Storage>::File>, Result<()>);

/// A partition log shared by the tasks of its shard.
#[derive(Debug)]
pub struct SharedLog<S: Storage> {
    log: Mutex<PartitionLog<S>>,
    /// Held by the task whose sync is in flight: at most one per log.
    sync_leader: Mutex<()>,
    /// A sync whose leader was dropped before it could record it; the next locker records it.
    finished: RefCell<Option<Finished<S>>>,
}

impl<S: Storage> SharedLog<S> {
    pub fn new(log: PartitionLog<S>) -> Self {
        Self { log: Mutex::new(log), sync_leader: Mutex::new(()), finished: RefCell::new(None) }
    }

    /// Exclusive access for anything else (reads planned from it, retention, truncation).
    pub async fn lock(&self) -> MutexGuard<'_, PartitionLog<S>> {
        let mut log = self.log.lock().await;
        self.record_finished(&mut log);
        log
    }

    /// Records a sync left in `finished`, if any, and returns its outcome.
    fn record_finished(&self, log: &mut PartitionLog<S>) -> Option<Result<u64>> {
        let (sync, result) = self.finished.borrow_mut().take()?;
        Some(log.complete_sync(sync, result))
    }

    /// Puts `log` (a reopened one) in place of the one `guard` holds. A sync of the old log
    /// whose outcome is still unrecorded is forgotten: it says nothing about the new one.
    pub fn replace(&self, guard: &mut MutexGuard<'_, PartitionLog<S>>, log: PartitionLog<S>) {
        self.finished.borrow_mut().take();
        **guard = log;
    }

    /// Exclusive access if nobody holds the log now; for upkeep that must not queue behind
    /// appends and syncs.
    pub fn try_lock(&self) -> Option<tokio::sync::MutexGuard<'_, PartitionLog<S>>> {
        self.log.try_lock().ok()
    }

    /// Appends without waiting for durability.
    pub async fn append(&self, batch: &BatchView<'_>, leader_epoch: u32, now_ms: u64) -> Result<Appended> {
        self.lock().await.append(batch, leader_epoch, now_ms).await
    }

    /// Appends and returns once the batch is durable.
    pub async fn append_durable(
        &self,
        batch: &BatchView<'_>,
        leader_epoch: u32,
        now_ms: u64,
    ) -> Result<Appended> {
        let appended = self.append(batch, leader_epoch, now_ms).await?;
        self.wait_durable(appended.last_offset + 1).await?;
        Ok(appended)
    }

    /// Returns once every offset below `offset` is durable, syncing if nobody else is. The
    /// durable offset is read under the lock every time: a truncation may lower it, so no copy
    /// of it outside the log can be trusted. Fails if the log was truncated below `offset`.
    pub async fn wait_durable(&self, offset: u64) -> Result<()> {
        loop {
            if Self::is_durable(&*self.lock().await, offset)? {
                return Ok(());
            }
            // Wait for the sync in flight, if any: it may cover `offset`.
            let _leader = self.sync_leader.lock().await;
            let sync = {
                let mut log = self.lock().await;
                if Self::is_durable(&log, offset)? {
                    return Ok(());
                }
                log.prepare_sync().await?.expect("a sync is due: durable offset < offset <= end")
            };
            let result = sync.run().await;
            // Left where the next locker records it, should this task be dropped while it waits.
            let earlier = self.finished.replace(Some((sync, result)));
            assert!(earlier.is_none(), "the leader records its predecessor's sync before its own");
            let mut log = self.log.lock().await;
            if let Some(Err(e)) = self.record_finished(&mut log) {
                return Err(e);
            }
        }
    }

    /// The periodic chore of [`PartitionLog::tick`] (interval flush, roll by age), with the
    /// interval flush's fdatasync run without the log locked, as [`wait_durable`]'s is: reads
    /// and appends go on beside it.
    ///
    /// [`wait_durable`]: Self::wait_durable
    pub async fn tick(&self, now_ms: u64) -> Result<Tick> {
        let due = self.lock().await.interval_flush_due(now_ms);
        let flushed = match due {
            Some(end) => {
                let before = self.lock().await.durable_offset();
                self.wait_durable(end).await?;
                self.lock().await.durable_offset() != before
            }
            None => false,
        };
        let rolled = self.lock().await.roll_if_due(now_ms).await?;
        Ok(Tick { flushed, rolled })
    }

    /// Whether `offset` is durable; an error if it can never be (cut off, or the log failed).
    fn is_durable(log: &PartitionLog<S>, offset: u64) -> Result<bool> {
        if log.durable_offset() >= offset {
            return Ok(true);
        }
        if offset > log.next_offset() {
            let (start, end) = (log.log_start(), log.next_offset());
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        if log.is_failed() {
            return Err(LogError::Failed);
        }
        Ok(false)
    }
}

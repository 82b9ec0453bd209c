//! Group commit: many tasks of one shard append to one log and share its fdatasyncs.
//!
//! A task that needs its batch durable waits until the durable offset passes it. If no sync is
//! running, it runs one itself, covering every batch appended so far; tasks that appended while
//! that sync was in flight queue on the lock and are covered by the next one. So N concurrent
//! producers cost about two syncs, not N.
//!
//! The lock is FIFO (tokio's, which needs no tokio runtime): a task that just flushed cannot
//! jump ahead of the appenders queued behind it, which is what makes the next sync cover them.
//!
//! Single-shard (`!Send`): held in an `Rc` by the tasks of the shard that owns the partition.

use crate::batch::BatchView;
use crate::error::{LogError, Result};
use crate::log::{Appended, PartitionLog};
use crate::storage::Storage;
use tokio::sync::Mutex;

/// A partition log shared by the tasks of its shard.
#[derive(Debug)]
pub struct SharedLog<S: Storage> {
    log: Mutex<PartitionLog<S>>,
}

impl<S: Storage> SharedLog<S> {
    pub fn new(log: PartitionLog<S>) -> Self {
        Self { log: Mutex::new(log) }
    }

    /// Exclusive access for anything else (reads planned from it, retention, truncation).
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, PartitionLog<S>> {
        self.log.lock().await
    }

    /// Exclusive access if nobody holds the log now; for upkeep that must not queue behind
    /// appends and syncs.
    pub fn try_lock(&self) -> Option<tokio::sync::MutexGuard<'_, PartitionLog<S>>> {
        self.log.try_lock().ok()
    }

    /// Appends without waiting for durability.
    pub async fn append(&self, batch: &BatchView<'_>, leader_epoch: u32, now_ms: u64) -> Result<Appended> {
        self.log.lock().await.append(batch, leader_epoch, now_ms).await
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
            let mut log = self.log.lock().await;
            if log.durable_offset() >= offset {
                return Ok(());
            }
            if offset > log.next_offset() {
                let (start, end) = (log.log_start(), log.next_offset());
                return Err(LogError::OffsetOutOfRange { offset, start, end });
            }
            log.flush().await?;
        }
    }
}

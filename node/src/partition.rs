//! A partition served by its owning shard: its log, its high watermark, and the fetches waiting
//! for it to grow. Owned by one shard; shared by that shard's tasks through `Rc`.

use futures::channel::oneshot;
use std::cell::{Cell, RefCell};
use weir_log::storage::dma::DmaStorage;
use weir_log::{LogConfig, PartitionLog, SharedLog};

/// Fetches waiting for data on one partition at most; more are answered at once, empty.
pub const WAITERS_MAX: usize = 4096;

#[derive(Debug)]
pub struct Partition {
    pub log: SharedLog<DmaStorage>,
    /// Offsets below this are visible to consumers: durable ones with fsync-before-ack, written
    /// ones otherwise.
    high_watermark: Cell<u64>,
    log_start: Cell<u64>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    pub dir: std::path::PathBuf,
}

impl Partition {
    pub async fn open(
        dir: std::path::PathBuf,
        config: LogConfig,
        now_ms: u64,
    ) -> weir_log::error::Result<Self> {
        let storage = DmaStorage::new(&dir).map_err(|e| weir_log::LogError::Io {
            op: "create dir",
            file: dir.display().to_string(),
            source: e,
        })?;
        let (log, report) = PartitionLog::open(storage, config, now_ms).await?;
        if report.truncated.is_some() || !report.rebuilt_indexes.is_empty() {
            tracing::warn!(dir = %dir.display(), ?report, "partition recovered");
        }
        let (start, end) = (log.log_start(), log.next_offset());
        Ok(Self {
            log: SharedLog::new(log),
            high_watermark: Cell::new(end),
            log_start: Cell::new(start),
            waiters: RefCell::new(Vec::new()),
            dir,
        })
    }

    pub fn high_watermark(&self) -> u64 {
        self.high_watermark.get()
    }

    pub fn log_start(&self) -> u64 {
        self.log_start.get()
    }

    pub fn set_log_start(&self, start: u64) {
        self.log_start.set(start);
    }

    /// Moves the high watermark and wakes the fetches waiting for it.
    pub fn advance(&self, high_watermark: u64) {
        if high_watermark > self.high_watermark.get() {
            self.high_watermark.set(high_watermark);
            for w in self.waiters.borrow_mut().drain(..) {
                let _ = w.send(());
            }
        }
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
}

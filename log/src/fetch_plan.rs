//! A fetch's read, decided while the log is borrowed and carried out after: from the shard's
//! batch cache when it holds the batch asked for (no I/O), else from what was read ahead of
//! the consumer (no I/O now), else from the segment file.

use crate::batch_cache::{BatchCache, CachedRead};
use crate::error::Result;
use crate::segment::ReadPlan;
use crate::storage::StorageFile;
use bytes::Bytes;

/// See [`PartitionLog::plan_fetch`](crate::PartitionLog::plan_fetch).
#[derive(Debug)]
pub enum FetchPlan<F> {
    /// Answered already, from the cache.
    Cached(CachedRead),
    /// Answered already, from what was read ahead; the cache, if any, counts its bytes as
    /// missed (they came from the device).
    ReadAhead { bytes: Bytes, next_offset: u64, cache: Option<BatchCache> },
    /// A read of the file; the cache, if the log has one, counts its bytes as missed.
    File { plan: ReadPlan<F>, cache: Option<BatchCache> },
}

/// What a fetch read.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// Whole stored batches; empty when none was readable.
    pub bytes: Bytes,
    /// The offset after the last batch: where the next fetch starts.
    pub next_offset: u64,
    /// Read from the device, now or ahead of the consumer: a consumer reading on from
    /// `next_offset` may be worth reading ahead of.
    pub from_device: bool,
}

impl<F: StorageFile> FetchPlan<F> {
    /// Whole stored batches from the one holding the offset planned, as
    /// [`ReadPlan::execute`] reads them; empty when none is readable.
    pub async fn execute(self) -> Result<Fetch> {
        let note = |cache: Option<BatchCache>, bytes: &[u8]| {
            if let Some(cache) = cache {
                cache.note_miss(bytes.len());
            }
        };
        match self {
            FetchPlan::Cached(read) => {
                Ok(Fetch { bytes: read.bytes, next_offset: read.next_offset, from_device: false })
            }
            FetchPlan::ReadAhead { bytes, next_offset, cache } => {
                note(cache, &bytes);
                Ok(Fetch { bytes, next_offset, from_device: true })
            }
            FetchPlan::File { plan, cache } => {
                let read = plan.execute().await?;
                note(cache, read.bytes());
                let bytes = Bytes::copy_from_slice(read.bytes());
                Ok(Fetch { bytes, next_offset: read.next_offset, from_device: true })
            }
        }
    }

    /// Whether the plan was answered from the cache.
    pub fn is_cached(&self) -> bool {
        matches!(self, FetchPlan::Cached(_))
    }
}

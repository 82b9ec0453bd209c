//! A fetch's read, decided while the log is borrowed and carried out after: from the shard's
//! batch cache when it holds the batch asked for (no I/O), else from the segment file.

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
    /// A read of the file; the cache, if the log has one, counts its bytes as missed.
    File { plan: ReadPlan<F>, cache: Option<BatchCache> },
}

impl<F: StorageFile> FetchPlan<F> {
    /// Whole stored batches from the one holding the offset planned, as
    /// [`ReadPlan::execute`] reads them; empty when none is readable.
    pub async fn execute(self) -> Result<Bytes> {
        match self {
            FetchPlan::Cached(read) => Ok(read.bytes),
            FetchPlan::File { plan, cache } => {
                let read = plan.execute().await?;
                if let Some(cache) = cache {
                    cache.note_miss(read.bytes().len());
                }
                Ok(Bytes::copy_from_slice(read.bytes()))
            }
        }
    }

    /// Whether the plan was answered from the cache.
    pub fn is_cached(&self) -> bool {
        matches!(self, FetchPlan::Cached(_))
    }
}

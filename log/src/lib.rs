//! Weir's storage engine: the record-batch format, segment files and the partition log.
//!
//! Format and index logic are plain functions over bytes; the partition log does its I/O through
//! the narrow [`storage::Storage`] trait, implemented with glommio's direct I/O for real and in
//! memory, with injectable faults, for tests.

pub mod append_all;
pub mod appender;
pub mod batch;
pub mod batch_cache;
pub mod cleanup_policy;
pub mod compaction;
pub mod damage;
pub mod epoch_cache;
mod epoch_store;
pub mod error;
pub mod fetch_plan;
pub mod index;
pub mod io_budget;
pub mod storage;

pub use append_all::AppendAllError;
pub use cleanup_policy::CleanupPolicy;
pub use damage::DamagedRange;
pub use error::{BatchError, LogError};
pub mod group_commit;
pub mod log;
pub mod producer_scan;
mod producer_snapshot;
pub mod producers;
pub mod read_ahead;
pub mod scrub;
pub mod segment;
mod start_store;
pub mod timestamp_lookup;
pub mod transactions;

pub use crate::batch_cache::{BatchCache, BatchCacheStats};
pub use crate::fetch_plan::{Fetch, FetchPlan};
pub use crate::group_commit::{PendingSync, SharedLog};
pub use crate::log::{Appended, FlushPolicy, LogConfig, PartitionLog, RecoveryReport, Tick, Truncation};
pub use crate::timestamp_lookup::TimestampLookup;

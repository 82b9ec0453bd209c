//! The log operations a replica asks its I/O layer for, and the events that report them done.
//!
//! The I/O layer takes operations with [`Replica::poll_log_op`](crate::Replica::poll_log_op)
//! and performs them one at a time, in order, each to completion (an operation that mutates a
//! log is never dropped halfway); it reports each with exactly one [`LogEvent`].

/// One operation on the partition log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOp {
    /// Record that leader epoch `epoch` starts at the log end, durably, before any append of
    /// it: the epoch cache must answer for the epoch even before it wrote anything.
    BeginEpoch { epoch: u32 },
    /// Append produce request `produce` (whose bytes the I/O layer holds) as leader, at the
    /// log end, in the current leader epoch.
    AppendProduce { produce: u64, leader_epoch: u32 },
    /// Append the batches that came with fetch answer `request_id`, keeping the leader's
    /// offsets and epochs, stopping at the first the log refuses.
    AppendFetched { request_id: u64 },
    /// Make every appended batch durable.
    Flush,
    /// Remove every batch at or after `offset`, and every epoch that starts there or later,
    /// durably.
    Truncate { offset: u64 },
    /// Empty the log and start it again at `offset`, past its end, durably: the leader's log
    /// starts there (retention deleted what this log lacks).
    StartOver { offset: u64 },
}

/// The batches one append added: `[base, end)`, written in `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedRange {
    pub base: u64,
    pub end: u64,
    pub epoch: u32,
}

/// A failed log operation. `log_failed` says whether the log is now unusable (it must be
/// reopened, and the replica with it) or refused the operation whole (a full disk at an append).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFailure {
    pub reason: &'static str,
    pub log_failed: bool,
}

/// The completion of one [`LogOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// The offset the epoch starts at: the log end when the operation ran.
    EpochBegun {
        result: Result<u64, LogFailure>,
    },
    ProduceAppended {
        produce: u64,
        result: Result<AppendedRange, LogFailure>,
    },
    /// The produce's batch was in the log already, at `range` (an idempotent producer's
    /// retry): nothing was appended, and the produce is answered as its original was.
    ProduceFound {
        produce: u64,
        range: AppendedRange,
    },
    /// Every batch appended, in order; `failure` if the log refused one (the rest were not tried).
    FetchedAppended {
        request_id: u64,
        appended: Vec<AppendedRange>,
        failure: Option<LogFailure>,
    },
    /// The durable end after the flush.
    Flushed {
        result: Result<u64, LogFailure>,
    },
    /// The log end after the cut.
    Truncated {
        result: Result<u64, LogFailure>,
    },
    /// The new log start (and end).
    StartedOver {
        result: Result<u64, LogFailure>,
    },
}

//! Error codes on the wire and errors of decoding.

/// An error code carried in a response: what went wrong with a request or one partition of it.
/// Values are stable on the wire; new ones are only ever added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u16)]
pub enum ErrorCode {
    None = 0,
    /// The frame or body could not be decoded; the connection is closed after this answer.
    MalformedRequest = 1,
    UnsupportedVersion = 2,
    UnknownTopic = 3,
    UnknownPartition = 4,
    OffsetOutOfRange = 5,
    /// A batch failed validation (CRC, lengths, rkyv structure).
    CorruptBatch = 6,
    /// A batch is larger than the topic's `batch_bytes_max`.
    BatchTooLarge = 7,
    /// The request frame is larger than `request_bytes_max`.
    RequestTooLarge = 8,
    /// The partition is owned by another shard (or node) than the one asked.
    NotOwner = 9,
    TopicAlreadyExists = 10,
    InvalidArgument = 11,
    /// The storage failed (I/O error, full disk); the request may be retried later.
    StorageError = 12,
    /// The node is shutting down or overloaded; retry.
    Unavailable = 13,
    /// The request failed after it may have changed something (a produce appended, then not
    /// made durable): whether it took effect is known only later. A retry may duplicate it.
    OutcomeUnknown = 14,
    /// The node asked does not lead the partition; the message names the leader's node id and
    /// address when known. Retry after refreshing metadata.
    NotLeader = 15,
    /// acks=all while the partition's in-sync replicas are fewer than its
    /// `min_insync_replicas`: nothing was appended. Retry later.
    NotEnoughReplicas = 16,
    /// The partition has no leader right now (an election is under way). Retry after
    /// refreshing metadata.
    LeaderNotAvailable = 17,
    /// acks=all was not satisfied within the produce's `timeout_ms`: the batch was appended by
    /// the leader and may yet become durable, or be lost. A retry may duplicate it.
    RequestTimedOut = 18,
    /// An idempotent producer's batch does not follow the last one the partition has of it (a
    /// batch before it is missing): nothing was appended.
    OutOfOrderSequence = 19,
    /// An idempotent producer's batch carries an epoch older than one the partition has of it
    /// (a stale retry): nothing was appended.
    ProducerFenced = 20,
    /// An idempotent producer's batch above sequence 0 reached a partition that knows nothing of
    /// the producer (its batches deleted or cut): nothing was appended; the producer starts a
    /// new epoch for the partition.
    UnknownProducerId = 21,
    /// A record the topic cannot take (one without a key, on a compacted topic): nothing of the
    /// request was appended.
    InvalidRecord = 22,
    /// This node or shard does not coordinate the group (it moved, or the client's view is old):
    /// find the coordinator again.
    NotCoordinator = 23,
    /// The coordinator is loading the group's state from its log: retry shortly.
    CoordinatorLoadInProgress = 24,
    /// Not a member of the group (never was, left, or removed when its session expired): join
    /// again with a new member id.
    UnknownMemberId = 25,
    /// A heartbeat in an epoch other than the member's current one: join again.
    FencedMemberEpoch = 26,
    /// A commit in an epoch older than the member's current one: heartbeat, then commit again.
    StaleMemberEpoch = 27,
    /// Another live member holds this static instance id.
    UnreleasedInstanceId = 28,
    /// The group has members: it cannot be deleted, nor its offsets reset.
    GroupNotEmpty = 29,
    GroupIdNotFound = 30,
    GroupMaxSizeReached = 31,
    Unknown = 0xffff,
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> Self {
        use ErrorCode::*;
        match v {
            0 => None,
            1 => MalformedRequest,
            2 => UnsupportedVersion,
            3 => UnknownTopic,
            4 => UnknownPartition,
            5 => OffsetOutOfRange,
            6 => CorruptBatch,
            7 => BatchTooLarge,
            8 => RequestTooLarge,
            9 => NotOwner,
            10 => TopicAlreadyExists,
            11 => InvalidArgument,
            12 => StorageError,
            13 => Unavailable,
            14 => OutcomeUnknown,
            15 => NotLeader,
            16 => NotEnoughReplicas,
            17 => LeaderNotAvailable,
            18 => RequestTimedOut,
            19 => OutOfOrderSequence,
            20 => ProducerFenced,
            21 => UnknownProducerId,
            22 => InvalidRecord,
            23 => NotCoordinator,
            24 => CoordinatorLoadInProgress,
            25 => UnknownMemberId,
            26 => FencedMemberEpoch,
            27 => StaleMemberEpoch,
            28 => UnreleasedInstanceId,
            29 => GroupNotEmpty,
            30 => GroupIdNotFound,
            31 => GroupMaxSizeReached,
            _ => Unknown,
        }
    }

    /// Whether a client should retry the same request (after refreshing metadata for those
    /// [`needs_metadata_refresh`](Self::needs_metadata_refresh) names).
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::NotOwner
                | ErrorCode::StorageError
                | ErrorCode::Unavailable
                | ErrorCode::OutcomeUnknown
                | ErrorCode::NotLeader
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::RequestTimedOut
                | ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorLoadInProgress
        )
    }

    /// Whether the request went to the wrong place: the client should learn the partition's
    /// leader again before it retries.
    pub fn needs_metadata_refresh(self) -> bool {
        matches!(self, ErrorCode::NotOwner | ErrorCode::NotLeader | ErrorCode::LeaderNotAvailable)
    }

    /// Whether a request that failed with this code may still have taken effect.
    pub fn outcome_unknown(self) -> bool {
        matches!(self, ErrorCode::OutcomeUnknown | ErrorCode::RequestTimedOut)
    }
}

/// Why bytes could not be decoded into a frame or message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("message truncated: needed {needed} more bytes at {at}")]
    Truncated { at: usize, needed: usize },
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge { len: usize, limit: usize },
    #[error("frame length {len} is smaller than the frame header")]
    FrameTooSmall { len: usize },
    #[error("unknown api key {api_key}")]
    UnknownApi { api_key: u16 },
    #[error("unsupported version {version} of api {api_key}")]
    UnsupportedVersion { api_key: u16, version: u16 },
    #[error("string is not UTF-8 at {at}")]
    BadUtf8 { at: usize },
    #[error("bad value {value} for {field}")]
    BadValue { field: &'static str, value: u64 },
    #[error("{left} trailing bytes after the message")]
    TrailingBytes { left: usize },
    #[error("reserved frame bits are set: {flags:#06x}")]
    ReservedBits { flags: u16 },
}

/// Why a message could not be encoded: a field longer than its length prefix can say, or one its
/// version requires missing. Nothing is sent; the same message cannot succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{field} of {len} bytes is longer than the protocol allows ({max} bytes)")]
    FieldTooLong { field: &'static str, len: usize, max: u64 },
    #[error("{field} is required in this version of the message")]
    MissingField { field: &'static str },
}

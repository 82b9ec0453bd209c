//! Errors of the group coordinator, typed so a front end maps each to a protocol error code.

/// Why the coordinator refused a request. Nothing changed when one is returned: every check runs
/// before the first change, so a refused request emits no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum GroupError {
    /// Not a member: never was, removed by a timeout, or left. The member must rejoin with epoch
    /// 0 and an empty member id.
    #[error("unknown member {member_id:?}")]
    UnknownMemberId { member_id: String },
    /// A heartbeat with an epoch other than the member's current one. The member must give up its
    /// partitions and rejoin with epoch 0 (with its member id, or an empty one).
    #[error("fenced member epoch {got}: the member is at epoch {expected}")]
    FencedMemberEpoch { expected: i32, got: i32 },
    /// A commit with an epoch older than the member's current one: the member is not fenced; it
    /// heartbeats, then commits again.
    #[error("stale member epoch {got}: the member is at epoch {expected}")]
    StaleMemberEpoch { expected: i32, got: i32 },
    /// A join with an instance id that another live member holds.
    #[error("instance id {instance_id:?} is held by a live member")]
    UnreleasedInstanceId { instance_id: String },
    #[error("the group has reached its maximum of {max} members")]
    GroupMaxSizeReached { max: usize },
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    /// Delete, or an admin commit, while the group has members.
    #[error("the group has {members} members")]
    GroupNotEmpty { members: u32 },
    #[error("unknown group {group:?}")]
    GroupIdNotFound { group: String },
    /// A classic JoinGroup (v4+) of a new member without an instance id: the member is known
    /// now, under `member_id`, and must join again with it.
    #[error("member id required: join again as {member_id:?}")]
    MemberIdRequired { member_id: String },
    /// A classic request of a generation other than the group's.
    #[error("illegal generation {got}: the group is at generation {expected}")]
    IllegalGeneration { expected: i32, got: i32 },
    /// The classic group is rebalancing: the member must join again.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// A classic join to a group with native members, a native join to a group with classic
    /// members, or a classic member whose protocol type or protocols the group does not share.
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// A classic request of a static member whose instance id another member id now holds.
    #[error("instance id {instance_id:?} is held by another member id")]
    FencedInstanceId { instance_id: String },
    /// A record read back from the log that does not decode: the partition holds data this
    /// version cannot read, so loading stops rather than forget state.
    #[error("corrupt group record: {reason}")]
    CorruptRecord { reason: String },
    /// A transactional request refused (see `transactions.rs`).
    #[error(transparent)]
    Txn(#[from] crate::transactions::TxnError),
}

impl GroupError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        GroupError::InvalidRequest { reason: reason.into() }
    }
}

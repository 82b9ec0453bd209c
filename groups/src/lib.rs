//! Consumer groups, sans-IO: the group coordinator's state machine, its assignors and the
//! records it persists.
//!
//! # The protocol
//!
//! Groups follow a server-side, heartbeat-driven protocol in the manner of Kafka's KIP-848.
//! A member sends one request, the heartbeat, carrying its subscription and the partitions it
//! owns; the coordinator computes a target assignment with the group's assignor and answers
//! each member with the partitions it should own now.
//!
//! - **Group epoch.** It bumps whenever the membership or a subscription changes, or a
//!   subscribed topic's partition count changes (seen by a heartbeat or `tick`); the target
//!   assignment is recomputed then, with the group's assignor, over the members'
//!   subscriptions.
//! - **Reconciliation** (see `reconcile`). A member's answer lists its target minus the
//!   partitions another member still holds. Partitions that move are first taken from their old
//!   owner, which confirms by reporting what it owns without them; only then are they given to
//!   the new owner, on its next heartbeat. Partitions a member keeps are never revoked.
//! - **Member epoch.** A member moves to the group epoch once it holds nothing outside its
//!   target. A heartbeat must carry the member's current epoch exactly (else
//!   `FencedMemberEpoch`: the member gives up its partitions and rejoins with epoch 0, under
//!   its id or a new one); there is no grace for the previous epoch, so a member whose answer
//!   was lost rejoins.
//! - **Ownership reports.** `owned` must lie within what the member holds (`InvalidRequest`
//!   otherwise); `None` means the last report again. A member reports what it owns when it
//!   sends the request, having applied every answer it received before, and never takes up
//!   partitions from an answer older than one it has applied.
//! - **Invariant.** No partition is held (assigned, or being revoked) by two members at once.
//!   It is asserted in release builds wherever a partition is given.
//! - **Joining** (epoch 0, `topics` required). An empty member id makes a new member
//!   (`<prefix>m-<n>`, `n` from a persisted counter, so no id is ever made twice); the member id of an existing member rejoins it: it is taken to own
//!   nothing, keeps its target, and its subscription change, if any, bumps the group epoch.
//!   A join's `owned` is ignored. `assignor` is taken from the member that joins an empty
//!   group; later values are ignored.
//! - **Leaving** (epoch -1): the member goes at once and what it held is free.
//! - **Static membership.** A join with an instance id a live member holds is refused
//!   (`UnreleasedInstanceId`). A static member that leaves with epoch -2 stays, holding its
//!   assignment, without a rebalance, until its session ends; a join with the same instance
//!   id meanwhile takes its place with a new member id (the old id is then unknown), the same
//!   member epoch and assignment, and no group-epoch bump unless the subscription differs.
//!   Heartbeats of the departed member's id get `UnknownMemberId`. It still counts as a member
//!   (`group_members_max`, `GroupNotEmpty`). If a new target takes partitions from it
//!   meanwhile, they are free at once, since it owns nothing.
//! - **Timeouts.** A member with no heartbeat for its session timeout, or that did not release
//!   what it must within its rebalance timeout of being told, is removed by `tick`: what it
//!   held is free and the group epoch bumps. Its later heartbeats and commits get
//!   `UnknownMemberId`. `tick` returns when the next member would expire; a partition count
//!   change is seen by the next `tick` or heartbeat of the group, so the node ticks when topic
//!   metadata changes too.
//! - **Offsets.** A member commits with its current epoch (`StaleMemberEpoch` if older); it may
//!   commit any partition. An admin commit (member "" and epoch -1) needs an empty group.
//!
//! # Classic groups
//!
//! Unmodified Kafka clients speak the classic protocol (`classic_join`, `classic_sync`,
//! `classic_heartbeat`, `classic_leave`, `classic_commit`), with client-side assignment: the
//! group's leader computes the assignment, opaque bytes to the coordinator. It follows Kafka's
//! group coordinator:
//!
//! - **Namespace.** Classic and native groups share group ids and committed offsets. A group
//!   id is one kind at a time while it has members: a classic join to a group with native
//!   members, or a native join to a group with classic members (or member ids given to
//!   classic members not yet joined), is refused `InconsistentGroupProtocol`. A group with
//!   offsets only may be taken by either kind.
//! - **Rebalance.** A join (a new member, a leader joining again, a member with new
//!   protocols) or a member going moves the group to `PreparingRebalance`; members learn of
//!   it by `RebalanceInProgress` on their heartbeat and join again. The rebalance completes
//!   when every member has joined again (and no member id given with `MemberIdRequired` is
//!   outstanding), or at the rebalance timeout (the largest of the members'), when members
//!   that did not join again are removed. On completion the generation bumps, the protocol is
//!   chosen by Kafka's vote (each member votes for the first protocol it lists among those
//!   all support), the leader is kept if it joined again (else another member leads), and
//!   every held join is answered: the leader's lists every member with its metadata. The
//!   group is then `CompletingRebalance` until the leader's sync gives the assignments, which
//!   answers the held syncs and makes the group `Stable`. If the leader does not sync within
//!   the rebalance timeout, it and the other members that did not sync are removed and the
//!   group rebalances.
//! - **Held requests.** A join or sync that must wait returns `None`; its answer comes later
//!   from `take_classic_answers` with the token the node gave. Every held request is answered
//!   exactly once: by the rebalance, the leader's sync, a timeout in `tick`, or with an error
//!   when its member goes (left, removed, fenced, or sent another request in its place).
//! - **Sessions.** Any join, sync or heartbeat refreshes a member's session; `tick` removes a
//!   member whose session ended, except while it has a request held (the rebalance timeout
//!   covers it then), and restarts a member's session when its held request is answered.
//! - **Static members.** A join with no member id and an instance id a member holds gives a
//!   new member id that takes the old one's place and assignment; the old id is fenced
//!   (`FencedInstanceId` when it names its instance id, `UnknownMemberId` otherwise). A stable
//!   group, with the same protocols and a follower replaced, does not rebalance.
//! - **Offsets.** A classic member commits with its generation: refused `UnknownMemberId`,
//!   `FencedInstanceId`, `IllegalGeneration`, or `RebalanceInProgress` while the group
//!   completes a rebalance; accepted in the current generation while it prepares one (as in
//!   current Kafka). Member "" with generation -1 is an admin commit, for a group without
//!   members.
//! - **Persistence.** As in Kafka, a group's last completed generation is persisted when the
//!   leader's sync completes it: the generation, protocol and leader, and each member with its
//!   metadata for the chosen protocol and its assignment; a member that goes is removed from
//!   it. After a reload its members carry on (heartbeat, sync, commit) with their ids and
//!   generation, each with a fresh session, without a rebalance; if one of them had gone, the
//!   others prepare a rebalance, as they did before. Members still joining are not persisted:
//!   a group reloaded mid-rebalance is its last completed generation (or empty), and the
//!   generation never goes back (one made but not completed before the reload is made again).
//!   Layout in `records`.
//!
//! # Records
//!
//! Every change yields records (`Coordinator::take_records`, layout in `records`): one per
//! committed offset, one with each group's metadata, one per member. Replaying them in log
//! order (`Coordinator::replay`), compacted or not, rebuilds an equal coordinator.
//!
//! # Limits
//!
//! Every string, list and map is bounded by the constants below or by `CoordinatorConfig`; a
//! request beyond them is refused `InvalidRequest`.

mod api;
pub mod assignor;
mod classic;
mod coordinator;
mod error;
mod group;
mod heartbeat;
mod member;
mod offsets;
mod reconcile;
mod records;
mod replay;
mod transactions;
mod validate;

pub use api::{
    CommittedOffset, CoordinatorConfig, GroupDescription, GroupKind, GroupListing, GroupState,
    HeartbeatRequest, HeartbeatResponse, MemberDescription, Record, TopicPartitions, TopicSource,
};
pub use assignor::Assignor;
pub use classic::api::{ClassicAnswer, JoinRequest, JoinResponse, JoinedMember, SyncRequest, SyncResponse};
pub use coordinator::Coordinator;
pub use error::GroupError;
pub use transactions::{
    TXN_GROUPS_MAX, TXN_PARTITIONS_MAX, TXN_TIMEOUT_MS_MAX, TxnEnd, TxnError, TxnInit, TxnPhase, TxnState,
};
pub use validate::group_id as check_group_id;

/// The longest group id, in bytes.
pub const GROUP_ID_BYTES_MAX: usize = 249;
/// The longest member id, in bytes.
pub const MEMBER_ID_BYTES_MAX: usize = 64;
/// The longest prefix of the member ids a coordinator makes, in bytes.
pub const MEMBER_ID_PREFIX_BYTES_MAX: usize = 32;
/// The longest instance id, in bytes.
pub const INSTANCE_ID_BYTES_MAX: usize = 249;
/// The longest topic name, in bytes.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// The longest offset metadata, in bytes.
pub const METADATA_BYTES_MAX: usize = 4096;
/// The most topics in one subscription.
pub const SUBSCRIPTION_TOPICS_MAX: usize = 1000;
/// The most offsets in one commit.
pub const COMMIT_OFFSETS_MAX: usize = 10_000;
/// The most committed offsets one group keeps.
pub const GROUP_OFFSETS_MAX: usize = 100_000;
/// The most groups one coordinator keeps.
pub const COORDINATOR_GROUPS_MAX: usize = 100_000;
/// The most protocols one classic join lists.
pub const CLASSIC_PROTOCOLS_MAX: usize = 64;
/// The longest classic protocol type or protocol name, in bytes.
pub const PROTOCOL_NAME_BYTES_MAX: usize = 255;
/// The longest client id or client host of a classic member, in bytes.
pub const CLIENT_ID_BYTES_MAX: usize = 255;
/// The most protocol metadata one classic join carries, all its protocols together, in bytes.
pub const CLASSIC_METADATA_BYTES_MAX: usize = 1 << 20;
/// The longest assignment a classic leader gives one member, in bytes.
pub const CLASSIC_ASSIGNMENT_BYTES_MAX: usize = 1 << 20;

//! Replication: the ids that name nodes, shards and partitions, the replica state machine and
//! the controller's per-partition decisions. Sans-IO, in the style of quinn-proto: nothing here
//! touches a file, a socket or a clock; callers pass `now_ms` and messages in (`handle_*`,
//! `tick`) and act on what comes out (`poll_log_op`, `poll_output`; the controller's
//! `poll_record`, every committed change to make durable, and `poll_update`, each partition's
//! newest state to send; callers drain both after every call), so the same
//! code runs in a node and in the deterministic simulator (`weir-sim`).
//!
//! Weir replicates as Kafka does since KIP-101/279/841/966: followers pull from the leader,
//! the leader tracks the in-sync replicas (ISR), leader epochs fence deposed leaders and let a
//! follower find where its log diverged. One difference: a replica counts towards the high
//! watermark only once its copy is durable (the follower's fetch reports its durable end; the
//! leader's own durable end counts too), so an acknowledged acks=all batch survives every replica
//! crashing at once, and a restarted replica keeps its place in the ISR.
//!
//! ```text
//!  controller (controller.rs, election.rs)        replicas (replica.rs, leader.rs, follower.rs)
//!  ──────────────────────────────────────         ──────────────────────────────────────────────
//!  heartbeats ──▶ sessions; fence on timeout      PartitionState ──▶ Offline │ Leader │ Follower
//!  fence ──▶ ISR − n (below min: n ▶ ELR)         Leader:   BeginEpoch, then AppendProduce, Flush;
//!  leader fenced/restarted ──▶ election:                    Fetch ──▶ Records | Diverging | Refused;
//!     ISR, else ELR, else (unclean) any                     HW = min durable end over the ISR
//!  AlterPartition(leader, epochs, ISR) ──▶                  (while |ISR| ≥ min); AlterPartition
//!     accepted (partition epoch + 1) or refused   Follower: Fetch(offset, last epoch, durable)
//!  every change ──▶ PartitionState to replicas              Records ──▶ AppendFetched, Flush
//!                                                           Diverging ──▶ Truncate | StartOver
//! ```
//!
//! Messages: [`FetchRequest`] and [`FetchAnswer`] between replicas; [`PartitionState`] and
//! [`AlterPartition`] between replicas and the controller; [`LogOp`] and [`LogEvent`] between a
//! replica and its log.
//!
//! Invariants (asserted here where a single state machine can see them, and checked by the
//! simulator over the whole cluster after every step; see `sim/src/cluster/checkers.rs`):
//! 1. An acknowledged acks=all batch stays at its offset with its CRC on the leader and every
//!    ISR member, forever.
//! 2. Two replicas holding a batch at the same (offset, epoch) hold the same log up to it.
//! 3. `log_start ≤ high watermark ≤ log end` on every replica ([`ReplicaState`]); a leader's
//!    high watermark is never above the durable end of an ISR member; what was below a high
//!    watermark is never truncated or exposed differently; consumers read only below it.
//! 4. Leader and partition epochs only grow; one leader per epoch.
//! 5. The leader is in the ISR, the ISR and ELR within the replicas and disjoint; a new leader
//!    comes from the ISR, or the ELR, never elsewhere unless unclean election is allowed.
//! 6. A log's offsets are dense and its epochs never go back.

pub mod config;
pub mod controller;
pub mod election;
pub mod error;
mod follower;
pub mod ids;
mod leader;
pub mod log_ops;
pub mod messages;
pub mod mutation;
pub mod replica;
pub mod replica_state;

pub use config::ReplicaConfig;
pub use controller::{AlterPartition, Controller, ControllerConfig, ControllerState, PartitionState};
pub use error::{ControllerError, ReplicaError};
pub use follower::AnswerVerdict;
pub use ids::{NodeId, PartitionId, ReplicaAddr, ShardId};
pub use log_ops::{AppendedRange, LogEvent, LogFailure, LogOp};
pub use messages::{Acks, FetchAnswer, FetchBody, FetchRefusal, FetchRequest};
pub use replica::{Output, Recovered, Replica};
pub use replica_state::ReplicaState;

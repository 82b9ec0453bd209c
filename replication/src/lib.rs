//! Replication: the ids that name nodes, shards and partitions, and the replica state machines.
//! Sans-IO: nothing here touches a file, a socket or a clock; callers pass `now` and bytes in and
//! act on what comes out, so the same code runs in a node and in a deterministic simulator.

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

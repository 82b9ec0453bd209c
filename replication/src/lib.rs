//! Replication: the ids that name nodes, shards and partitions, and the replica state machines.
//! Sans-IO: nothing here touches a file, a socket or a clock; callers pass `now` and bytes in and
//! act on what comes out, so the same code runs in a node and in a deterministic simulator.

pub mod controller;
pub mod election;
pub mod error;
pub mod ids;
pub mod replica_state;

pub use controller::{AlterPartition, Controller, ControllerConfig, ControllerState, PartitionState};
pub use error::ControllerError;
pub use ids::{NodeId, PartitionId, ReplicaAddr, ShardId};
pub use replica_state::ReplicaState;

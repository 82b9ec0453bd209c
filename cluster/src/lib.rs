//! The control plane of a Weir cluster (see `docs/cluster.md`): the cluster metadata as a
//! deterministic state machine ([`meta`]), replicated between nodes with Raft, and the
//! controller that runs on the Raft leader.

pub mod error;
pub mod meta;
pub mod tls;

pub use error::{ControlError, MetaError};
pub use meta::{ClusterMeta, MetaCommand, NodeInfo, PartitionEntry, TopicEntry};

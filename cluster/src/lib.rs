//! The control plane of a Weir cluster (see `docs/cluster.md`): the cluster metadata as a
//! deterministic state machine ([`meta`]), replicated between nodes with Raft, and the
//! controller that runs on the Raft leader.

extern crate tokio_rt as tokio;

pub mod acl;
pub mod blank;
pub mod control_plane;
pub mod controller_host;
pub mod durable;
pub mod error;
pub mod log_store;
pub mod meta;
pub mod network;
pub mod placement;
pub mod rpc;
pub mod state_machine;
pub mod tls;
pub mod types;

pub use control_plane::{ControlConfig, ControlHandle, start};
pub use error::{ControlError, MetaError};
pub use meta::{ClusterMeta, MetaCommand, NodeInfo, PartitionEntry, TopicEntry};
pub use rpc::{ClusterStatus, CreateTopic, NodeStatus};

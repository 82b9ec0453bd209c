//! Deterministic simulation of Weir's data path (TigerBeetle's VOPR, FoundationDB's simulator):
//! the node's own partition and service code, on in-memory disks that crash and fail like real
//! ones, over an in-memory bus, on one thread with simulated time. A run is a function of its
//! seed: the same seed replays the same run, step for step.

pub mod cluster;
pub mod node;
pub mod runtime;

pub use node::SimNode;
pub use runtime::SimRuntime;

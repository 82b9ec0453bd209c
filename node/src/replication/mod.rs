//! Replication between nodes, shard to shard (`docs/cluster.md`, "Data replication").
//!
//! - [`apply`]: each shard follows the control plane's `ClusterMeta` (only the newest matters):
//!   it opens the replicas it hosts, hands every partition state to its replica, and closes
//!   (and deletes) replicas no longer assigned to it.
//! - [`serve`]: a leader's shard answers `ReplicaFetch` through its replicas (`handle_fetch`),
//!   with the batches read from the log, the same bytes as on disk.
//! - [`fetcher`]: followers pull. Per (this shard, leader node's shard) one QUIC connection, made
//!   with the shard's own `quic_native` driver, and one stream; a `ReplicaFetch` carries every
//!   partition's `FetchRequest` for that leader shard. Answers go back to the replicas
//!   (`handle_fetch_answer`), ISR changes to the control link, both on the shard's thread.
//! - [`fetched`]: what a follower checks of an answer's batches before its replica sees them.
//! - [`wire`]: the `ReplicaFetch` encoding (api key 100).
//! - [`throttle`]: the shard's catch-up budget, `replication_catchup_bytes_per_s_max`.

pub mod apply;
pub mod fetched;
pub mod fetcher;
pub mod serve;
pub mod throttle;
pub mod wire;

//! The Weir node as a library: what the `weir` binary runs, and what a program that embeds a
//! node (`weir-perf --embedded`) starts with [`server::run`].

pub mod bootstrap;
pub mod bus;
pub mod cleaner;
pub mod cli;
pub mod cli_cluster;
pub mod cli_describe;
pub mod cli_units;
pub mod cluster_ca;
pub mod cluster_tls;
pub mod config;
pub mod connection;
mod connection_limits;
pub mod control;
pub mod control_link;
pub mod core;
pub mod disk;
pub mod fatal;
mod frame_reader;
pub mod frontend;
pub mod metadata;
pub mod partition;
pub mod peer;
pub mod placement;
pub mod producer_ids;
pub mod quic_native;
mod recv_buffers;
pub mod replica_driver;
pub mod replication;
mod request_memory;
pub mod runtime;
pub mod server;
pub mod service;
pub mod shard;
pub mod stats;
pub mod tls;

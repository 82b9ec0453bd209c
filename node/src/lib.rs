//! The Weir node as a library: what the `weir` binary runs, and what a program that embeds a
//! node (`weir-perf --embedded`) starts with [`server::run`].

pub mod cli;
pub mod config;
pub mod fatal;
mod handler;
mod metadata;
mod partition;
mod placement;
pub mod quic_native;
mod recv_buffers;
pub mod server;
mod shard;
mod stats;
pub mod tls;

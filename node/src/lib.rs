//! The Weir node as a library: what the `weir` binary runs, and what a program that embeds a
//! node (`weir-perf --embedded`) starts with [`server::run`].

pub mod cli;
pub mod config;
mod connection_limits;
pub mod fatal;
mod frame_reader;
mod handler;
mod metadata;
mod partition;
pub mod quic_native;
mod recv_buffers;
mod request_memory;
pub mod server;
mod shard;
mod stats;
pub mod tls;

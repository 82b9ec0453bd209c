//! `weir-perf`, the load and latency harness: workloads against a node (or one it embeds), the
//! raw disk and network baselines measured in the same run, and the reports and plots.

pub mod baseline;
pub mod embedded;
pub mod latency;
pub mod partitions;
pub mod plot;
pub mod rate;
pub mod report;
pub mod span;
pub mod workload;

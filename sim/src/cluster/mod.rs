//! A deterministic simulation of replication (TigerBeetle's VOPR, FoundationDB's simulator):
//! three replicas of a partition, each a [`weir_replication::Replica`] over a real
//! [`weir_log::PartitionLog`] on an in-memory disk, the sans-IO controller, producers and a
//! consumer, on a simulated network and clock. One seed decides everything, through a separate
//! random stream per concern; a failure names the seed and the command that replays it.
//!
//! A run: 4,000 steps of 1 ms with faults, then every fault heals and the cluster must
//! converge (every log equal, high watermark = log end, the ISR full) within a bound. The
//! invariants are listed in [`checkers`].

pub mod checkers;
pub mod clients;
pub mod controller_host;
pub mod data_node;
pub mod faults;
pub mod model;
pub mod msg;
pub mod network;
pub mod rng;
pub mod store;
pub mod world;

pub use world::{Failure, RunLimits, RunStats};

/// Runs one seed, counting a panic (a broken assertion in the state machines or the log) as a
/// failure of that seed.
pub fn run_seed(seed: u64, limits: RunLimits) -> Result<RunStats, Failure> {
    match std::panic::catch_unwind(|| world::run(seed, limits)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(Failure { seed, step: world::STEP.get(), what: format!("panic: {what}") })
        }
    }
}

//! `weir-sim`: runs the replication simulation for one seed (`--seed N`, to replay a failure) or
//! sweeps many (`--seeds N`), and reports what the runs did.

use clap::Parser;
use std::time::Instant;
use weir_sim::cluster::{RunLimits, RunStats, run_seed};

#[derive(Debug, Parser)]
#[command(about = "Deterministic simulation of Weir's replication")]
struct Args {
    /// Replays one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Sweeps this many seeds, from `--first`.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed of a sweep.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Steps (1 ms each) with faults, per run.
    #[arg(long, default_value_t = RunLimits::default().fault_steps)]
    fault_steps: u64,
    /// Switches on a deliberate bug (built with `--features mutations`): skip-truncation,
    /// high-watermark-from-leader-only, ack-before-durable, elect-outside-isr, accept-stale-epoch.
    #[arg(long)]
    mutation: Option<String>,
    /// Stops a sweep at the first failure.
    #[arg(long)]
    fail_fast: bool,
}

fn main() {
    let args = Args::parse();
    set_mutation(args.mutation.as_deref());
    let limits = RunLimits { fault_steps: args.fault_steps, ..RunLimits::default() };
    // Panics are reported as failures of their seed; the default hook's output would repeat them.
    std::panic::set_hook(Box::new(|_| {}));
    let seeds = match args.seed {
        Some(s) => s..s + 1,
        None => args.first..args.first + args.seeds,
    };
    let started = Instant::now();
    let (mut total, mut failed) = (RunStats::default(), 0u64);
    for seed in seeds.clone() {
        match run_seed(seed, limits) {
            Ok(s) => add(&mut total, &s),
            Err(f) => {
                failed += 1;
                println!("{f}");
                if args.fail_fast {
                    break;
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} seeds, {failed} failed, in {secs:.1} s ({:.0} steps/s): {} steps, {} crashes, {} partitions, \
         {} elections, {} truncations, {} controller failovers, {} preferred-leader elections, {} acked batches, {} consumed, \
         {} appends refused by a full disk, {} logs reopened after a failed sync, {} bit flips on the wire",
        seeds.end - seeds.start,
        total.steps as f64 / secs,
        total.steps,
        total.crashes,
        total.partitions,
        total.elections,
        total.truncations,
        total.failovers,
        total.preferred_elections,
        total.acked_batches,
        total.consumed_batches,
        total.disk_full_refusals,
        total.log_reopens,
        total.bit_flips,
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

fn add(t: &mut RunStats, s: &RunStats) {
    t.steps += s.steps;
    t.crashes += s.crashes;
    t.partitions += s.partitions;
    t.elections += s.elections;
    t.truncations += s.truncations;
    t.acked_batches += s.acked_batches;
    t.failovers += s.failovers;
    t.preferred_elections += s.preferred_elections;
    t.consumed_batches += s.consumed_batches;
    t.disk_full_refusals += s.disk_full_refusals;
    t.log_reopens += s.log_reopens;
    t.bit_flips += s.bit_flips;
}

#[cfg(feature = "mutations")]
fn set_mutation(name: Option<&str>) {
    use weir_replication::mutation::{Mutation, set};
    let Some(name) = name else { return };
    let m = Mutation::ALL.into_iter().find(|m| m.name() == name);
    let m = m.unwrap_or_else(|| panic!("unknown mutation {name}"));
    set(Some(m));
}

#[cfg(not(feature = "mutations"))]
fn set_mutation(name: Option<&str>) {
    if name.is_some() {
        eprintln!("weir-sim: --mutation needs a build with --features mutations");
        std::process::exit(2);
    }
}

//! The simulator finds bugs: each deliberate mutation of the replication state machines is
//! caught by a sweep within a stated number of seeds.

use weir_replication::mutation::{self, Mutation};
use weir_sim::cluster::{RunLimits, run_seed};

/// The first seed below `within` that fails with `m` switched on, and what it reported.
fn first_failure(m: Mutation, within: u64) -> Option<(u64, String)> {
    mutation::set(Some(m));
    let found = (0..within).find_map(|s| run_seed(s, RunLimits::default()).err().map(|f| (s, f.what)));
    mutation::set(None);
    found
}

fn caught(m: Mutation, within: u64, by: &[&str]) {
    // A caught mutation often panics inside a state machine; the report says which.
    std::panic::set_hook(Box::new(|_| {}));
    let Some((seed, what)) = first_failure(m, within) else {
        panic!("{} survived {within} seeds", m.name());
    };
    assert!(by.iter().any(|b| what.contains(b)), "{} caught by seed {seed}, but by: {what}", m.name());
}

#[test]
fn skipping_truncation_on_a_diverging_epoch_is_caught() {
    caught(Mutation::SkipTruncation, 20, &["invariant", "liveness"]);
}

#[test]
fn a_high_watermark_from_the_leader_alone_is_caught() {
    caught(Mutation::HighWatermarkFromLeaderOnly, 20, &["`high-watermark`"]);
}

#[test]
fn acknowledging_before_the_follower_is_durable_is_caught() {
    caught(Mutation::AckBeforeDurable, 20, &["`high-watermark`", "`acked-durable`"]);
}

#[test]
fn electing_outside_the_isr_is_caught() {
    caught(Mutation::ElectOutsideIsr, 40, &["`election`"]);
}

#[test]
fn accepting_a_stale_epoch_is_caught() {
    caught(Mutation::AcceptStaleEpoch, 60, &["epoch went back", "`epochs`"]);
}

#[test]
fn without_a_mutation_those_seeds_pass() {
    for s in 0..40 {
        if let Err(f) = run_seed(s, RunLimits::default()) {
            panic!("{f}");
        }
    }
}

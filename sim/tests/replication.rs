//! The replication simulator's seeds: sweeps that must hold every invariant, the seeds that
//! once failed (each a bug it found), and replay.

use weir_sim::cluster::{RunLimits, run_seed};

/// Runs `seeds` and fails with every failure's report (seed, step, invariant, replay command).
fn sweep(seeds: std::ops::Range<u64>) {
    let failures: Vec<String> =
        seeds.filter_map(|s| run_seed(s, RunLimits::default()).err()).map(|f| f.to_string()).collect();
    assert!(failures.is_empty(), "{} seeds failed:\n{}", failures.len(), failures.join("\n"));
}

// 4,000 seeds in four parts, so the test runner spreads them over the cores.
#[test]
fn seeds_0_to_999_hold_every_invariant() {
    sweep(0..1_000);
}

#[test]
fn seeds_1000_to_1999_hold_every_invariant() {
    sweep(1_000..2_000);
}

#[test]
fn seeds_2000_to_2999_hold_every_invariant() {
    sweep(2_000..3_000);
}

#[test]
fn seeds_3000_to_3999_hold_every_invariant() {
    sweep(3_000..4_000);
}

/// Every seed that ever failed, with the bug it found. They run in the sweeps too; listed here
/// so that a change of the sweeps' range keeps them.
const REGRESSIONS: &[(u64, &str)] = &[
    (
        85,
        "an epochless fetch from a log retention emptied was answered diverging, dropping an ISR member to 0",
    ),
    (87, "an answer to an earlier ISR proposal left the current one waiting for ever"),
    (
        102,
        "a refused duplicate of an accepted ISR proposal made the leader stop counting the follower it added",
    ),
    (292, "an epoch-cache slot padded to its block by a crash before its trim was read as lost"),
    (
        433,
        "a replica that began an epoch and wrote nothing refused an older epoch's leader's batches for ever",
    ),
    (1147, "a refused ISR proposal, re-sent, was accepted after the leader stopped counting the follower"),
    (1519, "a follower exposed a high watermark over offsets of another epoch before truncating them"),
    (1646, "an append of a replica's earlier leadership completed during a later one (a panic)"),
    (137, "time retention emptied a follower's log, which then fetched with no epoch and was cut to 0"),
    (1677, "a start-over interrupted by a failed sync left a log recovery refused to open"),
    (
        2563,
        "a follower in the ISR starting over at its log end was cut to its start first; a crash left it empty",
    ),
    (16003, "the checker looked up a batch appended and cut again in one step (a simulator bug)"),
    (30363, "a cut below a follower's log start (its leader's log starts lower) broke an assertion"),
    (36194, "a restarted replica took a state sent before its restart and led its old epoch again"),
    (65281, "a leader elected mid-append answered a fetch from its log before the append landed"),
    (72428, "a restarted replica led its old epoch again: its high watermark passed an ISR member's copy"),
];

#[test]
fn seeds_that_found_bugs_pass() {
    for &(seed, bug) in REGRESSIONS {
        if let Err(f) = run_seed(seed, RunLimits::default()) {
            panic!("regression ({bug}):\n{f}");
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [7, 1519] {
        let a = run_seed(seed, RunLimits::default()).expect("passes");
        let b = run_seed(seed, RunLimits::default()).expect("passes");
        assert_eq!(a, b, "seed {seed} ran differently twice");
        assert!(a.acked_batches > 0 && a.elections > 0, "the run did something: {a:?}");
    }
}

/// The simulated controller moves leaders back to the preferred replica (rule 9), so the sweeps
/// check those moves against every invariant too.
#[test]
fn sweeps_move_leaders_back_to_the_preferred_replica() {
    let moved: u64 =
        (0..200).filter_map(|s| run_seed(s, RunLimits::default()).ok()).map(|r| r.preferred_elections).sum();
    assert!(moved > 0, "no preferred-leader election in 200 seeds");
}

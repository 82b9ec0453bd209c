//! The simulation's randomness: one seed, split into a stream per concern.
//!
//! Each stream is seeded from the run's seed and its own salt, so drawing more numbers for one
//! concern (a new kind of network fault, say) leaves the others' draws as they were: a change
//! in one part of the simulator does not reshuffle every seed's run.

use fastrand::Rng;

/// SplitMix64's finaliser: spreads a seed and a salt over all 64 bits.
fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The independent random streams of one run.
#[derive(Debug)]
pub struct Streams {
    /// Delays, drops, duplicates and bit flips of messages.
    pub network: Rng,
    /// Latency of log operations, and torn-write patterns at crashes.
    pub disk: Rng,
    /// When producers and consumers act, and what they send.
    pub workload: Rng,
    /// Which fault strikes when: crashes, partitions, a full disk, controller failover.
    pub faults: Rng,
    /// The run's shape: how many steps, which limits.
    pub shape: Rng,
}

impl Streams {
    pub fn new(seed: u64) -> Self {
        let stream = |salt: &str| {
            let salt = salt.bytes().fold(0u64, |h, b| h.rotate_left(8) ^ u64::from(b));
            Rng::with_seed(mix(seed, salt))
        };
        Self {
            network: stream("network"),
            disk: stream("disk"),
            workload: stream("workload"),
            faults: stream("faults"),
            shape: stream("shape"),
        }
    }
}

/// True with probability `per_million` / 1,000,000.
pub fn chance(rng: &mut Rng, per_million: u32) -> bool {
    rng.u32(0..1_000_000) < per_million
}

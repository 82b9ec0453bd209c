//! Deliberate bugs, for showing that the simulator finds them (mutation testing).
//!
//! Built only with the `mutations` feature; without it [`active`] is a constant `false` and the
//! mutated branches compile away. With it, a test switches one mutation on for the current
//! thread (`set`), runs seeds, and asserts that an invariant breaks. A serving build never has
//! the feature.

/// One deliberate bug in the replication state machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// A follower answered with a diverging epoch keeps its log and carries on fetching as if
    /// the logs agreed.
    SkipTruncation,
    /// The leader moves its high watermark to its own log end, ignoring the ISR.
    HighWatermarkFromLeaderOnly,
    /// A follower reports its log end as durable before it has synced it.
    AckBeforeDurable,
    /// The controller elects any live replica, in the ISR or not.
    ElectOutsideIsr,
    /// A replica adopts a partition state with an older leader epoch than its own.
    AcceptStaleEpoch,
}

impl Mutation {
    pub const ALL: [Mutation; 5] = [
        Mutation::SkipTruncation,
        Mutation::HighWatermarkFromLeaderOnly,
        Mutation::AckBeforeDurable,
        Mutation::ElectOutsideIsr,
        Mutation::AcceptStaleEpoch,
    ];

    /// The mutation's name on a command line.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::SkipTruncation => "skip-truncation",
            Mutation::HighWatermarkFromLeaderOnly => "high-watermark-from-leader-only",
            Mutation::AckBeforeDurable => "ack-before-durable",
            Mutation::ElectOutsideIsr => "elect-outside-isr",
            Mutation::AcceptStaleEpoch => "accept-stale-epoch",
        }
    }
}

#[cfg(feature = "mutations")]
std::thread_local! {
    static ACTIVE: std::cell::Cell<Option<Mutation>> = const { std::cell::Cell::new(None) };
}

/// Switches `m` on (or every mutation off, with `None`) for this thread.
#[cfg(feature = "mutations")]
pub fn set(m: Option<Mutation>) {
    ACTIVE.with(|a| a.set(m));
}

/// Whether `m` is switched on for this thread.
#[cfg(feature = "mutations")]
pub fn active(m: Mutation) -> bool {
    ACTIVE.with(|a| a.get() == Some(m))
}

/// Always false: mutations are compiled out.
#[cfg(not(feature = "mutations"))]
#[inline(always)]
pub fn active(_: Mutation) -> bool {
    false
}

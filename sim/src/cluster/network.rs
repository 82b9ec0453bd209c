//! The simulated network between nodes, the controller and clients: every message is delayed,
//! and may be dropped, duplicated or reordered (by its delay), and links may be cut one way or
//! both ways until healed.

use super::rng::chance;
use fastrand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use weir_replication::NodeId;

/// How unkind the network is. Probabilities are per million messages.
#[derive(Debug, Clone, Copy)]
pub struct NetworkConfig {
    pub delay_min_ms: u64,
    pub delay_max_ms: u64,
    pub drop_per_million: u32,
    pub duplicate_per_million: u32,
}

/// A message on its way.
#[derive(Debug, Clone)]
pub struct Envelope<M> {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: M,
}

/// Messages in flight, by delivery time. Bounded: a simulation that floods it is a bug.
#[derive(Debug)]
pub struct Network<M> {
    pub config: NetworkConfig,
    in_flight: BTreeMap<(u64, u64), Envelope<M>>,
    seq: u64,
    /// Links cut: messages from `.0` to `.1` are dropped.
    cut: BTreeSet<(NodeId, NodeId)>,
    pub sent: u64,
    pub dropped: u64,
}

/// The most messages in flight at once.
const IN_FLIGHT_MAX: usize = 100_000;

impl<M: Clone> Network<M> {
    pub fn new(config: NetworkConfig) -> Self {
        Self { config, in_flight: BTreeMap::new(), seq: 0, cut: BTreeSet::new(), sent: 0, dropped: 0 }
    }

    /// Sends `msg`: delivered after a random delay, unless dropped or the link is cut (checked
    /// at delivery too: a cut also loses what was in flight on it).
    pub fn send(&mut self, rng: &mut Rng, now_ms: u64, from: NodeId, to: NodeId, msg: M) {
        self.sent += 1;
        if self.cut.contains(&(from, to)) || chance(rng, self.config.drop_per_million) {
            self.dropped += 1;
            return;
        }
        let copies = if chance(rng, self.config.duplicate_per_million) { 2 } else { 1 };
        for _ in 0..copies {
            let at = now_ms + rng.u64(self.config.delay_min_ms..=self.config.delay_max_ms);
            self.seq += 1;
            self.in_flight.insert((at, self.seq), Envelope { from, to, msg: msg.clone() });
        }
        assert!(self.in_flight.len() <= IN_FLIGHT_MAX, "the simulated network is flooded");
    }

    /// The next message due by `now_ms`, in delivery order.
    pub fn poll(&mut self, now_ms: u64) -> Option<Envelope<M>> {
        loop {
            let entry = self.in_flight.first_entry().filter(|e| e.key().0 <= now_ms)?;
            let env = entry.remove();
            if self.cut.contains(&(env.from, env.to)) {
                self.dropped += 1;
                continue;
            }
            return Some(env);
        }
    }

    /// Cuts every link from a member of `a` to a member of `b`, and back unless `one_way`.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId], one_way: bool) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                if !one_way {
                    self.cut.insert((y, x));
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }
}

//! The workload: producers sending batches with acks=all or acks=leader to whom they take for
//! the leader, and a consumer reading committed records from the leader.

use super::data_node::Outbox;
use super::msg::{Msg, ProduceError, payload};
use super::rng::chance;
use fastrand::Rng;
use weir_log::batch::{BatchBuilder, ProducerStamp, Record};
use weir_replication::{Acks, AppendedRange, NodeId};

/// Clients' addresses start here.
pub const CLIENT_BASE: u32 = 2_000;

/// A produce sent and not answered.
#[derive(Debug, Clone, Copy)]
pub struct InFlight {
    pub produce: u64,
    pub acks: Acks,
    pub crc: u32,
    sent_ms: u64,
}

/// One producer: at most one produce in flight; a new batch (new values) after every outcome,
/// so a retry never duplicates a record.
#[derive(Debug)]
pub struct Producer {
    pub id: NodeId,
    seq: u64,
    pub in_flight: Option<InFlight>,
    /// Whom this producer takes for the leader: metadata refreshed only after a failure, so
    /// a deposed leader that still believes it leads gets produces, as in a real cluster.
    leader_hint: Option<NodeId>,
}

/// A produce unanswered for this long is given up (its outcome unknown).
const PRODUCE_TIMEOUT_MS: u64 = 3_000;

/// What a producer learned from an answer.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub range: AppendedRange,
    pub acks: Acks,
    pub crc: u32,
}

impl Producer {
    pub fn new(index: u32) -> Self {
        Self { id: NodeId(CLIENT_BASE + index), seq: 0, in_flight: None, leader_hint: None }
    }

    /// Sends a new batch to the leader it knows now and then; `metadata` is the controller's
    /// current leader, asked only when the last produce failed or timed out.
    pub fn step(&mut self, now_ms: u64, rng: &mut Rng, metadata: Option<NodeId>, out: &mut Outbox) {
        if self.in_flight.is_some_and(|f| now_ms - f.sent_ms >= PRODUCE_TIMEOUT_MS) {
            self.in_flight = None;
            self.leader_hint = None;
        }
        let Some(leader) = self.leader_hint.or(metadata) else { return };
        self.leader_hint = Some(leader);
        if self.in_flight.is_some() || !chance(rng, 100_000) {
            return;
        }
        self.seq += 1;
        let produce = (u64::from(self.id.0) << 32) | self.seq;
        let mut b = BatchBuilder::new(16 << 10);
        for i in 0..rng.usize(1..=4) {
            let value = format!("{}-{}-{i}-{}", self.id.0, self.seq, "x".repeat(rng.usize(0..1500)));
            let record =
                Record { key: None, value: Some(value.as_bytes()), headers: &[], timestamp: now_ms as i64 };
            b.push(&record).expect("a small record fits");
        }
        let batch = b.seal(ProducerStamp::default());
        let acks = if chance(rng, 750_000) { Acks::All } else { Acks::Leader };
        let crc = batch.header().crc;
        self.in_flight = Some(InFlight { produce, acks, crc, sent_ms: now_ms });
        out.push((leader, Msg::Produce { produce, acks, batch: payload(batch.as_bytes()) }));
    }

    /// An answer came: `Some` if it acknowledged the batch in flight.
    pub fn answer(&mut self, produce: u64, result: Result<AppendedRange, ProduceError>) -> Option<Acked> {
        let f = self.in_flight.filter(|f| f.produce == produce)?;
        self.in_flight = None;
        if result.is_err() {
            self.leader_hint = None;
        }
        result.ok().map(|range| Acked { range, acks: f.acks, crc: f.crc })
    }
}

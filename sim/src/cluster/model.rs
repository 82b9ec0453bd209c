//! A model of one log: its batches' offsets, epochs and CRCs, with a running sum of their hashes,
//! so the checkers compare any two stretches of logs without reading them, also after retention
//! moved a log's start.

/// One batch as the checkers see it. The CRC covers the records, not the offsets or epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub base: u64,
    pub end: u64,
    pub epoch: u32,
    pub crc: u32,
}

/// The batches of one log in order, each with the sum of the hashes of every batch up to and
/// including it (since the model began: a difference of two sums hashes the batches between).
#[derive(Debug, Clone, Default)]
pub struct LogModel {
    start: u64,
    /// The sum before the first batch held.
    sum_before: u64,
    batches: Vec<(BatchMeta, u64)>,
}

fn hash(b: &BatchMeta) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for v in [b.base, b.end, u64::from(b.epoch), u64::from(b.crc)] {
        h = (h ^ v).wrapping_mul(0x100_0000_01B3).rotate_left(29);
    }
    h
}

impl LogModel {
    pub fn from_batches(start: u64, batches: &[BatchMeta]) -> Self {
        let mut m = Self { start, sum_before: 0, batches: Vec::with_capacity(batches.len()) };
        for b in batches {
            m.push(*b);
        }
        m
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn end(&self) -> u64 {
        self.batches.last().map_or(self.start, |(b, _)| b.end)
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Appends a batch. Offsets are dense and epochs never go back (invariant 6): a log that
    /// breaks this is a bug in the log or the replica.
    pub fn push(&mut self, b: BatchMeta) {
        let prev = self.batches.last();
        assert_eq!(b.base, self.end(), "offsets not dense: batch at {} after log end {}", b.base, self.end());
        assert!(b.end > b.base, "an empty batch at {}", b.base);
        if let Some((p, _)) = prev {
            assert!(
                b.epoch >= p.epoch,
                "epoch went back from {} to {} at offset {}",
                p.epoch,
                b.epoch,
                b.base
            );
        }
        let sum = prev.map_or(self.sum_before, |(_, s)| *s).wrapping_add(hash(&b));
        self.batches.push((b, sum));
    }

    /// Drops the batches at or after `end`, a batch boundary; a cut below the start empties the
    /// log, which starts at `end` from then on.
    pub fn truncate(&mut self, end: u64) {
        let keep = self.batches.partition_point(|(b, _)| b.base < end);
        self.batches.truncate(keep);
        self.start = self.start.min(end);
        assert_eq!(self.end(), end, "a cut lands on a batch boundary");
    }

    /// Drops the batches below `start`, a batch boundary (retention).
    pub fn advance_start(&mut self, start: u64) {
        let drop = self.batches.partition_point(|(b, _)| b.base < start);
        if drop > 0 {
            self.sum_before = self.batches[drop - 1].1;
        }
        self.batches.drain(..drop);
        self.start = self.start.max(start);
        assert!(
            self.batches.first().is_none_or(|(b, _)| b.base == self.start),
            "retention on a batch boundary"
        );
    }

    fn index(&self, base: u64) -> Option<usize> {
        let i = self.batches.partition_point(|(b, _)| b.base < base);
        self.batches.get(i).filter(|(b, _)| b.base == base).map(|_| i)
    }

    /// The batch starting at `base`.
    pub fn at(&self, base: u64) -> Option<BatchMeta> {
        self.index(base).map(|i| self.batches[i].0)
    }

    /// A hash of the batches from the one starting at `from` to the one starting at `to`, both
    /// included; `None` if no batch starts at either.
    pub fn stretch(&self, from: u64, to: u64) -> Option<u64> {
        let (i, j) = (self.index(from)?, self.index(to)?);
        let before = if i == 0 { self.sum_before } else { self.batches[i - 1].1 };
        Some(self.batches[j].1.wrapping_sub(before))
    }

    /// The base of the last batch, if any.
    pub fn last_base(&self) -> Option<u64> {
        self.batches.last().map(|(b, _)| b.base)
    }

    /// A hash of the whole log.
    pub fn hash(&self) -> u64 {
        self.batches.first().map_or(0, |(b, _)| {
            self.stretch(b.base, self.batches.last().expect("not empty").0.base).expect("held")
        })
    }

    pub fn batches(&self) -> impl Iterator<Item = &BatchMeta> {
        self.batches.iter().map(|(b, _)| b)
    }

    /// The batches with base in `[from, to)`.
    pub fn range(&self, from: u64, to: u64) -> impl Iterator<Item = &BatchMeta> {
        let i = self.batches.partition_point(|(b, _)| b.base < from);
        self.batches[i..].iter().map(|(b, _)| b).take_while(move |b| b.base < to)
    }
}

/// Whether two logs that both hold a batch at `base` agree from where both start up to it
/// (invariant 2's comparison).
pub fn agree_up_to(a: &LogModel, b: &LogModel, base: u64) -> bool {
    let from = a.start().max(b.start());
    if from > base {
        return true;
    }
    // Logs that agree have their batch boundaries in the same places: a missing boundary at
    // `from` in either is a disagreement.
    matches!((a.stretch(from, base), b.stretch(from, base)), (Some(x), Some(y)) if x == y)
}

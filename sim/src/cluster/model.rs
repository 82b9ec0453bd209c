//! A model of one log: its batches' offsets, epochs and CRCs, with a hash of every prefix, so
//! the checkers compare logs without reading them.

/// One batch as the checkers see it. The CRC covers the records, not the offsets or epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub base: u64,
    pub end: u64,
    pub epoch: u32,
    pub crc: u32,
}

/// The batches of one log in order, each with the hash of the log up to and including it.
#[derive(Debug, Clone, Default)]
pub struct LogModel {
    start: u64,
    batches: Vec<(BatchMeta, u64)>,
}

fn chain(prev: u64, b: &BatchMeta) -> u64 {
    let mut h = prev ^ 0x9E37_79B9_7F4A_7C15;
    for v in [b.base, b.end, u64::from(b.epoch), u64::from(b.crc)] {
        h = (h ^ v).wrapping_mul(0x100_0000_01B3).rotate_left(29);
    }
    h
}

impl LogModel {
    pub fn from_batches(start: u64, batches: &[BatchMeta]) -> Self {
        let mut m = Self { start, batches: Vec::with_capacity(batches.len()) };
        for b in batches {
            m.push(*b);
        }
        m
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

    /// The hash of the whole log.
    pub fn hash(&self) -> u64 {
        self.batches.last().map_or(0, |(_, h)| *h)
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
        let h = chain(prev.map_or(0, |(_, h)| *h), &b);
        self.batches.push((b, h));
    }

    /// Drops the batches at or after `end`, a batch boundary.
    pub fn truncate(&mut self, end: u64) {
        let keep = self.batches.partition_point(|(b, _)| b.base < end);
        self.batches.truncate(keep);
        assert_eq!(self.end(), end.max(self.start), "a cut lands on a batch boundary");
    }

    /// The batch starting at `base`, with its prefix hash.
    pub fn at(&self, base: u64) -> Option<(BatchMeta, u64)> {
        let i = self.batches.partition_point(|(b, _)| b.base < base);
        self.batches.get(i).filter(|(b, _)| b.base == base).copied()
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

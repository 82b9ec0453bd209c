//! Idempotent producers' state in one partition: per producer id, its epoch and the sequence
//! ranges and offsets of its last [`BATCHES_KEPT`] batches, as Kafka keeps them. A leader
//! checks a batch against it before appending: a retry of a batch already in the log is
//! recognised and answered with the offsets it got the first time, a sequence gap or an old
//! epoch is refused. Every replica updates it on every append (the leader's and the ones it
//! copies), so a new leader after a failover recognises retries of its predecessor's batches.
//!
//! Sans-IO: the log feeds it batch headers with the offsets they landed at, and cuts it when it
//! cuts itself. It is rebuilt from the log when the log opens.
//!
//! Sequences are those of Kafka: each record of a producer in a partition has the next one, the
//! first batch of an epoch starts at 0, and `i32::MAX` is followed by 0.

use crate::batch::BatchHeader;
use crate::batch::header::NO_PRODUCER_ID;
use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer: a retry of any of them is recognised. The SDK keeps at most
/// this many batches of a partition in flight.
pub const BATCHES_KEPT: usize = 5;

/// Producers remembered per partition, at most; past it, the one that appended least recently
/// is forgotten (its next batch is taken as from a producer never seen).
pub const PRODUCERS_MAX: usize = 10_000;

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSeq {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: u64,
    pub last_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    /// Oldest first, at most [`BATCHES_KEPT`].
    batches: VecDeque<BatchSeq>,
    /// The offset of the producer's latest batch or marker here: the least recent producer is
    /// forgotten first (not persisted; a restored producer counts from its batches).
    touched: u64,
}

/// What a leader does with a batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Append it: the next batch of its producer, the first of a new epoch, or of a producer
    /// not known here.
    Append,
    /// Already in the log at these offsets: answer with them, append nothing.
    Duplicate { base_offset: u64, last_offset: u64 },
}

/// Why a leader refuses a batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// A batch is missing before it (or it repeats part of one): the producer sends again
    /// what it has not had acknowledged, in order.
    #[error(
        "out of order sequence: producer {producer_id} epoch {epoch} expected sequence {expected}, got {actual}"
    )]
    OutOfOrder { producer_id: i64, epoch: i16, expected: i32, actual: i32 },
    /// The producer's epoch is older than one already appended: a stale retry.
    #[error("producer {producer_id} fenced: epoch {actual} is older than {current}")]
    Fenced { producer_id: i64, current: i16, actual: i16 },
    /// A new epoch must start at sequence 0.
    #[error("producer {producer_id} epoch {epoch} must start at sequence 0, not {actual}")]
    NewEpochNotAtZero { producer_id: i64, epoch: i16, actual: i32 },
    /// The partition knows nothing of the producer (its batches were deleted by retention or
    /// cut, or it was forgotten past `PRODUCERS_MAX`), and the batch does not start at
    /// sequence 0: the producer starts a new epoch (as Kafka's UNKNOWN_PRODUCER_ID).
    #[error("producer {producer_id} unknown to the partition; its batch starts at sequence {actual}, not 0")]
    UnknownProducer { producer_id: i64, actual: i32 },
}

/// The sequence after `seq`.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// The sequence of the last record of the batch `h`: its first plus its offset span, as Kafka
/// counts it, so a compacted batch (fewer records, the same span) keeps its sequences.
fn last_seq(h: &BatchHeader) -> i32 {
    ((i64::from(h.base_sequence) + i64::from(h.last_offset_delta)) % (i64::from(i32::MAX) + 1)) as i32
}

/// See the module documentation. Owned by the partition's log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerTable {
    producers: HashMap<i64, Entry>,
}

impl ProducerTable {
    /// What to do with a batch whose header is `h` (its producer id not [`NO_PRODUCER_ID`]).
    pub fn check(&self, h: &BatchHeader) -> Result<Verdict, SequenceError> {
        assert_ne!(h.producer_id, NO_PRODUCER_ID, "a batch of no producer has no sequence");
        let (producer_id, first, epoch) = (h.producer_id, h.base_sequence, h.producer_epoch);
        let Some(e) = self.producers.get(&h.producer_id) else {
            return match first {
                0 => Ok(Verdict::Append),
                actual => Err(SequenceError::UnknownProducer { producer_id, actual }),
            };
        };
        if epoch < e.epoch {
            return Err(SequenceError::Fenced { producer_id, current: e.epoch, actual: epoch });
        }
        if epoch > e.epoch {
            return match first {
                0 => Ok(Verdict::Append),
                actual => Err(SequenceError::NewEpochNotAtZero { producer_id, epoch, actual }),
            };
        }
        let last = last_seq(h);
        if let Some(b) = e.batches.iter().find(|b| b.first_seq == first && b.last_seq == last) {
            return Ok(Verdict::Duplicate { base_offset: b.base_offset, last_offset: b.last_offset });
        }
        // Known only by a transaction marker (or its batches cut): as a producer never seen.
        let Some(latest) = e.batches.back() else {
            return match first {
                0 => Ok(Verdict::Append),
                actual => Err(SequenceError::UnknownProducer { producer_id, actual }),
            };
        };
        let expected = next_seq(latest.last_seq);
        match first == expected {
            true => Ok(Verdict::Append),
            false => Err(SequenceError::OutOfOrder { producer_id, epoch, expected, actual: first }),
        }
    }

    /// Records a batch appended at `base_offset` (by this replica as leader, or copied from
    /// one): it becomes its producer's latest. Batches of no producer are ignored.
    pub fn on_append(&mut self, h: &BatchHeader, base_offset: u64) {
        if h.producer_id == NO_PRODUCER_ID {
            return;
        }
        let e = self.entry_of(h);
        e.touched = e.touched.max(base_offset);
        if h.is_control() {
            // A transaction marker has no sequence: the producer's go on after it. One of a
            // newer epoch (a transaction aborted by its coordinator) fences the older epoch,
            // here too if the producer wrote nothing here yet: a batch of the older epoch that
            // arrives after it is refused, not taken as from a producer never seen.
            if h.producer_epoch > e.epoch {
                e.epoch = h.producer_epoch;
                e.batches.clear();
            }
            return;
        }
        if h.producer_epoch != e.epoch {
            // A new epoch: its sequences start again, the old ones mean nothing now.
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if e.batches.len() == BATCHES_KEPT {
            e.batches.pop_front();
        }
        let last_offset = base_offset + u64::from(h.last_offset_delta);
        let (first_seq, last_seq) = (h.base_sequence, last_seq(h));
        e.batches.push_back(BatchSeq { first_seq, last_seq, base_offset, last_offset });
    }

    /// The entry of `h`'s producer, made (at `h`'s epoch, with no batch) if there is none; the
    /// least recent producer is forgotten first past [`PRODUCERS_MAX`].
    fn entry_of(&mut self, h: &BatchHeader) -> &mut Entry {
        if !self.producers.contains_key(&h.producer_id) && self.producers.len() >= PRODUCERS_MAX {
            self.forget_least_recent();
        }
        self.producers.entry(h.producer_id).or_insert(Entry {
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            touched: 0,
        })
    }

    fn forget_least_recent(&mut self) {
        let latest = |e: &Entry| e.batches.back().map_or(e.touched, |b| b.last_offset.max(e.touched));
        let oldest = self.producers.iter().min_by_key(|(_, e)| latest(e)).map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.producers.remove(&id);
        }
    }

    /// The log was cut to end at `offset`: batches at or past it are forgotten (a producer left
    /// with none is forgotten whole: its next batch is taken as from a producer never seen).
    pub fn truncate_from(&mut self, offset: u64) {
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.base_offset < offset);
            !e.batches.is_empty()
        });
    }

    /// The log was emptied.
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// The base offset of every producer's latest batch.
    pub(crate) fn latest_batch_bases(&self) -> std::collections::HashSet<u64> {
        self.producers.values().filter_map(|e| e.batches.back().map(|b| b.base_offset)).collect()
    }

    /// The batches remembered of `producer_id`, oldest first, and its epoch.
    pub fn producer(&self, producer_id: i64) -> Option<(i16, Vec<BatchSeq>)> {
        self.producers.get(&producer_id).map(|e| (e.epoch, e.batches.iter().copied().collect()))
    }

    /// Every producer with its epoch and batches, by id: what a snapshot saves.
    pub(crate) fn entries(&self) -> Vec<(i64, i16, Vec<BatchSeq>)> {
        let mut all: Vec<_> = self
            .producers
            .iter()
            .map(|(id, e)| (*id, e.epoch, e.batches.iter().copied().collect()))
            .collect();
        all.sort_unstable_by_key(|(id, _, _)| *id);
        all
    }

    /// Puts back a producer a snapshot saved (one without batches too: a transaction marker's
    /// epoch, which fences older ones).
    pub(crate) fn restore(&mut self, producer_id: i64, epoch: i16, batches: Vec<BatchSeq>) {
        let batches: VecDeque<BatchSeq> = batches.into_iter().rev().take(BATCHES_KEPT).rev().collect();
        let touched = batches.back().map_or(0, |b| b.last_offset);
        self.producers.insert(producer_id, Entry { epoch, batches, touched });
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, first_seq: i32, records: u32) -> BatchHeader {
        let mut b = crate::batch::BatchBuilder::new(1 << 16);
        b.push(&crate::batch::Record { key: None, value: Some(b"v"), headers: &[], timestamp: 1 }).unwrap();
        let mut h = b.seal(crate::batch::ProducerStamp::default()).header();
        h.producer_id = producer_id;
        h.producer_epoch = epoch;
        h.base_sequence = first_seq;
        h.record_count = records;
        h.last_offset_delta = records - 1;
        h
    }

    #[test]
    fn retries_are_recognised_and_gaps_and_old_epochs_refused() {
        let mut t = ProducerTable::default();
        let (a, b, c) = (header(7, 0, 0, 3), header(7, 0, 3, 2), header(7, 0, 5, 1));
        assert_eq!(t.check(&a), Ok(Verdict::Append));
        t.on_append(&a, 100);
        assert_eq!(t.check(&a), Ok(Verdict::Duplicate { base_offset: 100, last_offset: 102 }));
        assert!(matches!(t.check(&c), Err(SequenceError::OutOfOrder { expected: 3, actual: 5, .. })));
        assert_eq!(t.check(&b), Ok(Verdict::Append));
        t.on_append(&b, 103);
        assert_eq!(t.check(&a), Ok(Verdict::Duplicate { base_offset: 100, last_offset: 102 }));
        assert_eq!(t.check(&c), Ok(Verdict::Append));
        // A new epoch starts at 0; after it, the old epoch is fenced.
        assert!(matches!(t.check(&header(7, 1, 5, 1)), Err(SequenceError::NewEpochNotAtZero { .. })));
        t.on_append(&header(7, 1, 0, 1), 105);
        assert!(matches!(t.check(&c), Err(SequenceError::Fenced { current: 1, actual: 0, .. })));
        // A producer the partition does not know starts at 0 (in any epoch), or is told so.
        assert_eq!(t.check(&header(8, 3, 0, 1)), Ok(Verdict::Append));
        assert!(matches!(
            t.check(&header(8, 3, 41, 1)),
            Err(SequenceError::UnknownProducer { actual: 41, .. })
        ));
    }

    #[test]
    fn only_the_last_batches_are_kept_and_a_cut_forgets_what_it_removed() {
        let mut t = ProducerTable::default();
        for i in 0..8u32 {
            t.on_append(&header(1, 0, i as i32, 1), u64::from(i));
        }
        let (_, kept) = t.producer(1).unwrap();
        assert_eq!(kept.len(), BATCHES_KEPT);
        assert_eq!(kept[0].first_seq, 3);
        assert!(matches!(t.check(&header(1, 0, 2, 1)), Err(SequenceError::OutOfOrder { expected: 8, .. })));
        t.truncate_from(6);
        assert_eq!(t.producer(1).unwrap().1.last().unwrap().last_seq, 5);
        assert_eq!(t.check(&header(1, 0, 6, 1)), Ok(Verdict::Append), "the cut batch may come again");
        t.truncate_from(0);
        assert!(matches!(t.check(&header(1, 0, 6, 1)), Err(SequenceError::UnknownProducer { .. })));
        assert!(t.is_empty());
    }

    #[test]
    fn sequences_wrap_after_the_largest() {
        let mut t = ProducerTable::default();
        let h = header(1, 0, i32::MAX - 1, 3);
        t.on_append(&h, 0);
        assert_eq!(t.producer(1).unwrap().1[0].last_seq, 0);
        assert_eq!(t.check(&header(1, 0, 1, 1)), Ok(Verdict::Append));
        assert_eq!(t.check(&h), Ok(Verdict::Duplicate { base_offset: 0, last_offset: 2 }));
    }

    #[test]
    fn past_the_limit_the_least_recent_producer_is_forgotten() {
        let mut t = ProducerTable::default();
        for p in 0..PRODUCERS_MAX as i64 {
            t.on_append(&header(p, 0, 0, 1), p as u64);
        }
        t.on_append(&header(PRODUCERS_MAX as i64, 0, 0, 1), u64::MAX / 2);
        assert_eq!(t.len(), PRODUCERS_MAX);
        assert!(t.producer(0).is_none(), "the producer that appended least recently went");
        assert!(t.producer(1).is_some());
    }
}

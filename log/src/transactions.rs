//! Transactions in one partition: which producers have a transaction open here (from its first
//! batch to its marker), and which ended aborted, as Kafka's producer state and transaction
//! index keep them. A read-committed consumer reads up to the last stable offset (the first
//! offset of the oldest open transaction, or the high watermark) and is told the aborted
//! transactions in what it reads, so it drops their records.
//!
//! Sans-IO: the log feeds it every batch it appends, its own or copied; it is rebuilt from the
//! log (and the producers' snapshot) when the log opens and after a cut.

use crate::batch::BatchHeader;
use std::collections::{BTreeMap, VecDeque};

/// Aborted transactions remembered per partition, at most: past it the oldest are forgotten
/// (a read-committed consumer reading that far back then gets their records). Kafka keeps them
/// per segment, for as long as the segment; a partition that aborts this many transactions
/// within its retention is far from the workloads Weir's transactions are tested with.
pub const ABORTED_KEPT_MAX: usize = 100_000;

/// A transaction open in the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTxn {
    pub producer_epoch: i16,
    /// The offset of its first batch here.
    pub first_offset: u64,
}

/// A transaction that ended aborted: its records from `first_offset` to its marker at
/// `last_offset` are to be dropped by read-committed consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    pub last_offset: u64,
}

/// The open transactions by producer, and the aborted ones: what a snapshot holds.
pub type TxnParts = (Vec<(i64, OpenTxn)>, Vec<AbortedTxn>);

/// See the module documentation. Owned by the partition's log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TxnTable {
    open: BTreeMap<i64, OpenTxn>,
    /// By marker offset, oldest first.
    aborted: VecDeque<AbortedTxn>,
    /// Whether any transactional batch was seen: a cut must rebuild only such a table.
    seen: bool,
}

impl TxnTable {
    /// Records a batch appended at `base_offset`: a transactional batch opens its producer's
    /// transaction if none is open, a marker closes it (remembered if it aborts).
    pub fn on_append(&mut self, h: &BatchHeader, base_offset: u64) {
        if !h.is_transactional() {
            return;
        }
        self.seen = true;
        let producer_id = h.producer_id;
        if !h.is_control() {
            let txn = OpenTxn { producer_epoch: h.producer_epoch, first_offset: base_offset };
            self.open.entry(producer_id).or_insert(txn);
            return;
        }
        // A marker for a producer with nothing open here (a partition added to the transaction
        // but never written) ends nothing; nor does one of an older epoch than the transaction.
        match self.open.get(&producer_id) {
            Some(t) if t.producer_epoch <= h.producer_epoch => {}
            _ => return,
        }
        let txn = self.open.remove(&producer_id).expect("checked above");
        if !h.commits() {
            if self.aborted.len() == ABORTED_KEPT_MAX {
                self.aborted.pop_front();
            }
            let last_offset = base_offset;
            self.aborted.push_back(AbortedTxn { producer_id, first_offset: txn.first_offset, last_offset });
        }
    }

    /// The first offset of the oldest open transaction: a read-committed consumer reads below it.
    pub fn first_unstable(&self) -> Option<u64> {
        self.open.values().map(|t| t.first_offset).min()
    }

    /// The producer's open transaction here, if any.
    pub fn open_of(&self, producer_id: i64) -> Option<OpenTxn> {
        self.open.get(&producer_id).copied()
    }

    /// The aborted transactions with records in `[from, to)`, oldest first. The list is in
    /// marker order: those that ended before `from` are skipped with a binary search.
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted.range(start..).filter(|a| a.first_offset < to).copied().collect()
    }

    /// The log now starts at `start`: aborted transactions wholly below it go.
    pub fn remove_below(&mut self, start: u64) {
        while self.aborted.front().is_some_and(|a| a.last_offset < start) {
            self.aborted.pop_front();
        }
    }

    /// Whether a cut must rebuild the table (it held transactional batches).
    pub fn seen(&self) -> bool {
        self.seen
    }

    /// Every open transaction by producer, and the aborted ones: what a snapshot saves.
    pub(crate) fn parts(&self) -> TxnParts {
        (self.open.iter().map(|(p, t)| (*p, *t)).collect(), self.aborted.iter().copied().collect())
    }

    /// Puts back what a snapshot saved: its transactions, and whether any was seen.
    pub(crate) fn restore(&mut self, open: Vec<(i64, OpenTxn)>, aborted: Vec<AbortedTxn>, seen: bool) {
        self.seen |= seen || !open.is_empty() || !aborted.is_empty();
        self.open = open.into_iter().collect();
        self.aborted = aborted.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::header::{ATTR_COMMIT, ATTR_CONTROL, ATTR_TRANSACTIONAL};

    fn header(producer_id: i64, attributes: u16) -> BatchHeader {
        let mut b = crate::batch::BatchBuilder::new(1 << 16);
        b.push(&crate::batch::Record { key: None, value: Some(b"v"), headers: &[], timestamp: 1 }).unwrap();
        let mut h = b.seal(crate::batch::ProducerStamp::default()).header();
        h.producer_id = producer_id;
        h.attributes |= attributes;
        h
    }

    #[test]
    fn open_transactions_hold_the_stable_offset_and_aborts_are_remembered() {
        let mut t = TxnTable::default();
        let data = ATTR_TRANSACTIONAL;
        let abort = ATTR_TRANSACTIONAL | ATTR_CONTROL;
        let commit = abort | ATTR_COMMIT;
        t.on_append(&header(-1, 0), 0);
        assert_eq!((t.first_unstable(), t.seen()), (None, false));
        t.on_append(&header(7, data), 1);
        t.on_append(&header(8, data), 2);
        t.on_append(&header(7, data), 3);
        assert_eq!(t.first_unstable(), Some(1));
        t.on_append(&header(7, abort), 4);
        assert_eq!(t.first_unstable(), Some(2));
        t.on_append(&header(8, commit), 5);
        assert_eq!(t.first_unstable(), None);
        t.on_append(&header(9, commit), 6);
        let aborted = AbortedTxn { producer_id: 7, first_offset: 1, last_offset: 4 };
        assert_eq!(t.aborted_between(0, 10), [aborted]);
        assert_eq!(t.aborted_between(4, 10), [aborted]);
        assert!(t.aborted_between(5, 10).is_empty());
        assert!(t.aborted_between(0, 1).is_empty());
        let (open, gone) = t.parts();
        let mut back = TxnTable::default();
        back.restore(open, gone, true);
        assert_eq!(back, t);
        t.remove_below(5);
        assert!(t.aborted_between(0, 10).is_empty());
    }
}

//! The transaction coordinator of the transactional ids that hash to this `__consumer_offsets`
//! partition (as Kafka's `__transaction_state` does), and the offsets transactions commit to
//! the groups of this partition.
//!
//! A transactional id maps to one producer id, whose epoch each InitProducerId bumps: an older
//! epoch is fenced. A transaction starts with the first partition or group added to it
//! (Ongoing) and ends with EndTxn: the coordinator records that it prepares to commit or
//! abort, the node writes a marker to each of its partitions and completes the offsets of its
//! groups, then the coordinator records it complete (Empty). A prepared transaction found on
//! load, or one open past its timeout (aborted with the epoch bumped, fencing its producer), is
//! driven to its end the same way by the node's tick.
//!
//! Offsets a transaction commits (TxnOffsetCommit) wait as pending, per group and producer,
//! until the node completes them: committed, they become the group's offsets; aborted, they go.
//!
//! Records (see `records.rs`): transaction (type 6) `key u8 6 | str transactional_id`, value
//! `u8 0 | JSON TxnState`, its latest state (a transactional id is kept: Kafka's expiry of
//! idle ids is not built); pending offset (type 7) `key u8 7 | str group | u64 producer_id |
//! str topic | u32 partition`, value as an offset commit's, tombstoned when its transaction
//! ends.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::api::{CommittedOffset, Record};
use crate::coordinator::Coordinator;
use crate::error::GroupError;
use crate::group::StoredOffset;
use crate::records::{Key, encode_json, encode_key, encode_offset};

/// Partitions one transaction may add, at most: each gets a marker when it ends.
pub const TXN_PARTITIONS_MAX: usize = 10_000;
/// Groups one transaction may commit offsets to, at most.
pub const TXN_GROUPS_MAX: usize = 100;
/// The longest transaction timeout taken (Kafka's `transaction.max.timeout.ms` default).
pub const TXN_TIMEOUT_MS_MAX: u32 = 900_000;

/// Why a transactional request was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TxnError {
    /// The transaction is ending (its markers are being written): retry shortly.
    #[error("the transaction is completing; retry")]
    Concurrent,
    /// The producer id is not the one this transactional id holds (or the id is unknown).
    #[error("producer id {producer_id} does not hold transactional id {transactional_id:?}")]
    ProducerIdMapping { transactional_id: String, producer_id: i64 },
    /// An older epoch: another producer took the transactional id since.
    #[error("producer fenced: epoch {got}, the transactional id is at epoch {current}")]
    Fenced { current: i16, got: i16 },
    /// A request the transaction's phase does not allow (an end without a transaction, a
    /// produce to a partition not added).
    #[error("invalid transaction state: {reason}")]
    InvalidState { reason: String },
    /// A timeout of 0 or above [`TXN_TIMEOUT_MS_MAX`].
    #[error("transaction timeout {timeout_ms} ms outside 1..={TXN_TIMEOUT_MS_MAX}")]
    InvalidTimeout { timeout_ms: i64 },
    #[error("a transaction of more than {max} {what}")]
    TooLarge { what: String, max: usize },
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnPhase {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
}

/// A transactional id's state, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnState {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: u32,
    pub phase: TxnPhase,
    pub partitions: BTreeSet<(String, u32)>,
    pub groups: BTreeSet<String>,
    /// How the last transaction ended (true: committed), so a retried EndTxn is answered alike.
    pub last_committed: Option<bool>,
    /// When the open transaction started, on this coordinator's clock (not persisted: a loaded
    /// transaction's timeout starts again at the load).
    #[serde(skip)]
    pub started_ms: u64,
}

/// A transaction to end: the markers to write and the groups whose offsets to complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnEnd {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, u32)>,
    pub groups: Vec<String>,
}

/// What InitProducerId gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnInit {
    /// The producer id and its new epoch.
    Ready { producer_id: i64, producer_epoch: i16 },
    /// An open transaction of the previous producer must be aborted first (the epoch is bumped
    /// already, fencing it): the node ends it, then inits again.
    AbortFirst(TxnEnd),
}

impl TxnState {
    fn end(&self, transactional_id: &str) -> TxnEnd {
        TxnEnd {
            transactional_id: transactional_id.to_owned(),
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            commit: self.phase == TxnPhase::PrepareCommit,
            partitions: self.partitions.iter().cloned().collect(),
            groups: self.groups.iter().cloned().collect(),
        }
    }

    /// Checks that the request's producer holds the id at its current epoch.
    fn check_producer(&self, id: &str, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::ProducerIdMapping { transactional_id: id.to_owned(), producer_id });
        }
        if epoch != self.producer_epoch {
            return Err(TxnError::Fenced { current: self.producer_epoch, got: epoch });
        }
        Ok(())
    }
}

impl Coordinator {
    /// InitProducerId for `id`: a new id starts at `fresh_id` (the node took it before), a known
    /// one gets its epoch bumped (a new producer id from `fresh_id` when the epoch would
    /// overflow). An open transaction is aborted first.
    pub fn txn_init(
        &mut self,
        now_ms: u64,
        id: &str,
        timeout_ms: i32,
        fresh_id: i64,
    ) -> Result<TxnInit, TxnError> {
        let timeout_ms = match u32::try_from(timeout_ms) {
            Ok(t) if (1..=TXN_TIMEOUT_MS_MAX).contains(&t) => t,
            _ => return Err(TxnError::InvalidTimeout { timeout_ms: i64::from(timeout_ms) }),
        };
        let state = match self.transactions.get(id) {
            None => TxnState {
                producer_id: fresh_id,
                producer_epoch: 0,
                timeout_ms,
                phase: TxnPhase::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                last_committed: None,
                started_ms: now_ms,
            },
            Some(s) => match s.phase {
                TxnPhase::PrepareCommit | TxnPhase::PrepareAbort => return Err(TxnError::Concurrent),
                TxnPhase::Ongoing => return Ok(TxnInit::AbortFirst(self.abort_fencing(id))),
                TxnPhase::Empty => {
                    let mut s = s.clone();
                    match s.producer_epoch.checked_add(1).filter(|e| *e < i16::MAX) {
                        Some(e) => s.producer_epoch = e,
                        None => (s.producer_id, s.producer_epoch) = (fresh_id, 0),
                    }
                    s.timeout_ms = timeout_ms;
                    s
                }
            },
        };
        let ready = TxnInit::Ready { producer_id: state.producer_id, producer_epoch: state.producer_epoch };
        self.put_txn(id, state);
        Ok(ready)
    }

    /// Adds partitions (AddPartitionsToTxn) or a group (AddOffsetsToTxn) to the producer's
    /// transaction, starting it if none is open.
    pub fn txn_add(
        &mut self,
        now_ms: u64,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, u32)],
        group: Option<&str>,
    ) -> Result<(), TxnError> {
        if let Some(g) = group {
            crate::validate::group_id(g).map_err(|e| TxnError::InvalidState { reason: e.to_string() })?;
        }
        let mut s = self.txn_of(id, producer_id, epoch)?.clone();
        match s.phase {
            TxnPhase::PrepareCommit | TxnPhase::PrepareAbort => return Err(TxnError::Concurrent),
            TxnPhase::Empty => {
                s.phase = TxnPhase::Ongoing;
                s.started_ms = now_ms;
            }
            TxnPhase::Ongoing => {}
        }
        s.partitions.extend(partitions.iter().cloned());
        s.groups.extend(group.map(str::to_owned));
        if s.partitions.len() > TXN_PARTITIONS_MAX {
            return Err(TxnError::TooLarge { what: "partitions".into(), max: TXN_PARTITIONS_MAX });
        }
        if s.groups.len() > TXN_GROUPS_MAX {
            return Err(TxnError::TooLarge { what: "groups".into(), max: TXN_GROUPS_MAX });
        }
        if s != self.transactions[id] {
            self.put_txn(id, s);
        }
        Ok(())
    }

    /// Whether the producer may write transactional batches to `partitions` (and commit
    /// offsets of `group`): its transaction is open and holds them. Changes nothing.
    pub fn txn_verify(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, u32)],
        group: Option<&str>,
    ) -> Result<(), TxnError> {
        let s = self.txn_of(id, producer_id, epoch)?;
        if s.phase != TxnPhase::Ongoing {
            return Err(TxnError::InvalidState { reason: "no transaction is open".into() });
        }
        if let Some((t, p)) = partitions.iter().find(|p| !s.partitions.contains(*p)) {
            return Err(TxnError::InvalidState {
                reason: format!("{t}/{p} was not added to the transaction"),
            });
        }
        match group {
            Some(g) if !s.groups.contains(g) => Err(TxnError::InvalidState {
                reason: format!("group {g:?} was not added to the transaction"),
            }),
            _ => Ok(()),
        }
    }

    /// EndTxn: the transaction is prepared to commit or abort, and what to write returned.
    /// `None` when it ended that way already (a retry).
    pub fn txn_end(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<Option<TxnEnd>, TxnError> {
        let mut s = self.txn_of(id, producer_id, epoch)?.clone();
        let wrong = |reason: &str| Err(TxnError::InvalidState { reason: reason.into() });
        match (s.phase, commit) {
            (TxnPhase::Empty, _) if s.last_committed == Some(commit) => Ok(None),
            (TxnPhase::Empty, _) => wrong("no transaction is open"),
            (TxnPhase::PrepareCommit, true) | (TxnPhase::PrepareAbort, false) => Ok(Some(s.end(id))),
            (TxnPhase::PrepareCommit | TxnPhase::PrepareAbort, _) => {
                wrong("the transaction ends the other way")
            }
            (TxnPhase::Ongoing, _) => {
                s.phase = if commit { TxnPhase::PrepareCommit } else { TxnPhase::PrepareAbort };
                let end = s.end(id);
                self.put_txn(id, s);
                Ok(Some(end))
            }
        }
    }

    /// The markers of `end` are written and its groups' offsets completed: the transaction is
    /// over. Ignored if the transaction moved on meanwhile.
    pub fn txn_complete(&mut self, end: &TxnEnd) {
        let Some(s) = self.transactions.get(&end.transactional_id) else { return };
        let prepared = if end.commit { TxnPhase::PrepareCommit } else { TxnPhase::PrepareAbort };
        if s.producer_id != end.producer_id || s.producer_epoch != end.producer_epoch || s.phase != prepared {
            return;
        }
        let mut s = s.clone();
        s.phase = TxnPhase::Empty;
        s.partitions.clear();
        s.groups.clear();
        s.last_committed = Some(end.commit);
        self.put_txn(&end.transactional_id, s);
    }

    /// Transactions to drive to their end now: those prepared (a load found them, or a drive
    /// failed), and those open past their timeout, which are aborted with the epoch bumped.
    pub fn txn_due(&mut self, now_ms: u64) -> Vec<TxnEnd> {
        let mut due = Vec::new();
        let mut expired = Vec::new();
        for (id, s) in &self.transactions {
            match s.phase {
                TxnPhase::PrepareCommit | TxnPhase::PrepareAbort => due.push(s.end(id)),
                TxnPhase::Ongoing if now_ms.saturating_sub(s.started_ms) > u64::from(s.timeout_ms) => {
                    expired.push(id.clone());
                }
                _ => {}
            }
        }
        due.extend(expired.iter().map(|id| self.abort_fencing(id)));
        due
    }

    /// Prepares the open transaction of `id` to abort at a bumped epoch, which fences its
    /// producer: what to write to end it.
    fn abort_fencing(&mut self, id: &str) -> TxnEnd {
        let mut s = self.transactions[id].clone();
        s.producer_epoch = s.producer_epoch.saturating_add(1);
        s.phase = TxnPhase::PrepareAbort;
        let end = s.end(id);
        self.put_txn(id, s);
        end
    }

    /// TxnOffsetCommit: offsets of `group` the producer's transaction commits, pending until it
    /// ends.
    pub fn txn_offsets(
        &mut self,
        now_ms: u64,
        group: &str,
        producer_id: i64,
        offsets: Vec<(String, u32, CommittedOffset)>,
    ) -> Result<(), GroupError> {
        crate::validate::commit(group, "", &offsets)?;
        // Bounded as the group's own offsets are. (Completing them is never refused: the
        // transaction's markers are written by then.)
        self.check_offsets_bound(group, &offsets)?;
        let pending = self.txn_offsets.entry((group.to_owned(), producer_id)).or_default();
        for (topic, partition, committed) in offsets {
            let stored = StoredOffset { committed, commit_time_ms: now_ms };
            let key =
                Key::PendingOffset { group: group.to_owned(), producer_id, topic: topic.clone(), partition };
            self.records.push(Record { key: encode_key(&key), value: Some(encode_offset(&stored)) });
            pending.insert((topic, partition), stored);
        }
        Ok(())
    }

    /// The producer's transaction ended: its pending offsets of `group` become the group's
    /// (committed) or go (aborted).
    pub fn txn_offsets_complete(
        &mut self,
        now_ms: u64,
        group: &str,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), GroupError> {
        let key = (group.to_owned(), producer_id);
        let Some(pending) = self.txn_offsets.get(&key) else { return Ok(()) };
        if commit {
            // Not bounded again: the transaction's markers are written, it must commit.
            let offsets = pending.iter().map(|((t, p), o)| (t.clone(), *p, o.committed.clone())).collect();
            self.store_offsets_unbounded(now_ms, group, offsets);
        }
        let pending = self.txn_offsets.remove(&key).expect("found above");
        for (topic, partition) in pending.into_keys() {
            let key = Key::PendingOffset { group: group.to_owned(), producer_id, topic, partition };
            self.records.push(Record { key: encode_key(&key), value: None });
        }
        Ok(())
    }

    /// The partitions of `group` (of these, or any) a transaction holds an offset of pending.
    pub fn txn_offsets_pending(
        &self,
        group: &str,
        partitions: Option<&[(String, u32)]>,
    ) -> BTreeSet<(String, u32)> {
        let asked: Option<BTreeSet<&(String, u32)>> = partitions.map(|list| list.iter().collect());
        let pending = self.pending_partitions(group);
        pending.filter(|tp| asked.as_ref().is_none_or(|a| a.contains(tp))).cloned().collect()
    }

    /// The partitions of `group` some transaction holds an offset of pending (a partition
    /// pending in two transactions is listed twice).
    pub(crate) fn pending_partitions<'a>(
        &'a self,
        group: &str,
    ) -> impl Iterator<Item = &'a (String, u32)> + 'a {
        let range = (group.to_owned(), i64::MIN)..=(group.to_owned(), i64::MAX);
        self.txn_offsets.range(range).flat_map(|(_, o)| o.keys())
    }

    /// The state of transactional id `id`, if this coordinator knows it.
    pub fn transaction(&self, id: &str) -> Option<&TxnState> {
        self.transactions.get(id)
    }

    fn txn_of(&self, id: &str, producer_id: i64, epoch: i16) -> Result<&TxnState, TxnError> {
        let s = self
            .transactions
            .get(id)
            .ok_or_else(|| TxnError::ProducerIdMapping { transactional_id: id.to_owned(), producer_id })?;
        s.check_producer(id, producer_id, epoch)?;
        Ok(s)
    }

    fn put_txn(&mut self, id: &str, s: TxnState) {
        let key = encode_key(&Key::Transaction { transactional_id: id.to_owned() });
        self.records.push(Record { key, value: Some(encode_json(&s)) });
        self.transactions.insert(id.to_owned(), s);
    }

    /// Replays a transaction record.
    pub(crate) fn replay_txn(&mut self, now_ms: u64, id: String, state: Option<TxnState>) {
        match state {
            Some(mut s) => {
                s.started_ms = now_ms;
                self.transactions.insert(id, s);
            }
            None => {
                self.transactions.remove(&id);
            }
        }
    }

    /// Replays a pending transactional offset.
    pub(crate) fn replay_pending(
        &mut self,
        key: (String, i64),
        tp: (String, u32),
        offset: Option<StoredOffset>,
    ) {
        let pending = self.txn_offsets.entry(key.clone()).or_default();
        match offset {
            Some(o) => {
                pending.insert(tp, o);
            }
            None => {
                pending.remove(&tp);
                if pending.is_empty() {
                    self.txn_offsets.remove(&key);
                }
            }
        }
    }
}

/// Pending transactional offsets, by (group, producer id).
pub(crate) type PendingOffsets = BTreeMap<(String, i64), BTreeMap<(String, u32), StoredOffset>>;

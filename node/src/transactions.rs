//! Kafka transactions on a node: the calls of a transactional id, run on the shard that
//! coordinates it (the leader of its `__consumer_offsets` partition, as for a group), and the
//! driver that ends a transaction: a marker written to each of its partitions (acks=all),
//! its groups' pending offsets completed, then the coordinator told it is over.
//!
//! A transaction to end comes from EndTxn, from InitProducerId of a new producer while the
//! previous one's transaction is open (aborted first), and from the tick: transactions open
//! past their timeout, and prepared ones a load found or a failed drive left. One drive per
//! transactional id at a time, per shard; a call finding one under way is told to retry
//! (CONCURRENT_TRANSACTIONS).
//!
//! A node alone only: in a cluster a marker may have to go to another node's partition, which
//! the node cannot write yet, so the Kafka front end refuses transactional ids there.

use crate::groups::call::{CallError, GroupAnswer, GroupCall, route, with_coordinator};
use crate::runtime::Runtime;
use crate::service::types::{Failure, ProducePartition, TxnWrite};
use crate::shard::Shard;
use bytes::Bytes;
use std::rc::Rc;
use weir_groups::{CommittedOffset, TxnEnd, TxnError, TxnInit};
use weir_net::{Acks, ErrorCode};
use weir_replication::PartitionId;

/// How long a drive waits for its markers to reach every in-sync replica.
const MARKER_TIMEOUT_MS: u64 = 10_000;
/// How long the tick leaves a transaction whose drive failed before driving it again.
const DRIVE_RETRY_MS: u64 = 2_000;

/// A call of a transactional id (or, for offsets, of a group), for the shard coordinating it.
#[derive(Debug, Clone)]
pub enum TxnCall {
    Init {
        id: String,
        timeout_ms: i32,
    },
    /// AddPartitionsToTxn, or with `group` AddOffsetsToTxn.
    Add {
        id: String,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, u32)>,
        group: Option<String>,
    },
    /// Whether a produce of the transaction to these partitions (or a commit of offsets of
    /// `group`) may go ahead.
    Verify {
        id: String,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, u32)>,
        group: Option<String>,
    },
    End {
        id: String,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    },
    /// TxnOffsetCommit, routed by its group.
    Offsets {
        group: String,
        producer_id: i64,
        offsets: Vec<(String, u32, CommittedOffset)>,
    },
    /// A transaction that committed offsets to `group` ended.
    OffsetsComplete {
        group: String,
        producer_id: i64,
        commit: bool,
    },
}

impl TxnCall {
    /// What picks the coordinating shard: the transactional id, or the group.
    pub fn key(&self) -> &str {
        match self {
            TxnCall::Init { id, .. }
            | TxnCall::Add { id, .. }
            | TxnCall::Verify { id, .. }
            | TxnCall::End { id, .. } => id,
            TxnCall::Offsets { group, .. } | TxnCall::OffsetsComplete { group, .. } => group,
        }
    }
}

fn txn(e: TxnError) -> CallError {
    CallError::Group(e.into())
}

/// Runs `call` on this shard, which coordinates its key.
pub async fn run(shard: &Rc<Shard>, call: TxnCall) -> GroupAnswer {
    match call {
        TxnCall::Init { id, timeout_ms } => GroupAnswer::TxnProducer(init(shard, &id, timeout_ms).await),
        TxnCall::Add { id, producer_id, epoch, partitions, group } => GroupAnswer::Done(
            with_coordinator(shard, &id, |c, now| {
                c.txn_add(now, &id, producer_id, epoch, &partitions, group.as_deref()).map_err(txn)
            })
            .await,
        ),
        TxnCall::Verify { id, producer_id, epoch, partitions, group } => GroupAnswer::Done(
            with_coordinator(shard, &id, |c, _| {
                c.txn_verify(&id, producer_id, epoch, &partitions, group.as_deref()).map_err(txn)
            })
            .await,
        ),
        TxnCall::End { id, producer_id, epoch, commit } => {
            GroupAnswer::Done(end(shard, &id, producer_id, epoch, commit).await)
        }
        TxnCall::Offsets { group, producer_id, offsets } => {
            let wall = shard.core().rt.now_ms();
            let checked = crate::groups::check_committed_partitions(
                shard,
                offsets.iter().map(|(t, p, _)| (t.as_str(), *p)),
            );
            if let Err(f) = checked {
                return GroupAnswer::Done(Err(f.into()));
            }
            GroupAnswer::Done(
                with_coordinator(shard, &group, |c, _| {
                    Ok(c.txn_offsets(wall, &group, producer_id, offsets)?)
                })
                .await,
            )
        }
        TxnCall::OffsetsComplete { group, producer_id, commit } => {
            let wall = shard.core().rt.now_ms();
            GroupAnswer::Done(
                with_coordinator(shard, &group, |c, _| {
                    Ok(c.txn_offsets_complete(wall, &group, producer_id, commit)?)
                })
                .await,
            )
        }
    }
}

/// InitProducerId: a fresh producer id is taken first (the coordinator uses it only for an id
/// it does not know); an open transaction of the previous producer is aborted, then the init is
/// run again.
async fn init(shard: &Rc<Shard>, id: &str, timeout_ms: i32) -> Result<(i64, i16), CallError> {
    let fresh = shard.producer_ids.next().await?;
    for _ in 0..2 {
        let init =
            with_coordinator(shard, id, |c, now| c.txn_init(now, id, timeout_ms, fresh).map_err(txn)).await?;
        match init {
            TxnInit::Ready { producer_id, producer_epoch } => return Ok((producer_id, producer_epoch)),
            TxnInit::AbortFirst(end) => drive(shard, end).await?,
        }
    }
    Err(txn(TxnError::Concurrent))
}

/// EndTxn: prepared, then driven to its end before the answer.
async fn end(
    shard: &Rc<Shard>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<(), CallError> {
    let prepared =
        with_coordinator(shard, id, |c, _| c.txn_end(id, producer_id, epoch, commit).map_err(txn)).await?;
    match prepared {
        Some(end) => drive(shard, end).await,
        None => Ok(()),
    }
}

/// Ends `end`'s transaction: markers, offsets, then the coordinator's record that it is over.
/// Refused (CONCURRENT_TRANSACTIONS) while another drive of the same id runs on this shard.
pub async fn drive(shard: &Rc<Shard>, end: TxnEnd) -> Result<(), CallError> {
    let running = start_drive(shard, end).ok_or_else(|| txn(TxnError::Concurrent))?;
    running.await.unwrap_or_else(|| Err(txn(TxnError::Concurrent)))
}

/// Starts ending `end`'s transaction as a task of its own, so that a request that goes away
/// (its connection closed) does not stop it half way; `None` if a drive of the id runs already.
/// A drive that fails rests [`DRIVE_RETRY_MS`] before the tick drives it again.
fn start_drive(shard: &Rc<Shard>, end: TxnEnd) -> Option<glommio::task::JoinHandle<Result<(), CallError>>> {
    let guard = Driving::take(shard, &end.transactional_id)?;
    let shard = shard.clone();
    let task = glommio::spawn_local(async move {
        let _guard = guard;
        let result = drive_inner(&shard, &end).await;
        let mut retries = shard.groups.drive_retry_at.borrow_mut();
        match &result {
            Ok(()) => {
                retries.remove(&end.transactional_id);
            }
            Err(e) => {
                retries.insert(end.transactional_id.clone(), shard.core().rt.monotonic_ms() + DRIVE_RETRY_MS);
                tracing::warn!(transactional_id = %end.transactional_id, error = ?e, "a transaction did not end; retried later");
            }
        }
        result
    });
    Some(task.detach())
}

/// A transactional id being driven on this shard, until dropped.
struct Driving(Rc<Shard>, String);

impl Driving {
    fn take(shard: &Rc<Shard>, id: &str) -> Option<Self> {
        shard.groups.driving.borrow_mut().insert(id.to_owned()).then(|| Driving(shard.clone(), id.to_owned()))
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        self.0.groups.driving.borrow_mut().remove(&self.1);
    }
}

async fn drive_inner(shard: &Rc<Shard>, end: &TxnEnd) -> Result<(), CallError> {
    write_markers(shard, end).await?;
    for group in &end.groups {
        let call = TxnCall::OffsetsComplete {
            group: group.clone(),
            producer_id: end.producer_id,
            commit: end.commit,
        };
        match route(shard, GroupCall::Txn(call)).await {
            GroupAnswer::Done(Ok(())) => {}
            // A group that can have no coordinator (an id refused since) has nothing to
            // complete; anything else is retried.
            GroupAnswer::Done(Err(CallError::Node(f))) if f.code == ErrorCode::InvalidArgument => {
                tracing::warn!(group = %group, error = %f.message, "transactional offsets of an invalid group dropped");
            }
            GroupAnswer::Done(Err(e)) => return Err(e),
            _ => return Err(Failure::new(ErrorCode::Unknown, "wrong answer completing offsets").into()),
        }
    }
    with_coordinator(shard, &end.transactional_id, |c, _| {
        c.txn_complete(end);
        Ok(())
    })
    .await
}

/// One marker to each partition of the transaction, acks=all. A partition gone since (its
/// topic deleted) needs none.
async fn write_markers(shard: &Rc<Shard>, end: &TxnEnd) -> Result<(), CallError> {
    let now = shard.core().rt.now_ms() as i64;
    let marker = weir_kafka::batch::marker_batch(end.producer_id, end.producer_epoch, end.commit, now);
    let bytes = Bytes::copy_from_slice(marker.as_bytes());
    let parts: Vec<ProducePartition> = end
        .partitions
        .iter()
        .map(|(topic, p)| ProducePartition {
            topic: topic.as_str().into(),
            partition: PartitionId(*p),
            batches: bytes.clone(),
            kafka_payloads: true,
            txn: TxnWrite::Markers,
        })
        .collect();
    let answers = shard.service.produce_within(Acks::All, parts, Some(MARKER_TIMEOUT_MS)).await;
    for answer in answers {
        match answer {
            Ok(_) => {}
            // A partition gone, or recreated as one that takes no transaction (compacted).
            Err(f)
                if matches!(
                    f.code,
                    ErrorCode::UnknownTopic | ErrorCode::UnknownPartition | ErrorCode::InvalidRecord
                ) => {}
            Err(f) => return Err(f.into()),
        }
    }
    Ok(())
}

/// Drives, in the background, the transactions the tick found due on this shard: all but
/// those resting after a failed drive, and those being driven.
pub fn drive_due(shard: &Rc<Shard>, due: Vec<TxnEnd>) {
    let now = shard.core().rt.monotonic_ms();
    shard.groups.drive_retry_at.borrow_mut().retain(|_, at| *at > now);
    for end in due {
        if !shard.groups.drive_retry_at.borrow().contains_key(&end.transactional_id) {
            // Detached: it runs on without anyone waiting for it.
            let _ = start_drive(shard, end);
        }
    }
}

/// The Kafka error code of a refused transactional call.
pub fn txn_code(e: &TxnError) -> i16 {
    use kafka_protocol::ResponseError as K;
    let k = match e {
        TxnError::Concurrent => K::ConcurrentTransactions,
        TxnError::ProducerIdMapping { .. } => K::InvalidProducerIdMapping,
        TxnError::Fenced { .. } => K::ProducerFenced,
        TxnError::InvalidState { .. } => K::InvalidTxnState,
        TxnError::InvalidTimeout { .. } => K::InvalidTransactionTimeout,
        _ => K::InvalidRequest,
    };
    k.code()
}

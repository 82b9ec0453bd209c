//! Kafka transactions: InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn and TxnOffsetCommit, each a call to the shard that coordinates the
//! transactional id (or, for TxnOffsetCommit, the group); see `crate::transactions`. A node
//! alone only: in a cluster transactional ids are refused.

use crate::groups::call::{CallError, GroupAnswer, GroupCall, route};
use crate::shard::Shard;
use crate::transactions::TxnCall;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnRequest;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequest;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use std::rc::Rc;
use weir_groups::CommittedOffset;

/// Why transactions are refused here, if they are: a cluster cannot write its markers yet, and
/// a node that converts Kafka batches to Weir's columns (`kafka_batches_as_sent` off) cannot
/// keep a transaction's batches.
pub fn unavailable(shard: &Shard) -> Option<i16> {
    let refused =
        crate::frontend::cluster::cluster_of(shard).is_some() || !shard.config.kafka_batches_as_sent;
    refused.then(|| ResponseError::TransactionalIdAuthorizationFailed.code())
}

/// Runs a transactional call where its key is coordinated; the Kafka code of a failure.
async fn call(shard: &Rc<Shard>, call: TxnCall) -> Result<GroupAnswer, i16> {
    if let Err(f) = crate::groups::check_group_id(call.key()) {
        return Err(super::groups::call_code(&CallError::Node(f)));
    }
    Ok(route(shard, GroupCall::Txn(call)).await)
}

fn done(answer: Result<GroupAnswer, i16>) -> i16 {
    match answer {
        Ok(GroupAnswer::Done(Ok(()))) => 0,
        Ok(GroupAnswer::Done(Err(e))) => super::groups::call_code(&e),
        Ok(_) => ResponseError::UnknownServerError.code(),
        Err(code) => code,
    }
}

/// InitProducerId with a transactional id.
pub async fn init_producer_id(shard: &Rc<Shard>, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let r = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if let Some(code) = unavailable(shard) {
        return r.with_error_code(code);
    }
    match call(shard, TxnCall::Init { id: id.to_owned(), timeout_ms }).await {
        Ok(GroupAnswer::TxnProducer(Ok((producer_id, epoch)))) => {
            r.with_producer_id(ProducerId(producer_id)).with_producer_epoch(epoch)
        }
        Ok(GroupAnswer::TxnProducer(Err(e))) => r.with_error_code(super::groups::call_code(&e)),
        Ok(_) => r.with_error_code(ResponseError::UnknownServerError.code()),
        Err(code) => r.with_error_code(code),
    }
}

pub async fn add_partitions(shard: &Rc<Shard>, req: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let id = req.v3_and_below_transactional_id.0.to_string();
    let mut partitions = Vec::new();
    let mut refused = Vec::new();
    for t in &req.v3_and_below_topics {
        for p in &t.partitions {
            match partition_refusal(shard, t.name.0.as_str(), *p) {
                None => partitions.push((t.name.0.to_string(), *p as u32)),
                Some(code) => refused.push((t.name.0.as_str(), *p, code)),
            }
        }
    }
    // All or nothing, as Kafka: a refused partition fails the others with OPERATION_NOT_ATTEMPTED.
    let code = match (unavailable(shard), refused.is_empty()) {
        (Some(code), _) => code,
        (None, false) => ResponseError::OperationNotAttempted.code(),
        (None, true) => {
            let (producer_id, epoch) = (req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch);
            done(call(shard, TxnCall::Add { id, producer_id, epoch, partitions, group: None }).await)
        }
    };
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let ps = t.partitions.iter().map(|p| {
                let own = refused.iter().find(|(n, i, _)| *n == t.name.0.as_str() && i == p).map(|r| r.2);
                AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(*p)
                    .with_partition_error_code(own.unwrap_or(code))
            });
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(ps.collect())
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// Why a partition cannot join a transaction: unknown, or of a compacted topic (whose batches
/// are Weir's columns, which carry no transaction).
fn partition_refusal(shard: &Shard, topic: &str, partition: i32) -> Option<i16> {
    let topics = shard.core().topics.borrow();
    let Some(meta) = topics.topics.get(topic) else {
        return Some(ResponseError::UnknownTopicOrPartition.code());
    };
    if partition < 0 || partition as u32 >= meta.partitions {
        return Some(ResponseError::UnknownTopicOrPartition.code());
    }
    meta.config().cleanup_policy.compacts().then(|| ResponseError::UnsupportedForMessageFormat.code())
}

pub async fn add_offsets(shard: &Rc<Shard>, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    if crate::groups::check_group_id(req.group_id.0.as_str()).is_err() {
        return AddOffsetsToTxnResponse::default().with_error_code(ResponseError::InvalidGroupId.code());
    }
    let code = match unavailable(shard) {
        Some(code) => code,
        None => {
            let group = Some(req.group_id.0.to_string());
            let (id, producer_id, epoch) =
                (req.transactional_id.0.to_string(), req.producer_id.0, req.producer_epoch);
            done(call(shard, TxnCall::Add { id, producer_id, epoch, partitions: Vec::new(), group }).await)
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

pub async fn end_txn(shard: &Rc<Shard>, req: EndTxnRequest) -> EndTxnResponse {
    let code = match unavailable(shard) {
        Some(code) => code,
        None => {
            let (id, producer_id, epoch) =
                (req.transactional_id.0.to_string(), req.producer_id.0, req.producer_epoch);
            done(call(shard, TxnCall::End { id, producer_id, epoch, commit: req.committed }).await)
        }
    };
    EndTxnResponse::default().with_error_code(code)
}

pub async fn txn_offset_commit(shard: &Rc<Shard>, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let mut offsets = Vec::new();
    let mut invalid = false;
    for t in &req.topics {
        for p in &t.partitions {
            invalid |= p.partition_index < 0 || p.committed_offset < 0;
            let leader_epoch = (p.committed_leader_epoch >= 0).then_some(p.committed_leader_epoch);
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            let committed =
                CommittedOffset { offset: p.committed_offset.max(0) as u64, metadata, leader_epoch };
            offsets.push((t.name.0.to_string(), p.partition_index.max(0) as u32, committed));
        }
    }
    let bad_group = crate::groups::check_group_id(req.group_id.0.as_str()).is_err();
    let code = match (unavailable(shard), invalid) {
        (Some(code), _) => code,
        (None, _) if bad_group => ResponseError::InvalidGroupId.code(),
        (None, true) => ResponseError::InvalidCommitOffsetSize.code(),
        (None, false) => {
            // The transaction must be open, at this epoch, with the group added: a late commit
            // of a transaction ended since would otherwise wait pending for ever.
            let (group, producer_id) = (req.group_id.0.to_string(), req.producer_id.0);
            let verify = TxnCall::Verify {
                id: req.transactional_id.0.to_string(),
                producer_id,
                epoch: req.producer_epoch,
                partitions: Vec::new(),
                group: Some(group.clone()),
            };
            match done(call(shard, verify).await) {
                0 => done(call(shard, TxnCall::Offsets { group, producer_id, offsets }).await),
                code => code,
            }
        }
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let ps = t.partitions.iter().map(|p| {
                TxnOffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
            });
            TxnOffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(ps.collect())
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Whether a transactional produce of `producer_id` at `epoch` to `partitions` may go ahead:
/// the coordinator has its transaction open with them. The Kafka code of a refusal.
pub async fn verify(
    shard: &Rc<Shard>,
    id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: Vec<(String, u32)>,
) -> Result<(), i16> {
    if let Some(code) = unavailable(shard) {
        return Err(code);
    }
    let verify = TxnCall::Verify { id: id.to_owned(), producer_id, epoch, partitions, group: None };
    match done(call(shard, verify).await) {
        0 => Ok(()),
        code => Err(code),
    }
}

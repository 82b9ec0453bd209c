//! Produce: each partition's Kafka batches are validated, every record walked, and kept as
//! sent behind Weir's header where they can be, else converted to Weir's columns
//! (`weir_kafka::batch::kafka_to_stored`); then the whole request goes through the
//! `PartitionService` as one scatter-gather, all of a partition's batches or none. acks=0 is
//! not answered. A transactional produce goes ahead only once the transaction's coordinator
//! has it open with every partition written (`transactions.rs`).

use super::Answer;
use crate::service::types::{Failure, ProducePartition, TxnWrite};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::ResponseKind;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use std::sync::Arc;
use weir_kafka::codes::kafka_code;
use weir_net::{Acks, ErrorCode};
use weir_replication::PartitionId;

/// One partition of the request: where it goes, and its converted batches or why not.
struct Part {
    topic_index: usize,
    index: i32,
    converted: Result<ProducePartition, (i16, String)>,
}

pub async fn produce(shard: &Rc<Shard>, req: ProduceRequest) -> Answer {
    let acks = match req.acks {
        0 => Acks::None,
        1 => Acks::Leader,
        -1 => Acks::All,
        other => return invalid_acks(other, req),
    };
    let mut parts = Vec::new();
    let mut topics = Vec::new();
    for (ti, t) in req.topic_data.into_iter().enumerate() {
        let name: Arc<str> = t.name.0.as_str().into();
        topics.push(t.name.clone());
        for p in t.partition_data {
            let converted = convert(shard, &name, p.index, p.records.unwrap_or_default());
            parts.push(Part { topic_index: ti, index: p.index, converted });
        }
    }
    if let Some(id) = &req.transactional_id {
        in_transaction(shard, id.0.as_str(), &mut parts).await;
    }
    let valid: Vec<ProducePartition> =
        parts.iter().filter_map(|p| p.converted.as_ref().ok().cloned()).collect();
    let timeout = Some(req.timeout_ms.max(0) as u64);
    let answers: Vec<_> = shard.service.produce_within(acks, valid, timeout).await;
    if acks == Acks::None {
        // Nothing is answered; a failure closes the connection, as Kafka's brokers do, so the
        // producer learns its metadata again (a leader moved) instead of writing into the void.
        let failed = parts.iter().any(|p| p.converted.is_err()) || answers.iter().any(Result::is_err);
        return if failed { Answer::Close("an acks=0 produce failed".into()) } else { Answer::Silent };
    }
    let mut answers = answers.into_iter();
    let mut responses: Vec<TopicProduceResponse> =
        topics.into_iter().map(|name| TopicProduceResponse::default().with_name(name)).collect();
    for part in parts {
        let outcome = match part.converted {
            Ok(_) => answers.next().expect("one answer per partition sent").map_err(failure),
            Err(e) => Err(e),
        };
        let mut r = PartitionProduceResponse::default().with_index(part.index).with_log_append_time_ms(-1);
        match outcome {
            Ok(p) => {
                r = r.with_base_offset(p.base_offset as i64).with_log_start_offset(p.log_start as i64);
            }
            Err((code, message)) => {
                r = r
                    .with_error_code(code)
                    .with_base_offset(-1)
                    .with_log_start_offset(-1)
                    .with_error_message(Some(StrBytes::from_string(message)));
            }
        }
        responses[part.topic_index].partition_responses.push(r);
    }
    Answer::Response(Box::new(ResponseKind::Produce(ProduceResponse::default().with_responses(responses))))
}

/// A transactional produce: every batch of the request is of one producer's transaction, which
/// the coordinator has open with every partition written; the batches are then taken as
/// transactional. Otherwise each partition fails (and nothing is written).
async fn in_transaction(shard: &Rc<Shard>, id: &str, parts: &mut [Part]) {
    let stamps: Vec<Option<(i64, i16)>> =
        parts.iter().filter_map(|p| p.converted.as_ref().ok()).map(|p| txn_stamp(&p.batches)).collect();
    let stamp = stamps.first().copied().flatten();
    let refusal = match stamp {
        Some(_) if stamps.iter().all(|s| *s == stamp) => None,
        _ => Some((
            kafka_protocol::ResponseError::InvalidRecord.code(),
            "a transactional produce holds only transactional batches of one producer and epoch".into(),
        )),
    };
    let refusal = match (refusal, stamp) {
        (None, Some((producer_id, epoch))) => {
            let written = parts
                .iter()
                .filter_map(|p| p.converted.as_ref().ok())
                .map(|p| (p.topic.to_string(), p.partition.0))
                .collect();
            let verified = super::transactions::verify(shard, id, producer_id, epoch, written).await;
            verified.err().map(|code| (code, format!("transactional id {id:?} refused this produce")))
        }
        (refusal, _) => refusal,
    };
    for p in parts.iter_mut() {
        p.converted = match (std::mem::replace(&mut p.converted, Err((0, String::new()))), &refusal) {
            (Ok(mut part), None) => {
                part.txn = TxnWrite::Data;
                Ok(part)
            }
            (Ok(_), Some(r)) => Err(r.clone()),
            (Err(e), _) => Err(e),
        };
    }
}

/// The producer id and epoch of `batches` if every one is a transactional batch of the same.
fn txn_stamp(batches: &[u8]) -> Option<(i64, i16)> {
    let mut rest = batches;
    let mut stamp = None;
    while !rest.is_empty() {
        let h = weir_log::batch::BatchHeader::decode(rest).ok()?;
        let this = (h.producer_id, h.producer_epoch);
        if !h.is_transactional() || stamp.is_some_and(|s| s != this) {
            return None;
        }
        stamp = Some(this);
        rest = rest.get(h.batch_len as usize..)?;
    }
    stamp
}

/// An acks value Kafka does not have: every partition is answered INVALID_REQUIRED_ACKS.
fn invalid_acks(acks: i16, req: ProduceRequest) -> Answer {
    let code = kafka_protocol::ResponseError::InvalidRequiredAcks.code();
    let responses = req
        .topic_data
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(-1)
                        .with_error_message(Some(StrBytes::from_string(format!("acks {acks}"))))
                })
                .collect();
            TopicProduceResponse::default().with_name(t.name).with_partition_responses(partitions)
        })
        .collect();
    Answer::Response(Box::new(ResponseKind::Produce(ProduceResponse::default().with_responses(responses))))
}

fn failure(f: Failure) -> (i16, String) {
    (kafka_code(f.code), f.message)
}

/// The batches of one partition's Kafka records for the log, back to back in one aligned
/// buffer.
fn convert(
    shard: &Shard,
    topic: &Arc<str>,
    index: i32,
    records: Bytes,
) -> Result<ProducePartition, (i16, String)> {
    if index < 0 {
        return Err((kafka_code(ErrorCode::UnknownPartition), format!("partition {index}")));
    }
    if &**topic == crate::groups::offsets_topic::OFFSETS_TOPIC {
        // The groups' own log: a record its coordinators cannot read would take its groups down.
        let m = format!("{topic} is internal: the group coordinators write it");
        return Err((kafka_protocol::ResponseError::InvalidTopicException.code(), m));
    }
    let limits = weir_kafka::batch::ConvertLimits { batch_bytes_max: shard.config.batch_bytes_max };
    let converted = if shard.config.kafka_batches_as_sent {
        weir_kafka::batch::kafka_to_stored(&records, &limits)
    } else {
        weir_kafka::batch::kafka_to_weir(&records, &limits)
    };
    let converted = converted.map_err(|e| (e.kafka_code(), e.to_string()))?;
    let len = converted.iter().map(|c| c.batch.len()).sum();
    let mut out = rkyv::util::AlignedVec::<16>::with_capacity(len);
    for c in &converted {
        out.extend_from_slice(c.batch.as_bytes());
    }
    Ok(ProducePartition {
        topic: topic.clone(),
        partition: PartitionId(index as u32),
        batches: Bytes::from_owner(out),
        kafka_payloads: shard.config.kafka_batches_as_sent,
        // A transactional produce's are taken as such once its coordinator vouched for them.
        txn: TxnWrite::None,
    })
}

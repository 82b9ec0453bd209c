//! The transaction APIs on the wire, each in every served version: a transactional id's
//! producer, its partitions and group added, offsets committed in it, the transaction ended.

use super::requests::topic;
use super::wire::{Wire, s, served};
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, InitProducerIdRequest, ProducerId, RequestKind, TransactionalId,
};

/// Kafka's codes met below.
const CONCURRENT_OR_NONE: [i16; 2] = [0, 51];
const INVALID_TXN_STATE: i16 = 48;
const PRODUCER_FENCED: i16 = 90;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const INVALID_RECORD: i16 = 87;
const INVALID_GROUP_ID: i16 = 24;

fn txn_id(name: &str) -> TransactionalId {
    TransactionalId(s(name))
}

/// A producer id and epoch for transactional id `id`, with InitProducerId v4.
pub fn init(w: &mut Wire, id: &str) -> (i64, i16) {
    let body = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(60_000);
    let r = kind!(w.call(ApiKey::InitProducerId, 4, RequestKind::InitProducerId(body)), InitProducerId);
    assert_eq!(r.error_code, 0, "{r:?}");
    (r.producer_id.0, r.producer_epoch)
}

/// Runs one transaction of `id`, every API in version `v`, adding partition 0 of `name` and
/// committing offset `offset` of it for `group`; ends it with `commit`.
pub fn one_transaction(w: &mut Wire, v: i16, id: &str, name: &str, group: &str, offset: i64, commit: bool) {
    let (pid, epoch) = init(w, id);
    assert_eq!(add_partition(w, v, id, pid, epoch, name), 0, "AddPartitionsToTxn v{v}");
    let body = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s(group)));
    let r = kind!(w.call(ApiKey::AddOffsetsToTxn, v, RequestKind::AddOffsetsToTxn(body)), AddOffsetsToTxn);
    assert_eq!(r.error_code, 0, "AddOffsetsToTxn v{v}");
    let p = TxnOffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(if v >= 2 { 4 } else { -1 })
        .with_committed_metadata(Some(s("txn")));
    let body = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default().with_name(topic(name)).with_partitions(vec![p]),
        ]);
    let r = kind!(w.call(ApiKey::TxnOffsetCommit, v, RequestKind::TxnOffsetCommit(body)), TxnOffsetCommit);
    assert_eq!(r.topics[0].partitions[0].error_code, 0, "TxnOffsetCommit v{v}: {r:?}");
    // Pending in the transaction: a fetch asking for stable offsets of it is told to retry, for
    // that partition; asking for all, it is not listed (it has no committed offset yet).
    let t = OffsetFetchRequestTopics::default().with_name(topic(name)).with_partition_indexes(vec![0]);
    let g = OffsetFetchRequestGroup::default().with_group_id(GroupId(s(group))).with_topics(Some(vec![t]));
    let body = OffsetFetchRequest::default().with_groups(vec![g]).with_require_stable(true);
    let r = kind!(w.call(ApiKey::OffsetFetch, 8, RequestKind::OffsetFetch(body)), OffsetFetch);
    let g = &r.groups[0];
    let p = &g.topics[0].partitions[0];
    assert_eq!((g.error_code, p.error_code, p.committed_offset), (0, UNSTABLE_OFFSET_COMMIT, -1), "{r:?}");
    let g = OffsetFetchRequestGroup::default().with_group_id(GroupId(s(group))).with_topics(None);
    let body = OffsetFetchRequest::default().with_groups(vec![g]).with_require_stable(true);
    let r = kind!(w.call(ApiKey::OffsetFetch, 8, RequestKind::OffsetFetch(body)), OffsetFetch);
    assert!(r.groups[0].topics.is_empty(), "{r:?}");
    let end = |w: &mut Wire, epoch: i16| {
        let body = EndTxnRequest::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        kind!(w.call(ApiKey::EndTxn, v, RequestKind::EndTxn(body)), EndTxn).error_code
    };
    let first = end(w, epoch);
    assert!(CONCURRENT_OR_NONE.contains(&first), "EndTxn v{v}");
    // Ended: a retry is answered alike, the other way is refused, an older epoch is fenced.
    assert_eq!(end(w, epoch), 0, "EndTxn v{v} again");
    assert_eq!(end(w, epoch - 1), PRODUCER_FENCED, "EndTxn v{v} of an older epoch");
    let body = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(!commit);
    let r = kind!(w.call(ApiKey::EndTxn, v, RequestKind::EndTxn(body)), EndTxn);
    assert_eq!(r.error_code, INVALID_TXN_STATE, "EndTxn v{v} the other way");
}

/// FindCoordinator for a transactional id (key type 1), in every version that has key types.
pub fn find_txn_coordinator(w: &mut Wire, id: &str, port: i32) {
    for v in served(ApiKey::FindCoordinator).filter(|v| *v >= 1) {
        let mut body = FindCoordinatorRequest::default().with_key_type(1);
        body = if v >= 4 { body.with_coordinator_keys(vec![s(id)]) } else { body.with_key(s(id)) };
        let r =
            kind!(w.call(ApiKey::FindCoordinator, v, RequestKind::FindCoordinator(body)), FindCoordinator);
        let (code, got) = match v >= 4 {
            true => (r.coordinators[0].error_code, r.coordinators[0].port),
            false => (r.error_code, r.port),
        };
        assert_eq!((code, got), (0, port), "FindCoordinator v{v} of a transactional id: {r:?}");
    }
}

/// The isolation levels: Kafka's read uncommitted and read committed.
const UNCOMMITTED: i8 = 0;
const COMMITTED: i8 = 1;

/// A fetch of `name`/0 from offset 0 at `isolation`: (record batches' bytes, last stable
/// offset, aborted transactions as (producer id, first offset)).
fn fetch(w: &mut Wire, name: &str, isolation: i8) -> (usize, i64, Option<Vec<(i64, i64)>>) {
    let RequestKind::Fetch(r) = super::requests::fetch(12, name, 0, 0, 0) else { unreachable!() };
    let body = RequestKind::Fetch(r.with_isolation_level(isolation));
    let r = kind!(w.call(ApiKey::Fetch, 12, body), Fetch);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{r:?}");
    let aborted = p
        .aborted_transactions
        .as_ref()
        .map(|a| a.iter().map(|t| (t.producer_id.0, t.first_offset)).collect());
    (p.records.as_ref().map_or(0, |b| b.len()), p.last_stable_offset, aborted)
}

/// ListOffsets latest of `name`/0 at `isolation`.
fn latest(w: &mut Wire, name: &str, isolation: i8) -> i64 {
    let RequestKind::ListOffsets(r) = super::requests::list_offsets(name, -1) else { unreachable!() };
    let body = RequestKind::ListOffsets(r.with_isolation_level(isolation));
    let r = kind!(w.call(ApiKey::ListOffsets, 7, body), ListOffsets);
    r.topics[0].partitions[0].offset
}

/// Adds partition 0 of `name` to `id`'s transaction with AddPartitionsToTxn `v`; the
/// partition's error code.
fn add_partition(w: &mut Wire, v: i16, id: &str, pid: i64, epoch: i16, name: &str) -> i16 {
    let t = AddPartitionsToTxnTopic::default().with_name(topic(name)).with_partitions(vec![0]);
    let body = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![t]);
    let r = kind!(
        w.call(ApiKey::AddPartitionsToTxn, v, RequestKind::AddPartitionsToTxn(body)),
        AddPartitionsToTxn
    );
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

/// Produces two records of `id`'s transaction to `name`/0, sequences from `seq`; the error code.
fn produce(w: &mut Wire, id: &str, pid: i64, epoch: i16, name: &str, seq: i32) -> i16 {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = (0..2)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: seq + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(bytes::Bytes::from(format!("v{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    let RequestKind::Produce(p) = super::requests::produce(-1, name, 0, buf.freeze()) else { unreachable!() };
    let body = RequestKind::Produce(p.with_transactional_id(Some(txn_id(id))));
    let r = kind!(w.call(ApiKey::Produce, 9, body), Produce);
    r.responses[0].partition_responses[0].error_code
}

/// A transaction's records are hidden from read-committed fetches and ListOffsets until it
/// ends; aborted, they are served with the aborted transaction named, for the consumer to drop.
pub fn read_committed_waits_for_the_end(w: &mut Wire, name: &str) {
    let (pid, epoch) = init(w, "lso");
    assert_eq!(produce(w, "lso", pid, epoch, name, 0), INVALID_TXN_STATE, "a partition not added");
    assert_eq!(add_partition(w, 3, "lso", pid, epoch, name), 0);
    assert_eq!(produce(w, "lso", pid, epoch, name, 0), 0);
    // Open: read uncommitted sees the records (and is told the high watermark as its last
    // stable offset: it reads past it anyway), read committed stops before them.
    let (bytes, lso, aborted) = fetch(w, name, UNCOMMITTED);
    assert!(bytes > 0 && lso == 2 && aborted.is_none(), "{bytes} {lso} {aborted:?}");
    let (bytes, lso, aborted) = fetch(w, name, COMMITTED);
    assert_eq!((bytes, lso, aborted), (0, 0, Some(vec![])));
    assert_eq!((latest(w, name, UNCOMMITTED), latest(w, name, COMMITTED)), (2, 0));
    let body = EndTxnRequest::default()
        .with_transactional_id(txn_id("lso"))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(false);
    assert_eq!(kind!(w.call(ApiKey::EndTxn, 3, RequestKind::EndTxn(body)), EndTxn).error_code, 0);
    // Aborted: served up to the marker, the aborted transaction named.
    let (bytes, lso, aborted) = fetch(w, name, COMMITTED);
    assert!(bytes > 0, "the records and the marker");
    assert_eq!((lso, aborted), (3, Some(vec![(pid, 0)])));
    assert_eq!(latest(w, name, COMMITTED), 3);
}

/// A group id no coordinator can take is refused when added, not when the transaction ends.
pub fn an_invalid_group_is_refused_when_added(w: &mut Wire) {
    let (pid, epoch) = init(w, "bad-group");
    let body = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id("bad-group"))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s("")));
    let r = kind!(w.call(ApiKey::AddOffsetsToTxn, 3, RequestKind::AddOffsetsToTxn(body)), AddOffsetsToTxn);
    assert_eq!(r.error_code, INVALID_GROUP_ID, "an empty group id");
}

/// A topic deleted and made again compacted under an open transaction takes no batch of it,
/// and the transaction still ends (its marker goes nowhere).
pub fn a_compacted_topic_takes_no_transaction(
    w: &mut Wire,
    node: &super::common::kafka::KafkaNode,
    name: &str,
) {
    node.create_topic(name, 1, &[]);
    let (pid, epoch) = init(w, "compacted");
    assert_eq!(add_partition(w, 3, "compacted", pid, epoch, name), 0);
    let out = node.node.cli(super::common::Via::Tcp).args(["topic", "delete", name]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    node.create_topic(name, 1, &["--cleanup-policy", "compact"]);
    assert_eq!(produce(w, "compacted", pid, epoch, name, 0), INVALID_RECORD);
    let body = EndTxnRequest::default()
        .with_transactional_id(txn_id("compacted"))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(true);
    assert_eq!(kind!(w.call(ApiKey::EndTxn, 3, RequestKind::EndTxn(body)), EndTxn).error_code, 0);
    // A compacted topic is refused a transaction from the start.
    let (pid, epoch) = init(w, "compacted");
    assert_eq!(add_partition(w, 3, "compacted", pid, epoch, name), 43, "UNSUPPORTED_FOR_MESSAGE_FORMAT");
}

//! Transaction markers: the control batch that ends a producer's transaction in a partition,
//! as Kafka writes it (one control record, key `version i16 = 0 | type i16` with 0 abort and
//! 1 commit, value `version i16 = 0 | coordinator_epoch i32`), stored as a Kafka-format batch
//! whose Weir header carries the transactional, control and (for a commit) commit bits.

use super::header::{KAFKA_HEADER_BYTES, KafkaBatchHeader, LOG_OVERHEAD, MAGIC_V2, compute_crc};
use super::varint::{write_varint, write_varlong};
use weir_log::batch::header::{ATTR_COMMIT, ATTR_CONTROL, ATTR_TRANSACTIONAL};
use weir_log::batch::{Batch, KafkaFields, ProducerStamp, seal_kafka};

/// Kafka's control record types.
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;

/// The marker that commits (or aborts) the transaction of `producer_id` at `producer_epoch`,
/// stamped `timestamp_ms`, with base offset 0 for the leader to patch.
pub fn marker_batch(producer_id: i64, producer_epoch: i16, commit: bool, timestamp_ms: i64) -> Batch {
    assert!(producer_id >= 0, "a marker ends a producer's transaction");
    let kind = if commit { CONTROL_COMMIT } else { CONTROL_ABORT };
    let key: Vec<u8> = [0i16.to_be_bytes(), kind.to_be_bytes()].concat();
    let value: Vec<u8> = [&0i16.to_be_bytes()[..], &0i32.to_be_bytes()[..]].concat();
    let mut body = vec![0u8]; // record attributes
    write_varlong(&mut body, 0); // timestamp delta
    write_varint(&mut body, 0); // offset delta
    write_varint(&mut body, key.len() as i32);
    body.extend_from_slice(&key);
    write_varint(&mut body, value.len() as i32);
    body.extend_from_slice(&value);
    write_varint(&mut body, 0); // headers
    let mut section = Vec::new();
    write_varint(&mut section, body.len() as i32);
    section.extend_from_slice(&body);
    let kafka_bits = (ATTR_TRANSACTIONAL | ATTR_CONTROL) as i16;
    let header = KafkaBatchHeader {
        base_offset: 0,
        batch_length: (KAFKA_HEADER_BYTES - LOG_OVERHEAD + section.len()) as i32,
        partition_leader_epoch: 0,
        magic: MAGIC_V2,
        crc: 0,
        attributes: kafka_bits,
        last_offset_delta: 0,
        base_timestamp: timestamp_ms,
        max_timestamp: timestamp_ms,
        producer_id,
        producer_epoch,
        base_sequence: -1,
        records_count: 1,
    };
    let mut whole = vec![0u8; KAFKA_HEADER_BYTES];
    header.encode(&mut whole);
    whole.extend_from_slice(&section);
    let txn = ATTR_TRANSACTIONAL | ATTR_CONTROL | if commit { ATTR_COMMIT } else { 0 };
    let fields = KafkaFields {
        codec: 0,
        kafka_crc: compute_crc(&whole),
        record_count: 1,
        base_timestamp: timestamp_ms,
        max_timestamp: timestamp_ms,
        producer: ProducerStamp { producer_id, producer_epoch, base_sequence: -1 },
        txn,
    };
    seal_kafka(&fields, &section)
}

/// Whether the marker record `key` (a control record's) commits: `None` if it is no marker.
pub fn marker_commits(key: &[u8]) -> Option<bool> {
    match key {
        [0, 0, 0, 1] => Some(true),
        [0, 0, 0, 0] => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_rebuilds_as_the_kafka_control_batch_it_stands_for() {
        for commit in [true, false] {
            let batch = marker_batch(42, 3, commit, 1_700_000_000_000);
            let h = batch.header();
            assert!(h.is_transactional() && h.is_control());
            assert_eq!(h.commits(), commit);
            let mut out = Vec::new();
            let view = batch.view();
            super::super::stored::write_kept(&view, &mut out);
            let k = KafkaBatchHeader::parse(&out).unwrap();
            assert!(k.is_control() && k.is_transactional());
            assert_eq!((k.producer_id, k.producer_epoch, k.records_count), (42, 3, 1));
            assert_eq!(compute_crc(&out), k.crc, "the rebuilt Kafka batch's CRC holds");
            let records = &out[KAFKA_HEADER_BYTES..];
            let mut walker = super::super::record::RecordWalker::new(records, 1);
            let r = walker.next_record().unwrap().unwrap();
            assert_eq!(marker_commits(r.key.unwrap()), Some(commit));
        }
    }
}

//! Kafka batch -> Weir batch -> Kafka batch, with every field checked on the way.

mod common;

use bytes::Bytes;
use common::{NO_STAMP, Stamp, TRecord, kafka_batch};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use proptest::collection::vec;
use proptest::prelude::*;
use weir_kafka::batch::{
    Codec, ConvertLimits, Converted, KafkaBatchHeader, RecordWalker, fetch_section, kafka_to_weir,
    weir_to_kafka,
};
use weir_log::batch::{Batch, retain};

const LIMITS: ConvertLimits = ConvertLimits { batch_bytes_max: 1 << 20 };
const CODECS: [Codec; 5] = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

fn bytes_opt() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![Just(None), Just(Some(Vec::new())), vec(any::<u8>(), 1..24).prop_map(Some)]
}

/// Header keys from a small set, so that duplicates are common; UTF-8 as Kafka's are.
fn header() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
    let key = prop_oneof![Just("a".to_string()), Just("b".to_string()), Just(String::new()), "[a-z]{1,5}"];
    (key.prop_map(String::into_bytes), bytes_opt())
}

fn records() -> impl Strategy<Value = Vec<TRecord>> {
    let record = (bytes_opt(), bytes_opt(), vec(header(), 0..=4), -10_000i64..10_000).prop_map(
        |(key, value, headers, delta)| TRecord { key, value, headers, timestamp: 1_700_000_000_000 + delta },
    );
    vec(record, 1..24)
}

/// What the Weir batch must hold: null header values become empty.
fn stored_headers(r: &TRecord) -> Vec<(Vec<u8>, Vec<u8>)> {
    r.headers.iter().map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())).collect()
}

fn check_weir(c: &Converted, input: &[TRecord], stamp: Stamp, codec: Codec) {
    let view = c.batch.view();
    let h = view.header();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (stamp.producer_id, stamp.producer_epoch, stamp.base_sequence)
    );
    assert_eq!(c.record_count as usize, input.len());
    assert_eq!(c.codec, codec);
    assert_eq!(c.has_null_key, input.iter().any(|r| r.key.is_none()));
    assert_eq!(c.max_timestamp, input.iter().map(|r| r.timestamp).max().unwrap());
    assert_eq!(h.max_timestamp, c.max_timestamp);
    assert_eq!(view.record_count(), input.len());
    for (i, (got, want)) in view.records().zip(input).enumerate() {
        assert_eq!(got.offset, i as u64);
        assert_eq!(got.timestamp, want.timestamp);
        assert_eq!(got.key, want.key.as_deref());
        assert_eq!(got.value, want.value.as_deref());
        let headers: Vec<(Vec<u8>, Vec<u8>)> = got.headers().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(headers, stored_headers(want));
    }
}

/// The Weir batch at `base_offset` (leader epoch 9) as a Kafka batch.
fn to_kafka(batch: &Batch, base_offset: u64) -> Vec<u8> {
    let mut batch = batch.clone();
    batch.set_base_offset(base_offset, 9);
    let mut out = Vec::new();
    assert_eq!(weir_to_kafka(batch.as_bytes(), &mut out).unwrap(), batch.len());
    out
}

/// Checks a converted-back Kafka batch with kafka-protocol's decoder and, for the headers
/// (which its decoder keeps in a map), with the walker.
fn check_kafka(kafka: &[u8], input: &[TRecord], base_offset: u64, stamp: Stamp) {
    let h = KafkaBatchHeader::parse(kafka).unwrap();
    assert_eq!(h.total_len(), Some(kafka.len()));
    assert_eq!((h.base_offset, h.partition_leader_epoch, h.attributes), (base_offset as i64, 9, 0));
    assert_eq!(h.last_offset_delta, input.len() as i32 - 1);
    assert_eq!(h.base_timestamp, input.iter().map(|r| r.timestamp).min().unwrap());
    assert_eq!(h.max_timestamp, input.iter().map(|r| r.timestamp).max().unwrap());
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (stamp.producer_id, stamp.producer_epoch, stamp.base_sequence)
    );
    let set = RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(kafka)).unwrap();
    assert_eq!(set.records.len(), input.len());
    for (i, (got, want)) in set.records.iter().zip(input).enumerate() {
        assert_eq!(got.offset, (base_offset + i as u64) as i64);
        assert_eq!(got.timestamp, want.timestamp);
        assert_eq!(got.key.as_deref(), want.key.as_deref());
        assert_eq!(got.value.as_deref(), want.value.as_deref());
        assert_eq!(got.producer_id, stamp.producer_id);
    }
    let mut walker = RecordWalker::new(&kafka[61..], input.len());
    for want in input {
        let r = walker.next_record().unwrap().unwrap();
        let headers: Vec<(Vec<u8>, Vec<u8>)> =
            r.headers().map(|(k, v)| (k.to_vec(), v.unwrap().to_vec())).collect();
        assert_eq!(headers, stored_headers(want));
    }
    walker.finish().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Hand-built batches: duplicate header keys, null header values, negative timestamp deltas.
    #[test]
    fn hand_built_batches_round_trip(input in records(), codec in 0usize..5, base_offset in 0u64..1 << 40, idempotent: bool) {
        let codec = CODECS[codec];
        let stamp = if idempotent { Stamp { producer_id: 42, producer_epoch: 3, base_sequence: 1000 } } else { NO_STAMP };
        let kafka = kafka_batch(&input, codec, stamp);
        let converted = kafka_to_weir(&kafka, &LIMITS).unwrap();
        prop_assert_eq!(converted.len(), 1);
        prop_assert_eq!(converted[0].kafka_bytes, kafka.len());
        check_weir(&converted[0], &input, stamp, codec);
        check_kafka(&to_kafka(&converted[0].batch, base_offset), &input, base_offset, stamp);
    }

    /// Batches from kafka-protocol's encoder (unique header keys, as its map requires).
    #[test]
    fn encoder_batches_round_trip(input in records(), codec in 0usize..5, base_offset in 0u64..1 << 40) {
        let input: Vec<TRecord> = input.into_iter().map(|mut r| {
            let mut seen = std::collections::HashSet::new();
            r.headers.retain(|(k, _)| seen.insert(k.clone()));
            r
        }).collect();
        let (codec, compression) = [
            (Codec::None, Compression::None), (Codec::Gzip, Compression::Gzip), (Codec::Snappy, Compression::Snappy),
            (Codec::Lz4, Compression::Lz4), (Codec::Zstd, Compression::Zstd),
        ][codec];
        let records = encoder_records(&input);
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).unwrap();
        let converted = kafka_to_weir(&buf, &LIMITS).unwrap();
        prop_assert_eq!(converted.len(), 1);
        let stamp = Stamp { producer_id: 7, producer_epoch: 1, base_sequence: 100 };
        check_weir(&converted[0], &input, stamp, codec);
        let kafka = to_kafka(&converted[0].batch, base_offset);
        let decoded = RecordBatchDecoder::decode(&mut Bytes::from(kafka)).unwrap();
        for (i, (got, want)) in decoded.records.iter().zip(&records).enumerate() {
            let want_headers: IndexMap<StrBytes, Option<Bytes>> =
                want.headers.iter().map(|(k, v)| (k.clone(), Some(v.clone().unwrap_or_default()))).collect();
            prop_assert_eq!(got.offset, (base_offset + i as u64) as i64);
            prop_assert_eq!(got.sequence, want.sequence);
            prop_assert_eq!((got.timestamp, &got.key, &got.value), (want.timestamp, &want.key, &want.value));
            prop_assert_eq!(&got.headers, &want_headers);
        }
    }
}

fn encoder_records(input: &[TRecord]) -> Vec<KRecord> {
    input
        .iter()
        .enumerate()
        .map(|(i, r)| KRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 7,
            producer_epoch: 1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: 100 + i as i32,
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| {
                    (StrBytes::from_string(String::from_utf8(k.clone()).unwrap()), v.clone().map(Bytes::from))
                })
                .collect(),
        })
        .collect()
}

fn sample(n: usize, seed: u8) -> Vec<TRecord> {
    (0..n)
        .map(|i| TRecord {
            key: (i % 3 != 0).then(|| vec![seed, i as u8]),
            value: Some(vec![i as u8; i]),
            headers: vec![(b"h".to_vec(), Some(vec![1])), (b"h".to_vec(), None)],
            timestamp: 5_000 - i as i64,
        })
        .collect()
}

#[test]
fn several_batches_in_one_records_field() {
    let (a, b) = (sample(3, 1), sample(5, 2));
    let mut field = kafka_batch(&a, Codec::Gzip, NO_STAMP);
    field.extend(kafka_batch(&b, Codec::None, NO_STAMP));
    let converted = kafka_to_weir(&field, &LIMITS).unwrap();
    assert_eq!(converted.len(), 2);
    check_weir(&converted[0], &a, NO_STAMP, Codec::Gzip);
    check_weir(&converted[1], &b, NO_STAMP, Codec::None);

    // A fetch's bytes: the two batches back to back, at offsets 10 and 13; once at an unaligned
    // address (each batch copied to align it) and once as the batches' own aligned bytes.
    let mut first = converted[0].batch.clone();
    first.set_base_offset(10, 9);
    let mut second = converted[1].batch.clone();
    second.set_base_offset(13, 9);
    let mut fetched = vec![0u8];
    fetched.extend_from_slice(first.as_bytes());
    fetched.extend_from_slice(second.as_bytes());
    let mut out = Vec::new();
    let done = fetch_section(&fetched[1..], &mut out).unwrap();
    assert_eq!((done.batches, done.records), (2, 8));
    let len_a = KafkaBatchHeader::parse(&out).unwrap().total_len().unwrap();
    check_kafka(&out[..len_a], &a, 10, NO_STAMP);
    check_kafka(&out[len_a..], &b, 13, NO_STAMP);
    let mut aligned = Vec::new();
    weir_to_kafka(first.as_bytes(), &mut aligned).unwrap();
    assert_eq!(aligned, out[..len_a]);
}

#[test]
fn compaction_gaps_keep_their_offsets() {
    let input = sample(6, 3);
    let mut batch =
        kafka_to_weir(&kafka_batch(&input, Codec::None, NO_STAMP), &LIMITS).unwrap().remove(0).batch;
    // Compaction pins the base offset the leader assigned, so it is assigned first.
    batch.set_base_offset(100, 2);
    let keep = [false, true, false, true, true, false];
    let compacted = retain(&batch.view(), &keep, None).unwrap();
    let mut out = Vec::new();
    weir_to_kafka(compacted.as_bytes(), &mut out).unwrap();
    let h = KafkaBatchHeader::parse(&out).unwrap();
    assert_eq!((h.base_offset, h.last_offset_delta, h.records_count), (100, 5, 3));
    let set = RecordBatchDecoder::decode(&mut Bytes::from(out)).unwrap();
    let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [101, 103, 104]);
    let values: Vec<_> = set.records.iter().map(|r| r.value.clone().unwrap().to_vec()).collect();
    assert_eq!(values, [vec![1u8; 1], vec![3; 3], vec![4; 4]]);
}

#[test]
fn raw_snappy_as_librdkafka_sends_it() {
    let input = sample(4, 4);
    let mut h = common::header_for(&input, Codec::Snappy, NO_STAMP);
    let section = common::records_section(&input, h.base_timestamp);
    let raw = snap::raw::Encoder::new().compress_vec(&section).unwrap();
    h.batch_length = 0;
    let converted = kafka_to_weir(&common::frame(h, &raw), &LIMITS).unwrap();
    check_weir(&converted[0], &input, NO_STAMP, Codec::Snappy);
}

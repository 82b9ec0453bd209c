//! Kafka batches kept as sent: stored behind Weir's header, rebuilt byte for byte for a Kafka
//! consumer, converted to Weir's columns for a native one; and the batches that are converted
//! on produce instead.

mod common;

use common::{NO_STAMP, Stamp, TRecord, frame, header_for, kafka_batch, records_section};
use proptest::collection::vec;
use proptest::prelude::*;
use weir_kafka::batch::{
    Codec, ConvertLimits, fetch_section, kafka_to_stored, native_section, stored_to_weir, weir_to_kafka,
};
use weir_kafka::error::BatchConvertError;
use weir_log::batch::{BatchBuilder, BatchView, ProducerStamp, Record};

const LIMITS: ConvertLimits = ConvertLimits { batch_bytes_max: 1 << 20 };
const CODECS: [Codec; 5] = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

fn bytes_opt() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![Just(None), Just(Some(Vec::new())), vec(any::<u8>(), 1..24).prop_map(Some)]
}

fn records() -> impl Strategy<Value = Vec<TRecord>> {
    let header = (prop_oneof![Just(b"a".to_vec()), Just(b"b".to_vec()), Just(Vec::new())], bytes_opt());
    let record = (bytes_opt(), bytes_opt(), vec(header, 0..=3), -10_000i64..10_000).prop_map(
        |(key, value, headers, delta)| TRecord { key, value, headers, timestamp: 1_700_000_000_000 + delta },
    );
    vec(record, 1..24)
}

/// The Kafka batch its producer sent, as a Kafka consumer must get it back: only the base
/// offset and the partition leader epoch differ (Kafka's CRC covers neither).
fn as_fetched(sent: &[u8], base_offset: u64, epoch: u32) -> Vec<u8> {
    let mut b = sent.to_vec();
    b[0..8].copy_from_slice(&(base_offset as i64).to_be_bytes());
    b[12..16].copy_from_slice(&(epoch as i32).to_be_bytes());
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_kept_batch_is_fetched_byte_for_byte_and_read_natively_record_for_record(
        input in records(), codec in 0usize..5, base_offset in 0u64..1 << 40, idempotent: bool,
    ) {
        let codec = CODECS[codec];
        let stamp = if idempotent { Stamp { producer_id: 42, producer_epoch: 3, base_sequence: 1000 } } else { NO_STAMP };
        let sent = kafka_batch(&input, codec, stamp);
        let mut stored = kafka_to_stored(&sent, &LIMITS).unwrap();
        prop_assert_eq!(stored.len(), 1);
        let c = stored.pop().unwrap();
        prop_assert_eq!((c.kafka_bytes, c.record_count as usize, c.codec), (sent.len(), input.len(), codec));
        prop_assert_eq!(c.has_null_key, input.iter().any(|r| r.key.is_none()));
        let mut batch = c.batch;
        prop_assert!(batch.header().kafka_fields().is_some(), "kept as sent");
        batch.set_base_offset(base_offset, 9);

        // A Kafka consumer gets what was sent, compression and all.
        let mut fetched = Vec::new();
        prop_assert_eq!(weir_to_kafka(batch.as_bytes(), &mut fetched).unwrap(), batch.len());
        prop_assert_eq!(&fetched, &as_fetched(&sent, base_offset, 9));

        // A native consumer gets Weir's columns with the same records, offsets and stamp.
        let weir = stored_to_weir(&batch.view(), &LIMITS).unwrap();
        let view = BatchView::validate(weir.as_bytes(), usize::MAX).unwrap();
        let h = view.header();
        prop_assert_eq!((h.base_offset, h.leader_epoch), (base_offset, 9));
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (stamp.producer_id, stamp.producer_epoch, stamp.base_sequence));
        prop_assert_eq!(h.max_timestamp, input.iter().map(|r| r.timestamp).max().unwrap());
        for (i, (got, want)) in view.records().zip(&input).enumerate() {
            prop_assert_eq!(got.offset, base_offset + i as u64);
            prop_assert_eq!(got.timestamp, want.timestamp);
            prop_assert_eq!(got.key, want.key.as_deref());
            prop_assert_eq!(got.value, want.value.as_deref());
            let headers: Vec<(Vec<u8>, Vec<u8>)> = got.headers().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            let stored: Vec<(Vec<u8>, Vec<u8>)> = want.headers.iter().map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())).collect();
            prop_assert_eq!(headers, stored);
        }
    }
}

/// A native batch of two records at `base_offset`.
fn native(base_offset: u64) -> weir_log::batch::Batch {
    let mut b = BatchBuilder::new(1 << 16);
    for v in [&b"x"[..], b"y"] {
        b.push(&Record { key: None, value: Some(v), headers: &[], timestamp: 5 }).unwrap();
    }
    let mut batch = b.seal(ProducerStamp::default());
    batch.set_base_offset(base_offset, 2);
    batch
}

fn record(i: usize) -> TRecord {
    TRecord {
        key: Some(vec![i as u8]),
        value: Some(vec![b'v'; i]),
        headers: vec![],
        timestamp: 1000 + i as i64,
    }
}

#[test]
fn a_read_mixing_formats_serves_each_consumer_its_own() {
    let input: Vec<TRecord> = (0..5).map(record).collect();
    let sent = kafka_batch(&input, Codec::Zstd, NO_STAMP);
    let mut kept = kafka_to_stored(&sent, &LIMITS).unwrap().pop().unwrap().batch;
    kept.set_base_offset(2, 2);
    let mut read = native(0).as_bytes().to_vec();
    read.extend_from_slice(kept.as_bytes());
    read.extend_from_slice(native(7).as_bytes());

    // Native: three Weir batches, offsets 0 to 8 in order.
    let converted = native_section(&read, &LIMITS, 1 << 20).unwrap().expect("a kept batch is converted");
    let mut offsets = Vec::new();
    let mut rest = &converted[..];
    while !rest.is_empty() {
        let view = BatchView::validate(rest, usize::MAX).unwrap();
        offsets.extend(view.records().map(|r| r.offset));
        rest = &rest[view.bytes().len()..];
    }
    assert_eq!(offsets, (0..9).collect::<Vec<u64>>());
    // Native batches alone are served as read.
    assert!(native_section(native(0).as_bytes(), &LIMITS, 1 << 20).unwrap().is_none());
    // Within a byte bound, the first batch whatever its size, then what fits.
    let first = native_section(&read, &LIMITS, 1).unwrap().unwrap();
    assert_eq!(&first[..], native(0).as_bytes());
    let two = native_section(&read, &LIMITS, converted.len() - 1).unwrap().unwrap();
    assert_eq!(&two[..], &converted[..converted.len() - native(7).len()]);

    // Kafka: the kept batch exactly as sent, between two converted ones.
    let mut out = Vec::new();
    let done = fetch_section(&read, &mut out).unwrap();
    assert_eq!((done.batches, done.records), (3, 9));
    let first = 12 + i32::from_be_bytes(out[8..12].try_into().unwrap()) as usize;
    assert_eq!(&out[first..first + sent.len()], &as_fetched(&sent, 2, 2)[..]);
}

/// A damaged kept batch fails a native read that starts with it, and ends one before it.
#[test]
fn a_damaged_kept_batch_ends_a_native_read_before_it() {
    let input: Vec<TRecord> = (0..5).map(record).collect();
    let mut kept =
        kafka_to_stored(&kafka_batch(&input, Codec::Lz4, NO_STAMP), &LIMITS).unwrap().pop().unwrap().batch;
    kept.set_base_offset(2, 2);
    let mut damaged = kept.as_bytes().to_vec();
    damaged[90] ^= 1;
    let mut read = native(0).as_bytes().to_vec();
    read.extend_from_slice(&damaged);
    let out = native_section(&read, &LIMITS, 1 << 20).unwrap().unwrap();
    assert_eq!(&out[..], native(0).as_bytes());
    let e = native_section(&damaged, &LIMITS, 1 << 20).unwrap_err();
    assert!(matches!(e, BatchConvertError::Weir { .. }), "{e:?}");
    // A length of zero does not pass for a batch.
    let mut zero = native(0).as_bytes().to_vec();
    zero[12..16].copy_from_slice(&0u32.to_le_bytes());
    assert!(native_section(&zero, &LIMITS, 1 << 20).is_err());
}

/// Batches whose header does not say what their records do, or that a native consumer could
/// not read as one Weir batch, are converted on produce: no record is lost, nothing lies.
#[test]
fn batches_that_cannot_be_kept_are_converted_or_refused() {
    let input: Vec<TRecord> = (0..4).map(record).collect();
    let converted = |batch: &[u8]| {
        let c = kafka_to_stored(batch, &LIMITS).unwrap().pop().unwrap();
        assert!(c.batch.header().kafka_fields().is_none(), "converted");
        c
    };
    // A maxTimestamp above the records': Weir's is the records' largest.
    let mut h = header_for(&input, Codec::Lz4, NO_STAMP);
    h.max_timestamp += 1000;
    let lying = frame(h, &common::compress(Codec::Lz4, &records_section(&input, h.base_timestamp)));
    assert_eq!(converted(&lying).batch.header().max_timestamp, 1003);
    // The log-append-time bit.
    let mut h = header_for(&input, Codec::None, NO_STAMP);
    h.attributes |= 1 << 3;
    converted(&frame(h, &records_section(&input, h.base_timestamp)));
    // A base timestamp above every record's.
    let mut h = header_for(&input, Codec::None, NO_STAMP);
    h.base_timestamp = 5000;
    converted(&frame(h, &records_section(&input, h.base_timestamp)));
    // Records a Weir batch cannot hold (timestamps too far apart) are refused, as on conversion.
    let far = vec![record(0), TRecord { timestamp: 1000 + (1 << 33), ..record(1) }];
    let e = kafka_to_stored(&kafka_batch(&far, Codec::None, NO_STAMP), &LIMITS).unwrap_err();
    assert!(matches!(e, BatchConvertError::TimestampSpan { .. }), "{e:?}");
    // Records whose Weir batch might not fit the limit, though the Kafka batch does.
    let many: Vec<TRecord> = (0..400).map(|i| TRecord { value: None, key: None, ..record(i) }).collect();
    let small = ConvertLimits { batch_bytes_max: 8192 };
    let sent = kafka_batch(&many, Codec::Zstd, NO_STAMP);
    assert!(sent.len() < 4096);
    match kafka_to_stored(&sent, &small) {
        Ok(c) => assert!(c[0].batch.header().kafka_fields().is_none()),
        Err(e) => assert!(matches!(e, BatchConvertError::TooLarge { .. }), "{e:?}"),
    }
}

#[test]
fn a_transactional_batch_is_kept_with_its_bit_and_a_marker_is_skipped_natively() {
    let input: Vec<TRecord> = (0..3)
        .map(|i| TRecord {
            key: Some(vec![i]),
            value: Some(vec![i; 5]),
            headers: vec![],
            timestamp: 1_700_000_000_000,
        })
        .collect();
    let stamp = Stamp { producer_id: 42, producer_epoch: 3, base_sequence: 0 };
    let mut h = header_for(&input, Codec::Lz4, stamp);
    h.attributes |= weir_kafka::batch::ATTR_TRANSACTIONAL;
    let sent = frame(h, &common::compress(Codec::Lz4, &records_section(&input, h.base_timestamp)));
    let mut stored = kafka_to_stored(&sent, &LIMITS).unwrap().pop().unwrap().batch;
    assert!(stored.header().is_transactional() && !stored.header().is_control());
    stored.set_base_offset(10, 1);
    let mut fetched = Vec::new();
    fetch_section(stored.as_bytes(), &mut fetched).unwrap();
    assert_eq!(fetched, as_fetched(&sent, 10, 1), "rebuilt byte for byte, transactional bit and all");
    // Weir's columns have no room for it: refused rather than stored without its bit.
    assert!(weir_kafka::batch::kafka_to_weir(&sent, &LIMITS).is_err());
    // A native consumer gets the data with its bit, and the marker as a control batch to skip.
    let mut marker = weir_kafka::batch::marker_batch(42, 3, true, 1_700_000_000_001);
    marker.set_base_offset(13, 1);
    let both = [stored.as_bytes(), marker.as_bytes()].concat();
    let native = native_section(&both, &LIMITS, usize::MAX).unwrap().expect("converted");
    let first = BatchView::validate(&native, usize::MAX).unwrap();
    assert!(first.header().is_transactional() && first.records().count() == 3);
    let second = BatchView::validate(&native[first.bytes().len()..], usize::MAX).unwrap();
    assert!(second.header().is_control() && second.header().commits());
    assert_eq!(second.header().base_offset, 13);
}

//! Kafka batches a producer must not get away with: each refused with its typed error, and
//! never a panic.

mod common;

use common::{NO_STAMP, TRecord, frame, header_for, kafka_batch, records_section, recrc};
use proptest::prelude::*;
use weir_kafka::BatchConvertError as E;
use weir_kafka::batch::{Codec, ConvertLimits, KafkaBatchHeader, kafka_to_weir};

const LIMITS: ConvertLimits = ConvertLimits { batch_bytes_max: 1 << 20 };

fn sample(n: usize) -> Vec<TRecord> {
    (0..n)
        .map(|i| TRecord {
            key: Some(vec![i as u8; 3]),
            value: Some(vec![7; i]),
            headers: vec![(b"k".to_vec(), Some(b"v".to_vec()))],
            timestamp: 1_000 + i as i64,
        })
        .collect()
}

fn valid() -> Vec<u8> {
    kafka_batch(&sample(5), Codec::None, NO_STAMP)
}

fn convert(bytes: &[u8]) -> Result<(), E> {
    kafka_to_weir(bytes, &LIMITS).map(|_| ())
}

/// Rewrites the header of `batch` with `edit` and a fresh CRC.
fn edited(edit: impl FnOnce(&mut KafkaBatchHeader)) -> Vec<u8> {
    let mut b = valid();
    let mut h = KafkaBatchHeader::parse(&b).unwrap();
    edit(&mut h);
    h.encode(&mut b);
    recrc(&mut b);
    b
}

#[test]
fn wrong_crc() {
    let mut b = valid();
    let last = b.len() - 1;
    b[last] ^= 1;
    let err = convert(&b).unwrap_err();
    assert!(matches!(err, E::CrcMismatch { .. }), "{err:?}");
    assert_eq!(err.kafka_code(), 2);
}

#[test]
fn old_magic() {
    let mut b = valid();
    b[16] = 1;
    assert_eq!(convert(&b), Err(E::UnsupportedMagic { magic: 1 }));
    // A short magic-1 message set is named as such, not as truncated.
    assert_eq!(convert(&b[..40]).unwrap_err().kafka_code(), 43);
}

#[test]
fn every_truncation() {
    for codec in [Codec::None, Codec::Zstd] {
        let b = kafka_batch(&sample(5), codec, NO_STAMP);
        for len in 0..b.len() {
            let err = convert(&b[..len]).unwrap_err();
            assert!(matches!(err, E::Truncated { .. }), "{len}: {err:?}");
            assert_eq!(err.kafka_code(), 2);
        }
        convert(&b).unwrap();
    }
}

#[test]
fn record_count_beyond_the_bytes() {
    let b = edited(|h| {
        h.records_count = i32::MAX;
        h.last_offset_delta = i32::MAX - 1;
    });
    assert!(matches!(convert(&b), Err(E::InvalidRecordCount { count: i32::MAX, .. })));
    let b = edited(|h| {
        h.records_count = 0;
        h.last_offset_delta = -1;
    });
    assert!(matches!(convert(&b), Err(E::InvalidRecordCount { count: 0, .. })));
}

#[test]
fn last_offset_delta_mismatch() {
    let b = edited(|h| h.last_offset_delta = 7);
    let err = convert(&b).unwrap_err();
    assert_eq!(err, E::InvalidOffsetDeltas { field: "lastOffsetDelta", expected: 4, found: 7 });
    assert_eq!(err.kafka_code(), 87);
}

#[test]
fn sparse_offset_deltas() {
    // Record 1 claims offset delta 3: rewrite the section by hand.
    let input = sample(2);
    let h = header_for(&input, Codec::None, NO_STAMP);
    let mut section = records_section(&input, h.base_timestamp);
    let second = 1 + usize::from(section[0] / 2); // The first record's length: one zigzag byte.
    // Second record: length, attributes, timestamp delta (one byte), then the offset delta.
    assert_eq!(section[second + 3], 2, "offset delta 1, zigzag");
    section[second + 3] = 6;
    let err = convert(&frame(h, &section)).unwrap_err();
    assert_eq!(err, E::InvalidOffsetDeltas { field: "offsetDelta", expected: 1, found: 3 });
}

#[test]
fn transactional_and_control() {
    for (bit, feature) in [
        (1 << 4, "a transactional batch without a producer id"),
        (1 << 5, "control batches from a producer"),
        (1 << 6, "delete horizons"),
    ] {
        let err = convert(&edited(|h| h.attributes |= bit)).unwrap_err();
        assert_eq!(err, E::Unsupported { feature });
        assert_eq!(err.kafka_code(), 43);
    }
    assert_eq!(convert(&edited(|h| h.attributes = 5)), Err(E::UnknownCodec { codec: 5 }));
}

#[test]
fn record_length_lies() {
    let input = sample(2);
    let h = header_for(&input, Codec::None, NO_STAMP);
    let section = records_section(&input, h.base_timestamp);
    // The first record's length varint one byte longer, then one byte shorter, than its fields.
    for delta in [2i8, -2] {
        let mut s = section.clone();
        s[0] = (s[0] as i8 + delta) as u8;
        let err = convert(&frame(h, &s)).unwrap_err();
        assert!(matches!(err, E::RecordLength { index: 0, .. } | E::Malformed { .. }), "{err:?}");
        assert_eq!(err.kafka_code(), 2);
    }
    // A negative length.
    let mut s = section.clone();
    s[0] = 1;
    assert!(matches!(convert(&frame(h, &s)), Err(E::Malformed { .. })));
}

#[test]
fn trailing_garbage_in_the_records() {
    let input = sample(3);
    let h = header_for(&input, Codec::None, NO_STAMP);
    let mut section = records_section(&input, h.base_timestamp);
    section.extend_from_slice(&[0, 0, 0]);
    let err = convert(&frame(h, &section)).unwrap_err();
    assert_eq!(err, E::Malformed { reason: "bytes after the last record", at: section.len() - 3 });
    // Garbage after the last batch of the field: a batch header that is not there.
    let mut b = valid();
    b.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(convert(&b), Err(E::Truncated { .. })));
}

#[test]
fn timestamps_out_of_reach() {
    let mut input = sample(2);
    input[1].timestamp = input[0].timestamp + i64::from(u32::MAX) + 1;
    let err = convert(&kafka_batch(&input, Codec::None, NO_STAMP)).unwrap_err();
    assert!(matches!(err, E::TimestampSpan { .. }), "{err:?}");
    assert_eq!(err.kafka_code(), 32);
    let mut input = sample(1);
    input[0].timestamp = i64::MIN;
    let mut h = header_for(&input, Codec::None, NO_STAMP);
    h.base_timestamp = i64::MAX;
    let section = records_section(&input, 0); // delta i64::MIN from base i64::MAX: fine, but
    let err = convert(&frame(h, &section));
    assert!(err.is_ok(), "{err:?}"); // i64::MAX + i64::MIN = -1 is representable.
    let section = records_section(&[TRecord { timestamp: 1, ..input[0].clone() }], 0);
    let err = convert(&frame(h, &section)).unwrap_err();
    assert_eq!(err, E::TimestampOverflow { index: 0, base: i64::MAX, delta: 1 });
    assert_eq!(err.kafka_code(), 87);
}

#[test]
fn weir_batch_too_large() {
    let input = vec![TRecord { key: None, value: Some(vec![1; 4096]), headers: vec![], timestamp: 0 }];
    let err =
        kafka_to_weir(&kafka_batch(&input, Codec::None, NO_STAMP), &ConvertLimits::new(1024)).unwrap_err();
    assert_eq!(err, E::TooLarge { what: "Weir batch", limit: 1024 });
    assert_eq!(err.kafka_code(), 10);
}

/// One record whose value is 100 MB of zeros, compressed, under a 1 MiB limit: refused after
/// at most about 1 MiB of output, without ever holding the 100 MB.
#[test]
fn decompression_bombs() {
    let zeros = vec![0u8; 100 << 20];
    let limits = ConvertLimits::new(1 << 20);
    for codec in [Codec::Gzip, Codec::Zstd, Codec::Lz4, Codec::Snappy] {
        let compressed = common::compress(codec, &zeros);
        let input = sample(1);
        let h = header_for(&input, codec, NO_STAMP);
        let started = std::time::Instant::now();
        let err = kafka_to_weir(&frame(h, &compressed), &limits).unwrap_err();
        assert_eq!(err, E::TooLarge { what: "decompressed records", limit: 1 << 20 }, "{codec:?}");
        println!("{codec:?}: {} compressed bytes refused in {:?}", compressed.len(), started.elapsed());
    }
    // A raw snappy block that declares 4 GiB is refused on its declaration alone.
    let input = sample(1);
    let h = header_for(&input, Codec::Snappy, NO_STAMP);
    let lying = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    let err = kafka_to_weir(&frame(h, &lying), &limits).unwrap_err();
    assert!(matches!(err, E::TooLarge { .. } | E::Decompress { .. }), "{err:?}");
}

#[test]
fn garbage_compressed_records() {
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let h = header_for(&sample(1), codec, NO_STAMP);
        let err = convert(&frame(h, &[0x82, 1, 2, 3, 4, 5, 6, 7, 8, 9])).unwrap_err();
        assert!(matches!(err, E::Decompress { .. }), "{codec:?}: {err:?}");
        // Valid compressed records cut short.
        let full = common::compress(codec, &records_section(&sample(3), 1_000));
        let h = header_for(&sample(3), codec, NO_STAMP);
        let err = convert(&frame(h, &full[..full.len() - 3])).unwrap_err();
        assert_eq!(err.kafka_code(), 2, "{codec:?}: {err:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random byte flips, insertions and cuts of a valid batch, with the CRC fixed up afterwards
    /// half of the time so that the mutation reaches the parser: never a panic.
    #[test]
    fn mutations_never_panic(
        codec in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
        fix_crc: bool,
    ) {
        let codec = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd][codec];
        let mut b = kafka_batch(&sample(4), codec, NO_STAMP);
        for (at, byte, kind) in edits {
            let i = at.index(b.len());
            match kind {
                0 | 1 => b[i] = byte,
                2 => b.insert(i, byte),
                _ => { b.remove(i); }
            }
        }
        if fix_crc && b.len() >= 61 {
            recrc(&mut b);
        }
        let _ = kafka_to_weir(&b, &LIMITS);
    }
}

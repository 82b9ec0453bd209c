//! The record-batch format: round trips, validation of damaged bytes, and its overhead.

use proptest::prelude::*;
use weir_log::batch::{Batch, BatchBuilder, BatchView, BuildError, ProducerStamp, Record, header};
use weir_log::error::BatchError;

#[derive(Debug, Clone)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    timestamp: i64,
}

fn rec_strategy() -> impl Strategy<Value = Rec> {
    (
        proptest::option::weighted(0.6, proptest::collection::vec(any::<u8>(), 0..20)),
        proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..8), proptest::collection::vec(any::<u8>(), 0..8)),
            0..3,
        ),
        1_700_000_000_000i64..1_700_000_100_000,
    )
        .prop_map(|(key, value, headers, timestamp)| Rec { key, value, headers, timestamp })
}

const STAMP: ProducerStamp = ProducerStamp { producer_id: 7, producer_epoch: 1, base_sequence: 42 };

fn build(recs: &[Rec]) -> Batch {
    let mut b = BatchBuilder::new(1 << 20);
    push_all(&mut b, recs);
    b.seal(STAMP)
}

fn push_all(b: &mut BatchBuilder, recs: &[Rec]) {
    for r in recs {
        let headers: Vec<(&[u8], &[u8])> = r.headers.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let rec = Record {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &headers,
            timestamp: r.timestamp,
        };
        b.push(&rec).expect("fits");
    }
}

proptest! {
    #[test]
    fn records_round_trip(recs in proptest::collection::vec(rec_strategy(), 1..40), base in 0u64..1 << 40) {
        let mut batch = build(&recs);
        batch.set_base_offset(base, 3);
        let view = BatchView::validate(batch.as_bytes(), usize::MAX).expect("valid");
        let h = view.header();
        prop_assert_eq!(h.base_offset, base);
        prop_assert_eq!(h.leader_epoch, 3);
        prop_assert_eq!(h.record_count as usize, recs.len());
        prop_assert_eq!(h.producer_id, 7);
        prop_assert_eq!(h.first_timestamp, recs.iter().map(|r| r.timestamp).min().unwrap());
        prop_assert_eq!(h.max_timestamp, recs.iter().map(|r| r.timestamp).max().unwrap());
        prop_assert_eq!(batch.len() % 16, 0);
        let got: Vec<_> = view.records().collect();
        prop_assert_eq!(got.len(), recs.len());
        for (i, (g, r)) in got.iter().zip(&recs).enumerate() {
            prop_assert_eq!(g.offset, base + i as u64);
            prop_assert_eq!(g.timestamp, r.timestamp);
            prop_assert_eq!(g.key, r.key.as_deref());
            prop_assert_eq!(g.value, r.value.as_deref());
            let hs: Vec<(Vec<u8>, Vec<u8>)> = g.headers().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            prop_assert_eq!(&hs, &r.headers);
        }
    }

    /// Records whose bound fits a builder's limit all fit it, in any order (the key and header
    /// columns starting late included).
    #[test]
    fn records_within_their_bound_always_fit(recs in proptest::collection::vec(rec_strategy(), 1..60)) {
        let headers: usize = recs.iter().map(|r| r.headers.len()).sum();
        let data: usize = recs
            .iter()
            .map(|r| {
                let h: usize = r.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
                r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len) + h
            })
            .sum();
        let bound = BatchBuilder::records_bytes_bound(recs.len(), headers, data);
        let mut b = BatchBuilder::new(bound);
        push_all(&mut b, &recs);
        prop_assert!(b.seal(STAMP).len() <= bound);
    }

    #[test]
    fn any_bit_flip_is_rejected(recs in proptest::collection::vec(rec_strategy(), 1..5), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let batch = build(&recs);
        let mut bytes = rkyv::util::AlignedVec::<16>::new();
        bytes.extend_from_slice(batch.as_bytes());
        // Flips in base offset and leader epoch are not covered by design; everything else is.
        let pos = 12 + at.index(bytes.len() - 12);
        bytes[pos] ^= 1 << bit;
        prop_assert!(BatchView::validate(&bytes, usize::MAX).is_err(), "flip at {} accepted", pos);
    }
}

#[test]
fn patching_offsets_keeps_the_crc_valid() {
    let rec = Rec { key: None, value: Some(b"v".to_vec()), headers: vec![], timestamp: 5 };
    let mut batch = build(&[rec.clone(), rec]);
    let crc = batch.header().crc;
    batch.set_base_offset(1 << 50, 9);
    assert_eq!(batch.header().crc, crc);
    let view = BatchView::validate(batch.as_bytes(), usize::MAX).unwrap();
    assert_eq!(view.records().map(|r| r.offset).collect::<Vec<_>>(), vec![1 << 50, (1 << 50) + 1]);
}

#[test]
fn bad_input_gets_typed_errors() {
    let rec = Rec { key: Some(b"k".to_vec()), value: Some(vec![1; 100]), headers: vec![], timestamp: 5 };
    let batch = build(&[rec]);
    let bytes = batch.as_bytes();
    let check = |b: &[u8], limit| {
        let mut v = rkyv::util::AlignedVec::<16>::new();
        v.extend_from_slice(b);
        BatchView::validate(&v, limit).map(|_| ()).unwrap_err()
    };
    assert!(matches!(check(&bytes[..40], usize::MAX), BatchError::Truncated { needed: 80, available: 40 }));
    assert!(matches!(check(&bytes[..bytes.len() - 16], usize::MAX), BatchError::Truncated { .. }));
    assert!(matches!(check(bytes, 64), BatchError::TooLarge { limit: 64, .. }));
    let mut b = bytes.to_vec();
    b[16] = b'X';
    assert!(matches!(check(&b, usize::MAX), BatchError::BadMagic { .. }));
    let mut b = bytes.to_vec();
    let last = b.len() - 1;
    b[last] ^= 1;
    match check(&b, usize::MAX) {
        BatchError::ChecksumMismatch { expected, actual } => assert_ne!(expected, actual),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    // A header field out of range with a CRC that matches it: caught by the field checks.
    let mut b = bytes.to_vec();
    b[24] = 9; // version
    let crc = header::compute_crc(&b);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(check(&b, usize::MAX), BatchError::UnsupportedVersion { version: 9 }));
    // A payload whose rkyv structure is garbage, with a matching CRC.
    let mut b = bytes.to_vec();
    let n = b.len();
    for x in &mut b[n - 40..n - 16] {
        *x = 0xff;
    }
    let crc = header::compute_crc(&b);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(check(&b, usize::MAX), BatchError::BadPayload { .. } | BatchError::Inconsistent { .. }));
}

#[test]
fn builder_refuses_what_does_not_fit_and_stays_usable() {
    let mut b = BatchBuilder::new(4096);
    let big = vec![0u8; 5000];
    let rec = Record { key: None, value: Some(&big), headers: &[], timestamp: 0 };
    assert!(matches!(b.push(&rec), Err(BuildError::Full { .. })));
    let small = Record { key: None, value: Some(b"ok"), headers: &[], timestamp: 0 };
    let mut n = 0;
    while b.push(&small).is_ok() {
        n += 1;
    }
    let batch = b.seal(ProducerStamp::default());
    assert!(batch.len() <= 4096, "sealed {} bytes over the limit", batch.len());
    assert_eq!(batch.view().record_count(), n);
    let far = Record { key: None, value: Some(b"x"), headers: &[], timestamp: i64::from(u32::MAX) + 10 };
    let mut b = BatchBuilder::new(4096);
    b.push(&small).unwrap();
    assert!(matches!(b.push(&far), Err(BuildError::TimestampSpan { .. })));
}

/// Bytes of framing per record, beyond key and value bytes, for a batch of `n` records of
/// `value_len` bytes with 8-byte keys and distinct timestamps. Printed with `--nocapture`; the
/// figure goes to BENCHMARKS.md. Bounded so a format change that grows it fails here.
#[test]
fn overhead_per_record_is_near_kafkas() {
    for (n, value_len, keyed, distinct_ts) in [
        (1000, 1024, true, true),
        (1000, 1024, false, false),
        (1000, 100, true, true),
        (64, 1024, true, true),
    ] {
        let value = vec![7u8; value_len];
        let mut b = BatchBuilder::new(8 << 20);
        for i in 0..n {
            let key = (i as u64).to_le_bytes();
            let rec = Record {
                key: keyed.then_some(&key[..]),
                value: Some(&value),
                headers: &[],
                timestamp: if distinct_ts { 1_700_000_000_000 + i as i64 } else { 1_700_000_000_000 },
            };
            b.push(&rec).unwrap();
        }
        let batch = b.seal(ProducerStamp::default());
        let payload = n * (value_len + if keyed { 8 } else { 0 });
        let per_record = (batch.len() - payload) as f64 / n as f64;
        println!(
            "records={n} value={value_len}B keyed={keyed} distinct_ts={distinct_ts}: {per_record:.2} bytes/record overhead (batch {} B)",
            batch.len()
        );
        // 12 bytes of columns per keyed record plus ~160 bytes per batch (header, rkyv root).
        assert!(per_record <= 12.5 + 160.0 / n as f64, "overhead {per_record} bytes/record");
    }
}

#[test]
fn a_reset_builder_builds_the_same_batches_again() {
    let recs: Vec<Rec> = (0..50)
        .map(|i| Rec {
            key: (i % 3 != 0).then(|| vec![i as u8; 3]),
            value: (i % 7 != 0).then(|| vec![i as u8; i]),
            headers: if i % 5 == 0 { vec![(b"h".to_vec(), vec![i as u8])] } else { vec![] },
            timestamp: 1000 + i as i64,
        })
        .collect();
    let fresh = build(&recs);
    let mut b = BatchBuilder::new(1 << 20);
    for _ in 0..3 {
        push_all(&mut b, &recs);
        let again = b.seal_reset(STAMP);
        assert_eq!(again.as_bytes(), fresh.as_bytes());
        assert!(b.is_empty());
    }
}

#[test]
fn a_column_starting_late_still_respects_the_limit() {
    // Hundreds of unkeyed records, then keyed ones: the key column is backfilled for all.
    let mut b = BatchBuilder::new(4096);
    let mut i = 0i64;
    while b.push(&Record { key: None, value: Some(b"v"), headers: &[], timestamp: i }).is_ok() {
        i += 1;
    }
    let mut b = BatchBuilder::new(4096);
    for t in 0..i * 3 / 4 {
        b.push(&Record { key: None, value: Some(b"v"), headers: &[], timestamp: t }).unwrap();
    }
    while b
        .push(&Record { key: Some(b"k"), value: Some(b"v"), headers: &[(b"h", b"v")], timestamp: i })
        .is_ok()
    {
        i += 1;
    }
    let batch = b.seal(ProducerStamp::default());
    assert!(batch.len() <= 4096, "sealed {} bytes over the 4096 limit", batch.len());
}

//! Kafka-format batches: Weir's header in front of a Kafka records section the log keeps whole.

mod common;

use common::{batch, small_config};
use futures::executor::block_on;
use weir_log::PartitionLog;
use weir_log::batch::header::{self, ATTR_COMPACTED, ATTR_PAYLOAD_FORMAT_MASK, ATTR_PAYLOAD_KAFKA};
use weir_log::batch::{BatchHeader, BatchView, KafkaFields, ProducerStamp, seal_kafka};
use weir_log::error::BatchError;
use weir_log::storage::mem::{CrashMode, MemStorage};

fn fields(records: u32, base_timestamp: i64) -> KafkaFields {
    KafkaFields {
        codec: 3,
        kafka_crc: 0xdead_beef,
        record_count: records,
        base_timestamp,
        max_timestamp: base_timestamp + 7,
        producer: ProducerStamp { producer_id: 42, producer_epoch: 3, base_sequence: 100 },
        txn: 0,
    }
}

/// Bytes the log never parses: it keeps them as they are.
fn section(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag ^ (i as u8)).collect()
}

#[test]
fn a_kafka_batch_keeps_its_section_and_fields_and_only_validate_stored_takes_it() {
    let s = section(7, 333);
    let mut b = seal_kafka(&fields(5, 1000), &s);
    b.set_base_offset(77, 4);
    let view = BatchView::validate_stored(b.as_bytes(), usize::MAX).unwrap();
    assert!(view.is_kafka());
    assert_eq!(view.payload(), &s[..]);
    assert_eq!(view.header().kafka_fields(), Some(fields(5, 1000)));
    assert_eq!(
        (view.header().base_offset, view.header().leader_epoch, view.header().last_offset()),
        (77, 4, 81)
    );
    assert_eq!(view.bytes().len() % 16, 0);
    // Where Weir's columns are expected (a native produce, a native consumer), it is refused.
    assert!(matches!(BatchView::validate(b.as_bytes(), usize::MAX), Err(BatchError::BadPayload { .. })));
    // Weir's own batches are no Kafka batches.
    let native = batch(1, 2, 10, 5);
    assert!(!native.view().is_kafka());
    assert_eq!(native.header().kafka_fields(), None);
    // The CRC covers the section.
    let mut flipped = b.as_bytes().to_vec();
    flipped[100] ^= 1;
    assert!(matches!(check(&flipped), Err(BatchError::ChecksumMismatch { .. })));
}

/// The field checks alone, on `bytes`' header changed by `f` (no frame, no CRC).
fn check_fields(bytes: &[u8], f: impl FnOnce(&mut BatchHeader)) -> Result<(), BatchError> {
    let mut h = BatchHeader::decode(bytes).unwrap();
    f(&mut h);
    h.check_fields()
}

fn check(bytes: &[u8]) -> Result<(), BatchError> {
    let mut v = rkyv::util::AlignedVec::<16>::new();
    v.extend_from_slice(bytes);
    BatchView::validate_stored(&v, usize::MAX).map(|_| ())
}

/// `bytes` with its header changed by `f` and its CRC made to match.
fn with_header(bytes: &[u8], f: impl FnOnce(&mut BatchHeader)) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let mut h = BatchHeader::decode(&b).unwrap();
    f(&mut h);
    h.encode(&mut b);
    h.crc = header::compute_crc(&b);
    h.encode(&mut b);
    b
}

#[test]
fn header_fields_no_kafka_batch_has_are_refused_even_with_a_matching_crc() {
    let kafka = seal_kafka(&fields(3, 10), &section(1, 64));
    let bytes = kafka.as_bytes();
    assert!(check(bytes).is_ok());
    let bad_header = |b: &[u8]| matches!(check(b), Err(BatchError::BadHeader { .. }));
    assert!(bad_header(&with_header(bytes, |h| h.attributes = ATTR_PAYLOAD_KAFKA | 5)), "codec above zstd");
    assert!(bad_header(&with_header(bytes, |h| h.attributes |= ATTR_COMPACTED)), "compacted");
    assert!(bad_header(&with_header(bytes, |h| h.reserved1 = 1 << 40)), "a CRC wider than 32 bits");
    assert!(bad_header(&with_header(bytes, |h| h.last_offset_delta = 5)), "offsets not dense");
    let huge = |h: &mut BatchHeader| h.payload_len = i32::MAX as u32;
    assert!(matches!(check_fields(bytes, huge), Err(BatchError::BadHeader { field: "payload_len", .. })));
    for format in [2u16, 3] {
        let attributes = (format << 8) & ATTR_PAYLOAD_FORMAT_MASK;
        assert!(bad_header(&with_header(bytes, |h| h.attributes = attributes)), "format {format}");
    }
    // Weir's columns are never compressed, and keep reserved1 zero.
    let native = batch(1, 2, 10, 5);
    assert!(bad_header(&with_header(native.as_bytes(), |h| h.attributes |= 1)));
    assert!(bad_header(&with_header(native.as_bytes(), |h| h.reserved1 = 9)));
}

#[test]
fn kafka_batches_are_appended_recovered_after_a_crash_and_read_back_byte_exactly() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        let mut sections = Vec::new();
        for t in 0..30u8 {
            if t % 3 == 0 {
                log.append(&batch(u64::from(t), 2, 50, 1000 + i64::from(t) * 10).view(), 1, 0).await.unwrap();
            } else {
                let s = section(t, 300 + usize::from(t) * 37);
                let b = seal_kafka(&fields(4, 1000 + i64::from(t) * 10), &s);
                let a = log.append(&b.view(), 1, 0).await.unwrap();
                sections.push((a.base_offset, s));
            }
        }
        log.flush().await.unwrap();
        assert!(log.segment_bases().len() >= 2, "segments rolled");
        let end = log.next_offset();
        drop(log);
        st.crash(CrashMode::LoseUnsynced);

        let (log, report) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!(report.truncated, None);
        assert_eq!(log.next_offset(), end);
        let mut read = Vec::new();
        let mut offset = 0;
        while offset < end {
            let f = log.read(offset, 4096).await.unwrap();
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(f.bytes());
            let mut bytes = &aligned[..];
            while !bytes.is_empty() {
                let view = BatchView::validate_stored(bytes, usize::MAX).unwrap();
                if view.is_kafka() {
                    read.push((view.header().base_offset, view.payload().to_vec()));
                }
                bytes = &bytes[view.bytes().len()..];
            }
            offset = f.next_offset;
        }
        assert_eq!(read, sections);
        // A timestamp inside a Kafka batch finds the batch: the log does not read its records.
        let (kafka_base, _) = sections[3];
        assert_eq!(log.plan_timestamp_lookup(1000 + 5 * 10 + 3).execute().await.unwrap(), Some(kafka_base));
    });
}

//! Compacted batches: a stored batch rebuilt with a subset of its records.
//!
//! The rebuilt batch keeps what places it in the log: base offset, leader epoch, producer
//! fields and `last_offset_delta`, so every surviving record keeps its offset and the batch
//! keeps its offset range. The survivors' offsets go into `offset_deltas`, the timestamps are
//! rebased on the smallest surviving one, and the CRC is recomputed. The batch is marked
//! [`ATTR_COMPACTED`] with its base offset pinned in `reserved1`, so it may follow a gap.

use super::builder::seal_columns;
use super::columns::{Columns, set_bit};
use super::header::{ATTR_COMPACTED, BatchHeader};
use super::{Batch, BatchView, RecordView};

/// Rebuilds `view` keeping the records `i` for which `keep[i]` is set (`keep` has one entry
/// per record), record `without_value` (one kept) with its value dropped. `None` when no record
/// is kept: the batch is dropped and leaves a gap.
pub fn retain(view: &BatchView<'_>, keep: &[bool], without_value: Option<usize>) -> Option<Batch> {
    assert_eq!(keep.len(), view.record_count(), "one keep flag per record");
    assert!(without_value.is_none_or(|i| keep[i]), "a record without its value is a kept one");
    let h = *view.header();
    let kept: Vec<RecordView<'_>> = (view.records().enumerate())
        .filter(|(i, _)| keep[*i])
        .map(|(i, mut r)| {
            if without_value == Some(i) {
                r.value = None;
            }
            r
        })
        .collect();
    let first_timestamp = kept.iter().map(|r| r.timestamp).min()?;
    let max_timestamp = kept.iter().map(|r| r.timestamp).max().expect("records were kept");
    let cols = columns_of(&kept, h.base_offset, first_timestamp);
    let header = BatchHeader {
        attributes: h.attributes | ATTR_COMPACTED,
        record_count: kept.len() as u32,
        first_timestamp,
        max_timestamp,
        reserved1: h.base_offset,
        ..h
    };
    let batch = Batch::from_sealed(seal_columns(&cols, header, h.batch_len as usize + 4 * kept.len()));
    // The rebuilt batch must be one every reader accepts: checked in release builds too, as a
    // bad one would be written over the only copy of its records.
    let b = BatchView::validate(batch.as_bytes(), usize::MAX).expect("a retained batch is valid");
    assert_eq!(b.header().next_offset(), h.next_offset(), "the offset range is unchanged");
    Some(batch)
}

/// The columns of `records`, which keep their offsets relative to `base_offset`.
fn columns_of(records: &[RecordView<'_>], base_offset: u64, first_timestamp: i64) -> Columns {
    let mut c = Columns::default();
    let keys_on = records.iter().any(|r| r.key.is_some());
    let headers_on = records.iter().any(|r| r.headers().next().is_some());
    let timestamps_on = records.iter().any(|r| r.timestamp != first_timestamp);
    let end = |data: &Vec<u8>| u32::try_from(data.len()).expect("batch data fits u32");
    for (i, r) in records.iter().enumerate() {
        c.offset_deltas.push(u32::try_from(r.offset - base_offset).expect("a delta of the batch"));
        if timestamps_on {
            c.timestamp_deltas.push((r.timestamp - first_timestamp) as u32);
        }
        if keys_on {
            c.data.extend_from_slice(r.key.unwrap_or_default());
            c.key_ends.push(end(&c.data));
            if r.key.is_none() {
                set_bit(&mut c.key_nulls, i);
            }
        }
        for (k, v) in r.headers() {
            c.data.extend_from_slice(k);
            c.header_key_ends.push(end(&c.data));
            c.data.extend_from_slice(v);
            c.header_value_ends.push(end(&c.data));
        }
        if headers_on {
            c.header_ends.push(c.header_key_ends.len() as u32);
        }
        match r.value {
            Some(v) => c.data.extend_from_slice(v),
            None => set_bit(&mut c.value_nulls, i),
        }
        c.value_ends.push(end(&c.data));
    }
    // Bitmaps are either empty or exactly one bit per record.
    for bitmap in [&mut c.key_nulls, &mut c.value_nulls] {
        if !bitmap.is_empty() {
            bitmap.resize(records.len().div_ceil(8), 0);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, ProducerStamp, Record};

    fn sample() -> Batch {
        let mut b = BatchBuilder::new(1 << 20);
        let hdr: &[(&[u8], &[u8])] = &[(b"h", b"v")];
        for i in 0..10u8 {
            let key = [b'k', i % 3];
            let value = [i; 5];
            let rec = Record {
                key: (i != 4).then_some(&key[..]),
                value: (i % 4 != 1).then_some(&value[..]),
                headers: if i % 2 == 0 { hdr } else { &[] },
                timestamp: 1000 + i64::from(i) * 7,
            };
            b.push(&rec).unwrap();
        }
        let stamp = ProducerStamp { producer_id: 9, producer_epoch: 2, base_sequence: 40 };
        let mut batch = b.seal(stamp);
        batch.set_base_offset(500, 3);
        batch
    }

    #[test]
    fn retained_records_keep_their_offsets_and_contents() {
        let batch = sample();
        let view = batch.view();
        for mask in [0b11_1111_1111u16, 0b10_0000_0000, 0b00_0000_0001, 0b01_0101_0110, 0b00_1000_0000] {
            let keep: Vec<bool> = (0..10).map(|i| mask & (1 << i) != 0).collect();
            let out = retain(&view, &keep, None).unwrap();
            let got: Vec<RecordView<'_>> = out.view().records().collect();
            let want: Vec<RecordView<'_>> =
                view.records().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r).collect();
            assert_eq!(got, want, "mask {mask:#b}");
            let (a, b) = (out.header(), batch.header());
            assert_eq!((a.base_offset, a.leader_epoch, a.last_offset_delta), (500, 3, 9));
            assert_eq!((a.producer_id, a.producer_epoch, a.base_sequence), (9, 2, 40));
            assert_eq!(a.next_offset(), b.next_offset());
            assert!(a.is_compacted() && a.reserved1 == 500);
        }
        assert!(retain(&view, &[false; 10], None).is_none(), "an emptied batch is dropped");
        // A record kept only to hold its place loses its value, and nothing else.
        let mut keep = [false; 10];
        keep[9] = true;
        let out = retain(&view, &keep, Some(9)).unwrap();
        let mut want = view.records().last().unwrap();
        want.value = None;
        assert_eq!(out.view().records().collect::<Vec<_>>(), vec![want]);
    }

    /// A compacted batch pins its base offset: a changed base offset fails full validation,
    /// and a gap before it is accepted only with the pin intact.
    #[test]
    fn the_pin_covers_the_base_offset() {
        let batch = sample();
        let mut keep = [true; 10];
        keep[0] = false;
        let out = retain(&batch.view(), &keep, None).unwrap();
        let h = out.header();
        assert!(h.may_start_at(400) && h.may_start_at(500) && !h.may_start_at(501));
        let mut moved = out.clone();
        moved.set_base_offset(756, 3);
        assert!(BatchView::validate(moved.as_bytes(), usize::MAX).is_err());
        assert!(!moved.header().may_start_at(500));
        assert!(!batch.header().may_start_at(400), "a plain batch never follows a gap");
    }
}

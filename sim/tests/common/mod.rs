//! Helpers shared by the simulation tests.
#![allow(dead_code)]

use bytes::Bytes;
use weir_log::batch::{BatchBuilder, BatchView, ProducerStamp, Record};

/// A batch of one record for each of `values`, as a producer would send it.
pub fn batch<V: AsRef<[u8]>>(values: &[V]) -> Bytes {
    let mut b = BatchBuilder::new(1 << 20);
    for v in values {
        b.push(&Record { key: None, value: Some(v.as_ref()), headers: &[], timestamp: 1 }).unwrap();
    }
    Bytes::copy_from_slice(b.seal(ProducerStamp::default()).as_bytes())
}

/// Records `(offset, value)` of fetched bytes, each batch validated as a consumer would.
pub fn records(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let mut out = Vec::new();
    let mut rest: &[u8] = &aligned;
    while !rest.is_empty() {
        let view = BatchView::validate(rest, usize::MAX).expect("served batches are valid");
        out.extend(view.records().map(|r| (r.offset, r.value.unwrap().to_vec())));
        rest = &rest[view.bytes().len()..];
    }
    out
}

//! The record batch: one format on the wire, on disk, to replicas and to consumers.
//!
//! A producer builds and seals a batch ([`BatchBuilder`]); the leader validates it once
//! ([`BatchView::validate`]), patches its base offset and leader epoch, and writes the same bytes
//! to its log; consumers and replicas receive those bytes unchanged.

mod builder;
mod columns;
pub mod header;
mod kafka_payload;
mod retain;
mod view;

pub use builder::{BatchBuilder, BuildError, ProducerStamp};
pub use columns::Columns;
pub use header::{BatchHeader, HEADER_BYTES, PayloadFormat, patch_offsets};
pub use kafka_payload::{KafkaFields, seal_kafka};
pub use retain::retain;
pub use view::{BatchView, Headers, RecordView, Records, check_frame_and_crc};

use rkyv::util::AlignedVec;

/// A record as a producer hands it to a [`BatchBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// An owned, sealed batch in a 16-byte aligned buffer.
#[derive(Debug, Clone)]
pub struct Batch {
    bytes: AlignedVec<16>,
}

impl Batch {
    pub(crate) fn from_sealed(bytes: AlignedVec<16>) -> Self {
        Self { bytes }
    }

    /// Copies `bytes` into an aligned buffer and validates them fully.
    pub fn from_bytes(bytes: &[u8], len_max: usize) -> Result<Self, crate::error::BatchError> {
        let header = check_frame_and_crc(bytes, len_max)?;
        let mut owned = AlignedVec::<16>::with_capacity(header.batch_len as usize);
        owned.extend_from_slice(&bytes[..header.batch_len as usize]);
        BatchView::validate(&owned, len_max)?;
        Ok(Self { bytes: owned })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn header(&self) -> BatchHeader {
        BatchHeader::decode(&self.bytes).expect("a sealed batch has a header")
    }

    /// Sets base offset and leader epoch; the CRC stays valid because it does not cover them.
    pub fn set_base_offset(&mut self, base_offset: u64, leader_epoch: u32) {
        patch_offsets(&mut self.bytes, base_offset, leader_epoch);
    }

    /// Sets the transaction bits ([`header::ATTR_TXN_MASK`]) of a batch converted from a
    /// Kafka-format one, with its CRC computed again: the CRC covers the attributes.
    pub fn set_txn_bits(&mut self, bits: u16) {
        assert_eq!(bits & !header::ATTR_TXN_MASK, 0, "transaction bits only");
        let mut h = self.header();
        h.attributes |= bits;
        h.encode(&mut self.bytes[..HEADER_BYTES]);
        h.crc = header::compute_crc(&self.bytes[..h.batch_len as usize]);
        h.encode(&mut self.bytes[..HEADER_BYTES]);
    }

    /// Gives the batch another idempotent producer stamp (an epoch and sequence its producer
    /// chose anew), with its CRC computed again: the CRC covers the producer fields.
    pub fn restamp(&mut self, stamp: crate::batch::ProducerStamp) {
        let mut h = self.header();
        h.producer_id = stamp.producer_id;
        h.producer_epoch = stamp.producer_epoch;
        h.base_sequence = stamp.base_sequence;
        h.encode(&mut self.bytes[..HEADER_BYTES]);
        h.crc = header::compute_crc(&self.bytes[..h.batch_len as usize]);
        h.encode(&mut self.bytes[..HEADER_BYTES]);
        debug_assert!(
            BatchView::validate_stored(&self.bytes, usize::MAX).is_ok(),
            "a restamped batch is valid"
        );
    }

    /// A view of the batch (for iterating its records, if it has Weir's columns). Sealed
    /// batches are valid by construction, so this validates again only as an assertion.
    pub fn view(&self) -> BatchView<'_> {
        BatchView::validate_stored(&self.bytes, usize::MAX).expect("a sealed batch is valid")
    }
}

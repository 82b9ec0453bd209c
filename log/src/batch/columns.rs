//! The rkyv payload of a batch, laid out by column.
//!
//! One archived struct per batch, not one per record: rkyv's check then touches a fixed number
//! of objects whatever the record count, and a record costs a few `u32`s of framing instead of
//! an archived struct with its own pointers. Optional columns stay empty when every record has
//! the trivial value, so a batch of unkeyed, header-less records pays for `value_ends` alone.
//!
//! Record `i` occupies `data[start_i .. value_ends[i]]`, where `start_i` is `value_ends[i - 1]`
//! (0 for the first record), in this order: key, then each header's key and value, then value.

/// The columns of a batch. Every per-record column is either empty or has one entry per record.
#[derive(Debug, Default, Clone, rkyv::Archive, rkyv::Serialize)]
#[rkyv(derive(Debug))]
pub struct Columns {
    /// Offset of each record minus the batch's base offset, strictly increasing. Empty when the
    /// offsets are dense (record `i` has delta `i`), which is every batch until compaction.
    pub offset_deltas: Vec<u32>,
    /// Timestamp of each record minus the batch's `first_timestamp` (its smallest). Empty when
    /// every record carries `first_timestamp`.
    pub timestamp_deltas: Vec<u32>,
    /// End of each record's key in `data`. Empty when no record has a key.
    pub key_ends: Vec<u32>,
    /// Bitmap (bit `i % 8` of byte `i / 8`) of records whose key is null rather than empty.
    /// Empty when no key is null or when `key_ends` is empty (then every key is null).
    pub key_nulls: Vec<u8>,
    /// Number of headers of records `0..=i`. Empty when no record has headers.
    pub header_ends: Vec<u32>,
    /// End of each header's key in `data`, across all records in order.
    pub header_key_ends: Vec<u32>,
    /// End of each header's value in `data`.
    pub header_value_ends: Vec<u32>,
    /// End of each record's value, which is also where the record ends. Never empty.
    pub value_ends: Vec<u32>,
    /// Bitmap of records whose value is null (a tombstone for compaction). Empty when none is.
    pub value_nulls: Vec<u8>,
    /// Keys, headers and values of all records, back to back.
    pub data: Vec<u8>,
}

pub(crate) fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

pub(crate) fn set_bit(bitmap: &mut Vec<u8>, i: usize) {
    if bitmap.len() <= i / 8 {
        bitmap.resize(i / 8 + 1, 0);
    }
    bitmap[i / 8] |= 1 << (i % 8);
}

pub(crate) const fn bitmap_len(count: usize) -> usize {
    count.div_ceil(8)
}

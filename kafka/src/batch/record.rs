//! Walking the records of a Kafka v2 batch, validating every length exactly.
//!
//! The walker borrows keys, values and headers from the (decompressed) records section and
//! allocates nothing. Headers are checked when their record is walked and decoded again, lazily,
//! when iterated: a header list in order, duplicate keys included, is exactly what Kafka sent.
//! kafka-protocol's decoder keeps headers in a map and so loses duplicates; this does not.

use super::varint::{VarintError, read_varint, read_varlong};
use crate::error::BatchConvertError;

/// Fewest bytes a record takes: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each.
pub const RECORD_BYTES_MIN: usize = 7;

/// One record of a Kafka batch, borrowed from its records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaRecord<'a> {
    /// Unused by Kafka; carried here only so a caller may look.
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    header_bytes: &'a [u8],
    header_count: usize,
}

impl<'a> KafkaRecord<'a> {
    /// The record's headers in order, as `(key, value)`; a value is `None` when null.
    pub fn headers(&self) -> KafkaHeaders<'a> {
        KafkaHeaders { bytes: self.header_bytes, left: self.header_count }
    }

    pub fn header_count(&self) -> usize {
        self.header_count
    }
}

/// The headers of one walked record. Their lengths were checked by the walk, so iterating
/// cannot fail.
#[derive(Debug, Clone)]
pub struct KafkaHeaders<'a> {
    bytes: &'a [u8],
    left: usize,
}

impl<'a> Iterator for KafkaHeaders<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut c = Cursor { buf: self.bytes, pos: 0 };
        let key = c.bytes_field().expect("walked").expect("header keys are not null");
        let value = c.bytes_field().expect("walked");
        self.bytes = &self.bytes[c.pos..];
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for KafkaHeaders<'_> {}

/// Reads fields from the records section up to the end of `buf`; `pos` is where errors point.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn malformed(&self, reason: &'static str) -> BatchConvertError {
        BatchConvertError::Malformed { reason, at: self.pos }
    }

    fn varint_error(&self, e: VarintError) -> BatchConvertError {
        match e {
            VarintError::Truncated => self.malformed("a varint runs past its record"),
            VarintError::Overlong => self.malformed("an overlong varint"),
        }
    }

    fn varint(&mut self) -> Result<i32, BatchConvertError> {
        let (v, n) = read_varint(&self.buf[self.pos..]).map_err(|e| self.varint_error(e))?;
        self.pos += n;
        Ok(v)
    }

    fn varlong(&mut self) -> Result<i64, BatchConvertError> {
        let (v, n) = read_varlong(&self.buf[self.pos..]).map_err(|e| self.varint_error(e))?;
        self.pos += n;
        Ok(v)
    }

    fn i8(&mut self) -> Result<i8, BatchConvertError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.malformed("a record ends in its attributes"))?;
        self.pos += 1;
        Ok(b as i8)
    }

    /// A length-prefixed byte string; length -1 is null, below -1 malformed.
    fn bytes_field(&mut self) -> Result<Option<&'a [u8]>, BatchConvertError> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| self.malformed("a negative length"))?;
        if len > self.buf.len() - self.pos {
            return Err(self.malformed("a field runs past its record"));
        }
        let bytes = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(Some(bytes))
    }
}

/// Walks `count` records of a records section, then checks that nothing follows them.
#[derive(Debug, Clone)]
pub struct RecordWalker<'a> {
    buf: &'a [u8],
    pos: usize,
    index: usize,
    count: usize,
}

impl<'a> RecordWalker<'a> {
    /// A walker over `records` (decompressed), which should hold exactly `count` records.
    pub fn new(records: &'a [u8], count: usize) -> Self {
        Self { buf: records, pos: 0, index: 0, count }
    }

    /// The next record, or `None` after `count` records; use [`finish`](Self::finish) then.
    pub fn next_record(&mut self) -> Result<Option<KafkaRecord<'a>>, BatchConvertError> {
        if self.index == self.count {
            return Ok(None);
        }
        let mut c = Cursor { buf: self.buf, pos: self.pos };
        if c.pos == self.buf.len() {
            return Err(c.malformed("fewer records than recordsCount"));
        }
        let declared = c.varlong_as_length()?;
        let start = c.pos;
        let available = self.buf.len() - start;
        if declared > available as u64 {
            return Err(BatchConvertError::RecordLength {
                index: self.index,
                declared: declared as i64,
                actual: available,
            });
        }
        let end = start + declared as usize;
        let body = Cursor { buf: &self.buf[..end], pos: start };
        let record = walk_body(body, self.index)?;
        self.pos = end;
        self.index += 1;
        Ok(Some(record))
    }

    /// Checks that the records section ends right after the last record.
    pub fn finish(self) -> Result<(), BatchConvertError> {
        if self.index < self.count {
            return Err(BatchConvertError::Malformed {
                reason: "fewer records than recordsCount",
                at: self.pos,
            });
        }
        if self.pos != self.buf.len() {
            return Err(BatchConvertError::Malformed { reason: "bytes after the last record", at: self.pos });
        }
        Ok(())
    }
}

impl Cursor<'_> {
    /// A record's length varint (zigzag, like every varint here), refused when negative.
    fn varlong_as_length(&mut self) -> Result<u64, BatchConvertError> {
        let len = self.varint()?;
        u64::try_from(len).map_err(|_| self.malformed("a negative record length"))
    }
}

/// Reads a record's fields from `c`, whose buffer ends where the record's length says; every
/// byte up to there must belong to a field.
fn walk_body(mut c: Cursor<'_>, index: usize) -> Result<KafkaRecord<'_>, BatchConvertError> {
    let start = c.pos;
    let attributes = c.i8()?;
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let key = c.bytes_field()?;
    let value = c.bytes_field()?;
    let header_count = c.varint()?;
    let header_count = usize::try_from(header_count).map_err(|_| c.malformed("a negative header count"))?;
    // Each header takes at least its two length bytes: a count beyond that is a lie.
    if header_count > (c.buf.len() - c.pos) / 2 {
        return Err(c.malformed("more headers than the record's bytes can hold"));
    }
    let headers_start = c.pos;
    for _ in 0..header_count {
        if c.bytes_field()?.is_none() {
            return Err(c.malformed("a null header key"));
        }
        c.bytes_field()?;
    }
    if c.pos != c.buf.len() {
        return Err(BatchConvertError::RecordLength {
            index,
            declared: (c.buf.len() - start) as i64,
            actual: c.pos - start,
        });
    }
    Ok(KafkaRecord {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        header_bytes: &c.buf[headers_start..c.pos],
        header_count,
    })
}

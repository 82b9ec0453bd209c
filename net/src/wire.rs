//! Little-endian primitives of message bodies.
//!
//! Strings are a `u16` length and UTF-8; record batches a `u32` length, zero padding up to the
//! next multiple of 16 from the body start, then the batch bytes, so that they stay 16-byte
//! aligned in an aligned receive buffer. Every read is bounds checked and returns a typed error,
//! never panics; so is every write of a length-prefixed field: one longer than its length prefix
//! can say is refused with [`EncodeError::FieldTooLong`], and free-text messages are cut to fit.

use crate::error::{DecodeError, EncodeError};

/// Builds a message body.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A string field, refused if longer than `u16::MAX` bytes; `field` names it in the error.
    pub fn str(&mut self, field: &'static str, v: &str) -> Result<&mut Self, EncodeError> {
        let len = length::<u16>(field, v.len(), u16::MAX.into())?;
        self.u16(len);
        self.buf.extend_from_slice(v.as_bytes());
        Ok(self)
    }
    /// A free-text message (an error's description): cut at the last character boundary that
    /// fits rather than refused, so that an error can always be answered.
    pub fn text(&mut self, v: &str) -> &mut Self {
        let mut end = v.len().min(usize::from(u16::MAX));
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        self.str("message", &v[..end]).expect("a message cut to fit")
    }
    /// Record batches: length, padding to 16 from the body start, bytes.
    pub fn batches(&mut self, v: &[u8]) -> Result<&mut Self, EncodeError> {
        self.batches_head(v.len())?;
        self.buf.extend_from_slice(v);
        Ok(self)
    }

    /// The length and padding of `len` bytes of record batches, which the caller sends right
    /// after this buffer instead of copying them into it. The buffer must start at the body or at
    /// a 16-byte frame header (the padding counts from a multiple of 16 either way).
    pub fn batches_head(&mut self, len: usize) -> Result<&mut Self, EncodeError> {
        self.u32(length::<u32>("batches", len, u32::MAX.into())?);
        let pad = self.buf.len().next_multiple_of(16) - self.buf.len();
        self.buf.resize(self.buf.len() + pad, 0);
        Ok(self)
    }
}

/// `len` as the length prefix type `T`, or the error naming `field` when it does not fit.
/// `max` is the largest value of `T`, for the error.
fn length<T: TryFrom<usize>>(field: &'static str, len: usize, max: u64) -> Result<T, EncodeError> {
    T::try_from(len).map_err(|_| EncodeError::FieldTooLong { field, len, max })
}

/// Reads a message body.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.buf.len() - self.pos;
        if left < n {
            return Err(DecodeError::Truncated { at: self.pos, needed: n - left });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(self.u64()? as i64)
    }
    pub fn str(&mut self) -> Result<String, DecodeError> {
        let len = self.u16()? as usize;
        let at = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadUtf8 { at })
    }
    pub fn batches(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        let pad = self.pos.next_multiple_of(16) - self.pos;
        self.take(pad)?;
        self.take(len)
    }
    /// A count of items to follow, bounded by the bytes left (each item takes at least
    /// `item_bytes_min`), so a forged count cannot make the reader allocate without bound.
    pub fn count(&mut self, item_bytes_min: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        let left = self.buf.len() - self.pos;
        if n.saturating_mul(item_bytes_min.max(1)) > left {
            return Err(DecodeError::Truncated { at: self.pos, needed: n * item_bytes_min.max(1) - left });
        }
        Ok(n)
    }
    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            left => Err(DecodeError::TrailingBytes { left }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversize_string_is_refused_not_written() {
        let mut w = Writer::default();
        let long = "t".repeat(70_000);
        let e = w.str("topic", &long).unwrap_err();
        assert_eq!(e, EncodeError::FieldTooLong { field: "topic", len: 70_000, max: 65_535 });
        assert!(w.buf.is_empty(), "nothing of a refused field is written");
        w.str("topic", &long[..65_535]).unwrap();
        assert_eq!(w.buf.len(), 2 + 65_535);
    }

    #[test]
    fn a_long_message_is_cut_at_a_character_boundary() {
        let mut w = Writer::default();
        // Two-byte characters: the limit falls inside one.
        w.text(&"é".repeat(40_000));
        let mut r = Reader::new(&w.buf);
        let text = r.str().unwrap();
        assert_eq!(text.len(), 65_534);
        assert!(text.chars().all(|c| c == 'é'));
        r.finish().unwrap();
    }
}

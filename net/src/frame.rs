//! Framing: a 16-byte header in front of every request and response.
//!
//! ```text
//! offset size field
//! 0      4    frame_len       bytes after this field (12 + body), little-endian
//! 4      2    api_key
//! 6      2    api_version
//! 8      4    correlation_id  chosen by the client, echoed in the response
//! 12     2    flags           bit 0 (responses): the body is an ErrorBody, not the response
//! 14     2    reserved        zero
//! 16     ..   body
//! ```
//! The header is 16 bytes so that a body read into a 16-byte aligned buffer keeps the record
//! batches inside it aligned (the body pads before them), and the node validates them in place.
//! Requests on one stream are pipelined; responses come back in request order per stream.

use crate::error::DecodeError;

pub const FRAME_HEADER_BYTES: usize = 16;
/// `frame_len` counts the header bytes after the length field too.
const LEN_FIELD_BYTES: usize = 4;
pub const FLAG_ERROR: u16 = 1;
const FLAGS_KNOWN: u16 = FLAG_ERROR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of body after the 16-byte header.
    pub body_len: usize,
    pub api_key: u16,
    pub api_version: u16,
    pub correlation_id: u32,
    pub flags: u16,
}

impl FrameHeader {
    pub fn encode(&self, out: &mut [u8]) {
        let len = (self.body_len + FRAME_HEADER_BYTES - LEN_FIELD_BYTES) as u32;
        out[0..4].copy_from_slice(&len.to_le_bytes());
        out[4..6].copy_from_slice(&self.api_key.to_le_bytes());
        out[6..8].copy_from_slice(&self.api_version.to_le_bytes());
        out[8..12].copy_from_slice(&self.correlation_id.to_le_bytes());
        out[12..14].copy_from_slice(&self.flags.to_le_bytes());
        out[14..16].copy_from_slice(&0u16.to_le_bytes());
    }

    /// Decodes a header, checking the length against `frame_bytes_max` (header included) before
    /// anything is allocated for the body, so a huge length prefix costs nothing.
    pub fn decode(b: &[u8], frame_bytes_max: usize) -> Result<Self, DecodeError> {
        if b.len() < FRAME_HEADER_BYTES {
            return Err(DecodeError::Truncated { at: b.len(), needed: FRAME_HEADER_BYTES - b.len() });
        }
        let len = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")) as usize;
        if len < FRAME_HEADER_BYTES - LEN_FIELD_BYTES {
            return Err(DecodeError::FrameTooSmall { len });
        }
        let total = len + LEN_FIELD_BYTES;
        if total > frame_bytes_max {
            return Err(DecodeError::FrameTooLarge { len: total, limit: frame_bytes_max });
        }
        let flags = u16::from_le_bytes([b[12], b[13]]);
        let reserved = u16::from_le_bytes([b[14], b[15]]);
        if flags & !FLAGS_KNOWN != 0 || reserved != 0 {
            return Err(DecodeError::ReservedBits { flags: flags | reserved });
        }
        Ok(Self {
            body_len: total - FRAME_HEADER_BYTES,
            api_key: u16::from_le_bytes([b[4], b[5]]),
            api_version: u16::from_le_bytes([b[6], b[7]]),
            correlation_id: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
            flags,
        })
    }

    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_BYTES + self.body_len
    }
}

/// Splits a byte stream into frames. Sans-IO: feed it what the transport read, take whole
/// frames out. Holds at most one frame of `frame_bytes_max` plus what was fed past it.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as frames.
    consumed: usize,
    frame_bytes_max: usize,
}

impl FrameDecoder {
    pub fn new(frame_bytes_max: usize) -> Self {
        assert!(frame_bytes_max >= FRAME_HEADER_BYTES);
        Self { buf: Vec::new(), consumed: 0, frame_bytes_max }
    }

    /// Appends bytes read from the transport.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.consumed > 0 && self.consumed * 2 >= self.buf.len() {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// The next whole frame, if one is buffered: its header and its bytes (header included;
    /// the body starts at `FRAME_HEADER_BYTES`). An error means the stream is unusable (a bad
    /// header): the connection must be closed after answering it.
    pub fn next_frame(&mut self) -> Result<Option<(FrameHeader, &[u8])>, DecodeError> {
        let rest = &self.buf[self.consumed..];
        if rest.len() < FRAME_HEADER_BYTES {
            return Ok(None);
        }
        let header = FrameHeader::decode(rest, self.frame_bytes_max)?;
        if rest.len() < header.frame_len() {
            return Ok(None);
        }
        let start = self.consumed;
        self.consumed += header.frame_len();
        Ok(Some((header, &self.buf[start..start + header.frame_len()])))
    }
}

/// Encodes one frame: header then body.
/// The frame header and the first part of a body whose last `tail_len` bytes the caller sends
/// right after, uncopied (a fetch's record batches).
pub fn encode_frame_head(
    api_key: u16,
    api_version: u16,
    correlation_id: u32,
    flags: u16,
    body_head: &[u8],
    tail_len: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; FRAME_HEADER_BYTES + body_head.len()];
    let body_len = body_head.len() + tail_len;
    FrameHeader { body_len, api_key, api_version, correlation_id, flags }.encode(&mut out);
    out[FRAME_HEADER_BYTES..].copy_from_slice(body_head);
    out
}

pub fn encode_frame(api_key: u16, api_version: u16, correlation_id: u32, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; FRAME_HEADER_BYTES + body.len()];
    FrameHeader { body_len: body.len(), api_key, api_version, correlation_id, flags }.encode(&mut out);
    out[FRAME_HEADER_BYTES..].copy_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_feeds_come_out_whole() {
        let a = encode_frame(5, 1, 7, 0, b"hello");
        let b = encode_frame(6, 1, 8, 0, &[9u8; 100]);
        let stream: Vec<u8> = a.iter().chain(&b).copied().collect();
        let mut d = FrameDecoder::new(1 << 20);
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            d.feed(chunk);
            while let Some((h, frame)) = d.next_frame().unwrap() {
                got.push((h.api_key, h.correlation_id, frame[FRAME_HEADER_BYTES..].to_vec()));
            }
        }
        assert_eq!(got, vec![(5, 7, b"hello".to_vec()), (6, 8, vec![9u8; 100])]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_huge_length_prefix_is_refused_before_any_allocation() {
        let mut d = FrameDecoder::new(1 << 20);
        let mut f = encode_frame(5, 1, 7, 0, b"x");
        f[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        d.feed(&f);
        assert!(matches!(d.next_frame(), Err(DecodeError::FrameTooLarge { .. })));
        let mut f = encode_frame(5, 1, 7, 0, b"x");
        f[0..4].copy_from_slice(&3u32.to_le_bytes());
        let mut d = FrameDecoder::new(1 << 20);
        d.feed(&f);
        assert!(matches!(d.next_frame(), Err(DecodeError::FrameTooSmall { len: 3 })));
    }
}

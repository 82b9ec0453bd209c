//! Reading request frames from one connection (or QUIC stream) within the node's request memory.
//!
//! Owned by the task that serves the connection. Bytes arrive first in a fixed head buffer of
//! [`HEAD_READ_BYTES`], the only memory an idle connection holds (beside its socket and task);
//! it is not counted in the request memory, so that idle connections can never use that up, and
//! `connections_max` bounds it. Once a frame's header is there, the whole frame is reserved from
//! the request memory (`request_memory.rs`), waiting without reading while there is no room,
//! then allocated at its exact size and read into directly, never past its end. A frame that
//! fits the head buffer is gathered there whole first, so it is never reserved partial (see
//! `request_memory.rs`). Small frames, pipelined, come many to a read.

use crate::request_memory::{Reservation, ShardMemory};
use futures::{AsyncRead, AsyncReadExt};
use std::rc::Rc;
use weir_net::DecodeError;
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader};

/// A frame's buffer: aligned as rkyv needs the batches in it.
type FrameBuf = rkyv::util::AlignedVec<16>;

/// Size of each connection's head buffer: a read takes up to this much of frames not yet
/// reserved.
pub const HEAD_READ_BYTES: usize = 16 << 10;

/// One request frame read whole, with the request memory it holds until it is dropped.
#[derive(Debug)]
pub struct Frame {
    pub header: FrameHeader,
    /// The frame, header included.
    /// 16-byte aligned, so the batches it carries (16-byte multiples within the frame) are
    /// validated and appended in place.
    pub bytes: bytes::Bytes,
    pub reservation: Reservation,
}

/// What reading a connection gave.
#[derive(Debug)]
pub enum Read {
    Frame(Frame),
    /// The client finished sending (a frame cut short by the end is dropped).
    End,
    /// A header that does not decode: the stream is unusable.
    Malformed(DecodeError),
}

/// A frame reserved and partly read.
#[derive(Debug)]
struct Body {
    header: FrameHeader,
    bytes: FrameBuf,
    filled: usize,
    reservation: Reservation,
}

/// Splits what one connection sends into frames; see the module's documentation.
#[derive(Debug)]
pub struct FrameReader {
    head: Box<[u8]>,
    /// `head[start..end]` holds bytes read and not yet taken into a frame.
    start: usize,
    end: usize,
    body: Option<Body>,
    frame_bytes_max: usize,
    memory: Rc<ShardMemory>,
}

impl FrameReader {
    pub fn new(memory: Rc<ShardMemory>, frame_bytes_max: usize) -> Self {
        assert!(frame_bytes_max >= FRAME_HEADER_BYTES);
        Self {
            head: vec![0; HEAD_READ_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            body: None,
            frame_bytes_max,
            memory,
        }
    }

    /// The next frame, reading `stream` as needed. Cancel-safe: everything read or reserved is
    /// kept in `self` at each await, so a dropped call loses nothing.
    pub async fn next<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> std::io::Result<Read> {
        loop {
            if let Some(body) = &mut self.body {
                if body.filled == body.bytes.len() {
                    let Body { header, bytes, mut reservation, .. } = self.body.take().expect("a body");
                    reservation.received();
                    return Ok(Read::Frame(Frame {
                        header,
                        bytes: bytes::Bytes::from_owner(bytes),
                        reservation,
                    }));
                }
                let n = stream.read(&mut body.bytes[body.filled..]).await?;
                if n == 0 {
                    return Ok(Read::End);
                }
                body.filled += n;
                continue;
            }
            let here = self.end - self.start;
            if here >= FRAME_HEADER_BYTES {
                let header = match FrameHeader::decode(&self.head[self.start..self.end], self.frame_bytes_max)
                {
                    Ok(h) => h,
                    Err(e) => return Ok(Read::Malformed(e)),
                };
                // A frame that fits the head buffer is gathered there whole before it is
                // reserved: only larger ones are ever reserved partial.
                if here >= header.frame_len() || header.frame_len() > HEAD_READ_BYTES {
                    if let Some(frame) = self.start_frame(header).await {
                        return Ok(Read::Frame(frame));
                    }
                    continue;
                }
            }
            // Less than a frame is left: move it to the front and read more after it.
            self.head.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let n = stream.read(&mut self.head[self.end..]).await?;
            if n == 0 {
                return Ok(Read::End);
            }
            self.end += n;
        }
    }

    /// Reserves the frame whose header starts the head buffer and takes what the head holds of
    /// it: the frame if it is all there, else its start, as `self.body`.
    async fn start_frame(&mut self, header: FrameHeader) -> Option<Frame> {
        let len = header.frame_len();
        let here = (self.end - self.start).min(len);
        let whole = here == len;
        let reservation = self.memory.reserve(len, !whole).await;
        // Nothing was taken before the wait: a call dropped there has lost nothing.
        let mut bytes = FrameBuf::with_capacity(len);
        bytes.resize(len, 0);
        bytes[..here].copy_from_slice(&self.head[self.start..self.start + here]);
        self.start += here;
        if whole {
            return Some(Frame { header, bytes: bytes::Bytes::from_owner(bytes), reservation });
        }
        self.body = Some(Body { header, bytes, filled: here, reservation });
        None
    }
}

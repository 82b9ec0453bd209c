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
//!
//! Reads are bounded in time. A frame once started (its first byte read) must arrive within
//! `request_read_timeout_ms`; the clock restarts when its memory is reserved (waiting for memory
//! is the node's doing, not the client's) and when the caller resumes reading after a pause
//! ([`FrameReader::resume`]). Between frames, the caller may bound the wait for the next one (the
//! idle timeout). Either expiry ends the read with an error of kind `TimedOut`.

use crate::request_memory::{Reservation, ShardMemory};
use futures::{AsyncRead, AsyncReadExt};
use std::rc::Rc;
use std::time::{Duration, Instant};
use weir_net::DecodeError;
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader};

/// A frame's buffer: aligned as rkyv needs the batches in it.
type FrameBuf = rkyv::util::AlignedVec<16>;

/// Size of each connection's head buffer: a read takes up to this much of frames not yet
/// reserved.
pub const HEAD_READ_BYTES: usize = 16 << 10;

/// How a protocol delimits its frames: a fixed-size header that tells the frame's length.
pub trait Framing {
    type Header: Copy + std::fmt::Debug;
    /// Bytes of the header, the least that tells a frame's length.
    const HEADER_BYTES: usize;
    /// Decodes a header from the first `HEADER_BYTES` of `head`, refusing a frame longer than
    /// `frame_bytes_max` (header included) before anything is allocated for it.
    fn decode(head: &[u8], frame_bytes_max: usize) -> Result<Self::Header, DecodeError>;
    /// The whole frame's length, header included.
    fn frame_len(header: &Self::Header) -> usize;
}

/// Weir's native frames (`weir_net::frame`).
#[derive(Debug)]
pub struct Native;

impl Framing for Native {
    type Header = FrameHeader;
    const HEADER_BYTES: usize = FRAME_HEADER_BYTES;

    fn decode(head: &[u8], frame_bytes_max: usize) -> Result<FrameHeader, DecodeError> {
        FrameHeader::decode(head, frame_bytes_max)
    }

    fn frame_len(header: &FrameHeader) -> usize {
        header.frame_len()
    }
}

/// One request frame read whole, with the request memory it holds until it is dropped.
#[derive(Debug)]
pub struct Frame<F: Framing = Native> {
    pub header: F::Header,
    /// The frame, header included.
    /// 16-byte aligned, so the batches it carries (16-byte multiples within the frame) are
    /// validated and appended in place.
    pub bytes: bytes::Bytes,
    pub reservation: Reservation,
}

/// What reading a connection gave.
#[derive(Debug)]
pub enum Read<F: Framing = Native> {
    Frame(Frame<F>),
    /// The client finished sending (a frame cut short by the end is dropped).
    End,
    /// A header that does not decode: the stream is unusable.
    Malformed(DecodeError),
}

/// A frame reserved and partly read.
#[derive(Debug)]
struct Body<F: Framing> {
    header: F::Header,
    bytes: FrameBuf,
    filled: usize,
    reservation: Reservation,
}

/// Splits what one connection sends into frames; see the module's documentation.
#[derive(Debug)]
pub struct FrameReader<F: Framing = Native> {
    head: Box<[u8]>,
    /// `head[start..end]` holds bytes read and not yet taken into a frame.
    start: usize,
    end: usize,
    body: Option<Body<F>>,
    frame_bytes_max: usize,
    memory: Rc<ShardMemory>,
    read_timeout: Duration,
    /// When the frame being read must be complete; `None` between frames.
    deadline: Option<Instant>,
}

impl<F: Framing> FrameReader<F> {
    /// A reader whose started frames must each arrive within `read_timeout`.
    pub fn new(memory: Rc<ShardMemory>, frame_bytes_max: usize, read_timeout: Duration) -> Self {
        assert!(frame_bytes_max >= F::HEADER_BYTES);
        Self {
            head: vec![0; HEAD_READ_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            body: None,
            frame_bytes_max,
            memory,
            read_timeout,
            deadline: None,
        }
    }

    /// Whether part of a frame has been read (or reserved) and not yet returned.
    pub fn in_frame(&self) -> bool {
        self.body.is_some() || self.end > self.start
    }

    /// Restarts the clock of a frame being read: the caller paused reading for reasons of its
    /// own (answers to write), which the client is not to be timed for.
    pub fn resume(&mut self) {
        if self.deadline.is_some() {
            self.deadline = Some(Instant::now() + self.read_timeout);
        }
    }

    /// The next frame, reading `stream` as needed. Between frames, the wait for the first byte
    /// of the next one lasts at most `idle` (if given). Cancel-safe: everything read or reserved
    /// is kept in `self` at each await, so a dropped call loses nothing.
    pub async fn next<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        idle: Option<Duration>,
    ) -> std::io::Result<Read<F>> {
        let idle_deadline = idle.map(|d| Instant::now() + d);
        loop {
            if !self.in_frame() {
                self.deadline = None;
            }
            if let Some(body) = &mut self.body {
                if body.filled == body.bytes.len() {
                    let Body { header, bytes, mut reservation, .. } = self.body.take().expect("a body");
                    reservation.received();
                    self.frame_taken();
                    return Ok(Read::Frame(Frame {
                        header,
                        bytes: bytes::Bytes::from_owner(bytes),
                        reservation,
                    }));
                }
                let n = read_by(stream, &mut body.bytes[body.filled..], self.deadline, "frame").await?;
                if n == 0 {
                    return Ok(Read::End);
                }
                body.filled += n;
                continue;
            }
            let here = self.end - self.start;
            if here >= F::HEADER_BYTES {
                let header = match F::decode(&self.head[self.start..self.end], self.frame_bytes_max) {
                    Ok(h) => h,
                    Err(e) => return Ok(Read::Malformed(e)),
                };
                // A frame that fits the head buffer is gathered there whole before it is
                // reserved: only larger ones are ever reserved partial.
                let len = F::frame_len(&header);
                if here >= len || len > HEAD_READ_BYTES {
                    if let Some(frame) = self.start_frame(header).await {
                        self.frame_taken();
                        return Ok(Read::Frame(frame));
                    }
                    continue;
                }
            }
            // Less than a frame is left: move it to the front and read more after it.
            self.head.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let (deadline, what) = match self.deadline {
                Some(d) => (Some(d), "frame"),
                None => (idle_deadline, "idle"),
            };
            let n = read_by(stream, &mut self.head[self.end..], deadline, what).await?;
            if n == 0 {
                return Ok(Read::End);
            }
            if self.deadline.is_none() {
                // The first byte of a frame: its clock starts.
                self.deadline = Some(Instant::now() + self.read_timeout);
            }
            self.end += n;
        }
    }

    /// A frame was returned: what the head still holds is the start of the next one, whose
    /// clock starts now (it may have come with the one just taken).
    fn frame_taken(&mut self) {
        self.deadline = self.in_frame().then(|| Instant::now() + self.read_timeout);
    }

    /// Reserves the frame whose header starts the head buffer and takes what the head holds of
    /// it: the frame if it is all there, else its start, as `self.body`.
    async fn start_frame(&mut self, header: F::Header) -> Option<Frame<F>> {
        let len = F::frame_len(&header);
        let here = (self.end - self.start).min(len);
        let whole = here == len;
        let reservation = self.memory.reserve(len, !whole).await;
        // The wait for memory is not the client's: the rest of the frame gets a full timeout.
        self.deadline = Some(Instant::now() + self.read_timeout);
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

/// Reads into `buf`, failing with `TimedOut` if nothing comes by `deadline`. Cancel-safe as a
/// plain read is: nothing is taken from the stream unless the read completes.
async fn read_by<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    deadline: Option<Instant>,
    what: &str,
) -> std::io::Result<usize> {
    let Some(deadline) = deadline else { return stream.read(buf).await };
    let left = deadline.saturating_duration_since(Instant::now());
    let read = stream.read(buf);
    let timer = glommio::timer::sleep(left);
    futures::pin_mut!(read, timer);
    match futures::future::select(read, timer).await {
        futures::future::Either::Left((n, _)) => n,
        futures::future::Either::Right(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} read timed out")))
        }
    }
}

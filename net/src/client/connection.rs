//! One TCP connection to a node: a request goes out as a frame, its response frame comes back.

use super::error::{ClientError, Result};
use crate::api::{API_VERSION, ApiKey, ErrorBody, Request, Response};
use crate::frame::{FLAG_ERROR, FRAME_HEADER_BYTES, FrameDecoder, encode_frame};
use crate::wire::Writer;
use tokio_rt::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rt::net::TcpStream;

/// Largest response frame a client accepts.
pub const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// A response frame, owned; decode it with [`ResponseFrame::response`].
#[derive(Debug)]
pub struct ResponseFrame {
    api: ApiKey,
    frame: Vec<u8>,
}

impl ResponseFrame {
    pub fn response(&self) -> Result<Response<'_>> {
        Ok(Response::decode(self.api, &self.frame[FRAME_HEADER_BYTES..])?)
    }
}

/// A connection that answers one request at a time, in order.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    decoder: FrameDecoder,
    next_correlation: u32,
    read_buf: Vec<u8>,
}

impl Connection {
    pub async fn connect(addr: &str) -> Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr: addr.to_owned(), source })?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            decoder: FrameDecoder::new(RESPONSE_BYTES_MAX),
            next_correlation: 1,
            read_buf: vec![0; 64 << 10],
        })
    }

    /// Sends `req` and waits for its response. A response with the error flag becomes
    /// `ClientError::Server`.
    pub async fn call(&mut self, req: &Request<'_>) -> Result<ResponseFrame> {
        let pending = self.send(req).await?;
        self.receive(pending).await
    }

    /// Sends `req` without waiting for its response: requests are pipelined, and the node
    /// answers them in order, so responses must be taken with [`receive`](Self::receive) in the
    /// order the requests were sent.
    pub async fn send(&mut self, req: &Request<'_>) -> Result<Pending> {
        let cid = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut w = Writer::default();
        req.encode(&mut w);
        let frame = encode_frame(req.api_key() as u16, API_VERSION, cid, 0, &w.buf);
        self.stream.write_all(&frame).await?;
        Ok(Pending { correlation_id: cid, api: req.api_key() })
    }

    /// Waits for the response to the oldest request not yet received, which must be `pending`.
    /// Cancel-safe: bytes read before a cancellation stay buffered for the next call.
    pub async fn receive(&mut self, pending: Pending) -> Result<ResponseFrame> {
        loop {
            if let Some((h, frame)) = self.decoder.next_frame()? {
                if h.correlation_id != pending.correlation_id {
                    return Err(ClientError::Correlation {
                        expected: pending.correlation_id,
                        got: h.correlation_id,
                    });
                }
                if h.flags & FLAG_ERROR != 0 {
                    let e = ErrorBody::decode(&frame[FRAME_HEADER_BYTES..])?;
                    return Err(ClientError::Server { code: e.error, message: e.message });
                }
                return Ok(ResponseFrame { api: pending.api, frame: frame.to_vec() });
            }
            let n = self.stream.read(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.decoder.feed(&self.read_buf[..n]);
        }
    }
}

/// A request sent and not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    correlation_id: u32,
    api: ApiKey,
}

impl Pending {
    /// Stands for a request that never went out (its send failed).
    pub(crate) fn placeholder() -> Self {
        Self { correlation_id: 0, api: ApiKey::Produce }
    }
}

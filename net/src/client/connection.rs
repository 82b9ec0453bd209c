//! One connection to a node, over QUIC (one bidirectional stream of a QUIC connection) or TCP:
//! a request goes out as a frame, its response frame comes back.

use super::error::{ClientError, Result};
use crate::api::{ApiKey, ErrorBody, Request, Response};
use crate::frame::{FLAG_ERROR, FRAME_HEADER_BYTES, FrameDecoder, FrameHeader};
use crate::tls::{QuicClientSettings, Trust};
use crate::wire::Writer;
use std::sync::Arc;
use tokio_rt::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rt::net::TcpStream;

/// How a client reaches nodes.
#[derive(Debug, Clone)]
pub enum Transport {
    Tcp,
    /// QUIC with a client configuration built once from a [`Trust`] and its settings.
    Quic(Arc<QuicClient>),
}

/// A QUIC client's configuration and the settings it was built with.
#[derive(Debug)]
pub struct QuicClient {
    pub config: quinn::ClientConfig,
    pub settings: QuicClientSettings,
}

impl Transport {
    /// QUIC, trusting the node as `trust` says, with the default settings.
    pub fn quic(trust: &Trust) -> Result<Self> {
        Self::quic_with(trust, QuicClientSettings::default())
    }

    /// QUIC, trusting the node as `trust` says, with these connect, idle and keep-alive
    /// settings.
    pub fn quic_with(trust: &Trust, settings: QuicClientSettings) -> Result<Self> {
        let config = crate::tls::client_config_with(trust, &settings)?;
        Ok(Self::Quic(Arc::new(QuicClient { config, settings })))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic(_) => "quic",
        }
    }
}

/// A node's address and the transport to reach it with. Clients that learn other addresses of
/// the same node (its shards' own ports) or of other nodes reach them with the same transport.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`, or a bootstrap list of them separated by commas: a connection is made to
    /// the first that answers, trying each in turn.
    pub addr: String,
    pub transport: Transport,
}

impl Target {
    pub fn tcp(addr: impl Into<String>) -> Self {
        Self { addr: addr.into(), transport: Transport::Tcp }
    }

    pub fn quic(addr: impl Into<String>, trust: &Trust) -> Result<Self> {
        Ok(Self { addr: addr.into(), transport: Transport::quic(trust)? })
    }

    /// QUIC with these connect, idle and keep-alive settings.
    pub fn quic_with(addr: impl Into<String>, trust: &Trust, settings: QuicClientSettings) -> Result<Self> {
        Ok(Self { addr: addr.into(), transport: Transport::quic_with(trust, settings)? })
    }

    /// The same transport to another address.
    pub fn with_addr(&self, addr: impl Into<String>) -> Self {
        Self { addr: addr.into(), transport: self.transport.clone() }
    }

    /// The addresses of the bootstrap list, in order (one for a single address).
    pub fn addrs(&self) -> Vec<&str> {
        self.addr.split(',').map(str::trim).filter(|a| !a.is_empty()).collect()
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.transport.name(), self.addr)
    }
}

/// Largest response frame a client accepts.
pub const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// A response frame, owned; decode it with [`ResponseFrame::response`].
#[derive(Debug)]
pub struct ResponseFrame {
    api: ApiKey,
    /// The version the node answered in: the one the request was sent in.
    version: u16,
    frame: Vec<u8>,
}

impl ResponseFrame {
    pub fn response(&self) -> Result<Response<'_>> {
        Ok(Response::decode_version(self.api, self.version, &self.frame[FRAME_HEADER_BYTES..])?)
    }
}

/// The byte stream under a connection.
#[derive(Debug)]
enum Io {
    Tcp(TcpStream),
    Quic {
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        conn: quinn::Connection,
        /// The connection's own UDP socket: one per connection, so that the node's kernel
        /// steers each connection to a shard of its own.
        _endpoint: quinn::Endpoint,
        /// The idle timeout asked for, to say why a connection timed out.
        idle_timeout_ms: u32,
    },
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Io::Quic { conn, .. } = self {
            conn.close(0u32.into(), b"closed");
        }
    }
}

/// How long a TCP connect may take, as QUIC's default `connect_timeout_ms`.
pub const TCP_CONNECT_TIMEOUT_MS: u64 = 3000;

/// A connection left idle this long is replaced before its next request, as Kafka's clients do
/// (9 minutes, below the node's default `connection_idle_timeout_ms` of 10): the node may have
/// closed it, and a request on a closed connection would fail for nothing.
pub const IDLE_RECONNECT_MS: u64 = 540_000;

/// A connection whose requests are answered in order.
#[derive(Debug)]
pub struct Connection {
    io: Io,
    decoder: FrameDecoder,
    next_correlation: u32,
    read_buf: Vec<u8>,
    target: Target,
    /// Requests sent and not yet answered.
    outstanding: usize,
    /// The address of the bootstrap list this connection reached.
    connected_addr: String,
    /// When a request was last sent or answered.
    last_active: std::time::Instant,
    idle_reconnect: std::time::Duration,
}

impl Connection {
    /// Connects to the first address of `target`'s list that answers, trying each in turn;
    /// fails with the last address's error when none does.
    pub async fn connect(target: &Target) -> Result<Self> {
        let addrs = target.addrs();
        let mut last = None;
        for addr in &addrs {
            match Self::connect_one(target, addr).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    if addrs.len() > 1 {
                        tracing::warn!(%addr, error = %e, "cannot connect; trying the next bootstrap address");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::InvalidArgument(format!("no address in {:?}", target.addr))))
    }

    /// The address of the list this connection reached.
    pub fn addr(&self) -> &str {
        &self.connected_addr
    }

    async fn connect_one(target: &Target, addr: &str) -> Result<Self> {
        let err = |source| ClientError::Connect { addr: addr.to_owned(), source };
        let io = match &target.transport {
            Transport::Tcp => {
                // Bounded, so a silently dropped connect fails (and a caller may try another
                // address) in seconds, not after the kernel's minutes of SYN retries.
                let connect = TcpStream::connect(addr);
                let timeout = std::time::Duration::from_millis(TCP_CONNECT_TIMEOUT_MS);
                let stream = match tokio_rt::time::timeout(timeout, connect).await {
                    Ok(connected) => connected.map_err(err)?,
                    Err(_) => {
                        let why = format!("no answer within {TCP_CONNECT_TIMEOUT_MS} ms");
                        return Err(err(std::io::Error::new(std::io::ErrorKind::TimedOut, why)));
                    }
                };
                stream.set_nodelay(true)?;
                Io::Tcp(stream)
            }
            Transport::Quic(quic) => {
                let connect_timeout = std::time::Duration::from_millis(quic.settings.connect_timeout_ms);
                let other = |e: &dyn std::fmt::Display| err(std::io::Error::other(e.to_string()));
                let mut last = other(&"the name resolves to no address");
                let mut connected = None;
                // Every address the name resolves to, in turn, as TCP does; each handshake is
                // bounded, so an address nobody answers on costs seconds, not the idle timeout.
                for remote in tokio_rt::net::lookup_host(addr).await.map_err(err)? {
                    let local: std::net::SocketAddr =
                        if remote.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
                    let endpoint = crate::tls::endpoint(local, None).map_err(err)?;
                    let connecting = endpoint
                        .connect_with(quic.config.clone(), remote, server_name(addr))
                        .map_err(|e| other(&e))?;
                    match tokio_rt::time::timeout(connect_timeout, connecting).await {
                        Ok(Ok(conn)) => {
                            connected = Some((endpoint, conn));
                            break;
                        }
                        Ok(Err(e)) => last = other(&e),
                        Err(_) => {
                            last = other(&format!("no answer from {remote} within {connect_timeout:?}"))
                        }
                    }
                }
                let Some((endpoint, conn)) = connected else { return Err(last) };
                let (send, recv) = conn.open_bi().await.map_err(|e| other(&e))?;
                Io::Quic {
                    send,
                    recv,
                    conn,
                    _endpoint: endpoint,
                    idle_timeout_ms: quic.settings.idle_timeout_ms,
                }
            }
        };
        Ok(Self {
            io,
            decoder: FrameDecoder::new(RESPONSE_BYTES_MAX),
            next_correlation: 1,
            read_buf: vec![0; 64 << 10],
            target: target.clone(),
            outstanding: 0,
            connected_addr: addr.to_owned(),
            last_active: std::time::Instant::now(),
            idle_reconnect: std::time::Duration::from_millis(IDLE_RECONNECT_MS),
        })
    }

    /// Replaces the connection before a request once it has been idle this long (default
    /// [`IDLE_RECONNECT_MS`]); for a node whose `connection_idle_timeout_ms` is lower.
    pub fn with_idle_reconnect_ms(mut self, ms: u64) -> Self {
        self.idle_reconnect = std::time::Duration::from_millis(ms);
        self
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
    /// A request that cannot be encoded (a field too long) fails with `ClientError::Encode`
    /// before anything is sent: the connection stays usable.
    pub async fn send(&mut self, req: &Request<'_>) -> Result<Pending> {
        if self.outstanding == 0 && self.last_active.elapsed() >= self.idle_reconnect {
            let fresh = Connection::connect(&self.target).await?;
            *self = Self { idle_reconnect: self.idle_reconnect, ..fresh };
        }
        // The header, then the fields, with the record batches (a produce's bulk) written after
        // them straight from the caller's buffer rather than copied in.
        let mut w = Writer { buf: vec![0; FRAME_HEADER_BYTES] };
        let tail = req.encode_head(&mut w)?;
        let cid = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = FrameHeader {
            body_len: w.buf.len() - FRAME_HEADER_BYTES + tail.len(),
            api_key: req.api_key() as u16,
            api_version: req.api_key().latest_version(),
            correlation_id: cid,
            flags: 0,
        };
        header.encode(&mut w.buf[..FRAME_HEADER_BYTES]);
        match &mut self.io {
            Io::Tcp(s) => {
                s.write_all(&w.buf).await?;
                s.write_all(tail).await?;
            }
            Io::Quic { send, idle_timeout_ms, .. } => {
                let lost = |e: quinn::WriteError| match e {
                    quinn::WriteError::ConnectionLost(e) => quic_lost(e, *idle_timeout_ms),
                    e => std::io::Error::other(e),
                };
                send.write_all(&w.buf).await.map_err(lost)?;
                send.write_all(tail).await.map_err(lost)?;
            }
        }
        self.outstanding += 1;
        self.last_active = std::time::Instant::now();
        Ok(Pending { correlation_id: cid, api: req.api_key() })
    }

    /// Waits for the response to the oldest request not yet received, which must be `pending`.
    /// Cancel-safe: bytes read before a cancellation stay buffered for the next call.
    pub async fn receive(&mut self, pending: Pending) -> Result<ResponseFrame> {
        loop {
            if let Some((h, frame)) = self.decoder.next_frame()? {
                self.outstanding = self.outstanding.saturating_sub(1);
                self.last_active = std::time::Instant::now();
                // The node answers a frame it could not decode with an error frame of
                // correlation id 0 (it could not read the id), then closes.
                if h.correlation_id == 0 && h.flags & FLAG_ERROR != 0 && pending.correlation_id != 0 {
                    let e = ErrorBody::decode(&frame[FRAME_HEADER_BYTES..])?;
                    return Err(ClientError::Server { code: e.error, message: e.message });
                }
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
                return Ok(ResponseFrame { api: pending.api, version: h.api_version, frame: frame.to_vec() });
            }
            let n = match &mut self.io {
                Io::Tcp(s) => s.read(&mut self.read_buf).await?,
                Io::Quic { recv, idle_timeout_ms, .. } => {
                    let read = recv.read(&mut self.read_buf).await.map_err(|e| match e {
                        quinn::ReadError::ConnectionLost(e) => quic_lost(e, *idle_timeout_ms),
                        e => std::io::Error::other(e),
                    });
                    read?.unwrap_or(0)
                }
            };
            if n == 0 {
                return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.decoder.feed(&self.read_buf[..n]);
        }
    }
}

/// Why a QUIC connection ended, said once: the node went silent, or what it said.
fn quic_lost(e: quinn::ConnectionError, idle_timeout_ms: u32) -> std::io::Error {
    match e {
        quinn::ConnectionError::TimedOut => std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the node sent nothing for {idle_timeout_ms} ms (QUIC idle timeout): it is down or unreachable"
            ),
        ),
        e => std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e.to_string()),
    }
}

/// The address of a shard as Metadata advertises it, usable from this client: a node listening
/// on an unspecified address (0.0.0.0, ::) without an advertised host is reached at the host the
/// client already reaches it on, and an IPv6 host is put in brackets.
pub(crate) fn shard_address(bootstrap: &str, host: &str, port: u16) -> String {
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => {
            return format!("{}:{port}", bootstrap.rsplit_once(':').map_or(bootstrap, |(h, _)| h));
        }
        Ok(std::net::IpAddr::V6(_)) => format!("[{host}]"),
        _ => host.to_owned(),
    };
    format!("{host}:{port}")
}

/// The host part of `host:port` (without brackets for IPv6), as the TLS server name.
fn server_name(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_shard_addresses_are_made_reachable() {
        assert_eq!(shard_address("10.0.0.5:7400", "10.0.0.5", 7401), "10.0.0.5:7401");
        assert_eq!(shard_address("node1:7400", "0.0.0.0", 7402), "node1:7402");
        assert_eq!(shard_address("[fe80::1]:7400", "::", 7401), "[fe80::1]:7401");
        assert_eq!(shard_address("x:7400", "::1", 7401), "[::1]:7401");
        assert_eq!(shard_address("x:7400", "broker.example", 7401), "broker.example:7401");
        assert_eq!(server_name("[::1]:7400"), "::1");
        assert_eq!(server_name("localhost:7400"), "localhost");
    }
}

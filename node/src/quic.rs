//! QUIC on a shard: quinn endpoints whose tasks run on the shard's own glommio executor.
//!
//! quinn drives an endpoint and its connections through a `Runtime`. This one spawns those tasks
//! with `glommio::spawn_local`, so every connection of a shard lives on the shard's thread; UDP
//! readiness and timers come from async-io's reactor, which wakes the shard from its own thread.
//! That cross-thread wake-up is what this path costs; the shard-native driver on quinn-proto
//! replaces it.
//!
//! Each shard binds the shared port with SO_REUSEPORT (the kernel steers a client's datagrams by
//! their addresses, so a connection stays on one shard) and its own port alone. Every
//! bidirectional stream a client opens is served like one TCP connection: a pipeline of requests
//! answered in order.

use crate::server::serve_connection;
use crate::shard::Shard;
use futures::{AsyncRead, AsyncWrite};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

#[derive(Debug)]
struct ShardRuntime;

impl quinn::Runtime for ShardRuntime {
    fn new_timer(&self, at: std::time::Instant) -> Pin<Box<dyn quinn::AsyncTimer>> {
        quinn::SmolRuntime.new_timer(at)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        // quinn spawns only from tasks of this endpoint, which run on the shard's executor.
        glommio::spawn_local(future).detach();
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        quinn::SmolRuntime.wrap_udp_socket(socket)
    }
}

/// A non-blocking UDP socket bound to `addr` (`shared`: with SO_REUSEPORT, so every shard binds
/// it), with large buffers: both QUIC drivers start from it.
pub fn udp_socket(addr: SocketAddr, shared: bool) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(shared)?;
    socket.set_nonblocking(true)?;
    // Best effort (the kernel caps them): room for bursts of many clients.
    let _ = socket.set_recv_buffer_size(weir_net::tls::UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(weir_net::tls::UDP_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Binds a QUIC endpoint on `addr`; `shared` lets every shard bind the same address.
pub fn bind(addr: SocketAddr, shared: bool, server: quinn::ServerConfig) -> io::Result<quinn::Endpoint> {
    let socket = udp_socket(addr, shared)?;
    quinn::Endpoint::new(
        weir_net::tls::endpoint_config(),
        Some(server),
        socket.into(),
        Arc::new(ShardRuntime),
    )
}

/// Accepts connections until the endpoint closes or the task is cancelled.
pub async fn accept_loop(shard: Rc<Shard>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        glommio::spawn_local(serve_quic_connection(shard.clone(), incoming)).detach();
    }
}

async fn serve_quic_connection(shard: Rc<Shard>, incoming: quinn::Incoming) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "QUIC handshake failed");
            return;
        }
    };
    // The number of streams open at once is bounded by the transport (`quic_streams_max`).
    while let Ok((send, recv)) = conn.accept_bi().await {
        shard.connection_opened();
        glommio::spawn_local(serve_connection(shard.clone(), QuicStream { send, recv })).detach();
    }
}

/// One bidirectional stream as a byte stream both ways.
struct QuicStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl AsyncRead for QuicStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        AsyncRead::poll_read(Pin::new(&mut self.get_mut().recv), cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.get_mut().send), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().send), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_close(Pin::new(&mut self.get_mut().send), cx)
    }
}

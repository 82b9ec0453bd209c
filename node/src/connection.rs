//! Serving one connection (a TCP connection or a QUIC stream): frames are read within the
//! node's request memory and the connection's budget, each request runs as a detached task of its
//! own through the native front end, and answers go back in request order. Also the TCP accept
//! loop, which applies the connection limits.

use crate::connection_limits::ConnectionLimits;
use crate::frame_reader::{Frame, FrameReader, Framing, Native, Read};
use crate::frontend::native::{decode_error_code, error_frame, handle};
use crate::request_memory::{RequestMemory, ShardMemory};
use crate::shard::Shard;
use futures::AsyncWriteExt;
use futures::FutureExt;
use futures::{AsyncRead, AsyncWrite};
use glommio::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader};
use weir_net::{DecodeError, ErrorCode};

/// A protocol a connection speaks: how its frames are delimited, how a request is handled, and
/// what a client is told when its frames do not decode or it is refused. The connection's
/// reading, budgets, timeouts and answer ordering are the same for every protocol.
pub trait Protocol: 'static {
    type Framing: Framing;
    /// The answer sent, before closing, to a frame header that does not decode; empty closes
    /// without a word (Kafka's way).
    fn malformed(e: &DecodeError) -> Vec<u8>;
    /// What a client refused at accept (over a connection limit, or out of fds) is told.
    fn refusal(reason: String) -> Vec<u8>;
    /// Starts handling one request; returns its cost in the connection's budget (its frame and
    /// the most its answer may take) and its answer to come. The request runs as a detached
    /// task: a connection that fails drops its pending answers, never the requests.
    fn start(shard: &Rc<Shard>, frame: Frame<Self::Framing>, peer: &crate::peer::Peer) -> (usize, Pending);
}

/// Weir's own protocol.
#[derive(Debug)]
pub struct NativeProtocol;

impl Protocol for NativeProtocol {
    type Framing = Native;

    fn malformed(e: &DecodeError) -> Vec<u8> {
        let h = FrameHeader { body_len: 0, api_key: 0, api_version: 0, correlation_id: 0, flags: 0 };
        error_frame(&h, decode_error_code(e), e.to_string())
    }

    fn refusal(reason: String) -> Vec<u8> {
        let h = FrameHeader { body_len: 0, api_key: 0, api_version: 0, correlation_id: 0, flags: 0 };
        error_frame(&h, ErrorCode::Unavailable, reason)
    }

    fn start(shard: &Rc<Shard>, frame: Frame, peer: &crate::peer::Peer) -> (usize, Pending) {
        start_request(shard, frame, peer)
    }
}

/// What bounds the node's memory as a whole, shared by every shard.
#[derive(Debug, Clone)]
pub struct Limits {
    pub memory: Arc<RequestMemory>,
    pub connections: Arc<ConnectionLimits>,
}

/// Backoff between accept attempts that fail for a reason other than running out of fds with
/// the reserve at hand: it doubles from the first to the last and starts over on a success.
const ACCEPT_BACKOFF_MIN_MS: u64 = 10;
const ACCEPT_BACKOFF_MAX_MS: u64 = 1000;
/// Accept failures are logged at most once per interval, with how many there were.
const ACCEPT_LOG_INTERVAL_MS: u64 = 1000;

/// What a client accepted with the reserve fd is told before it is closed.
const OUT_OF_FDS: &str = "connection refused: the node has too many open files";

/// Accept failures since the last log line, and the backoff they have built up.
#[derive(Debug)]
struct AcceptFailures {
    unlogged: u64,
    last_log: Option<std::time::Instant>,
    backoff_ms: u64,
}

impl AcceptFailures {
    fn new() -> Self {
        Self { unlogged: 0, last_log: None, backoff_ms: ACCEPT_BACKOFF_MIN_MS }
    }

    /// Counts one failure and logs it with the others of its interval, if the interval is over.
    fn failed(&mut self, error: &std::io::Error) {
        self.unlogged += 1;
        let due = self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_millis(ACCEPT_LOG_INTERVAL_MS));
        if due {
            tracing::warn!(error = %error, failures = self.unlogged, "accept failed");
            self.unlogged = 0;
            self.last_log = Some(std::time::Instant::now());
        }
    }

    /// The wait before the next attempt, twice the last one's up to the cap.
    fn backoff(&mut self) -> Duration {
        let wait = self.backoff_ms;
        self.backoff_ms = (wait * 2).min(ACCEPT_BACKOFF_MAX_MS);
        Duration::from_millis(wait)
    }

    fn succeeded(&mut self) {
        if self.unlogged > 0 {
            tracing::warn!(failures = self.unlogged, "accepting again after accept failures");
            self.unlogged = 0;
        }
        self.backoff_ms = ACCEPT_BACKOFF_MIN_MS;
    }
}

/// A file descriptor held in reserve (`/dev/null`), so that at the fd limit the accept loop can
/// still take a waiting client and tell it why it is refused, instead of leaving it unanswered
/// in the backlog (where accept would fail again at once, for ever).
fn reserve_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Accepts TCP connections on `listener` for as long as the shard runs, admitting each within
/// the connection limits. Out of fds (EMFILE, ENFILE), it releases its reserve fd to accept one
/// waiting client, answers it with an error frame, closes it and takes the reserve again; when
/// it cannot, it backs off (exponentially, capped). Failures are logged once per interval.
pub(crate) async fn accept_loop<P: Protocol>(
    shard: Rc<Shard>,
    memory: Rc<ShardMemory>,
    connections: Arc<ConnectionLimits>,
    listener: TcpListener,
) {
    let mut reserve = reserve_fd();
    let mut failures = AcceptFailures::new();
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                let e = weir_log::storage::dma::to_io(e);
                failures.failed(&e);
                let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                if out_of_fds && reserve.take().is_some() {
                    // The reserve's fd is free now: the waiting client takes it.
                    let answered = match listener.accept().await {
                        Ok(stream) => {
                            refuse::<P>(stream, OUT_OF_FDS.to_owned()).await;
                            true
                        }
                        Err(_) => false,
                    };
                    reserve = reserve_fd();
                    if answered && reserve.is_some() {
                        // Progress: a client was answered, and the reserve is back. The next
                        // attempt can come at once.
                        continue;
                    }
                }
                glommio::timer::sleep(failures.backoff()).await;
                continue;
            }
        };
        failures.succeeded();
        if reserve.is_none() {
            reserve = reserve_fd();
        }
        serve_accepted::<P>(&shard, &memory, &connections, stream);
    }
}

/// Admits an accepted connection within the connection limits and serves it, or refuses it.
fn serve_accepted<P: Protocol>(
    shard: &Rc<Shard>,
    memory: &Rc<ShardMemory>,
    connections: &Arc<ConnectionLimits>,
    stream: glommio::net::TcpStream,
) {
    let admitted = match stream.peer_addr() {
        Ok(peer) => connections.admit(peer.ip()),
        // Gone already.
        Err(_) => return,
    };
    let guard = match admitted {
        Ok(guard) => guard,
        Err(refused) => {
            glommio::spawn_local(refuse::<P>(stream, refused.to_string())).detach();
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    shard.connection_opened();
    let serve = serve_connection::<P, _>(shard.clone(), memory.clone(), stream, crate::peer::Peer::Tcp);
    // The connection counts against the limits until it is served to its end.
    glommio::spawn_local(async move {
        serve.await;
        drop(guard);
    })
    .detach();
}

/// Tells a TCP client refused (over a connection limit, or out of fds) why, in the protocol's
/// way (natively an error frame, `Unavailable`, with correlation id 0, as for a frame that does
/// not decode), then closes. The frame is small: the socket's buffer takes it at once, so a
/// refused client holds nothing.
async fn refuse<P: Protocol>(mut stream: glommio::net::TcpStream, reason: String) {
    tracing::debug!(reason = %reason, "connection refused");
    let _ = stream.write_all(&P::refusal(reason)).await;
    let _ = stream.close().await;
}

/// An answer to write: `head`, then `tail`, the stored record batches of a fetch, sent as they
/// were read rather than copied into the head. Empty, it writes nothing (a Kafka produce with
/// acks=0 is not answered).
#[derive(Debug, Default)]
pub struct Outgoing {
    pub head: Vec<u8>,
    pub tail: bytes::Bytes,
}

impl From<Vec<u8>> for Outgoing {
    fn from(head: Vec<u8>) -> Self {
        Outgoing { head, tail: bytes::Bytes::new() }
    }
}

impl Outgoing {
    /// Writes the answer; fails as the stream does.
    async fn write_to<S: AsyncWrite + Unpin>(&self, stream: &mut S) -> std::io::Result<()> {
        if !self.head.is_empty() {
            stream.write_all(&self.head).await?;
        }
        if !self.tail.is_empty() {
            stream.write_all(&self.tail).await?;
        }
        Ok(())
    }
}

/// An answer; `Err` closes the connection after it is written.
pub type Reply = Result<Outgoing, Outgoing>;

/// The most bytes the answer to a request may take: for a fetch, `max_bytes`, but at least one
/// whole batch (a fetch returns the first batch whatever its size, up to `batch_bytes_max`); a
/// small answer for the rest (metadata of many topics may pass it, by little).
fn reply_bytes_max(header: &FrameHeader, frame: &[u8], batch_bytes_max: usize) -> usize {
    const SMALL_REPLY_BYTES: usize = 4096;
    if header.api_key == crate::replication::wire::REPLICA_FETCH_API {
        // Batches up to the answer's bound, plus the first batch whatever its size.
        return crate::replication::wire::REPLICA_FETCH_BYTES_MAX + batch_bytes_max + SMALL_REPLY_BYTES;
    }
    if header.api_key != weir_net::ApiKey::Fetch as u16 {
        return SMALL_REPLY_BYTES;
    }
    match weir_net::Request::decode(header.api_key, header.api_version, &frame[FRAME_HEADER_BYTES..]) {
        Ok(weir_net::Request::Fetch { max_bytes, .. }) => {
            (max_bytes as usize).max(batch_bytes_max) + SMALL_REPLY_BYTES
        }
        _ => SMALL_REPLY_BYTES,
    }
}

/// A request being handled: its reservation in the connection's budget and its answer.
pub type Pending = futures::future::LocalBoxFuture<'static, (usize, Reply)>;

/// Reads frames from a TCP connection or a QUIC stream and answers them in order. Up to
/// `requests_in_flight_max` requests of one connection are handled at once (a producer pipelines
/// its batches), holding at most `connection_buffer_bytes_max` for their frames and answers (one
/// request always runs, whatever its size). Past either bound the connection is not read until
/// the oldest request is answered, so a client that floods it, or does not read its answers, is
/// held back by TCP or QUIC flow control. Memory per connection: that budget, one request and
/// its answer beyond it, and the reader's head buffer. Frames being read and requests not yet
/// handled also count in the node's request memory (`memory`): while it is used up, the
/// connection is not read either.
///
/// Time bounds: with no request in flight and no frame started, the connection is closed after
/// `connection_idle_timeout_ms` without a byte read (a long-polling fetch in flight keeps it
/// open); a frame started must arrive within `request_read_timeout_ms` of reading (see
/// `frame_reader.rs`). Either way the connection is closed without an answer, as Kafka does.
pub async fn serve_connection<P: Protocol, S: AsyncRead + AsyncWrite + Unpin>(
    shard: Rc<Shard>,
    memory: Rc<ShardMemory>,
    mut stream: S,
    peer: crate::peer::Peer,
) {
    use futures::future::Either;
    use futures::stream::{FuturesOrdered, StreamExt};
    let in_flight_max = shard.config.requests_in_flight_max;
    let read_timeout = Duration::from_millis(shard.config.request_read_timeout_ms);
    let idle = Duration::from_millis(shard.config.connection_idle_timeout_ms);
    let mut reader = FrameReader::<P::Framing>::new(memory, shard.config.request_bytes_max, read_timeout);
    // Each pending request yields its reservation with its answer.
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    // Bytes held for the requests started and not yet answered: each one's frame and the most
    // its answer may take. A slow reader thus pins at most about `connection_buffer_bytes_max`.
    let budget = shard.config.connection_buffer_bytes_max;
    let mut reserved = 0usize;
    let (mut closing, mut eof) = (false, false);
    let mut was_reading = true;
    loop {
        // A frame is read only when it can start at once: there is room in the budget (the last
        // request may pass it) or nothing is pending. So no frame read waits, holding request
        // memory, for a client that does not read its answers.
        let room = pending.is_empty() || (pending.len() < in_flight_max && reserved < budget);
        let can_read = !closing && !eof && room;
        if pending.is_empty() && !can_read {
            break;
        }
        if can_read && !was_reading {
            // The client is timed only while the node reads from it.
            reader.resume();
        }
        was_reading = can_read;
        let event = if can_read && pending.is_empty() {
            // Nothing pending (an empty FuturesOrdered would end at once): just read, for at
            // most the idle timeout if no frame has started.
            Either::Right(reader.next(&mut stream, Some(idle)).await)
        } else if can_read {
            let read = reader.next(&mut stream, None);
            futures::pin_mut!(read);
            // The reader is cancel-safe: a read that loses the race keeps what it had.
            match futures::future::select(pending.next(), read).await {
                Either::Left((reply, _)) => Either::Left(reply),
                Either::Right((read, _)) => Either::Right(read),
            }
        } else {
            Either::Left(pending.next().await)
        };
        let reply = match event {
            // Out of time (idle, or a frame that did not arrive): read no more, but answer what
            // was asked, so a producer is not made to resend requests that were carried out.
            Either::Right(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::debug!(error = %e, "connection timed out; answering what is pending, then closing");
                closing = true;
                continue;
            }
            Either::Right(Err(e)) => {
                tracing::debug!(error = %e, "connection closed");
                break;
            }
            // The client finished sending: answer what it sent, then close.
            Either::Right(Ok(Read::End)) => {
                eof = true;
                continue;
            }
            Either::Right(Ok(Read::Malformed(e))) => {
                let reply = Outgoing::from(P::malformed(&e));
                pending.push_back(futures::future::ready((0, Err(reply))).boxed_local());
                closing = true;
                continue;
            }
            Either::Right(Ok(Read::Frame(frame))) => {
                let (cost, answer) = P::start(&shard, frame, &peer);
                reserved += cost;
                pending.push_back(answer);
                continue;
            }
            Either::Left(reply) => reply,
        };
        let Some((cost, reply)) = reply else { continue };
        reserved -= cost;
        let (out, close) = match reply {
            Ok(r) => (r, false),
            Err(r) => (r, true),
        };
        if out.write_to(&mut stream).await.is_err() || close {
            break;
        }
        // Writing an answer is the node's time, not the client's: a frame the client was
        // sending meanwhile gets its whole read timeout again.
        reader.resume();
    }
    let _ = stream.close().await;
}

/// Starts handling one request; returns its cost in the connection's budget (its frame and the
/// most its answer may take) and its answer to come.
fn start_request(shard: &Rc<Shard>, frame: Frame, peer: &crate::peer::Peer) -> (usize, Pending) {
    let Frame { header, bytes, reservation } = frame;
    let cost = bytes.len() + reply_bytes_max(&header, &bytes, shard.config.batch_bytes_max);
    let peer = peer.clone();
    let stopped =
        move || Err(error_frame(&header, ErrorCode::Unavailable, "the node is stopping".into()).into());
    spawn_request(
        shard,
        reservation,
        cost,
        move |shard| async move { handle(&shard, header, bytes, &peer).await },
        stopped,
    )
}

/// Runs a request as a task of its own, holding its request memory and counted in flight, and
/// gives its answer to come with its `cost`; `stopped` answers it if the node stops first.
///
/// The task makes progress (and releases the locks it takes) even while its connection is
/// blocked writing an earlier answer to a client that does not read. It is detached: a
/// connection that fails drops its pending answers, never the requests. A produce cancelled
/// halfway through an append would leave the log with a hole that later acknowledgements
/// cover. The frame's request memory goes back when the task ends, whether or not the answer is
/// ever written.
pub fn spawn_request<F: std::future::Future<Output = Reply> + 'static>(
    shard: &Rc<Shard>,
    reservation: crate::request_memory::Reservation,
    cost: usize,
    handle: impl FnOnce(Rc<Shard>) -> F + 'static,
    stopped: impl FnOnce() -> Reply + 'static,
) -> (usize, Pending) {
    let shard = shard.clone();
    let task = glommio::spawn_local(async move {
        let _in_flight = shard.begin_request();
        let _reservation = reservation;
        handle(shard.clone()).await
    })
    .detach();
    let answer = async move { (cost, task.await.unwrap_or_else(stopped)) };
    (cost, answer.boxed_local())
}

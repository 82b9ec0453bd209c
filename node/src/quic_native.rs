//! QUIC driven by the shard itself: a `quinn-proto` endpoint and its connections, fed from the
//! shard's own loop, with batched and segmented UDP I/O (quinn-udp: GRO on receive, GSO on send,
//! ECN), and no other thread involved.
//!
//! Owned by one shard for its life. Each shard binds the shared port with SO_REUSEPORT (the
//! kernel steers a client's datagrams by their addresses, so a connection stays on one shard) and
//! its own port alone. Two tasks of the shard run it:
//! - the receiver drains the socket with `recvmmsg`-style batched reads and hands each datagram
//!   to the endpoint; once the socket has been quiet for the busy-poll window it sleeps on an
//!   io_uring peek;
//! - the driver runs whatever became due (timers, connections marked dirty by a datagram or by a
//!   stream read or write) and sends what the connections have to send.
//!
//! Each stream a peer opens goes to a handler as a [`Stream`] (the node serves it like a TCP
//! connection). The same driver opens connections too ([`Endpoint::client`],
//! [`Endpoint::connect`], [`Connection::open_bi`]), as a shard reaching a peer node does, so both
//! ends of a conversation between shards run on their own cores. Everything is in
//! `Rc<RefCell<..>>`: one thread, no locks.

use bytes::BytesMut;
use futures::{AsyncRead, AsyncWrite};
use quinn_proto::{ConnectionHandle, DatagramEvent, Dir, Event, ServerConfig, StreamEvent, StreamId};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Datagrams read per receive call (each may hold several GRO segments).
const RECV_BATCH: usize = 32;
/// Receive calls in one pass before the receiver yields to the driver and the streams.
const RECV_PASSES_MAX: usize = 4;
/// Datagrams one GSO send carries at most (as quinn): a send the kernel refuses loses no more.
const SEND_SEGMENTS_MAX: usize = 10;
// A GSO send is one UDP datagram to the kernel: at most 65507 bytes of payload.
const _: () = assert!(SEND_SEGMENTS_MAX * weir_net::tls::UDP_PAYLOAD_BYTES_MAX as usize <= 65_507);
/// After the socket's buffer was full, how soon the driver tries to send again.
const SEND_RETRY_US: u64 = 200;

/// One connection and the tasks waiting on its streams.
struct Conn {
    conn: quinn_proto::Connection,
    readers: HashMap<StreamId, Waker>,
    writers: HashMap<StreamId, Waker>,
    /// Tasks waiting on the connection itself: for its handshake, or for room to open a stream.
    waiters: Vec<Waker>,
    /// The handshake is done.
    connected: bool,
    lost: bool,
    /// Why the connection ended, once it has.
    error: Option<quinn_proto::ConnectionError>,
    /// The connection's timer as `State::timers` holds it.
    deadline: Option<Instant>,
    /// Tells this connection from an earlier one with the same handle: quinn-proto hands a
    /// handle out again once its connection is gone, and a `Stream` or `Connection` of the
    /// old one must not reach the new one.
    generation: u64,
    /// What admitted the connection (see [`Endpoint::admit_with`]), kept as long as it is.
    _admitted: Option<Box<dyn std::any::Any>>,
    /// Why the connection is refused: it is closed with this reason once its handshake is done
    /// (a reason sent earlier would not reach the peer), and none of its streams is served.
    refused: Option<String>,
}

impl Conn {
    fn new(conn: quinn_proto::Connection, generation: u64) -> Self {
        Self {
            conn,
            generation,
            readers: HashMap::default(),
            writers: HashMap::default(),
            waiters: Vec::new(),
            connected: false,
            lost: false,
            error: None,
            deadline: None,
            _admitted: None,
            refused: None,
        }
    }

    /// Registers `waker` to hear of the handshake, room for a stream, or the end: once, however
    /// often its task polls.
    fn wait(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    fn wake_all(&mut self) {
        self.readers.drain().for_each(|(_, w)| w.wake());
        self.writers.drain().for_each(|(_, w)| w.wake());
        self.waiters.drain(..).for_each(Waker::wake);
    }

    /// The error a caller gets once the connection is gone, of a kind that says why.
    fn gone(&self) -> io::Error {
        use quinn_proto::ConnectionError as E;
        let Some(e) = &self.error else { return gone() };
        let kind = match e {
            E::TimedOut => io::ErrorKind::TimedOut,
            E::ConnectionClosed(_) | E::ApplicationClosed(_) | E::Reset => io::ErrorKind::ConnectionReset,
            E::VersionMismatch => io::ErrorKind::ConnectionRefused,
            _ => io::ErrorKind::ConnectionAborted,
        };
        io::Error::new(kind, format!("the QUIC connection is closed: {e}"))
    }
}

/// The state a shard's endpoint shares between its tasks and its streams.
struct State {
    endpoint: quinn_proto::Endpoint,
    server_config: Option<Arc<ServerConfig>>,
    conns: HashMap<ConnectionHandle, Conn>,
    /// Connections with something to do (events, data to send) since the driver last ran.
    dirty: HashSet<ConnectionHandle>,
    driver: Option<Waker>,
    /// Datagrams to send that came from the endpoint itself (stateless resets, refusals).
    responses: Vec<(quinn_proto::Transmit, Vec<u8>)>,
    /// Datagrams the socket had no room for yet, in order.
    backlog: Vec<(quinn_proto::Transmit, Vec<u8>)>,
    /// Connections that may have more to send but met a full socket buffer.
    unsent: Vec<ConnectionHandle>,
    /// Every connection's next timer, earliest first (each also in its `Conn::deadline`), so
    /// that a wake-up looks at the due ones only.
    timers: BTreeSet<(Instant, ConnectionHandle)>,
    /// The buffer each datagram is built in before it is sent.
    send_buf: Vec<u8>,
    /// The generation the next connection gets.
    generations: u64,
    /// Decides whether a new connection from an address is served (see
    /// [`Endpoint::admit_with`]).
    admit: Option<Admit>,
}

/// Decides whether a peer's new connection is served: `Ok` with something the endpoint keeps as
/// long as the connection lives (a guard that counts it), or `Err` with the reason it is refused.
pub type Admit = Box<dyn Fn(SocketAddr) -> Result<Box<dyn std::any::Any>, String>>;

/// Application error code a connection is closed with when `admit` refuses it.
pub const REFUSED_CODE: u32 = 1;

/// A shard's QUIC endpoint on one UDP socket. Its two tasks hold it, and its socket, for the life
/// of the executor: [`Endpoint::close`] ends its connections, not the endpoint.
pub struct Endpoint {
    state: RefCell<State>,
    socket: glommio::net::UdpSocket,
    udp: quinn_udp::UdpSocketState,
    /// Called with each bidirectional stream a peer opens.
    on_stream: Box<dyn Fn(Stream)>,
    /// How long after the last datagram the receiver keeps polling the socket before it sleeps.
    busy_poll: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("local", &self.socket.local_addr().ok()).finish()
    }
}

impl Endpoint {
    /// Binds `addr` (`shared`: with SO_REUSEPORT, so every shard binds it) and starts the
    /// endpoint's tasks on the current glommio executor; `on_stream` gets every bidirectional
    /// stream peers open (the node serves each like a TCP connection). For `busy_poll` after each
    /// datagram the receiver polls the socket between other tasks instead of sleeping: lower
    /// latency for a conversation, at the price of that much CPU when traffic stops.
    pub fn bind(
        addr: SocketAddr,
        shared: bool,
        server: ServerConfig,
        busy_poll: Duration,
        on_stream: impl Fn(Stream) + 'static,
    ) -> io::Result<Rc<Self>> {
        Self::start(addr, shared, Some(Arc::new(server)), busy_poll, Box::new(on_stream))
    }

    /// Binds `addr` (port 0 for any) for connections this end makes with [`Endpoint::connect`],
    /// and starts the endpoint's tasks on the current glommio executor. It accepts none: a
    /// client, or a shard reaching a peer node. Streams the peer opens are refused.
    pub fn client(addr: SocketAddr, busy_poll: Duration) -> io::Result<Rc<Self>> {
        Self::start(addr, false, None, busy_poll, Box::new(drop))
    }

    fn start(
        addr: SocketAddr,
        shared: bool,
        server: Option<Arc<ServerConfig>>,
        busy_poll: Duration,
        on_stream: Box<dyn Fn(Stream)>,
    ) -> io::Result<Rc<Self>> {
        let socket = udp_socket(addr, shared)?;
        let udp = quinn_udp::UdpSocketState::new((&socket).into())?;
        let endpoint = quinn_proto::Endpoint::new(
            Arc::new(weir_net::tls::endpoint_config()),
            server.clone(),
            true,
            None,
        );
        let e = Rc::new(Self {
            state: RefCell::new(State {
                endpoint,
                server_config: server,
                conns: HashMap::default(),
                dirty: HashSet::default(),
                driver: None,
                responses: Vec::new(),
                backlog: Vec::new(),
                unsent: Vec::new(),
                timers: BTreeSet::new(),
                send_buf: Vec::new(),
                generations: 0,
                admit: None,
            }),
            // SAFETY: the descriptor moves from `socket`, which gives it up, to glommio's socket.
            socket: unsafe { glommio::net::UdpSocket::from_raw_fd(socket.into_raw_fd()) },
            udp,
            on_stream,
            busy_poll,
        });
        glommio::spawn_local(e.clone().receive_loop()).detach();
        glommio::spawn_local(e.clone().drive_loop()).detach();
        Ok(e)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr().map_err(|e| io::Error::other(e.to_string()))
    }

    /// Opens a connection to `remote`, which must present a certificate for `server_name` that
    /// `config` trusts, and waits for its handshake.
    pub async fn connect(
        self: &Rc<Self>,
        config: quinn_proto::ClientConfig,
        remote: SocketAddr,
        server_name: &str,
    ) -> io::Result<Connection> {
        let (ch, generation) = {
            let mut st = self.state.borrow_mut();
            let (ch, conn) =
                st.endpoint.connect(Instant::now(), config, remote, server_name).map_err(|e| {
                    use quinn_proto::ConnectError as E;
                    let kind = match e {
                        E::EndpointStopping | E::CidsExhausted => io::ErrorKind::Other,
                        _ => io::ErrorKind::InvalidInput,
                    };
                    io::Error::new(kind, e.to_string())
                })?;
            let generation = st.next_generation();
            st.conns.insert(ch, Conn::new(conn, generation));
            st.dirty.insert(ch);
            st.wake_driver();
            (ch, generation)
        };
        // From here the handle owns the connection: dropping it (a cancelled connect too)
        // closes it.
        let connection = Connection { endpoint: self.clone(), ch, generation };
        std::future::poll_fn(|cx| {
            connection.with(|c| {
                if c.lost {
                    Poll::Ready(Err(c.gone()))
                } else if c.connected {
                    Poll::Ready(Ok(()))
                } else {
                    c.wait(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await?;
        Ok(connection)
    }

    /// From now on, asks `admit` about every new connection a peer opens. One it refuses is
    /// closed with [`REFUSED_CODE`] and its reason as soon as its handshake is done, and none of
    /// its streams is served. Without this, every connection is served.
    pub fn admit_with(&self, admit: impl Fn(SocketAddr) -> Result<Box<dyn std::any::Any>, String> + 'static) {
        self.state.borrow_mut().admit = Some(Box::new(admit));
    }

    /// Refuses new connections from now on; those open go on.
    pub fn stop_accepting(&self) {
        // The endpoint keeps its configuration, so that a new client is refused (it hears so
        // at once) rather than ignored.
        self.state.borrow_mut().server_config = None;
    }

    /// Closes every connection and sends the closes now (the executor may end right after).
    /// Tasks waiting on its streams wake and see the connection gone.
    pub fn close(self: &Rc<Self>) {
        {
            let mut st = self.state.borrow_mut();
            let handles: Vec<_> = st.conns.keys().copied().collect();
            for ch in handles {
                st.close(ch, 0, b"node shutting down");
            }
        }
        self.drive();
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the socket owns the descriptor and outlives the borrow.
        unsafe { BorrowedFd::borrow_raw(self.socket.as_raw_fd()) }
    }

    async fn receive_loop(self: Rc<Self>) {
        let mut bufs = crate::recv_buffers::RecvBuffers::new(RECV_BATCH);
        let mut meta = vec![quinn_udp::RecvMeta::default(); RECV_BATCH];
        let mut peek = [0u8; 1];
        let mut last_datagram = Instant::now();
        loop {
            // A bounded pass: the driver and the stream tasks must run between passes even
            // while datagrams keep coming.
            let mut received = false;
            for _ in 0..RECV_PASSES_MAX {
                let n = {
                    let mut slices = bufs.io_slices();
                    let fd = self.fd();
                    match self.udp.recv((&fd).into(), &mut slices, &mut meta) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "QUIC receive failed");
                            break;
                        }
                    }
                };
                let now = Instant::now();
                last_datagram = now;
                received = true;
                let mut st = self.state.borrow_mut();
                for (i, m) in meta.iter().enumerate().take(n) {
                    // A GRO super-datagram holds `len / stride` datagrams back to back.
                    let stride = m.stride.max(1);
                    let mut data = bufs.take(i, m.len);
                    while !data.is_empty() {
                        let segment = data.split_to(stride.min(data.len()));
                        st.datagram(now, m, segment);
                    }
                }
                st.wake_driver();
            }
            if last_datagram.elapsed() < self.busy_poll {
                // Soon after traffic, poll the socket again once the other tasks had their turn
                // rather than sleep: the next datagram of a conversation is likely microseconds
                // away, and parking the executor and waking it through the ring costs tens of
                // them on each side.
                if !received {
                    // The pass found nothing: offer the core to other threads (a client on the
                    // same machine) meanwhile; with none waiting this returns at once.
                    std::thread::yield_now();
                }
                glommio::executor().yield_now().await;
                continue;
            }
            // Quiet: sleep until a datagram is there (an io_uring peek completes then).
            if let Err(e) = self.socket.peek_from(&mut peek).await {
                tracing::debug!(error = %e, "QUIC socket peek failed");
            }
            last_datagram = Instant::now();
        }
    }

    async fn drive_loop(self: Rc<Self>) {
        loop {
            let next = self.drive();
            let wait = Wait { endpoint: &self, deadline: next };
            match next {
                Some(at) => {
                    let timer = glommio::timer::sleep(at.saturating_duration_since(Instant::now()));
                    futures::pin_mut!(timer, wait);
                    futures::future::select(timer, wait).await;
                }
                None => wait.await,
            }
        }
    }

    /// Runs timers and dirty connections, sends what they have as it comes, spawns servers for
    /// new streams. Returns when it wants to run next: the earliest timer, or soon when the
    /// socket's buffer was full.
    fn drive(self: &Rc<Self>) -> Option<Instant> {
        let now = Instant::now();
        let mut new_streams = Vec::new();
        let gso_segments = self.udp.max_gso_segments().min(SEND_SEGMENTS_MAX);
        let next = {
            let mut st = self.state.borrow_mut();
            let st = &mut *st;
            // What waited for room goes first, in order; then what the endpoint itself answered.
            let mut blocked = !self.send_queued(&mut st.backlog);
            st.backlog.append(&mut st.responses);
            blocked = blocked || !self.send_queued(&mut st.backlog);
            // The connections to run: those a datagram or a stream op marked, those that had
            // more to send when the socket was full, and those whose timer (loss detection,
            // pacing, idle, keep-alive) is due.
            let mut handles: Vec<ConnectionHandle> = st.dirty.drain().collect();
            handles.append(&mut st.unsent);
            while let Some(&(at, ch)) = st.timers.first() {
                if at > now {
                    break;
                }
                st.timers.pop_first();
                if let Some(c) = st.conns.get_mut(&ch) {
                    c.deadline = None;
                    handles.push(ch);
                }
            }
            handles.sort_unstable();
            handles.dedup();
            for ch in handles {
                let Some(c) = st.conns.get_mut(&ch) else { continue };
                // Due timers run here, for the connections the index named and for those a
                // datagram or stream op gave a timer already past.
                if c.conn.poll_timeout().is_some_and(|t| t <= now) {
                    c.conn.handle_timeout(now);
                }
                while let Some(ev) = c.conn.poll_endpoint_events() {
                    if let Some(back) = st.endpoint.handle_event(ch, ev) {
                        c.conn.handle_event(back);
                    }
                }
                while let Some(ev) = c.conn.poll() {
                    match ev {
                        Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                            while let Some(id) = c.conn.streams().accept(Dir::Bi) {
                                if c.refused.is_none() {
                                    new_streams.push((ch, c.generation, id));
                                }
                            }
                        }
                        Event::Stream(StreamEvent::Readable { id }) => wake(&mut c.readers, id),
                        Event::Stream(StreamEvent::Writable { id } | StreamEvent::Finished { id }) => {
                            wake(&mut c.writers, id)
                        }
                        Event::Stream(StreamEvent::Stopped { id, .. }) => {
                            wake(&mut c.writers, id);
                            wake(&mut c.readers, id);
                        }
                        Event::Connected => {
                            c.connected = true;
                            c.waiters.drain(..).for_each(Waker::wake);
                            if let Some(reason) = &c.refused {
                                let reason = bytes::Bytes::copy_from_slice(reason.as_bytes());
                                c.conn.close(now, REFUSED_CODE.into(), reason);
                                c.lost = true;
                                c.wake_all();
                            }
                        }
                        Event::Stream(StreamEvent::Available { dir: Dir::Bi }) => {
                            c.waiters.drain(..).for_each(Waker::wake);
                        }
                        Event::ConnectionLost { reason } => {
                            c.lost = true;
                            c.error = Some(reason);
                            c.wake_all();
                        }
                        _ => {}
                    }
                }
                if blocked {
                    st.unsent.push(ch);
                } else {
                    // Each datagram goes out as soon as it is built, from one reused buffer.
                    loop {
                        st.send_buf.clear();
                        let Some(t) = c.conn.poll_transmit(now, gso_segments, &mut st.send_buf) else {
                            break;
                        };
                        if !self.send(&t, &st.send_buf) {
                            st.backlog.push((t, std::mem::take(&mut st.send_buf)));
                            st.unsent.push(ch);
                            blocked = true;
                            break;
                        }
                    }
                }
                if c.conn.is_drained() {
                    c.lost = true;
                    c.wake_all();
                    if let Some(at) = c.deadline {
                        st.timers.remove(&(at, ch));
                    }
                    st.conns.remove(&ch);
                    continue;
                }
                // Only calls into a connection move its timer: a datagram, a timeout or a
                // transmit (all here), or a stream op that leaves something to send, which
                // marks it dirty and brings it here too.
                let at = c.conn.poll_timeout();
                if at != c.deadline {
                    if let Some(old) = c.deadline {
                        st.timers.remove(&(old, ch));
                    }
                    if let Some(new) = at {
                        st.timers.insert((new, ch));
                    }
                    c.deadline = at;
                }
            }
            let timer = st.timers.first().map(|&(at, _)| at);
            if blocked {
                // The socket's buffer is full: try again shortly (UDP has no writable readiness
                // through glommio).
                let retry = Instant::now() + Duration::from_micros(SEND_RETRY_US);
                Some(timer.map_or(retry, |t| t.min(retry)))
            } else {
                timer
            }
        };
        for (ch, generation, id) in new_streams {
            (self.on_stream)(Stream { endpoint: self.clone(), ch, generation, id });
        }
        next
    }

    /// Sends queued datagrams in order, removing those sent; false when the socket's buffer
    /// filled before the queue emptied.
    fn send_queued(&self, queue: &mut Vec<(quinn_proto::Transmit, Vec<u8>)>) -> bool {
        let sent = queue.iter().take_while(|(t, buf)| self.send(t, buf)).count();
        queue.drain(..sent);
        queue.is_empty()
    }

    /// Sends a transmit; false when the socket's buffer is full (nothing was sent).
    fn send(&self, t: &quinn_proto::Transmit, buf: &[u8]) -> bool {
        let transmit = quinn_udp::Transmit {
            destination: t.destination,
            ecn: t.ecn.map(|e| quinn_udp::EcnCodepoint::from_bits(e as u8).expect("a valid ECN codepoint")),
            contents: &buf[..t.size],
            segment_size: t.segment_size,
            src_ip: t.src_ip,
        };
        let fd = self.fd();
        // UDP sends do not block for long; a datagram the kernel refuses is lost, and QUIC's
        // loss recovery sends it again.
        match self.udp.send((&fd).into(), &transmit) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                tracing::debug!(error = %e, "QUIC send failed");
                true
            }
        }
    }
}

impl State {
    fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    /// Closes connection `ch` (unless it has ended already) and wakes every task waiting on it;
    /// the driver sends the close, and its task wakes to wait for the connection's new timer.
    fn close(&mut self, ch: ConnectionHandle, code: u32, reason: &[u8]) {
        let Some(c) = self.conns.get_mut(&ch) else { return };
        if !c.lost {
            c.conn.close(Instant::now(), code.into(), bytes::Bytes::copy_from_slice(reason));
        }
        c.lost = true;
        c.wake_all();
        self.dirty.insert(ch);
        self.wake_driver();
    }

    /// The connection `ch` names, if it is still the one of `generation`.
    fn conn(&mut self, ch: ConnectionHandle, generation: u64) -> Option<&mut Conn> {
        self.conns.get_mut(&ch).filter(|c| c.generation == generation)
    }

    fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    fn datagram(&mut self, now: Instant, m: &quinn_udp::RecvMeta, data: BytesMut) {
        let ecn = m.ecn.and_then(|e| quinn_proto::EcnCodepoint::from_bits(e as u8));
        let mut buf = Vec::new();
        match self.endpoint.handle(now, m.addr, m.dst_ip, ecn, data, &mut buf) {
            Some(DatagramEvent::ConnectionEvent(ch, ev)) => {
                if let Some(c) = self.conns.get_mut(&ch) {
                    c.conn.handle_event(ev);
                    self.dirty.insert(ch);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                let Some(config) = self.server_config.clone() else {
                    let t = self.endpoint.refuse(incoming, &mut buf);
                    self.responses.push((t, buf));
                    return;
                };
                match self.endpoint.accept(incoming, now, &mut buf, Some(config)) {
                    Ok((ch, conn)) => {
                        let generation = self.next_generation();
                        let mut c = Conn::new(conn, generation);
                        match self.admit.as_ref().map(|admit| admit(m.addr)) {
                            Some(Ok(guard)) => c._admitted = Some(guard),
                            Some(Err(reason)) => c.refused = Some(reason),
                            None => {}
                        }
                        self.conns.insert(ch, c);
                        self.dirty.insert(ch);
                    }
                    Err(e) => {
                        if let Some(t) = e.response {
                            self.responses.push((t, buf));
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => self.responses.push((t, buf)),
            None => {}
        }
    }
}

/// A non-blocking UDP socket bound to `addr` (`shared`: with SO_REUSEPORT, so every shard binds
/// it), with large buffers.
fn udp_socket(addr: SocketAddr, shared: bool) -> io::Result<socket2::Socket> {
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

fn wake(wakers: &mut HashMap<StreamId, Waker>, id: StreamId) {
    if let Some(w) = wakers.remove(&id) {
        w.wake();
    }
}

/// Resolves when the driver has work: something marked a connection dirty or queued a response.
struct Wait<'a> {
    endpoint: &'a Endpoint,
    deadline: Option<Instant>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.endpoint.state.borrow_mut();
        if !st.dirty.is_empty()
            || !st.responses.is_empty()
            || self.deadline.is_some_and(|d| d <= Instant::now())
        {
            return Poll::Ready(());
        }
        st.driver = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// One bidirectional stream of a connection, as a byte stream both ways.
#[derive(Debug)]
pub struct Stream {
    endpoint: Rc<Endpoint>,
    ch: ConnectionHandle,
    generation: u64,
    id: StreamId,
}

impl Stream {
    /// Runs `f` on the stream's connection, then marks the connection for the driver.
    /// `f` returns its result and whether it left the connection something to send (data
    /// written, credit given back, a finish or stop); only then is the driver woken.
    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> (T, bool)) -> Option<T> {
        let mut st = self.endpoint.state.borrow_mut();
        let (r, changed) = st.conn(self.ch, self.generation).map(f)?;
        if changed {
            st.dirty.insert(self.ch);
            st.wake_driver();
        }
        Some(r)
    }

    /// Runs `take` on what the stream has received. The stream's end (finished and read, or
    /// reset and reported) is `at_end`; when `take` is pending the task waits for more data.
    /// Reading may give the peer credit back: then the driver has something to send.
    fn poll_receive<T>(
        &self,
        cx: &Context<'_>,
        at_end: T,
        take: impl FnOnce(&mut quinn_proto::Chunks<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let id = self.id;
        let r = self.with(|c| {
            if c.lost {
                return (Poll::Ready(Err(c.gone())), false);
            }
            let mut recv = c.conn.recv_stream(id);
            let mut chunks = match recv.read(true) {
                Ok(chunks) => chunks,
                Err(_) => return (Poll::Ready(Ok(at_end)), false),
            };
            let r = take(&mut chunks);
            if r.is_pending() {
                c.readers.insert(id, cx.waker().clone());
            }
            (r, chunks.finalize().should_transmit())
        });
        r.unwrap_or(Poll::Ready(Err(gone())))
    }

    /// The certificate chain the peer presented in its handshake (verified by the server
    /// config's client verifier), if it presented one.
    pub fn peer_chain(&self) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
        let identity = self.with(|c| (c.conn.crypto_session().peer_identity(), false))??;
        identity.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok().map(|b| *b)
    }

    /// Ends the sending side (the peer reads to the end); reading goes on. `AsyncWrite::close`
    /// ends both.
    pub fn finish(&mut self) -> io::Result<()> {
        let id = self.id;
        self.with(|c| {
            if c.lost {
                return (Err(c.gone()), false);
            }
            let r = c
                .conn
                .send_stream(id)
                .finish()
                .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()));
            (r, true)
        })
        .unwrap_or_else(|| Err(gone()))
    }

    /// Runs `write` on the stream's sending side; when the stream or the connection has no
    /// room, the task waits for some.
    fn poll_send<T>(
        &self,
        cx: &Context<'_>,
        write: impl FnOnce(&mut quinn_proto::SendStream<'_>) -> Result<T, quinn_proto::WriteError>,
    ) -> Poll<io::Result<T>> {
        let id = self.id;
        let r = self.with(|c| {
            if c.lost {
                return (Poll::Ready(Err(c.gone())), false);
            }
            match write(&mut c.conn.send_stream(id)) {
                Ok(r) => (Poll::Ready(Ok(r)), true),
                Err(quinn_proto::WriteError::Blocked) => {
                    c.writers.insert(id, cx.waker().clone());
                    (Poll::Pending, false)
                }
                Err(e) => (Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()))), false),
            }
        });
        r.unwrap_or(Poll::Ready(Err(gone())))
    }

    /// Sends all of `data` without copying it: the stream keeps the bytes until the peer has
    /// them. The copying alternative is `AsyncWrite`.
    pub async fn write_chunk(&mut self, mut data: bytes::Bytes) -> io::Result<()> {
        while !data.is_empty() {
            std::future::poll_fn(|cx| {
                self.poll_send(cx, |s| s.write_chunks(std::slice::from_mut(&mut data)))
            })
            .await?;
        }
        Ok(())
    }

    /// The next chunk of the stream as received, up to `max` bytes, without copying it: `None`
    /// at the end of the stream. The copying alternative is `AsyncRead`.
    pub async fn read_chunk(&mut self, max: usize) -> io::Result<Option<bytes::Bytes>> {
        std::future::poll_fn(|cx| {
            self.poll_receive(cx, None, |chunks| match chunks.next(max) {
                Ok(chunk) => Poll::Ready(Ok(chunk.map(|c| c.bytes))),
                Err(quinn_proto::ReadError::Blocked) => Poll::Pending,
                Err(quinn_proto::ReadError::Reset(code)) => Poll::Ready(Err(reset(code))),
            })
        })
        .await
    }
}

/// A connection this end opened with [`Endpoint::connect`]. Dropping it closes the connection
/// (its streams then fail), as an application close with code 0.
#[derive(Debug)]
pub struct Connection {
    endpoint: Rc<Endpoint>,
    ch: ConnectionHandle,
    generation: u64,
}

impl Connection {
    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let mut st = self.endpoint.state.borrow_mut();
        match st.conn(self.ch, self.generation) {
            Some(c) => f(c),
            None => Poll::Ready(Err(gone())),
        }
    }

    /// Opens a bidirectional stream, waiting while the peer's stream limit is reached. The peer
    /// hears of the stream with its first bytes.
    pub async fn open_bi(&self) -> io::Result<Stream> {
        let id = std::future::poll_fn(|cx| {
            self.with(|c| {
                if c.lost {
                    return Poll::Ready(Err(c.gone()));
                }
                match c.conn.streams().open(Dir::Bi) {
                    Some(id) => Poll::Ready(Ok(id)),
                    None => {
                        c.wait(cx.waker());
                        Poll::Pending
                    }
                }
            })
        })
        .await?;
        Ok(Stream { endpoint: self.endpoint.clone(), ch: self.ch, generation: self.generation, id })
    }

    /// Waits until the connection has ended and the endpoint has let go of it: after a close,
    /// once the draining period in which the peer hears of it has passed.
    pub async fn closed(&self) {
        std::future::poll_fn(|cx| {
            let mut st = self.endpoint.state.borrow_mut();
            match st.conn(self.ch, self.generation) {
                Some(c) => {
                    c.wait(cx.waker());
                    Poll::Pending
                }
                None => Poll::Ready(()),
            }
        })
        .await
    }

    /// Closes the connection now, telling the peer `code` and `reason` (sent at once: the
    /// executor may end right after).
    pub fn close(&self, code: u32, reason: &[u8]) {
        {
            let mut st = self.endpoint.state.borrow_mut();
            if st.conn(self.ch, self.generation).is_none() {
                return;
            }
            st.close(self.ch, code, reason);
        }
        self.endpoint.drive();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close(0, b"");
    }
}

fn reset(code: quinn_proto::VarInt) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, format!("the peer reset the stream ({code})"))
}

impl Drop for Stream {
    /// A stream given up without `close` (a cancelled task) is finished and stopped, so the
    /// peer hears of it and its credit comes back; its wakers go.
    fn drop(&mut self) {
        let id = self.id;
        let _ = self.with(|c| {
            let _ = c.conn.send_stream(id).finish();
            let _ = c.conn.recv_stream(id).stop(0u32.into());
            c.readers.remove(&id);
            c.writers.remove(&id);
            ((), true)
        });
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the QUIC connection is closed")
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        // As many chunks as fit: each holds at most one datagram's worth of the stream, and one
        // poll per datagram would wake the reading task that much more often.
        self.poll_receive(cx, 0, |chunks| {
            let mut n = 0;
            loop {
                match chunks.next(buf.len() - n) {
                    Ok(Some(chunk)) => {
                        buf[n..n + chunk.bytes.len()].copy_from_slice(&chunk.bytes);
                        n += chunk.bytes.len();
                        if n == buf.len() {
                            return Poll::Ready(Ok(n));
                        }
                    }
                    // The end of the stream (after what this call read, if anything).
                    Ok(None) => return Poll::Ready(Ok(n)),
                    // What was read before a pause or a reset is delivered; a reset comes next.
                    Err(_) if n > 0 => return Poll::Ready(Ok(n)),
                    Err(quinn_proto::ReadError::Blocked) => return Poll::Pending,
                    Err(quinn_proto::ReadError::Reset(code)) => return Poll::Ready(Err(reset(code))),
                }
            }
        })
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_send(cx, |s| s.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        let _ = self.with(|c| {
            let _ = c.conn.send_stream(id).finish();
            // Reading stops too: whatever the peer still sends on it is not wanted.
            let _ = c.conn.recv_stream(id).stop(0u32.into());
            ((), true)
        });
        Poll::Ready(Ok(()))
    }
}

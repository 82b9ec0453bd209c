//! Starting and stopping a node: one pinned glommio executor per shard, each with the shared
//! listeners (SO_REUSEPORT spreads connections), its own listeners, and its mesh receivers. Each
//! address has a QUIC endpoint (UDP) and a TCP listener on the same port number.

use crate::bus::{Mesh, MeshBus, mesh};
use crate::config::NodeConfig;
use crate::connection_limits::{ConnectionLimits, Refused};
use crate::frame_reader::{Frame, FrameReader, Read};
use crate::frontend::native::{decode_error_code, error_frame, handle};
use crate::metadata::TopicTable;
use crate::request_memory::{RequestMemory, ShardMemory};
use crate::shard::{Shard, now_ms};
use futures::AsyncWriteExt;
use futures::FutureExt;
use futures::{AsyncRead, AsyncWrite};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weir_log::storage::dma::DmaStorage;
use weir_net::ErrorCode;
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader};

/// Registered I/O memory per executor: glommio registers it on three rings and RLIMIT_MEMLOCK
/// may be as low as 8 MiB, so 3 × shards × this must stay within it for up to two shards.
pub const IO_MEMORY_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot start shard {shard}: {reason}")]
    Shard { shard: usize, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("data dir {path} is in use by another weir process")]
    DataDirInUse { path: String },
    #[error("TLS certificate: {0}")]
    Certificate(#[from] crate::tls::CertError),
}

/// Takes an exclusive lock on the data dir for the life of the process, so that two nodes never
/// write the same logs. The lock goes with the process, however it ends.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, ServeError> {
    use std::os::fd::AsRawFd;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ServeError::DataDir { path: path.display().to_string(), source })?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(ServeError::DataDirInUse { path: dir.display().to_string() });
    }
    Ok(file)
}

/// How long a node waits at start for a listener still on its ports to go away.
const PORT_WAIT_MS: u64 = 3000;

/// The shards bind with SO_REUSEPORT, which would also let a second node (of the same user)
/// share the port and take part of the connections. So a node does not start while something
/// accepts connections on its ports. A node that just exited can still be there for a moment:
/// the kernel releases the listening socket of a pending io_uring accept only when it tears the
/// ring down, after the process is gone. So wait a little before calling the port taken.
fn check_port_free(addr: std::net::SocketAddr) -> Result<(), ServeError> {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(PORT_WAIT_MS);
    while std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
        if std::time::Instant::now() >= deadline {
            return Err(ServeError::Listen {
                addr: addr.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process is listening there",
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs a node until SIGINT or SIGTERM, then flushes every partition and returns. Prints where
/// it listens, where its data lives, and its certificate's fingerprint.
pub fn serve(config: NodeConfig) -> Result<(), ServeError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|source| ServeError::DataDir { path: config.data_dir.display().to_string(), source })?;
    }
    let printed = config.clone();
    run(config, stop, move |cert| {
        let config = printed;
        let last = config.shard_port(config.shards - 1);
        println!(
            "weir: listening on quic://{0} and tcp://{0} (shards: {1}, shard ports {2}-{3}), data in {4}",
            config.listen,
            config.shards,
            config.shard_port(0),
            last,
            config.data_dir.display()
        );
        println!(
            "weir: certificate {} ({}), SHA-256 fingerprint {}",
            cert.cert_path.display(),
            if cert.generated { "self-signed, generated now" } else { "loaded" },
            weir_net::tls::format_fingerprint(&cert.fingerprint)
        );
    })?;
    println!("weir: stopped");
    Ok(())
}

/// Runs a node until `stop` is set, then lets requests in flight finish, flushes every partition
/// and returns. `ready` is called once every shard listens, with the certificate QUIC presents.
/// This is how a program embeds a node (`weir-perf --embedded`, tests).
pub fn run(
    config: NodeConfig,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(&crate::tls::NodeCert),
) -> Result<(), ServeError> {
    crate::fatal::install_hook();
    let dir = config.data_dir.clone();
    let dir_err = |source| ServeError::DataDir { path: dir.display().to_string(), source };
    std::fs::create_dir_all(&config.data_dir).map_err(dir_err)?;
    let _lock = lock_data_dir(&config.data_dir)?;
    let table = TopicTable::load(&config.data_dir, config.shards).map_err(dir_err)?;
    for shard in 0..config.shards {
        check_port_free(std::net::SocketAddr::new(config.listen.ip(), config.shard_port(shard)))?;
    }
    check_port_free(config.listen)?;
    let cert = crate::tls::NodeCert::load_or_generate(&config)?;
    let quic_config = cert.server_config(&config)?;
    let mesh = mesh(config.shards);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<usize, ServeError>>();
    let mut handles = Vec::new();
    let counters = Arc::new(crate::stats::NodeCounters::new(config.shards));
    let loaded = Arc::new(std::sync::Barrier::new(config.shards));
    let limits = Limits {
        memory: Arc::new(RequestMemory::new(config.request_memory_bytes_max, config.request_bytes_max)),
        connections: ConnectionLimits::new(config.connections_max, config.connections_per_ip_max),
    };
    for id in 0..config.shards {
        let (config, mesh, table, stop, started) =
            (config.clone(), mesh.clone(), table.clone(), stop.clone(), ready_tx.clone());
        let (counters, loaded, quic_config, limits) =
            (counters.clone(), loaded.clone(), quic_config.clone(), limits.clone());
        let handle = LocalExecutorBuilder::new(Placement::Fixed(id % cpus))
            .name(&format!("{}{id}", crate::fatal::SHARD_THREAD_PREFIX))
            .io_memory(IO_MEMORY_BYTES)
            .spawn(move || async move {
                run_shard(id, config, mesh, table, stop, started, counters, loaded, quic_config, limits).await
            })
            .map_err(|e| ServeError::Shard { shard: id, reason: e.to_string() })?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..config.shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                stop.store(true, Ordering::SeqCst);
                return Err(e);
            }
            Err(_) => {
                return Err(ServeError::Shard { shard: 0, reason: "a shard exited while starting".into() });
            }
        }
    }
    ready(&cert);
    tracing::info!(listen = %config.listen, shards = config.shards, data_dir = %config.data_dir.display(), "node started");
    // A shard that panicked has already ended the process (`fatal`); one that failed otherwise
    // is an error, never ignored.
    for (shard, h) in handles.into_iter().enumerate() {
        if let Err(e) = h.join() {
            stop.store(true, Ordering::SeqCst);
            return Err(ServeError::Shard { shard, reason: format!("shard exited abnormally: {e}") });
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_shard(
    id: usize,
    config: NodeConfig,
    mesh: Mesh,
    table: TopicTable,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<Result<usize, ServeError>>,
    counters: Arc<crate::stats::NodeCounters>,
    loaded: Arc<std::sync::Barrier>,
    quic_config: quinn::ServerConfig,
    limits: Limits,
) {
    if let Err(source) = DmaStorage::probe(&config.data_dir).await {
        let _ = ready.send(Err(ServeError::DataDir { path: config.data_dir.display().to_string(), source }));
        return;
    }
    let Ok((senders, mut receivers)) = mesh.join().await else {
        let _ = ready.send(Err(ServeError::Shard { shard: id, reason: "mesh join failed".into() }));
        return;
    };
    let shared_addr = config.listen;
    let own_addr = std::net::SocketAddr::new(config.listen.ip(), config.shard_port(id));
    let config = Rc::new(config);
    let shard_id = weir_replication::ShardId(id as u16);
    let core = crate::core::ShardCore::new(
        shard_id,
        crate::core::CoreConfig::from(&*config),
        crate::disk::DataDir { root: config.data_dir.clone() },
        crate::runtime::GlommioRuntime::new(),
    );
    let bus = Rc::new(MeshBus::new(shard_id, senders, config.shards, counters.clone()));
    let service = crate::service::PartitionService::new(core, bus.clone());
    let shard = Shard::new(config.clone(), service.clone(), counters);
    for (_, rx) in receivers.streams() {
        glommio::spawn_local(crate::bus::mesh_loop(bus.clone(), service.clone(), rx)).detach();
    }
    shard.core().apply_topics(table).await;
    // No shard takes requests before every shard has opened its partitions: a request forwarded
    // to a shard still loading would find no topic. Blocking is fine here: nothing crosses the
    // mesh before the listeners open.
    loaded.wait();
    let mut accepting = Vec::new();
    let mut endpoints = Vec::new();
    let memory = ShardMemory::new(limits.memory.clone());
    for (addr, shared) in [(shared_addr, true), (own_addr, false)] {
        let bound = {
            let (shard, memory) = (shard.clone(), memory.clone());
            let busy_poll = std::time::Duration::from_micros(config.quic_busy_poll_us);
            crate::quic_native::Endpoint::bind(addr, shared, quic_config.clone(), busy_poll, move |stream| {
                shard.connection_opened();
                glommio::spawn_local(serve_connection(shard.clone(), memory.clone(), stream)).detach();
            })
            .map(|e| {
                let connections = limits.connections.clone();
                e.admit_with(move |remote| match connections.admit(remote.ip()) {
                    Ok(guard) => Ok(Box::new(guard) as Box<dyn std::any::Any>),
                    Err(refused) => Err(refused.to_string()),
                });
                endpoints.push(e)
            })
        };
        if let Err(source) = bound {
            let _ = ready.send(Err(ServeError::Listen { addr: format!("udp {addr}"), source }));
            return;
        }
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                let source = std::io::Error::other(e.to_string());
                let _ = ready.send(Err(ServeError::Listen { addr: addr.to_string(), source }));
                return;
            }
        };
        let connections = limits.connections.clone();
        accepting.push(
            glommio::spawn_local(accept_loop(shard.clone(), memory.clone(), connections, listener)).detach(),
        );
    }
    let _ = ready.send(Ok(id));
    let mut last_retention = now_ms();
    while !stop.load(Ordering::SeqCst) {
        glommio::timer::sleep(Duration::from_millis(50)).await;
        let now = now_ms();
        let retention_due = now.saturating_sub(last_retention) >= 60_000;
        shard.core().maintain(retention_due).await;
        if retention_due {
            last_retention = now;
        }
    }
    // Shutdown: take no new connections, let the requests in flight finish (for a while), then
    // make everything durable. Connections still open are dropped with the executor.
    for task in &accepting {
        task.cancel();
    }
    for endpoint in &endpoints {
        // New QUIC connections are refused; those open keep their streams until the end.
        endpoint.stop_accepting();
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(config.shutdown_timeout_ms);
    while shard.requests_in_flight() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    if shard.requests_in_flight() > 0 {
        tracing::warn!(
            shard = id,
            requests = shard.requests_in_flight(),
            "shutdown with requests unfinished"
        );
    }
    shard.core().flush_all().await;
    // Tell QUIC clients the node is gone (TCP clients see their connections close with the
    // process): the closes are sent before `close` returns.
    for endpoint in &endpoints {
        endpoint.close();
    }
}

/// What bounds the node's memory as a whole, shared by every shard.
#[derive(Debug, Clone)]
struct Limits {
    memory: Arc<RequestMemory>,
    connections: Arc<ConnectionLimits>,
}

async fn accept_loop(
    shard: Rc<Shard>,
    memory: Rc<ShardMemory>,
    connections: Arc<ConnectionLimits>,
    listener: TcpListener,
) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let admitted = match stream.peer_addr() {
                    Ok(peer) => connections.admit(peer.ip()),
                    // Gone already.
                    Err(_) => continue,
                };
                let guard = match admitted {
                    Ok(guard) => guard,
                    Err(refused) => {
                        glommio::spawn_local(refuse(stream, refused)).detach();
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                shard.connection_opened();
                let serve = serve_connection(shard.clone(), memory.clone(), stream);
                // The connection counts against the limits until it is served to its end.
                glommio::spawn_local(async move {
                    serve.await;
                    drop(guard);
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Tells a TCP client over a connection limit why, in an error frame (`Unavailable`, with
/// correlation id 0, as for a frame that does not decode), then closes. The frame is small: the
/// socket's buffer takes it at once, so a refused client holds nothing.
async fn refuse(mut stream: glommio::net::TcpStream, refused: Refused) {
    tracing::debug!(reason = %refused, "connection refused");
    let h = FrameHeader { body_len: 0, api_key: 0, api_version: 0, correlation_id: 0, flags: 0 };
    let _ = stream.write_all(&error_frame(&h, ErrorCode::Unavailable, refused.to_string())).await;
    let _ = stream.close().await;
}

/// An answer frame; `Err` closes the connection after it is written.
type Reply = Result<Vec<u8>, Vec<u8>>;

/// The most bytes the answer to a request may take: for a fetch, `max_bytes`, but at least one
/// whole batch (a fetch returns the first batch whatever its size, up to `batch_bytes_max`); a
/// small answer for the rest (metadata of many topics may pass it, by little).
fn reply_bytes_max(header: &FrameHeader, frame: &[u8], batch_bytes_max: usize) -> usize {
    const SMALL_REPLY_BYTES: usize = 4096;
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
type Pending = futures::future::LocalBoxFuture<'static, (usize, Reply)>;

/// Reads frames from a TCP connection or a QUIC stream and answers them in order. Up to
/// `requests_in_flight_max` requests of one connection are handled at once (a producer pipelines
/// its batches), holding at most `connection_buffer_bytes_max` for their frames and answers (one
/// request always runs, whatever its size). Past either bound the connection is not read until
/// the oldest request is answered, so a client that floods it, or does not read its answers, is
/// held back by TCP or QUIC flow control. Memory per connection: that budget, one request and
/// its answer beyond it, and the reader's head buffer. Frames being read and requests not yet
/// handled also count in the node's request memory (`memory`): while it is used up, the
/// connection is not read either.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    shard: Rc<Shard>,
    memory: Rc<ShardMemory>,
    mut stream: S,
) {
    use futures::future::Either;
    use futures::stream::{FuturesOrdered, StreamExt};
    let in_flight_max = shard.config.requests_in_flight_max;
    let mut reader = FrameReader::new(memory, shard.config.request_bytes_max);
    // Each pending request yields its reservation with its answer.
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    // Bytes held for the requests started and not yet answered: each one's frame and the most
    // its answer may take. A slow reader thus pins at most about `connection_buffer_bytes_max`.
    let budget = shard.config.connection_buffer_bytes_max;
    let mut reserved = 0usize;
    let (mut closing, mut eof) = (false, false);
    loop {
        // A frame is read only when it can start at once: there is room in the budget (the last
        // request may pass it) or nothing is pending. So no frame read waits, holding request
        // memory, for a client that does not read its answers.
        let room = pending.is_empty() || (pending.len() < in_flight_max && reserved < budget);
        let can_read = !closing && !eof && room;
        if pending.is_empty() && !can_read {
            break;
        }
        let event = if can_read && pending.is_empty() {
            // Nothing pending (an empty FuturesOrdered would end at once): just read.
            Either::Right(reader.next(&mut stream).await)
        } else if can_read {
            let read = reader.next(&mut stream);
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
            Either::Right(Err(_)) => break,
            // The client finished sending: answer what it sent, then close.
            Either::Right(Ok(Read::End)) => {
                eof = true;
                continue;
            }
            Either::Right(Ok(Read::Malformed(e))) => {
                let h = FrameHeader { body_len: 0, api_key: 0, api_version: 0, correlation_id: 0, flags: 0 };
                let reply = error_frame(&h, decode_error_code(&e), e.to_string());
                pending.push_back(futures::future::ready((0, Err(reply))).boxed_local());
                closing = true;
                continue;
            }
            Either::Right(Ok(Read::Frame(frame))) => {
                let (cost, answer) = start_request(&shard, frame);
                reserved += cost;
                pending.push_back(answer);
                continue;
            }
            Either::Left(reply) => reply,
        };
        let Some((cost, reply)) = reply else { continue };
        reserved -= cost;
        let (bytes, close) = match reply {
            Ok(r) => (r, false),
            Err(r) => (r, true),
        };
        if stream.write_all(&bytes).await.is_err() || close {
            break;
        }
    }
    let _ = stream.close().await;
}

/// Starts handling one request; returns its cost in the connection's budget (its frame and the
/// most its answer may take) and its answer to come.
fn start_request(shard: &Rc<Shard>, frame: Frame) -> (usize, Pending) {
    let Frame { header, bytes, reservation } = frame;
    let cost = bytes.len() + reply_bytes_max(&header, &bytes, shard.config.batch_bytes_max);
    let shard = shard.clone();
    // Each request is a task of its own: it makes progress (and releases the locks it takes)
    // even while this connection is blocked writing an earlier answer to a client that does not
    // read. The task is detached: a connection that fails drops its pending answers, never the
    // requests. A produce cancelled halfway through an append would leave the log with a hole
    // that later acknowledgements cover. The frame's request memory goes back when the task
    // ends, with the frame, whether or not the answer is ever written.
    let task = glommio::spawn_local(async move {
        let _in_flight = shard.begin_request();
        let _reservation = reservation;
        handle(&shard, header, bytes.into()).await
    })
    .detach();
    let answer = async move {
        let reply = task.await.unwrap_or_else(|| {
            Err(error_frame(&header, ErrorCode::Unavailable, "the node is stopping".into()))
        });
        (cost, reply)
    };
    (cost, answer.boxed_local())
}

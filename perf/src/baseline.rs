//! What the hardware does without Weir, measured in the same run so every figure has a ratio:
//! raw direct-I/O sequential writes and reads (glommio `DmaFile`, on the data dir's filesystem,
//! in the workload's block size), and raw loopback streams and echoes over TCP and QUIC: with the
//! client stack the SDK uses (tokio; quinn on tokio for QUIC), and for QUIC also with the shards'
//! own driver at both ends.

use crate::latency::Latency;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_rt::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskBaseline {
    pub block_bytes: usize,
    pub total_bytes: u64,
    /// fdatasync after every block (as a node with fsync-before-ack does).
    pub fsync_each: bool,
    pub write_mb_s: f64,
    pub read_mb_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetBaseline {
    pub transport: String,
    /// One stream, one direction, 1 MiB writes.
    pub bulk_mb_s: f64,
    /// 64-byte echo round trips, one at a time.
    pub rtt_p50_us: u64,
    pub rtt_p99_us: u64,
    /// 1 MiB asked for and sent back, one request at a time (what a fetch does).
    #[serde(default)]
    pub answers_mb_s: f64,
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64().max(1e-9) / 1e6
}

/// Raw direct-I/O write (then read) of `total_bytes` in `block_bytes` blocks, in a temporary
/// file under `dir`. Blocks round up to 4 KiB, the direct-I/O alignment.
pub fn disk(
    dir: &Path,
    block_bytes: usize,
    total_bytes: u64,
    fsync_each: bool,
) -> std::io::Result<DiskBaseline> {
    let block_bytes = block_bytes.next_multiple_of(4096).max(4096);
    let total_bytes = total_bytes.next_multiple_of(block_bytes as u64);
    let tmp = tempfile::tempdir_in(dir)?;
    let path = tmp.path().join("baseline.data");
    // glommio runs on a thread of its own, away from the tokio runtime.
    let (write, read) = std::thread::spawn(move || {
        weir_benches::run_local(async move {
            let w = weir_benches::raw_write(&path, block_bytes, total_bytes, fsync_each).await;
            let r = weir_benches::raw_read(&path, block_bytes, total_bytes).await;
            (w, r)
        })
    })
    .join()
    .map_err(|_| std::io::Error::other("the disk baseline failed (see the message above)"))?;
    Ok(DiskBaseline {
        block_bytes,
        total_bytes,
        fsync_each,
        write_mb_s: mb_s(total_bytes, write),
        read_mb_s: mb_s(total_bytes, read),
    })
}

const CHUNK_BYTES: usize = 1 << 20;
const ECHO_BYTES: usize = 64;
/// 1 MiB answers asked for, one at a time, per baseline: half the bulk's bytes, so that the
/// congestion window's start does not dominate (64 answers did).
fn answer_count(bulk_bytes: u64) -> u32 {
    (bulk_bytes / 2 / CHUNK_BYTES as u64).max(1) as u32
}

/// Raw TCP over loopback: a bulk stream of `bulk_bytes`, then `echoes` 64-byte round trips.
pub async fn tcp(bulk_bytes: u64, echoes: u32) -> std::io::Result<NetBaseline> {
    let listener = tokio_rt::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio_rt::spawn(async move {
        // The bulk connection: read to the end, then one byte back.
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; CHUNK_BYTES];
        while s.read(&mut buf).await? > 0 {}
        s.write_all(&[1]).await?;
        // The echo connection.
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let mut msg = [0u8; ECHO_BYTES];
        while s.read_exact(&mut msg).await.is_ok() {
            s.write_all(&msg).await?;
        }
        // The answers connection: 1 MiB for each 4-byte ask.
        let (mut s, _) = listener.accept().await?;
        let answer = vec![9u8; CHUNK_BYTES];
        let mut ask = [0u8; 4];
        while s.read_exact(&mut ask).await.is_ok() {
            s.write_all(&answer).await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut s = tokio_rt::net::TcpStream::connect(addr).await?;
    let chunk = vec![7u8; CHUNK_BYTES];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bulk_bytes {
        s.write_all(&chunk).await?;
        sent += CHUNK_BYTES as u64;
    }
    s.shutdown().await?;
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack).await?;
    let bulk = start.elapsed();
    let mut s = tokio_rt::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut rtt = Latency::default();
    let mut msg = [3u8; ECHO_BYTES];
    for _ in 0..echoes {
        let t = Instant::now();
        s.write_all(&msg).await?;
        s.read_exact(&mut msg).await?;
        rtt.record(t.elapsed());
    }
    drop(s);
    let mut s = tokio_rt::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; CHUNK_BYTES];
    let start = Instant::now();
    for _ in 0..answer_count(bulk_bytes) {
        s.write_all(&(CHUNK_BYTES as u32).to_le_bytes()).await?;
        s.read_exact(&mut buf).await?;
    }
    let answers = mb_s(u64::from(answer_count(bulk_bytes)) * CHUNK_BYTES as u64, start.elapsed());
    drop(s);
    server.await.map_err(std::io::Error::other)??;
    Ok(NetBaseline {
        transport: "tcp".into(),
        bulk_mb_s: mb_s(sent, bulk),
        rtt_p50_us: rtt.at(50.0),
        rtt_p99_us: rtt.at(99.0),
        answers_mb_s: answers,
    })
}

/// The QUIC server side of a baseline stream, on either stack. Its first byte says what it is
/// for:
/// - `B`: read to the end, then answer with one byte;
/// - `E`: echo 64-byte messages;
/// - `A`: answer each 4-byte ask with 1 MiB.
async fn serve<S: BaselineStream>(mut s: S) {
    let mut kind = [0u8; 1];
    if s.receive_exact(&mut kind).await.is_err() {
        return;
    }
    match kind[0] {
        b'B' => {
            while let Ok(Some(_)) = s.receive_chunk(CHUNK_BYTES).await {}
            let _ = s.send(&[1]).await;
            let _ = s.finish();
        }
        b'A' => {
            let answer = bytes::Bytes::from(vec![9u8; CHUNK_BYTES]);
            let mut ask = [0u8; 4];
            while s.receive_exact(&mut ask).await.is_ok() && s.send_chunk(answer.clone()).await.is_ok() {}
        }
        _ => {
            let mut msg = [0u8; ECHO_BYTES];
            while s.receive_exact(&mut msg).await.is_ok() && s.send(&msg).await.is_ok() {}
        }
    }
}

/// The QUIC server configuration the node would use, with a certificate made for the run.
fn baseline_server_config() -> Result<(quinn::ServerConfig, tempfile::TempDir), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = weir_node::config::NodeConfig {
        data_dir: dir.path().to_owned(),
        kafka_listen: "off".into(),
        ..Default::default()
    };
    let cert = weir_node::tls::NodeCert::load_or_generate(&config).map_err(|e| e.to_string())?;
    Ok((cert.server_config(&config, None).map_err(|e| e.to_string())?, dir))
}

/// One stream of a QUIC baseline, for its client ([`measure`]) and its server ([`serve`]):
/// quinn's on tokio, or the native driver's on glommio.
trait BaselineStream {
    /// Sends `data` without copying it (both stacks can).
    async fn send_chunk(&mut self, data: bytes::Bytes) -> std::io::Result<()>;
    async fn send(&mut self, data: &[u8]) -> std::io::Result<()>;
    async fn receive_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()>;
    /// What arrived next, up to `max` bytes, without copying it; `None` at the end.
    async fn receive_chunk(&mut self, max: usize) -> std::io::Result<Option<bytes::Bytes>>;
    fn finish(&mut self) -> std::io::Result<()>;
}

impl BaselineStream for (quinn::SendStream, quinn::RecvStream) {
    async fn send_chunk(&mut self, data: bytes::Bytes) -> std::io::Result<()> {
        self.0.write_chunk(data).await.map_err(std::io::Error::other)
    }
    async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(data).await.map_err(std::io::Error::other)
    }
    async fn receive_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.1.read_exact(buf).await.map_err(std::io::Error::other)
    }
    async fn receive_chunk(&mut self, max: usize) -> std::io::Result<Option<bytes::Bytes>> {
        Ok(self.1.read_chunk(max, true).await.map_err(std::io::Error::other)?.map(|c| c.bytes))
    }
    fn finish(&mut self) -> std::io::Result<()> {
        self.0.finish().map_err(std::io::Error::other)
    }
}

impl BaselineStream for weir_node::quic_native::Stream {
    async fn send_chunk(&mut self, data: bytes::Bytes) -> std::io::Result<()> {
        self.write_chunk(data).await
    }
    async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        futures::AsyncWriteExt::write_all(self, data).await
    }
    async fn receive_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        futures::AsyncReadExt::read_exact(self, buf).await
    }
    async fn receive_chunk(&mut self, max: usize) -> std::io::Result<Option<bytes::Bytes>> {
        self.read_chunk(max).await
    }
    fn finish(&mut self) -> std::io::Result<()> {
        weir_node::quic_native::Stream::finish(self)
    }
}

/// The client side of a QUIC baseline on streams `open` makes (each told what it is for by its
/// first byte, see [`serve`]): a bulk stream, echoes, then 1 MiB answers asked
/// for one at a time.
async fn measure<S: BaselineStream>(
    open: impl AsyncFn(&'static [u8]) -> std::io::Result<S>,
    bulk_bytes: u64,
    echoes: u32,
    transport: &str,
) -> std::io::Result<NetBaseline> {
    let mut s = open(b"B").await?;
    let chunk = bytes::Bytes::from(vec![7u8; CHUNK_BYTES]);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bulk_bytes {
        s.send_chunk(chunk.clone()).await?;
        sent += CHUNK_BYTES as u64;
    }
    s.finish()?;
    let mut ack = [0u8; 1];
    s.receive_exact(&mut ack).await?;
    let bulk = start.elapsed();
    let mut s = open(b"E").await?;
    let mut rtt = Latency::default();
    let mut msg = [3u8; ECHO_BYTES];
    for _ in 0..echoes {
        let t = Instant::now();
        s.send(&msg).await?;
        s.receive_exact(&mut msg).await?;
        rtt.record(t.elapsed());
    }
    let mut s = open(b"A").await?;
    let mut buf = vec![0u8; CHUNK_BYTES];
    let start = Instant::now();
    for _ in 0..answer_count(bulk_bytes) {
        s.send(&(CHUNK_BYTES as u32).to_le_bytes()).await?;
        s.receive_exact(&mut buf).await?;
    }
    let answers = mb_s(u64::from(answer_count(bulk_bytes)) * CHUNK_BYTES as u64, start.elapsed());
    Ok(NetBaseline {
        transport: transport.into(),
        bulk_mb_s: mb_s(sent, bulk),
        rtt_p50_us: rtt.at(50.0),
        rtt_p99_us: rtt.at(99.0),
        answers_mb_s: answers,
    })
}

/// [`measure`] with quinn on tokio as the client, with Weir's TLS and transport settings.
async fn measure_quic(
    server: std::net::SocketAddr,
    bulk_bytes: u64,
    echoes: u32,
    transport: &str,
) -> Result<NetBaseline, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let client_config = weir_net::tls::client_config(&weir_net::tls::Trust::Insecure).map_err(|e| err(&e))?;
    let endpoint =
        weir_net::tls::endpoint("127.0.0.1:0".parse().expect("an address"), None).map_err(|e| err(&e))?;
    let conn = endpoint
        .connect_with(client_config, server, "localhost")
        .map_err(|e| err(&e))?
        .await
        .map_err(|e| err(&e))?;
    let open = async |kind: &'static [u8]| {
        let mut s = conn.open_bi().await?;
        s.0.write_all(kind).await.map_err(std::io::Error::other)?;
        Ok(s)
    };
    let result = measure(open, bulk_bytes, echoes, transport).await.map_err(|e| err(&e));
    conn.close(0u32.into(), b"done");
    result
}

/// Raw QUIC over loopback, quinn on tokio at both ends (reported as `quic-tokio`).
pub async fn quic(bulk_bytes: u64, echoes: u32) -> Result<NetBaseline, String> {
    let (server_config, _dir) = baseline_server_config()?;
    let server = weir_net::tls::endpoint("127.0.0.1:0".parse().expect("an address"), Some(server_config))
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let serving = tokio_rt::spawn(async move {
        let Some(incoming) = server.accept().await else { return };
        if let Ok(conn) = incoming.await {
            while let Ok((send, recv)) = conn.accept_bi().await {
                tokio_rt::spawn(serve((send, recv)));
            }
        }
    });
    let result = measure_quic(addr, bulk_bytes, echoes, "quic-tokio").await;
    serving.abort();
    result
}

/// The node's shard-native driver serving on a glommio executor of its own thread, until
/// dropped. `busy_poll` is the driver's busy-poll window (the node's is `quic_busy_poll_us`).
struct NativeServer {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<glommio::ExecutorJoinHandle<()>>,
}

impl NativeServer {
    fn start(busy_poll: Duration) -> Result<Self, String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let (server_config, dir) = baseline_server_config()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            glommio::LocalExecutorBuilder::default()
                .name("baseline-quic")
                .spawn(move || async move {
                    let _dir = dir;
                    let bound = weir_node::quic_native::Endpoint::bind(
                        "127.0.0.1:0".parse().expect("an address"),
                        false,
                        server_config,
                        busy_poll,
                        |s| {
                            glommio::spawn_local(serve(s)).detach();
                        },
                    );
                    let endpoint = match bound.and_then(|e| e.local_addr().map(|a| (e, a))) {
                        Ok((e, a)) => {
                            let _ = tx.send(Ok(a));
                            e
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        glommio::timer::sleep(Duration::from_millis(5)).await;
                    }
                    endpoint.close();
                })
                .map_err(|e| err(&e))?
        };
        let addr = rx.recv().map_err(|e| err(&e))??;
        Ok(Self { addr, stop, thread: Some(thread) })
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Raw QUIC over loopback with the node's shard-native driver serving and quinn on tokio
/// sending, so the two server sides compare (reported as `quic-native`).
pub async fn quic_native(bulk_bytes: u64, echoes: u32, busy_poll: Duration) -> Result<NetBaseline, String> {
    let server = NativeServer::start(busy_poll)?;
    measure_quic(server.addr, bulk_bytes, echoes, "quic-native").await
}

/// Raw QUIC over loopback with the shard-native driver at both ends, each on a glommio executor
/// of its own thread, as two nodes' shards talk (reported as `quic-native-both`; its
/// counterpart is `quic-tokio`, quinn on tokio at both ends). The same streams as the others
/// ([`measure`]).
pub fn quic_native_both(bulk_bytes: u64, echoes: u32, busy_poll: Duration) -> Result<NetBaseline, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let server = NativeServer::start(busy_poll)?;
    let addr = server.addr;
    let client = glommio::LocalExecutorBuilder::default()
        .name("baseline-quic-client")
        .spawn(move || async move { measure_native(addr, bulk_bytes, echoes, busy_poll).await })
        .map_err(|e| err(&e))?;
    client.join().map_err(|e| err(&e))?
}

/// [`measure`] with the native driver as the client, on the current glommio executor.
async fn measure_native(
    server: std::net::SocketAddr,
    bulk_bytes: u64,
    echoes: u32,
    busy_poll: Duration,
) -> Result<NetBaseline, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let client_config = weir_net::tls::client_config(&weir_net::tls::Trust::Insecure).map_err(|e| err(&e))?;
    let endpoint =
        weir_node::quic_native::Endpoint::client("127.0.0.1:0".parse().expect("an address"), busy_poll)
            .map_err(|e| err(&e))?;
    let conn = endpoint.connect(client_config, server, "localhost").await.map_err(|e| err(&e))?;
    let open = async |kind: &'static [u8]| {
        let mut s = conn.open_bi().await?;
        futures::AsyncWriteExt::write_all(&mut s, kind).await?;
        Ok(s)
    };
    let result = measure(open, bulk_bytes, echoes, "quic-native-both").await.map_err(|e| err(&e));
    conn.close(0, b"done");
    endpoint.close();
    result
}

/// One network baseline's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetKind {
    /// TCP, tokio at both ends.
    Tcp,
    /// QUIC, quinn on tokio at both ends.
    QuicTokio,
    /// QUIC, the shard-native driver serving and quinn on tokio sending.
    QuicNative,
    /// QUIC, the shard-native driver at both ends.
    QuicNativeBoth,
}

impl NetKind {
    pub const ALL: [NetKind; 4] =
        [NetKind::Tcp, NetKind::QuicTokio, NetKind::QuicNative, NetKind::QuicNativeBoth];
}

/// The network baselines of `kinds`, in `rounds` interleaved rounds. Each figure is the median
/// of its rounds: a shared machine drifts by tens of percent within a minute, and interleaving
/// lets the drift hit every transport alike, so that their ratios mean something.
pub async fn net(
    bulk_bytes: u64,
    echoes: u32,
    rounds: u32,
    busy_poll: Duration,
    kinds: &[NetKind],
) -> Result<Vec<NetBaseline>, String> {
    let mut runs: Vec<Vec<NetBaseline>> = vec![Vec::new(); kinds.len()];
    for _ in 0..rounds.max(1) {
        for (kind, runs) in kinds.iter().zip(&mut runs) {
            runs.push(match kind {
                NetKind::Tcp => tcp(bulk_bytes, echoes).await.map_err(|e| e.to_string())?,
                NetKind::QuicTokio => quic(bulk_bytes, echoes).await?,
                NetKind::QuicNative => quic_native(bulk_bytes, echoes, busy_poll).await?,
                NetKind::QuicNativeBoth => quic_native_both(bulk_bytes, echoes, busy_poll)?,
            });
        }
    }
    Ok(runs.iter().map(|r| median(r)).collect())
}

/// The median of each figure of `runs` (of one transport) on its own.
fn median(runs: &[NetBaseline]) -> NetBaseline {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).expect("figures are numbers"));
        v[v.len() / 2]
    }
    NetBaseline {
        transport: runs[0].transport.clone(),
        bulk_mb_s: mid(runs.iter().map(|r| r.bulk_mb_s).collect()),
        rtt_p50_us: mid(runs.iter().map(|r| r.rtt_p50_us).collect()),
        rtt_p99_us: mid(runs.iter().map(|r| r.rtt_p99_us).collect()),
        answers_mb_s: mid(runs.iter().map(|r| r.answers_mb_s).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_figure_is_its_own_median() {
        let run = |bulk, p50, answers| NetBaseline {
            transport: "t".into(),
            bulk_mb_s: bulk,
            rtt_p50_us: p50,
            rtt_p99_us: p50 * 2,
            answers_mb_s: answers,
        };
        let m = median(&[run(3.0, 10, 7.0), run(1.0, 30, 9.0), run(2.0, 20, 8.0)]);
        assert_eq!(m, run(2.0, 20, 8.0));
        let m = median(&[run(5.0, 50, 1.0), run(1.0, 10, 5.0), run(3.0, 40, 2.0)]);
        assert_eq!((m.bulk_mb_s, m.rtt_p50_us, m.answers_mb_s), (3.0, 40, 2.0));
    }
}

//! Starting real `weir` nodes on free ports for integration tests.
#![allow(dead_code)]

pub mod cluster;
pub mod kafka;
pub mod relay;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use weir_net::client::{Target, Trust};

/// Which transport a test drives the node through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Quic,
    Tcp,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Quic => "quic",
            Via::Tcp => "tcp",
        }
    }
}

/// A running `weir serve` child process. Killed (SIGKILL) on drop.
pub struct Node {
    pub child: Child,
    /// The loopback address the node listens on (127.0.0.1 but in clusters).
    pub host: String,
    pub port: u16,
    pub shards: usize,
    pub data_dir: PathBuf,
    /// SHA-256 fingerprint of the node's certificate, as it printed it.
    pub fingerprint: String,
}

/// `count` consecutive free ports below the ephemeral range (where the kernel picks the local
/// ports of outgoing connections), so that a port freed by a stopped node is not taken by some
/// other test's connection before the node restarts on it.
pub fn free_ports(count: usize) -> u16 {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let mut x = u64::from(seed) ^ (u64::from(std::process::id()) << 32);
    for _ in 0..1000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let first = 10_000 + ((x >> 33) % 20_000) as u16;
        let held: Vec<_> =
            (0..count as u16).map_while(|i| TcpListener::bind(("127.0.0.1", first + i)).ok()).collect();
        if held.len() == count {
            return first;
        }
    }
    panic!("no {count} consecutive free ports");
}

impl Node {
    /// Starts a node and returns once it prints that it listens.
    pub fn start(data_dir: &Path, shards: usize) -> Node {
        let port = free_ports(shards + 1);
        Self::start_on(data_dir, shards, port)
    }

    /// A free port (and the shards' after it) for [`start_with`](Self::start_with).
    pub fn free_port(shards: usize) -> u16 {
        free_ports(shards + 1)
    }

    pub fn start_on(data_dir: &Path, shards: usize, port: u16) -> Node {
        Self::start_with(data_dir, shards, port, &[])
    }

    /// Starts a node with extra `WEIR_*` settings, e.g. `("WEIR_FSYNC", "false")`.
    pub fn start_with(data_dir: &Path, shards: usize, port: u16, env: &[(&str, &str)]) -> Node {
        Self::start_custom(data_dir, shards, port, env, |_| {})
    }

    /// Starts a node as [`start_with`](Self::start_with) does, with `setup` adjusting its
    /// command first (a resource limit, a pipe for its stderr).
    pub fn start_custom(
        data_dir: &Path,
        shards: usize,
        port: u16,
        env: &[(&str, &str)],
        setup: impl FnOnce(&mut Command),
    ) -> Node {
        let mut command = serve_command(data_dir, shards, port, env);
        setup(&mut command);
        Self::spawn(command, "127.0.0.1", data_dir, shards, port)
    }

    /// Runs `command`, a `weir serve` listening on `host:port`, and returns once it says so.
    pub fn spawn(mut command: Command, host: &str, data_dir: &Path, shards: usize, port: u16) -> Node {
        let mut child = command.spawn().expect("weir starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with("weir: listening on"), "unexpected first line {line:?}");
        line.clear();
        stdout.read_line(&mut line).unwrap();
        let fingerprint = line
            .trim_end()
            .rsplit_once("fingerprint ")
            .unwrap_or_else(|| panic!("no fingerprint in {line:?}"))
            .1
            .to_owned();
        // Keep reading stdout, so the node never blocks writing to it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Node { child, host: host.to_owned(), port, shards, data_dir: data_dir.to_owned(), fingerprint }
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The shared address through `via`; QUIC trusts the node by its printed fingerprint.
    pub fn target(&self, via: Via) -> Target {
        self.target_at(&self.addr(), via)
    }

    /// Shard `shard`'s own address through `via`.
    pub fn shard_target(&self, shard: usize, via: Via) -> Target {
        self.target_at(&self.shard_addr(shard), via)
    }

    fn target_at(&self, addr: &str, via: Via) -> Target {
        match via {
            Via::Tcp => Target::tcp(addr),
            Via::Quic => {
                let fp = weir_net::tls::parse_fingerprint(&self.fingerprint).unwrap();
                Target::quic(addr, &Trust::Fingerprint(fp)).unwrap()
            }
        }
    }

    /// Address of shard `shard`'s own listener.
    pub fn shard_addr(&self, shard: usize) -> String {
        format!("{}:{}", self.host, self.port + 1 + shard as u16)
    }

    pub fn kill(mut self) -> (PathBuf, u16) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        (self.data_dir.clone(), self.port)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> (PathBuf, u16) {
        signal(self.child.id(), "-TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "weir exited with {status}");
        (self.data_dir.clone(), self.port)
    }

    /// The `weir` binary as a client of this node over `via`.
    pub fn cli(&self, via: Via) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
        c.args(["--server", &self.addr(), "--transport", via.name()]);
        if via == Via::Quic {
            c.args(["--tls-fingerprint", &self.fingerprint]);
        }
        c
    }
}

/// `weir serve` with extra `WEIR_*` settings; its stdout piped, its stderr inherited.
pub fn serve_command(data_dir: &Path, shards: usize, port: u16, env: &[(&str, &str)]) -> Command {
    serve_command_on("127.0.0.1", data_dir, shards, port, env)
}

/// [`serve_command`] listening on `host`.
pub fn serve_command_on(
    host: &str,
    data_dir: &Path,
    shards: usize,
    port: u16,
    env: &[(&str, &str)],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        // A small free-space floor, so a test machine with little room in its temp dir still
        // produces; a test may set its own.
        .env("WEIR_STORAGE_MIN_FREE_BYTES", "67108864")
        // Nodes of tests run side by side: none takes the Kafka port unless its test sets one.
        .env("WEIR_KAFKA_LISTEN", "off")
        .envs(env.iter().copied())
        .args(["serve", "--shards", &shards.to_string(), "--listen", &format!("{host}:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        // `WEIR_TEST_NODE_LOG` sets the nodes' log filter when a test needs their story.
        .env("WEIR_LOG", std::env::var("WEIR_TEST_NODE_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Runs `command`, a `weir serve` expected not to start, and returns what it wrote to stderr.
/// Panics if the node says it listens.
pub fn start_fails(mut command: Command) -> String {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("weir runs");
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if line.starts_with("weir: listening on") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the node started: {line:?}");
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "weir exited with {status}");
    errors.join().unwrap()
}

/// Sends `signal` (as `kill` spells it, e.g. `-TERM`) to a process.
pub fn signal(pid: u32, signal: &str) {
    assert!(Command::new("kill").args([signal, &pid.to_string()]).status().unwrap().success());
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn runtime() -> tokio_rt::runtime::Runtime {
    tokio_rt::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A batch of `values`, as a producer would send it.
pub fn batch_of(values: &[&[u8]]) -> Vec<u8> {
    let mut b = weir_log::batch::BatchBuilder::new(1 << 20);
    for v in values {
        b.push(&weir_log::batch::Record { key: None, value: Some(v), headers: &[], timestamp: 1 }).unwrap();
    }
    b.seal(weir_log::batch::ProducerStamp::default()).as_bytes().to_vec()
}

/// Produces `batches` to one partition through a fresh connection (acks leader): the answer's
/// error code and message.
pub async fn produce_raw(
    target: &weir_net::client::Target,
    topic: &str,
    partition: u32,
    batches: &[u8],
) -> (weir_net::ErrorCode, String) {
    use weir_net::api::{Request, Response};
    let mut conn = weir_net::client::connection::Connection::connect(target).await.unwrap();
    let req = Request::Produce {
        topic: topic.into(),
        partition,
        acks: weir_net::Acks::Leader,
        timeout_ms: 1000,
        batches,
    };
    match conn.call(&req).await.unwrap().response().unwrap() {
        Response::Produce { error, message, .. } => (error, message),
        other => panic!("{other:?}"),
    }
}

/// One request as a frame of the protocol, with correlation id `cid`.
pub fn request_frame(req: &weir_net::api::Request<'_>, cid: u32) -> Vec<u8> {
    let mut w = weir_net::wire::Writer::default();
    req.encode(&mut w).unwrap();
    weir_net::frame::encode_frame(req.api_key() as u16, weir_net::api::API_VERSION, cid, 0, &w.buf)
}

/// Reads one answer frame from a TCP connection to a node: `Ok` with its body if it answers
/// `cid`, `Err` with the error a refused connection is told. Panics if nothing comes within the
/// stream's read timeout.
pub fn read_answer(stream: &mut std::net::TcpStream, cid: u32) -> Result<Vec<u8>, weir_net::api::ErrorBody> {
    use std::io::Read;
    use weir_net::frame::{FLAG_ERROR, FRAME_HEADER_BYTES, FrameHeader};
    let mut head = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut head).unwrap_or_else(|e| panic!("no answer within the read timeout: {e}"));
    let header = FrameHeader::decode(&head, usize::MAX).unwrap();
    let mut body = vec![0u8; header.body_len];
    stream.read_exact(&mut body).unwrap();
    if header.flags & FLAG_ERROR == 0 {
        assert_eq!(header.correlation_id, cid);
        return Ok(body);
    }
    assert_eq!(header.correlation_id, 0, "a refusal answers no request");
    Err(weir_net::api::ErrorBody::decode(&body).unwrap())
}

/// Sends an ApiVersions request and reads the answer (see [`read_answer`]): `Ok` if the node
/// served it.
pub fn try_request(stream: &mut std::net::TcpStream) -> Result<(), weir_net::api::ErrorBody> {
    use std::io::Write;
    // The write may fail on a connection the node closed already; its error frame is still
    // there to read.
    let _ = stream.write_all(&request_frame(&weir_net::api::Request::ApiVersions, 7));
    read_answer(stream, 7).map(|_| ())
}

/// The length of the answer frame whose header is `header`, checked to answer `cid`.
pub fn answer_len(header: &[u8], cid: u32) -> usize {
    let h = weir_net::frame::FrameHeader::decode(header, usize::MAX).unwrap();
    assert_eq!((h.correlation_id, h.flags), (cid, 0), "an answer, in order");
    h.frame_len()
}

/// The response an answer frame holds.
pub fn decode_answer(api: weir_net::ApiKey, frame: &[u8]) -> weir_net::api::Response<'_> {
    weir_net::api::Response::decode(api, &frame[weir_net::frame::FRAME_HEADER_BYTES..]).unwrap()
}

/// A UDP relay between one client and the node that drops, duplicates and reorders datagrams,
/// each with its own seeded probability. Runs until the test's runtime ends.
pub async fn lossy_relay(node: std::net::SocketAddr, seed: u64) -> std::net::SocketAddr {
    use tokio_rt::net::UdpSocket;
    let front = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(node).await.unwrap();
    let addr = front.local_addr().unwrap();
    let client = std::sync::Arc::new(std::sync::Mutex::new(None::<std::net::SocketAddr>));
    // Each direction draws its faults from its own seeded sequence.
    let faults_from = |seed: u64| {
        let mut rng = seed | 1;
        move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            match rng % 100 {
                0..=2 => "drop",
                3..=4 => "duplicate",
                5..=7 => "hold",
                _ => "pass",
            }
        }
    };
    let mut faults_up = faults_from(seed);
    let mut faults = faults_from(seed.rotate_left(32));
    let (f, b, c) = (front.clone(), back.clone(), client.clone());
    tokio_rt::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut held: Option<Vec<u8>> = None;
        while let Ok((n, from)) = f.recv_from(&mut buf).await {
            *c.lock().unwrap() = Some(from);
            let d = buf[..n].to_vec();
            match faults_up() {
                "drop" => continue,
                "duplicate" => {
                    let _ = b.send(&d).await;
                    let _ = b.send(&d).await;
                }
                "hold" if held.is_none() => {
                    held = Some(d);
                    continue;
                }
                _ => {
                    let _ = b.send(&d).await;
                }
            }
            // A held datagram goes out after a later one: reordered.
            if let Some(h) = held.take() {
                let _ = b.send(&h).await;
            }
        }
    });
    tokio_rt::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut held: Option<Vec<u8>> = None;
        while let Ok(n) = back.recv(&mut buf).await {
            let Some(to) = *client.lock().unwrap() else { continue };
            let d = buf[..n].to_vec();
            match faults() {
                "drop" => continue,
                "duplicate" => {
                    let _ = front.send_to(&d, to).await;
                    let _ = front.send_to(&d, to).await;
                }
                "hold" if held.is_none() => {
                    held = Some(d);
                    continue;
                }
                _ => {
                    let _ = front.send_to(&d, to).await;
                }
            }
            if let Some(h) = held.take() {
                let _ = front.send_to(&h, to).await;
            }
        }
    });
    addr
}

//! Floods of connections cannot take the node's memory or lock out its clients: frames being
//! read and requests in flight share one node-wide budget (`request_memory_bytes_max`), and
//! connections beyond `connections_max` or `connections_per_ip_max` are refused with an error
//! that names the limit.

mod common;

use common::{Node, Via, runtime, try_request};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weir_net::client::{Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek};
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader};
use weir_net::{ApiKey, ErrorCode, TopicConfig};

const TOPIC: &str = "flood";
/// Connections that each start a large frame and never finish it.
const FLOODERS: usize = 2500;
/// What each of them sends of its frame's body, as far as the node takes it.
const BODY_SENT_BYTES: usize = 256 << 10;
const REQUEST_MEMORY_BYTES_MAX: usize = 64 << 20;
const REQUEST_BYTES_MAX: usize = 8 << 20;
/// What an open connection may cost the node beside the request memory: its head buffer
/// (16 KiB, `frame_reader.rs`), and 16 KiB for its task, its answers' queue, its socket and
/// the allocator's slack around them.
const PER_CONNECTION_BYTES: u64 = 32 << 10;

/// Lets this process, and the node it starts, open a few thousand sockets.
fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur as usize > 2 * FLOODERS + 500,
        "RLIMIT_NOFILE hard limit {} is too low",
        limit.rlim_max
    );
}

/// The resident set of process `pid`, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Samples the node's RSS until `stop`, keeping the highest seen.
fn watch_rss(pid: u32, stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            peak.fetch_max(rss_bytes(pid), Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// The header of a produce frame announcing a body just short of `request_bytes_max`, and
/// `BODY_SENT_BYTES` of that body.
fn frame_start() -> Vec<u8> {
    let mut out = vec![0u8; FRAME_HEADER_BYTES + BODY_SENT_BYTES];
    let body_len = REQUEST_BYTES_MAX - FRAME_HEADER_BYTES - 1024;
    let header = FrameHeader {
        body_len,
        api_key: ApiKey::Produce as u16,
        api_version: 0,
        correlation_id: 1,
        flags: 0,
    };
    header.encode(&mut out);
    out
}

/// Opens `FLOODERS` connections and sends each the start of a large frame, as much of it as
/// the node takes: in passes of non-blocking writes until a pass gets nothing more through.
fn flood(addr: &str) -> Vec<TcpStream> {
    let start = frame_start();
    let mut conns: Vec<(TcpStream, usize)> = (0..FLOODERS)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, 0)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut progress = false;
        for (s, sent) in &mut conns {
            while *sent < start.len() {
                match s.write(&start[*sent..]) {
                    Ok(n) => {
                        *sent += n;
                        progress = true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("flooding connection failed: {e}"),
                }
            }
        }
        if !progress || Instant::now() > deadline {
            break;
        }
    }
    conns.into_iter().map(|(s, _)| s).collect()
}

/// A client as any other: produces `count` small records, each acknowledged, then reads them
/// back. Its frames are small, so each arrives whole.
async fn produce_and_fetch(target: weir_net::client::Target, count: usize) {
    let config = ProducerConfig { batch_bytes: 4096, linger_ms: 1, retries: 0, ..ProducerConfig::default() };
    let producer = Producer::connect(&target, config).await.unwrap();
    let mut acks = Vec::new();
    for i in 0..count {
        let record = ProducerRecord {
            topic: TOPIC.into(),
            partition: Some(0),
            value: Some(format!("v{i}").into_bytes()),
            ..Default::default()
        };
        acks.push(producer.enqueue(record).await.unwrap());
    }
    for ack in acks {
        ack.await.expect("a produce during the flood is acknowledged");
    }
    let mut consumer = Consumer::connect(&target, ConsumerConfig::default()).await.unwrap();
    consumer.assign(TOPIC, 0, Seek::Earliest).await.unwrap();
    let mut got = 0;
    while got < count {
        let records = consumer.poll(5000).await.expect("a fetch during the flood succeeds");
        assert!(!records.is_empty(), "fetch stalled after {got} of {count} records");
        got += records.len();
    }
}

/// Connections the node has accepted since it started.
async fn connections_accepted(admin: &mut Admin) -> u64 {
    admin.node_stats().await.unwrap().iter().map(|s| s.connections).sum()
}

/// Thousands of connections each hold the start of a frame of almost `request_bytes_max`: the
/// node's memory stays within its request memory and a fixed cost per connection, and a normal
/// client keeps producing and fetching meanwhile.
#[test]
fn a_flood_of_unfinished_frames_stays_within_the_request_memory() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let memory_max = REQUEST_MEMORY_BYTES_MAX.to_string();
    let env = [
        ("WEIR_FSYNC", "false"),
        ("WEIR_REQUEST_MEMORY_BYTES_MAX", memory_max.as_str()),
        ("WEIR_CONNECTIONS_MAX", "10000"),
        ("WEIR_CONNECTIONS_PER_IP_MAX", "10000"),
    ];
    let node = Node::start_with(dir.path(), 2, Node::free_port(2), &env);
    let rt = runtime();
    let target = node.target(Via::Tcp);
    rt.block_on(async {
        Admin::connect(&target).await.unwrap().create_topic(TOPIC, 1, TopicConfig::default()).await.unwrap();
        produce_and_fetch(target.clone(), 100).await;
    });
    let before = rss_bytes(node.child.id());
    let mut admin = rt.block_on(Admin::connect(&target)).unwrap();
    let accepted_before = rt.block_on(connections_accepted(&mut admin));
    let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let watcher = watch_rss(node.child.id(), stop.clone(), peak.clone());
    let flooders = flood(&node.addr());
    // The node took every flooding connection.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rt.block_on(connections_accepted(&mut admin)) < accepted_before + FLOODERS as u64 {
        assert!(Instant::now() < deadline, "the node did not accept the flood");
    }
    let client = rt.block_on(async {
        tokio_rt::time::timeout(Duration::from_secs(60), produce_and_fetch(target.clone(), 2000)).await
    });
    client.expect("the normal client finishes within a minute");
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let peak = peak.load(Ordering::SeqCst).max(rss_bytes(node.child.id()));
    let allowance = REQUEST_MEMORY_BYTES_MAX as u64 + FLOODERS as u64 * PER_CONNECTION_BYTES;
    eprintln!(
        "node RSS: {} MiB before the flood, {} MiB at most during it (allowed: {} MiB more)",
        before >> 20,
        peak >> 20,
        allowance >> 20
    );
    assert!(
        peak <= before + allowance,
        "node RSS reached {} MiB: {} MiB more than before the flood, over the {} MiB allowed",
        peak >> 20,
        (peak - before) >> 20,
        allowance >> 20
    );
    drop(flooders);
}

/// Connects from `source` (any address of 127.0.0.0/8) to `addr`.
fn connect_from(source: IpAddr, addr: &str) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&addr.parse::<SocketAddr>().unwrap().into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

fn refused_for(stream: &mut TcpStream, limit: &str) {
    let error = try_request(stream).expect_err("refused");
    assert_eq!(error.error, ErrorCode::Unavailable);
    assert!(error.message.contains(limit), "{:?} names {limit}", error.message);
}

/// Connections past `connections_per_ip_max` from one address, or past `connections_max` in
/// all, are refused with an error that names the limit; a connection that closes makes room.
#[test]
fn connections_over_the_limits_are_refused_with_the_limit_named() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("WEIR_CONNECTIONS_MAX", "5"), ("WEIR_CONNECTIONS_PER_IP_MAX", "3")];
    let node = Node::start_with(dir.path(), 2, Node::free_port(2), &env);
    let (a, b, c): (IpAddr, IpAddr, IpAddr) =
        ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap(), "127.0.0.4".parse().unwrap());
    let mut from_a: Vec<TcpStream> = (0..3).map(|_| connect_from(a, &node.addr())).collect();
    for s in &mut from_a {
        try_request(s).expect("within the limits");
    }
    refused_for(&mut connect_from(a, &node.addr()), "connections_per_ip_max");
    // A shard's own port counts against the same limits.
    let mut from_b: Vec<TcpStream> =
        vec![connect_from(b, &node.addr()), connect_from(b, &node.shard_addr(1))];
    for s in &mut from_b {
        try_request(s).expect("within the limits");
    }
    refused_for(&mut connect_from(c, &node.addr()), "connections_max");
    refused_for(&mut connect_from(c, &node.shard_addr(0)), "connections_max");
    // QUIC connections count too.
    let rt = runtime();
    let quic = rt.block_on(async { Admin::connect(&node.target(Via::Quic)).await?.list_topics().await });
    let error = quic.expect_err("a QUIC connection past connections_max is refused");
    // The reason is the transport's, at the end of the chain of causes.
    let mut reasons = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(e) = cause {
        reasons += &format!(": {e}");
        cause = e.source();
    }
    assert!(reasons.contains("connections_max"), "{reasons:?} names connections_max");
    // Once a connection from `a` has closed, `a` may connect again.
    drop(from_a.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_request(&mut connect_from(a, &node.addr())) {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "still refused: {}", e.message),
        }
    }
}

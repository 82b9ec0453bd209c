//! Time and file-descriptor limits on TCP connections: an idle connection is closed after
//! `connection_idle_timeout_ms`, a frame dribbled slower than `request_read_timeout_ms` closes
//! its connection, a long-polling fetch keeps its connection, and a node out of fds answers new
//! clients with an error instead of leaving them hanging, logging the failures at a bounded rate.

mod common;

use common::{Node, Via, read_answer, request_frame, runtime, try_request};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_net::api::{ErrorBody, Request};
use weir_net::client::producer::{Producer, ProducerConfig, ProducerRecord};
use weir_net::client::{Admin, Consumer, ConsumerConfig, Seek};
use weir_net::frame::FRAME_HEADER_BYTES;
use weir_net::{ApiKey, ErrorCode, TopicConfig};

/// How long a test waits for something the node should do well within it.
const PATIENCE: Duration = Duration::from_secs(10);

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Whether the node has closed `stream`, looking without waiting.
fn closed_now(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("the node sent something unasked"),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Waits (up to [`PATIENCE`]) for the node to close `stream`, sending nothing.
fn assert_closed_by_node(stream: &mut TcpStream, why: &str) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("the node sent something unasked"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{why}: the connection is still open after {PATIENCE:?} ({e})"),
    }
}

/// An idle connection is closed once `connection_idle_timeout_ms` passes without a byte.
#[test]
fn an_idle_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("WEIR_CONNECTION_IDLE_TIMEOUT_MS", "300")];
    let node = Node::start_with(dir.path(), 1, Node::free_port(1), &env);
    let mut stream = connect(&node.addr());
    // Taken before the request: the node's idle time starts at its last byte, which is later.
    let idle_since = Instant::now();
    try_request(&mut stream).expect("served");
    assert_closed_by_node(&mut stream, "idle");
    assert!(idle_since.elapsed() >= Duration::from_millis(300), "closed before the idle timeout");
}

/// Sends `bytes` one at a time, `gap` apart, until the node closes the connection; returns
/// whether it did before the last byte went.
fn dribble(stream: &mut TcpStream, bytes: &[u8], gap: Duration) -> bool {
    for b in bytes {
        if closed_now(stream) || stream.write_all(std::slice::from_ref(b)).is_err() {
            return true;
        }
        std::thread::sleep(gap);
    }
    false
}

/// A frame's header, or its body, sent a byte at a time over longer than
/// `request_read_timeout_ms` closes the connection, though it is never idle that long.
#[test]
fn a_dribbled_frame_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("WEIR_CONNECTION_IDLE_TIMEOUT_MS", "60000"), ("WEIR_REQUEST_READ_TIMEOUT_MS", "400")];
    let node = Node::start_with(dir.path(), 1, Node::free_port(1), &env);
    let fetch =
        Request::Fetch { topic: "absent".into(), partition: 0, offset: 0, max_bytes: 1024, max_wait_ms: 0 };
    let frame = request_frame(&fetch, 9);
    // 100 ms a byte: the header's 15 first bytes take 1.5 s, far past the timeout.
    let mut stream = connect(&node.addr());
    let started = Instant::now();
    let cut = dribble(&mut stream, &frame[..FRAME_HEADER_BYTES - 1], Duration::from_millis(100));
    if !cut {
        assert_closed_by_node(&mut stream, "a header dribbled");
    }
    assert!(started.elapsed() >= Duration::from_millis(400), "closed before the read timeout");
    // The header whole, then the body a byte at a time.
    let mut stream = connect(&node.addr());
    stream.write_all(&frame[..FRAME_HEADER_BYTES]).unwrap();
    let body = &frame[FRAME_HEADER_BYTES..frame.len() - 1];
    assert!(body.len() >= 10, "a body long enough to dribble");
    if !dribble(&mut stream, body, Duration::from_millis(100)) {
        assert_closed_by_node(&mut stream, "a body dribbled");
    }
    // A client that sends its frames whole is served on.
    let mut stream = connect(&node.addr());
    try_request(&mut stream).expect("served");
}

/// A fetch that waits for records longer than the idle timeout keeps its connection open: the
/// connection is idle only with nothing in flight. Once answered, it is closed as idle.
#[test]
fn a_long_poll_is_not_idle() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("WEIR_CONNECTION_IDLE_TIMEOUT_MS", "300")];
    let node = Node::start_with(dir.path(), 1, Node::free_port(1), &env);
    let rt = runtime();
    rt.block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic("poll", 1, TopicConfig::default()).await.unwrap();
    });
    let mut stream = connect(&node.addr());
    let fetch =
        Request::Fetch { topic: "poll".into(), partition: 0, offset: 0, max_bytes: 1024, max_wait_ms: 1500 };
    let sent = Instant::now();
    stream.write_all(&request_frame(&fetch, 3)).unwrap();
    let body = read_answer(&mut stream, 3).expect("the fetch is answered");
    assert!(sent.elapsed() >= Duration::from_millis(1500), "the fetch waited for records");
    let mut frame = vec![0u8; FRAME_HEADER_BYTES];
    frame.extend_from_slice(&body);
    match common::decode_answer(ApiKey::Fetch, &frame) {
        weir_net::api::Response::Fetch { error, batches, .. } => {
            assert_eq!(error, ErrorCode::None);
            assert!(batches.is_empty());
        }
        other => panic!("not a fetch answer: {other:?}"),
    }
    assert_closed_by_node(&mut stream, "idle after the fetch");
}

/// A client does not fail a request on a connection the node closed as idle: it replaces a
/// connection idle longer than its own limit (below the node's) before using it again.
#[test]
fn a_client_replaces_a_connection_the_node_closed_as_idle() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("WEIR_CONNECTION_IDLE_TIMEOUT_MS", "300")];
    let node = Node::start_with(dir.path(), 1, Node::free_port(1), &env);
    runtime().block_on(async {
        let target = node.target(Via::Tcp);
        let mut conn = weir_net::client::connection::Connection::connect(&target)
            .await
            .unwrap()
            .with_idle_reconnect_ms(200);
        conn.call(&Request::ApiVersions).await.unwrap();
        // Idle past the node's limit: the node closes its end.
        tokio_rt::time::sleep(Duration::from_millis(800)).await;
        conn.call(&Request::ApiVersions).await.expect("served on a fresh connection");
    });
}

/// A frame that stops arriving ends the connection, but only after the requests read before it
/// are answered: a producer is never made to resend what was carried out.
#[test]
fn a_stalled_frame_closes_the_connection_after_the_answers_owed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("WEIR_REQUEST_READ_TIMEOUT_MS", "300")];
    let node = Node::start_with(dir.path(), 1, Node::free_port(1), &env);
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic("owed", 1, TopicConfig::default()).await.unwrap();
    });
    let mut stream = connect(&node.addr());
    let fetch =
        Request::Fetch { topic: "owed".into(), partition: 0, offset: 0, max_bytes: 1024, max_wait_ms: 1500 };
    stream.write_all(&request_frame(&fetch, 5)).unwrap();
    // The start of the next frame, then nothing: its read times out while the fetch waits.
    stream.write_all(&request_frame(&fetch, 6)[..5]).unwrap();
    read_answer(&mut stream, 5).expect("the fetch read before the stall is answered");
    assert_closed_by_node(&mut stream, "the stalled frame");
}

/// The soft RLIMIT_NOFILE of the node in the fd test: room for its own files and a few dozen
/// connections.
const NODE_FD_LIMIT: u64 = 128;

/// Lines a node wrote to its stderr, each with when it came.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// Starts a one-shard node whose soft RLIMIT_NOFILE is `NODE_FD_LIMIT`, with its stderr lines
/// collected (with when they came).
fn start_with_few_fds(dir: &std::path::Path) -> (Node, Lines) {
    use std::os::unix::process::CommandExt;
    let mut node = Node::start_custom(dir, 1, Node::free_port(1), &[], |command| {
        // SAFETY: only setrlimit runs in the child between fork and exec; it is
        // async-signal-safe and touches no memory of the parent's.
        unsafe {
            command.pre_exec(|| {
                let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                limit.rlim_cur = NODE_FD_LIMIT.min(limit.rlim_max);
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.stderr(std::process::Stdio::piped());
    });
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = BufReader::new(node.child.stderr.take().unwrap());
    let seen = lines.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            eprintln!("node: {line}");
            seen.lock().unwrap().push((Instant::now(), line));
        }
    });
    (node, lines)
}

fn refused_for_fds(error: ErrorBody) {
    assert_eq!(error.error, ErrorCode::Unavailable);
    assert!(error.message.contains("too many open files"), "{:?}", error.message);
}

/// A node whose RLIMIT_NOFILE (128) is far below what its partitions' files number (four or
/// more each, so 1,200 and up for 300 partitions) creates the topic and serves every
/// partition: its descriptor cache keeps at most half the limit open and reopens the rest on use.
#[test]
fn partitions_past_the_fd_limit_are_created_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _lines) = start_with_few_fds(dir.path());
    const PARTITIONS: u32 = 300;
    runtime().block_on(async {
        let target = node.target(Via::Tcp);
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_topic("wide", PARTITIONS, TopicConfig::default()).await.expect("created");
        let producer = Producer::connect(&target, ProducerConfig::default()).await.unwrap();
        let mut acks = Vec::new();
        for round in 0..2 {
            for p in 0..PARTITIONS {
                let value = Some(format!("{p}/{round}").into_bytes());
                let record =
                    ProducerRecord { topic: "wide".into(), partition: Some(p), value, ..Default::default() };
                acks.push(producer.enqueue(record).await.unwrap());
            }
        }
        for ack in acks {
            ack.await.expect("acknowledged");
        }
        let mut consumer = Consumer::connect(&target, ConsumerConfig::default()).await.unwrap();
        for p in (0..PARTITIONS).rev() {
            consumer.assign("wide", p, Seek::Earliest).await.unwrap();
        }
        let mut values = std::collections::BTreeMap::<u32, Vec<Vec<u8>>>::new();
        let mut got = 0;
        while got < 2 * PARTITIONS {
            for r in consumer.poll(5_000).await.unwrap() {
                values.entry(r.partition).or_default().push(r.value.unwrap());
                got += 1;
            }
        }
        for p in 0..PARTITIONS {
            let expected = [format!("{p}/0").into_bytes(), format!("{p}/1").into_bytes()];
            assert_eq!(values[&p], expected, "wide/{p}");
        }
    });
}

/// At the fd limit, a new client is told so at once (not left unanswered), accept failures are
/// logged a few times a second at most, and once connections close new clients are served.
#[test]
fn out_of_fds_new_clients_are_told_and_the_log_stays_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let (node, lines) = start_with_few_fds(dir.path());
    let mut held = Vec::new();
    let refusal = loop {
        assert!(
            (held.len() as u64) < NODE_FD_LIMIT,
            "{} connections served at a limit of {NODE_FD_LIMIT} fds",
            held.len()
        );
        let mut stream = connect(&node.addr());
        match try_request(&mut stream) {
            Ok(()) => held.push(stream),
            Err(error) => break error,
        }
    };
    refused_for_fds(refusal);
    assert!(held.len() >= 10, "only {} connections served before the fds ran out", held.len());
    // Clients keep coming for a while: each is told, and the log stays within a few lines a
    // second (one a second, and the first at once).
    let window = Duration::from_secs(3);
    let started = Instant::now();
    let mut refused = 0;
    while started.elapsed() < window {
        refused_for_fds(try_request(&mut connect(&node.addr())).expect_err("out of fds"));
        refused += 1;
    }
    let ended = Instant::now();
    assert!(refused >= 20, "only {refused} clients refused in {window:?}");
    let logged = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, line)| *at >= started && *at <= ended && line.contains("accept failed"))
        .count();
    assert!(logged <= 6, "{logged} accept failures logged in {window:?} for {refused} clients");
    // Connections closing free fds: new clients are served again.
    held.truncate(held.len() - 5);
    let deadline = Instant::now() + PATIENCE;
    loop {
        match try_request(&mut connect(&node.addr())) {
            Ok(()) => break,
            Err(error) => {
                refused_for_fds(error);
                assert!(Instant::now() < deadline, "still refused after connections closed");
            }
        }
    }
    drop(held);
}

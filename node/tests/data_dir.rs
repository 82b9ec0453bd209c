//! What a start does to the data dir when it cannot trust it or cannot start: a crafted
//! `topics.json` is refused before anything is written (a topic's name makes its files' paths),
//! and a start that fails on a port in use leaves the data dir as it found it.

mod common;

use common::{Node, serve_command, start_fails};
use std::path::Path;

/// The names of the entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A `topics.json` whose topic name climbs out of the data dir is refused at start, with an
/// error naming the topic and the file, and nothing is created outside the data dir.
#[test]
fn a_crafted_topic_name_is_refused_at_start() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("node").join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let topics = r#"{"topics": {"../../evil": {"name": "../../evil", "partitions": 1,
        "retention_ms": null, "retention_bytes": null}}}"#;
    std::fs::write(data_dir.join("topics.json"), topics).unwrap();
    let before = (entries(root.path()), entries(&root.path().join("node")));
    let errors = start_fails(serve_command(&data_dir, 1, Node::free_port(1), &[]));
    assert!(errors.contains("../../evil"), "the error names the topic: {errors}");
    assert!(errors.contains("topics.json"), "the error names the file: {errors}");
    assert_eq!(
        (entries(root.path()), entries(&root.path().join("node"))),
        before,
        "files outside the data dir"
    );
    // A partition count out of range is refused too.
    let topics = r#"{"topics": {"t": {"name": "t", "partitions": 0, "retention_ms": null,
        "retention_bytes": null}}}"#;
    std::fs::write(data_dir.join("topics.json"), topics).unwrap();
    let errors = start_fails(serve_command(&data_dir, 1, Node::free_port(1), &[]));
    assert!(errors.contains("\"t\"") && errors.contains("partitions"), "{errors}");
}

/// A first start that fails because its TCP port is taken leaves no data dir behind: no
/// `.lock`, no `tls/`.
#[test]
fn a_start_on_a_tcp_port_in_use_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let port = Node::free_port(1);
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let errors = start_fails(serve_command(&data_dir, 1, port, &[]));
    assert!(errors.contains(&port.to_string()), "the error names the port: {errors}");
    assert!(!data_dir.exists(), "left behind: {:?}", entries(&data_dir));
    // A data dir that was there keeps what it had, and only that.
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("keep"), "x").unwrap();
    start_fails(serve_command(&data_dir, 1, port, &[]));
    assert_eq!(entries(&data_dir), ["keep"]);
}

/// A start that fails once its certificate is generated (a shard's UDP port is taken, found
/// when the shard binds it) removes that certificate and the lock file it created.
#[test]
fn a_start_on_a_udp_port_in_use_removes_its_certificate_and_lock() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let port = Node::free_port(1);
    // Shard 0's own port, which the node binds without SO_REUSEPORT.
    let _taken = std::net::UdpSocket::bind(("127.0.0.1", port + 1)).unwrap();
    let errors = start_fails(serve_command(&data_dir, 1, port, &[]));
    assert!(errors.contains(&(port + 1).to_string()), "the error names the port: {errors}");
    if data_dir.exists() {
        let left = entries(&data_dir);
        assert!(!left.iter().any(|e| e == "tls" || e == ".lock"), "left behind: {left:?}");
    }
    // The next start on a free port generates its own certificate and runs.
    drop(_taken);
    let node = Node::start_on(&data_dir, 1, port);
    assert!(data_dir.join("tls").join("cert.pem").exists());
    node.stop();
}

/// An `open_files_max` the process's RLIMIT_NOFILE cannot hold is refused at start, with a
/// message naming the setting and the limit, and leaves nothing behind.
#[test]
fn an_open_files_max_past_the_fd_limit_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let huge = (1u64 << 40).to_string();
    let errors = start_fails(serve_command(
        &data_dir,
        1,
        Node::free_port(1),
        &[("WEIR_OPEN_FILES_MAX", huge.as_str())],
    ));
    assert!(errors.contains("open_files_max") && errors.contains("RLIMIT_NOFILE"), "{errors}");
    assert!(!data_dir.exists(), "left behind: {:?}", entries(&data_dir));
}

//! A real node with its Kafka listener on, and the real Kafka clients `.ci/kafka-clients`
//! installs (kcat, confluent-kafka and kafka-python in a venv, kafkajs).

use super::{Node, free_ports};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A node with its Kafka listener at `bootstrap`.
pub struct KafkaNode {
    pub node: Node,
    pub bootstrap: String,
    pub _dir: tempfile::TempDir,
}

impl KafkaNode {
    /// A node with `shards` shards; `env` adds settings (Kafka's auto-creation is on).
    pub fn start(shards: usize, env: &[(&str, &str)]) -> KafkaNode {
        let dir = tempfile::tempdir().unwrap();
        // The node's ports, then the Kafka listener's just after them.
        let port = free_ports(shards + 2);
        let kafka = port + shards as u16 + 1;
        let listen = format!("127.0.0.1:{kafka}");
        let mut all = vec![("WEIR_KAFKA_LISTEN", listen.as_str()), ("WEIR_KAFKA_AUTO_CREATE_TOPICS", "true")];
        all.extend_from_slice(env);
        let node = Node::start_with(dir.path(), shards, port, &all);
        KafkaNode { node, bootstrap: listen, _dir: dir }
    }

    /// Creates `topic` through the native CLI.
    pub fn create_topic(&self, topic: &str, partitions: u32, extra: &[&str]) {
        let out = self
            .node
            .cli(super::Via::Tcp)
            .args(["topic", "create", topic, "--partitions", &partitions.to_string()])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "topic create: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Where `.ci/kafka-clients` put the clients (`WEIR_KAFKA_CLIENTS` overrides).
pub fn clients_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("WEIR_KAFKA_CLIENTS") {
        return dir.into();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kafka-clients")
}

fn need(path: &Path) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run .ci/kafka-clients to install the Kafka clients",
        path.display()
    );
    path.to_owned()
}

/// The venv's python, with confluent-kafka and kafka-python.
pub fn python() -> Command {
    Command::new(need(&clients_dir().join("venv/bin/python")))
}

/// `node` (Node.js) with kafkajs on its path.
pub fn nodejs() -> Command {
    let modules = need(&clients_dir().join("js/node_modules"));
    let mut c = Command::new("node");
    c.env("NODE_PATH", modules);
    c
}

/// kcat, from Debian's package.
pub fn kcat() -> Command {
    let found = Command::new("kcat").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(found.is_ok_and(|s| s.success()), "kcat is missing: run .ci/kafka-clients");
    Command::new("kcat")
}

/// A script of the Kafka tests (`node/tests/kafka/`).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka").join(name)
}

/// Runs `cmd`, panicking with its output unless it succeeds; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out: Output = cmd.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

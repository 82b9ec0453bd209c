//! Starting real `weir` nodes on free ports for integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `weir serve` child process. Killed (SIGKILL) on drop.
pub struct Node {
    pub child: Child,
    pub port: u16,
    pub shards: usize,
    pub data_dir: PathBuf,
}

/// `count` consecutive free ports below the ephemeral range (where the kernel picks the local
/// ports of outgoing connections), so that a port freed by a stopped node is not taken by some
/// other test's connection before the node restarts on it.
fn free_ports(count: usize) -> u16 {
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

    pub fn start_on(data_dir: &Path, shards: usize, port: u16) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "--shards", &shards.to_string(), "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .env("WEIR_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weir starts");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("weir: listening on"), "unexpected first line {line:?}");
        Node { child, port, shards, data_dir: data_dir.to_owned() }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Address of shard `shard`'s own listener.
    pub fn shard_addr(&self, shard: usize) -> String {
        format!("127.0.0.1:{}", self.port + 1 + shard as u16)
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

    /// The `weir` binary as a client of this node.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
        c.args(["--server", &self.addr(), "--transport", "tcp"]);
        c
    }
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

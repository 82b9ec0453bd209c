//! `--embedded`: a fresh node started inside this process, in a temporary data dir, so that one
//! command measures a new node. It stops (flushing, like SIGTERM would) when dropped.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use weir_node::config::NodeConfig;
use weir_node::server::ServeError;

/// A node running on threads of this process.
#[derive(Debug)]
pub struct EmbeddedNode {
    pub addr: String,
    pub fingerprint: [u8; 32],
    pub data_dir: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
    _dir: tempfile::TempDir,
}

/// `count` consecutive ports that are free now, below the ephemeral range.
fn free_ports(count: u16) -> Option<u16> {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.subsec_nanos();
    let mut x = u64::from(seed) ^ (u64::from(std::process::id()) << 32);
    for _ in 0..1000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let first = 20_000 + ((x >> 33) % 10_000) as u16;
        let held: Vec<_> =
            (0..count).map_while(|i| TcpListener::bind(("127.0.0.1", first + i)).ok()).collect();
        if held.len() == usize::from(count) {
            return Some(first);
        }
    }
    None
}

impl EmbeddedNode {
    /// Starts a node with `shards` shards in a temporary dir under `parent`, and returns once it
    /// listens. Other settings come from `WEIR_*` variables (`WEIR_QUIC_BUSY_POLL_US=0`).
    pub fn start(parent: &Path, shards: usize, fsync: bool) -> Result<Self, String> {
        let dir = tempfile::tempdir_in(parent)
            .map_err(|e| format!("temporary data dir in {}: {e}", parent.display()))?;
        let port = free_ports(shards as u16 + 1).ok_or("no free ports for an embedded node")?;
        // WEIR_* variables set the rest, as for `weir serve`.
        let base = NodeConfig::load(None, std::env::vars()).map_err(|e| e.to_string())?;
        let config = NodeConfig {
            data_dir: dir.path().join("data"),
            listen: format!("127.0.0.1:{port}").parse().expect("an address"),
            shards,
            fsync,
            // The Kafka listener only where asked for (WEIR_KAFKA_LISTEN): a benchmark must not
            // take the port of a node running beside it.
            kafka_listen: std::env::var("WEIR_KAFKA_LISTEN").unwrap_or_else(|_| "off".into()),
            ..base
        };
        config.check().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let data_dir = config.data_dir.clone();
        let thread = std::thread::Builder::new()
            .name("embedded-node".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    weir_node::server::run(config, stop, move |cert| {
                        let _ = tx.send(cert.fingerprint);
                    })
                }
            })
            .map_err(|e| e.to_string())?;
        match rx.recv() {
            Ok(fingerprint) => Ok(Self {
                addr: format!("127.0.0.1:{port}"),
                fingerprint,
                data_dir,
                stop,
                thread: Some(thread),
                _dir: dir,
            }),
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(format!("the embedded node did not start: {e}")),
                _ => Err("the embedded node did not start".into()),
            },
        }
    }
}

impl Drop for EmbeddedNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! The node's process lifecycle: lock the data dir, check the ports, start one pinned glommio
//! executor per shard ([`crate::bootstrap`]), wait until every shard listens, and return once
//! all have stopped.

use crate::bootstrap::{ShardStart, run_shard};
use crate::bus::mesh;
use crate::config::NodeConfig;
use crate::connection::Limits;
use crate::connection_limits::ConnectionLimits;
use crate::metadata::TopicTable;
use crate::request_memory::RequestMemory;
use glommio::{LocalExecutorBuilder, Placement};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    #[error("topics: {0}")]
    Topics(#[from] crate::metadata::LoadError),
    #[error("control plane: {0}")]
    Control(#[from] crate::control::ControlStartError),
    #[error(
        "open_files_max {requested} does not fit the soft RLIMIT_NOFILE of {limit}: the node needs \
         {reserve} more descriptors for itself and its connections; raise the limit or lower \
         open_files_max"
    )]
    OpenFiles { requested: u64, limit: u64, reserve: u64 },
}

/// Descriptors each shard keeps beyond partition files: its rings, eventfds, timers and
/// listening sockets.
const OWN_FILES_PER_SHARD: u64 = 16;
/// The largest default `open_files_max`, where RLIMIT_NOFILE is unlimited or huge.
const OPEN_FILES_DEFAULT_MAX: u64 = 1 << 20;

/// `open_files_max` as configured, or resolved against the soft RLIMIT_NOFILE.
fn open_files_max(config: &NodeConfig) -> Result<u64, ServeError> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    let limit = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => limit.rlim_cur,
        _ => libc::RLIM_INFINITY,
    };
    resolve_open_files_max(config.open_files_max, config.shards as u64, limit)
}

/// The configured value, or by default half of `limit` (the other half goes to connections),
/// less where the shards' own descriptors need more; refused when it leaves the shards too few
/// of their own, or is less than one file a shard.
fn resolve_open_files_max(configured: Option<u64>, shards: u64, limit: u64) -> Result<u64, ServeError> {
    let reserve = OWN_FILES_PER_SHARD * shards;
    let default = || (limit / 2).min(limit.saturating_sub(reserve)).min(OPEN_FILES_DEFAULT_MAX);
    let requested = configured.unwrap_or_else(default);
    if requested.saturating_add(reserve) > limit || requested < shards {
        return Err(ServeError::OpenFiles { requested, limit, reserve });
    }
    Ok(requested)
}

/// The share of the machine's memory the batch caches take by default, all shards together:
/// enough for consumers and followers a fraction of a second behind. A shard allocates and
/// touches its share as it starts, so the default stays modest.
const BATCH_CACHE_MEMORY_DIVISOR: u64 = 256;

/// Each shard's `batch_cache_bytes_max` as configured, or by default its share of a 256th of
/// the machine's physical memory.
fn batch_cache_bytes_max(config: &NodeConfig) -> u64 {
    config.batch_cache_bytes_max.unwrap_or_else(|| {
        // SAFETY: sysconf reads a system constant and touches no memory of ours.
        let (pages, page_bytes) =
            unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
        let memory = (pages.max(0) as u64).saturating_mul(page_bytes.max(0) as u64);
        memory / BATCH_CACHE_MEMORY_DIVISOR / config.shards.max(1) as u64
    })
}

/// The exclusive lock on the data dir, held for the life of the process, so that two nodes never
/// write the same logs. The lock goes with the process, however it ends.
#[derive(Debug)]
struct DataDirLock {
    _file: std::fs::File,
    path: std::path::PathBuf,
    /// Whether this start created the lock file (and may remove it if the start fails).
    created: bool,
}

/// Takes the data dir's lock. The lock file may be removed by a start that failed, so the lock
/// counts only if the file locked is still the one at the path; else the lock is taken again.
fn lock_data_dir(dir: &std::path::Path) -> Result<DataDirLock, ServeError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(".lock");
    let io_err = |source| ServeError::DataDir { path: path.display().to_string(), source };
    loop {
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        let (file, created) = match options.clone().create_new(true).open(&path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match options.open(&path) {
                Ok(f) => (f, false),
                // Removed between the two opens: try again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e)),
            },
            Err(e) => return Err(io_err(e)),
        };
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(ServeError::DataDirInUse { path: dir.display().to_string() });
        }
        let locked = file.metadata().map_err(io_err)?.ino();
        match std::fs::metadata(&path) {
            Ok(m) if m.ino() == locked => return Ok(DataDirLock { _file: file, path, created }),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
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
        let kafka = config.kafka_listen_addr().map_or_else(String::new, |a| format!(", Kafka API on {a}"));
        println!(
            "weir: listening on quic://{0} and tcp://{0} (shards: {1}, shard ports {2}-{3}){kafka}, data in {4}",
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
    run_with_link(config, None, stop, ready)
}

/// [`run`], as a member of a cluster when `link` is given: the shards follow the control
/// plane's metadata through it (`crate::control_link`) instead of `topics.json`, and replicate
/// between nodes. `None` is a node alone, exactly as [`run`].
pub fn run_with_link(
    config: NodeConfig,
    link: Option<Arc<dyn crate::control_link::ControlLink>>,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(&crate::tls::NodeCert),
) -> Result<(), ServeError> {
    crate::fatal::install_hook();
    let dir = config.data_dir.clone();
    let dir_err = |source| ServeError::DataDir { path: dir.display().to_string(), source };
    // Created by this start only if this call made it: two starts racing on a missing dir
    // never take each other's for their own.
    if let Some(parent) = config.data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(dir_err)?;
    }
    let dir_created = match std::fs::create_dir(&config.data_dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(dir_err(e)),
    };
    let lock = match lock_data_dir(&config.data_dir) {
        Ok(lock) => lock,
        Err(e) => {
            if dir_created {
                let _ = std::fs::remove_dir(&config.data_dir);
            }
            return Err(e);
        }
    };
    let probe = !config.data_dir.join(weir_log::storage::dma::PROBE_FILE).exists();
    let mut created = Created { dir: dir_created, tls: None, lock: Some(lock), lock_kept: false, probe };
    let started = match start(&config, link, &stop, &mut created) {
        Ok(started) => started,
        Err(e) => {
            created.undo(&config.data_dir);
            return Err(e);
        }
    };
    ready(&started.cert);
    tracing::info!(listen = %config.listen, shards = config.shards, data_dir = %config.data_dir.display(), "node started");
    // A shard that panicked has already ended the process (`fatal`); one that failed otherwise
    // is an error, never ignored.
    let mut failed = None;
    for (shard, h) in started.handles.into_iter().enumerate() {
        if let Err(e) = h.join() {
            stop.store(true, Ordering::SeqCst);
            failed
                .get_or_insert(ServeError::Shard { shard, reason: format!("shard exited abnormally: {e}") });
        }
    }
    // Last: the shards may call it until they have stopped.
    if let Some(control) = &started.control {
        control.shutdown();
    }
    failed.map_or(Ok(()), Err)
}

/// What a start made in the data dir, removed again if the start fails, so that a failed first
/// start (a port in use, say) leaves the data dir as it found it.
#[derive(Debug)]
struct Created {
    /// The data dir itself did not exist.
    dir: bool,
    /// The self-signed certificate's directory, generated by this start.
    tls: Option<std::path::PathBuf>,
    lock: Option<DataDirLock>,
    /// A shard may still be running: the lock stays held, and its file in place.
    lock_kept: bool,
    /// The direct-I/O probe file was not there before this start (a shard may write it).
    probe: bool,
}

impl Created {
    fn undo(self, data_dir: &std::path::Path) {
        if let Some(tls) = &self.tls {
            // The two files this start wrote, then the directory only if nothing else is there.
            for file in ["cert.pem", "key.pem"] {
                let _ = std::fs::remove_file(tls.join(file));
            }
            let _ = std::fs::remove_dir(tls);
        }
        if self.probe && !self.lock_kept {
            let _ = std::fs::remove_file(data_dir.join(weir_log::storage::dma::PROBE_FILE));
        }
        let Some(lock) = self.lock else { return };
        if self.lock_kept {
            // Held until the process ends, as a running node's is.
            std::mem::forget(lock);
            return;
        }
        // Removed while still held, so no other start can take a lock on it meanwhile (one that
        // opened it before is told to look again, see `lock_data_dir`).
        if lock.created {
            let _ = std::fs::remove_file(&lock.path);
        }
        drop(lock);
        if self.dir {
            // Only if empty: anything else there is not ours to remove.
            let _ = std::fs::remove_dir(data_dir);
        }
    }
}

/// A node whose shards all listen.
struct Started {
    cert: crate::tls::NodeCert,
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
    /// The control plane, if the node is in a cluster.
    control: Option<weir_cluster::ControlHandle>,
}

/// Checks the node's files and ports, and starts every shard; returns once all listen. On a
/// failure, the shards started are stopped.
fn start(
    config: &NodeConfig,
    link: Option<Arc<dyn crate::control_link::ControlLink>>,
    stop: &Arc<AtomicBool>,
    created: &mut Created,
) -> Result<Started, ServeError> {
    let config = &NodeConfig {
        open_files_max: Some(open_files_max(config)?),
        batch_cache_bytes_max: Some(batch_cache_bytes_max(config)),
        ..config.clone()
    };
    // In a cluster the topics are the control plane's; `topics.json` is a node alone's.
    let table = match link.is_some() || config.peers.is_some() {
        true => TopicTable::default(),
        false => TopicTable::load(&config.data_dir, config.shards)?,
    };
    for shard in 0..config.shards {
        check_port_free(std::net::SocketAddr::new(config.listen.ip(), config.shard_port(shard)))?;
    }
    check_port_free(config.listen)?;
    if let Some(kafka) = config.kafka_listen_addr() {
        check_port_free(kafka).map_err(|e| match e {
            // Kafka's own port: likely a Kafka or another node already there.
            ServeError::Listen { addr, source } => ServeError::Listen {
                addr: format!("{addr} (the Kafka listener: set --kafka-listen to another address, or off)"),
                source,
            },
            e => e,
        })?;
    }
    let cert = crate::tls::NodeCert::load_or_generate(config)?;
    if cert.generated {
        created.tls = cert.cert_path.parent().map(ToOwned::to_owned);
    }
    // Before the shards, which follow the metadata it replicates.
    let control = crate::control::start(config)?;
    let stop_control = |e| {
        if let Some(c) = &control {
            c.shutdown();
        }
        e
    };
    let link = match (link, &control) {
        (Some(link), _) => Some(link),
        (None, Some(c)) => {
            let ca = config.cluster_ca_cert.as_deref().expect("checked with peers");
            let identity = crate::cluster_tls::stored_identity(c.node_id(), ca, &config.data_dir)
                .map_err(|e| stop_control(e.into()))?;
            match crate::control::ClusterLink::new(c.clone(), identity) {
                Ok(link) => Some(link as Arc<dyn crate::control_link::ControlLink>),
                Err(e) => return Err(stop_control(ServeError::Shard { shard: 0, reason: e.to_string() })),
            }
        }
        (None, None) => None,
    };
    let cluster_tls = link.as_ref().and_then(|l| l.identity());
    let quic_config = cert.server_config(config, cluster_tls.as_ref()).map_err(|e| stop_control(e.into()))?;
    let mesh = mesh(config.shards);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<usize, ServeError>>();
    let (exited_tx, exited_rx) = std::sync::mpsc::channel::<usize>();
    let mut handles = Vec::new();
    let counters = Arc::new(crate::stats::NodeCounters::new(config.shards));
    let producer_ids = Arc::new(crate::producer_ids::ProducerIds::new(config.data_dir.clone(), link.clone()));
    let acls = crate::acls::Acls::open(&config.data_dir, link.clone()).map_err(|source| {
        stop_control(ServeError::DataDir {
            path: config.data_dir.join(crate::acls::ACLS_FILE).display().to_string(),
            source,
        })
    })?;
    let acls = Arc::new(acls);
    let loaded = Arc::new(std::sync::Barrier::new(config.shards));
    let limits = Limits {
        memory: Arc::new(RequestMemory::new(config.request_memory_bytes_max, config.request_bytes_max)),
        connections: ConnectionLimits::new(config.connections_max, config.connections_per_ip_max),
    };
    for id in 0..config.shards {
        let start = ShardStart {
            id,
            config: config.clone(),
            mesh: mesh.clone(),
            table: table.clone(),
            stop: stop.clone(),
            ready: ready_tx.clone(),
            counters: counters.clone(),
            loaded: loaded.clone(),
            quic_config: quic_config.clone(),
            limits: limits.clone(),
            link: link.clone(),
            producer_ids: producer_ids.clone(),
            acls: acls.clone(),
        };
        let exited = exited_tx.clone();
        let spawned = LocalExecutorBuilder::new(Placement::Fixed(id % cpus))
            .name(&format!("{}{id}", crate::fatal::SHARD_THREAD_PREFIX))
            .io_memory(IO_MEMORY_BYTES)
            .spawn(move || async move {
                run_shard(start).await;
                let _ = exited.send(id);
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                let error = ServeError::Shard { shard: id, reason: e.to_string() };
                return Err(stop_control(stopped(config, stop, created, handles.len(), &exited_rx, error)));
            }
        }
    }
    drop(ready_tx);
    for _ in 0..config.shards {
        let error = match ready_rx.recv() {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => e,
            Err(_) => ServeError::Shard { shard: 0, reason: "a shard exited while starting".into() },
        };
        return Err(stop_control(stopped(config, stop, created, handles.len(), &exited_rx, error)));
    }
    Ok(Started { cert, handles, control })
}

/// Stops the `running` shards of a start that failed with `error`, and waits (for a while) for
/// them to end. Those that do not end in time keep the data dir's lock: it stays in place.
fn stopped(
    config: &NodeConfig,
    stop: &AtomicBool,
    created: &mut Created,
    running: usize,
    exited: &std::sync::mpsc::Receiver<usize>,
    error: ServeError,
) -> ServeError {
    stop.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_millis(config.shutdown_timeout_ms + 1000);
    for _ in 0..running {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if exited.recv_timeout(left).is_err() {
            // A shard still running may still write: the lock is not ours to give up.
            created.lock_kept = true;
            break;
        }
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default fits any limit that leaves each shard its own descriptors and a file; an
    /// explicit value past the limit is refused.
    #[test]
    fn open_files_max_fits_the_fd_limit() {
        let ok = |c, shards, limit| resolve_open_files_max(c, shards, limit).ok();
        assert_eq!(ok(None, 1, 128), Some(64));
        assert_eq!(ok(None, 2, 20_000), Some(10_000));
        assert_eq!(ok(None, 48, 1024), Some(256), "many shards under the common default limit");
        assert_eq!(ok(None, 2, u64::MAX), Some(OPEN_FILES_DEFAULT_MAX));
        assert_eq!(ok(None, 64, 1024), None, "no file left for the shards");
        assert_eq!(ok(Some(1 << 40), 2, 20_000), None);
        assert_eq!(ok(Some(19_968), 2, 20_000), Some(19_968));
        assert_eq!(ok(Some(19_969), 2, 20_000), None);
    }
}

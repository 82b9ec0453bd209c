//! Node settings: built-in defaults, then a TOML file, then `WEIR_*` environment variables, then
//! command-line flags, each overriding the one before.
//!
//! A key the node does not know is refused in the TOML file (the file is the operator's, and a
//! misspelt key there is a mistake to fix now). A `WEIR_*` variable the node does not know is
//! not refused, since the environment is shared with other programs, but it is named in a
//! warning at start ([`ConfigWarning`]), so that a misspelt one is never ignored silently.
//! `WEIR_LOG` and the client's `WEIR_TLS_*` variables are known and ignored by the node.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything a node is configured with. Field names are the TOML keys; the environment
/// variable of a field is `WEIR_` and the name in upper case (`WEIR_DATA_DIR`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// Address shared by all shards, for QUIC (UDP) and the native protocol over TCP on the same
    /// port number; connections spread over the shards.
    pub listen: SocketAddr,
    /// Address of the Kafka-compatible listener (TCP), served by every shard; `off` turns it
    /// off.
    pub kafka_listen: String,
    /// `host:port` Kafka clients are told to connect to (Metadata, FindCoordinator). Default:
    /// `advertised_host` if set, else the Kafka listener's address.
    pub kafka_advertised_address: Option<String>,
    /// Whether a Kafka Metadata request naming an unknown topic creates it (when the client
    /// allows it), with the node's defaults (Kafka's `auto.create.topics.enable`; off by
    /// default).
    pub kafka_auto_create_topics: bool,
    /// Partitions of a topic created automatically.
    pub kafka_auto_create_partitions: u32,
    /// Whether Kafka batches are stored as their producers sent them, compression kept (see
    /// docs/format.md, "Kafka-format payload"), rather than converted to Weir's columns. Nodes
    /// of a version before that format refuse such batches from their leader: set it false on
    /// every node while a cluster is upgraded from one, true once all run this version.
    pub kafka_batches_as_sent: bool,
    /// Number of shards (glommio executors, one pinned per core).
    pub shards: usize,
    /// Shard `i` also listens on `shard_port_base + i` (default: listen port + 1).
    pub shard_port_base: Option<u16>,
    /// Host that Metadata advertises for the per-shard ports (default: the listen IP).
    pub advertised_host: Option<String>,
    /// Acknowledge produce only after fdatasync (group commit). Off: sync every
    /// `flush_interval_ms`.
    pub fsync: bool,
    /// Produce is refused while the data dir's device has less free space than this (as
    /// Redpanda's `storage_min_free_bytes`), so deletes, retention, topic changes and a restart
    /// always have room. 0 turns the check off.
    pub storage_min_free_bytes: u64,
    /// Most segment, index and epoch files the node holds open at once, across its shards
    /// (each shard gets an equal share). Files past it are closed, least recently used first,
    /// and reopened when next used, so partitions are not bounded by RLIMIT_NOFILE. Default:
    /// half the soft RLIMIT_NOFILE at start, leaving the rest to connections. Must fit within
    /// that limit, with room for at least one connection per shard.
    pub open_files_max: Option<u64>,
    /// Bytes of recently appended batches each shard keeps in memory, so that consumers and
    /// followers keeping up are served without reading the device (the least recently used go
    /// first). Default: a 256th of the machine's memory, shared among the shards; the shard
    /// allocates it, and writes it once, as it starts. 0: off; otherwise at least 16400 (one
    /// chunk).
    pub batch_cache_bytes_max: Option<u64>,
    /// Bytes read at once ahead of a consumer catching up on what is no longer cached, while
    /// it reads the fetch before (one read per partition at a time, each at most 1 MiB). 0: off.
    pub read_ahead_bytes_max: u64,
    pub flush_interval_ms: u64,
    pub segment_bytes: u64,
    pub segment_ms: u64,
    /// Default retention of new topics; a topic may set its own.
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    /// Default `delete_retention_ms` of new compacted topics: how long a tombstone stays after
    /// its segment's last append.
    pub delete_retention_ms: u64,
    /// Bytes a shard's log cleaner reads and writes per second at most, over all its compacted
    /// partitions, so that compaction never takes the disk from appends and fetches.
    pub compaction_bytes_per_s_max: u64,
    /// Partitions of `__consumer_offsets`, made when a group is first used: groups spread over
    /// them, and each partition's leader coordinates its groups.
    pub offsets_topic_partitions: u32,
    pub batch_bytes_max: usize,
    pub request_bytes_max: usize,
    /// Most requests one connection (or QUIC stream) may have queued before the node stops
    /// reading from it.
    pub requests_in_flight_max: usize,
    /// Most bytes the requests of one connection (or QUIC stream) may hold at once: their frames
    /// and room for their answers (a fetch's `max_bytes`). Past it, the node stops reading from
    /// the connection until answers go out, so a consumer that does not read pins this much.
    pub connection_buffer_bytes_max: usize,
    /// Most bytes the whole node holds for request frames being read and for requests not yet
    /// answered, across every shard and connection (as Kafka's `queued.max.request.bytes`).
    /// When it is used up, connections are not read until requests finish. At least
    /// `request_bytes_max`. See `request_memory.rs`.
    pub request_memory_bytes_max: usize,
    /// Most connections the node keeps open at once, TCP and QUIC together; one more is refused
    /// with an error naming this limit.
    pub connections_max: usize,
    /// Most connections one client IP address may have open at once (TCP and QUIC together).
    pub connections_per_ip_max: usize,
    /// A connection (or QUIC stream) with no request in flight and nothing read for this long is
    /// closed (as Kafka's `connections.max.idle.ms`).
    pub connection_idle_timeout_ms: u64,
    /// A request frame once started (header or body) must arrive within this long of reading, or
    /// its connection is closed: a client that dribbles a frame holds nothing for long.
    pub request_read_timeout_ms: u64,
    /// At shutdown, how long requests in flight may take to finish before the node flushes and
    /// exits anyway.
    pub shutdown_timeout_ms: u64,
    /// PEM certificate chain QUIC presents; with `tls_key`. Without both, the node uses the
    /// self-signed certificate in `<data_dir>/tls/`, generating it on first start.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Streams a QUIC connection may have open at once (each one a pipeline of requests).
    pub quic_streams_max: u32,
    /// Bytes a QUIC client may send on one stream, and on all streams of a connection, before
    /// the node reads them; also what the node keeps unacknowledged per connection. With
    /// `quic_streams_max`, they bound what one QUIC client can make the node buffer.
    pub quic_stream_window_bytes_max: u32,
    pub quic_connection_window_bytes_max: u32,
    /// After a datagram, how long a shard keeps polling its QUIC sockets between other tasks
    /// before it sleeps (native driver). A request answered within the window costs no wake-up
    /// on either side; an idle shard spends at most this much CPU after its last datagram. 0
    /// sleeps at once.
    pub quic_busy_poll_us: u64,
    /// This node's id in the cluster; required with `peers`. A node without peers is node 0.
    pub node_id: Option<u32>,
    /// Every member of the cluster, this node included, as `id@host:port` separated by commas:
    /// each node's cluster address (its control plane's UDP port). The first three (five when
    /// there are five or more) are Raft voters, the rest learners. None: a one-node cluster.
    pub peers: Option<String>,
    /// The address the control plane binds (UDP). Default: this node's own entry in `peers`,
    /// which is where the others reach it; set this when that address is not one of this
    /// host's own (a NAT, a proxy, or a relay in front of it).
    pub cluster_listen: Option<SocketAddr>,
    /// The cluster CA's certificate and key (PEM), from `weir cluster ca`: the node issues
    /// itself a certificate with them, and trusts peers whose certificates chain to it.
    pub cluster_ca_cert: Option<PathBuf>,
    pub cluster_ca_key: Option<PathBuf>,
    /// How often the node tells the controller it is alive.
    pub heartbeat_interval_ms: u64,
    /// A node not heard from for this long is fenced: it leaves every ISR and loses the
    /// partitions it leads. The control plane's Raft elections follow from it: a controller
    /// not heard from for half to two thirds of it is replaced.
    pub session_timeout_ms: u64,
    /// Bytes a shard fetches from leaders per second at most, over all the partitions it
    /// follows (catch-up after a restart or a new replica). A token bucket on fetched bytes.
    pub replication_catchup_bytes_per_s_max: u64,
}

/// One member of the cluster as `peers` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: u32,
    /// The control plane's address, `host:port`.
    pub cluster_addr: String,
}

/// Parses `peers`: `id@host:port` entries separated by commas, ids distinct.
pub fn parse_peers(text: &str) -> Result<Vec<Peer>, String> {
    let mut peers: Vec<Peer> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry.split_once('@').ok_or_else(|| format!("{entry:?} is not id@host:port"))?;
        let id: u32 = id.parse().map_err(|_| format!("{entry:?}: node id {id:?} is not a number"))?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{entry:?}: no port"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("{entry:?}: {addr:?} is not host:port"));
        }
        if peers.iter().any(|p| p.id == id) {
            return Err(format!("node id {id} is listed twice"));
        }
        peers.push(Peer { id, cluster_addr: addr.to_owned() });
    }
    if peers.is_empty() {
        return Err("no peer listed".into());
    }
    Ok(peers)
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./weir-data"),
            listen: "127.0.0.1:7400".parse().expect("valid address"),
            kafka_listen: "127.0.0.1:9092".into(),
            kafka_advertised_address: None,
            kafka_auto_create_topics: false,
            kafka_auto_create_partitions: 1,
            kafka_batches_as_sent: true,
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shard_port_base: None,
            advertised_host: None,
            fsync: true,
            storage_min_free_bytes: 1 << 30,
            open_files_max: None,
            batch_cache_bytes_max: None,
            read_ahead_bytes_max: 1 << 20,
            flush_interval_ms: 100,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            delete_retention_ms: 24 * 3600 * 1000,
            compaction_bytes_per_s_max: 64 << 20,
            offsets_topic_partitions: 16,
            batch_bytes_max: 4 << 20,
            request_bytes_max: 8 << 20,
            requests_in_flight_max: 64,
            connection_buffer_bytes_max: 8 << 20,
            request_memory_bytes_max: 256 << 20,
            connections_max: 10_000,
            connections_per_ip_max: 1_000,
            connection_idle_timeout_ms: 600_000,
            request_read_timeout_ms: 30_000,
            shutdown_timeout_ms: 5000,
            tls_cert: None,
            tls_key: None,
            quic_streams_max: 16,
            quic_stream_window_bytes_max: weir_net::tls::STREAM_WINDOW_BYTES,
            quic_connection_window_bytes_max: weir_net::tls::CONNECTION_WINDOW_BYTES,
            quic_busy_poll_us: 200,
            node_id: None,
            peers: None,
            cluster_listen: None,
            cluster_ca_cert: None,
            cluster_ca_key: None,
            heartbeat_interval_ms: 200,
            session_timeout_ms: 1500,
            replication_catchup_bytes_per_s_max: 256 << 20,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid setting {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Something in the configuration the node took no notice of, said at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigWarning {
    #[error("unknown environment variable {name} ignored (not a node setting)")]
    UnknownVariable { name: String },
}

/// `WEIR_*` variables that are not node settings but are known: the log filter and the CLI's.
const OTHER_VARIABLES: &[&str] = &["WEIR_LOG", "WEIR_TLS_CA", "WEIR_TLS_FINGERPRINT"];

impl NodeConfig {
    /// As [`load_noting`](Self::load_noting), with each warning logged.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (config, warnings) = Self::load_noting(file, env)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(config)
    }

    /// Defaults, overridden by `file` (if given), then by `WEIR_*` variables from `env`, with a
    /// warning for each `WEIR_*` variable that is no setting. Not yet checked: flags may still
    /// override it; call [`check`](Self::check) last.
    pub fn load_noting(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        let mut warnings = Vec::new();
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                text.parse::<toml::Table>()
                    .map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("WEIR_") else { continue };
            let key = key.to_ascii_lowercase();
            if !KNOWN_KEYS.contains(&key.as_str()) {
                if !OTHER_VARIABLES.contains(&name.as_str()) {
                    warnings.push(ConfigWarning::UnknownVariable { name });
                }
                continue;
            }
            // Parse the value as a TOML value (number, bool), falling back to a string; paths and
            // addresses are always strings (a data dir may well be called `2024`).
            let parsed = if STRING_KEYS.contains(&key.as_str()) {
                toml::Value::String(value.clone())
            } else {
                format!("v = {value}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or(toml::Value::String(value.clone()))
            };
            table.insert(key, parsed);
        }
        let config: NodeConfig = toml::Value::Table(table).try_into().map_err(|source| {
            ConfigError::Parse { path: file.map_or("<environment>".into(), Path::to_owned), source }
        })?;
        Ok((config, warnings))
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| Err(ConfigError::Invalid { field, reason: reason.to_owned() });
        if self.shards == 0 || self.shards > 256 {
            return bad("shards", "must be within 1..=256");
        }
        // Checked before batch_bytes_max, which must fit a segment: a segment too small to hold
        // the smallest batch limit is the segment's fault.
        if self.segment_bytes < 4096 {
            return bad("segment_bytes", "must be at least 4096");
        }
        if self.kafka_listen != "off" && self.kafka_listen.parse::<SocketAddr>().is_err() {
            return bad("kafka_listen", "must be host:port (an IP address) or off");
        }
        let advertised = self.kafka_advertised_address.as_deref();
        if advertised.is_some_and(|a| {
            a.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        }) {
            return bad("kafka_advertised_address", "must be host:port");
        }
        if self.kafka_auto_create_partitions == 0 {
            return bad("kafka_auto_create_partitions", "must be at least 1");
        }
        if self.batch_bytes_max < 4096 || self.batch_bytes_max as u64 > self.segment_bytes {
            return bad("batch_bytes_max", "must be within [4096, segment_bytes]");
        }
        if self.request_bytes_max < self.batch_bytes_max {
            return bad("request_bytes_max", "must be at least batch_bytes_max");
        }
        // Every request must fit the node's request memory, or the largest could never be read.
        if self.request_memory_bytes_max < self.request_bytes_max {
            return bad("request_memory_bytes_max", "must be at least request_bytes_max");
        }
        if self.offsets_topic_partitions == 0 || self.offsets_topic_partitions > 1000 {
            return bad("offsets_topic_partitions", "must be within 1..=1000");
        }
        if self.compaction_bytes_per_s_max == 0 {
            return bad("compaction_bytes_per_s_max", "must be positive");
        }
        if self.connections_max == 0 || self.connections_per_ip_max == 0 {
            return bad("connections_max", "connections_max and connections_per_ip_max must be positive");
        }
        if self
            .batch_cache_bytes_max
            .is_some_and(|n| n > 0 && n < weir_log::batch_cache::CACHE_BYTES_MIN as u64)
        {
            return bad("batch_cache_bytes_max", "must be 0 (off) or at least 16400 (one chunk)");
        }
        if self.read_ahead_bytes_max > 1 << 20 {
            return bad("read_ahead_bytes_max", "must be at most 1048576 (one read)");
        }
        if self.open_files_max.is_some_and(|n| n < self.shards as u64) {
            return bad("open_files_max", "must be at least one file per shard");
        }
        if self.connection_idle_timeout_ms == 0 {
            return bad("connection_idle_timeout_ms", "must be positive");
        }
        if self.request_read_timeout_ms == 0 {
            return bad("request_read_timeout_ms", "must be positive");
        }
        if self.requests_in_flight_max == 0 {
            return bad("requests_in_flight_max", "must be positive");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert", "tls_cert and tls_key go together");
        }
        if self.quic_streams_max == 0 || self.quic_streams_max > 1024 {
            return bad("quic_streams_max", "must be within 1..=1024");
        }
        // A stream must fit a whole request, or a producer's batch could never be sent.
        if (self.quic_stream_window_bytes_max as usize) < self.request_bytes_max {
            return bad("quic_stream_window_bytes_max", "must be at least request_bytes_max");
        }
        if self.quic_connection_window_bytes_max < self.quic_stream_window_bytes_max {
            return bad("quic_connection_window_bytes_max", "must be at least quic_stream_window_bytes_max");
        }
        if self.quic_busy_poll_us > 1_000_000 {
            return bad("quic_busy_poll_us", "must be at most 1000000 (one second)");
        }
        let base = self.shard_port_base.unwrap_or(self.listen.port().saturating_add(1));
        if usize::from(base) + self.shards > usize::from(u16::MAX) {
            return bad("shard_port_base", "shard ports would pass 65535");
        }
        if self.kafka_listen_addr().is_some_and(|kafka| self.kafka_shares_native_port(kafka)) {
            return bad("kafka_listen", "must not take the native listener's port or a shard's port");
        }
        self.check_cluster()
    }

    /// Whether `kafka` is a port the native listeners bind on an address they share: every
    /// listener binds with SO_REUSEPORT, so the kernel would split connections between the two
    /// protocols rather than refuse the second bind.
    fn kafka_shares_native_port(&self, kafka: SocketAddr) -> bool {
        let (ip, native) = (kafka.ip(), self.listen.ip());
        let overlaps = ip == native || ip.is_unspecified() || native.is_unspecified();
        let native_ports =
            std::iter::once(self.listen.port()).chain((0..self.shards).map(|s| self.shard_port(s)));
        overlaps && native_ports.into_iter().any(|p| p == kafka.port())
    }

    fn check_cluster(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        let Some(text) = &self.peers else {
            return match (self.node_id, self.cluster_listen) {
                (Some(_), _) => bad("node_id", "a node id needs peers (--peers id@host:port,...)".into()),
                (_, Some(_)) => bad("cluster_listen", "only a node with peers has a control plane".into()),
                (None, None) => Ok(()),
            };
        };
        let peers = match parse_peers(text) {
            Ok(p) => p,
            Err(reason) => return bad("peers", reason),
        };
        let Some(id) = self.node_id else {
            return bad("node_id", "a node with peers needs its id (--node-id)".into());
        };
        if !peers.iter().any(|p| p.id == id) {
            return bad("peers", format!("this node's id {id} is not among the peers"));
        }
        if self.cluster_ca_cert.is_none() || self.cluster_ca_key.is_none() {
            let how = "nodes of a cluster need the cluster CA (cluster_ca_cert and cluster_ca_key): \
                       make one with `weir cluster ca --dir DIR` and give every node both files";
            return bad("cluster_ca_cert", how.into());
        }
        // A heartbeat round (two attempts of one interval each, a pause between) must fit a
        // session, or a node would be fenced while its heartbeats are on their way.
        if self.heartbeat_interval_ms == 0 || self.session_timeout_ms < 3 * self.heartbeat_interval_ms {
            let reason = "heartbeat_interval_ms must be positive and at most a third of session_timeout_ms";
            return bad("session_timeout_ms", reason.into());
        }
        Ok(())
    }

    /// The cluster's members, if this node is in a cluster (checked by [`check`](Self::check)).
    pub fn cluster_peers(&self) -> Option<Vec<Peer>> {
        self.peers.as_deref().map(|p| parse_peers(p).expect("peers are checked at load"))
    }

    /// Port of shard `shard`'s own listener.
    pub fn shard_port(&self, shard: usize) -> u16 {
        let base = self.shard_port_base.unwrap_or(self.listen.port().wrapping_add(1));
        base + shard as u16
    }

    pub fn advertised_host(&self) -> String {
        self.advertised_host.clone().unwrap_or_else(|| self.listen.ip().to_string())
    }

    /// The Kafka listener's address; `None` when it is off (or, before `check`, unparsable).
    pub fn kafka_listen_addr(&self) -> Option<SocketAddr> {
        match self.kafka_listen.as_str() {
            "off" => None,
            addr => addr.parse().ok(),
        }
    }

    /// Where Kafka clients are told to connect: `kafka_advertised_address`, else the advertised
    /// host if one is set, else the Kafka listener's own address (the listen IP where it
    /// listens on every interface), with the listener's port.
    pub fn kafka_advertised(&self) -> Option<(String, u16)> {
        let listen = self.kafka_listen_addr()?;
        let port = listen.port();
        let Some(addr) = &self.kafka_advertised_address else {
            let host = match &self.advertised_host {
                Some(host) => host.clone(),
                None if !listen.ip().is_unspecified() => listen.ip().to_string(),
                None => self.advertised_host(),
            };
            return Some((host, port));
        };
        let (host, port) = addr.rsplit_once(':')?;
        Some((host.to_owned(), port.parse().ok()?))
    }
}

const STRING_KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "kafka_listen",
    "kafka_advertised_address",
    "advertised_host",
    "tls_cert",
    "tls_key",
    "peers",
    "cluster_listen",
    "cluster_ca_cert",
    "cluster_ca_key",
];

const KNOWN_KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "kafka_listen",
    "kafka_advertised_address",
    "kafka_auto_create_topics",
    "kafka_auto_create_partitions",
    "kafka_batches_as_sent",
    "shards",
    "shard_port_base",
    "advertised_host",
    "fsync",
    "storage_min_free_bytes",
    "open_files_max",
    "batch_cache_bytes_max",
    "read_ahead_bytes_max",
    "flush_interval_ms",
    "segment_bytes",
    "segment_ms",
    "retention_ms",
    "retention_bytes",
    "delete_retention_ms",
    "compaction_bytes_per_s_max",
    "offsets_topic_partitions",
    "batch_bytes_max",
    "request_bytes_max",
    "requests_in_flight_max",
    "connection_buffer_bytes_max",
    "request_memory_bytes_max",
    "connections_max",
    "connections_per_ip_max",
    "connection_idle_timeout_ms",
    "request_read_timeout_ms",
    "shutdown_timeout_ms",
    "tls_cert",
    "tls_key",
    "quic_streams_max",
    "quic_stream_window_bytes_max",
    "quic_connection_window_bytes_max",
    "quic_busy_poll_us",
    "node_id",
    "peers",
    "cluster_listen",
    "cluster_ca_cert",
    "cluster_ca_key",
    "heartbeat_interval_ms",
    "session_timeout_ms",
    "replication_catchup_bytes_per_s_max",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_a_cluster_needs_its_id_among_them_and_the_ca() {
        let peers = parse_peers("1@127.0.0.1:7500, 2@127.0.0.2:7500,3@node3:7500").unwrap();
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[2], Peer { id: 3, cluster_addr: "node3:7500".into() });
        for bad in ["", "1@a:1,1@b:2", "x@a:1", "1@a", "1@:5", "1@a:99999"] {
            assert!(parse_peers(bad).is_err(), "{bad:?} accepted");
        }
        let env = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()
        };
        let load = |pairs: &[(&str, &str)]| NodeConfig::load(None, env(pairs)).unwrap().check();
        assert!(load(&[]).is_ok(), "no peers: a one-node cluster");
        assert!(load(&[("WEIR_CLUSTER_LISTEN", "127.0.0.1:7500")]).is_err(), "cluster_listen without peers");
        let peers = ("WEIR_PEERS", "1@127.0.0.1:7500,2@127.0.0.2:7500");
        let ca = [("WEIR_CLUSTER_CA_CERT", "ca.pem"), ("WEIR_CLUSTER_CA_KEY", "ca.key")];
        assert!(load(&[peers, ca[0], ca[1]]).is_err(), "no node id");
        assert!(load(&[peers, ("WEIR_NODE_ID", "3"), ca[0], ca[1]]).is_err(), "id not among the peers");
        assert!(load(&[peers, ("WEIR_NODE_ID", "2")]).is_err(), "no CA");
        assert!(load(&[("WEIR_NODE_ID", "2")]).is_err(), "an id without peers");
        let c = NodeConfig::load(None, env(&[peers, ("WEIR_NODE_ID", "2"), ca[0], ca[1]])).unwrap();
        c.check().unwrap();
        assert_eq!(c.cluster_peers().unwrap()[1].cluster_addr, "127.0.0.2:7500");
        let listen = ("WEIR_CLUSTER_LISTEN", "127.0.0.22:7500");
        let c = NodeConfig::load(None, env(&[peers, ("WEIR_NODE_ID", "2"), ca[0], ca[1], listen])).unwrap();
        c.check().unwrap();
        assert_eq!(c.cluster_listen, Some("127.0.0.22:7500".parse().unwrap()));
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(&file, "shards = 3\nlisten = \"127.0.0.1:9000\"\nfsync = false\n").unwrap();
        let env = [("WEIR_SHARDS".to_owned(), "2".to_owned()), ("HOME".to_owned(), "/x".to_owned())];
        let c = NodeConfig::load(Some(&file), env).unwrap();
        assert_eq!(c.shards, 2);
        assert_eq!(c.listen.port(), 9000);
        assert!(!c.fsync);
        assert_eq!(c.shard_port(1), 9002);
        assert_eq!(c.data_dir, PathBuf::from("./weir-data"));
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(&file, "shardz = 3\n").unwrap();
        assert!(matches!(NodeConfig::load(Some(&file), []), Err(ConfigError::Parse { .. })));
        let env = [("WEIR_SHARDS".to_owned(), "0".to_owned())];
        assert!(matches!(
            NodeConfig::load(None, env).unwrap().check(),
            Err(ConfigError::Invalid { field: "shards", .. })
        ));
        let env = [("WEIR_DATA_DIR".to_owned(), "2024".to_owned())];
        assert_eq!(NodeConfig::load(None, env).unwrap().data_dir, PathBuf::from("2024"));
        let env = [("WEIR_LISTEN".to_owned(), "nonsense".to_owned())];
        assert!(matches!(NodeConfig::load(None, env), Err(ConfigError::Parse { .. })));
        let env = [("WEIR_QUIC_STREAM_WINDOW_BYTES_MAX".to_owned(), "65536".to_owned())];
        assert!(matches!(
            NodeConfig::load(None, env).unwrap().check(),
            Err(ConfigError::Invalid { field: "quic_stream_window_bytes_max", .. })
        ));
        let env = [("WEIR_BATCH_CACHE_BYTES_MAX".to_owned(), "4096".to_owned())];
        assert!(matches!(
            NodeConfig::load(None, env).unwrap().check(),
            Err(ConfigError::Invalid { field: "batch_cache_bytes_max", .. })
        ));
        for fine in ["0", "16400"] {
            let env = [("WEIR_BATCH_CACHE_BYTES_MAX".to_owned(), fine.to_owned())];
            NodeConfig::load(None, env).unwrap().check().unwrap();
        }
        let env = [("WEIR_REQUEST_MEMORY_BYTES_MAX".to_owned(), "1048576".to_owned())];
        assert!(matches!(
            NodeConfig::load(None, env).unwrap().check(),
            Err(ConfigError::Invalid { field: "request_memory_bytes_max", .. })
        ));
        let env = [("WEIR_CONNECTIONS_PER_IP_MAX".to_owned(), "0".to_owned())];
        assert!(matches!(
            NodeConfig::load(None, env).unwrap().check(),
            Err(ConfigError::Invalid { field: "connections_max", .. })
        ));
        let env = [("WEIR_SEGMENT_BYTES".to_owned(), "0".to_owned())];
        assert!(matches!(
            NodeConfig::load(None, env).unwrap().check(),
            Err(ConfigError::Invalid { field: "segment_bytes", .. })
        ));
        let env = [("WEIR_CONNECTION_IDLE_TIMEOUT_MS".to_owned(), "0".to_owned())];
        assert!(matches!(
            NodeConfig::load(None, env).unwrap().check(),
            Err(ConfigError::Invalid { field: "connection_idle_timeout_ms", .. })
        ));
        let env = [("WEIR_REQUEST_READ_TIMEOUT_MS".to_owned(), "0".to_owned())];
        assert!(matches!(
            NodeConfig::load(None, env).unwrap().check(),
            Err(ConfigError::Invalid { field: "request_read_timeout_ms", .. })
        ));
        let env = [("WEIR_QUIC_BUSY_POLL_US".to_owned(), "5000000".to_owned())];
        assert!(matches!(
            NodeConfig::load(None, env).unwrap().check(),
            Err(ConfigError::Invalid { field: "quic_busy_poll_us", .. })
        ));
    }

    /// The Kafka listener may not take a port the native listeners bind on an address they
    /// share; on another address it may.
    #[test]
    fn the_kafka_port_is_not_a_native_one() {
        let with = |kafka: &str| {
            let env = [("WEIR_LISTEN", "127.0.0.1:9000"), ("WEIR_SHARDS", "2"), ("WEIR_KAFKA_LISTEN", kafka)];
            NodeConfig::load(None, env.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap().check()
        };
        for taken in ["127.0.0.1:9000", "127.0.0.1:9002", "0.0.0.0:9001"] {
            assert!(
                matches!(with(taken), Err(ConfigError::Invalid { field: "kafka_listen", .. })),
                "{taken}"
            );
        }
        for free in ["127.0.0.1:9003", "127.0.0.2:9001", "off"] {
            assert!(with(free).is_ok(), "{free}");
        }
    }

    /// A misspelt `WEIR_*` variable is named in a warning; one that is a setting, the log
    /// filter, the client's, and variables of other programs are not. A misspelt TOML key is
    /// still refused, naming the key.
    #[test]
    fn unknown_variables_are_warned_of_and_unknown_keys_refused() {
        let env = [
            ("WEIR_SHARDZ", "2"),
            ("WEIR_SHARDS", "2"),
            ("WEIR_LOG", "debug"),
            ("WEIR_TLS_FINGERPRINT", "ab"),
            ("HOME", "/x"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let (config, warnings) = NodeConfig::load_noting(None, env).unwrap();
        assert_eq!(config.shards, 2);
        assert_eq!(warnings, vec![ConfigWarning::UnknownVariable { name: "WEIR_SHARDZ".into() }]);
        assert!(warnings[0].to_string().contains("WEIR_SHARDZ"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(&file, "connection_idle_timout_ms = 5\n").unwrap();
        let error = NodeConfig::load_noting(Some(&file), []).unwrap_err();
        assert!(error.to_string().contains("connection_idle_timout_ms"), "{error}");
    }
}

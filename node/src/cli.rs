//! Client commands of `weir`: topics, produce, consume, the cluster's status. They run the SDK
//! on a small tokio runtime and talk to a node over the native protocol.

use clap::{Args, Subcommand, ValueEnum};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use weir_net::client::{
    Admin, ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek, Target,
    Trust,
};
use weir_net::{Acks, CleanupPolicy, TopicConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Quic,
    Tcp,
}

#[derive(Debug, Args)]
pub struct Conn {
    /// Node address, or a bootstrap list of them separated by commas (host:port,host:port):
    /// the first that answers is used
    #[arg(long, default_value = "127.0.0.1:7400", global = true)]
    pub server: String,
    /// Transport to the node
    #[arg(long, value_enum, default_value = "quic", global = true)]
    pub transport: Transport,
    /// QUIC: trust node certificates that chain to these PEM certificates [default: the
    /// node's self-signed one in ./weir-data/tls/cert.pem, when it is there]
    #[arg(long, global = true, env = "WEIR_TLS_CA", conflicts_with_all = ["tls_fingerprint", "insecure"])]
    pub tls_ca: Option<std::path::PathBuf>,
    /// QUIC: trust the node whose certificate has this SHA-256 fingerprint (printed at start)
    #[arg(long, global = true, env = "WEIR_TLS_FINGERPRINT", conflicts_with = "insecure")]
    pub tls_fingerprint: Option<String>,
    /// QUIC: trust any certificate (development only)
    #[arg(long, global = true)]
    pub insecure: bool,
}

impl Conn {
    /// Where and how to reach the node, as the flags say.
    pub fn target(&self) -> Result<Target, ClientError> {
        if self.transport == Transport::Tcp {
            return Ok(Target::tcp(&self.server));
        }
        let trust = if let Some(ca) = &self.tls_ca {
            Trust::CaFile(ca.clone())
        } else if let Some(fp) = &self.tls_fingerprint {
            Trust::Fingerprint(weir_net::tls::parse_fingerprint(fp)?)
        } else if self.insecure {
            Trust::Insecure
        } else {
            let local = std::path::Path::new(DEFAULT_CA);
            if !local.exists() {
                return Err(ClientError::InvalidArgument(format!(
                    "QUIC needs to know which node certificate to trust: pass --tls-fingerprint \
                     (the node prints it at start), --tls-ca FILE, or --insecure for development \
                     ({DEFAULT_CA} is not here); or use --transport tcp"
                )));
            }
            Trust::CaFile(local.to_owned())
        };
        Target::quic(&self.server, &trust)
    }
}

/// The certificate a node started in this directory with default settings generates.
const DEFAULT_CA: &str = "./weir-data/tls/cert.pem";

#[derive(Debug, Subcommand)]
pub enum TopicCmd {
    /// Create a topic
    Create {
        name: String,
        #[arg(long)]
        partitions: u32,
        /// Copies of each partition, each on its own node
        #[arg(long, default_value_t = 1)]
        replication_factor: u16,
        /// In-sync replicas a produce with acks=all needs, at most the replication factor
        /// [default: min(2, replication factor)]
        #[arg(long)]
        min_insync_replicas: Option<u16>,
        #[arg(long)]
        retention_ms: Option<u64>,
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// What makes room: delete (retention), compact (the latest record of each key stays),
        /// or compact,delete (both)
        #[arg(long, default_value = "delete")]
        cleanup_policy: CleanupPolicy,
        /// How long a compacted topic keeps a tombstone (a record with no value) [default: the
        /// node's delete_retention_ms]
        #[arg(long)]
        delete_retention_ms: Option<u64>,
    },
    /// List topics
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a topic's partitions: leader, replicas, in-sync replicas, offsets, health
    #[command(long_about = "Show a topic's partitions: leader, replicas, in-sync replicas, \
offsets, health.\n\nHIGH_WATERMARK (JSON `high_watermark`) is the end of what the in-sync \
replicas hold: consumers read below it. LOG_END (JSON `log_end`) is the end of the leader's \
log, records not yet replicated included; it is at or above the high watermark. LOG_START \
(`log_start`) is the first offset still kept.")]
    Describe {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a topic and its data
    Delete { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcksArg {
    /// Answered at once
    None,
    /// Once the leader wrote the batch
    Leader,
    /// Once every in-sync replica has it (on a single node, as leader)
    All,
}

impl AcksArg {
    pub fn acks(self) -> Acks {
        match self {
            AcksArg::None => Acks::None,
            AcksArg::Leader => Acks::Leader,
            AcksArg::All => Acks::All,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Show the nodes (up or down, controller, voter or learner) and under-replicated partitions
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Make a cluster CA (ca.pem, ca.key) in DIR; every node of the cluster needs both files
    Ca {
        #[arg(long)]
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
#[command(after_help = "Delivery is at least once: a batch whose acknowledgement was lost (the \
connection broke, the node restarted) is sent again and may then be stored twice. With more than \
one batch in flight (--max-in-flight above 1) a retried batch can also land after later ones of \
its partition; --max-in-flight 1 keeps each partition's order. The command stops reading input at \
the first record that fails and exits non-zero once the records sent are answered.")]
pub struct ProduceArgs {
    pub topic: String,
    /// Split each line into key and value at the first occurrence of this string
    #[arg(long)]
    pub key_separator: Option<String>,
    #[arg(long)]
    pub partition: Option<u32>,
    #[arg(long, value_enum, default_value = "all")]
    pub acks: AcksArg,
    /// Time a record may take from being read to being acknowledged, retries included; past it
    /// the record fails (and may or may not have been written)
    #[arg(long, default_value_t = ProducerConfig::default().delivery_timeout_ms)]
    pub delivery_timeout_ms: u64,
    /// How long a node may hold a batch waiting for its replicas before it answers; by default
    /// 30000, or less to fit within --delivery-timeout-ms
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Batches sent and not yet acknowledged per connection, at most; 1 keeps each partition's
    /// order across retries
    #[arg(long, default_value_t = ProducerConfig::default().max_in_flight)]
    pub max_in_flight: usize,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Read one partition (default: all)
    #[arg(long)]
    pub partition: Option<u32>,
    /// Start at the earliest offset (default: the latest)
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start at this offset
    #[arg(long)]
    pub offset: Option<u64>,
    /// Stop after this many records
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop when no record arrived for this long
    #[arg(long)]
    pub timeout_ms: Option<u32>,
    #[arg(long)]
    pub print_key: bool,
    #[arg(long)]
    pub print_offset: bool,
    /// One JSON object per record
    #[arg(long)]
    pub json: bool,
    /// Read as a member of this consumer group: the group's partitions are shared among its
    /// members, and offsets are committed as records are printed (at least once)
    #[arg(long, conflicts_with_all = ["partition", "offset"])]
    pub group: Option<String>,
    /// Static membership: a consumer restarted with the same id within its session takes its
    /// partitions back without a rebalance
    #[arg(long, requires = "group")]
    pub instance_id: Option<String>,
    /// How long the group waits for a silent member before giving its partitions to others
    #[arg(long, requires = "group", default_value_t = 45_000)]
    pub session_timeout_ms: u32,
    /// How often offsets are committed
    #[arg(long, requires = "group", default_value_t = 5_000)]
    pub commit_interval_ms: u64,
}

/// Counters of each shard of the node.
pub fn stats(conn: &Conn, json: bool) -> ExitCode {
    finish(runtime().block_on(async {
        let shards = Admin::connect(&conn.target()?).await?.node_stats().await?;
        if json {
            let v: Vec<_> = shards.iter().map(shard_json).collect();
            println!("{}", serde_json::Value::Array(v));
        } else {
            println!(
                "{:>5} {:>12} {:>14} {:>14} {:>21} {:>10}",
                "SHARD", "CONNECTIONS", "REQUESTS", "FORWARDED", "CACHE MiB (MAX)", "CACHE HIT"
            );
            for s in shards {
                let c = &s.batch_cache;
                let cache = format!("{} ({})", c.bytes >> 20, c.bytes_max >> 20);
                let hit = c.hit_ratio().map_or("-".into(), |r| format!("{:.1} %", r * 100.0));
                println!(
                    "{:>5} {:>12} {:>14} {:>14} {:>21} {:>10}",
                    s.shard, s.connections, s.requests, s.forwarded, cache, hit
                );
            }
        }
        Ok(())
    }))
}

fn shard_json(s: &weir_net::api::ShardStats) -> serde_json::Value {
    let c = &s.batch_cache;
    serde_json::json!({
        "shard": s.shard,
        "connections": s.connections,
        "requests": s.requests,
        "forwarded": s.forwarded,
        "batch_cache": {
            "bytes": c.bytes, "bytes_max": c.bytes_max, "batches": c.batches,
            "hits": c.hits, "hit_bytes": c.hit_bytes, "misses": c.misses, "miss_bytes": c.miss_bytes,
            "evictions": c.evictions, "hit_ratio": c.hit_ratio(),
        },
    })
}

/// The cluster's nodes and under-replicated partitions.
pub fn cluster(conn: &Conn, cmd: ClusterCmd) -> ExitCode {
    let json = match cmd {
        ClusterCmd::Ca { dir } => return crate::cluster_ca::make_ca(&dir),
        ClusterCmd::Status { json } => json,
    };
    finish(runtime().block_on(async {
        let status = Admin::connect(&conn.target()?).await?.cluster_status().await?;
        if json {
            println!("{}", crate::cli_cluster::json(&status));
        } else {
            print!("{}", crate::cli_cluster::table(&status));
        }
        Ok(())
    }))
}

pub(crate) fn runtime() -> tokio_rt::runtime::Runtime {
    tokio_rt::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

pub(crate) fn finish(r: Result<(), ClientError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn topic(conn: &Conn, cmd: TopicCmd) -> ExitCode {
    finish(runtime().block_on(async {
        let mut admin = Admin::connect(&conn.target()?).await?;
        match cmd {
            TopicCmd::Create {
                name,
                partitions,
                replication_factor,
                min_insync_replicas,
                retention_ms,
                retention_bytes,
                cleanup_policy,
                delete_retention_ms,
            } => {
                let config = TopicConfig { retention_ms, retention_bytes, cleanup_policy, delete_retention_ms };
                admin
                    .create_replicated_topic(&name, partitions, replication_factor, min_insync_replicas, config)
                    .await?;
                println!(
                    "created topic {name} with {partitions} partitions, replication factor {replication_factor}"
                );
            }
            TopicCmd::Delete { name } => {
                admin.delete_topic(&name).await?;
                println!("deleted topic {name}");
            }
            TopicCmd::List { json } => {
                let topics = admin.list_topics().await?;
                if json {
                    let v: Vec<_> = topics
                        .iter()
                        .map(|t| serde_json::json!({"name": t.name, "partitions": t.partitions.len()}))
                        .collect();
                    println!("{}", serde_json::Value::Array(v));
                } else {
                    println!("{:<40} {:>10}", "TOPIC", "PARTITIONS");
                    for t in topics {
                        println!("{:<40} {:>10}", t.name, t.partitions.len());
                    }
                }
            }
            TopicCmd::Describe { name, json } => {
                let t = admin.describe_topic(&name).await?;
                if json {
                    println!("{}", crate::cli_describe::json(&t));
                } else {
                    crate::cli_describe::print_table(&t);
                }
            }
        }
        Ok(())
    }))
}

/// Records queued and not yet acknowledged, at most, while producing from stdin.
const PENDING_MAX: usize = 1 << 16;

/// What a produce run has heard back: records acknowledged, and the first failure.
#[derive(Default)]
struct Outcome {
    acked: u64,
    first_error: Option<ClientError>,
}

impl Outcome {
    fn count(&mut self, r: Result<u64, ClientError>) {
        match r {
            Ok(_) => self.acked += 1,
            Err(e) => {
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// Lines of stdin, read on a thread of their own so that records go out as lines arrive; the
/// channel is bounded, so a slow node holds the reader back.
fn stdin_lines() -> tokio_rt::sync::mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = tokio_rt::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn record(args: &ProduceArgs, line: String) -> ProducerRecord {
    let (key, value) = match &args.key_separator {
        Some(sep) => match line.split_once(sep.as_str()) {
            Some((k, v)) => (Some(k.as_bytes().to_vec()), v.as_bytes().to_vec()),
            None => (None, line.into_bytes()),
        },
        None => (None, line.into_bytes()),
    };
    ProducerRecord {
        topic: args.topic.clone(),
        partition: args.partition,
        key,
        value: Some(value),
        ..ProducerRecord::default()
    }
}

pub fn produce(conn: &Conn, args: ProduceArgs) -> ExitCode {
    let mut outcome = Outcome::default();
    let r = runtime().block_on(async {
        let target = conn.target()?;
        let config = ProducerConfig {
            acks: args.acks.acks(),
            delivery_timeout_ms: args.delivery_timeout_ms,
            request_timeout_ms: args.request_timeout_ms.unwrap_or_else(|| {
                let default = ProducerConfig::default();
                let room = args.delivery_timeout_ms.saturating_sub(default.linger_ms).max(1);
                default.request_timeout_ms.min(room)
            }),
            max_in_flight: args.max_in_flight,
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(&target, config).await?;
        // Records are queued without waiting for their acknowledgements, so they batch; at most
        // PENDING_MAX acknowledgements are awaited. The first failure stops the reading: the
        // records after it would most likely fail too, each only after its delivery timeout.
        let mut lines = stdin_lines();
        let mut pending = std::collections::VecDeque::new();
        while outcome.first_error.is_none() {
            let Some(line) = lines.recv().await else { break };
            // Queued in line order, so a key's records keep the order of the input.
            pending.push_back(producer.enqueue(record(&args, line.map_err(ClientError::Io)?)).await?);
            while pending.len() > PENDING_MAX || pending.front().is_some_and(|a| a.is_answered()) {
                outcome.count(pending.pop_front().expect("not empty").await);
            }
        }
        for ack in pending {
            outcome.count(ack.await);
        }
        outcome.first_error.take().map_or(Ok(()), Err)
    });
    eprintln!("{} records acknowledged", outcome.acked);
    finish(r)
}

pub fn consume(conn: &Conn, args: ConsumeArgs) -> ExitCode {
    if args.group.is_some() {
        return crate::cli_group::consume(conn, args);
    }
    finish(runtime().block_on(async {
        let target = conn.target()?;
        let mut consumer = Consumer::connect(&target, ConsumerConfig::default()).await?;
        let partitions = match args.partition {
            Some(p) => vec![p],
            None => {
                let mut admin = Admin::connect(&target).await?;
                let t = admin.describe_topic(&args.topic).await?;
                t.partitions.iter().map(|p| p.partition).collect()
            }
        };
        let seek = match (args.offset, args.from_beginning) {
            (Some(o), _) => Seek::Offset(o),
            (None, true) => Seek::Earliest,
            (None, false) => Seek::Latest,
        };
        for p in partitions {
            consumer.assign(&args.topic, p, seek).await?;
        }
        let mut seen = 0u64;
        let out = std::io::stdout();
        let mut out = out.lock();
        loop {
            if args.count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
            let records = consumer.poll(args.timeout_ms.unwrap_or(1000)).await?;
            if records.is_empty() && args.timeout_ms.is_some() {
                return Ok(());
            }
            for r in records {
                if args.count.is_some_and(|c| seen >= c) {
                    break;
                }
                seen += 1;
                writeln!(out, "{}", record_line(&args, &r)).map_err(ClientError::Io)?;
            }
            out.flush().map_err(ClientError::Io)?;
        }
    }))
}

/// How `weir consume` prints a record.
pub(crate) fn record_line(args: &ConsumeArgs, r: &weir_net::client::ConsumerRecord) -> String {
    let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
    if args.json {
        return serde_json::json!({
            "partition": r.partition,
            "offset": r.offset,
            "timestamp": r.timestamp,
            "key": r.key.as_deref().map(String::from_utf8_lossy),
            "value": value,
        })
        .to_string();
    }
    let mut l = String::new();
    if args.print_offset {
        l.push_str(&format!("{}:{}\t", r.partition, r.offset));
    }
    if args.print_key {
        l.push_str(&String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()));
        l.push('\t');
    }
    l.push_str(&value);
    l
}

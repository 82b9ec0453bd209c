//! `weir`: runs a node (`weir serve`) and talks to one (`weir topic|produce|consume`).

/// Buffers cross threads (a client's tokio workers; quinn's tasks and the shards); glibc's arenas
/// serialise frees from another thread on a lock, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use weir_node::{cli, config, server};

#[derive(Debug, Parser)]
#[command(name = "weir", version, about = "Weir: an event streaming platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    conn: cli::Conn,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node. Settings: defaults < --config FILE < WEIR_* environment < flags.
    Serve {
        /// Directory for topics and partition logs [default: ./weir-data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address for QUIC (UDP) and the native protocol over TCP [default: 127.0.0.1:7400]
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Address of the Kafka-compatible listener (TCP), or `off` [default: 127.0.0.1:9092]
        #[arg(long)]
        kafka_listen: Option<String>,
        /// Number of shards (one pinned executor per core) [default: number of cores]
        #[arg(long)]
        shards: Option<usize>,
        /// TOML file with any NodeConfig setting
        #[arg(long)]
        config: Option<PathBuf>,
        /// PEM certificate chain for QUIC [default: a self-signed one in DATA_DIR/tls/]
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterFlags,
    },
    /// Create, list, describe and delete topics
    Topic {
        #[command(subcommand)]
        cmd: cli::TopicCmd,
    },
    /// Send one record per stdin line
    Produce(cli::ProduceArgs),
    /// Print records, one value per line
    Consume(cli::ConsumeArgs),
    /// Consumer groups: list, describe (members, offsets, lag), reset offsets, delete
    Group {
        #[command(subcommand)]
        cmd: weir_node::cli_group::GroupCmd,
    },
    /// The cluster: its nodes and under-replicated partitions, its CA
    Cluster {
        #[command(subcommand)]
        cmd: cli::ClusterCmd,
    },
    /// Show what each shard of the node has done: connections, requests, requests forwarded
    Stats {
        #[arg(long)]
        json: bool,
    },
}

/// Membership of a cluster; see `docs/cluster.md`.
#[derive(Debug, clap::Args)]
struct ClusterFlags {
    /// This node's id in the cluster (with --peers)
    #[arg(long)]
    node_id: Option<u32>,
    /// Every member, this node included: id@host:port,... (each node's cluster address, UDP)
    #[arg(long)]
    peers: Option<String>,
    /// The cluster CA's certificate (PEM), from `weir cluster ca`
    #[arg(long)]
    cluster_ca_cert: Option<PathBuf>,
    /// The cluster CA's private key (PEM)
    #[arg(long)]
    cluster_ca_key: Option<PathBuf>,
}

impl ClusterFlags {
    fn apply(self, c: &mut config::NodeConfig) {
        c.node_id = self.node_id.or(c.node_id);
        c.peers = self.peers.or(c.peers.take());
        c.cluster_ca_cert = self.cluster_ca_cert.or(c.cluster_ca_cert.take());
        c.cluster_ca_key = self.cluster_ca_key.or(c.cluster_ca_key.take());
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Topic { cmd } => cli::topic(&cli.conn, cmd),
        Command::Produce(args) => cli::produce(&cli.conn, args),
        Command::Consume(args) => cli::consume(&cli.conn, args),
        Command::Stats { json } => cli::stats(&cli.conn, json),
        Command::Cluster { cmd } => cli::cluster(&cli.conn, cmd),
        Command::Group { cmd } => weir_node::cli_group::group(&cli.conn, cmd),
        Command::Serve { data_dir, listen, kafka_listen, shards, config, tls_cert, tls_key, cluster } => {
            let mut c = match config::NodeConfig::load(config.as_deref(), std::env::vars()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("weir: {e}");
                    return ExitCode::from(2);
                }
            };
            c.data_dir = data_dir.unwrap_or(c.data_dir);
            c.listen = listen.unwrap_or(c.listen);
            c.kafka_listen = kafka_listen.unwrap_or(c.kafka_listen);
            c.shards = shards.unwrap_or(c.shards);
            if tls_cert.is_some() {
                (c.tls_cert, c.tls_key) = (tls_cert, tls_key);
            }
            cluster.apply(&mut c);
            if let Err(e) = c.check() {
                eprintln!("weir: {e}");
                return ExitCode::from(2);
            }
            match server::serve(c) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("weir: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

//! Client commands of `weir`: topics, produce, consume. They run the SDK on a small tokio
//! runtime and talk to a node over the native protocol.

use clap::{Args, Subcommand, ValueEnum};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use weir_net::client::{
    Admin, ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek,
};
use weir_net::{Acks, TopicConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Quic,
    Tcp,
}

#[derive(Debug, Args)]
pub struct Conn {
    /// Node address
    #[arg(long, default_value = "127.0.0.1:7400", global = true)]
    pub server: String,
    /// Transport to the node (QUIC lands with the QUIC issue; TCP until then)
    #[arg(long, value_enum, default_value = "tcp", global = true)]
    pub transport: Transport,
}

#[derive(Debug, Subcommand)]
pub enum TopicCmd {
    /// Create a topic
    Create {
        name: String,
        #[arg(long)]
        partitions: u32,
        #[arg(long)]
        retention_ms: Option<u64>,
        #[arg(long)]
        retention_bytes: Option<u64>,
    },
    /// List topics
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a topic's partitions and offsets
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
    None,
    Leader,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Split each line into key and value at the first occurrence of this string
    #[arg(long)]
    pub key_separator: Option<String>,
    #[arg(long)]
    pub partition: Option<u32>,
    #[arg(long, value_enum, default_value = "leader")]
    pub acks: AcksArg,
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
}

fn runtime() -> tokio_rt::runtime::Runtime {
    tokio_rt::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

fn check_transport(conn: &Conn) -> Result<(), ClientError> {
    match conn.transport {
        Transport::Tcp => Ok(()),
        Transport::Quic => Err(ClientError::InvalidArgument(
            "the QUIC transport is not available in this build yet; use --transport tcp".into(),
        )),
    }
}

fn finish(r: Result<(), ClientError>) -> ExitCode {
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
        check_transport(conn)?;
        let mut admin = Admin::connect(&conn.server).await?;
        match cmd {
            TopicCmd::Create { name, partitions, retention_ms, retention_bytes } => {
                admin.create_topic(&name, partitions, TopicConfig { retention_ms, retention_bytes }).await?;
                println!("created topic {name} with {partitions} partitions");
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
                    let parts: Vec<_> = t
                        .partitions
                        .iter()
                        .map(|p| serde_json::json!({"partition": p.partition, "shard": p.shard, "log_start": p.log_start, "log_end": p.log_end}))
                        .collect();
                    let v = serde_json::json!({
                        "name": t.name,
                        "retention_ms": t.config.retention_ms,
                        "retention_bytes": t.config.retention_bytes,
                        "partitions": parts,
                    });
                    println!("{v}");
                } else {
                    println!("topic {} (retention_ms {:?}, retention_bytes {:?})", t.name, t.config.retention_ms, t.config.retention_bytes);
                    println!("{:>9} {:>6} {:>14} {:>14}", "PARTITION", "SHARD", "LOG_START", "LOG_END");
                    for p in &t.partitions {
                        println!("{:>9} {:>6} {:>14} {:>14}", p.partition, p.shard, p.log_start, p.log_end);
                    }
                }
            }
        }
        Ok(())
    }))
}

/// Records queued and not yet acknowledged, at most, while producing from stdin.
const PENDING_MAX: usize = 1 << 16;

fn count(r: Result<u64, ClientError>, acked: &std::cell::Cell<u64>, first_error: &mut Option<ClientError>) {
    match r {
        Ok(_) => acked.set(acked.get() + 1),
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
}

pub fn produce(conn: &Conn, args: ProduceArgs) -> ExitCode {
    let acked = std::cell::Cell::new(0u64);
    let r = runtime().block_on(async {
        check_transport(conn)?;
        let config = ProducerConfig {
            acks: if args.acks == AcksArg::None { Acks::None } else { Acks::Leader },
            ..ProducerConfig::default()
        };
        let producer = Producer::connect(&conn.server, config).await?;
        // Stdin is read on its own thread so records go out as lines arrive; the channel is
        // bounded, so a slow node holds the reader back. Records are queued without waiting for
        // their acknowledgements, so they batch; at most PENDING_MAX acknowledgements are awaited.
        let (tx, mut rx) = tokio_rt::sync::mpsc::channel::<std::io::Result<String>>(1024);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        });
        let mut pending = std::collections::VecDeque::new();
        let mut first_error = None;
        while let Some(line) = rx.recv().await {
            let line = line.map_err(ClientError::Io)?;
            let (key, value) = match &args.key_separator {
                Some(sep) => match line.split_once(sep.as_str()) {
                    Some((k, v)) => (Some(k.as_bytes().to_vec()), v.as_bytes().to_vec()),
                    None => (None, line.into_bytes()),
                },
                None => (None, line.into_bytes()),
            };
            let record = ProducerRecord {
                topic: args.topic.clone(),
                partition: args.partition,
                key,
                value: Some(value),
                ..ProducerRecord::default()
            };
            // Queued in line order, so a key's records keep the order of the input.
            pending.push_back(producer.enqueue(record).await?);
            while pending.len() > PENDING_MAX {
                count(pending.pop_front().expect("not empty").await, &acked, &mut first_error);
            }
        }
        for ack in pending {
            count(ack.await, &acked, &mut first_error);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    eprintln!("{} records acknowledged", acked.get());
    finish(r)
}

pub fn consume(conn: &Conn, args: ConsumeArgs) -> ExitCode {
    finish(runtime().block_on(async {
        check_transport(conn)?;
        let mut consumer = Consumer::connect(&conn.server, ConsumerConfig::default()).await?;
        let partitions = match args.partition {
            Some(p) => vec![p],
            None => {
                let mut admin = Admin::connect(&conn.server).await?;
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
                let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
                let line = if args.json {
                    serde_json::json!({
                        "partition": r.partition,
                        "offset": r.offset,
                        "timestamp": r.timestamp,
                        "key": r.key.as_deref().map(String::from_utf8_lossy),
                        "value": value,
                    })
                    .to_string()
                } else {
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
                };
                writeln!(out, "{line}").map_err(ClientError::Io)?;
            }
            out.flush().map_err(ClientError::Io)?;
        }
    }))
}

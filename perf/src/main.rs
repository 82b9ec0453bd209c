//! `weir-perf`: measures a node. Today: `produce` (throughput and acknowledgement latency) and
//! `baseline disk` (raw direct-I/O writes on the same filesystem), so that every figure is
//! reported next to the device's own. The full tool (open-loop rates, consume, e2e, plots)
//! arrives with the perf issue.

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use weir_net::client::{Admin, ClientError, Producer, ProducerConfig, ProducerRecord, Target, Trust};
use weir_net::{Acks, TopicConfig};

#[derive(Debug, Parser)]
#[command(name = "weir-perf", about = "Measure a Weir node")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct ProduceArgs {
    #[arg(long, default_value = "127.0.0.1:7400")]
    server: String,
    #[arg(long, value_enum, default_value = "quic")]
    transport: TransportArg,
    /// QUIC: the node certificate's SHA-256 fingerprint; without it, any certificate is
    /// trusted (a measuring tool on a test node)
    #[arg(long)]
    tls_fingerprint: Option<String>,
    #[arg(long, default_value = "perf")]
    topic: String,
    /// Create the topic with this many partitions if it does not exist
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    #[arg(long, default_value_t = 2)]
    linger_ms: u64,
    /// Records queued and not yet acknowledged, at most
    #[arg(long, default_value_t = 8192)]
    in_flight: usize,
    /// Keys cycle over this many values (0: no keys)
    #[arg(long, default_value_t = 0)]
    keys: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TransportArg {
    Quic,
    Tcp,
}

fn target(server: &str, transport: TransportArg, fingerprint: Option<&str>) -> Result<Target, ClientError> {
    match transport {
        TransportArg::Tcp => Ok(Target::tcp(server)),
        TransportArg::Quic => {
            let trust = match fingerprint {
                Some(fp) => Trust::Fingerprint(weir_net::tls::parse_fingerprint(fp)?),
                None => Trust::Insecure,
            };
            Target::quic(server, &trust)
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Produce records as fast as acknowledgements allow, with a bounded number in flight
    Produce(ProduceArgs),
    /// Raw direct-I/O sequential writes, the device's own figure
    Baseline {
        /// Directory on the filesystem to measure (the data dir's)
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1 << 20)]
        block_bytes: usize,
        #[arg(long, default_value_t = 512 << 20)]
        total_bytes: u64,
        /// fdatasync after every block
        #[arg(long)]
        fsync: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Produce(args) => {
            let rt = tokio_rt::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            match rt.block_on(produce(&args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("weir-perf: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Baseline { dir, block_bytes, total_bytes, fsync } => {
            let tmp = tempfile::tempdir_in(&dir).expect("a temp dir in --dir");
            let path = tmp.path().join("baseline.data");
            let elapsed =
                weir_benches::run_local(weir_benches::raw_write(&path, block_bytes, total_bytes, fsync));
            let mbps = total_bytes as f64 / elapsed.as_secs_f64() / 1e6;
            println!(
                "baseline disk: {block_bytes} B blocks{}: {mbps:.0} MB/s",
                if fsync { " + fdatasync" } else { "" }
            );
            ExitCode::SUCCESS
        }
    }
}

async fn produce(args: &ProduceArgs) -> Result<(), ClientError> {
    let ProduceArgs {
        server,
        topic,
        partitions,
        record_size,
        records,
        batch_bytes,
        linger_ms,
        in_flight,
        keys,
        ..
    } = args;
    let (partitions, record_size, records, batch_bytes, linger_ms, in_flight, keys) =
        (*partitions, *record_size, *records, *batch_bytes, *linger_ms, *in_flight, *keys);
    let server = &target(server, args.transport, args.tls_fingerprint.as_deref())?;
    let mut admin = Admin::connect(server).await?;
    match admin.create_topic(topic, partitions, TopicConfig::default()).await {
        Ok(()) | Err(ClientError::Server { code: weir_net::ErrorCode::TopicAlreadyExists, .. }) => {}
        Err(e) => return Err(e),
    }
    let config = ProducerConfig { batch_bytes, linger_ms, acks: Acks::Leader, ..ProducerConfig::default() };
    let producer = Producer::connect(server, config).await?;
    let value = vec![b'x'; record_size];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut pending = VecDeque::with_capacity(in_flight);
    let start = Instant::now();
    for i in 0..records {
        let record = ProducerRecord {
            topic: topic.to_owned(),
            key: (keys > 0).then(|| (i % keys).to_le_bytes().to_vec()),
            value: Some(value.clone()),
            ..ProducerRecord::default()
        };
        pending.push_back((Instant::now(), producer.enqueue(record).await?));
        if pending.len() >= in_flight {
            let (sent, ack) = pending.pop_front().expect("not empty");
            ack.await?;
            hist.record(sent.elapsed().as_micros() as u64).expect("in bounds");
        }
    }
    for (sent, ack) in pending {
        ack.await?;
        hist.record(sent.elapsed().as_micros() as u64).expect("in bounds");
    }
    let elapsed = start.elapsed();
    producer.close().await?;
    report(records, record_size, elapsed, &hist);
    Ok(())
}

fn report(records: u64, record_size: usize, elapsed: Duration, hist: &Histogram<u64>) {
    let secs = elapsed.as_secs_f64();
    println!(
        "produce: {records} records of {record_size} B in {secs:.2} s: {:.0} records/s, {:.1} MB/s",
        records as f64 / secs,
        records as f64 * record_size as f64 / secs / 1e6
    );
    println!(
        "ack latency (µs, enqueue to ack, closed loop): p50 {} p90 {} p99 {} p99.9 {} max {}",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max()
    );
}

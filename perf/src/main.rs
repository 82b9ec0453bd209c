//! `weir-perf`: measures a Weir node (or one it starts itself with `--embedded`) and the raw disk
//! and network beside it. See BENCHMARKS.md for the figures and the commands that made them.

/// Records are allocated on one thread and freed on another; glibc's arenas serialise that on a
/// lock, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use weir_net::Acks;
use weir_net::client::{Target, Trust};
use weir_perf::baseline;
use weir_perf::embedded::EmbeddedNode;
use weir_perf::rate::Rate;
use weir_perf::report::Report;
use weir_perf::span::Span;
use weir_perf::workload::{self, Outcome, Workload};

#[derive(Debug, Parser)]
#[command(name = "weir-perf", about = "Measure a Weir node, next to the raw disk and network")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Produce records: throughput and acknowledgement latency
    Produce(RunArgs),
    /// Read a topic from its start (filling it first when empty): catch-up throughput and fetch
    /// latency
    Consume(RunArgs),
    /// Produce at --rate while consumers read: delivery latency from intended send time
    E2e(RunArgs),
    /// The raw figures alone
    Baseline {
        #[command(subcommand)]
        what: BaselineCmd,
    },
    /// Idle partitions' cost: creation time, RSS and open files per partition, each count on a
    /// fresh embedded node
    Partitions {
        /// Partition counts to create, one fresh node each. For clean figures run one count per
        /// process: a stopped embedded node was seen to leave its partitions' files open
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        counts: Vec<u32>,
        #[arg(long, default_value_t = 1)]
        shards: usize,
        /// Where the node's temporary data dir goes
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Wait this long after the creation before reading RSS
        #[arg(long, default_value_t = 3000)]
        idle_ms: u64,
        #[arg(long)]
        json: bool,
    },
    /// Draw the latency percentile curves of result files (--json output) into one SVG
    Plot {
        files: Vec<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, default_value = "Weir latency by percentile")]
        title: String,
    },
}

#[derive(Debug, Subcommand)]
enum BaselineCmd {
    /// Raw direct-I/O sequential write and read on a filesystem
    Disk {
        /// A directory on the filesystem to measure (the data dir's)
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1 << 20)]
        block_bytes: usize,
        #[arg(long, default_value_t = 512 << 20)]
        total_bytes: u64,
        /// fdatasync after every block
        #[arg(long)]
        fsync: bool,
        #[arg(long)]
        json: bool,
    },
    /// Raw TCP and QUIC loopback: one bulk stream, then 64 B echo round trips; QUIC served by
    /// quinn on tokio and by the node's shard-native driver, both with quinn on tokio sending.
    /// Each figure is the median of interleaved rounds
    Net {
        #[arg(long, default_value_t = 1 << 30)]
        bulk_bytes: u64,
        #[arg(long, default_value_t = 10_000)]
        echoes: u32,
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// The native driver's busy-poll window (default: the node's `quic_busy_poll_us`)
        #[arg(long)]
        busy_poll_us: Option<u64>,
        /// Measure only this transport (repeatable; default: all)
        #[arg(long, value_enum)]
        only: Vec<NetArg>,
        #[arg(long)]
        json: bool,
    },
}

/// A network baseline's transport, as `baseline net --only` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NetArg {
    Tcp,
    QuicTokio,
    QuicNative,
    QuicNativeBoth,
}

impl From<NetArg> for baseline::NetKind {
    fn from(a: NetArg) -> Self {
        match a {
            NetArg::Tcp => Self::Tcp,
            NetArg::QuicTokio => Self::QuicTokio,
            NetArg::QuicNative => Self::QuicNative,
            NetArg::QuicNativeBoth => Self::QuicNativeBoth,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    Quic,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AcksArg {
    /// Answered at once
    None,
    /// Once the leader wrote the batch
    Leader,
    /// Once every in-sync replica has it (on a single node, as leader)
    All,
}

impl AcksArg {
    fn acks(self) -> Acks {
        match self {
            AcksArg::None => Acks::None,
            AcksArg::Leader => Acks::Leader,
            AcksArg::All => Acks::All,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FlushArg {
    /// fdatasync before acknowledging (group commit)
    Fsync,
    /// Write out before acknowledging; sync every flush_interval_ms
    Interval,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Node address, or a bootstrap list of them separated by commas (host:port,host:port):
    /// the first that answers is used
    #[arg(long, default_value = "127.0.0.1:7400")]
    server: String,
    #[arg(long, value_enum, default_value = "quic")]
    transport: TransportArg,
    /// QUIC: the node certificate's SHA-256 fingerprint; without it any certificate is trusted
    /// (a measuring tool talking to a test node)
    #[arg(long)]
    tls_fingerprint: Option<String>,
    /// Start a fresh node inside this process, in a temporary data dir under --dir
    #[arg(long)]
    embedded: bool,
    /// Embedded node: shards [default: cores]
    #[arg(long)]
    shards: Option<usize>,
    /// Embedded node: when produce is acknowledged
    #[arg(long, value_enum, default_value = "fsync")]
    flush: FlushArg,
    /// Directory for the embedded node's data and the disk baseline
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    #[arg(long, default_value = "perf")]
    topic: String,
    /// Partitions of the topic when it is created
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumers [default: 1; e2e: one per partition]
    #[arg(long)]
    consumers: Option<usize>,
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    #[arg(long, default_value_t = 2)]
    linger_ms: u64,
    /// Keyed workload: keys cycle over this many values (0: no keys)
    #[arg(long, default_value_t = 0)]
    keys: u64,
    /// Durability each produce waits for [the SDK's default is all; leader here, so that runs
    /// compare with earlier ones]
    #[arg(long, value_enum, default_value = "leader")]
    acks: AcksArg,
    /// Idempotent producers (the SDK's default; only with --acks all): `--idempotent false`
    /// measures what idempotence costs
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    idempotent: bool,
    /// Time measured, after the warm-up: `10s`, `500ms`, `2m`, or seconds (`10`)
    #[arg(long, default_value = "10s")]
    duration: Span,
    /// Time sent but not measured, first (as --duration)
    #[arg(long, default_value = "1s")]
    warmup: Span,
    /// Open loop: records/s (`50000`, `50k`) or bytes/s (`100MB`, `64MiB`); closed loop without
    #[arg(long)]
    rate: Option<Rate>,
    /// Closed loop: send exactly this many records (no warm-up) instead of running for --duration
    #[arg(long)]
    records: Option<u64>,
    /// Closed loop: records unacknowledged at most, over all producers
    #[arg(long, default_value_t = 8192)]
    in_flight: usize,
    /// Consume: bytes to produce first when the topic is empty
    #[arg(long, default_value_t = 1 << 30)]
    fill_bytes: u64,
    /// Measure the raw disk (and, with --net-baseline, the network) in the same run
    #[arg(long)]
    baseline: bool,
    /// Also measure raw TCP and QUIC loopback
    #[arg(long)]
    net_baseline: bool,
    /// Bytes the disk baseline writes and reads
    #[arg(long, default_value_t = 512 << 20)]
    baseline_bytes: u64,
    /// Names the run in plots
    #[arg(long)]
    label: Option<String>,
    /// Print the result as JSON (and nothing else on stdout)
    #[arg(long)]
    json: bool,
    /// Write the latency percentile distribution (HdrHistogram text) here
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Draw the latency percentile curve here (SVG)
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn target(args: &RunArgs, server: &str, fingerprint: Option<[u8; 32]>) -> Result<Target, String> {
    match args.transport {
        TransportArg::Tcp => Ok(Target::tcp(server)),
        TransportArg::Quic => {
            let fp = match (&args.tls_fingerprint, fingerprint) {
                (Some(text), _) => Some(weir_net::tls::parse_fingerprint(text).map_err(|e| e.to_string())?),
                (None, fp) => fp,
            };
            let trust = fp.map_or(Trust::Insecure, Trust::Fingerprint);
            Target::quic(server, &trust).map_err(|e| e.to_string())
        }
    }
}

fn runtime() -> tokio_rt::runtime::Runtime {
    tokio_rt::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A progress bar over the run's expected length, fed from a counter; hidden when stderr is not
/// a terminal or the output is JSON.
fn progress_bar(
    seconds: f64,
    counter: Arc<AtomicU64>,
    hidden: bool,
) -> (ProgressBar, std::thread::JoinHandle<()>) {
    let bar = if hidden { ProgressBar::hidden() } else { ProgressBar::new((seconds * 10.0) as u64) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .expect("a valid template"),
    );
    let b = bar.clone();
    let ticker = std::thread::spawn(move || {
        let mut last = 0;
        while !b.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            let now = counter.load(Ordering::Relaxed);
            b.set_message(format!("{now} records, {} /s", (now - last.min(now)) * 10));
            last = now;
            b.inc(1);
        }
    });
    (bar, ticker)
}

fn run(mode: &str, args: RunArgs) -> Result<(), String> {
    if args.producers == 0 || args.record_size == 0 || args.partitions == 0 {
        return Err("--producers, --record-size and --partitions must be positive".into());
    }
    let node = if args.embedded {
        let shards =
            args.shards.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Some(EmbeddedNode::start(&args.dir, shards, args.flush == FlushArg::Fsync)?)
    } else {
        None
    };
    let server = node.as_ref().map_or(args.server.clone(), |n| n.addr.clone());
    let target = target(&args, &server, node.as_ref().map(|n| n.fingerprint))?;
    let consumers = args.consumers.unwrap_or(if mode == "e2e" { args.partitions as usize } else { 1 }).max(1);
    let w = Workload {
        target,
        topic: args.topic.clone(),
        partitions: args.partitions,
        record_size: args.record_size,
        keys: args.keys,
        batch_bytes: args.batch_bytes,
        linger_ms: args.linger_ms,
        acks: args.acks.acks(),
        idempotent: args.idempotent,
        producers: args.producers,
        consumers,
        duration: args.duration.0,
        warmup: args.warmup.0,
        rate: args.rate,
        records: args.records,
        in_flight: args.in_flight.max(1),
        fill_bytes: args.fill_bytes,
    };
    let rt = runtime();
    let counter = Arc::new(AtomicU64::new(0));
    let (bar, ticker) = progress_bar(args.duration.secs() + args.warmup.secs(), counter.clone(), args.json);
    let cache_before = rt.block_on(node_stats(&w.target));
    let outcome: Result<Outcome, _> = rt.block_on(async {
        match mode {
            "produce" => workload::produce(w.clone(), counter.clone()).await,
            "consume" => workload::consume(w.clone(), counter.clone()).await,
            _ => workload::e2e(w.clone(), counter.clone()).await,
        }
    });
    bar.finish_and_clear();
    let _ = ticker.join();
    let outcome = outcome.map_err(|e| e.to_string())?;
    let batch_cache = rt.block_on(node_stats(&w.target)).map(|after| {
        weir_perf::report::CacheSummary::between(cache_before.as_deref().unwrap_or_default(), &after)
    });
    // Baselines after the workload, so they do not warm anything for it; the node stays up but idle.
    let data_dir = node.as_ref().map_or(args.dir.clone(), |n| n.data_dir.clone());
    let disk = if args.baseline {
        let fsync = args.flush == FlushArg::Fsync;
        Some(
            baseline::disk(&data_dir, args.batch_bytes, args.baseline_bytes, fsync)
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let net = if args.net_baseline {
        rt.block_on(baseline::net(
            1 << 30,
            10_000,
            1,
            Duration::from_micros(node_busy_poll_us()),
            &baseline::NetKind::ALL,
        ))?
    } else {
        Vec::new()
    };
    drop(node);
    let secs = outcome.elapsed.as_secs_f64().max(1e-9);
    let transport = format!("{:?}", args.transport).to_lowercase();
    let report = Report {
        label: args.label.clone().unwrap_or_else(|| format!("{mode} {transport}")),
        mode: mode.into(),
        transport,
        server,
        embedded: args.embedded,
        topic: args.topic.clone(),
        partitions: args.partitions,
        producers: args.producers,
        consumers,
        record_size: args.record_size,
        batch_bytes: args.batch_bytes,
        linger_ms: args.linger_ms,
        keys: args.keys,
        acks: format!("{:?}", args.acks).to_lowercase(),
        idempotent: args.idempotent && matches!(args.acks, AcksArg::All),
        rate_records_per_s: args.rate.map(|r| r.records_per_sec(args.record_size)),
        measured_s: secs,
        records: outcome.records,
        bytes: outcome.bytes,
        records_per_s: outcome.records as f64 / secs,
        mb_per_s: outcome.bytes as f64 / secs / 1e6,
        latency: outcome.latency.as_ref().filter(|l| l.count() > 0).map(|l| l.summary()),
        disk,
        net,
        ratio_to_disk: None,
        batch_cache,
    }
    .with_ratios();
    if let (Some(path), Some(l)) = (&args.hgrm, &outcome.latency) {
        let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        l.write_hgrm(&mut f).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let (Some(path), Some(l)) = (&args.plot, &report.latency) {
        weir_perf::plot::plot(&[(report.label.clone(), l.clone())], &report.label, path)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("a report serializes"));
    } else {
        report.print();
    }
    Ok(())
}

/// The node's per-shard counters; none from a node that does not answer them.
async fn node_stats(target: &weir_net::client::Target) -> Option<Vec<weir_net::api::ShardStats>> {
    let mut admin = weir_net::client::Admin::connect(target).await.ok()?;
    admin.node_stats().await.ok()
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Produce(args) => run("produce", args),
        Cmd::Consume(args) => run("consume", args),
        Cmd::E2e(args) => run("e2e", args),
        Cmd::Baseline { what: BaselineCmd::Disk { dir, block_bytes, total_bytes, fsync, json } } => {
            baseline::disk(&dir, block_bytes, total_bytes, fsync).map_err(|e| e.to_string()).map(|d| {
                if json {
                    println!("{}", serde_json::to_string_pretty(&d).expect("serializes"));
                } else {
                    println!(
                        "baseline disk: {} B blocks{}: write {:.0} MB/s, read {:.0} MB/s",
                        d.block_bytes,
                        if d.fsync_each { " + fdatasync each" } else { "" },
                        d.write_mb_s,
                        d.read_mb_s
                    );
                }
            })
        }
        Cmd::Baseline { what: BaselineCmd::Net { bulk_bytes, echoes, rounds, busy_poll_us, only, json } } => runtime()
            .block_on(baseline::net(
                bulk_bytes,
                echoes,
                rounds,
                Duration::from_micros(busy_poll_us.unwrap_or(node_busy_poll_us())),
                &if only.is_empty() {
                    baseline::NetKind::ALL.to_vec()
                } else {
                    only.into_iter().map(Into::into).collect()
                },
            ))
            .map(|nets| {
                if json {
                    println!("{}", serde_json::to_string_pretty(&nets).expect("serializes"));
                } else {
                    for n in nets {
                        println!(
                            "baseline net {}: bulk {:.0} MB/s, 64 B round trip p50 {} µs p99 {} µs, 1 MiB answers {:.0} MB/s",
                            n.transport, n.bulk_mb_s, n.rtt_p50_us, n.rtt_p99_us, n.answers_mb_s
                        );
                    }
                }
            }),
        Cmd::Partitions { counts, shards, dir, idle_ms, json } => partitions(&counts, shards, &dir, idle_ms, json),
        Cmd::Plot { files, output, title } => plot_files(&files, &output, &title),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir-perf: {e}");
            ExitCode::FAILURE
        }
    }
}

fn partitions(
    counts: &[u32],
    shards: usize,
    dir: &std::path::Path,
    idle_ms: u64,
    json: bool,
) -> Result<(), String> {
    let mut runs = Vec::new();
    for &n in counts {
        let run = weir_perf::partitions::measure(dir, shards, n, idle_ms)?;
        if !json {
            run.print();
        }
        runs.push(run);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&runs).expect("serializes"));
    }
    Ok(())
}

fn plot_files(files: &[PathBuf], output: &std::path::Path, title: &str) -> Result<(), String> {
    if files.is_empty() {
        return Err("plot: give one or more result files (weir-perf ... --json > run.json)".into());
    }
    let mut runs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let r: Report = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a weir-perf result: {e}", f.display()))?;
        let l = r.latency.ok_or_else(|| format!("{}: the run has no latencies", f.display()))?;
        runs.push((r.label, l));
    }
    weir_perf::plot::plot(&runs, title, output)
}

/// The node's default busy-poll window, so that a baseline of the native driver is the node's.
fn node_busy_poll_us() -> u64 {
    weir_node::config::NodeConfig::default().quic_busy_poll_us
}

//! A run's result: what ran, what it measured, the baselines measured with it and the ratios to
//! them. Printed for people, written as JSON for scripts and for `weir-perf plot`.

use crate::baseline::{DiskBaseline, NetBaseline};
use crate::latency::Summary;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Names the run in plots; defaults to mode and transport.
    pub label: String,
    /// produce, consume or e2e.
    pub mode: String,
    pub transport: String,
    pub server: String,
    pub embedded: bool,
    pub topic: String,
    pub partitions: u32,
    pub producers: usize,
    pub consumers: usize,
    pub record_size: usize,
    pub batch_bytes: usize,
    pub linger_ms: u64,
    pub keys: u64,
    pub acks: String,
    /// Whether the producers were idempotent (with acks all).
    #[serde(default)]
    pub idempotent: bool,
    /// Open-loop rate in records per second; none for a closed loop.
    pub rate_records_per_s: Option<f64>,
    pub measured_s: f64,
    pub records: u64,
    pub bytes: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    /// Produce: enqueue (or intended send) to acknowledgement. e2e: intended send to delivery.
    pub latency: Option<Summary>,
    pub disk: Option<DiskBaseline>,
    pub net: Vec<NetBaseline>,
    /// MB/s over the raw disk's: write for produce, read for consume.
    pub ratio_to_disk: Option<f64>,
    /// How the node's batch caches served the run's fetches; none from a node that does not
    /// tell.
    #[serde(default)]
    pub batch_cache: Option<CacheSummary>,
}

/// The node's batch caches over one run: the fetched bytes they served and those read from the
/// device, all shards together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CacheSummary {
    pub bytes_max: u64,
    pub hit_bytes: u64,
    pub miss_bytes: u64,
    pub evictions: u64,
}

impl CacheSummary {
    /// The change between two readings of the node's shards (`before` may be empty: none).
    pub fn between(before: &[weir_net::api::ShardStats], after: &[weir_net::api::ShardStats]) -> Self {
        let sum = |s: &[weir_net::api::ShardStats], f: fn(&weir_net::api::BatchCacheStats) -> u64| {
            s.iter().map(|s| f(&s.batch_cache)).sum::<u64>()
        };
        let delta = |f| sum(after, f) - sum(before, f).min(sum(after, f));
        Self {
            bytes_max: sum(after, |c| c.bytes_max),
            hit_bytes: delta(|c| c.hit_bytes),
            miss_bytes: delta(|c| c.miss_bytes),
            evictions: delta(|c| c.evictions),
        }
    }

    /// The share of fetched bytes the caches served; none when nothing was fetched.
    pub fn hit_ratio(&self) -> Option<f64> {
        let (hit_bytes, miss_bytes) = (self.hit_bytes, self.miss_bytes);
        weir_net::api::BatchCacheStats { hit_bytes, miss_bytes, ..Default::default() }.hit_ratio()
    }
}

impl Report {
    /// Fills `ratio_to_disk` from the disk baseline.
    pub fn with_ratios(mut self) -> Self {
        self.ratio_to_disk = self.disk.as_ref().and_then(|d| match self.mode.as_str() {
            "produce" => Some(self.mb_per_s / d.write_mb_s),
            "consume" => Some(self.mb_per_s / d.read_mb_s),
            _ => None,
        });
        self
    }

    pub fn print(&self) {
        let rate = match self.rate_records_per_s {
            Some(r) => format!("open loop at {r:.0} records/s"),
            None => "closed loop".into(),
        };
        println!(
            "{} over {} ({}{}): {} records of {} B, {} partitions, {} producers, {} consumers, batches {} B, acks {}, {}",
            self.mode,
            self.transport,
            self.server,
            if self.embedded { ", embedded" } else { "" },
            self.records,
            self.record_size,
            self.partitions,
            self.producers,
            self.consumers,
            self.batch_bytes,
            self.acks,
            rate
        );
        println!(
            "  throughput: {:.1} MB/s, {:.0} records/s over {:.2} s",
            self.mb_per_s, self.records_per_s, self.measured_s
        );
        if let Some(l) = &self.latency {
            let what = match self.mode.as_str() {
                "e2e" => "delivery",
                "consume" => "fetch",
                _ => "ack",
            };
            println!(
                "  {what} latency µs: p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {} (mean {:.0}, {} samples)",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us, l.max_us, l.mean_us, l.count
            );
        }
        if let Some(d) = &self.disk {
            println!(
                "  baseline disk ({} B blocks{}): write {:.0} MB/s, read {:.0} MB/s",
                d.block_bytes,
                if d.fsync_each { " + fdatasync each" } else { "" },
                d.write_mb_s,
                d.read_mb_s
            );
        }
        for n in &self.net {
            println!(
                "  baseline net {}: bulk {:.0} MB/s, 64 B round trip p50 {} µs p99 {} µs",
                n.transport, n.bulk_mb_s, n.rtt_p50_us, n.rtt_p99_us
            );
        }
        if let Some(c) = &self.batch_cache {
            let ratio = c.hit_ratio().map_or("-".into(), |r| format!("{:.1} %", r * 100.0));
            println!(
                "  batch cache ({} MiB): {ratio} of fetched bytes from memory ({:.0} MB), {:.0} MB read from the device, {} evictions",
                c.bytes_max >> 20,
                c.hit_bytes as f64 / 1e6,
                c.miss_bytes as f64 / 1e6,
                c.evictions
            );
        }
        if let Some(r) = self.ratio_to_disk {
            let what = if self.mode == "consume" { "read" } else { "write" };
            println!("  ratio to raw disk {what}: {r:.2}");
        }
    }
}

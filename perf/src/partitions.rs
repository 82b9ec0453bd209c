//! `weir-perf partitions`: what idle partitions cost. Starts a fresh embedded node for each
//! count, creates one topic of that many partitions, and reports how long the creation took and
//! what the process's resident memory and open files grew by. The node runs in this process, so
//! `/proc/self` is the node's (plus a small client).

use crate::embedded::EmbeddedNode;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};
use weir_net::TopicConfig;
use weir_net::client::{Admin, Target};

/// One creation measured.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionsRun {
    pub partitions: u32,
    pub shards: usize,
    pub create_ms: u64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    /// RSS growth per partition, after the node had `idle_ms` to give idle buffers back.
    pub rss_per_partition_bytes: u64,
    pub fds_before: usize,
    pub fds_after: usize,
    pub fd_limit: u64,
    /// `ok`, or the node's answer to the creation.
    pub outcome: String,
    /// Whether the node lists the topic afterwards: a refused creation must leave none.
    pub topic_exists: bool,
}

/// Resident bytes of this process (VmRSS).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or(0) * 1024
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Raises the soft limit on open files to the hard one; returns the limit now in force. Each
/// partition keeps its segment and index files open, so the default soft limit caps a test of
/// many partitions before the node does.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            lim = raised;
        }
    }
    lim.rlim_cur
}

/// Creates a topic of `partitions` partitions on a fresh node with `shards` shards in `dir`.
/// `idle_ms` is waited after the creation before memory is read, so the node's upkeep can give
/// back buffers it keeps only while partitions are written.
pub fn measure(dir: &Path, shards: usize, partitions: u32, idle_ms: u64) -> Result<PartitionsRun, String> {
    let fd_limit = raise_fd_limit();
    let node = EmbeddedNode::start(dir, shards, true)?;
    let rt =
        tokio_rt::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let target = Target::tcp(&node.addr);
    let (rss_before, fds_before) = (rss_bytes(), open_fds());
    let (create_ms, outcome, topic_exists) = rt.block_on(async {
        let mut admin = Admin::connect(&target).await.map_err(|e| e.to_string())?;
        let start = Instant::now();
        let r = admin.create_topic("wide", partitions, TopicConfig::default()).await;
        let ms = start.elapsed().as_millis() as u64;
        let exists = admin.describe_topic("wide").await.is_ok();
        Ok::<_, String>((ms, r.map_or_else(|e| e.to_string(), |()| "ok".to_owned()), exists))
    })?;
    std::thread::sleep(Duration::from_millis(idle_ms));
    let (rss_after, fds_after) = (rss_bytes(), open_fds());
    drop(node);
    Ok(PartitionsRun {
        partitions,
        shards,
        create_ms,
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        rss_per_partition_bytes: rss_after.saturating_sub(rss_before) / u64::from(partitions.max(1)),
        fds_before,
        fds_after,
        fd_limit,
        outcome,
        topic_exists,
    })
}

impl PartitionsRun {
    pub fn print(&self) {
        // A refusal names every partition that failed: a few are enough here.
        let outcome: String = self.outcome.chars().take(200).collect();
        println!(
            "partitions {} on {} shard(s): created in {:.2} s ({}; topic listed after: {}); RSS {:.1} -> {:.1} MiB, {:.1} KiB a partition; \
             open files {} -> {} of {}",
            self.partitions,
            self.shards,
            self.create_ms as f64 / 1000.0,
            outcome,
            self.topic_exists,
            self.rss_before_bytes as f64 / f64::from(1 << 20),
            self.rss_after_bytes as f64 / f64::from(1 << 20),
            self.rss_per_partition_bytes as f64 / 1024.0,
            self.fds_before,
            self.fds_after,
            self.fd_limit,
        );
    }
}

//! The workloads: produce (closed loop, or open loop at a rate), catch-up consume, and end to end
//! (produce → consume delivery, timed by the intended send time carried in each record).

use crate::latency::Latency;
use crate::rate::{Rate, Schedule};
use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weir_net::client::{
    Admin, ClientError, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Seek, Target,
};
use weir_net::{Acks, TopicConfig};

/// What a run sends and how.
#[derive(Debug, Clone)]
pub struct Workload {
    pub target: Target,
    pub topic: String,
    pub partitions: u32,
    pub record_size: usize,
    /// Keys cycle over this many values; 0 sends no keys.
    pub keys: u64,
    pub batch_bytes: usize,
    pub linger_ms: u64,
    pub acks: Acks,
    pub idempotent: bool,
    pub producers: usize,
    pub consumers: usize,
    pub duration: Duration,
    /// Time at the start whose records are sent but not measured.
    pub warmup: Duration,
    /// Open loop at this rate; closed loop (bounded by `in_flight`) without.
    pub rate: Option<Rate>,
    /// Closed loop: send exactly this many records instead of running for `duration`.
    pub records: Option<u64>,
    /// Closed loop: records sent and not yet acknowledged, at most, over all producers.
    pub in_flight: usize,
    /// Consume: bytes to write first when the topic is empty.
    pub fill_bytes: u64,
}

/// What a run measured: records and value bytes in the measured window, how long the window
/// lasted, and latencies (acknowledgement for produce, delivery for e2e).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub latency: Option<Latency>,
}

/// A live count of records done, for the progress bar.
pub type Progress = Arc<AtomicU64>;

/// Bytes at the start of an e2e record's value: the intended send time, in ns since the run's base.
const STAMP_BYTES: usize = 8;

pub async fn ensure_topic(target: &Target, topic: &str, partitions: u32) -> Result<(), ClientError> {
    let mut admin = Admin::connect(target).await?;
    match admin.create_topic(topic, partitions, TopicConfig::default()).await {
        Ok(()) | Err(ClientError::Server { code: weir_net::ErrorCode::TopicAlreadyExists, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A key spreading over `keys` values.
fn key(n: u64, keys: u64) -> Option<Vec<u8>> {
    (keys > 0).then(|| (n % keys).to_le_bytes().to_vec())
}

struct Sent {
    records: u64,
    bytes: u64,
    latency: Latency,
    last: Option<Instant>,
}

/// One producer's loop. Open loop: record `n` is due at its scheduled time and its latency runs
/// from then, however late it actually went out. Closed loop: a new record goes out when fewer
/// than the producer's share of `in_flight` are unanswered.
async fn produce_one(
    w: Arc<Workload>,
    index: usize,
    start: Instant,
    base: Instant,
    stamp: bool,
    progress: Progress,
) -> Result<Sent, ClientError> {
    let config = ProducerConfig {
        batch_bytes: w.batch_bytes,
        linger_ms: w.linger_ms,
        acks: w.acks,
        idempotent: w.idempotent,
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&w.target, config).await?;
    let measure_from = if w.records.is_some() { start } else { start + w.warmup };
    let end = start + w.warmup + w.duration;
    let share =
        |total: u64| total / w.producers as u64 + u64::from((index as u64) < total % w.producers as u64);
    let limit = w.records.map(share);
    let schedule = w.rate.map(|r| Schedule::new(start, r.split(w.producers).records_per_sec(w.record_size)));
    let in_flight_max = (w.in_flight / w.producers).max(1);
    let mut value = vec![b'x'; w.record_size];
    let mut pending = FuturesUnordered::new();
    let mut sent = Sent { records: 0, bytes: 0, latency: Latency::default(), last: None };
    let mut n = 0u64;
    loop {
        let now = Instant::now();
        let done_sending = match limit {
            Some(l) => n >= l,
            None => now >= end,
        };
        if done_sending && pending.is_empty() {
            break;
        }
        let can_send = !done_sending && (schedule.is_some() || pending.len() < in_flight_max);
        let due = schedule.map(|s| s.due(n));
        if can_send && due.is_none_or(|d| d <= now) {
            let intended = due.unwrap_or(now);
            if stamp {
                let ns = intended.duration_since(base).as_nanos() as u64;
                value[..STAMP_BYTES].copy_from_slice(&ns.to_le_bytes());
            }
            let record = ProducerRecord {
                topic: w.topic.clone(),
                key: key(n.wrapping_add(index as u64 * 7919), w.keys),
                value: Some(value.clone()),
                ..ProducerRecord::default()
            };
            let ack = producer.enqueue(record).await?;
            pending.push(async move { (intended, ack.await) });
            n += 1;
            continue;
        }
        let wake = due.filter(|_| can_send).unwrap_or(now + Duration::from_secs(3600));
        tokio_rt::select! {
            Some((intended, r)) = pending.next() => {
                r?;
                let now = Instant::now();
                progress.fetch_add(1, Ordering::Relaxed);
                if intended >= measure_from {
                    sent.latency.record(now - intended);
                    sent.records += 1;
                    sent.bytes += w.record_size as u64;
                    sent.last = Some(now);
                }
            }
            () = tokio_rt::time::sleep_until(wake.into()) => {}
        }
    }
    producer.close().await?;
    Ok(sent)
}

async fn produce_all(
    w: &Arc<Workload>,
    base: Instant,
    stamp: bool,
    progress: &Progress,
) -> Result<Outcome, ClientError> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..w.producers)
        .map(|i| tokio_rt::spawn(produce_one(w.clone(), i, start, base, stamp, progress.clone())))
        .collect();
    let mut out = Outcome { latency: Some(Latency::default()), ..Outcome::default() };
    let mut last = start;
    for t in tasks {
        let s = t.await.map_err(|e| ClientError::Io(std::io::Error::other(e)))??;
        out.records += s.records;
        out.bytes += s.bytes;
        out.latency.as_mut().expect("set above").merge(&s.latency);
        last = last.max(s.last.unwrap_or(start));
    }
    let measure_from = if w.records.is_some() { start } else { start + w.warmup };
    out.elapsed = last.saturating_duration_since(measure_from);
    Ok(out)
}

/// Produces as the workload says; latency is enqueue (or intended time) to acknowledgement.
pub async fn produce(w: Workload, progress: Progress) -> Result<Outcome, ClientError> {
    ensure_topic(&w.target, &w.topic, w.partitions).await?;
    produce_all(&Arc::new(w), Instant::now(), false, &progress).await
}

/// Partitions split over `n` readers, round robin.
fn split(partitions: &[u32], n: usize) -> Vec<Vec<u32>> {
    let n = n.clamp(1, partitions.len().max(1));
    let mut out = vec![Vec::new(); n];
    for (i, p) in partitions.iter().enumerate() {
        out[i % n].push(*p);
    }
    out
}

/// Reads the whole topic from its start, as a consumer catching up does (the node reads with
/// direct I/O, so the data comes from the disk, not a page cache). Fills the topic first with
/// `fill_bytes` when it is empty. Latency is each poll's that brought records: a fetch's round
/// trip (a catching-up consumer has one in flight) and the SDK's turning its batches into
/// records.
pub async fn consume(w: Workload, progress: Progress) -> Result<Outcome, ClientError> {
    ensure_topic(&w.target, &w.topic, w.partitions).await?;
    let mut admin = Admin::connect(&w.target).await?;
    let mut t = admin.describe_topic(&w.topic).await?;
    if t.partitions.iter().all(|p| p.log_end == p.log_start) {
        let fill = Workload {
            records: Some((w.fill_bytes / w.record_size.max(1) as u64).max(1)),
            rate: None,
            warmup: Duration::ZERO,
            ..w.clone()
        };
        produce_all(&Arc::new(fill), Instant::now(), false, &Arc::new(AtomicU64::new(0))).await?;
        t = admin.describe_topic(&w.topic).await?;
    }
    let ends: std::collections::HashMap<u32, u64> =
        t.partitions.iter().map(|p| (p.partition, p.log_end)).collect();
    let partitions: Vec<u32> =
        t.partitions.iter().filter(|p| p.log_end > p.log_start).map(|p| p.partition).collect();
    let start = Instant::now();
    let tasks: Vec<_> = split(&partitions, w.consumers)
        .into_iter()
        .map(|mine| {
            let (w, ends, progress) = (w.clone(), ends.clone(), progress.clone());
            tokio_rt::spawn(async move {
                let config = ConsumerConfig {
                    fetch_bytes_max: w.batch_bytes.max(1 << 20) as u32,
                    ..ConsumerConfig::default()
                };
                let mut c = Consumer::connect(&w.target, config).await?;
                for &p in &mine {
                    c.assign(&w.topic, p, Seek::Earliest).await?;
                }
                let (mut records, mut bytes, mut latency) = (0u64, 0u64, Latency::default());
                while mine.iter().any(|p| c.position(&w.topic, *p).unwrap_or(0) < ends[p]) {
                    let before = records;
                    let asked = Instant::now();
                    let polled = c.poll(500).await?;
                    if !polled.is_empty() {
                        latency.record(asked.elapsed());
                    }
                    for r in polled {
                        if r.offset < ends[&r.partition] {
                            records += 1;
                            bytes += r.value.as_ref().map_or(0, Vec::len) as u64;
                        }
                    }
                    // The bar counts every consumer's records, not the one's furthest along.
                    progress.fetch_add(records - before, Ordering::Relaxed);
                }
                Ok::<_, ClientError>((records, bytes, latency, Instant::now()))
            })
        })
        .collect();
    let mut out = Outcome { latency: Some(Latency::default()), ..Outcome::default() };
    let mut last = start;
    for t in tasks {
        let (r, b, l, done) = t.await.map_err(|e| ClientError::Io(std::io::Error::other(e)))??;
        out.records += r;
        out.bytes += b;
        out.latency.as_mut().expect("set above").merge(&l);
        last = last.max(done);
    }
    out.elapsed = last - start;
    Ok(out)
}

/// Produces at the workload's rate while consumers, assigned at the end of the log first, read
/// every record; latency is a record's intended send time to its arrival at a consumer.
pub async fn e2e(w: Workload, progress: Progress) -> Result<Outcome, ClientError> {
    if w.record_size < STAMP_BYTES {
        return Err(ClientError::InvalidArgument(format!(
            "e2e records carry a timestamp: --record-size must be at least {STAMP_BYTES}"
        )));
    }
    if w.rate.is_none() {
        return Err(ClientError::InvalidArgument("e2e runs open loop: give --rate".into()));
    }
    ensure_topic(&w.target, &w.topic, w.partitions).await?;
    let base = Instant::now();
    let partitions: Vec<u32> = (0..w.partitions).collect();
    let done_producing = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    // Consumers start first, at the end of the log; the run begins once all are placed.
    let groups = split(&partitions, w.consumers);
    let placed = Arc::new(tokio_rt::sync::Barrier::new(groups.len() + 1));
    let measure_from_ns = Arc::new(AtomicU64::new(u64::MAX));
    let consumers: Vec<_> = groups
        .into_iter()
        .map(|mine| {
            let (w, placed, done_producing) = (w.clone(), placed.clone(), done_producing.clone());
            let (produced, consumed, progress) = (produced.clone(), consumed.clone(), progress.clone());
            let measure_from_ns = measure_from_ns.clone();
            tokio_rt::spawn(async move {
                let mut c = Consumer::connect(&w.target, ConsumerConfig::default()).await?;
                for &p in &mine {
                    c.assign(&w.topic, p, Seek::Latest).await?;
                }
                placed.wait().await;
                let mut latency = Latency::default();
                let (mut records, mut bytes) = (0u64, 0u64);
                let mut idle_since: Option<Instant> = None;
                loop {
                    let batch = c.poll(50).await?;
                    let now_ns = base.elapsed().as_nanos() as u64;
                    let from = measure_from_ns.load(Ordering::Relaxed);
                    for r in &batch {
                        let v = r.value.as_deref().unwrap_or_default();
                        let Some(stamp) = v.get(..STAMP_BYTES) else { continue };
                        let sent = u64::from_le_bytes(stamp.try_into().expect("8 bytes"));
                        if sent >= from {
                            latency.record_us(now_ns.saturating_sub(sent) / 1000);
                            records += 1;
                            bytes += v.len() as u64;
                        }
                    }
                    let total =
                        consumed.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64;
                    progress.store(total, Ordering::Relaxed);
                    if done_producing.load(Ordering::SeqCst) {
                        if total >= produced.load(Ordering::SeqCst) {
                            break;
                        }
                        // Every acknowledged record is visible; give stragglers a bounded time.
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if batch.is_empty() && since.elapsed() > Duration::from_secs(10) {
                            return Err(ClientError::InvalidArgument(format!(
                                "consumers read {total} of {} records",
                                produced.load(Ordering::SeqCst)
                            )));
                        }
                    }
                }
                Ok::<_, ClientError>((records, bytes, latency))
            })
        })
        .collect();
    placed.wait().await;
    let start_ns = base.elapsed().as_nanos() as u64;
    measure_from_ns.store(start_ns + w.warmup.as_nanos() as u64, Ordering::Relaxed);
    let w = Arc::new(w);
    // Counts every acknowledged record, warm-up included: the consumers must see them all.
    let acknowledged = Arc::new(AtomicU64::new(0));
    let sent = produce_all(&w, base, true, &acknowledged).await;
    let sent = match sent {
        Ok(s) => s,
        Err(e) => {
            done_producing.store(true, Ordering::SeqCst);
            return Err(e);
        }
    };
    produced.store(acknowledged.load(Ordering::SeqCst), Ordering::SeqCst);
    done_producing.store(true, Ordering::SeqCst);
    let mut out = Outcome { latency: Some(Latency::default()), elapsed: sent.elapsed, ..Outcome::default() };
    for c in consumers {
        let (r, b, l) = c.await.map_err(|e| ClientError::Io(std::io::Error::other(e)))??;
        out.records += r;
        out.bytes += b;
        out.latency.as_mut().expect("set above").merge(&l);
    }
    Ok(out)
}

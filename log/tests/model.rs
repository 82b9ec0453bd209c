//! Any sequence of append / flush / roll / truncate / retention / DeleteRecords / crash / reopen
//! leaves a log equal to a plain in-memory model up to the durable offset; and whatever a fetch
//! reads from the shard's batch cache is what the model holds and, byte for byte, what the
//! files hold.

mod common;

use common::{batch, records, records_of_bytes, run_until_held};
use futures::executor::block_on;
use proptest::prelude::*;
use weir_log::storage::cached::{CachedStorage, FdCache};
use weir_log::storage::mem::{CrashMode, MemFile, MemStorage};
use weir_log::{BatchCache, FlushPolicy, LogConfig, PartitionLog, Tick};

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
    },
    WriteOut,
    Flush,
    Roll,
    /// Truncate at this fraction of the way through the log.
    Truncate {
        per_mille: u64,
    },
    Retention {
        now: u64,
    },
    /// Deletes the records below this fraction of the way through the log.
    DeleteRecords {
        per_mille: u64,
    },
    Crash {
        torn: bool,
        seed: u64,
    },
    Reopen,
    /// The periodic chore a second after the last one: with no append since the one before,
    /// the appenders give their write buffers back and keep only their tail blocks.
    Tick,
    /// Prepares a sync (unless one is pending) and keeps it, to run later: the operations in
    /// between run while it would be in flight without the log locked.
    SyncBegin,
    /// Runs the pending sync, if any, and records it.
    SyncEnd,
    /// Reads ahead from this fraction of the way through the log (unless a read is pending)
    /// and keeps the bytes: the operations until `ReadAheadEnd` run while the read would be in
    /// flight, a crash or reopen included.
    ReadAheadBegin {
        per_mille: u64,
    },
    /// Hands the pending read ahead's bytes, if any, to the log there is now.
    ReadAheadEnd,
    /// Runs the operation until its `io_in`-th write or sync, which never completes, and drops
    /// it there: the operation is cancelled at an await point. With `crash_seed`, the machine
    /// then crashes (torn) before the log is reopened.
    Cancel {
        op: Box<Op>,
        io_in: u32,
        crash_seed: Option<u64>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (1usize..12, 0usize..600).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        2 => Just(Op::WriteOut),
        3 => Just(Op::Flush),
        1 => Just(Op::Roll),
        1 => (0u64..1000).prop_map(|per_mille| Op::Truncate { per_mille }),
        1 => (0u64..4000).prop_map(|now| Op::Retention { now }),
        1 => (0u64..1000).prop_map(|per_mille| Op::DeleteRecords { per_mille }),
        2 => (any::<bool>(), any::<u64>()).prop_map(|(torn, seed)| Op::Crash { torn, seed }),
        1 => Just(Op::Reopen),
        3 => Just(Op::Tick),
        2 => Just(Op::SyncBegin),
        2 => Just(Op::SyncEnd),
        1 => (0u64..1000).prop_map(|per_mille| Op::ReadAheadBegin { per_mille }),
        1 => Just(Op::ReadAheadEnd),
    ]
}

/// Any operation but a crash or reopen, or that operation cancelled midway.
fn op_or_cancelled() -> impl Strategy<Value = Op> {
    let cancellable = prop_oneof![
        4 => (1usize..12, 0usize..600).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        1 => Just(Op::WriteOut),
        2 => Just(Op::Flush),
        1 => Just(Op::Roll),
        1 => (0u64..1000).prop_map(|per_mille| Op::Truncate { per_mille }),
        1 => (0u64..4000).prop_map(|now| Op::Retention { now }),
    ];
    prop_oneof![
        8 => op(),
        1 => (cancellable, 1u32..6, proptest::option::of(any::<u64>()))
            .prop_map(|(op, io_in, crash_seed)| Op::Cancel { op: Box::new(op), io_in, crash_seed }),
    ]
}

fn config(env: &Env) -> LogConfig {
    LogConfig {
        segment_bytes_max: 12 << 10,
        segment_ms: u64::MAX,
        index_interval_bytes: 1024,
        batch_bytes_max: 8 << 10,
        // Twice the alignment, so a release keeps a tail block smaller than a buffer and the next
        // append copies it back.
        write_buffer_bytes: 8192,
        write_behind_buffers_max: 2,
        preallocate_bytes: 8192,
        flush: FlushPolicy::Sync,
        retention_ms: Some(1000),
        retention_bytes: Some(30 << 10),
        batch_cache: env.batch_cache.clone(),
    }
}

/// The model: batches as (base offset, record values), the log start, what is durable.
#[derive(Debug, Default)]
struct Model {
    batches: Vec<(u64, Vec<Vec<u8>>)>,
    start: u64,
    end: u64,
    durable: u64,
    /// Set when a sync run apart from the log (`SyncEnd`) may have made more durable than the
    /// log claims (it syncs what was written since it was prepared too), until everything is
    /// synced again.
    synced_beyond: bool,
    /// The clock `Tick` passes, a second further each time.
    clock: u64,
}

impl Model {
    fn cut_to(&mut self, end: u64) {
        self.batches.retain(|(b, _)| *b < end);
        assert!(self.batches.last().is_none_or(|(b, v)| b + v.len() as u64 == end), "cut inside a batch");
        self.end = end;
        self.durable = self.durable.min(end);
    }

    fn is_boundary(&self, offset: u64) -> bool {
        offset == self.end || self.batches.iter().any(|(b, _)| *b == offset)
    }
}

async fn check(log: &mut PartitionLog<Dir>, m: &Model) {
    assert_eq!(log.next_offset(), m.end);
    assert_eq!(log.log_start(), m.start);
    let mut got = Vec::new();
    let mut offset = log.log_start();
    while offset < log.next_offset() {
        let f = log.read(offset, 5000).await.expect("read");
        if f.is_empty() {
            break; // not yet written out
        }
        got.extend(records(&f).into_iter().filter(|(o, _)| *o >= m.start));
        offset = f.next_offset;
    }
    let want: Vec<(u64, Vec<u8>)> = m
        .batches
        .iter()
        .flat_map(|(b, vals)| vals.iter().enumerate().map(move |(i, v)| (b + i as u64, v.clone())))
        .filter(|(o, _)| *o >= m.start)
        .take(got.len())
        .collect();
    assert_eq!(got, want);
    check_fetch(log, m).await;
}

/// Fetches from the log start to the end, as a consumer would, reading ahead of it as a node
/// does: what the cache and the reads ahead answer holds the model's records, and the files'
/// bytes. What was read ahead stays with the log, so later operations meet it.
async fn check_fetch(log: &mut PartitionLog<Dir>, m: &Model) {
    let mut offset = log.log_start();
    while offset < log.next_offset() {
        let max_bytes = 3000 + (offset as usize % 7) * 1000;
        let plan = log.plan_fetch(offset, max_bytes, u64::MAX).expect("plan").expect("below the end");
        let cached = plan.is_cached();
        let fetch = plan.execute().await.expect("fetch");
        let bytes = fetch.bytes;
        if bytes.is_empty() {
            assert!(!cached, "the cache answers with batches");
            break; // not yet written out
        }
        let got = records_of_bytes(&bytes);
        let next = got.last().map_or(offset, |(o, _)| o + 1);
        assert_eq!(next, fetch.next_offset);
        let want: Vec<(u64, Vec<u8>)> = m
            .batches
            .iter()
            .flat_map(|(b, vals)| vals.iter().enumerate().map(move |(i, v)| (b + i as u64, v.clone())))
            .filter(|(o, _)| *o >= got[0].0 && *o < next)
            .collect();
        assert_eq!(got, want, "fetch at {offset} (cached: {cached})");
        let file = log.read(offset, bytes.len()).await.expect("read");
        let common = file.bytes().len().min(bytes.len());
        assert_eq!(file.bytes()[..common], bytes[..common], "a fetch answers the stored bytes");
        if fetch.from_device
            && let Some((plan, generation, start)) = log.plan_read_ahead(next, 2 * max_bytes)
        {
            let read = plan.execute().await.expect("read ahead");
            log.complete_read_ahead(bytes::Bytes::copy_from_slice(read.bytes()), generation, start);
        }
        offset = next;
    }
}

/// Applies one operation to the log and the model (not `Cancel`: see [`cancel`]).
async fn apply(op: Op, log: &mut PartitionLog<Dir>, m: &mut Model, st: &Env, tag: &mut u64) {
    match op {
        Op::Append { records, value_len } => {
            *tag += 1;
            let b = batch(*tag, records, value_len, *tag as i64 * 10);
            let a = log.append(&b.view(), 0, 0).await.unwrap();
            assert_eq!(a.base_offset, m.end);
            let vals = records_of(&b);
            m.end += vals.len() as u64;
            m.batches.push((a.base_offset, vals));
        }
        Op::WriteOut => log.write_out().await.unwrap(),
        Op::Flush => {
            m.durable = log.flush().await.unwrap();
            assert_eq!(m.durable, m.end);
            m.synced_beyond = false;
        }
        Op::Roll => {
            log.roll(0).await.unwrap();
            m.durable = m.end;
            m.synced_beyond = false;
        }
        Op::Truncate { per_mille } => {
            let target = truncation_target(m, per_mille);
            let end = log.truncate_to(target, 0).await.unwrap();
            assert!(end <= target && m.is_boundary(end), "cut at {end} for {target}");
            m.cut_to(end);
            if end < m.start {
                m.start = end;
            }
        }
        Op::Retention { now } => {
            let deleted = log.enforce_retention(now).await.unwrap();
            // Segments wholly below a start that DeleteRecords set leave it where it is.
            if !deleted.is_empty() && log.log_start() != m.start {
                assert!(log.log_start() > m.start && m.is_boundary(log.log_start()));
                m.start = log.log_start();
                m.batches.retain(|(b, _)| *b >= m.start);
            }
        }
        Op::DeleteRecords { per_mille } => {
            let target = truncation_target(m, per_mille);
            assert_eq!(log.delete_records(target).await.unwrap(), target.max(m.start));
            // The model keeps the deleted batches: a crash or a cut may bring the start back
            // to where one of them began.
            m.start = m.start.max(target);
        }
        Op::Crash { torn, seed } => {
            st.crash(if torn { CrashMode::Torn { seed } } else { CrashMode::LoseUnsynced });
            let (reopened, report) = PartitionLog::open(st.dir(), config(st), 0).await.unwrap();
            *log = reopened;
            let end = log.next_offset();
            // Everything durable survives; of the rest, at most a prefix of batches.
            assert!(end >= m.durable && end <= m.end && m.is_boundary(end), "{end} vs {m:?} {report:?}");
            if !torn && !m.synced_beyond {
                assert_eq!(end, m.durable, "a clean loss keeps exactly the durable prefix");
            }
            m.synced_beyond = false;
            m.cut_to(end);
            m.durable = end;
            // A start past what survived comes back to the end.
            m.start = m.start.min(end);
        }
        Op::Reopen => {
            let old = std::mem::replace(
                log,
                PartitionLog::open(Env::new(1, None).dir(), config(st), 0).await.unwrap().0,
            );
            old.close().await.unwrap();
            let (reopened, report) = PartitionLog::open(st.dir(), config(st), 0).await.unwrap();
            assert_eq!(report.truncated, None);
            *log = reopened;
            m.durable = m.end;
        }
        Op::Tick => {
            m.clock += 1000;
            let tick = log.tick(m.clock).await.unwrap();
            assert_eq!(tick, Tick::default(), "no interval flush and no roll by age here");
        }
        Op::Cancel { .. } | Op::SyncBegin | Op::SyncEnd | Op::ReadAheadBegin { .. } | Op::ReadAheadEnd => {
            unreachable!("run handles {op:?}")
        }
    }
}

fn truncation_target(m: &Model, per_mille: u64) -> u64 {
    m.start + (m.end - m.start) * per_mille / 1000
}

/// Runs `op` and cancels it at its `io_in`-th write or sync. A cancelled operation leaves a log
/// that refuses to go on until it is reopened; reopened, it holds everything that was durable,
/// and of the rest at most a prefix of whole batches (the cancelled append's among them), also
/// when the machine crashed before the reopen.
async fn cancel(
    op: Op,
    io_in: u32,
    crash_seed: Option<u64>,
    log: &mut PartitionLog<Dir>,
    m: &mut Model,
    st: &Env,
    tag: &mut u64,
) {
    st.faults().hold_io_in.set(io_in);
    st.faults().held.set(false);
    // What the operation may lower durability to, and the batch an append would add.
    let floor = match &op {
        Op::Truncate { per_mille } => {
            // The cut lands at the start of the batch holding the target.
            let target = truncation_target(m, *per_mille);
            let cut = m.batches.iter().map(|(b, _)| *b).filter(|&b| b <= target).max().unwrap_or(target);
            m.durable.min(if target == m.end { target } else { cut })
        }
        _ => m.durable,
    };
    let name = format!("{op:?} at I/O {io_in}");
    let next_tag = *tag + 1;
    let appending = match &op {
        Op::Append { records, value_len } => {
            Some(batch(next_tag, *records, *value_len, next_tag as i64 * 10))
        }
        _ => None,
    };
    let flushing = matches!(op, Op::Flush);
    let done = run_until_held(apply(op, log, m, st, tag), st).is_some();
    st.faults().hold_io_in.set(0);
    if done {
        return;
    }
    if flushing && !log.is_failed() {
        // Dropped while its fdatasync was in flight, a flush changed nothing: the log goes on.
        assert_eq!(log.durable_offset(), m.durable, "a dropped sync claims nothing");
        return;
    }
    assert!(log.is_failed(), "a cancelled operation leaves the log failed");
    assert!(matches!(log.flush().await, Err(weir_log::LogError::Failed)));
    if let Some(b) = appending {
        *tag = next_tag;
        let vals = records_of(&b);
        m.batches.push((m.end, vals.clone()));
        m.end += vals.len() as u64;
    }
    if let Some(seed) = crash_seed {
        st.crash(CrashMode::Torn { seed });
    }
    let (reopened, report) = PartitionLog::open(st.dir(), config(st), 0).await.unwrap();
    *log = reopened;
    let end = log.next_offset();
    assert!(
        end >= floor && end <= m.end && m.is_boundary(end),
        "{name}: end {end}, model [{}, {}) durable {}, floor {floor}: {report:?}",
        m.start,
        m.end,
        m.durable
    );
    m.cut_to(end);
    m.start = m.start.min(end);
    // A cancelled retention may have deleted segments at the front.
    if log.log_start() > m.start {
        assert!(m.is_boundary(log.log_start()), "log start {} vs {m:?}", log.log_start());
        m.start = log.log_start();
        m.batches.retain(|(b, _)| *b >= m.start);
    }
    m.durable = end;
}

/// The log's directory: an in-memory one behind a descriptor cache, small enough in most runs
/// that files are closed and reopened between operations.
type Dir = CachedStorage<MemStorage>;

struct Env {
    st: MemStorage,
    cache: FdCache<MemFile>,
    batch_cache: Option<BatchCache>,
}

impl Env {
    fn new(open_files_max: usize, batch_cache_bytes_max: Option<usize>) -> Self {
        Self {
            st: MemStorage::new(),
            cache: MemStorage::fd_cache(open_files_max),
            batch_cache: batch_cache_bytes_max.map(BatchCache::new),
        }
    }

    /// The directory as a freshly started process sees it: no handle of an earlier one.
    fn dir(&self) -> Dir {
        CachedStorage::new(self.st.clone(), self.cache.clone())
    }
}

impl std::ops::Deref for Env {
    type Target = MemStorage;
    fn deref(&self) -> &MemStorage {
        &self.st
    }
}

fn run(ops: Vec<Op>, open_files_max: usize, batch_cache_bytes_max: Option<usize>) {
    block_on(async {
        let st = Env::new(open_files_max, batch_cache_bytes_max);
        let (mut log, _) = PartitionLog::open(st.dir(), config(&st), 0).await.unwrap();
        let mut m = Model::default();
        let mut tag = 0u64;
        let mut pending = None;
        let mut reading = None;
        for op in ops {
            // Between operations no descriptor is in flight, and the bound holds exactly; but for
            // a pending sync's file that a truncation removed, which keeps its descriptor.
            assert!(
                st.open_handles()
                    <= open_files_max + usize::from(pending.is_some()) + usize::from(reading.is_some()),
                "{} open: {:?}",
                st.open_handles(),
                st.cache.stats()
            );
            // A crash or reopen (a cancelled operation reopens) ends the process or the log the
            // pending sync belonged to.
            if matches!(op, Op::Crash { .. } | Op::Reopen | Op::Cancel { .. }) {
                pending = None;
            }
            match op {
                Op::SyncBegin => {
                    if pending.is_none() {
                        pending = log.prepare_sync().await.unwrap();
                    }
                }
                Op::SyncEnd => {
                    if let Some(sync) = pending.take() {
                        m.synced_beyond = true;
                        let result = sync.run().await;
                        log.complete_sync(sync, result).unwrap();
                    }
                }
                Op::ReadAheadBegin { per_mille } => {
                    if reading.is_none()
                        && let Some((plan, generation, start)) =
                            log.plan_read_ahead(truncation_target(&m, per_mille), 6000)
                        && let Ok(read) = plan.execute().await
                    {
                        reading = Some((bytes::Bytes::copy_from_slice(read.bytes()), generation, start));
                    }
                }
                // Into whatever log there is now: one cut, cleaned or reopened since refuses it.
                Op::ReadAheadEnd => {
                    if let Some((bytes, generation, start)) = reading.take() {
                        log.complete_read_ahead(bytes, generation, start);
                    }
                }
                Op::Cancel { op, io_in, crash_seed } => {
                    cancel(*op, io_in, crash_seed, &mut log, &mut m, &st, &mut tag).await
                }
                op => apply(op, &mut log, &mut m, &st, &mut tag).await,
            }
            // The log's durable claim never goes back (but for truncation, which the model
            // applied already), and a crash must honour it.
            assert!(log.durable_offset() >= m.durable.min(log.next_offset()));
            m.durable = log.durable_offset();
            check(&mut log, &m).await;
        }
        log.flush().await.unwrap();
        check(&mut log, &m).await;
        let end = log.next_offset();
        assert_eq!(end, m.end);
        if let Some(cache) = &st.batch_cache {
            let stats = cache.stats();
            assert!(stats.bytes <= stats.bytes_max, "{stats:?}");
            drop(log);
            // Its memory stays for reuse.
            let stats = cache.stats();
            assert!(
                stats.batches == 0 && stats.bytes <= stats.bytes_max,
                "a dropped log's batches go: {stats:?}"
            );
        }
    });
}

fn records_of(b: &weir_log::batch::Batch) -> Vec<Vec<u8>> {
    b.view().records().map(|r| r.value.unwrap().to_vec()).collect()
}

/// Mostly a cache too small for the log's files (data, index, epochs, sealed segments), so
/// they are closed and reopened all the time; sometimes one that never closes any.
fn open_files_max() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(1000), 3 => 1usize..5]
}

/// Mostly no batch cache, or one of a few 16 KiB chunks (so that chunks are evicted and reused
/// all the time); sometimes one that holds every batch.
fn batch_cache_bytes_max() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![2 => Just(None), 3 => (0usize..100_000).prop_map(Some), 1 => Just(Some(8 << 20))]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(
        ops in proptest::collection::vec(op(), 1..80),
        open_files_max in open_files_max(),
        batch_cache_bytes_max in batch_cache_bytes_max(),
    ) {
        run(ops, open_files_max, batch_cache_bytes_max);
    }

    #[test]
    fn log_matches_model_when_operations_are_cancelled(
        ops in proptest::collection::vec(op_or_cancelled(), 1..80),
        open_files_max in open_files_max(),
        batch_cache_bytes_max in batch_cache_bytes_max(),
    ) {
        run(ops, open_files_max, batch_cache_bytes_max);
    }
}

//! The partition log on real files with O_DIRECT through glommio, and a crash test that kills a
//! child process with SIGKILL while it appends.

#![cfg(feature = "dma")]

mod common;

use common::{batch, read_skipping, records};
use glommio::{LocalExecutorBuilder, Placement};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use weir_log::batch::{BatchBuilder, ProducerStamp, Record};
use weir_log::storage::dma::DmaStorage;
use weir_log::{FlushPolicy, LogConfig, PartitionLog};

/// Runs `f` on a fresh glommio executor with 1 MiB of registered I/O memory (RLIMIT_MEMLOCK
/// is 8 MiB and glommio registers it on three rings).
fn on_glommio<T: Send + 'static>(f: impl AsyncFnOnce() -> T + Send + 'static) -> T {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .spawn(move || async move { f().await })
        .expect("executor starts")
        .join()
        .expect("executor thread")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 1 << 20,
        batch_bytes_max: 256 << 10,
        write_buffer_bytes: 64 << 10,
        preallocate_bytes: 1 << 20,
        retention_ms: None,
        ..LogConfig::default()
    }
}

async fn read_all(log: &PartitionLog<DmaStorage>) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start();
    while offset < log.next_offset() {
        let f = log.read(offset, 256 << 10).await.unwrap();
        assert!(!f.is_empty(), "no progress at {offset}");
        out.extend(records(&f));
        offset = f.next_offset;
    }
    out
}

#[test]
fn direct_io_round_trip_reopen_and_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    on_glommio(async move || {
        DmaStorage::probe(&path).await.unwrap();
        let (mut log, _) = PartitionLog::open(DmaStorage::new(&path).unwrap(), config(), 0).await.unwrap();
        for t in 0..400u64 {
            let b = batch(t, 1 + (t % 7) as usize, 100 + (t as usize * 37) % 3000, t as i64);
            log.append(&b.view(), 0, 0).await.unwrap();
        }
        let end = log.flush().await.unwrap();
        assert!(log.segment_bases().len() > 2);
        let all = read_all(&log).await;
        assert_eq!(all.len() as u64, end);
        assert!(all.iter().enumerate().all(|(i, (o, _))| *o == i as u64));
        assert_eq!(
            log.plan_timestamp_lookup(200)
                .execute()
                .await
                .unwrap()
                .map(|o| all[o as usize].1.starts_with(b"200:")),
            Some(true)
        );
        let active = *log.segment_bases().last().unwrap();
        log.close().await.unwrap();

        // Reopen: same records, nothing cut.
        let (log, report) = PartitionLog::open(DmaStorage::new(&path).unwrap(), config(), 0).await.unwrap();
        assert_eq!(report.truncated, None);
        assert_eq!(read_all(&log).await, all);
        drop(log);

        // A torn append: half a batch of garbage after the end of the active segment.
        let file = path.join(format!("{active:020}.log"));
        let mut bytes = std::fs::read(&file).unwrap();
        let good_len = bytes.len();
        let torn = batch(999, 20, 500, 0);
        bytes.extend_from_slice(&torn.as_bytes()[..torn.len() / 2]);
        std::fs::write(&file, &bytes).unwrap();
        let (mut log, report) =
            PartitionLog::open(DmaStorage::new(&path).unwrap(), config(), 0).await.unwrap();
        let cut = report.truncated.expect("the torn batch is reported");
        assert_eq!((cut.segment, cut.position, cut.offset), (active, good_len as u64, end));
        assert_eq!(std::fs::metadata(&file).unwrap().len(), good_len as u64);
        assert_eq!(read_all(&log).await, all);
        // And the log goes on from there.
        let a = log.append(&batch(1000, 3, 10, 0).view(), 0, 0).await.unwrap();
        assert_eq!(a.base_offset, end);
        log.close().await.unwrap();
    });
}

/// Child side of the crash test: appends with fsync-before-ack until killed, printing
/// `ack <last offset>` after each batch is durable. Each record's value is its own offset.
/// Does nothing unless started by the parent test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("WEIR_CRASH_CHILD_DIR") else { return };
    let seed: u64 = std::env::var("WEIR_CRASH_CHILD_SEED").unwrap().parse().unwrap();
    on_glommio(async move || {
        let path = Path::new(&dir);
        DmaStorage::probe(path).await.unwrap();
        let config = LogConfig { flush: FlushPolicy::Sync, segment_bytes_max: 256 << 10, ..config() };
        let (mut log, _) = PartitionLog::open(DmaStorage::new(path).unwrap(), config, 0).await.unwrap();
        let mut rng = seed;
        for _ in 0..1_000_000 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let n = 1 + (rng >> 33) as usize % 40;
            let mut b = BatchBuilder::new(1 << 20);
            let next = log.next_offset();
            let pad = vec![b'p'; (rng >> 40) as usize % 2000];
            for i in 0..n as u64 {
                let mut value = (next + i).to_le_bytes().to_vec();
                value.extend_from_slice(&pad);
                b.push(&Record { key: None, value: Some(&value), headers: &[], timestamp: 0 }).unwrap();
            }
            let a = log.append(&b.seal(ProducerStamp::default()).view(), 0, 0).await.unwrap();
            log.flush().await.unwrap();
            println!("ack {}", a.last_offset);
        }
    });
}

#[test]
fn sigkill_never_loses_an_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut max_acked: Option<u64> = None;
    for round in 0..20u64 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("WEIR_CRASH_CHILD_DIR", dir.path())
            .env("WEIR_CRASH_CHILD_SEED", (round * 7919 + 13).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill after a pseudo-random number of acknowledgements: a moment chosen by progress,
        // not by a sleep. Acks already in the pipe when the child dies still count.
        let kill_after = 1 + (round * 2654435761) % 150;
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acks = 0;
        for line in lines {
            let Some(n) = line.unwrap().strip_prefix("ack ").map(|n| n.parse::<u64>().unwrap()) else {
                continue;
            };
            assert!(max_acked.is_none_or(|m| n > m), "acks go forward");
            max_acked = Some(n);
            acks += 1;
            if acks == kill_after {
                child.kill().unwrap(); // SIGKILL
            }
        }
        assert!(acks >= kill_after, "child stopped on its own after {acks} acks");
        child.wait().unwrap();

        let path = dir.path().to_owned();
        let acked = max_acked.unwrap();
        let (end, report) = on_glommio(async move || {
            DmaStorage::probe(&path).await.unwrap();
            let config = LogConfig { segment_bytes_max: 256 << 10, ..config() };
            let (log, report) = PartitionLog::open(DmaStorage::new(&path).unwrap(), config, 0).await.unwrap();
            let all = read_all(&log).await;
            for (i, (offset, value)) in all.iter().enumerate() {
                assert_eq!(*offset, i as u64, "no gap");
                assert_eq!(value[..8], offset.to_le_bytes(), "record {offset} holds its own offset");
            }
            (log.next_offset(), report)
        });
        assert!(
            end > acked,
            "round {round}: acknowledged offset {acked} lost, log ends at {end} ({report:?})"
        );
    }
}

/// Writes a log of several segments and closes it, then flips a byte in the middle of the second
/// segment's file. Returns the segment bases, every record, and the offsets of the batch hit.
async fn written_and_flipped(path: &Path) -> (Vec<u64>, Vec<(u64, Vec<u8>)>, std::ops::Range<u64>) {
    let (mut log, _) = PartitionLog::open(DmaStorage::new(path).unwrap(), config(), 0).await.unwrap();
    for t in 0..400u64 {
        log.append(&batch(t, 10, 1000, t as i64).view(), 0, 0).await.unwrap();
    }
    log.flush().await.unwrap();
    let all = read_all(&log).await;
    let bases = log.segment_bases();
    assert!(bases.len() >= 3, "{bases:?}");
    log.close().await.unwrap();
    // A byte in the middle of the second segment, in a record's value.
    let file = path.join(format!("{:020}.log", bases[1]));
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    // Which batch holds it, and so which offsets are lost.
    let (mut pos, mut lost) = (0usize, None);
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 12..pos + 16].try_into().unwrap()) as usize;
        if (pos..pos + len).contains(&mid) {
            let base = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap());
            lost = Some(base..base + 10);
        }
        pos += len;
    }
    (bases, all, lost.unwrap())
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_file_costs_only_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    on_glommio(async move || {
        DmaStorage::probe(&path).await.unwrap();
        let (bases, all, lost) = written_and_flipped(&path).await;
        let intact: Vec<_> = all.iter().filter(|(o, _)| !lost.contains(o)).cloned().collect();

        // Its sealed index is intact: the segment is trusted, and reads find the damage.
        let (log, report) = PartitionLog::open(DmaStorage::new(&path).unwrap(), config(), 0).await.unwrap();
        assert_eq!((&report.truncated, log.segment_bases()), (&None, bases.clone()));
        assert_eq!(read_skipping(&log, 256 << 10).await, intact);
        drop(log);

        // With its index damaged too, recovery scans it, quarantines the batch and keeps the rest.
        let index = path.join(format!("{:020}.index", bases[1]));
        let mut ib = std::fs::read(&index).unwrap();
        let at = ib.len() - 10;
        ib[at] ^= 1;
        std::fs::write(&index, &ib).unwrap();
        let (log, report) = PartitionLog::open(DmaStorage::new(&path).unwrap(), config(), 0).await.unwrap();
        assert_eq!((&report.truncated, log.segment_bases()), (&None, bases.clone()));
        let [range] = log.damaged_ranges() else { panic!("{report:?}") };
        assert_eq!((range.first_offset, range.last_offset + 1), (lost.start, lost.end));
        assert_eq!(read_skipping(&log, 256 << 10).await, intact);
        log.close().await.unwrap();
    });
}

/// The scrubber finds the flip on real files in one pass and a restart remembers it. Prints
/// the bytes it checked per second of wall time with direct I/O, its budget unbounded.
#[test]
fn the_scrubber_finds_a_flipped_byte_in_a_sealed_segment_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    on_glommio(async move || {
        DmaStorage::probe(&path).await.unwrap();
        let (_, _, lost) = written_and_flipped(&path).await;
        let (mut log, report) =
            PartitionLog::open(DmaStorage::new(&path).unwrap(), config(), 0).await.unwrap();
        assert!(report.damaged.is_empty());
        let bases = log.segment_bases();
        let sealed: u64 = bases[..bases.len() - 1]
            .iter()
            .map(|b| std::fs::metadata(path.join(format!("{b:020}.log"))).unwrap().len())
            .sum();
        let started = std::time::Instant::now();
        let (mut checked, mut found, mut steps) = (0, Vec::new(), 0);
        // One pass over the sealed segments.
        while checked < sealed {
            let outcome = log.plan_scrub(1 << 20).unwrap().execute().await.unwrap();
            checked += outcome.checked_bytes;
            found.extend(log.complete_scrub(outcome).await.unwrap());
            steps += 1;
            assert!(steps < 1000, "no progress");
        }
        assert_eq!(checked, sealed);
        let secs = started.elapsed().as_secs_f64();
        println!(
            "scrubbed {checked} bytes with direct I/O at {:.0} MiB/s",
            checked as f64 / secs / f64::from(1 << 20)
        );
        let [range] = &found[..] else { panic!("{found:?}") };
        assert_eq!((range.first_offset, range.last_offset + 1), (lost.start, lost.end));
        log.close().await.unwrap();
        let (log, report) = PartitionLog::open(DmaStorage::new(&path).unwrap(), config(), 0).await.unwrap();
        assert_eq!(report.damaged, found, "a restart remembers it");
        assert_eq!(log.damaged_ranges(), found);
    });
}

/// Compaction on real files: a clean rewrites sealed segments through direct I/O, renames the
/// cleaned files over the old ones, and a reopen trusts the swapped indexes and reads the
/// latest value of every key at its offset, with nothing left behind.
#[test]
fn a_clean_swaps_segments_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    on_glommio(async move || {
        DmaStorage::probe(&path).await.unwrap();
        let cfg = LogConfig { segment_bytes_max: 64 << 10, batch_bytes_max: 16 << 10, ..config() };
        let (mut log, _) = PartitionLog::open(DmaStorage::new(&path).unwrap(), cfg.clone(), 0).await.unwrap();
        let mut latest = std::collections::BTreeMap::new();
        for t in 0..300u64 {
            let mut b = BatchBuilder::new(16 << 10);
            for i in 0..3u64 {
                let key = format!("k{}", (t * 3 + i) % 17).into_bytes();
                let value = format!("{t}:{i}:{}", "v".repeat(200)).into_bytes();
                b.push(&Record { key: Some(&key), value: Some(&value), headers: &[], timestamp: t as i64 })
                    .unwrap();
            }
            let a = log.append(&b.seal(ProducerStamp::default()).view(), 0, 0).await.unwrap();
            for i in 0..3u64 {
                latest.insert((t * 3 + i) % 17, a.base_offset + i);
            }
        }
        log.roll(0).await.unwrap();
        let end = log.next_offset();
        let clean = weir_log::compaction::CleanConfig { delete_retention_ms: 0, map_bytes_max: 1 << 20 };
        let mut plan = log.plan_clean(0, end, clean, 0).unwrap();
        let mut swapped = 0;
        loop {
            let step = plan.step(64 << 10).await.unwrap();
            if let Some(c) = step.cleaned {
                assert!(log.complete_clean(c).await.unwrap());
                swapped += 1;
            }
            if step.done {
                break;
            }
        }
        assert!(swapped > 1, "several segments were cleaned");
        drop(plan);
        let got = read_all(&log).await;
        log.close().await.unwrap();
        let names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".cleaned")), "{names:?}");
        let (log, report) = PartitionLog::open(DmaStorage::new(&path).unwrap(), cfg, 0).await.unwrap();
        assert!(report.rebuilt_indexes.is_empty() && report.damaged.is_empty(), "{report:?}");
        assert_eq!((log.log_start(), log.next_offset()), (0, end));
        assert_eq!(read_all(&log).await, got);
        let offsets: Vec<u64> = got.iter().map(|(o, _)| *o).collect();
        for o in latest.values() {
            assert!(offsets.contains(o), "the latest record at {o} is kept");
        }
        // Each segment keeps its last record; everything else superseded is gone.
        assert!(got.len() <= latest.len() + log.segment_bases().len(), "{} records left", got.len());
        log.close().await.unwrap();
    });
}

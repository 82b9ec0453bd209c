//! The partition log on in-memory storage with injected faults.

mod common;

use common::{batch, records, small_config};
use futures::executor::block_on;
use weir_log::storage::mem::{CrashMode, MemStorage};
use weir_log::{FlushPolicy, LogConfig, LogError, PartitionLog, SharedLog, Tick};

async fn read_all(log: &PartitionLog<MemStorage>) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start();
    while offset < log.next_offset() {
        let f = log.read(offset, 3000).await.unwrap();
        assert!(!f.is_empty(), "no progress at {offset}");
        out.extend(records(&f).into_iter().filter(|(o, _)| *o >= offset));
        offset = f.next_offset;
    }
    out
}

#[test]
fn append_flush_read_reopen() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!(report.segments, 1);
        let mut expect = Vec::new();
        for t in 0..40u64 {
            let b = batch(t, 5, 100, t as i64 * 10);
            let a = log.append(&b.view(), 1, 0).await.unwrap();
            assert_eq!(a.base_offset, t * 5);
            expect.extend((0..5).map(|i| (t * 5 + i, format!("{t}:{i}:").into_bytes())));
        }
        // Rolls sync the segment they seal; the rest waits for the flush.
        assert!(log.durable_offset() < 200);
        assert_eq!(log.flush().await.unwrap(), 200);
        assert!(log.segment_bases().len() >= 2, "segments rolled by size");
        let got = read_all(&log).await;
        assert_eq!(got.len(), 200);
        for ((o, v), (eo, ev)) in got.iter().zip(&expect) {
            assert_eq!(o, eo);
            assert!(v.starts_with(ev));
        }
        // Fetch of an offset inside a batch returns that whole batch.
        let f = log.read(7, 1).await.unwrap();
        assert_eq!((f.first_offset, f.next_offset, f.batch_count), (5, 10, 1));
        assert!(matches!(
            log.read(201, 10).await,
            Err(LogError::OffsetOutOfRange { offset: 201, start: 0, end: 200 })
        ));
        assert!(log.read(200, 10).await.unwrap().is_empty());
        log.close().await.unwrap();

        let (log, report) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!(report.truncated, None);
        assert!(report.rebuilt_indexes.is_empty());
        assert_eq!(log.next_offset(), 200);
        assert_eq!(read_all(&log).await, got);
    });
}

#[test]
fn timestamps_find_the_first_record_at_or_after() {
    block_on(async {
        let (mut log, _) = PartitionLog::open(MemStorage::new(), small_config(), 0).await.unwrap();
        for t in 0..60u64 {
            log.append(&batch(t, 2, 200, 1000 + t as i64 * 10).view(), 0, 0).await.unwrap();
        }
        log.flush().await.unwrap();
        assert!(log.segment_bases().len() > 2, "the lookup crosses segments");
        assert_eq!(lookup(&log, 0).await, Some(0));
        assert_eq!(lookup(&log, 1000).await, Some(0));
        assert_eq!(lookup(&log, 1001).await, Some(2));
        assert_eq!(lookup(&log, 1350).await, Some(70));
        assert_eq!(lookup(&log, 1590).await, Some(118));
        assert_eq!(lookup(&log, 1591).await, None);
    });
}

async fn lookup(log: &PartitionLog<MemStorage>, ts: i64) -> Option<u64> {
    log.plan_timestamp_lookup(ts).execute().await.unwrap()
}

#[test]
fn a_timestamp_lookup_runs_without_the_log_and_sees_it_as_planned() {
    block_on(async {
        let (mut log, _) = PartitionLog::open(MemStorage::new(), small_config(), 0).await.unwrap();
        for t in 0..20u64 {
            log.append(&batch(t, 2, 200, 1000 + t as i64 * 10).view(), 0, 0).await.unwrap();
        }
        log.flush().await.unwrap();
        let found = log.plan_timestamp_lookup(1095);
        let not_yet = log.plan_timestamp_lookup(5000);
        // The log moves on, with the plans outstanding: more batches, a roll, a flush.
        for t in 20..60u64 {
            log.append(&batch(t, 2, 200, 5000 + t as i64).view(), 0, 0).await.unwrap();
        }
        log.roll(0).await.unwrap();
        log.flush().await.unwrap();
        // The plans own what they need (the log is not borrowed) and answer for the log they
        // were planned on: the later batches were not there yet.
        assert_eq!(found.execute().await.unwrap(), Some(20));
        assert_eq!(not_yet.execute().await.unwrap(), None);
        assert_eq!(lookup(&log, 5000).await, Some(40));
    });
}

#[test]
fn segments_roll_by_age() {
    block_on(async {
        let config = LogConfig { segment_ms: 1000, ..small_config() };
        let (mut log, _) = PartitionLog::open(MemStorage::new(), config, 0).await.unwrap();
        // Age counts from the segment's first batch, at 10, not from its creation at 0.
        log.append(&batch(0, 1, 10, 0).view(), 0, 10).await.unwrap();
        log.append(&batch(1, 1, 10, 0).view(), 0, 1009).await.unwrap();
        assert_eq!(log.segment_bases(), vec![0]);
        log.append(&batch(2, 1, 10, 0).view(), 0, 1010).await.unwrap();
        assert_eq!(log.segment_bases(), vec![0, 2]);
    });
}

#[test]
fn an_idle_partition_rolls_on_tick_and_retention_then_deletes_it() {
    for flush in [FlushPolicy::Sync, FlushPolicy::Interval { flush_interval_ms: 50 }] {
        block_on(async {
            let st = MemStorage::new();
            let config = LogConfig { segment_ms: 1000, retention_ms: Some(2000), flush, ..small_config() };
            let (mut log, _) = PartitionLog::open(st.clone(), config.clone(), 0).await.unwrap();
            assert_eq!(log.tick(5000).await.unwrap(), Tick::default(), "an empty segment does not roll");
            log.append(&batch(0, 2, 100, 0).view(), 0, 6000).await.unwrap();
            log.append(&batch(1, 2, 100, 0).view(), 0, 6500).await.unwrap();
            let t = log.tick(6999).await.unwrap();
            assert!(!t.rolled);
            assert_eq!(t.flushed, matches!(flush, FlushPolicy::Interval { .. }), "{flush:?}");
            // No more data comes; the segment is a second old at 7000.
            assert!(log.tick(7000).await.unwrap().rolled);
            assert_eq!(log.segment_bases(), vec![0, 4]);
            assert_eq!(log.durable_offset(), 4);
            assert!(!log.tick(9000).await.unwrap().rolled, "the new active segment is empty");
            // Appended last at 6500, so retention deletes it after 8500.
            assert_eq!(log.enforce_retention(8500).await.unwrap(), Vec::<u64>::new());
            assert_eq!(log.enforce_retention(8501).await.unwrap(), vec![0]);
            assert_eq!((log.log_start(), log.next_offset()), (4, 4));

            // After a restart, a non-empty active segment's age counts from the open.
            log.append(&batch(2, 2, 100, 0).view(), 0, 9000).await.unwrap();
            log.close().await.unwrap();
            let (mut log, _) = PartitionLog::open(st, config, 20_000).await.unwrap();
            assert!(!log.tick(20_999).await.unwrap().rolled);
            assert!(log.tick(21_000).await.unwrap().rolled);
            assert_eq!(log.segment_bases(), vec![4, 6]);
        });
    }
}

#[test]
fn torn_tail_and_bit_flips_are_cut_and_reported_not_served() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        for t in 0..6u64 {
            log.append(&batch(t, 4, 300, 0).view(), 0, 0).await.unwrap();
        }
        log.flush().await.unwrap();
        let before = read_all(&log).await;
        let bases = log.segment_bases();
        // A clean close writes every index hint; recovery then validates from the last one on.
        log.close().await.unwrap();
        // Flip a bit in the payload of the 5th batch of the active segment.
        let active = bases.last().copied().unwrap();
        let name = format!("{active:020}.log");
        let data = st.contents(&name).unwrap();
        let mut pos = 0usize;
        let mut starts = Vec::new();
        while pos + 80 <= data.len() && data[pos..pos + 80].iter().any(|&b| b != 0) {
            starts.push(pos);
            pos += u32::from_le_bytes(data[pos + 12..pos + 16].try_into().unwrap()) as usize;
        }
        assert!(starts.len() >= 3, "need a few batches in the active segment, got {}", starts.len());
        // A flip in the last batch: recovery validates from the last intact index hint on, so
        // it finds it, cuts the log there and says so.
        let victim = *starts.last().unwrap();
        st.flip_bit(&name, (victim + 200) as u64, 3);
        let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        let cut = report.truncated.expect("the flip is found");
        assert_eq!((cut.segment, cut.position), (active, victim as u64));
        assert!(matches!(cut.reason, weir_log::BatchError::ChecksumMismatch { .. }));
        let after = read_all(&log).await;
        assert_eq!(after.len(), before.len() - 4);
        assert_eq!(after[..], before[..after.len()], "what is left is a prefix");
        assert_eq!(log.next_offset(), after.last().map_or(0, |r| r.0 + 1));
        // A flip in an earlier batch, synced before a later index hint was written, is caught by
        // the CRC check of every read and never served.
        drop(log);
        st.flip_bit(&name, (starts[0] + 150) as u64, 5);
        let (log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        let first_in_active = active;
        match log.read(first_in_active, 100).await {
            Err(LogError::Corrupt { segment, pos, .. }) => {
                assert_eq!((segment, pos), (active, starts[0] as u64))
            }
            other => panic!("a corrupt batch was served: {other:?}"),
        }

        // A flip in a sealed segment is trusted at open (its index is valid) but refused on read.
        let sealed = bases[0];
        drop(log);
        st.flip_bit(&format!("{sealed:020}.log"), 100, 0);
        let (log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        match log.read(sealed, 100).await {
            Err(LogError::Corrupt { segment, pos: 0, .. }) => assert_eq!(segment, sealed),
            other => panic!("a corrupt batch was served: {other:?}"),
        }
    });
}

#[test]
fn damaged_sealed_index_is_rebuilt() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        for t in 0..30u64 {
            log.append(&batch(t, 3, 200, t as i64).view(), 0, 0).await.unwrap();
        }
        log.close().await.unwrap();
        st.flip_bit(&format!("{:020}.index", 0), 3, 1);
        st.remove_file(&format!("{:020}.index", 9));
        let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(report.rebuilt_indexes.contains(&0), "{report:?}");
        assert_eq!(read_all(&log).await.len(), 90);
        assert_eq!(lookup(&log, 20).await, Some(60));
    });
}

#[test]
fn write_errors_fail_the_log_until_reopened_and_lose_nothing_durable() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        log.append(&batch(0, 3, 100, 0).view(), 0, 0).await.unwrap();
        log.flush().await.unwrap();
        log.append(&batch(1, 3, 100, 0).view(), 0, 0).await.unwrap();
        st.faults().fail_write_in.set(1);
        assert!(matches!(log.flush().await, Err(LogError::Io { .. })));
        assert!(matches!(log.append(&batch(2, 1, 1, 0).view(), 0, 0).await, Err(LogError::Failed)));
        drop(log);
        let (log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(log.next_offset() >= 3);
        assert_eq!(read_all(&log).await[..3].iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 2]);

        // A short write is an error too, never silently accepted.
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        log.append(&batch(3, 3, 100, 0).view(), 0, 0).await.unwrap();
        st.faults().short_write_in.set(1);
        assert!(matches!(log.flush().await, Err(LogError::ShortWrite { .. })));
        // A failed sync as well.
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        log.append(&batch(4, 3, 100, 0).view(), 0, 0).await.unwrap();
        st.faults().fail_sync_in.set(1);
        assert!(matches!(log.flush().await, Err(LogError::Io { op: "sync", .. })));
    });
}

#[test]
fn a_full_disk_refuses_the_append_and_keeps_serving() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        // Preallocation happens in 16 KiB steps; fill the first step, then the device is full.
        let mut n = 0;
        st.faults().disk_full.set(false);
        log.append(&batch(0, 1, 100, 0).view(), 0, 0).await.unwrap();
        st.faults().disk_full.set(true);
        let err = loop {
            match log.append(&batch(n + 1, 1, 1000, 0).view(), 0, 0).await {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(err.is_out_of_space(), "{err:?}");
        assert!(!log.is_failed());
        let end = log.next_offset();
        assert_eq!(log.flush().await.unwrap(), end);
        assert_eq!(read_all(&log).await.len() as u64, end);
        st.faults().disk_full.set(false);
        log.append(&batch(99, 1, 10, 0).view(), 0, 0).await.unwrap();
        assert_eq!(log.flush().await.unwrap(), end + 1);
    });
}

#[test]
fn concurrent_appends_share_syncs() {
    let st = MemStorage::new();
    let mut pool = futures::executor::LocalPool::new();
    let log = std::rc::Rc::new(SharedLog::new(
        block_on(PartitionLog::open(st.clone(), small_config(), 0)).unwrap().0,
    ));
    let syncs_before = st.syncs();
    use futures::task::LocalSpawnExt;
    let tasks = 32u64;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let log = log.clone();
            pool.spawner()
                .spawn_local_with_handle(async move {
                    let b = batch(t, 1, 50, 0);
                    log.append_durable(&b.view(), 0, 0).await.unwrap()
                })
                .unwrap()
        })
        .collect();
    pool.run();
    let mut offsets: Vec<u64> = handles.into_iter().map(|h| block_on(h).base_offset).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..tasks).collect::<Vec<_>>());
    assert_eq!(block_on(log.lock()).durable_offset(), tasks);
    let syncs = st.syncs() - syncs_before;
    assert!(syncs < tasks / 4, "{syncs} syncs for {tasks} durable appends");
}

#[test]
fn retention_deletes_old_sealed_segments_only() {
    block_on(async {
        let config =
            LogConfig { retention_ms: Some(1000), retention_bytes: Some(20 << 10), ..small_config() };
        let (mut log, _) = PartitionLog::open(MemStorage::new(), config, 0).await.unwrap();
        for t in 0..50u64 {
            log.append(&batch(t, 2, 400, t as i64 * 100).view(), 0, 0).await.unwrap();
        }
        log.flush().await.unwrap();
        let before = log.segment_bases();
        // By size: keep at least 20 KiB.
        let deleted = log.enforce_retention(0).await.unwrap();
        assert!(!deleted.is_empty());
        assert!(log.size_bytes() >= 20 << 10);
        assert_eq!(log.log_start(), log.segment_bases()[0]);
        assert_eq!(deleted, before[..deleted.len()]);
        // By time: everything older than now - 1000 goes, but never the active segment.
        let deleted = log.enforce_retention(1_000_000).await.unwrap();
        assert!(!deleted.is_empty());
        assert_eq!(log.segment_bases().len(), 1);
        assert!(log.read(0, 10).await.is_err());
        let start = log.log_start();
        assert_eq!(read_all(&log).await.first().map(|r| r.0), Some(start));
    });
}

#[test]
fn truncate_to_cuts_at_batch_boundaries_across_segments() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        for t in 0..40u64 {
            log.append(&batch(t, 4, 300, t as i64).view(), 0, 0).await.unwrap();
        }
        log.flush().await.unwrap();
        assert!(log.segment_bases().len() > 3);
        assert_eq!(log.truncate_to(1000, 0).await.unwrap(), 160);
        assert_eq!(log.truncate_to(150, 0).await.unwrap(), 148);
        assert_eq!(log.truncate_to(42, 0).await.unwrap(), 40);
        assert_eq!(log.next_offset(), 40);
        assert_eq!(log.durable_offset(), 40);
        assert_eq!(read_all(&log).await.len(), 40);
        let a = log.append(&batch(99, 2, 10, 0).view(), 0, 0).await.unwrap();
        assert_eq!(a.base_offset, 40);
        log.flush().await.unwrap();
        drop(log);
        let (log, report) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!(report.truncated, None);
        assert_eq!(log.next_offset(), 42);
        assert_eq!(read_all(&log).await.len(), 42);
    });
}

#[test]
fn oversized_batches_and_bad_config_get_typed_errors() {
    block_on(async {
        let (mut log, _) = PartitionLog::open(MemStorage::new(), small_config(), 0).await.unwrap();
        let big = batch(0, 10, 1000, 0);
        assert!(matches!(
            log.append(&big.view(), 0, 0).await,
            Err(LogError::Batch { source: weir_log::BatchError::TooLarge { .. }, .. })
        ));
        assert!(!log.is_failed());
        let bad = LogConfig { write_buffer_bytes: 1000, ..small_config() };
        assert!(matches!(PartitionLog::open(MemStorage::new(), bad, 0).await, Err(LogError::Config(_))));
    });
}

#[test]
fn crash_loses_only_what_was_not_flushed() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        for t in 0..10u64 {
            log.append(&batch(t, 2, 700, 0).view(), 0, 0).await.unwrap();
        }
        let durable = log.flush().await.unwrap();
        for t in 10..14u64 {
            log.append(&batch(t, 2, 700, 0).view(), 0, 0).await.unwrap();
        }
        log.write_out().await.unwrap();
        st.crash(CrashMode::LoseUnsynced);
        drop(log);
        let (log, _) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!(log.next_offset(), durable);
        assert_eq!(read_all(&log).await.len() as u64, durable);
    });
}

#[test]
fn truncation_below_a_durable_wait_fails_instead_of_claiming_durability() {
    let st = MemStorage::new();
    let log = SharedLog::new(block_on(PartitionLog::open(st, small_config(), 0)).unwrap().0);
    block_on(async {
        for t in 0..10u64 {
            log.append_durable(&batch(t, 2, 10, 0).view(), 0, 0).await.unwrap();
        }
        assert_eq!(log.lock().await.truncate_to(6, 0).await.unwrap(), 6);
        // Offsets 6..20 are gone: waiting for them must not return as if they were durable.
        assert!(matches!(log.wait_durable(20).await, Err(LogError::OffsetOutOfRange { .. })));
        let a = log.append_durable(&batch(99, 2, 10, 0).view(), 0, 0).await.unwrap();
        assert_eq!(a.base_offset, 6);
        assert_eq!(log.lock().await.durable_offset(), 8);
    });
}

#[test]
fn lowering_batch_bytes_max_keeps_stored_batches() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        log.append(&batch(0, 6, 1000, 0).view(), 0, 0).await.unwrap();
        log.close().await.unwrap();
        let lower = LogConfig { batch_bytes_max: 4096, ..small_config() };
        let (log, report) = PartitionLog::open(st, lower, 0).await.unwrap();
        assert_eq!(report.truncated, None);
        assert_eq!(read_all(&log).await.len(), 6);
    });
}

#[test]
fn batches_claiming_sparse_offsets_are_refused() {
    use weir_log::batch::header::{BATCH_MAGIC, BATCH_VERSION, BatchHeader, compute_crc};
    use weir_log::batch::{Batch, Columns};
    // A well-formed batch of one record at offset delta u32::MAX, as compaction might leave.
    let cols = Columns {
        offset_deltas: vec![u32::MAX],
        value_ends: vec![1],
        data: vec![b'x'],
        ..Default::default()
    };
    let mut out = rkyv::util::AlignedVec::<16>::new();
    out.resize(80, 0);
    let mut out = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(&cols, out).unwrap();
    let payload_len = out.len() - 80;
    out.resize(out.len().next_multiple_of(16), 0);
    let header = BatchHeader {
        base_offset: 0,
        leader_epoch: 0,
        batch_len: out.len() as u32,
        magic: BATCH_MAGIC,
        crc: 0,
        version: BATCH_VERSION,
        attributes: 0,
        record_count: 1,
        last_offset_delta: u32::MAX,
        payload_len: payload_len as u32,
        first_timestamp: 0,
        max_timestamp: 0,
        producer_id: -1,
        producer_epoch: -1,
        reserved0: 0,
        base_sequence: -1,
        reserved1: 0,
    };
    header.encode(&mut out);
    let crc = compute_crc(&out);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    let sparse = Batch::from_bytes(&out, usize::MAX).expect("a valid sparse batch");
    assert_eq!(sparse.view().records().next().unwrap().offset, u64::from(u32::MAX));
    block_on(async {
        let (mut log, _) = PartitionLog::open(MemStorage::new(), small_config(), 0).await.unwrap();
        assert!(matches!(
            log.append(&sparse.view(), 0, 0).await,
            Err(LogError::Batch {
                source: weir_log::BatchError::BadHeader { field: "last_offset_delta", .. },
                ..
            })
        ));
        assert_eq!(log.next_offset(), 0);
        assert!(!log.is_failed());
    });
}

/// Appends batches of far-off producer timestamps at broker time `now`, then rolls.
async fn append_at(log: &mut PartitionLog<MemStorage>, tags: std::ops::Range<u64>, ts: i64, now: u64) {
    for t in tags {
        log.append(&batch(t, 2, 400, ts).view(), 0, now).await.unwrap();
    }
    log.roll(now).await.unwrap();
}

#[test]
fn retention_goes_by_append_time_not_producer_timestamps() {
    block_on(async {
        let st = MemStorage::new();
        let config = LogConfig { retention_ms: Some(1000), ..small_config() };
        let (mut log, _) = PartitionLog::open(st.clone(), config.clone(), 0).await.unwrap();
        // Records stamped in 1970 but appended at t = 1_000_000: recent data.
        append_at(&mut log, 0..20, 1, 1_000_000).await;
        // Records stamped far in the future, appended later.
        append_at(&mut log, 20..40, i64::MAX / 2, 1_005_000).await;
        let sealed = log.segment_bases().len() - 1;
        assert!(sealed >= 4, "several sealed segments");
        assert_eq!(
            log.enforce_retention(1_001_000).await.unwrap(),
            Vec::<u64>::new(),
            "appended 1000 ms ago"
        );
        // The sealed indexes carry the append times over a reopen.
        log.close().await.unwrap();
        let (mut log, report) = PartitionLog::open(st.clone(), config.clone(), 1_001_000).await.unwrap();
        assert!(report.rebuilt_indexes.is_empty());
        assert_eq!(log.enforce_retention(1_001_000).await.unwrap(), Vec::<u64>::new());
        let old = log.enforce_retention(1_001_001).await.unwrap();
        assert!(!old.is_empty());
        assert_eq!(log.log_start(), 40, "the 1970 batches went once their append time passed");
        assert_eq!(
            log.enforce_retention(1_006_000).await.unwrap(),
            Vec::<u64>::new(),
            "future stamps: recent data"
        );
        let rest = log.enforce_retention(1_006_001).await.unwrap();
        assert_eq!(log.segment_bases().len(), 1, "all sealed segments went: {rest:?}");
    });
}

#[test]
fn a_segment_recovered_active_counts_as_appended_when_the_log_opened() {
    block_on(async {
        let st = MemStorage::new();
        let config = LogConfig { retention_ms: Some(1000), ..small_config() };
        let (mut log, _) = PartitionLog::open(st.clone(), config.clone(), 0).await.unwrap();
        log.append(&batch(0, 2, 400, 1).view(), 0, 10).await.unwrap();
        log.flush().await.unwrap();
        drop(log);
        // Reopened at 50_000: the active segment's batches were appended at some unknown time
        // before; the open time is the conservative guess.
        let (mut log, _) = PartitionLog::open(st.clone(), config.clone(), 50_000).await.unwrap();
        log.roll(50_000).await.unwrap();
        log.close().await.unwrap();
        let (mut log, _) = PartitionLog::open(st, config, 50_000).await.unwrap();
        assert_eq!(log.segment_bases(), vec![0, 2]);
        assert_eq!(log.enforce_retention(51_000).await.unwrap(), Vec::<u64>::new());
        assert_eq!(log.enforce_retention(51_001).await.unwrap(), vec![0]);
    });
}

#[test]
fn retention_never_deletes_past_the_committed_end() {
    block_on(async {
        let config = LogConfig { retention_ms: Some(1000), ..small_config() };
        let (mut log, _) = PartitionLog::open(MemStorage::new(), config, 0).await.unwrap();
        for t in 0..50u64 {
            log.append(&batch(t, 2, 400, 0).view(), 0, 0).await.unwrap();
        }
        let bases = log.segment_bases();
        assert!(bases.len() >= 3, "{bases:?}");
        // Every sealed segment is old enough, but only those below the bound may go.
        let deleted = log.enforce_retention_below(1_000_000, bases[2]).await.unwrap();
        assert_eq!(deleted, bases[..2]);
        assert_eq!(log.log_start(), bases[2]);
        assert_eq!(log.enforce_retention_below(1_000_000, bases[2] + 1).await.unwrap(), Vec::<u64>::new());
    });
}

/// An idle partition gives its write buffers back at the periodic chore and keeps only its tail
/// blocks; appends after that continue the tail, and every record reads back and survives a
/// reopen.
#[test]
fn an_idle_log_gives_back_its_write_buffers() {
    block_on(async {
        let st = MemStorage::new();
        let config = LogConfig { write_buffer_bytes: 64 << 10, segment_bytes_max: 1 << 20, ..small_config() };
        let (mut log, _) = PartitionLog::open(st.clone(), config.clone(), 0).await.unwrap();
        assert!(log.buffered_bytes() <= 2 * 4096, "a new log holds no write buffer");
        let mut now = 0;
        for t in 0..30u64 {
            log.append(&batch(t, 3, 333, 0).view(), 1, now).await.unwrap();
            assert!(log.buffered_bytes() >= 64 << 10, "a written log buffers");
            log.flush().await.unwrap();
            // Two looks a check interval apart with no append between: the buffers go.
            for _ in 0..2 {
                now += 1000;
                log.tick(now).await.unwrap();
            }
            assert!(log.buffered_bytes() <= 2 * 4096, "round {t}: {} bytes held", log.buffered_bytes());
        }
        let got = read_all(&log).await;
        assert_eq!(got.len(), 90);
        log.close().await.unwrap();
        let (log, report) = PartitionLog::open(st, config, now).await.unwrap();
        assert_eq!(report.truncated, None);
        assert_eq!(read_all(&log).await, got);
    });
}

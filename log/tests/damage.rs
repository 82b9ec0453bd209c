//! Damaged files: recovery keeps every intact batch, quarantines what is damaged, and cuts only
//! a torn tail; the scrubber finds damage in sealed segments.

mod common;

use common::{batch, batch_starts, read_skipping, small_config};
use futures::executor::block_on;
use weir_log::storage::mem::{CrashMode, MemStorage};
use weir_log::{DamagedRange, LogError, PartitionLog};

/// The records of `all` outside `damaged`.
fn intact(all: &[(u64, Vec<u8>)], damaged: std::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
    all.iter().filter(|(o, _)| !damaged.contains(o)).cloned().collect()
}

/// Reads at `offset` get the typed error naming the quarantined range.
async fn assert_quarantined(log: &PartitionLog<MemStorage>, offset: u64, range: &DamagedRange) {
    match log.read(offset, 3000).await {
        Err(LogError::Corrupt { segment, first_offset, last_offset, .. }) => {
            assert_eq!(
                (segment, first_offset, last_offset),
                (range.segment, range.first_offset, range.last_offset)
            );
        }
        other => panic!("read at {offset} in quarantine: {other:?}"),
    }
}

/// A log of several segments, cleanly closed: returns the storage, the segment bases and every
/// record.
async fn written(batches: u64) -> (MemStorage, Vec<u64>, Vec<(u64, Vec<u8>)>) {
    let st = MemStorage::new();
    let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
    for t in 0..batches {
        log.append(&batch(t, 4, 300, 0).view(), 0, 0).await.unwrap();
    }
    log.flush().await.unwrap();
    let all = read_skipping(&log, 3000).await;
    let bases = log.segment_bases();
    log.close().await.unwrap();
    (st, bases, all)
}

#[test]
fn a_flip_in_a_sealed_segment_with_a_damaged_footer_loses_no_later_segment() {
    block_on(async {
        let (st, bases, all) = written(40).await;
        assert!(bases.len() >= 4, "{bases:?}");
        let sealed = bases[1];
        let name = format!("{sealed:020}.log");
        let starts = batch_starts(&st.contents(&name).unwrap());
        assert!(starts.len() >= 4);
        let victim = starts[2];
        st.flip_bit(&name, (victim + 300) as u64, 2);
        let index = format!("{sealed:020}.index");
        let index_len = st.contents(&index).unwrap().len();
        st.flip_bit(&index, (index_len - 20) as u64, 4);

        // The damaged batch is the third of the segment: 4 records each.
        let damaged = sealed + 8..=sealed + 11;
        for round in 0..2 {
            // The second open finds the same quarantine: it is not forgotten.
            let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
            assert_eq!(log.segment_bases(), bases, "every segment is kept");
            assert_eq!(log.next_offset(), all.last().unwrap().0 + 1);
            assert_eq!(report.truncated, None);
            assert!(report.removed_segments.is_empty(), "{report:?}");
            let [range] = log.damaged_ranges() else { panic!("{:?}", log.damaged_ranges()) };
            assert_eq!(
                (range.segment, range.first_offset, range.last_offset),
                (sealed, 8 + sealed, 11 + sealed)
            );
            assert_eq!((range.start_pos, range.end_pos), (victim as u64, starts[3] as u64));
            assert_eq!(report.damaged, log.damaged_ranges(), "round {round}");
            for o in damaged.clone() {
                assert_quarantined(&log, o, range).await;
            }
            let after = *damaged.end() + 1;
            let f = log.read(after, 3000).await.unwrap();
            assert_eq!(f.first_offset, after, "a read after the damage works");
            // A read from before the damage stops at it.
            let f = log.read(sealed, 1 << 20).await.unwrap();
            assert_eq!(f.next_offset, *damaged.start());
            assert_eq!(read_skipping(&log, 3000).await, intact(&all, damaged.clone()));
        }
    });
}

#[test]
fn a_flip_in_the_middle_of_the_active_segment_keeps_the_batches_after_it() {
    block_on(async {
        let (st, bases, all) = written(40).await;
        let active = *bases.last().unwrap();
        let name = format!("{active:020}.log");
        let starts = batch_starts(&st.contents(&name).unwrap());
        assert!(starts.len() >= 4, "{starts:?}");
        // The index hints stop before the damage, as after a crash that lost the later hints.
        st.set_contents(&format!("{active:020}.index"), Vec::new());
        let victim = starts[1];
        st.flip_bit(&name, (victim + 300) as u64, 6);
        let damaged = active + 4..=active + 7;
        let (mut log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!(report.truncated, None, "{report:?}");
        assert_eq!(log.next_offset(), all.last().unwrap().0 + 1, "the batches after the damage stay");
        let [range] = log.damaged_ranges() else { panic!("{report:?}") };
        assert_eq!((range.first_offset, range.last_offset), (*damaged.start(), *damaged.end()));
        assert_quarantined(&log, active + 5, range).await;
        let f = log.read(active + 8, 3000).await.unwrap();
        assert_eq!(f.first_offset, active + 8);
        assert_eq!(read_skipping(&log, 3000).await, intact(&all, damaged.clone()));
        // The log goes on, and a crash and reopen find the same damage and the new batch.
        let a = log.append(&batch(99, 2, 10, 0).view(), 0, 0).await.unwrap();
        log.flush().await.unwrap();
        assert_eq!(a.base_offset, all.last().unwrap().0 + 1);
        st.crash(CrashMode::LoseUnsynced);
        let (log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!(log.next_offset(), a.last_offset + 1);
        assert_eq!(log.damaged_ranges().len(), 1);
        assert_eq!(read_skipping(&log, 3000).await.len(), intact(&all, damaged).len() + 2);
    });
}

#[test]
fn a_torn_tail_is_still_cut() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        for t in 0..3u64 {
            log.append(&batch(t, 4, 300, 0).view(), 0, 0).await.unwrap();
        }
        let durable = log.flush().await.unwrap();
        // Appended and written but never synced: a crash may keep any of these blocks.
        for t in 6..9u64 {
            log.append(&batch(t, 4, 600, 0).view(), 0, 0).await.unwrap();
        }
        log.write_out().await.unwrap();
        let active = *log.segment_bases().last().unwrap();
        let name = format!("{active:020}.log");
        let mut data = st.contents(&name).unwrap();
        let starts = batch_starts(&data);
        assert_eq!(starts.len(), 6, "{starts:?}");
        let (base, torn) = (durable, starts[3]);
        // The torn batch lost a sector (it reads as zeros), the two after it reached the disk.
        let sector = (torn + 1024) & !511;
        data[sector..sector + 512].fill(0);
        drop(log);
        st.set_contents(&name, data);
        let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        let cut = report.truncated.expect("the torn write is cut");
        assert_eq!((cut.segment, cut.position, cut.offset), (active, torn as u64, base));
        assert_eq!(log.next_offset(), base);
    });
}

#[test]
fn torn_crashes_leave_a_prefix_and_no_quarantine() {
    for seed in 0..200u64 {
        block_on(async {
            let st = MemStorage::new();
            let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
            for t in 0..10u64 {
                log.append(&batch(t, 3, 200 + 50 * (t as usize % 5), 0).view(), 0, 0).await.unwrap();
            }
            let durable = log.flush().await.unwrap();
            let kept = read_skipping(&log, 3000).await;
            for t in 10..20u64 {
                log.append(&batch(t, 3, 200 + 50 * (t as usize % 5), 0).view(), 0, 0).await.unwrap();
            }
            log.write_out().await.unwrap();
            let all = read_skipping(&log, 3000).await;
            drop(log);
            st.crash(CrashMode::Torn { seed });
            let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
            assert!(log.next_offset() >= durable, "seed {seed}: {report:?}");
            let got = read_skipping(&log, 3000).await;
            assert_eq!(got[..kept.len()], kept[..], "seed {seed}");
            assert_eq!(got[..], all[..got.len()], "seed {seed}: a prefix");
        });
    }
}

#[test]
fn the_scrubber_finds_a_flip_in_a_sealed_segment_within_its_rate() {
    use weir_log::io_budget::IoBudget;
    use weir_log::scrub::{SCRUB_STEP_BYTES_MAX, SCRUB_STEP_BYTES_MIN};
    block_on(async {
        let (st, bases, all) = written(60).await;
        let sealed = bases[2];
        let name = format!("{sealed:020}.log");
        let starts = batch_starts(&st.contents(&name).unwrap());
        st.flip_bit(&name, (starts[1] + 500) as u64, 1);
        // The sealed index stays valid: recovery trusts the segment and does not see the flip.
        let (mut log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(report.damaged.is_empty() && log.damaged_ranges().is_empty());
        // At the minimum step, bytes before the damage take this many steps, and the
        // segment's bytes before it one more.
        let before: u64 =
            bases.iter().take(2).map(|b| st.contents(&format!("{b:020}.log")).unwrap().len() as u64).sum();
        let steps_max = (before + starts[1] as u64).div_ceil(SCRUB_STEP_BYTES_MIN) + 2;
        let mut budget = IoBudget::new(1000 * SCRUB_STEP_BYTES_MIN, SCRUB_STEP_BYTES_MAX);
        let mut now = 0;
        let mut found = None;
        let mut steps = 0;
        while found.is_none() {
            now += 1;
            let Some(bytes) = budget.grant(now) else { continue };
            steps += 1;
            assert!(steps <= steps_max, "{steps} steps");
            let plan = log.plan_scrub(bytes).unwrap();
            let outcome = plan.execute().await.unwrap();
            budget.spend(outcome.read_bytes.max(outcome.checked_bytes).max(1));
            found = log.complete_scrub(outcome).await.unwrap();
        }
        let range = found.unwrap();
        assert_eq!((range.segment, range.first_offset, range.last_offset), (sealed, sealed + 4, sealed + 7));
        assert_quarantined(&log, sealed + 6, &range).await;
        assert_eq!(read_skipping(&log, 3000).await, intact(&all, sealed + 4..=sealed + 7));
        // A restart remembers it: the segment is scanned again at open.
        drop(log);
        let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!(report.damaged, vec![range.clone()]);
        assert_eq!(log.damaged_ranges(), [range]);
    });
}

/// Bytes of sealed segments the scrubber checks per second of this thread's time, on
/// in-memory storage with the budget unbounded: its CPU cost. Printed, not asserted.
#[test]
fn the_scrubber_checks_a_clean_log_to_its_end_and_finds_nothing() {
    block_on(async {
        let st = MemStorage::new();
        let config =
            weir_log::LogConfig { segment_bytes_max: 4 << 20, batch_bytes_max: 256 << 10, ..small_config() };
        let (mut log, _) = PartitionLog::open(st.clone(), config, 0).await.unwrap();
        for t in 0..2000u64 {
            log.append(&batch(t, 16, 1000, 0).view(), 0, 0).await.unwrap();
        }
        log.roll(0).await.unwrap();
        let total = log.size_bytes();
        let started = std::time::Instant::now();
        let mut checked = 0;
        let mut steps = 0;
        // One pass: the cursor comes back to the first segment at its start.
        loop {
            let outcome = log.plan_scrub(1 << 20).unwrap().execute().await.unwrap();
            checked += outcome.checked_bytes;
            steps += 1;
            assert_eq!(log.complete_scrub(outcome).await.unwrap(), None);
            if checked >= total {
                break;
            }
            assert!(steps < 1000, "no progress");
        }
        assert_eq!(checked, total);
        let secs = started.elapsed().as_secs_f64();
        println!(
            "scrubbed {total} bytes in {steps} steps, {:.0} MiB/s",
            total as f64 / secs / (1 << 20) as f64
        );
    });
}

/// Batches larger than a step's grant are read twice by a step (its first read, then the whole
/// batch): the budget is charged what was read, so the scrubber's reads keep to its rate.
#[test]
fn the_scrubber_reads_within_its_rate_with_batches_larger_than_a_step() {
    use weir_log::io_budget::IoBudget;
    use weir_log::scrub::SCRUB_STEP_BYTES_MAX;
    block_on(async {
        let st = MemStorage::new();
        let config =
            weir_log::LogConfig { segment_bytes_max: 4 << 20, batch_bytes_max: 2 << 20, ..small_config() };
        let (mut log, _) = PartitionLog::open(st.clone(), config, 0).await.unwrap();
        for t in 0..100u64 {
            log.append(&batch(t, 1200, 1000, 0).view(), 0, 0).await.unwrap();
        }
        log.roll(0).await.unwrap();
        let rate_bytes_per_ms = 1000;
        let mut budget = IoBudget::new(rate_bytes_per_ms * 1000, SCRUB_STEP_BYTES_MAX);
        budget.grant(0);
        let (mut checked, mut read) = (0, 0);
        let mut now = 0;
        while checked < log.size_bytes() {
            now += 10;
            let Some(bytes) = budget.grant(now) else { continue };
            let outcome = log.plan_scrub(bytes).unwrap().execute().await.unwrap();
            (checked, read) = (checked + outcome.checked_bytes, read + outcome.read_bytes);
            budget.spend(outcome.read_bytes.max(outcome.checked_bytes));
            assert_eq!(log.complete_scrub(outcome).await.unwrap(), None);
            // What was read stays within the rate, but for one step and the batch it overran by.
            let allowed = now * rate_bytes_per_ms + SCRUB_STEP_BYTES_MAX + (2 << 20);
            assert!(read <= allowed, "read {read} bytes in {now} ms, allowed {allowed}");
        }
        assert!(read > checked, "batches larger than a step were read twice: {read} vs {checked}");
    });
}

#[test]
fn a_sealed_segment_cut_short_or_zeroed_keeps_every_later_segment() {
    block_on(async {
        for zeroed in [false, true] {
            let (st, bases, all) = written(40).await;
            let sealed = bases[1];
            let name = format!("{sealed:020}.log");
            let data = st.contents(&name).unwrap();
            let starts = batch_starts(&data);
            // Lost: the end of the file from its third batch on, or all of it as zeros.
            let (kept, bytes) = match zeroed {
                false => (8, data[..starts[2]].to_vec()),
                true => (0, vec![0; data.len()]),
            };
            st.set_contents(&name, bytes);
            st.remove_file(&format!("{sealed:020}.index"));
            let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
            assert_eq!(log.segment_bases(), bases, "zeroed {zeroed}: {report:?}");
            let [range] = log.damaged_ranges() else { panic!("{report:?}") };
            assert_eq!((range.first_offset, range.last_offset), (sealed + kept, bases[2] - 1));
            assert_eq!(read_skipping(&log, 3000).await, intact(&all, sealed + kept..=bases[2] - 1));
        }
    });
}

#[test]
fn truncating_into_a_quarantined_range_cuts_at_its_start() {
    block_on(async {
        let (st, bases, all) = written(40).await;
        let sealed = bases[1];
        let name = format!("{sealed:020}.log");
        let starts = batch_starts(&st.contents(&name).unwrap());
        st.flip_bit(&name, (starts[2] + 300) as u64, 2);
        st.remove_file(&format!("{sealed:020}.index"));
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!(log.damaged_ranges().len(), 1);
        // Truncating after the damage keeps it; truncating into it cuts at its start.
        let end = log.truncate_to(bases[2] + 1, 0).await.unwrap();
        assert_eq!((end, log.damaged_ranges().len()), (bases[2], 1));
        assert_eq!(log.truncate_to(sealed + 9, 0).await.unwrap(), sealed + 8);
        assert!(log.damaged_ranges().is_empty());
        let a = log.append(&batch(77, 2, 10, 0).view(), 0, 0).await.unwrap();
        assert_eq!(a.base_offset, sealed + 8);
        log.close().await.unwrap();
        let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(report.damaged.is_empty() && report.truncated.is_none(), "{report:?}");
        let got = read_skipping(&log, 3000).await;
        assert_eq!(got[..got.len() - 2], all[..(sealed + 8) as usize]);
    });
}

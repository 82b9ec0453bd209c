//! Damage that recovery and the scrubber must not make worse: a flipped base offset (which the
//! CRC does not cover) is damage, never a jump ahead that deletes later segments; an empty
//! segment file left by a crash is removed, not quarantined; the scrubber starts over after a
//! truncation; torn crashes leave no quarantine.

mod common;

use common::{batch, batch_starts, small_config};
use futures::executor::block_on;
use weir_log::PartitionLog;
use weir_log::storage::mem::MemStorage;

/// Raises the base offset of the `batch`-th batch of a segment by 256 (bit 0 of its second
/// byte), which the batch CRC does not cover.
fn flip_base_offset(st: &MemStorage, segment: u64, batch: usize) {
    let name = format!("{segment:020}.log");
    let starts = batch_starts(&st.contents(&name).unwrap());
    st.flip_bit(&name, (starts[batch] + 1) as u64, 0);
}

async fn written(batches: u64) -> (MemStorage, Vec<u64>, u64) {
    let st = MemStorage::new();
    let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
    for t in 0..batches {
        log.append(&batch(t, 4, 300, 0).view(), 0, 0).await.unwrap();
    }
    log.flush().await.unwrap();
    let bases = log.segment_bases();
    let end = log.next_offset();
    log.close().await.unwrap();
    (st, bases, end)
}

/// A flip that raises a base offset in a sealed segment that is scanned at open: the batch is
/// quarantined, no segment is lost and the log end stays.
#[test]
fn a_flipped_base_offset_in_a_sealed_segment_loses_no_segment() {
    block_on(async {
        let (st, bases, end) = written(40).await;
        let sealed = bases[1];
        flip_base_offset(&st, sealed, 2);
        // Without its index the segment is scanned at open.
        st.remove_file(&format!("{sealed:020}.index"));
        let (log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!(log.segment_bases(), bases, "segments lost");
        assert_eq!(log.next_offset(), end, "the log end moved");
        assert_eq!(log.damaged_ranges().len(), 1, "the flipped batch is quarantined");
    });
}

/// The same in the active segment: the intact batches after it are kept.
#[test]
fn a_flipped_base_offset_in_the_active_segment_keeps_the_log_end() {
    block_on(async {
        let (st, bases, end) = written(40).await;
        let active = *bases.last().unwrap();
        // Without hints the whole active segment is scanned at open.
        st.set_contents(&format!("{active:020}.index"), Vec::new());
        flip_base_offset(&st, active, 1);
        let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(report.truncated.is_none(), "nothing was cut: {:?}", report.truncated);
        assert_eq!(log.next_offset(), end, "the log end moved");
    });
}

/// The leftover of an interrupted truncation below the log start, an empty first segment, is
/// removed, not quarantined.
#[test]
fn an_empty_leftover_segment_is_removed_not_quarantined() {
    block_on(async {
        let (st, bases, _end) = written(40).await;
        // Make the log start at bases[1], then leave an empty segment file below it.
        st.remove_file(&format!("{:020}.log", bases[0]));
        st.remove_file(&format!("{:020}.index", bases[0]));
        let leftover = bases[1] - 3;
        st.set_contents(&format!("{leftover:020}.log"), Vec::new());
        let (log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(log.damaged_ranges().is_empty(), "phantom quarantine");
        assert_eq!(report.removed_segments, [leftover], "the empty leftover is removed");
        assert_eq!(log.log_start(), bases[1]);
    });
}

/// After a truncation into the segment the scrubber was in, and a roll, it quarantines nothing
/// intact.
#[test]
fn the_scrubber_starts_over_after_a_truncation() {
    block_on(async {
        let (st, bases, _end) = written(40).await;
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        let s = bases[1];
        // Scrub until the cursor is inside segment s.
        let mut cursor_off = 0;
        for _ in 0..100 {
            let out = log.plan_scrub(2000).unwrap().execute().await.unwrap();
            let (seg, done, next) = (out.segment, out.segment_done, out.next);
            assert!(log.complete_scrub(out).await.unwrap().is_none());
            if seg == s && !done && next.offset > s + 8 {
                cursor_off = next.offset;
                break;
            }
        }
        assert!(cursor_off > 0);
        log.truncate_to(s + 4, 0).await.unwrap();
        for t in 0..10u64 {
            log.append(&batch(100 + t, 3, 177, 0).view(), 0, 0).await.unwrap();
        }
        log.roll(0).await.unwrap();
        let mut found = None;
        for _ in 0..20 {
            let Some(plan) = log.plan_scrub(2000) else { break };
            let out = plan.execute().await.unwrap();
            if let Some(d) = log.complete_scrub(out).await.unwrap() {
                found = Some(d);
                break;
            }
        }
        assert!(found.is_none(), "intact batches quarantined: {found:?}");
    });
}

/// Torn crashes of unsynced appends leave a prefix of the log and no quarantine.
#[test]
fn torn_crashes_leave_no_quarantine() {
    use weir_log::storage::mem::CrashMode;
    let mut bad = Vec::new();
    for seed in 0..300u64 {
        block_on(async {
            let st = MemStorage::new();
            let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
            for round in 0..3u64 {
                for t in 0..6u64 {
                    let tag = round * 100 + t;
                    log.append(&batch(tag, 3, 100 + 97 * ((seed + t) as usize % 13), 0).view(), 0, 0)
                        .await
                        .unwrap();
                }
                log.flush().await.unwrap();
                for t in 6..(10 + seed % 20) {
                    let tag = round * 100 + t;
                    log.append(
                        &batch(tag, 1 + (t as usize % 4), 50 + 97 * ((seed * 7 + t) as usize % 17), 0).view(),
                        0,
                        0,
                    )
                    .await
                    .unwrap();
                }
                log.write_out().await.unwrap();
                drop(log);
                st.crash(CrashMode::Torn { seed: seed * 3 + round });
                let (l, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
                if !l.damaged_ranges().is_empty() {
                    bad.push((seed, round, report.damaged.clone()));
                }
                log = l;
            }
        });
    }
    assert!(bad.is_empty(), "{} torn crashes left a quarantine", bad.len());
}

/// The scrubber finds such a flip and empties the segment's index; the next open scans the
/// segment and still loses no segment.
#[test]
fn a_flip_the_scrubber_found_costs_no_segment_at_the_next_open() {
    block_on(async {
        let (st, bases, end) = written(40).await;
        flip_base_offset(&st, bases[1], 2);
        let (mut log, report) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert!(report.damaged.is_empty());
        let mut found = None;
        for _ in 0..100 {
            let out = log.plan_scrub(1 << 20).unwrap().execute().await.unwrap();
            if let Some(d) = log.complete_scrub(out).await.unwrap() {
                found = Some(d);
                break;
            }
        }
        assert!(found.is_some(), "the scrubber finds the flip");
        drop(log);
        let (log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!(log.segment_bases(), bases, "segments lost at the next open");
        assert_eq!(log.next_offset(), end, "the log end moved");
    });
}

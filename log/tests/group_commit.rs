//! Group commit with the fdatasync run outside the log's lock: reads and appends go on beside a
//! sync in flight, and a sync that is dropped, fails, or races a roll or truncation claims no
//! durability it does not have.

mod common;

use common::{batch, small_config};
use futures::FutureExt;
use futures::executor::{LocalPool, block_on};
use futures::task::LocalSpawnExt;
use std::rc::Rc;
use weir_log::storage::mem::{CrashMode, MemStorage};
use weir_log::{FlushPolicy, LogConfig, LogError, PartitionLog, SharedLog};

/// A shared log with `durable` records synced and `more` appended after them.
fn shared(st: &MemStorage, durable: u64, more: u64) -> Rc<SharedLog<MemStorage>> {
    let log = Rc::new(SharedLog::new(block_on(PartitionLog::open(st.clone(), small_config(), 0)).unwrap().0));
    block_on(async {
        for t in 0..durable {
            log.append_durable(&batch(t, 1, 100, 0).view(), 0, 0).await.unwrap();
        }
        for t in 0..more {
            log.append(&batch(100 + t, 1, 100, 0).view(), 0, 0).await.unwrap();
        }
    });
    log
}

fn durable_offset(log: &SharedLog<MemStorage>) -> u64 {
    block_on(log.lock()).durable_offset()
}

#[test]
fn reads_and_appends_go_on_while_a_sync_is_in_flight() {
    let st = MemStorage::new();
    let log = shared(&st, 2, 2);
    let mut pool = LocalPool::new();
    let spawn = |fut| pool.spawner().spawn_local_with_handle(fut).unwrap();
    // The leader's write-out is I/O 1, its fdatasync I/O 2: hold that one in flight.
    st.faults().hold_io_in.set(2);
    let syncs = st.syncs();
    let waiter = spawn({
        let log = log.clone();
        async move { log.wait_durable(4).await }.boxed_local()
    });
    pool.run_until_stalled();
    assert!(st.faults().held.get(), "the sync is in flight");
    let reader = pool
        .spawner()
        .spawn_local_with_handle({
            let log = log.clone();
            async move {
                let plan = log.lock().await.plan_read(0, 1 << 20, u64::MAX).unwrap().unwrap();
                plan.execute().await.unwrap().next_offset
            }
        })
        .unwrap();
    let appender = pool
        .spawner()
        .spawn_local_with_handle({
            let log = log.clone();
            async move { log.append(&batch(9, 1, 10, 0).view(), 0, 0).await.unwrap().base_offset }
        })
        .unwrap();
    pool.run_until_stalled();
    assert_eq!(reader.now_or_never(), Some(4), "the read waited for the sync");
    assert_eq!(appender.now_or_never(), Some(4), "the append waited for the sync");
    assert_eq!(durable_offset(&log), 2);
    st.faults().release_held();
    pool.run_until_stalled();
    waiter.now_or_never().expect("the sync completed").unwrap();
    // The sync covers what was written when it began, not the append made meanwhile.
    assert_eq!(durable_offset(&log), 4);
    assert_eq!(st.syncs(), syncs + 1);
}

#[test]
fn a_dropped_sync_claims_nothing_and_the_next_waiter_syncs() {
    let st = MemStorage::new();
    let log = shared(&st, 1, 1);
    let mut pool = LocalPool::new();
    st.faults().hold_io_in.set(2);
    let wait = |log: &Rc<SharedLog<MemStorage>>, offset| {
        let log = log.clone();
        async move { log.wait_durable(offset).await }
    };
    let leader = pool.spawner().spawn_local_with_handle(wait(&log, 2)).unwrap();
    pool.run_until_stalled();
    assert!(st.faults().held.get());
    drop(leader);
    pool.run_until_stalled();
    assert_eq!(durable_offset(&log), 1, "a dropped sync claims nothing");
    assert!(!block_on(log.lock()).is_failed(), "a dropped sync changes nothing");
    block_on(log.wait_durable(2)).unwrap();
    assert_eq!(durable_offset(&log), 2);

    // A leader dropped while another task waits for its sync: that task takes over.
    block_on(log.append(&batch(5, 1, 10, 0).view(), 0, 0)).unwrap();
    st.faults().hold_io_in.set(2);
    let syncs = st.syncs();
    let leader = pool.spawner().spawn_local_with_handle(wait(&log, 3)).unwrap();
    pool.run_until_stalled();
    assert!(st.faults().held.get());
    let follower = pool.spawner().spawn_local_with_handle(wait(&log, 3)).unwrap();
    pool.run_until_stalled();
    assert_eq!(st.syncs(), syncs, "one sync in flight at a time");
    drop(leader);
    pool.run_until_stalled();
    follower.now_or_never().expect("the follower was left waiting").unwrap();
    assert_eq!((durable_offset(&log), st.syncs()), (3, syncs + 1));
}

/// Runs a leader whose fdatasync ends while another task holds the log's lock, and drops the
/// leader before it can take the lock back: the next task to lock the log records the outcome.
fn leader_dropped_before_recording(fail: bool) -> (MemStorage, Rc<SharedLog<MemStorage>>) {
    let st = MemStorage::new();
    let log = shared(&st, 1, 1);
    let mut pool = LocalPool::new();
    let leader = pool
        .spawner()
        .spawn_local_with_handle({
            let log = log.clone();
            async move { log.wait_durable(2).await }
        })
        .unwrap();
    // Queued on the lock behind the leader's preparation, it holds the lock across the sync.
    let (release, released) = futures::channel::oneshot::channel::<()>();
    pool.spawner()
        .spawn_local({
            let log = log.clone();
            async move {
                let _guard = log.lock().await;
                released.await.unwrap();
            }
        })
        .unwrap();
    if fail {
        st.faults().fail_sync_in.set(1);
    }
    pool.run_until_stalled();
    drop(leader);
    pool.run_until_stalled();
    release.send(()).unwrap();
    pool.run_until_stalled();
    (st, log)
}

#[test]
fn a_sync_that_ended_is_recorded_even_if_its_leader_is_dropped() {
    let (_, log) = leader_dropped_before_recording(false);
    assert_eq!(durable_offset(&log), 2);
    let (_, log) = leader_dropped_before_recording(true);
    assert!(block_on(log.lock()).is_failed(), "a failed sync fails the log");
    assert!(matches!(block_on(log.wait_durable(2)), Err(LogError::Failed)));
}

#[test]
fn a_sync_that_races_a_truncation_or_roll_claims_only_what_it_covered() {
    block_on(async {
        let st = MemStorage::new();
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        for t in 0..10u64 {
            log.append(&batch(t, 2, 100, 0).view(), 0, 0).await.unwrap();
        }
        let sync = log.prepare_sync().await.unwrap().unwrap();
        assert_eq!(sync.offset(), 20);
        // Meanwhile the log is cut and grows again past the sync's end, unsynced.
        assert_eq!(log.truncate_to(10, 0).await.unwrap(), 10);
        for t in 0..6u64 {
            log.append(&batch(20 + t, 2, 100, 0).view(), 0, 0).await.unwrap();
        }
        let result = sync.run().await;
        assert_eq!(log.complete_sync(sync, result).unwrap(), 10, "offsets 10..20 hold other batches");
        drop(log);
        st.crash(CrashMode::LoseUnsynced);
        let (mut log, _) = PartitionLog::open(st.clone(), small_config(), 0).await.unwrap();
        assert_eq!(log.next_offset(), 10);

        // A roll meanwhile syncs everything itself; the old sync then changes nothing.
        log.append(&batch(40, 2, 100, 0).view(), 0, 0).await.unwrap();
        let sync = log.prepare_sync().await.unwrap().unwrap();
        log.append(&batch(41, 2, 100, 0).view(), 0, 0).await.unwrap();
        log.roll(0).await.unwrap();
        assert_eq!(log.durable_offset(), 14);
        log.append(&batch(42, 2, 100, 0).view(), 0, 0).await.unwrap();
        let result = sync.run().await;
        assert_eq!(log.complete_sync(sync, result).unwrap(), 14);
        assert_eq!(log.flush().await.unwrap(), 16);
        log.close().await.unwrap();
        let (log, report) = PartitionLog::open(st, small_config(), 0).await.unwrap();
        assert_eq!((log.next_offset(), report.truncated), (16, None));
    });
}

#[test]
fn a_read_goes_on_while_an_interval_flush_syncs() {
    let st = MemStorage::new();
    let interval = LogConfig { flush: FlushPolicy::Interval { flush_interval_ms: 100 }, ..small_config() };
    let log = Rc::new(SharedLog::new(block_on(PartitionLog::open(st.clone(), interval, 0)).unwrap().0));
    block_on(async {
        for t in 0..3 {
            log.append(&batch(t, 1, 100, 0).view(), 0, 0).await.unwrap();
        }
        log.lock().await.write_out().await.unwrap();
    });
    let mut pool = LocalPool::new();
    // The tick's write-out has nothing left to write: its fdatasync is the next I/O.
    st.faults().hold_io_in.set(1);
    let ticker = pool
        .spawner()
        .spawn_local_with_handle({
            let log = log.clone();
            async move { log.tick(1_000).await.unwrap() }
        })
        .unwrap();
    pool.run_until_stalled();
    assert!(st.faults().held.get(), "the interval flush's sync is in flight");
    let read = Rc::new(std::cell::Cell::new(None));
    pool.spawner()
        .spawn_local({
            let (log, read) = (log.clone(), read.clone());
            async move {
                let plan = log.lock().await.plan_read(0, 1 << 20, u64::MAX).unwrap().unwrap();
                read.set(Some(plan.execute().await.unwrap().next_offset));
            }
        })
        .unwrap();
    pool.run_until_stalled();
    assert_eq!(read.get(), Some(3), "the read did not wait for the sync");
    assert_eq!(durable_offset(&log), 0, "not durable while the sync is held");
    st.faults().release_held();
    let tick = pool.run_until(ticker);
    assert!(tick.flushed && !tick.rolled);
    assert_eq!(durable_offset(&log), 3);
}

//! The shard's log cleaner: compacts the shard's replicas of compacted topics (leaders and
//! followers alike, each its own copy, as Kafka's cleaner does), one pass at a time, paced at
//! `compaction_bytes_per_s_max` over the shard (see `weir_log::compaction`).
//!
//! Runs as its own loop beside upkeep ([`ShardCore::clean_while`]), one step at a time, each
//! to its end: never dropped in the middle of a swap, never two at once, and a long step (the
//! unchanged start of a segment copied at its first change, a file's sync) does not hold back
//! upkeep's flushes and replica timers. A step reads and writes without the partition locked;
//! only the swap of a cleaned segment takes the lock, for its renames. Appends and fetches go
//! on meanwhile. Which partition is due is looked at once a second.
//!
//! Only what is durable is cleaned (below the high watermark and the durable offset): a
//! cleaned segment is synced before it is swapped in, and must never have dropped records for
//! the sake of later ones a crash could still take away.

use crate::core::{SLOW_PASS_MS, ShardCore, UPKEEP_INTERVAL_MS};
use crate::disk::Disk;
use crate::partition::Partition;
use crate::runtime::Runtime;
use std::rc::Rc;
use weir_log::compaction::{CleanConfig, CleanPlan};
use weir_log::io_budget::IoBudget;
use weir_log::scrub::SCRUB_STEP_BYTES_MIN;
use weir_log::storage::Storage;

/// The cleaner's state on one shard: its budget and the pass under way, if any.
#[derive(Debug)]
pub struct Cleaner<S: Storage + Clone> {
    budget: IoBudget,
    pass: Option<Pass<S>>,
}

#[derive(Debug)]
struct Pass<S: Storage + Clone> {
    partition: Rc<Partition<S>>,
    plan: CleanPlan<S>,
    /// Whether every segment the pass cleaned so far was swapped in.
    all_swapped: bool,
}

impl<S: Storage + Clone> Cleaner<S> {
    /// A cleaner reading and writing at most `bytes_per_s_max`. A step may spend what two
    /// upkeep runs earn, so the rate holds though upkeep runs late.
    pub fn new(bytes_per_s_max: u64) -> Self {
        let step_max =
            (bytes_per_s_max.saturating_mul(2 * UPKEEP_INTERVAL_MS) / 1000).max(SCRUB_STEP_BYTES_MIN);
        Self { budget: IoBudget::new(bytes_per_s_max, step_max), pass: None }
    }
}

impl<D: Disk, R: Runtime> ShardCore<D, R> {
    /// Runs the cleaner every [`UPKEEP_INTERVAL_MS`] for as long as `running` says, looking for
    /// a partition to clean once every [`SLOW_PASS_MS`].
    pub async fn clean_while(&self, running: impl Fn() -> bool) {
        let mut last_look = 0;
        while running() {
            self.rt.sleep_ms(UPKEEP_INTERVAL_MS).await;
            let now = self.rt.now_ms();
            let look = now.saturating_sub(last_look) >= SLOW_PASS_MS;
            if look {
                last_look = now;
            }
            self.clean_step(now, look).await;
        }
    }

    /// One step of the cleaner at `now` (the wall clock): of the pass under way, or, on the
    /// once-a-second pass (`look_for_work`), of a new one over the next due partition.
    pub(crate) async fn clean_step(&self, now: u64, look_for_work: bool) {
        let Some(grant) = self.cleaner.borrow_mut().budget.grant(now) else { return };
        let pass = self.cleaner.borrow_mut().pass.take();
        let pass = match pass {
            Some(pass) => pass,
            None if look_for_work => match self.next_pass(now).await {
                Some(pass) => pass,
                None => return,
            },
            None => return,
        };
        let pass = self.run_step(pass, grant, now).await;
        self.cleaner.borrow_mut().pass = pass;
    }

    /// Plans a pass over the first due partition of a compacted topic, taking partitions in
    /// turn so that one busy partition does not starve the others.
    async fn next_pass(&self, now: u64) -> Option<Pass<D::Storage>> {
        let parts = self.all_partitions();
        if parts.is_empty() {
            return None;
        }
        let first = self.cleaner.borrow_mut().budget.next_turn(parts.len());
        for p in parts.iter().cycle().skip(first).take(parts.len()) {
            let Some(config) = self.clean_config(p) else { continue };
            if p.is_failed() || p.is_closed() {
                continue;
            }
            let log = p.log.lock().await;
            let mut schedule = p.clean.get();
            schedule.observe_cuts(log.cuts());
            let map_from = schedule.map_from(log.log_start());
            let clean_below = p.readable_end().min(log.durable_offset());
            let due = schedule.due(log.cleanable(map_from, clean_below), now, config.delete_retention_ms);
            p.clean.set(schedule);
            if !due {
                continue;
            }
            match log.plan_clean(map_from, clean_below, config, now) {
                Some(plan) => return Some(Pass { partition: p.clone(), plan, all_swapped: true }),
                None => {
                    schedule.pass_done(None, true, now);
                    p.clean.set(schedule);
                }
            }
        }
        None
    }

    /// The cleaning settings of `p`'s topic, if it is compacted.
    fn clean_config(&self, p: &Partition<D::Storage>) -> Option<CleanConfig> {
        let (topic, _) = p.key();
        let topics = self.topics.borrow();
        let meta = topics.topics.get(&topic).filter(|t| t.cleanup_policy.compacts())?;
        let delete_retention_ms = meta.delete_retention_ms.unwrap_or(self.config.delete_retention_ms);
        Some(CleanConfig { delete_retention_ms, ..CleanConfig::default() })
    }

    /// One step of `pass`; the pass back while it goes on.
    async fn run_step(&self, mut pass: Pass<D::Storage>, grant: u64, now: u64) -> Option<Pass<D::Storage>> {
        let p = pass.partition.clone();
        // A deleted partition's files went with it; a failed log is reopened as a new one.
        if p.is_closed() || p.is_failed() {
            return None;
        }
        let step = match pass.plan.step(grant).await {
            Ok(step) => step,
            Err(e) if p.is_closed() => {
                tracing::debug!(partition = %p.name, error = %e, "deleted while cleaned");
                return None;
            }
            Err(e) => return self.clean_failed(&p, now, &e),
        };
        self.cleaner.borrow_mut().budget.spend(step.read_bytes + step.written_bytes);
        if let Some(cleaned) = step.cleaned {
            let base = cleaned.base;
            let mut log = p.log.lock().await;
            match log.complete_clean(cleaned).await {
                // A segment retention deleted meanwhile leaves nothing behind that the
                // pass's keys supersede: the checkpoint may still move.
                Ok(swapped) => pass.all_swapped &= swapped || base < log.log_start(),
                Err(e) => return self.clean_failed(&p, now, &e),
            }
        }
        if !step.done {
            return Some(pass);
        }
        let cuts = p.log.lock().await.cuts();
        let mut schedule = p.clean.get();
        let cut = schedule.observe_cuts(cuts);
        schedule.pass_done(pass.plan.mapped_to(), pass.all_swapped && !cut, now);
        p.clean.set(schedule);
        tracing::debug!(partition = %p.name, mapped_to = ?pass.plan.mapped_to(), "cleaning pass done");
        None
    }

    fn clean_failed<T>(&self, p: &Partition<D::Storage>, now: u64, e: &weir_log::LogError) -> Option<T> {
        let mut schedule = p.clean.get();
        schedule.failed(now);
        p.clean.set(schedule);
        let pause_ms = weir_log::compaction::schedule::CLEAN_ERROR_PAUSE_MS;
        tracing::error!(partition = %p.name, error = %e, pause_ms, "cleaning failed; pausing it");
        None
    }
}

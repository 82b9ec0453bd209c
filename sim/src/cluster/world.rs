//! One simulated run: three data nodes, a controller and clients on a simulated network, faults
//! drawn from the seed, the checkers after every step, then a liveness phase.

use super::checkers::{Checkers, ReplicaView, Violation};
use super::clients::{CLIENT_BASE, Producer};
use super::controller_host::ControllerHost;
use super::data_node::{Before, CONTROLLER, DataNode, NodeTiming, Outbox};
use super::faults::FaultPlan;
use super::model::BatchMeta;
use super::msg::Msg;
use super::network::{Network, NetworkConfig};
use super::rng::Streams;
use super::store::{Retention, metas};
use weir_log::storage::mem::CrashMode;
use weir_replication::{Acks, ControllerConfig, NodeId, ReplicaConfig};

std::thread_local! {
    /// The step the current run is at, for reporting a panic.
    pub(crate) static STEP: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether to print every delivery and log event (`WEIR_SIM_TRACE=1`), for replaying a seed.
pub(crate) fn trace() -> bool {
    thread_local! {
        static ON: bool = std::env::var_os("WEIR_SIM_TRACE").is_some();
    }
    ON.with(|on| *on)
}

/// A message without its payload bytes.
fn brief(msg: &Msg) -> String {
    match msg {
        Msg::FetchAnswer(a, p) => format!("{a:?} + {} bytes", p.len()),
        Msg::Produce { produce, acks, batch } => {
            format!("Produce {produce} {acks:?} + {} bytes", batch.len())
        }
        m => format!("{m:?}"),
    }
}

/// What a run did, for sweeps to sum up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub steps: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub elections: u64,
    pub truncations: u64,
    pub acked_batches: u64,
    pub failovers: u64,
    /// Leaders the controller moved back to the preferred replica.
    pub preferred_elections: u64,
    pub consumed_batches: u64,
    /// Appends a full disk refused.
    pub disk_full_refusals: u64,
    /// Logs that failed (a failed sync) and were reopened in place.
    pub log_reopens: u64,
    /// Messages whose batches a bit flip damaged on the way.
    pub bit_flips: u64,
}

/// A failed run: the seed, the step and what broke.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} failed at step {}: {}\nreplay: cargo run --release -p weir-sim -- --seed {}",
            self.seed, self.step, self.what, self.seed
        )
    }
}

/// Bounds of a run.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Steps (of 1 ms) with faults.
    pub fault_steps: u64,
    /// Steps allowed after the faults heal for the cluster to converge.
    pub liveness_steps_max: u64,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self { fault_steps: 4_000, liveness_steps_max: 30_000 }
    }
}

/// The simulated cluster.
pub(crate) struct World {
    pub(crate) now_ms: u64,
    pub(crate) rng: Streams,
    pub(crate) nodes: Vec<DataNode>,
    pub(crate) controller: ControllerHost,
    pub(crate) net: Network<Msg>,
    producers: Vec<Producer>,
    consumer_at: u64,
    /// The node the consumer reads from, while it believes it leads.
    consumer_hint: Option<NodeId>,
    /// acks=all acknowledgements since the faults healed: liveness needs one.
    acked_after_heal: u64,
    healed: bool,
    pub(crate) checkers: Checkers,
    pub(crate) replica_config: ReplicaConfig,
    timing: NodeTiming,
    pub(crate) stats: RunStats,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = Streams::new(seed);
        let min_insync_replicas = rng.shape.usize(1..=2);
        let replica_config = ReplicaConfig {
            min_insync_replicas,
            replica_lag_time_max_ms: 400,
            fetch_backoff_ms: 10,
            fetch_timeout_ms: 200,
            alter_timeout_ms: 200,
        };
        let net = NetworkConfig {
            delay_min_ms: 1,
            delay_max_ms: rng.shape.u64(1..=20),
            drop_per_million: rng.shape.u32(0..=30_000),
            duplicate_per_million: rng.shape.u32(0..=20_000),
        };
        let ids: Vec<NodeId> = (0..3).map(NodeId).collect();
        // Most runs delete old segments, by size or by age, so followers fall behind a leader's
        // log start and start over there, and idle logs empty.
        let retention = match rng.shape.u32(0..3) {
            0 => Retention::None,
            1 => Retention::Bytes(rng.shape.u64(16 << 10..=256 << 10)),
            _ => Retention::Time {
                retention_ms: rng.shape.u64(200..=2_000),
                segment_ms: rng.shape.u64(100..=1_000),
            },
        };
        let controller_config =
            ControllerConfig { min_insync_replicas, unclean_leader_election: false, session_timeout_ms: 300 };
        let timing = NodeTiming {
            heartbeat_interval_ms: 50,
            append_ms_max: rng.shape.u64(0..=2),
            flush_ms_max: rng.shape.u64(1..=8),
        };
        let mut w = Self {
            now_ms: 0,
            nodes: ids.iter().map(|&id| DataNode::new(id, retention)).collect(),
            controller: ControllerHost::new(controller_config, &ids, 0),
            net: Network::new(net),
            producers: (0..4).map(Producer::new).collect(),
            consumer_at: 0,
            consumer_hint: None,
            acked_after_heal: 0,
            healed: false,
            checkers: Checkers::default(),
            replica_config,
            timing,
            stats: RunStats::default(),
            rng,
        };
        for n in &mut w.nodes {
            n.start(0, replica_config);
        }
        w
    }

    /// The replicas that are up, as the checkers see them.
    pub(crate) fn views(&self) -> Vec<ReplicaView<'_>> {
        self.nodes
            .iter()
            .filter_map(|n| n.up.as_ref().map(|r| (n.id, r)))
            .map(|(node, r)| {
                let o = r.replica.offsets();
                ReplicaView {
                    node,
                    incarnation: r.replica.incarnation(),
                    model: &r.store.model,
                    high_watermark: o.high_watermark(),
                    durable_end: r.replica.durable_end(),
                    leads: r.replica.is_leader().then_some(o.leader_epoch()),
                }
            })
            .collect()
    }

    fn isr_views(&self) -> Vec<ReplicaView<'_>> {
        let isr = self.controller.state().isr.clone();
        self.views().into_iter().filter(|v| isr.contains(&v.node)).collect()
    }

    /// One millisecond: faults, deliveries, the controller, every node, the clients, checks.
    fn step(&mut self, plan: &mut FaultPlan, producing: bool) -> Result<(), Violation> {
        self.now_ms += 1;
        self.stats.steps += 1;
        STEP.set(self.stats.steps);
        plan.apply(self)?;
        let mut out = Outbox::new();
        while let Some(env) = self.net.poll(self.now_ms) {
            self.deliver(env.from, env.to, env.msg, &mut out)?;
            self.send_all(env.to, &mut out);
        }
        self.controller.tick(self.now_ms, &mut out);
        self.send_all(CONTROLLER, &mut out);
        for i in 0..self.nodes.len() {
            let ok = self.nodes[i].step(self.now_ms, &mut self.rng.disk, self.timing, &mut out);
            self.raise_retention_floor();
            let id = self.nodes[i].id;
            self.send_all(id, &mut out);
            if !ok {
                // A log failed halfway through an operation: the node reopens it, or crashes
                // right there, leaving the operation's first steps on disk.
                if self.rng.faults.bool() {
                    let mode = CrashMode::Torn { seed: self.rng.faults.u64(..) };
                    let before = self.nodes[i].up.as_ref().map(Before::of);
                    self.nodes[i].crash(mode);
                    self.nodes[i].before_crash = before;
                    self.restart(i)?;
                } else {
                    self.reopen(i)?;
                }
            }
        }
        self.check_changes()?;
        if producing {
            self.produce(&mut out);
            self.consume()?;
        }
        Ok(())
    }

    pub(crate) fn send_all(&mut self, from: NodeId, out: &mut Outbox) {
        for (to, msg) in out.drain(..) {
            let (msg, flipped) = super::faults::maybe_damage(&mut self.rng.network, msg);
            self.stats.bit_flips += u64::from(flipped);
            self.net.send(&mut self.rng.network, self.now_ms, from, to, msg);
        }
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: Msg, out: &mut Outbox) -> Result<(), Violation> {
        if trace() {
            eprintln!("{} {from:?} -> {to:?}: {}", self.now_ms, brief(&msg));
        }
        if to == CONTROLLER {
            self.controller.receive(self.now_ms, from, msg, out);
        } else if to.0 >= CLIENT_BASE {
            let Msg::ProduceAnswer { produce, result } = msg else { unreachable!("clients get answers") };
            let p = &mut self.producers[(to.0 - CLIENT_BASE) as usize];
            if let Some(a) = p.answer(produce, result)
                && a.acks == Acks::All
            {
                self.stats.acked_batches += 1;
                self.acked_after_heal += u64::from(self.healed);
                let meta =
                    BatchMeta { base: a.range.base, end: a.range.end, epoch: a.range.epoch, crc: a.crc };
                let mut checkers = std::mem::take(&mut self.checkers);
                let r = checkers.on_acked(meta, &self.isr_views());
                self.checkers = checkers;
                r?;
            }
        } else {
            self.nodes[to.0 as usize].receive(self.now_ms, from, msg, out);
        }
        Ok(())
    }

    fn produce(&mut self, out: &mut Outbox) {
        let leader = self.controller.state().leader;
        for i in 0..self.producers.len() {
            let id = self.producers[i].id;
            self.producers[i].step(self.now_ms, &mut self.rng.workload, leader, out);
            self.send_all(id, out);
        }
    }

    /// The consumer reads from the leader up to its high watermark, now and then.
    fn consume(&mut self) -> Result<(), Violation> {
        if !super::rng::chance(&mut self.rng.workload, 50_000) {
            return Ok(());
        }
        // The consumer keeps reading from the node it found leading while that node believes it
        // leads: a deposed leader that does not know it yet serves it too.
        let believes =
            |n: NodeId| self.nodes[n.0 as usize].up.as_ref().is_some_and(|r| r.replica.is_leader());
        if !self.consumer_hint.is_some_and(believes) {
            self.consumer_hint = self.controller.state().leader;
        }
        let Some(leader) = self.consumer_hint else { return Ok(()) };
        let Some(r) = &self.nodes[leader.0 as usize].up else { return Ok(()) };
        let hw = r.replica.offsets().high_watermark();
        // What retention deleted, the consumer skips, as a Kafka consumer reset to earliest; a
        // log start past every retention point would be lost data (see `each_step`).
        self.consumer_at =
            self.consumer_at.max(r.replica.offsets().log_start().min(self.checkers.retention_floor));
        if self.consumer_at < r.replica.offsets().log_start() {
            return Ok(());
        }
        if !r.replica.is_leader() || self.consumer_at >= hw {
            return Ok(());
        }
        let bytes = r.store.read(self.consumer_at, hw).expect("a leader reads below its high watermark");
        let batches = metas(&bytes);
        self.checkers.on_consumed(&batches, hw)?;
        self.stats.consumed_batches += batches.len() as u64;
        self.consumer_at = batches.last().map_or(self.consumer_at, |b| b.end);
        Ok(())
    }

    /// The log of node `i` failed: the node reopens it with a new replica, as a restart of its
    /// partition (the disk is not crashed: what was written stays).
    fn reopen(&mut self, i: usize) -> Result<(), Violation> {
        self.stats.log_reopens += 1;
        let r = self.nodes[i].up.take().expect("a node reopens its log while up");
        self.nodes[i].before_crash = Some(Before::of(&r));
        self.restart(i)
    }

    /// Starts node `i` again and checks what it recovered.
    pub(crate) fn restart(&mut self, i: usize) -> Result<(), Violation> {
        let id = self.nodes[i].id;
        self.nodes[i].start(self.now_ms, self.replica_config);
        self.checkers.on_restart(id);
        if let Some(before) = self.nodes[i].before_crash.take() {
            if before.model.start() > self.checkers.retention_floor {
                let detail =
                    format!("{id:?}'s log started at {}, past every retention point", before.model.start());
                return Err(Violation { invariant: "acked-durable", detail });
            }
            let model = &self.nodes[i].up.as_ref().expect("just started").store.model;
            Checkers::on_recovered(id, &before, model)?;
            // A start that failed retention left past the old one (checked above against what
            // it allowed) is a retention point.
            if before.from_retention {
                self.nodes[i].retained_to = self.nodes[i].retained_to.max(model.start());
                self.raise_retention_floor();
            }
        }
        let views = self.views();
        let me = views.iter().find(|v| v.node == id).expect("just started");
        for o in views.iter().filter(|v| v.node != id) {
            Checkers::prefixes_agree(me, o)?;
        }
        if self.controller.state().isr.contains(&id) {
            self.checkers.holds_all_acked(me)?;
        }
        Ok(())
    }

    /// The checkers learn how far retention went anywhere, as soon as it did.
    fn raise_retention_floor(&mut self) {
        let floor = self.nodes.iter().map(|n| n.retained_to).max().unwrap_or(0);
        self.checkers.retention_floor = self.checkers.retention_floor.max(floor);
    }

    /// Runs the checkers on what changed in the step: appends, truncations, high watermarks,
    /// controller decisions, leaders.
    fn check_changes(&mut self) -> Result<(), Violation> {
        let mut checkers = std::mem::take(&mut self.checkers);
        let r = self.check_with(&mut checkers);
        self.checkers = checkers;
        r
    }

    fn check_with(&mut self, checkers: &mut Checkers) -> Result<(), Violation> {
        let changes: Vec<_> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.up.as_mut().map(|r| (n.id, std::mem::take(&mut r.store.changes))))
            .collect();
        let states: Vec<_> = self.controller.committed.drain(..).collect();
        let views = self.views();
        for (node, changes) in changes {
            let me = views.iter().find(|v| v.node == node).expect("up");
            let others: Vec<_> = views.iter().filter(|v| v.node != node).copied().collect();
            for c in changes {
                match c {
                    super::store::ModelChange::Appended(meta) => checkers.on_appended(me, &meta, &others)?,
                    super::store::ModelChange::Truncated(removed) => checkers.on_truncated(node, &removed)?,
                }
            }
        }
        for s in &states {
            for joined in checkers.on_state(s)? {
                if let Some(v) = views.iter().find(|v| v.node == joined) {
                    checkers.holds_all_acked(v)?;
                }
            }
        }
        for v in &views {
            checkers.on_high_watermark(v)?;
        }
        checkers.each_step(&views, &self.controller.state().isr)
    }

    /// Whether the cluster converged: every node up, every log equal, high watermark = log end
    /// everywhere, the ISR full, a leader.
    fn converged(&self) -> bool {
        let s = self.controller.state();
        let views = self.views();
        views.len() == self.nodes.len()
            && s.leader.is_some()
            && s.isr.len() == self.nodes.len()
            && self.controller.up.is_some()
            && views.iter().all(|v| {
                // Retention may have moved the logs' starts apart: equal where both hold batches.
                let last = views[0].model.last_base();
                v.model.end() == views[0].model.end()
                    && last.is_none_or(|b| super::model::agree_up_to(v.model, views[0].model, b))
                    && v.high_watermark == v.model.end()
            })
    }

    fn describe(&self) -> String {
        let s = self.controller.state();
        let mut d = format!("controller: {s:?}; ");
        for n in &self.nodes {
            match &n.up {
                Some(r) => {
                    let o = r.replica.offsets();
                    d += &format!(
                        "{:?}: leader {:?} epoch {} hw {} end {} durable {} batches {}; ",
                        n.id,
                        r.replica.leader(),
                        o.leader_epoch(),
                        o.high_watermark(),
                        o.log_end(),
                        r.replica.durable_end(),
                        r.store.model.len()
                    );
                    if std::env::var_os("WEIR_SIM_DEBUG").is_some() {
                        d += &format!("\n{:#?}\n", r.replica);
                    }
                }
                None => d += &format!("{:?}: down; ", n.id),
            }
        }
        d
    }
}

/// Runs one seed: faults for `limits.fault_steps`, then heals everything and waits for the
/// cluster to converge. Panics inside the state machines count as failures too (the caller
/// catches them: see [`super::run_seed`]).
pub fn run(seed: u64, limits: RunLimits) -> Result<RunStats, Failure> {
    let mut w = World::new(seed);
    let mut plan = FaultPlan::new(&mut w.rng.shape);
    let fail = |w: &World, v: Violation| Failure { seed, step: w.stats.steps, what: v.to_string() };
    for _ in 0..limits.fault_steps {
        w.step(&mut plan, true).map_err(|v| fail(&w, v))?;
    }
    plan.heal_all(&mut w).map_err(|v| fail(&w, v))?;
    w.healed = true;
    for _ in 0..limits.liveness_steps_max {
        if w.acked_after_heal > 0 && w.converged() {
            // Invariant 1, forever: every replica holds every acknowledged batch at the end.
            for v in w.views() {
                w.checkers.holds_all_acked(&v).map_err(|v| fail(&w, v))?;
            }
            return Ok(w.finish());
        }
        // Producers go on until one acks=all batch is acknowledged after the heal.
        let producing = w.acked_after_heal == 0;
        w.step(&mut plan, producing).map_err(|v| fail(&w, v))?;
    }
    let what = format!(
        "liveness: not converged {} steps after healing; {}",
        limits.liveness_steps_max,
        w.describe()
    );
    Err(Failure { seed, step: w.stats.steps, what })
}

impl World {
    fn finish(mut self) -> RunStats {
        self.stats.crashes = self.nodes.iter().map(|n| n.crashes).sum();
        self.stats.disk_full_refusals = self.nodes.iter().map(|n| n.refusals).sum();
        self.stats.elections = self.checkers.elections;
        self.stats.truncations = self.checkers.truncations;
        self.stats.failovers = self.controller.failovers;
        self.stats.preferred_elections = self.controller.preferred_elections;
        self.stats
    }
}

//! The faults of a run, drawn from its `faults` stream at rates drawn from its `shape` stream:
//! node crashes (losing or tearing unsynced writes) and restarts, network partitions (one way
//! or both) and healing, a full disk, failed syncs, controller failover, and bit flips on the
//! wire.

use super::checkers::Violation;
use super::msg::Msg;
use super::rng::chance;
use super::world::World;
use fastrand::Rng;
use std::rc::Rc;
use weir_log::batch::header::CRC_START;
use weir_log::storage::mem::CrashMode;
use weir_replication::NodeId;

/// Rates (per million steps) and what is scheduled to end.
#[derive(Debug)]
pub struct FaultPlan {
    crash_rate: u32,
    partition_rate: u32,
    controller_crash_rate: u32,
    disk_full_rate: u32,
    sync_fail_rate: u32,
    restarts: Vec<(u64, usize)>,
    controller_back_ms: Option<u64>,
    heal_ms: Option<u64>,
    disk_full_until: Vec<(u64, usize)>,
    /// Cleared by [`heal_all`](Self::heal_all): no new faults strike after it.
    striking: bool,
}

impl FaultPlan {
    pub fn new(shape: &mut Rng) -> Self {
        Self {
            crash_rate: shape.u32(0..=2_000),
            partition_rate: shape.u32(0..=1_500),
            controller_crash_rate: shape.u32(0..=500),
            disk_full_rate: shape.u32(0..=1_000),
            sync_fail_rate: shape.u32(0..=300),
            restarts: Vec::new(),
            controller_back_ms: None,
            heal_ms: None,
            disk_full_until: Vec::new(),
            striking: true,
        }
    }

    /// Ends the faults that are due, then strikes new ones.
    pub(crate) fn apply(&mut self, w: &mut World) -> Result<(), Violation> {
        self.end_due(w)?;
        if !self.striking {
            return Ok(());
        }
        let now = w.now_ms;
        let f = &mut w.rng.faults;
        if chance(f, self.crash_rate) {
            let up: Vec<usize> = (0..w.nodes.len()).filter(|&i| w.nodes[i].up.is_some()).collect();
            if !up.is_empty() {
                let i = up[f.usize(..up.len())];
                let mode =
                    if f.bool() { CrashMode::Torn { seed: f.u64(..) } } else { CrashMode::LoseUnsynced };
                w.nodes[i].crash(mode);
                self.restarts.push((now + f.u64(20..=1_500), i));
            }
        }
        if w.controller.up.is_some() && chance(f, self.controller_crash_rate) {
            w.controller.crash();
            self.controller_back_ms = Some(now + f.u64(50..=1_000));
        }
        if self.heal_ms.is_none() && chance(f, self.partition_rate) {
            self.partition(w);
        }
        let f = &mut w.rng.faults;
        if chance(f, self.disk_full_rate) {
            let i = f.usize(..w.nodes.len());
            w.nodes[i].storage.faults().disk_full.set(true);
            self.disk_full_until.push((now + f.u64(10..=500), i));
        }
        if chance(f, self.sync_fail_rate) {
            let i = f.usize(..w.nodes.len());
            w.nodes[i].storage.faults().fail_sync_in.set(f.u32(1..=3));
        }
        Ok(())
    }

    fn end_due(&mut self, w: &mut World) -> Result<(), Violation> {
        let now = w.now_ms;
        let due: Vec<usize> = self.restarts.iter().filter(|(at, _)| *at <= now).map(|(_, i)| *i).collect();
        self.restarts.retain(|(at, _)| *at > now);
        for i in due {
            w.restart(i)?;
        }
        if self.controller_back_ms.is_some_and(|at| at <= now) {
            self.controller_back_ms = None;
            w.controller.recover(now);
        }
        if self.heal_ms.is_some_and(|at| at <= now) {
            self.heal_ms = None;
            w.net.heal();
        }
        for (_, i) in self.disk_full_until.iter().filter(|(at, _)| *at <= now) {
            w.nodes[*i].storage.faults().disk_full.set(false);
        }
        self.disk_full_until.retain(|(at, _)| *at > now);
        Ok(())
    }

    /// Cuts one node off from the others, from the controller, or both; one way or both ways.
    fn partition(&mut self, w: &mut World) {
        let f = &mut w.rng.faults;
        let n = w.nodes.len();
        let lone = NodeId(f.usize(..n) as u32);
        let peers: Vec<NodeId> = (0..n as u32).map(NodeId).filter(|&p| p != lone).collect();
        let controller = [super::data_node::CONTROLLER];
        let one_way = chance(f, 300_000);
        match f.u32(0..3) {
            0 => w.net.partition(&[lone], &peers, one_way),
            1 => w.net.partition(&[lone], &controller, one_way),
            _ => {
                w.net.partition(&[lone], &peers, one_way);
                w.net.partition(&[lone], &controller, one_way);
            }
        }
        self.heal_ms = Some(w.now_ms + f.u64(50..=2_000));
        w.stats.partitions += 1;
    }

    /// Ends every fault: the liveness phase starts from a healthy cluster.
    pub(crate) fn heal_all(&mut self, w: &mut World) -> Result<(), Violation> {
        self.striking = false;
        w.net.heal();
        self.heal_ms = None;
        self.restarts.clear();
        self.disk_full_until.clear();
        for n in &w.nodes {
            n.storage.faults().disk_full.set(false);
            n.storage.faults().fail_sync_in.set(0);
        }
        if w.controller.up.is_none() {
            w.controller.recover(w.now_ms);
        }
        self.controller_back_ms = None;
        for i in 0..w.nodes.len() {
            if w.nodes[i].up.is_none() {
                w.restart(i)?;
            }
        }
        Ok(())
    }
}

/// Flips a bit of a message's batches now and then, inside what the batch CRC covers (the
/// transport's own checksums would catch the rest): the receiver must refuse the batch.
/// Returns the message and whether it was damaged.
pub fn maybe_damage(rng: &mut Rng, msg: Msg) -> (Msg, bool) {
    if !chance(rng, 1_000) {
        return (msg, false);
    }
    // A byte of one batch's CRC-covered part: a payload holds whole batches, each with its
    // own uncovered offset and epoch fields.
    let flip = |rng: &mut Rng, p: &super::msg::Payload| {
        let starts = batch_starts(p);
        let Some(&(start, len)) = (!starts.is_empty()).then(|| &starts[rng.usize(..starts.len())]) else {
            return p.clone();
        };
        let mut v = (**p).clone();
        let at = rng.usize(start + CRC_START..start + len);
        v[at] ^= 1 << rng.u32(0..8);
        Rc::new(v)
    };
    match msg {
        Msg::FetchAnswer(a, p) if !p.is_empty() => (Msg::FetchAnswer(a, flip(rng, &p)), true),
        Msg::Produce { produce, acks, batch } => {
            (Msg::Produce { produce, acks, batch: flip(rng, &batch) }, true)
        }
        m => (m, false),
    }
}

/// Where each batch of a payload starts, and its length.
fn batch_starts(bytes: &[u8]) -> Vec<(usize, usize)> {
    let views = super::msg::batch_views(bytes).expect("what is sent is valid until flipped");
    let lens = views.iter().map(|v| v.bytes().len());
    lens.scan(0, |at, len| Some((std::mem::replace(at, *at + len), len))).collect()
}

//! The simulated controller: the sans-IO [`Controller`] behind the network, which can crash and
//! fail over. Its durable state ([`ControllerState`], what the metadata quorum holds) survives;
//! sessions start over in the new one.

use super::data_node::Outbox;
use super::msg::Msg;
use weir_replication::{Controller, ControllerConfig, ControllerState, NodeId, PartitionId, PartitionState};

/// Preferred-leader elections per tick: the simulated cluster has one partition. The controller
/// tries one at every tick (every millisecond), far more often than a real host, so that a
/// replica taking its leadership back the moment it rejoins the ISR meets every race.
const PREFERRED_ELECTIONS_PER_TICK_MAX: usize = 1;

/// The controller, up or failing over.
#[derive(Debug)]
pub struct ControllerHost {
    config: ControllerConfig,
    nodes: Vec<NodeId>,
    /// `None` while failing over.
    pub up: Option<Controller>,
    /// What the metadata log holds: updated after every change, kept across failovers.
    durable: ControllerState,
    pub failovers: u64,
    /// Leaders moved back to the preferred replica.
    pub preferred_elections: u64,
    /// Every state the controller committed, in order, for the checkers.
    pub committed: Vec<PartitionState>,
}

impl ControllerHost {
    /// A controller with one partition replicated on every node.
    pub fn new(config: ControllerConfig, nodes: &[NodeId], now_ms: u64) -> Self {
        let mut c = Controller::new(config, nodes, now_ms);
        for &n in nodes {
            c.handle_heartbeat(now_ms, n, 0).expect("a known node");
        }
        c.create_partition(PartitionId(0), nodes.to_vec(), now_ms).expect("the partition is new");
        let mut host = Self {
            config,
            nodes: nodes.to_vec(),
            durable: ControllerState::default(),
            up: Some(c),
            failovers: 0,
            preferred_elections: 0,
            committed: Vec::new(),
        };
        host.drain(&mut Vec::new());
        host
    }

    pub fn state(&self) -> &PartitionState {
        self.durable.partitions.get(&PartitionId(0)).expect("the partition exists")
    }

    pub fn crash(&mut self) {
        self.up = None;
    }

    /// A new controller takes over from the durable state.
    pub fn recover(&mut self, now_ms: u64) {
        assert!(self.up.is_none());
        self.failovers += 1;
        self.up = Some(Controller::recover(self.config, self.durable.clone(), &self.nodes, now_ms));
    }

    pub fn receive(&mut self, now_ms: u64, from: NodeId, msg: Msg, out: &mut Outbox) {
        let Some(c) = &mut self.up else { return };
        match msg {
            Msg::Heartbeat { incarnation } => {
                // A heartbeat from an older incarnation (delayed) is refused; nothing to say.
                if c.handle_heartbeat(now_ms, from, incarnation).is_ok() {
                    let state = c.partition(PartitionId(0)).expect("the partition exists").clone();
                    out.push((from, Msg::Registered { incarnation, state }));
                }
            }
            Msg::Alter(req) => {
                let answer = c.handle_alter_partition(now_ms, &req);
                out.push((from, Msg::AlterAnswer(req, answer)));
            }
            _ => unreachable!("not sent to the controller"),
        }
        self.drain(out);
    }

    pub fn tick(&mut self, now_ms: u64, out: &mut Outbox) {
        if let Some(c) = &mut self.up {
            c.tick(now_ms);
            let moved = c.elect_preferred_leaders(now_ms, PREFERRED_ELECTIONS_PER_TICK_MAX);
            self.preferred_elections += moved as u64;
        }
        self.drain(out);
    }

    /// Records every change durably (and for the checkers, one by one), then sends each
    /// partition's newest state to every replica.
    fn drain(&mut self, out: &mut Outbox) {
        let Some(c) = &mut self.up else { return };
        while let Some((id, state)) = c.poll_record() {
            self.durable.partitions.insert(id, state.clone());
            self.committed.push(state);
        }
        // Updates carry the newest states, which the records already made durable.
        while let Some((id, state)) = c.poll_update() {
            self.durable.partitions.insert(id, state.clone());
            for &n in &self.nodes {
                out.push((n, Msg::State(state.clone())));
            }
        }
    }
}

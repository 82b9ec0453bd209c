//! A seeded simulation of a group: members join, heartbeat, revoke late, leave, leave
//! statically and come back, pause past their session, crash, change subscriptions; topics
//! grow; the coordinator fails over to a replay of its records. After every step: no partition
//! is owned by two members, and each member owns only what the coordinator holds for it. After
//! a quiet spell: every partition is owned by exactly one member, balanced (sticky).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use weir_groups::{Assignor, CommittedOffset, Coordinator, GroupError, GroupState, HeartbeatRequest};

const SESSION: u32 = 6000;
const REBALANCE: u32 = 8000;
const INTERVAL: u64 = 2000;
const TOPICS: [&str; 3] = ["a", "b", "c"];

type Partition = (String, u32);

/// A member process as the protocol expects it to behave.
#[derive(Debug, Default)]
struct Client {
    member_id: String,
    instance: Option<String>,
    epoch: i32,
    topics: Vec<String>,
    new_topics: Option<Vec<String>>,
    owned: BTreeSet<Partition>,
    target: BTreeSet<Partition>,
    reported: BTreeSet<Partition>,
    revoke_at: Option<u64>,
    revoke_since: Option<u64>,
    last_ok: u64,
    next_beat: u64,
    must_join: bool,
    alive: bool,
    paused_until: Option<u64>,
    /// Left with -2: back (with a join under its instance id) at this time.
    back_at: Option<u64>,
}

struct Sim {
    rng: Rng,
    now: u64,
    coordinator: Coordinator,
    log: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    topics: BTreeMap<String, u32>,
    clients: Vec<Client>,
    assignor: Assignor,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let assignor = match seed % 5 {
            0 => Assignor::Range,
            1 => Assignor::RoundRobin,
            _ => Assignor::Sticky,
        };
        let topics = TOPICS.iter().map(|t| (t.to_string(), 1 + rng.below(6) as u32)).collect();
        Sim {
            rng,
            now: 0,
            coordinator: Coordinator::new(Default::default()),
            log: Vec::new(),
            topics,
            clients: Vec::new(),
            assignor,
        }
    }

    fn subscription(&mut self) -> Vec<String> {
        let mut s: Vec<String> =
            TOPICS.iter().filter(|_| self.rng.chance(50)).map(|t| t.to_string()).collect();
        if s.is_empty() {
            s.push(TOPICS[self.rng.below(3) as usize].to_string());
        }
        s
    }

    fn add_client(&mut self) {
        let instance = self.rng.chance(30).then(|| format!("i{}", self.clients.len()));
        let topics = self.subscription();
        let now = self.now;
        self.clients.push(Client {
            instance,
            topics,
            must_join: true,
            alive: true,
            next_beat: now,
            last_ok: now,
            ..Default::default()
        });
    }

    fn record(&mut self) {
        for r in self.coordinator.take_records() {
            self.log.push((r.key, r.value));
        }
    }

    /// A client that has not heard back within its session, or has not finished a revocation
    /// within its rebalance timeout, stops consuming: the coordinator may have removed it.
    fn self_fence(&mut self) {
        let now = self.now;
        for c in self.clients.iter_mut().filter(|c| c.alive && !c.must_join) {
            let session_over = now >= c.last_ok + u64::from(SESSION);
            let revoke_over = c.revoke_since.is_some_and(|s| now >= s + u64::from(REBALANCE));
            if session_over || revoke_over {
                c.owned.clear();
                c.must_join = true;
                c.revoke_at = None;
                c.revoke_since = None;
            }
        }
    }

    fn request(&mut self, i: usize) -> HeartbeatRequest {
        let c = &mut self.clients[i];
        if let Some(at) = c.revoke_at.filter(|&at| at <= self.now) {
            let _ = at;
            let target = c.target.clone();
            c.owned.retain(|p| target.contains(p));
            c.revoke_at = None;
        }
        let list = |s: &BTreeSet<Partition>| {
            let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
            s.iter().for_each(|(t, p)| by_topic.entry(t).or_default().push(*p));
            by_topic.into_iter().map(|(t, ps)| tp(t, &ps)).collect::<Vec<_>>()
        };
        let send_owned = c.owned != c.reported || self.rng.chance(30);
        HeartbeatRequest {
            member_id: c.member_id.clone(),
            instance_id: c.instance.clone(),
            member_epoch: if c.must_join { 0 } else { c.epoch },
            topics: if c.must_join {
                Some(c.new_topics.clone().unwrap_or(c.topics.clone()))
            } else {
                c.new_topics.clone()
            },
            owned: send_owned.then(|| list(&c.owned)),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            assignor: Some(self.assignor),
        }
    }

    fn heartbeat(&mut self, i: usize) {
        let req = self.request(i);
        let joining = req.member_epoch == 0;
        let report = if joining { Some(BTreeSet::new()) } else { req.owned.as_ref().map(|o| flat(o)) };
        let result = self.coordinator.heartbeat(self.now, "g", req, &self.topics);
        self.record();
        let (now, delay) = (self.now, self.rng.below(3000));
        let next = now + INTERVAL / 2 + self.rng.below(INTERVAL / 2);
        let c = &mut self.clients[i];
        match result {
            Ok(r) => {
                let effective = report.unwrap_or_else(|| c.reported.clone());
                if effective.is_subset(&c.target) || joining {
                    c.revoke_since = None;
                }
                c.reported = effective;
                (c.member_id, c.epoch, c.last_ok, c.next_beat, c.must_join) =
                    (r.member_id, r.member_epoch, now, next, false);
                if let Some(topics) = c.new_topics.take() {
                    c.topics = topics;
                }
                if let Some(a) = r.assignment {
                    c.target = flat(&a);
                    c.owned.extend(c.target.iter().cloned());
                }
                if !c.owned.is_subset(&c.target) {
                    c.revoke_at.get_or_insert(now + delay);
                    c.revoke_since.get_or_insert(now);
                }
            }
            Err(GroupError::UnknownMemberId { .. }) => {
                (c.owned, c.member_id, c.must_join, c.next_beat) =
                    (BTreeSet::new(), String::new(), true, now);
                (c.revoke_at, c.revoke_since) = (None, None);
            }
            Err(GroupError::FencedMemberEpoch { .. }) => {
                (c.owned, c.must_join, c.next_beat, c.revoke_at, c.revoke_since) =
                    (BTreeSet::new(), true, now, None, None);
            }
            Err(GroupError::UnreleasedInstanceId { .. }) => c.next_beat = now + 500,
            Err(e) => panic!("unexpected {e:?} at {now}"),
        }
    }

    fn live(&self) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|&i| {
                let c = &self.clients[i];
                c.alive && c.paused_until.is_none() && c.back_at.is_none()
            })
            .collect()
    }

    fn pick_live(&mut self) -> Option<usize> {
        let live = self.live();
        (!live.is_empty()).then(|| live[self.rng.below(live.len() as u64) as usize])
    }

    fn leave(&mut self, i: usize, epoch: i32) {
        let c = &mut self.clients[i];
        c.owned.clear();
        if c.must_join || c.member_id.is_empty() {
            return;
        }
        let req = HeartbeatRequest { instance_id: c.instance.clone(), ..beat(&c.member_id, epoch, None) };
        let result = self.coordinator.heartbeat(self.now, "g", req, &self.topics);
        self.record();
        assert!(matches!(result, Ok(_) | Err(GroupError::UnknownMemberId { .. })), "{result:?}");
    }

    fn chaos_event(&mut self) {
        let roll = self.rng.below(100);
        let now = self.now;
        match roll {
            0..=2 if self.live().len() < 12 => self.add_client(),
            3..=4 => {
                if let Some(i) = self.pick_live() {
                    self.leave(i, -1);
                    self.clients[i].alive = false;
                }
            }
            5..=6 => {
                if let Some(i) = self.pick_live() {
                    let c = &mut self.clients[i];
                    (c.alive, c.owned) = (false, BTreeSet::new());
                }
            }
            7..=8 => {
                if let Some(i) = self.pick_live().filter(|&i| self.clients[i].instance.is_some()) {
                    self.leave(i, -2);
                    let back = now + self.rng.below(2 * u64::from(SESSION));
                    let c = &mut self.clients[i];
                    (c.back_at, c.member_id, c.must_join) = (Some(back), String::new(), true);
                }
            }
            9..=10 => {
                if let Some(i) = self.pick_live() {
                    let until = now + u64::from(SESSION) + self.rng.below(u64::from(SESSION));
                    self.clients[i].paused_until = Some(until);
                }
            }
            11..=12 => {
                if let Some(i) = self.pick_live() {
                    let s = self.subscription();
                    self.clients[i].new_topics = Some(s);
                }
            }
            13 => {
                let t = TOPICS[self.rng.below(3) as usize].to_string();
                *self.topics.get_mut(&t).unwrap() += 1 + self.rng.below(2) as u32;
            }
            14..=17 => self.commit(),
            18..=30 => {
                self.coordinator.tick(now, &self.topics);
                self.record();
            }
            31 => self.fail_over(),
            _ => {}
        }
    }

    fn commit(&mut self) {
        let Some(i) = self.pick_live() else { return };
        let c = &self.clients[i];
        if c.must_join {
            return;
        }
        let offsets = c
            .owned
            .iter()
            .map(|(t, p)| {
                (
                    t.clone(),
                    *p,
                    CommittedOffset { offset: self.now, metadata: c.member_id.clone(), leader_epoch: None },
                )
            })
            .collect();
        let result = self.coordinator.commit(self.now, "g", &c.member_id, c.epoch, offsets);
        self.record();
        assert!(result.is_ok() || matches!(result, Err(GroupError::UnknownMemberId { .. })), "{result:?}");
    }

    /// The coordinator's partition moves: a fresh coordinator replays the log.
    fn fail_over(&mut self) {
        let replayed = replayed(&self.log, self.now);
        assert_same(&self.coordinator, &replayed);
        self.coordinator = replayed;
    }

    /// Resumes paused clients and brings back those that left statically, when due.
    fn wake(&mut self, all: bool) {
        let now = self.now;
        for c in self.clients.iter_mut().filter(|c| c.alive) {
            if c.paused_until.is_some_and(|t| all || t <= now) {
                (c.paused_until, c.next_beat) = (None, now);
            }
            if c.back_at.is_some_and(|t| all || t <= now) {
                (c.back_at, c.next_beat) = (None, now);
            }
        }
    }

    fn step(&mut self, chaos: bool) {
        self.now += 1 + self.rng.below(400);
        self.wake(!chaos);
        self.self_fence();
        if chaos {
            self.chaos_event();
        } else if self.rng.chance(20) {
            self.coordinator.tick(self.now, &self.topics);
            self.record();
        }
        for i in self.live() {
            if self.clients[i].next_beat <= self.now {
                self.heartbeat(i);
            }
        }
        self.check_safety();
    }

    /// No partition owned by two clients; each client owns only what the coordinator holds
    /// for it.
    fn check_safety(&self) {
        self.coordinator.check_invariants().unwrap();
        let d = self.coordinator.describe("g");
        let mut owners: BTreeMap<&Partition, usize> = BTreeMap::new();
        for (i, c) in self.clients.iter().enumerate().filter(|(_, c)| !c.owned.is_empty()) {
            assert!(c.alive, "a gone client owns nothing");
            for p in &c.owned {
                if let Some(j) = owners.insert(p, i) {
                    panic!("{p:?} owned by clients {j} and {i} at {}", self.now);
                }
            }
            let m = d.as_ref().and_then(|d| d.members.iter().find(|m| m.member_id == c.member_id));
            let m = m.unwrap_or_else(|| panic!("client {i} owns {:?} but is not a member", c.owned));
            let held: BTreeSet<Partition> = flat(&m.assignment).union(&flat(&m.revoking)).cloned().collect();
            assert!(c.owned.is_subset(&held), "client {i} owns {:?} beyond {held:?}", c.owned);
        }
    }

    /// After a quiet spell every partition of a subscribed topic is owned exactly once, and
    /// (sticky) members with the same subscription own counts within one of each other.
    fn check_settled(&self) {
        let live: Vec<&Client> = self.clients.iter().filter(|c| c.alive).collect();
        let subscribed: BTreeSet<&String> = live.iter().flat_map(|c| c.topics.iter()).collect();
        let mut owned = BTreeSet::new();
        for c in &live {
            for p in &c.owned {
                assert!(owned.insert(p.clone()));
            }
        }
        let expected: BTreeSet<Partition> =
            subscribed.iter().flat_map(|t| (0..self.topics[*t]).map(move |p| (t.to_string(), p))).collect();
        assert_eq!(
            owned,
            expected,
            "every partition owned once: {:#?} {:#?}",
            self.coordinator.describe("g"),
            live
        );
        if live.is_empty() {
            return;
        }
        let d = self.coordinator.describe("g").unwrap();
        assert_eq!(d.state, GroupState::Stable);
        assert_eq!(d.members.len(), live.len());
        if self.assignor == Assignor::Sticky {
            for a in &live {
                for b in live
                    .iter()
                    .filter(|b| b.topics.iter().collect::<BTreeSet<_>>() == a.topics.iter().collect())
                {
                    assert!(
                        a.owned.len().abs_diff(b.owned.len()) <= 1,
                        "unbalanced: {} vs {}",
                        a.owned.len(),
                        b.owned.len()
                    );
                }
            }
        }
    }
}

/// Runs one seed; a failure names its seed, so it can be rerun alone.
fn run(seed: u64) {
    let mut sim = Sim::new(seed);
    for _ in 0..3 {
        sim.add_client();
    }
    for _ in 0..200 {
        sim.step(true);
    }
    for _ in 0..150 {
        sim.step(false);
    }
    sim.check_settled();
    assert_same(&sim.coordinator, &replayed(&sim.log, sim.now));
    assert_same(&sim.coordinator, &replayed(&compacted(&sim.log), sim.now));
}

#[test]
fn simulated_groups_stay_safe_and_settle() {
    for seed in 0..250 {
        if let Err(e) = std::panic::catch_unwind(|| run(seed)) {
            eprintln!("seed {seed} failed");
            std::panic::resume_unwind(e);
        }
    }
}

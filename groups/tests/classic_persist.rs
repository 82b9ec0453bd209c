//! A classic group's completed generation persisted: after a reload (every record replayed
//! into a fresh coordinator, or only the latest of each key) its members carry on with their
//! ids, generation and assignments, without a rebalance.

mod common;

use std::collections::BTreeMap;

use common::{compacted, replayed};
use weir_groups::{
    ClassicAnswer, CommittedOffset, Coordinator, GroupError, GroupState, JoinRequest, JoinResponse,
    SyncRequest, SyncResponse,
};

const SESSION_MS: u32 = 10_000;
const REBALANCE_MS: u32 = 30_000;
const G: &str = "g";

type Log = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// The coordinator, the log its records went to, and the answers it released.
struct Node {
    c: Coordinator,
    log: Log,
    token: u64,
    released: BTreeMap<u64, ClassicAnswer>,
}

impl Node {
    fn new() -> Self {
        Node { c: Coordinator::new(Default::default()), log: Vec::new(), token: 0, released: BTreeMap::new() }
    }

    /// The node after a failover at `now`: a fresh coordinator replays `records`.
    fn reloaded(records: &Log, now: u64) -> Self {
        let c = replayed(records, now);
        c.check_invariants().unwrap();
        Node { c, log: records.clone(), token: 1000, released: BTreeMap::new() }
    }

    fn settle(&mut self) {
        self.released.extend(self.c.take_classic_answers());
        self.log.extend(self.c.take_records().into_iter().map(|r| (r.key, r.value)));
        self.c.check_invariants().unwrap();
    }

    fn join(&mut self, now: u64, member_id: &str, metadata: &[u8]) -> (u64, Option<JoinResponse>) {
        self.join_as(now, member_id, None, metadata)
    }

    fn join_as(
        &mut self,
        now: u64,
        member_id: &str,
        instance_id: Option<&str>,
        metadata: &[u8],
    ) -> (u64, Option<JoinResponse>) {
        self.token += 1;
        let req = JoinRequest {
            group: G.to_owned(),
            member_id: member_id.to_owned(),
            instance_id: instance_id.map(str::to_owned),
            protocol_type: "consumer".to_owned(),
            protocols: vec![("range".to_owned(), metadata.to_vec())],
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            require_known_member_id: false,
            client_id: "client".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
        };
        let r = self.c.classic_join(now, self.token, req);
        self.settle();
        (self.token, r)
    }

    fn sync(
        &mut self,
        now: u64,
        generation: i32,
        id: &str,
        assignments: &[(&str, &[u8])],
    ) -> (u64, Option<SyncResponse>) {
        self.token += 1;
        let req = SyncRequest {
            group: G.to_owned(),
            generation_id: generation,
            member_id: id.to_owned(),
            instance_id: None,
            protocol_type: Some("consumer".to_owned()),
            protocol_name: Some("range".to_owned()),
            assignments: assignments.iter().map(|(m, a)| (m.to_string(), a.to_vec())).collect(),
        };
        let r = self.c.classic_sync(now, self.token, req);
        self.settle();
        (self.token, r)
    }

    fn heartbeat(&mut self, now: u64, generation: i32, id: &str) -> Result<(), GroupError> {
        let r = self.c.classic_heartbeat(now, G, generation, id, None);
        self.settle();
        r
    }

    fn commit(&mut self, now: u64, generation: i32, id: &str, offset: u64) -> Result<(), GroupError> {
        let offsets = vec![(
            "t".to_owned(),
            0,
            CommittedOffset { offset, metadata: String::new(), leader_epoch: None },
        )];
        let r = self.c.classic_commit(now, G, id, generation, None, offsets);
        self.settle();
        r
    }

    fn leave(&mut self, now: u64, id: &str) {
        assert_eq!(self.c.classic_leave(now, G, vec![(id.to_owned(), None)]), [Ok(())]);
        self.settle();
    }

    fn tick(&mut self, now: u64) {
        self.c.tick(now, &BTreeMap::new());
        self.settle();
    }

    fn joined(&mut self, token: u64) -> JoinResponse {
        match self.released.remove(&token) {
            Some(ClassicAnswer::Join(r)) => r,
            other => panic!("token {token}: no join answer but {other:?}"),
        }
    }

    fn state(&self) -> (GroupState, i32, Vec<String>) {
        let d = self.c.describe(G).expect("the group exists");
        (d.state, d.group_epoch, d.members.into_iter().map(|m| m.member_id).collect())
    }
}

/// Two members joined and synced at generation 2 (the first leads); returns their ids.
fn two_stable(n: &mut Node) -> (String, String) {
    let a = n.join(0, "", b"ma").1.expect("a lone member completes at once").member_id;
    let (tb, _) = n.join(1, "", b"mb");
    let last = n.join(2, &a, b"ma").1.expect("the last to join completes the rebalance");
    assert_eq!(last.generation_id, 2);
    let b = n.joined(tb).member_id;
    n.sync(3, 2, &b, &[]);
    let mine = n.sync(4, 2, &a, &[(&a, b"xa"), (&b, b"xb")]).1.unwrap();
    assert_eq!(mine.assignment, b"xa");
    assert_eq!(n.state(), (GroupState::Stable, 2, vec![a.clone(), b.clone()]));
    (a, b)
}

/// The log as written, and as compaction keeps it.
fn both(log: &Log) -> [Log; 2] {
    [log.clone(), compacted(log)]
}

#[test]
fn a_stable_group_reloads_with_its_members_who_carry_on_without_a_rebalance() {
    let mut n = Node::new();
    let (a, b) = two_stable(&mut n);
    for log in both(&n.log) {
        let mut d = Node::reloaded(&log, 100);
        assert_eq!(d.state(), (GroupState::Stable, 2, vec![a.clone(), b.clone()]));
        d.heartbeat(101, 2, &a).unwrap();
        d.heartbeat(101, 2, &b).unwrap();
        assert_eq!(d.heartbeat(101, 1, &a), Err(GroupError::IllegalGeneration { expected: 2, got: 1 }));
        assert_eq!(d.sync(102, 2, &b, &[]).1.unwrap().assignment, b"xb");
        assert_eq!(d.sync(102, 2, &a, &[(&a, b"other")]).1.unwrap().assignment, b"xa", "stable: kept");
        d.commit(103, 2, &a, 7).unwrap();
        d.commit(103, 2, &b, 8).unwrap();
        let leader = d.c.describe(G).unwrap().members;
        assert_eq!(leader[0].metadata, b"ma", "the leader's view of the members is kept");
        // A follower that rejoins with the same protocols is answered at once, in generation 2.
        let again = d.join(104, &b, b"mb").1.expect("answered at once");
        assert_eq!((again.error, again.generation_id), (None, 2));
        assert_eq!(d.state().0, GroupState::Stable);
    }
}

#[test]
fn a_member_that_never_comes_back_expires_after_its_session_and_the_group_rebalances() {
    let mut n = Node::new();
    let (a, b) = two_stable(&mut n);
    for log in both(&n.log) {
        let mut d = Node::reloaded(&log, 100);
        let session = u64::from(SESSION_MS);
        d.heartbeat(100 + session / 2, 2, &a).unwrap();
        d.tick(100 + session - 1);
        assert_eq!(d.state().2, vec![a.clone(), b.clone()], "the session runs from the reload");
        d.tick(100 + session);
        assert_eq!(d.state(), (GroupState::PreparingRebalance, 2, vec![a.clone()]));
        assert_eq!(
            d.heartbeat(100 + session, 2, &b),
            Err(GroupError::UnknownMemberId { member_id: b.clone() })
        );
        assert_eq!(d.heartbeat(100 + session, 2, &a), Err(GroupError::RebalanceInProgress));
        let r = d.join(100 + session + 1, &a, b"ma").1.expect("the only member completes it");
        assert_eq!(r.generation_id, 3);
        d.sync(100 + session + 2, 3, &a, &[(&a, b"all")]);
        // The expiry and the new generation are persisted too.
        let again = Node::reloaded(&d.log, 50_000);
        assert_eq!(again.state(), (GroupState::Stable, 3, vec![a.clone()]));
        let again = Node::reloaded(&compacted(&d.log), 50_000);
        assert_eq!(again.state(), (GroupState::Stable, 3, vec![a.clone()]));
    }
}

#[test]
fn a_leave_before_the_reload_is_reflected() {
    for leaver in [0, 1] {
        let mut n = Node::new();
        let (a, b) = two_stable(&mut n);
        let (gone, stays) = if leaver == 0 { (a, b) } else { (b, a) };
        n.leave(10, &gone);
        for log in both(&n.log) {
            let mut d = Node::reloaded(&log, 100);
            // The group was rebalancing without the member that left, and still is.
            assert_eq!(d.state(), (GroupState::PreparingRebalance, 2, vec![stays.clone()]));
            let unknown = Err(GroupError::UnknownMemberId { member_id: gone.clone() });
            assert_eq!(d.heartbeat(101, 2, &gone), unknown);
            assert_eq!(d.heartbeat(101, 2, &stays), Err(GroupError::RebalanceInProgress));
            let r = d.join(102, &stays, b"m").1.expect("the only member completes it");
            assert_eq!((r.generation_id, r.leader.as_str()), (3, stays.as_str()));
        }
    }
}

#[test]
fn a_reload_mid_rebalance_comes_back_at_the_last_completed_generation() {
    let mut n = Node::new();
    let (a, b) = two_stable(&mut n);
    let (tc, _) = n.join(10, "", b"mc");
    n.join(11, &a, b"ma");
    let done = n.join(12, &b, b"mb").1.expect("the last to join completes it");
    assert_eq!(done.generation_id, 3);
    let c = n.joined(tc).member_id;
    assert_eq!(n.state().0, GroupState::CompletingRebalance);
    for log in both(&n.log) {
        let mut d = Node::reloaded(&log, 100);
        assert_eq!(d.state(), (GroupState::Stable, 2, vec![a.clone(), b.clone()]), "c never completed");
        assert_eq!(d.heartbeat(101, 3, &a), Err(GroupError::IllegalGeneration { expected: 2, got: 3 }));
        assert_eq!(d.heartbeat(101, 2, &c), Err(GroupError::UnknownMemberId { member_id: c.clone() }));
        d.heartbeat(101, 2, &b).unwrap();
        assert_eq!(d.sync(102, 2, &b, &[]).1.unwrap().assignment, b"xb");
        // A rebalance after the reload makes generation 3 again, and it sticks.
        d.join(103, &a, b"ma");
        let done = d.join(104, &b, b"mb").1.expect("the last to join completes it");
        assert_eq!(done.generation_id, 3);
        d.sync(105, 3, &a, &[(&a, b"ya"), (&b, b"yb")]);
        let again = Node::reloaded(&compacted(&d.log), 200);
        assert_eq!(again.state(), (GroupState::Stable, 3, vec![a.clone(), b.clone()]));
    }
}

#[test]
fn a_group_reloaded_before_its_first_generation_completes_is_empty_with_its_offsets() {
    let mut n = Node::new();
    assert_eq!(n.c.classic_commit(0, G, "", -1, None, vec![("t".into(), 0, offset(5))]), Ok(()));
    n.settle();
    let a = n.join(1, "", b"ma").1.unwrap();
    assert_eq!((a.generation_id, n.state().0), (1, GroupState::CompletingRebalance));
    for log in both(&n.log) {
        let d = Node::reloaded(&log, 100);
        assert_eq!(d.state(), (GroupState::Empty, 0, vec![]));
        assert_eq!(d.c.fetch_offsets(G, None)[0].2, Some(offset(5)));
    }
}

/// Every prefix of the log, replayed, shows a generation no older than a shorter prefix's:
/// the persisted generation never goes back, through rebalances, leaves, expiries and
/// an emptied group.
#[test]
fn the_persisted_generation_never_goes_back() {
    let mut n = Node::new();
    n.c.classic_commit(0, G, "", -1, None, vec![("t".into(), 0, offset(1))]).unwrap();
    n.settle();
    let (a, b) = two_stable(&mut n);
    let (tc, _) = n.join(10, "", b"mc");
    n.join(11, &a, b"ma");
    n.join(12, &b, b"mb");
    let c = n.joined(tc).member_id;
    n.leave(13, &b);
    n.join(14, &a, b"ma");
    assert_eq!(n.join(15, &c, b"mc").1.unwrap().generation_id, 4);
    n.sync(16, 4, &a, &[(&a, b"za"), (&c, b"zc")]);
    n.tick(16 + u64::from(SESSION_MS));
    assert_eq!(n.state(), (GroupState::Empty, 5, vec![]), "both expired");
    let mut last = 0;
    let mut generations = Vec::new();
    for end in 0..=n.log.len() {
        for log in both(&n.log[..end].to_vec()) {
            let g = replayed(&log, 60_000).describe(G).map_or(0, |d| d.group_epoch);
            assert!(g >= last, "generation {g} after {last}, at record {end}");
            last = last.max(g);
            generations.push(g);
        }
    }
    assert_eq!(last, n.state().1, "the final generation is persisted");
    assert!(generations.contains(&2) && last > 2, "{generations:?}");
}

/// A static follower replaced under a new id in a stable group (no rebalance) is stored under
/// its new id, with its assignment; the old id is gone after a reload.
#[test]
fn a_static_member_replaced_without_a_rebalance_reloads_under_its_new_id() {
    let mut n = Node::new();
    let a = n.join(0, "", b"ma").1.unwrap().member_id;
    let (tb, _) = n.join_as(1, "", Some("i"), b"mb");
    n.join(2, &a, b"ma");
    let b = n.joined(tb).member_id;
    n.sync(3, 2, &a, &[(&a, b"xa"), (&b, b"xb")]);
    let b2 = n.join_as(4, "", Some("i"), b"mb").1.expect("a quiet replacement").member_id;
    assert_eq!(n.state(), (GroupState::Stable, 2, vec![a.clone(), b2.clone()]));
    for log in both(&n.log) {
        let mut d = Node::reloaded(&log, 100);
        assert_eq!(d.state(), (GroupState::Stable, 2, vec![a.clone(), b2.clone()]));
        assert_eq!(d.sync(101, 2, &b2, &[]).1.unwrap().assignment, b"xb");
        assert_eq!(d.heartbeat(101, 2, &b), Err(GroupError::UnknownMemberId { member_id: b.clone() }));
    }
}

fn offset(offset: u64) -> CommittedOffset {
    CommittedOffset { offset, metadata: String::new(), leader_epoch: None }
}

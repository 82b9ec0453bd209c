//! Kafka's classic group protocol on the coordinator: joins, syncs, heartbeats, leaves,
//! timeouts, static members, commits, and that every held request is answered exactly once.

mod common;

use common::Rng;

use std::collections::{BTreeMap, BTreeSet};

use weir_groups::{
    ClassicAnswer, CommittedOffset, Coordinator, CoordinatorConfig, GroupError, GroupKind, GroupState,
    HeartbeatRequest, JoinRequest, JoinResponse, SyncRequest, SyncResponse,
};

const SESSION_MS: u32 = 10_000;
const REBALANCE_MS: u32 = 30_000;
const G: &str = "g";

/// The coordinator, with a ledger of the tokens it holds and answers: every token is answered
/// once, either at once or later by `take_classic_answers`, never twice.
struct Harness {
    c: Coordinator,
    next_token: u64,
    held: BTreeSet<u64>,
    answered: BTreeSet<u64>,
    /// Answers released and not yet looked at by the test.
    released: BTreeMap<u64, ClassicAnswer>,
}

impl Harness {
    fn new(config: CoordinatorConfig) -> Self {
        Harness {
            c: Coordinator::new(config),
            next_token: 0,
            held: BTreeSet::new(),
            answered: BTreeSet::new(),
            released: BTreeMap::new(),
        }
    }

    fn token(&mut self, now_answered: bool) -> u64 {
        self.next_token += 1;
        if !now_answered {
            self.held.insert(self.next_token);
        }
        self.next_token
    }

    /// A join; returns its token and its answer if given at once.
    fn join(&mut self, now: u64, req: JoinRequest) -> (u64, Option<JoinResponse>) {
        let token = self.next_token + 1;
        let r = self.c.classic_join(now, token, req);
        self.token(r.is_some());
        if r.is_some() {
            self.answered.insert(token);
        }
        self.settle();
        (token, r)
    }

    fn sync(&mut self, now: u64, req: SyncRequest) -> (u64, Option<SyncResponse>) {
        let token = self.next_token + 1;
        let r = self.c.classic_sync(now, token, req);
        self.token(r.is_some());
        if r.is_some() {
            self.answered.insert(token);
        }
        self.settle();
        (token, r)
    }

    fn tick(&mut self, now: u64) -> Option<u64> {
        let next = self.c.tick(now, &BTreeMap::new());
        self.settle();
        next
    }

    fn heartbeat(&mut self, now: u64, generation: i32, id: &str) -> Result<(), GroupError> {
        let r = self.c.classic_heartbeat(now, G, generation, id, None);
        self.settle();
        r
    }

    fn leave(&mut self, now: u64, members: &[(&str, Option<&str>)]) -> Vec<Result<(), GroupError>> {
        let list = members.iter().map(|(m, i)| (m.to_string(), i.map(str::to_owned))).collect();
        let r = self.c.classic_leave(now, G, list);
        self.settle();
        r
    }

    /// Takes released answers into the ledger, checking each answers a held token once, and
    /// checks the coordinator's invariants.
    fn settle(&mut self) {
        for (token, answer) in self.c.take_classic_answers() {
            assert!(self.held.remove(&token), "token {token} answered but not held");
            assert!(self.answered.insert(token), "token {token} answered twice");
            self.released.insert(token, answer);
        }
        self.c.check_invariants().unwrap();
    }

    fn joined(&mut self, token: u64) -> JoinResponse {
        match self.released.remove(&token) {
            Some(ClassicAnswer::Join(r)) => r,
            other => panic!("token {token}: no join answer but {other:?}"),
        }
    }

    fn synced(&mut self, token: u64) -> SyncResponse {
        match self.released.remove(&token) {
            Some(ClassicAnswer::Sync(r)) => r,
            other => panic!("token {token}: no sync answer but {other:?}"),
        }
    }

    fn state(&self) -> GroupState {
        self.c.describe(G).map_or(GroupState::Dead, |d| d.state)
    }

    fn generation(&self) -> i32 {
        self.c.describe(G).unwrap().group_epoch
    }
}

fn join_req(member_id: &str, protocols: &[(&str, &[u8])]) -> JoinRequest {
    JoinRequest {
        group: G.to_owned(),
        member_id: member_id.to_owned(),
        instance_id: None,
        protocol_type: "consumer".to_owned(),
        protocols: protocols.iter().map(|(n, m)| (n.to_string(), m.to_vec())).collect(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        require_known_member_id: false,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
    }
}

fn range(member_id: &str, metadata: &[u8]) -> JoinRequest {
    join_req(member_id, &[("range", metadata)])
}

fn sync_req(generation: i32, member_id: &str, assignments: &[(&str, &[u8])]) -> SyncRequest {
    SyncRequest {
        group: G.to_owned(),
        generation_id: generation,
        member_id: member_id.to_owned(),
        instance_id: None,
        protocol_type: Some("consumer".to_owned()),
        protocol_name: Some("range".to_owned()),
        assignments: assignments.iter().map(|(m, a)| (m.to_string(), a.to_vec())).collect(),
    }
}

fn ok(r: &JoinResponse) -> &JoinResponse {
    assert_eq!(r.error, None, "{r:?}");
    r
}

/// Two members, joined and synced at generation 1 (the first is the leader); returns their ids.
fn two_stable(h: &mut Harness) -> (String, String) {
    let (_, a) = h.join(0, range("", b"ma"));
    let a = ok(&a.expect("a lone member's join completes at once")).member_id.clone();
    let (tb, none) = h.join(1, range("", b"mb"));
    assert!(none.is_none());
    let (_, last) = h.join(2, range(&a, b"ma"));
    let last = last.expect("the last member to join completes the rebalance and is answered at once");
    assert_eq!(ok(&last).generation_id, 2);
    assert_eq!(last.members.len(), 2, "the leader is told every member");
    let b = ok(&h.joined(tb)).member_id.clone();
    let (ts, none) = h.sync(3, sync_req(2, &b, &[]));
    assert!(none.is_none());
    let (_, mine) = h.sync(4, sync_req(2, &a, &[(&a, b"xa"), (&b, b"xb")]));
    assert_eq!(mine.unwrap().assignment, b"xa");
    assert_eq!(h.synced(ts).assignment, b"xb");
    assert_eq!(h.state(), GroupState::Stable);
    (a, b)
}

#[test]
fn two_members_join_the_leader_assigns_and_its_sync_releases_the_follower() {
    let config = CoordinatorConfig { classic_initial_rebalance_delay_ms: 3000, ..Default::default() };
    let mut h = Harness::new(config);
    let (ta, none) = h.join(0, range("", b"meta-a"));
    assert!(none.is_none(), "the initial delay holds the first join");
    let (tb, none) = h.join(100, join_req("", &[("roundrobin", b"rr-b"), ("range", b"meta-b")]));
    assert!(none.is_none());
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.tick(2999), Some(3000));
    assert!(h.released.is_empty());
    h.tick(3000);
    let (a, b) = (h.joined(ta), h.joined(tb));
    assert_eq!((ok(&a).generation_id, ok(&b).generation_id), (1, 1));
    assert_eq!(a.leader, a.member_id);
    assert_eq!(b.leader, a.member_id);
    assert_eq!(a.protocol_name.as_deref(), Some("range"), "the only protocol both support");
    let metadata: Vec<(&str, &[u8])> =
        a.members.iter().map(|m| (m.member_id.as_str(), &m.metadata[..])).collect();
    assert_eq!(metadata, [(a.member_id.as_str(), &b"meta-a"[..]), (b.member_id.as_str(), &b"meta-b"[..])]);
    assert!(b.members.is_empty(), "a follower is not told the members");
    assert_eq!(h.state(), GroupState::CompletingRebalance);

    let (tsb, none) = h.sync(200, sync_req(1, &b.member_id, &[]));
    assert!(none.is_none(), "a follower's sync waits for the leader's");
    assert_eq!(h.heartbeat(250, 1, &b.member_id), Ok(()));
    let (_, mine) = h.sync(300, sync_req(1, &a.member_id, &[(&a.member_id, b"A"), (&b.member_id, b"B")]));
    assert_eq!(mine.unwrap().assignment, b"A");
    let follower = h.synced(tsb);
    assert_eq!((follower.error, follower.assignment), (None, b"B".to_vec()));
    assert_eq!(h.state(), GroupState::Stable);
    let d = h.c.describe(G).unwrap();
    assert_eq!(
        (d.kind, d.protocol_type.as_str(), d.protocol_name.as_str()),
        (GroupKind::Classic, "consumer", "range")
    );
    assert_eq!(d.members[1].classic_assignment, b"B");
    assert_eq!(d.members[1].metadata, b"meta-b");
    assert_eq!(d.members[1].client_host, "/127.0.0.1");
    assert_eq!(h.c.list()[0].protocol_type, "consumer");
    assert_eq!(d.state.kafka_name(), "Stable");
    // A sync in a stable group answers at once with the member's assignment.
    assert_eq!(h.sync(400, sync_req(1, &b.member_id, &[])).1.unwrap().assignment, b"B");
    let other = SyncRequest { protocol_name: Some("roundrobin".into()), ..sync_req(1, &b.member_id, &[]) };
    assert_eq!(h.sync(401, other).1.unwrap().error, Some(GroupError::InconsistentGroupProtocol));
    assert!(h.held.is_empty());
}

#[test]
fn a_third_member_makes_a_rebalance_the_others_learn_of_by_heartbeat() {
    let mut h = Harness::new(Default::default());
    let (a, b) = two_stable(&mut h);
    let (tc, none) = h.join(10, range("", b"mc"));
    assert!(none.is_none());
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(11, 2, &a), Err(GroupError::RebalanceInProgress));
    assert_eq!(h.heartbeat(11, 2, &b), Err(GroupError::RebalanceInProgress));
    assert_eq!(h.heartbeat(11, 1, &b), Err(GroupError::IllegalGeneration { expected: 2, got: 1 }));
    let (sync_now, _) = h.sync(11, sync_req(2, &b, &[]));
    assert_eq!(h.released.len(), 0);
    assert!(!h.held.contains(&sync_now), "a sync while preparing is refused at once");
    let (ta, _) = h.join(12, range(&a, b"ma"));
    let (_, jb) = h.join(13, range(&b, b"mb"));
    let (ja, jb, jc) = (h.joined(ta), jb.unwrap(), h.joined(tc));
    for j in [&ja, &jb, &jc] {
        assert_eq!(ok(j).generation_id, 3);
        assert_eq!(j.leader, a, "the old leader stays leader");
    }
    assert_eq!(ja.members.len(), 3);
}

#[test]
fn a_member_that_does_not_rejoin_is_removed_at_the_rebalance_timeout() {
    let mut h = Harness::new(Default::default());
    let (a, b) = two_stable(&mut h);
    let (tc, _) = h.join(10, range("", b"mc"));
    // B keeps heartbeating (and is told to rejoin) but never does.
    let (ta, _) = h.join(20, range(&a, b"ma"));
    let deadline = 10 + u64::from(REBALANCE_MS);
    for now in (5000..deadline).step_by(5000) {
        assert_eq!(h.heartbeat(now, 2, &b), Err(GroupError::RebalanceInProgress));
    }
    assert_eq!(h.tick(deadline - 1), Some(deadline));
    assert!(h.released.is_empty());
    h.tick(deadline);
    assert_eq!(ok(&h.joined(ta)).generation_id, 3);
    assert_eq!(ok(&h.joined(tc)).generation_id, 3);
    assert_eq!(h.heartbeat(deadline + 1, 3, &b), Err(GroupError::UnknownMemberId { member_id: b.clone() }));
    assert_eq!(h.c.describe(G).unwrap().members.len(), 2);
}

#[test]
fn a_member_whose_session_ends_is_removed_and_the_group_rebalances() {
    let mut h = Harness::new(Default::default());
    let (a, b) = two_stable(&mut h);
    assert_eq!(h.heartbeat(9000, 2, &a), Ok(()));
    // B's session began at its sync (4 ms).
    assert_eq!(h.tick(10_003), Some(10_004));
    h.tick(10_004);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(10_005, 2, &b), Err(GroupError::UnknownMemberId { member_id: b.clone() }));
    assert_eq!(h.heartbeat(10_005, 2, &a), Err(GroupError::RebalanceInProgress));
    let (_, alone) = h.join(10_006, range(&a, b"ma"));
    assert_eq!(ok(&alone.expect("the only member")).generation_id, 3);
}

#[test]
fn one_of_three_leaves_then_all_do_and_the_group_is_empty() {
    let mut h = Harness::new(Default::default());
    let (a, b) = two_stable(&mut h);
    let (tc, _) = h.join(10, range("", b"mc"));
    let (ta, _) = h.join(11, range(&a, b"ma"));
    h.join(12, range(&b, b"mb")).1.unwrap();
    let c = ok(&h.joined(tc)).member_id.clone();
    h.joined(ta);
    let (tsc, _) = h.sync(13, sync_req(3, &c, &[]));
    assert_eq!(
        h.leave(14, &[(&b, None), ("nobody", None)]),
        [Ok(()), Err(GroupError::UnknownMemberId { member_id: "nobody".into() })]
    );
    assert_eq!(h.synced(tsc).error, Some(GroupError::RebalanceInProgress), "the held sync is answered");
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let (ta, _) = h.join(15, range(&a, b"ma"));
    let (_, done) = h.join(16, range(&c, b"mc"));
    assert_eq!(ok(&done.unwrap()).generation_id, 4);
    assert_eq!(ok(&h.joined(ta)).members.len(), 2);
    assert_eq!(h.leave(17, &[(&a, None), (&c, None)]), [Ok(()), Ok(())]);
    assert_eq!(h.state(), GroupState::Dead, "no members and no offsets: the group is gone");
}

#[test]
fn a_member_id_required_join_rejoins_with_its_id() {
    let mut h = Harness::new(Default::default());
    let req = JoinRequest { require_known_member_id: true, ..range("", b"m") };
    let (_, r) = h.join(0, req.clone());
    let r = r.unwrap();
    let id = r.member_id.clone();
    assert_eq!(r.error, Some(GroupError::MemberIdRequired { member_id: id.clone() }));
    let (_, r) = h.join(1, JoinRequest { member_id: id.clone(), ..req.clone() });
    assert_eq!(ok(&r.unwrap()).leader, id);
    // A given id never used holds the next rebalance until its session ends.
    let (_, r) = h.join(2, req.clone());
    let unused = r.unwrap().member_id;
    let (ta, none) = h.join(
        3,
        JoinRequest {
            member_id: id.clone(),
            protocols: vec![("range".into(), b"new".to_vec())],
            ..req.clone()
        },
    );
    assert!(none.is_none());
    assert_eq!(h.tick(4), Some(2 + u64::from(SESSION_MS)));
    h.tick(2 + u64::from(SESSION_MS));
    assert_eq!(ok(&h.joined(ta)).generation_id, 2);
    let (_, r) = h.join(20_000, JoinRequest { member_id: unused.clone(), ..req });
    assert_eq!(r.unwrap().error, Some(GroupError::UnknownMemberId { member_id: unused }));
}

#[test]
fn a_static_member_rejoining_with_a_new_id_fences_the_old_one() {
    let mut h = Harness::new(Default::default());
    let (a, b) = two_stable(&mut h);
    let static_req = |id: &str| JoinRequest { instance_id: Some("i1".into()), ..range(id, b"ms") };
    let (tc, _) = h.join(10, static_req(""));
    let (ta, _) = h.join(11, range(&a, b"ma"));
    h.join(12, range(&b, b"mb")).1.unwrap();
    h.joined(ta);
    let c = ok(&h.joined(tc)).member_id.clone();
    let (tsc, _) = h.sync(13, SyncRequest { instance_id: Some("i1".into()), ..sync_req(3, &c, &[]) });
    h.sync(14, sync_req(3, &a, &[(&c, b"xc")]));
    assert_eq!(h.synced(tsc).assignment, b"xc");
    // The static member restarts: a new id, the same generation, no rebalance.
    let (_, r) = h.join(20, static_req(""));
    let r = r.expect("a stable group with unchanged metadata answers at once");
    let c2 = ok(&r).member_id.clone();
    assert_ne!(c2, c);
    assert_eq!(r.generation_id, 3);
    assert_eq!(h.state(), GroupState::Stable);
    let fenced = GroupError::FencedInstanceId { instance_id: "i1".into() };
    assert_eq!(h.c.classic_heartbeat(21, G, 3, &c, Some("i1")), Err(fenced.clone()));
    assert_eq!(h.heartbeat(21, 3, &c), Err(GroupError::UnknownMemberId { member_id: c.clone() }));
    assert_eq!(h.c.classic_heartbeat(21, G, 3, &c2, Some("i1")), Ok(()));
    let again =
        h.sync(22, SyncRequest { instance_id: Some("i1".into()), ..sync_req(3, &c2, &[]) }).1.unwrap();
    assert_eq!(again.assignment, b"xc", "the new id keeps the assignment");
    let offsets = vec![(
        "t".to_string(),
        0,
        CommittedOffset { offset: 1, metadata: String::new(), leader_epoch: None },
    )];
    assert_eq!(h.c.classic_commit(23, G, &c, 3, Some("i1"), offsets), Err(fenced));
    // Leaving by instance id: with the old member id it is fenced, with none it goes.
    assert_eq!(
        h.leave(24, &[(&c, Some("i1"))]),
        [Err(GroupError::FencedInstanceId { instance_id: "i1".into() })]
    );
    assert_eq!(h.state(), GroupState::Stable, "a refused leave changes nothing");
    assert_eq!(h.leave(24, &[("", Some("i1"))]), [Ok(())]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn commits_check_member_and_generation() {
    let mut h = Harness::new(Default::default());
    let offsets = |o: u64| {
        vec![(
            "t".to_string(),
            0,
            CommittedOffset { offset: o, metadata: format!("m{o}"), leader_epoch: None },
        )]
    };
    let (a, b) = two_stable(&mut h);
    assert_eq!(
        h.c.classic_commit(5, G, &a, 1, None, offsets(1)),
        Err(GroupError::IllegalGeneration { expected: 2, got: 1 })
    );
    assert_eq!(
        h.c.classic_commit(5, G, "x", 2, None, offsets(1)),
        Err(GroupError::UnknownMemberId { member_id: "x".into() })
    );
    assert_eq!(
        h.c.classic_commit(5, G, "", -1, None, offsets(1)),
        Err(GroupError::GroupNotEmpty { members: 2 })
    );
    assert_eq!(
        h.c.commit(5, G, &a, 2, offsets(1)).unwrap_err(),
        GroupError::UnknownMemberId { member_id: a.clone() },
        "no native member"
    );
    h.c.classic_commit(5, G, &a, 2, None, offsets(2)).unwrap();
    assert_eq!(h.c.fetch_offsets(G, None)[0].2.as_ref().unwrap().metadata, "m2");
    // Preparing: the current generation still commits (as Kafka does).
    h.join(6, range("", b"mc"));
    h.c.classic_commit(7, G, &b, 2, None, offsets(3)).unwrap();
    h.join(8, range(&a, b"ma"));
    let (_, done) = h.join(9, range(&b, b"mb"));
    assert_eq!(done.unwrap().generation_id, 3);
    // Completing: refused until the member has its assignment.
    assert_eq!(h.c.classic_commit(10, G, &b, 3, None, offsets(4)), Err(GroupError::RebalanceInProgress));
    h.sync(11, sync_req(3, &a, &[]));
    h.c.classic_commit(12, G, &b, 3, None, offsets(4)).unwrap();
    let everyone: Vec<String> = h.c.describe(G).unwrap().members.into_iter().map(|m| m.member_id).collect();
    let list: Vec<(&str, Option<&str>)> = everyone.iter().map(|m| (m.as_str(), None)).collect();
    h.leave(13, &list);
    assert_eq!(h.state(), GroupState::Empty, "offsets keep the group");
    h.c.classic_commit(14, G, "", -1, None, offsets(5)).unwrap();
    assert_eq!(h.c.fetch_offsets(G, None)[0].2.as_ref().unwrap().offset, 5);
}

#[test]
fn native_and_classic_members_never_share_a_group() {
    let t: BTreeMap<String, u32> = [("t".to_string(), 2)].into();
    let native = HeartbeatRequest {
        member_id: String::new(),
        instance_id: None,
        member_epoch: 0,
        topics: Some(vec!["t".into()]),
        owned: None,
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        assignor: None,
    };
    let mut h = Harness::new(Default::default());
    let (_, a) = h.join(0, range("", b"ma"));
    let a = a.unwrap().member_id;
    assert_eq!(h.c.heartbeat(1, G, native.clone(), &t).unwrap_err(), GroupError::InconsistentGroupProtocol);
    let (_, r) = h.join(2, JoinRequest { protocol_type: "connect".into(), ..range("", b"") });
    assert_eq!(r.unwrap().error, Some(GroupError::InconsistentGroupProtocol));
    let (_, r) = h.join(2, join_req("", &[("sticky", b"")]));
    assert_eq!(r.unwrap().error, Some(GroupError::InconsistentGroupProtocol));
    let offsets = vec![(
        "t".to_string(),
        0,
        CommittedOffset { offset: 1, metadata: String::new(), leader_epoch: None },
    )];
    h.sync(3, sync_req(1, &a, &[]));
    h.c.classic_commit(3, G, &a, 1, None, offsets).unwrap();
    h.leave(4, &[(&a, None)]);
    let generation = h.generation();
    // Offsets only: a native member may take the group, and then a classic join is refused.
    let m = h.c.heartbeat(5, G, native.clone(), &t).unwrap();
    assert_eq!(h.c.describe(G).unwrap().kind, GroupKind::Native);
    let (_, r) = h.join(6, range("", b"ma"));
    assert_eq!(r.unwrap().error, Some(GroupError::InconsistentGroupProtocol));
    h.c.heartbeat(7, G, HeartbeatRequest { member_id: m.member_id, member_epoch: -1, ..native }, &t).unwrap();
    // And back: the classic generation carries on from where it was.
    let (_, r) = h.join(8, range("", b"ma"));
    assert_eq!(ok(&r.unwrap()).generation_id, generation + 1);
    h.settle();
}

#[test]
fn a_leader_that_does_not_sync_in_time_is_removed_and_the_group_rebalances() {
    let mut h = Harness::new(Default::default());
    let (_, a) = h.join(0, range("", b"ma"));
    let a = a.unwrap().member_id;
    let (tb, _) = h.join(1, range("", b"mb"));
    h.join(2, range(&a, b"ma")).1.unwrap();
    let b = h.joined(tb).member_id;
    let (tsb, _) = h.sync(3, sync_req(2, &b, &[]));
    let deadline = 2 + u64::from(REBALANCE_MS);
    for now in (5000..deadline).step_by(5000) {
        assert_eq!(h.heartbeat(now, 2, &a), Ok(()), "the leader is alive but does not sync");
    }
    assert_eq!(h.tick(deadline - 1), Some(deadline));
    h.tick(deadline);
    assert_eq!(h.synced(tsb).error, Some(GroupError::RebalanceInProgress));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(deadline, 2, &a), Err(GroupError::UnknownMemberId { member_id: a.clone() }));
    let (_, r) = h.join(deadline + 1, range(&b, b"mb"));
    assert_eq!(ok(&r.unwrap()).leader, b);
}

#[test]
fn requests_beyond_the_limits_are_refused() {
    let mut h = Harness::new(CoordinatorConfig { group_members_max: 1, ..Default::default() });
    let big = vec![0u8; weir_groups::CLASSIC_METADATA_BYTES_MAX + 1];
    let (_, r) = h.join(0, join_req("", &[("range", &big)]));
    assert!(matches!(r.unwrap().error, Some(GroupError::InvalidRequest { .. })));
    let (_, r) = h.join(0, join_req("", &[]));
    assert!(matches!(r.unwrap().error, Some(GroupError::InvalidRequest { .. })));
    let (_, a) = h.join(0, range("", b""));
    let a = a.unwrap().member_id;
    let (_, r) = h.join(1, range("", b""));
    assert_eq!(r.unwrap().error, Some(GroupError::GroupMaxSizeReached { max: 1 }));
    let huge = vec![0u8; weir_groups::CLASSIC_ASSIGNMENT_BYTES_MAX + 1];
    let (_, r) = h.sync(2, sync_req(1, &a, &[(&a, &huge)]));
    assert!(matches!(r.unwrap().error, Some(GroupError::InvalidRequest { .. })));
    assert_eq!(h.state(), GroupState::CompletingRebalance, "a refused sync changes nothing");
}

#[test]
fn the_configured_limits_bound_what_a_member_record_holds() {
    // A node whose batches are small lowers the limits, so a member's record always fits one.
    let config = CoordinatorConfig {
        classic_metadata_bytes_max: 100,
        classic_assignment_bytes_max: 100,
        ..Default::default()
    };
    let mut h = Harness::new(config);
    let (_, r) = h.join(0, range("", &[0u8; 101]));
    assert!(matches!(r.unwrap().error, Some(GroupError::InvalidRequest { .. })), "metadata over the limit");
    let (_, a) = h.join(0, range("", &[0u8; 100]));
    let a = ok(a.as_ref().unwrap()).member_id.clone();
    let (_, r) = h.sync(1, sync_req(1, &a, &[(&a, &[0u8; 101])]));
    assert!(matches!(r.unwrap().error, Some(GroupError::InvalidRequest { .. })), "assignment over the limit");
    let (_, r) = h.sync(2, sync_req(1, &a, &[(&a, &[0u8; 100])]));
    assert_eq!(r.unwrap().error, None);
    assert_eq!(h.state(), GroupState::Stable);
}

/// What one simulated client knows of itself.
#[derive(Debug, Clone, Default)]
struct Client {
    member_id: String,
    instance_id: Option<String>,
    generation: i32,
    /// The members its last join answer listed (it leads), to assign in its sync.
    leads: Vec<String>,
}

impl Client {
    fn learn(&mut self, answer: &ClassicAnswer) {
        let error = match answer {
            ClassicAnswer::Join(r) => {
                if r.error.is_none() {
                    self.member_id = r.member_id.clone();
                    self.generation = r.generation_id;
                    self.leads = r.members.iter().map(|m| m.member_id.clone()).collect();
                } else if let Some(GroupError::MemberIdRequired { member_id }) = &r.error {
                    self.member_id = member_id.clone();
                }
                r.error.clone()
            }
            ClassicAnswer::Sync(r) => r.error.clone(),
        };
        if matches!(error, Some(GroupError::UnknownMemberId { .. } | GroupError::FencedInstanceId { .. })) {
            self.member_id.clear();
        }
    }
}

/// One random operation by a random client.
fn operate(
    h: &mut Harness,
    rng: &mut Rng,
    clients: &mut [Client],
    owners: &mut BTreeMap<u64, usize>,
    now: u64,
) {
    let i = rng.below(clients.len() as u64) as usize;
    let cl = clients[i].clone();
    let protocols: &[(&str, &[u8])] = match rng.below(3) {
        0 => &[("range", b"r")],
        1 => &[("roundrobin", b"rr"), ("range", b"r")],
        _ => &[("range", b"r2"), ("roundrobin", b"rr")],
    };
    match rng.below(10) {
        0..=2 => {
            let id = if rng.chance(90) { cl.member_id.clone() } else { String::new() };
            let req = JoinRequest {
                instance_id: cl.instance_id.clone(),
                require_known_member_id: rng.chance(50),
                ..join_req(&id, protocols)
            };
            let (token, r) = h.join(now, req);
            match r {
                Some(r) => clients[i].learn(&ClassicAnswer::Join(r)),
                None => drop(owners.insert(token, i)),
            }
        }
        3..=4 => {
            let assignments: Vec<(String, Vec<u8>)> =
                cl.leads.iter().map(|m| (m.clone(), m.as_bytes().to_vec())).collect();
            let req = SyncRequest {
                instance_id: cl.instance_id.clone(),
                assignments,
                protocol_name: None,
                ..sync_req(cl.generation, &cl.member_id, &[])
            };
            let (token, r) = h.sync(now, req);
            match r {
                Some(r) => clients[i].learn(&ClassicAnswer::Sync(r)),
                None => drop(owners.insert(token, i)),
            }
        }
        5..=6 => {
            let r = h.c.classic_heartbeat(now, G, cl.generation, &cl.member_id, cl.instance_id.as_deref());
            if matches!(r, Err(GroupError::UnknownMemberId { .. } | GroupError::FencedInstanceId { .. })) {
                clients[i].member_id.clear();
            }
            h.settle();
        }
        7 if rng.chance(30) => {
            let by_instance = cl.instance_id.is_some() && rng.chance(50);
            let who =
                if by_instance { ("", cl.instance_id.as_deref()) } else { (cl.member_id.as_str(), None) };
            if h.leave(now, &[who])[0].is_ok() {
                clients[i].member_id.clear();
            }
        }
        8 => {
            let offsets = vec![(
                "t".to_string(),
                0,
                CommittedOffset { offset: now, metadata: String::new(), leader_epoch: None },
            )];
            let _ =
                h.c.classic_commit(now, G, &cl.member_id, cl.generation, cl.instance_id.as_deref(), offsets);
            h.settle();
        }
        _ => {
            h.tick(now);
        }
    }
    for (token, answer) in std::mem::take(&mut h.released) {
        let owner = owners.remove(&token).expect("a released token was held by a client");
        clients[owner].learn(&answer);
    }
}

/// A reload (of the log, and of its compaction) keeps the invariants, never shows a newer
/// generation than the live group, and a stable group comes back exactly as it is.
fn check_reload(live: &Coordinator, log: &[(Vec<u8>, Option<Vec<u8>>)], now: u64) {
    for records in [log.to_vec(), common::compacted(log)] {
        let mut reloaded = common::replayed(&records, now);
        // A group with nothing but its metadata is forgotten by the first tick.
        reloaded.tick(now, &BTreeMap::new());
        reloaded.check_invariants().unwrap();
        let (Some(was), Some(is)) = (live.describe(G), reloaded.describe(G)) else { continue };
        assert!(
            is.group_epoch <= was.group_epoch,
            "reloaded at {} ahead of {}",
            is.group_epoch,
            was.group_epoch
        );
        if was.state == GroupState::Stable {
            assert_eq!(is, was, "a stable group reloads as it is");
        }
    }
}

#[test]
fn every_held_request_is_answered_exactly_once() {
    let config = CoordinatorConfig { group_members_max: 4, ..Default::default() };
    // How often the walk saw each state, so it is known to reach them.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for seed in 0..60 {
        let mut rng = Rng::new(seed);
        let mut h = Harness::new(config.clone());
        let mut clients: Vec<Client> = (0..6)
            .map(|n| Client { instance_id: (n < 2).then(|| format!("i{n}")), ..Default::default() })
            .collect();
        let mut owners = BTreeMap::new();
        let mut now = 0;
        let mut log = Vec::new();
        for step in 0..400 {
            now += rng.below(4000);
            operate(&mut h, &mut rng, &mut clients, &mut owners, now);
            log.extend(h.c.take_records().into_iter().map(|r| (r.key, r.value)));
            if step % 20 == 0 {
                check_reload(&h.c, &log, now);
            }
            let members = h.c.describe(G).map_or(0, |d| d.members.len());
            assert!(h.held.len() <= 2 * members, "seed {seed}: {} held for {members} members", h.held.len());
            *seen.entry(h.state().kafka_name()).or_default() += 1;
        }
        // Everyone goes: every request still held is answered.
        let ids: Vec<String> =
            h.c.describe(G).map(|d| d.members.into_iter().map(|m| m.member_id).collect()).unwrap_or_default();
        let list: Vec<(&str, Option<&str>)> = ids.iter().map(|m| (m.as_str(), None)).collect();
        assert!(h.leave(now + 1, &list).iter().all(Result::is_ok));
        h.tick(now + 1_000_000);
        assert!(h.held.is_empty(), "seed {seed}: {:?} never answered", h.held);
        assert_eq!(h.c.describe(G).map_or(GroupState::Empty, |d| d.state), GroupState::Empty);
    }
    for state in [GroupState::PreparingRebalance, GroupState::CompletingRebalance, GroupState::Stable] {
        let n = seen.get(state.kafka_name()).copied().unwrap_or(0);
        assert!(n > 100, "{state:?} seen too rarely: {seen:?}");
    }
}

#[test]
fn a_follower_rejoining_with_new_protocols_while_its_sync_is_held_gets_the_sync_answered() {
    let mut h = Harness::new(Default::default());
    let (_, a) = h.join(0, range("", b"ma"));
    let a = a.unwrap().member_id;
    let (tb, _) = h.join(1, range("", b"mb"));
    h.join(2, range(&a, b"ma")).1.unwrap();
    let b = h.joined(tb).member_id;
    let (tsb, _) = h.sync(3, sync_req(2, &b, &[]));
    let (tjb, none) = h.join(4, join_req(&b, &[("range", b"mb"), ("roundrobin", b"rr")]));
    assert!(none.is_none(), "new protocols: a rebalance");
    assert_eq!(h.synced(tsb).error, Some(GroupError::RebalanceInProgress));
    let (_, r) = h.join(5, range(&a, b"ma"));
    assert_eq!(ok(&r.unwrap()).generation_id, 3);
    assert_eq!(ok(&h.joined(tjb)).generation_id, 3);
    assert!(h.held.is_empty());
}

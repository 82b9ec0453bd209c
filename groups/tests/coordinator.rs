//! The coordinator's protocol, case by case.

mod common;

use common::*;
use weir_groups::{
    Assignor, CommittedOffset, Coordinator, CoordinatorConfig, GroupError, GroupState, HeartbeatRequest,
};

fn offset(o: u64) -> CommittedOffset {
    CommittedOffset { offset: o, metadata: String::new(), leader_epoch: None }
}

fn coordinator() -> Coordinator {
    Coordinator::new(CoordinatorConfig::default())
}

/// Two members on a topic of 4 partitions, both settled: returns (coordinator, a, b).
fn two_settled(t: &std::collections::BTreeMap<String, u32>) -> (Coordinator, String, String) {
    let mut c = coordinator();
    let a = c.heartbeat(0, "g", join(&["t"]), t).unwrap();
    let b = c.heartbeat(1, "g", join(&["t"]), t).unwrap();
    let ra = c.heartbeat(2, "g", beat(&a.member_id, 1, None), t).unwrap();
    let kept = ra.assignment.clone().unwrap();
    c.heartbeat(3, "g", beat(&a.member_id, 1, Some(kept)), t).unwrap();
    c.heartbeat(4, "g", beat(&b.member_id, 2, None), t).unwrap();
    c.check_invariants().unwrap();
    (c, a.member_id, b.member_id)
}

#[test]
fn the_first_member_gets_every_partition() {
    let t = topics(&[("t", 4)]);
    let mut c = coordinator();
    let r = c.heartbeat(0, "g", join(&["t"]), &t).unwrap();
    assert_eq!(r.member_id, "m-1");
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, SESSION_MS / 3);
    assert_eq!(r.assignment, Some(vec![tp("t", &[0, 1, 2, 3])]));
    let d = c.describe("g").unwrap();
    assert_eq!((d.state, d.group_epoch, d.assignor), (GroupState::Stable, 1, Assignor::Sticky));
    // Nothing changed: no assignment in the answer; no record once the ownership is known.
    let again = c.heartbeat(10, "g", beat("m-1", 1, Some(vec![tp("t", &[0, 1, 2, 3])])), &t).unwrap();
    assert_eq!(again.assignment, None);
    c.take_records();
    c.heartbeat(20, "g", beat("m-1", 1, None), &t).unwrap();
    c.heartbeat(30, "g", beat("m-1", 1, Some(vec![tp("t", &[0, 1, 2, 3])])), &t).unwrap();
    assert!(c.take_records().is_empty());
}

#[test]
fn a_moving_partition_goes_to_its_new_owner_only_after_the_old_one_released_it() {
    let t = topics(&[("t", 4)]);
    let mut c = coordinator();
    let a = c.heartbeat(0, "g", join(&["t"]), &t).unwrap().member_id;
    c.heartbeat(1, "g", beat(&a, 1, Some(vec![tp("t", &[0, 1, 2, 3])])), &t).unwrap();
    let b = c.heartbeat(2, "g", join(&["t"]), &t).unwrap();
    assert_eq!(b.member_epoch, 2);
    assert_eq!(b.assignment, Some(vec![]), "a still owns everything");
    // A is told to give up two partitions; it is not at the new epoch until it does.
    let ra = c.heartbeat(3, "g", beat(&a, 1, None), &t).unwrap();
    let kept = ra.assignment.clone().unwrap();
    assert_eq!(flat(&kept).len(), 2);
    assert_eq!(ra.member_epoch, 1);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Assigning);
    // Until A reports, B gets nothing, however often it asks.
    let rb = c.heartbeat(4, "g", beat(&b.member_id, 2, None), &t).unwrap();
    assert_eq!(rb.assignment, None);
    // A reports an unchanged ownership: still everything, so nothing is released.
    c.heartbeat(5, "g", beat(&a, 1, None), &t).unwrap();
    assert_eq!(c.heartbeat(6, "g", beat(&b.member_id, 2, None), &t).unwrap().assignment, None);
    c.check_invariants().unwrap();
    // A releases: it moves to the group epoch, and B gets the two on its next heartbeat.
    let ra = c.heartbeat(7, "g", beat(&a, 1, Some(kept.clone())), &t).unwrap();
    assert_eq!(ra.member_epoch, 2);
    let rb = c.heartbeat(8, "g", beat(&b.member_id, 2, None), &t).unwrap();
    let got = assigned(&rb);
    assert_eq!(got.len(), 2);
    assert!(got.is_disjoint(&flat(&kept)));
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    c.check_invariants().unwrap();
}

#[test]
fn a_partition_given_but_never_reported_is_released_by_the_next_report() {
    // A member that was given a partition but never reported owning it does not own it: an
    // unchanged report (None) after the revocation releases it.
    let t = topics(&[("t", 2)]);
    let mut c = coordinator();
    let a = c.heartbeat(0, "g", join(&["t"]), &t).unwrap().member_id;
    let b = c.heartbeat(1, "g", join(&["t"]), &t).unwrap().member_id;
    c.heartbeat(2, "g", beat(&a, 1, None), &t).unwrap();
    assert_eq!(held(&c, "g", &a).len(), 2);
    c.heartbeat(3, "g", beat(&a, 1, None), &t).unwrap();
    assert_eq!(held(&c, "g", &a).len(), 1);
    assert_eq!(assigned(&c.heartbeat(4, "g", beat(&b, 2, None), &t).unwrap()).len(), 1);
}

#[test]
fn owned_partitions_must_be_the_members() {
    let t = topics(&[("t", 4)]);
    let (mut c, a, b) = two_settled(&t);
    let theirs = held(&c, "g", &b).into_iter().next().unwrap();
    let err = c.heartbeat(10, "g", beat(&a, 2, Some(vec![tp(&theirs.0, &[theirs.1])])), &t).unwrap_err();
    assert!(matches!(err, GroupError::InvalidRequest { .. }), "{err:?}");
}

#[test]
fn leaving_frees_the_partitions_at_once() {
    let t = topics(&[("t", 4)]);
    let (mut c, a, b) = two_settled(&t);
    let r = c.heartbeat(10, "g", beat(&a, -1, None), &t).unwrap();
    assert_eq!(r.member_epoch, -1);
    let d = c.describe("g").unwrap();
    assert_eq!((d.group_epoch, d.members.len()), (3, 1));
    let rb = c.heartbeat(11, "g", beat(&b, 2, None), &t).unwrap();
    assert_eq!(rb.member_epoch, 3);
    assert_eq!(assigned(&rb).len(), 4);
    let err = c.heartbeat(12, "g", beat(&a, 2, None), &t).unwrap_err();
    assert_eq!(err, GroupError::UnknownMemberId { member_id: a.clone() });
    let err = c.commit(13, "g", &a, 2, vec![("t".into(), 0, offset(1))]).unwrap_err();
    assert_eq!(err, GroupError::UnknownMemberId { member_id: a });
}

fn static_join(instance: &str) -> HeartbeatRequest {
    HeartbeatRequest { instance_id: Some(instance.into()), ..join(&["t"]) }
}

#[test]
fn a_static_member_is_taken_over_without_a_rebalance() {
    let t = topics(&[("t", 4)]);
    let mut c = coordinator();
    let a = c.heartbeat(0, "g", static_join("i1"), &t).unwrap().member_id;
    let b = c.heartbeat(1, "g", join(&["t"]), &t).unwrap().member_id;
    let kept =
        c.heartbeat(2, "g", HeartbeatRequest { instance_id: Some("i1".into()), ..beat(&a, 1, None) }, &t);
    let kept = kept.unwrap().assignment.unwrap();
    c.heartbeat(
        3,
        "g",
        HeartbeatRequest { instance_id: Some("i1".into()), ..beat(&a, 1, Some(kept.clone())) },
        &t,
    )
    .unwrap();
    c.heartbeat(4, "g", beat(&b, 2, None), &t).unwrap();
    // The instance id is taken while its member lives.
    let err = c.heartbeat(5, "g", static_join("i1"), &t).unwrap_err();
    assert_eq!(err, GroupError::UnreleasedInstanceId { instance_id: "i1".into() });
    // It leaves for a while: no rebalance, its partitions stay held.
    let left = HeartbeatRequest { instance_id: Some("i1".into()), ..beat(&a, -2, None) };
    assert_eq!(c.heartbeat(6, "g", left, &t).unwrap().member_epoch, -2);
    assert_eq!(c.describe("g").unwrap().group_epoch, 2);
    assert_eq!(c.heartbeat(7, "g", beat(&b, 2, None), &t).unwrap().assignment, None);
    assert_eq!(
        c.heartbeat(8, "g", beat(&a, 2, None), &t).unwrap_err(),
        GroupError::UnknownMemberId { member_id: a.clone() }
    );
    // It comes back: a new member id, the same assignment, the same group epoch.
    let back = c.heartbeat(9, "g", static_join("i1"), &t).unwrap();
    assert_ne!(back.member_id, a);
    assert_eq!(back.member_epoch, 2);
    assert_eq!(back.assignment, Some(kept));
    assert_eq!(c.describe("g").unwrap().group_epoch, 2);
    let err = c.heartbeat(10, "g", beat(&a, 2, None), &t).unwrap_err();
    assert_eq!(err, GroupError::UnknownMemberId { member_id: a });
    c.check_invariants().unwrap();
}

#[test]
fn a_static_member_that_does_not_come_back_is_removed_when_its_session_ends() {
    let t = topics(&[("t", 4)]);
    let mut c = coordinator();
    let a = c.heartbeat(0, "g", static_join("i1"), &t).unwrap().member_id;
    let b = c.heartbeat(1, "g", join(&["t"]), &t).unwrap().member_id;
    let left = HeartbeatRequest { instance_id: Some("i1".into()), ..beat(&a, -2, None) };
    c.heartbeat(2, "g", left, &t).unwrap();
    // B heartbeats; A's held assignment expires with its session from the leave.
    let mut now = 2;
    while now < 2 + u64::from(SESSION_MS) {
        now += 1000;
        c.heartbeat(now, "g", beat(&b, c.describe("g").unwrap().members[1].member_epoch, None), &t).unwrap();
        c.tick(now, &t);
    }
    let d = c.describe("g").unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.group_epoch, 3);
    let rb = c.heartbeat(now + 1, "g", beat(&b, 2, None), &t).unwrap();
    assert_eq!(assigned(&rb).len(), 4);
}

#[test]
fn a_member_without_heartbeats_is_removed_when_its_session_ends() {
    let t = topics(&[("t", 4)]);
    let (mut c, a, b) = two_settled(&t);
    let session = u64::from(SESSION_MS);
    // B keeps heartbeating; A stops at 3.
    c.heartbeat(session, "g", beat(&b, 2, None), &t).unwrap();
    assert_eq!(c.tick(session, &t), Some(3 + session), "A's session ends 10 s after its last heartbeat");
    assert_eq!(c.describe("g").unwrap().members.len(), 2);
    c.tick(3 + session, &t);
    let d = c.describe("g").unwrap();
    assert_eq!((d.members.len(), d.group_epoch), (1, 3));
    assert_eq!(assigned(&c.heartbeat(3 + session, "g", beat(&b, 2, None), &t).unwrap()).len(), 4);
    assert_eq!(
        c.heartbeat(3 + session, "g", beat(&a, 2, None), &t).unwrap_err(),
        GroupError::UnknownMemberId { member_id: a.clone() }
    );
    let err = c.commit(3 + session, "g", &a, 2, vec![("t".into(), 0, offset(5))]).unwrap_err();
    assert_eq!(err, GroupError::UnknownMemberId { member_id: a });
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let t = topics(&[("t", 4)]);
    let mut c = coordinator();
    let a = c.heartbeat(0, "g", join(&["t"]), &t).unwrap().member_id;
    c.heartbeat(1, "g", beat(&a, 1, Some(vec![tp("t", &[0, 1, 2, 3])])), &t).unwrap();
    let b = c.heartbeat(2, "g", join(&["t"]), &t).unwrap().member_id;
    // A is told to revoke at 3 and keeps heartbeating, but still reports owning everything.
    let rebalance = u64::from(REBALANCE_MS);
    let mut now = 3;
    c.heartbeat(now, "g", beat(&a, 1, None), &t).unwrap();
    while now + 3000 < 3 + rebalance {
        now += 3000;
        c.heartbeat(now, "g", beat(&a, 1, None), &t).unwrap();
        c.heartbeat(now, "g", beat(&b, 2, None), &t).unwrap();
        assert_eq!(c.tick(now, &t), Some(3 + rebalance).min(Some(now + u64::from(SESSION_MS))));
    }
    assert_eq!(c.describe("g").unwrap().members.len(), 2);
    c.tick(3 + rebalance, &t);
    assert_eq!(c.describe("g").unwrap().members.len(), 1);
    let rb = c.heartbeat(3 + rebalance, "g", beat(&b, 2, None), &t).unwrap();
    assert_eq!(assigned(&rb).len(), 4);
    assert!(matches!(
        c.heartbeat(3 + rebalance, "g", beat(&a, 1, None), &t),
        Err(GroupError::UnknownMemberId { .. })
    ));
}

#[test]
fn a_wrong_epoch_is_fenced_and_the_member_rejoins_under_its_id() {
    let t = topics(&[("t", 4)]);
    let (mut c, a, _b) = two_settled(&t);
    let err = c.heartbeat(10, "g", beat(&a, 1, None), &t).unwrap_err();
    assert_eq!(err, GroupError::FencedMemberEpoch { expected: 2, got: 1 });
    let err = c.heartbeat(10, "g", beat(&a, 7, None), &t).unwrap_err();
    assert_eq!(err, GroupError::FencedMemberEpoch { expected: 2, got: 7 });
    // It gives up its partitions and rejoins: same id, its target again, no epoch bump.
    let before = held(&c, "g", &a);
    let r = c.heartbeat(11, "g", HeartbeatRequest { member_id: a.clone(), ..join(&["t"]) }, &t).unwrap();
    assert_eq!((r.member_id.as_str(), r.member_epoch), (a.as_str(), 2));
    assert_eq!(assigned(&r), before);
    assert_eq!(c.describe("g").unwrap().group_epoch, 2);
}

#[test]
fn commits_check_the_member_epoch() {
    let t = topics(&[("t", 4)]);
    let (mut c, a, b) = two_settled(&t);
    c.commit(10, "g", &a, 2, vec![("t".into(), 0, offset(10)), ("t".into(), 3, offset(30))]).unwrap();
    assert_eq!(
        c.commit(11, "g", &a, 1, vec![("t".into(), 0, offset(11))]).unwrap_err(),
        GroupError::StaleMemberEpoch { expected: 2, got: 1 }
    );
    assert_eq!(
        c.commit(11, "g", &b, 3, vec![("t".into(), 0, offset(11))]).unwrap_err(),
        GroupError::FencedMemberEpoch { expected: 2, got: 3 }
    );
    let fetched = c.fetch_offsets("g", Some(&[("t".into(), 0), ("t".into(), 1)]));
    assert_eq!(fetched, vec![("t".into(), 0, Some(offset(10))), ("t".into(), 1, None)]);
    assert_eq!(c.fetch_offsets("g", None).len(), 2);
    assert!(c.fetch_offsets("nope", None).is_empty());
}

#[test]
fn an_admin_commit_needs_an_empty_group() {
    let t = topics(&[("t", 4)]);
    let (mut c, a, b) = two_settled(&t);
    let err = c.commit(10, "g", "", -1, vec![("t".into(), 0, offset(0))]).unwrap_err();
    assert_eq!(err, GroupError::GroupNotEmpty { members: 2 });
    c.heartbeat(11, "g", beat(&a, -1, None), &t).unwrap();
    c.heartbeat(12, "g", beat(&b, -1, None), &t).unwrap();
    assert!(c.describe("g").is_none(), "an empty group without offsets is forgotten");
    c.commit(13, "g", "", -1, vec![("t".into(), 0, offset(7))]).unwrap();
    assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
    assert_eq!(c.fetch_offsets("g", None), vec![("t".into(), 0, Some(offset(7)))]);
    // An admin commit creates a group that does not exist.
    c.commit(14, "other", "", -1, vec![("u".into(), 1, offset(1))]).unwrap();
    assert_eq!(c.list().len(), 2);
}

#[test]
fn delete_needs_an_empty_group_and_takes_its_offsets() {
    let t = topics(&[("t", 4)]);
    let (mut c, a, b) = two_settled(&t);
    c.commit(10, "g", &a, 2, vec![("t".into(), 0, offset(10))]).unwrap();
    assert_eq!(c.delete("g").unwrap_err(), GroupError::GroupNotEmpty { members: 2 });
    assert_eq!(c.delete("nope").unwrap_err(), GroupError::GroupIdNotFound { group: "nope".into() });
    c.heartbeat(11, "g", beat(&a, -1, None), &t).unwrap();
    c.heartbeat(12, "g", beat(&b, -1, None), &t).unwrap();
    assert_eq!(c.list()[0].state, GroupState::Empty);
    c.take_records();
    c.delete("g").unwrap();
    assert!(c.describe("g").is_none());
    assert!(c.fetch_offsets("g", None).is_empty());
    let records = c.take_records();
    assert_eq!(records.len(), 2, "the offset's tombstone, then the group's");
    assert!(records.iter().all(|r| r.value.is_none()));
    assert_eq!(records[1].key[0], 2);
}

#[test]
fn deleting_a_topic_drops_its_offsets_in_every_group() {
    let mut c = coordinator();
    for g in ["g1", "g2"] {
        c.commit(0, g, "", -1, vec![("t".into(), 0, offset(1)), ("u".into(), 0, offset(2))]).unwrap();
    }
    c.commit(0, "g3", "", -1, vec![("t".into(), 0, offset(1))]).unwrap();
    c.delete_topic("t");
    assert_eq!(c.fetch_offsets("g1", None), vec![("u".into(), 0, Some(offset(2)))]);
    assert_eq!(c.fetch_offsets("g2", None), vec![("u".into(), 0, Some(offset(2)))]);
    assert!(c.describe("g3").is_none());
}

#[test]
fn a_partition_count_change_bumps_the_epoch_at_the_next_tick() {
    let mut t = topics(&[("t", 2)]);
    let mut c = coordinator();
    let a = c.heartbeat(0, "g", join(&["t", "u"]), &t).unwrap().member_id;
    assert_eq!(c.tick(1, &t), Some(u64::from(SESSION_MS)));
    assert_eq!(c.describe("g").unwrap().group_epoch, 1);
    t.insert("t".into(), 3);
    t.insert("u".into(), 1);
    c.tick(2, &t);
    assert_eq!(c.describe("g").unwrap().group_epoch, 2);
    let r = c.heartbeat(3, "g", beat(&a, 1, None), &t).unwrap();
    assert_eq!(r.assignment, Some(vec![tp("t", &[0, 1, 2]), tp("u", &[0])]));
    t.remove("u");
    c.heartbeat(4, "g", beat(&a, 2, None), &t).unwrap();
    assert_eq!(c.describe("g").unwrap().group_epoch, 3, "a heartbeat sees the change too");
}

#[test]
fn the_assignor_is_set_by_the_first_member() {
    let t = topics(&[("t", 4)]);
    let mut c = coordinator();
    c.heartbeat(0, "g", HeartbeatRequest { assignor: Some(Assignor::Range), ..join(&["t"]) }, &t).unwrap();
    c.heartbeat(1, "g", HeartbeatRequest { assignor: Some(Assignor::RoundRobin), ..join(&["t"]) }, &t)
        .unwrap();
    assert_eq!(c.describe("g").unwrap().assignor, Assignor::Range);
    assert_eq!("roundrobin".parse::<Assignor>().unwrap(), Assignor::RoundRobin);
    assert_eq!(Assignor::Sticky.to_string(), "sticky");
    assert!("fair".parse::<Assignor>().is_err());
}

#[test]
fn requests_beyond_the_limits_are_refused() {
    let t = topics(&[("t", 4)]);
    let mut c = Coordinator::new(CoordinatorConfig { group_members_max: 2, ..Default::default() });
    let invalid = |r: Result<_, GroupError>| matches!(r, Err(GroupError::InvalidRequest { .. }));
    assert!(invalid(c.heartbeat(0, &"g".repeat(250), join(&["t"]), &t)));
    assert!(invalid(c.heartbeat(0, "", join(&["t"]), &t)));
    assert!(invalid(c.heartbeat(0, "g", HeartbeatRequest { member_id: "m".repeat(65), ..join(&["t"]) }, &t)));
    assert!(invalid(c.heartbeat(0, "g", join(&[]), &t)));
    assert!(invalid(c.heartbeat(0, "g", HeartbeatRequest { topics: None, ..join(&["t"]) }, &t)));
    assert!(invalid(c.heartbeat(0, "g", HeartbeatRequest { session_timeout_ms: 999, ..join(&["t"]) }, &t)));
    assert!(invalid(c.heartbeat(
        0,
        "g",
        HeartbeatRequest { session_timeout_ms: 300_001, ..join(&["t"]) },
        &t
    )));
    assert!(invalid(c.heartbeat(0, "g", HeartbeatRequest { rebalance_timeout_ms: 0, ..join(&["t"]) }, &t)));
    assert!(invalid(c.heartbeat(0, "g", beat("m-1", -3, None), &t)));
    assert!(invalid(c.heartbeat(0, "g", beat("m-1", -2, None), &t)), "-2 needs an instance id");
    let long = CommittedOffset { offset: 0, metadata: "x".repeat(4097), leader_epoch: None };
    let refused = c.commit(0, "g", "", -1, vec![("t".into(), 0, long)]);
    assert!(matches!(refused, Err(GroupError::InvalidRequest { .. })));
    assert!(c.take_records().is_empty(), "refused requests change nothing");
    assert!(c.list().is_empty());
    c.heartbeat(0, "g", join(&["t"]), &t).unwrap();
    c.heartbeat(0, "g", join(&["t"]), &t).unwrap();
    assert_eq!(
        c.heartbeat(0, "g", join(&["t"]), &t).unwrap_err(),
        GroupError::GroupMaxSizeReached { max: 2 }
    );
}

#[test]
fn the_heartbeat_interval_is_a_third_of_the_session_within_bounds() {
    let t = topics(&[("t", 1)]);
    let mut c = coordinator();
    let r = c.heartbeat(0, "g", HeartbeatRequest { session_timeout_ms: 60_000, ..join(&["t"]) }, &t).unwrap();
    assert_eq!(r.heartbeat_interval_ms, 5000);
    let r = c.heartbeat(0, "h", HeartbeatRequest { session_timeout_ms: 1000, ..join(&["t"]) }, &t).unwrap();
    assert_eq!(r.heartbeat_interval_ms, 333);
}

#[test]
fn a_revocation_after_a_completed_one_gets_its_own_rebalance_timeout() {
    let t = topics(&[("t", 6)]);
    let long = |r: HeartbeatRequest| HeartbeatRequest { session_timeout_ms: 60_000, ..r };
    let mut c = coordinator();
    let a = c.heartbeat(0, "g", long(join(&["t"])), &t).unwrap().member_id;
    c.heartbeat(1, "g", long(beat(&a, 1, Some(vec![tp("t", &[0, 1, 2, 3, 4, 5])]))), &t).unwrap();
    c.heartbeat(2, "g", long(join(&["t"])), &t).unwrap();
    // Told at 3 to give up three partitions: due by 3 + REBALANCE_MS.
    let kept = c.heartbeat(3, "g", long(beat(&a, 1, None)), &t).unwrap().assignment.unwrap();
    assert_eq!(flat(&kept).len(), 3);
    c.heartbeat(19_000, "g", long(join(&["t"])), &t).unwrap();
    // At 20 s A releases them, and in the same answer is told to give up one more.
    let r = c.heartbeat(20_000, "g", long(beat(&a, 1, Some(kept))), &t).unwrap();
    assert_eq!(flat(&r.assignment.unwrap()).len(), 2);
    c.tick(3 + u64::from(REBALANCE_MS), &t);
    assert!(
        c.describe("g").unwrap().members.iter().any(|m| m.member_id == a),
        "the second revocation is not yet due"
    );
    c.tick(20_000 + u64::from(REBALANCE_MS), &t);
    assert!(c.describe("g").unwrap().members.iter().all(|m| m.member_id != a));
}

/// An answer lost on its way (the member never applied it) is sent again: a member that reports
/// owning other than what it was assigned gets its assignment in the next answer, so a
/// partition is never stranded with a member that does not know it has it.
#[test]
fn a_member_reporting_other_than_its_assignment_is_answered_it_again() {
    let t = topics(&[("t", 4)]);
    let mut c = coordinator();
    let r = c.heartbeat(0, "g", join(&["t"]), &t).unwrap();
    assert_eq!(r.assignment, Some(vec![tp("t", &[0, 1, 2, 3])]));
    // The answer was lost: the member still owns nothing, and says so.
    let again = c.heartbeat(10, "g", beat(&r.member_id, 1, Some(vec![])), &t).unwrap();
    assert_eq!(again.assignment, Some(vec![tp("t", &[0, 1, 2, 3])]), "answered again");
    let settled =
        c.heartbeat(20, "g", beat(&r.member_id, 1, Some(vec![tp("t", &[0, 1, 2, 3])])), &t).unwrap();
    assert_eq!(settled.assignment, None, "in step: nothing to say");
}

/// A heartbeat in the epoch just before the member's current one is the retry of a heartbeat
/// whose answer (the one that raised the epoch) was lost: it is answered again with the whole
/// assignment, not fenced, as in KIP-848. Two epochs back is fenced.
#[test]
fn a_heartbeat_in_the_previous_epoch_is_answered_again() {
    let t = topics(&[("t", 4)]);
    let (mut c, a, b) = two_settled(&t);
    let epoch_of = |c: &Coordinator, id: &str| {
        c.describe("g").unwrap().members.iter().find(|m| m.member_id == id).unwrap().member_epoch
    };
    // A third member joins: one of the first two gives up a partition.
    c.heartbeat(10, "g", join(&["t"]), &t).unwrap();
    let (giver, epoch, kept) = [&a, &b]
        .into_iter()
        .find_map(|id| {
            let epoch = epoch_of(&c, id);
            let r = c.heartbeat(11, "g", beat(id, epoch, None), &t).unwrap();
            r.assignment.map(|kept| (id.clone(), epoch, kept))
        })
        .expect("a member gives a partition up");
    // It releases it and moves to the new epoch in an answer that is lost.
    let moved_on = c.heartbeat(12, "g", beat(&giver, epoch, Some(kept.clone())), &t).unwrap();
    assert!(moved_on.member_epoch > epoch, "released and moved on");
    let again = c.heartbeat(13, "g", beat(&giver, epoch, Some(kept.clone())), &t).unwrap();
    assert_eq!((again.member_epoch, again.assignment), (moved_on.member_epoch, Some(kept)));
    c.check_invariants().unwrap();
    // Two epochs back is no lost answer: fenced.
    let err = c.heartbeat(14, "g", beat(&giver, epoch - 1, Some(vec![])), &t).unwrap_err();
    assert!(matches!(err, GroupError::FencedMemberEpoch { .. }), "{err:?}");
}

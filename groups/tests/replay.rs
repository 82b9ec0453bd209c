//! Replaying the records emitted so far, whole or compacted, rebuilds an equal coordinator.

mod common;

use std::collections::BTreeMap;

use common::*;
use weir_groups::{CommittedOffset, Coordinator, GroupError, HeartbeatRequest};

const GROUPS: [&str; 3] = ["g0", "g1", "g2"];

/// One random operation on `c`; refusals are part of the game (they must emit nothing).
fn operate(c: &mut Coordinator, rng: &mut Rng, now: u64, topics: &mut BTreeMap<String, u32>) {
    let group = GROUPS[rng.below(3) as usize];
    let members = c.describe(group).map(|d| d.members).unwrap_or_default();
    let member = (!members.is_empty()).then(|| members[rng.below(members.len() as u64) as usize].clone());
    let instance = rng.chance(30).then(|| format!("i{}", rng.below(3)));
    let subscription: Vec<&str> = if rng.chance(50) { vec!["t"] } else { vec!["t", "u"] };
    let before = c.list();
    let refused = match (rng.below(12), member) {
        (0..=2, _) => c
            .heartbeat(now, group, HeartbeatRequest { instance_id: instance, ..join(&subscription) }, topics)
            .err(),
        (3..=5, Some(m)) => {
            let owned = if rng.chance(50) { Some(m.assignment.clone()) } else { None };
            let topics_change = rng.chance(10).then(|| subscription.iter().map(|t| t.to_string()).collect());
            let req = HeartbeatRequest { topics: topics_change, ..beat(&m.member_id, m.member_epoch, owned) };
            c.heartbeat(now, group, req, topics).err()
        }
        (6, Some(m)) => {
            let epoch = if m.instance_id.is_some() && rng.chance(50) { -2 } else { -1 };
            let req =
                HeartbeatRequest { instance_id: m.instance_id.clone(), ..beat(&m.member_id, epoch, None) };
            c.heartbeat(now, group, req, topics).err()
        }
        (7, m) => {
            let (id, epoch) = m.map_or((String::new(), -1), |m| (m.member_id, m.member_epoch));
            let offsets = (0..1 + rng.below(3))
                .map(|p| {
                    (
                        "t".to_string(),
                        p as u32,
                        CommittedOffset { offset: now, metadata: format!("{now}"), leader_epoch: None },
                    )
                })
                .collect();
            c.commit(now, group, &id, epoch, offsets).err()
        }
        (8, _) => c.delete(group).err(),
        (9, _) if rng.chance(20) => {
            c.delete_topic("u");
            None
        }
        (10, _) => {
            *topics.get_mut("t").unwrap() += 1;
            None
        }
        _ => {
            c.tick(now, topics);
            None
        }
    };
    if let Some(e) = refused {
        assert!(!matches!(e, GroupError::CorruptRecord { .. }));
        assert_eq!(c.list(), before, "a refused request changes nothing");
    }
}

#[test]
fn replaying_every_record_so_far_rebuilds_an_equal_coordinator() {
    for seed in 0..40 {
        let mut rng = Rng::new(seed);
        let mut c = Coordinator::new(Default::default());
        let mut topics = topics(&[("t", 3), ("u", 2)]);
        let mut log = Vec::new();
        let mut now = 0;
        for step in 0..300 {
            now += rng.below(2000);
            operate(&mut c, &mut rng, now, &mut topics);
            c.check_invariants().unwrap();
            log.extend(c.take_records().into_iter().map(|r| (r.key, r.value)));
            if step % 50 == 49 {
                assert_same(&c, &replayed(&log, now));
                assert_same(&c, &replayed(&compacted(&log), now));
            }
        }
    }
}

#[test]
fn a_replayed_coordinator_carries_on_where_the_old_one_stopped() {
    let t = topics(&[("t", 4)]);
    let mut c = Coordinator::new(Default::default());
    let a = c.heartbeat(0, "g", join(&["t"]), &t).unwrap();
    let b = c.heartbeat(1, "g", join(&["t"]), &t).unwrap();
    // A must revoke two partitions when the coordinator moves.
    let owned = Some(vec![tp("t", &[0, 1, 2, 3])]);
    let kept = c.heartbeat(2, "g", beat(&a.member_id, 1, owned), &t).unwrap().assignment.unwrap();
    assert_eq!(flat(&kept).len(), 2);
    let log: Vec<_> = c.take_records().into_iter().map(|r| (r.key, r.value)).collect();
    let mut d = replayed(&log, 100);
    assert_same(&c, &d);
    // Sessions start afresh at the replay; answers carry the assignment again.
    assert_eq!(d.tick(100, &t), Some(100 + u64::from(SESSION_MS)));
    let again = d.heartbeat(101, "g", beat(&a.member_id, 1, None), &t).unwrap();
    assert_eq!(again.assignment, Some(kept.clone()));
    assert_eq!(d.heartbeat(102, "g", beat(&b.member_id, 2, None), &t).unwrap().assignment, Some(vec![]));
    d.heartbeat(103, "g", beat(&a.member_id, 1, Some(kept)), &t).unwrap();
    assert_eq!(assigned(&d.heartbeat(104, "g", beat(&b.member_id, 2, None), &t).unwrap()).len(), 2);
    // The id counter survives: a new member gets a new id.
    assert_eq!(d.heartbeat(105, "g", join(&["t"]), &t).unwrap().member_id, "m-3");
}

#[test]
fn a_record_that_does_not_decode_is_refused() {
    let mut c = Coordinator::new(Default::default());
    assert!(matches!(c.replay(0, &[9], None), Err(GroupError::CorruptRecord { .. })));
    assert!(matches!(c.replay(0, &[2, 0, 1, b'g'], Some(b"\0{")), Err(GroupError::CorruptRecord { .. })));
    assert!(c.list().is_empty());
}

fn classic_join(group: &str, member_id: &str) -> weir_groups::JoinRequest {
    weir_groups::JoinRequest {
        group: group.to_owned(),
        member_id: member_id.to_owned(),
        instance_id: None,
        protocol_type: "consumer".to_owned(),
        protocols: vec![("range".to_owned(), b"meta".to_vec())],
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        require_known_member_id: false,
        client_id: String::new(),
        client_host: String::new(),
    }
}

fn classic_sync(group: &str, generation_id: i32, member_id: &str) -> weir_groups::SyncRequest {
    weir_groups::SyncRequest {
        group: group.to_owned(),
        generation_id,
        member_id: member_id.to_owned(),
        instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: vec![(member_id.to_owned(), b"a".to_vec())],
    }
}

/// A classic group's stable generation survives a reload with its members, so a member
/// carries on, and the generation never goes back.
#[test]
fn a_replayed_classic_group_keeps_its_generation_and_offsets() {
    use weir_groups::{GroupKind, GroupState};
    let mut c = Coordinator::new(Default::default());
    let mut log = Vec::new();
    let mut generation = 0;
    for round in 0..3u64 {
        let now = round * 100;
        let j = c.classic_join(now, 2 * round, classic_join("g", "")).unwrap();
        generation = j.generation_id;
        c.classic_sync(now + 1, 2 * round + 1, classic_sync("g", generation, &j.member_id)).unwrap();
        let offsets = vec![(
            "t".to_string(),
            0,
            CommittedOffset { offset: now, metadata: format!("r{round}"), leader_epoch: None },
        )];
        c.classic_commit(now + 2, "g", &j.member_id, generation, None, offsets).unwrap();
        // A classic group that never completed a generation and has no offsets stores nothing.
        let other = c.classic_join(now, 100 + round, classic_join("h", "")).unwrap();
        log.extend(c.take_records().into_iter().map(|r| (r.key, r.value)));
        for records in [log.clone(), compacted(&log)] {
            let mut d = replayed(&records, now + 3);
            d.check_invariants().unwrap();
            assert!(d.describe("h").is_none());
            let desc = d.describe("g").unwrap();
            assert_eq!(
                (desc.kind, desc.state, desc.group_epoch),
                (GroupKind::Classic, GroupState::Stable, generation)
            );
            assert_eq!(desc.members[0].member_id, j.member_id);
            assert_eq!(desc.protocol_type, "consumer");
            assert_eq!(d.fetch_offsets("g", None), c.fetch_offsets("g", None));
            // The member carries on in its generation; once it left, a new member joins two
            // generations on (leaving emptied the group), under an id never made before.
            let late = vec![(
                "t".to_string(),
                0,
                CommittedOffset { offset: 0, metadata: String::new(), leader_epoch: None },
            )];
            d.classic_commit(now + 3, "g", &j.member_id, generation, None, late).unwrap();
            assert_eq!(d.classic_leave(now + 4, "g", vec![(j.member_id.clone(), None)]), [Ok(())]);
            let again = d.classic_join(now + 4, 0, classic_join("g", "")).unwrap();
            assert_eq!(again.generation_id, generation + 2);
            assert!(![&j.member_id, &other.member_id].contains(&&again.member_id));
            d.check_invariants().unwrap();
        }
        let gone = c.classic_leave(now + 50, "h", vec![(other.member_id.clone(), None)]);
        assert_eq!(gone, [Ok(())]);
        assert_eq!(c.classic_leave(now + 50, "g", vec![(j.member_id.clone(), None)]), [Ok(())]);
        assert!(c.take_classic_answers().is_empty());
    }
    log.extend(c.take_records().into_iter().map(|r| (r.key, r.value)));
    let d = replayed(&log, 1000);
    assert_same(&c, &d);
    assert!(d.describe("h").is_none());
    assert_eq!(
        d.describe("g").unwrap().group_epoch,
        generation + 1,
        "leaving emptied it: one more generation"
    );
}

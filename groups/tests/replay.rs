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
                    ("t".to_string(), p as u32, CommittedOffset { offset: now, metadata: format!("{now}") })
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

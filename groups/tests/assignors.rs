//! The assignors: coverage, balance and stickiness.

use std::collections::{BTreeMap, BTreeSet};

use weir_groups::Assignor;
use weir_groups::assignor::{Assignment, Subscriptions, assign, count};

fn subs(members: &[(&str, &[&str])]) -> Subscriptions {
    members.iter().map(|(id, ts)| (id.to_string(), ts.iter().map(|t| t.to_string()).collect())).collect()
}

fn counts(topics: &[(&str, u32)]) -> BTreeMap<String, u32> {
    topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn parts(a: &Assignment, topic: &str) -> Vec<u32> {
    a.get(topic).map(|ps| ps.iter().copied().collect()).unwrap_or_default()
}

/// Every partition of every subscribed topic goes to exactly one subscriber of it.
fn check_coverage(
    members: &Subscriptions,
    partitions: &BTreeMap<String, u32>,
    result: &BTreeMap<String, Assignment>,
) {
    let mut seen = BTreeSet::new();
    for (id, a) in result {
        for (topic, ps) in a {
            assert!(members[id].contains(topic), "{id} got {topic} without subscribing");
            for p in ps {
                assert!(*p < partitions[topic], "{topic}/{p} does not exist");
                assert!(seen.insert((topic.clone(), *p)), "{topic}/{p} assigned twice");
            }
        }
    }
    let subscribed: BTreeSet<&String> = members.values().flatten().collect();
    let expected: usize = subscribed.iter().map(|t| partitions.get(*t).copied().unwrap_or(0) as usize).sum();
    assert_eq!(seen.len(), expected, "every partition of a subscribed topic is assigned");
}

/// Members with the same subscription differ by at most one partition.
fn check_balance(members: &Subscriptions, result: &BTreeMap<String, Assignment>) {
    for (a, sa) in members {
        for (b, sb) in members {
            if sa == sb {
                let (ca, cb) = (count(&result[a]), count(&result[b]));
                assert!(ca.abs_diff(cb) <= 1, "{a} has {ca}, {b} has {cb}");
            }
        }
    }
}

fn moved(before: &BTreeMap<String, Assignment>, after: &BTreeMap<String, Assignment>) -> usize {
    let mut n = 0;
    for (id, a) in before {
        for (topic, ps) in a {
            for p in ps {
                if !after.get(id).is_some_and(|b| b.get(topic).is_some_and(|q| q.contains(p))) {
                    n += 1;
                }
            }
        }
    }
    n
}

#[test]
fn range_gives_contiguous_ranges_per_topic_to_members_sorted_by_id() {
    let members = subs(&[("b", &["t", "u"]), ("a", &["t"]), ("c", &["t", "u"])]);
    let partitions = counts(&[("t", 7), ("u", 3)]);
    let r = assign(Assignor::Range, &members, &partitions, &BTreeMap::new());
    check_coverage(&members, &partitions, &r);
    assert_eq!(parts(&r["a"], "t"), [0, 1, 2]);
    assert_eq!(parts(&r["b"], "t"), [3, 4]);
    assert_eq!(parts(&r["c"], "t"), [5, 6]);
    assert_eq!(parts(&r["b"], "u"), [0, 1]);
    assert_eq!(parts(&r["c"], "u"), [2]);
    assert!(!r["a"].contains_key("u"));
}

#[test]
fn round_robin_interleaves_all_partitions_over_subscribed_members() {
    let members = subs(&[("a", &["t", "u"]), ("b", &["t"]), ("c", &["t", "u"])]);
    let partitions = counts(&[("t", 4), ("u", 3)]);
    let r = assign(Assignor::RoundRobin, &members, &partitions, &BTreeMap::new());
    check_coverage(&members, &partitions, &r);
    assert_eq!(parts(&r["a"], "t"), [0, 3]);
    assert_eq!(parts(&r["b"], "t"), [1]);
    assert_eq!(parts(&r["c"], "t"), [2]);
    // The turn goes on after t/3 (given to a): b skips u, so c, a, c.
    assert_eq!(parts(&r["c"], "u"), [0, 2]);
    assert_eq!(parts(&r["a"], "u"), [1]);
}

#[test]
fn a_topic_that_does_not_exist_is_assigned_nothing() {
    let members = subs(&[("a", &["t", "gone"]), ("b", &["gone"])]);
    let partitions = counts(&[("t", 2)]);
    for assignor in [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky] {
        let r = assign(assignor, &members, &partitions, &BTreeMap::new());
        check_coverage(&members, &partitions, &r);
        assert_eq!(count(&r["a"]), 2);
        assert!(r["b"].is_empty());
    }
}

#[test]
fn sticky_adding_a_fourth_member_to_three_on_24_partitions_moves_exactly_6() {
    let mut members = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
    let partitions = counts(&[("t", 24)]);
    let first = assign(Assignor::Sticky, &members, &partitions, &BTreeMap::new());
    check_balance(&members, &first);
    members.insert("d".into(), ["t".to_string()].into());
    let second = assign(Assignor::Sticky, &members, &partitions, &first);
    check_coverage(&members, &partitions, &second);
    check_balance(&members, &second);
    assert_eq!(moved(&first, &second), 6);
    assert_eq!(count(&second["d"]), 6);
}

#[test]
fn sticky_removing_a_member_moves_only_its_own() {
    let mut members = subs(&[("a", &["t", "u"]), ("b", &["t", "u"]), ("c", &["t", "u"]), ("d", &["t", "u"])]);
    let partitions = counts(&[("t", 13), ("u", 11)]);
    let first = assign(Assignor::Sticky, &members, &partitions, &BTreeMap::new());
    check_balance(&members, &first);
    members.remove("b");
    let second = assign(Assignor::Sticky, &members, &partitions, &first);
    check_coverage(&members, &partitions, &second);
    check_balance(&members, &second);
    let mut survivors = first.clone();
    survivors.remove("b");
    assert_eq!(moved(&survivors, &second), 0, "survivors keep everything they had");
}

#[test]
fn sticky_keeps_a_balanced_assignment_as_it_is() {
    let members = subs(&[("a", &["t"]), ("b", &["t"])]);
    let partitions = counts(&[("t", 4)]);
    // An unusual but balanced current assignment stays.
    let current: BTreeMap<String, Assignment> = [
        ("a".to_string(), [("t".to_string(), BTreeSet::from([0, 3]))].into()),
        ("b".to_string(), [("t".to_string(), BTreeSet::from([1, 2]))].into()),
    ]
    .into();
    let r = assign(Assignor::Sticky, &members, &partitions, &current);
    assert_eq!(r, current);
}

/// A small deterministic PRNG (xorshift64*), so the sweep needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn sticky_stays_balanced_and_covering_through_random_changes() {
    let topics = ["t0", "t1", "t2"];
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut members = Subscriptions::new();
        let mut partitions = counts(&[("t0", 8), ("t1", 5), ("t2", 3)]);
        let mut current = BTreeMap::new();
        for step in 0..30 {
            match rng.below(4) {
                0 | 1 => {
                    let subscription: BTreeSet<String> =
                        topics.iter().filter(|_| rng.below(2) == 0).map(|t| t.to_string()).collect();
                    let subscription = if subscription.is_empty() {
                        BTreeSet::from(["t0".to_string()])
                    } else {
                        subscription
                    };
                    members.insert(format!("m{step}"), subscription);
                }
                2 => {
                    if let Some(id) =
                        members.keys().nth(rng.below(members.len().max(1) as u64) as usize).cloned()
                    {
                        members.remove(&id);
                    }
                }
                _ => {
                    let t = topics[rng.below(3) as usize];
                    *partitions.get_mut(t).unwrap() += rng.below(3) as u32;
                }
            }
            let next = assign(Assignor::Sticky, &members, &partitions, &current);
            check_coverage(&members, &partitions, &next);
            check_balance(&members, &next);
            current = next;
        }
    }
}

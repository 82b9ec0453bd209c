//! The sticky assignor: every member keeps the partitions of its current target that still
//! exist and that it still subscribes to; free partitions go to the least loaded subscriber;
//! then single partitions move from a member to one with at least two fewer, while such a move
//! exists. Each move lowers the sum of squared counts, so the loop ends, and it ends only when
//! no two members subscribed to the same topics differ by more than one. A move happens only
//! to fix such a gap, so the fewest partitions move: adding a fourth member to three that own
//! 24 partitions moves exactly 6; removing one moves only its own.

use std::collections::{BTreeMap, BTreeSet};

use super::{Assignment, Subscriptions, add, count, iter, remove, subscribed_topics};

pub(super) fn assign(
    members: &Subscriptions,
    partitions: &BTreeMap<String, u32>,
    current: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let topics = subscribed_topics(members, partitions);
    let mut result: BTreeMap<String, Assignment> =
        members.keys().map(|id| (id.clone(), Assignment::new())).collect();
    let mut taken: BTreeSet<(String, u32)> = BTreeSet::new();
    for (id, owned) in current {
        let Some(subscription) = members.get(id) else { continue };
        for (topic, p) in iter(owned) {
            let exists = topics.get(topic).is_some_and(|&n| p < n);
            if exists && subscription.contains(topic) && taken.insert((topic.to_owned(), p)) {
                add(result.get_mut(id).expect("every member has an entry"), topic, p);
            }
        }
    }
    let mut load: BTreeSet<(usize, String)> = result.iter().map(|(id, a)| (count(a), id.clone())).collect();
    give_free(members, &topics, &taken, &mut result, &mut load);
    while let Some((from, to, topic, p)) = find_move(members, &result, &load) {
        shift(&mut result, &mut load, &from, &to, &topic, p);
    }
    result
}

/// Gives each free partition to the least loaded member subscribed to its topic; topics with
/// fewer subscribers go first, as they have fewer places to go.
fn give_free(
    members: &Subscriptions,
    topics: &BTreeMap<String, u32>,
    taken: &BTreeSet<(String, u32)>,
    result: &mut BTreeMap<String, Assignment>,
    load: &mut BTreeSet<(usize, String)>,
) {
    let subscribers = |t: &String| members.values().filter(|s| s.contains(t)).count();
    let mut order: Vec<(usize, &String, u32)> = topics.iter().map(|(t, &n)| (subscribers(t), t, n)).collect();
    order.sort();
    for (_, topic, n) in order {
        for p in (0..n).filter(|&p| !taken.contains(&(topic.clone(), p))) {
            let (c, id) = load
                .iter()
                .find(|(_, id)| members[id].contains(topic))
                .cloned()
                .expect("a subscribed topic has a subscriber");
            load.remove(&(c, id.clone()));
            add(result.get_mut(&id).expect("every member has an entry"), topic, p);
            load.insert((c + 1, id));
        }
    }
}

/// A partition that can go from a member to one subscribed to its topic that has at least two
/// fewer: the least loaded receiver first, the most loaded giver first.
fn find_move(
    members: &Subscriptions,
    result: &BTreeMap<String, Assignment>,
    load: &BTreeSet<(usize, String)>,
) -> Option<(String, String, String, u32)> {
    for (low, to) in load {
        for (high, from) in load.iter().rev() {
            if *high <= low + 1 {
                break;
            }
            let giver = &result[from];
            for topic in &members[to] {
                if let Some(&p) = giver.get(topic).and_then(|ps| ps.last()) {
                    return Some((from.clone(), to.clone(), topic.clone(), p));
                }
            }
        }
    }
    None
}

fn shift(
    result: &mut BTreeMap<String, Assignment>,
    load: &mut BTreeSet<(usize, String)>,
    from: &str,
    to: &str,
    topic: &str,
    p: u32,
) {
    for (id, delta) in [(from, -1isize), (to, 1)] {
        let a = result.get_mut(id).expect("every member has an entry");
        let c = count(a);
        load.remove(&(c, id.to_owned()));
        if delta < 0 {
            remove(a, topic, p);
        } else {
            add(a, topic, p);
        }
        load.insert((c.wrapping_add_signed(delta), id.to_owned()));
    }
}

//! The round-robin assignor: all partitions of all topics, topics in name order, go one by one
//! to the members sorted by id in turn, skipping members not subscribed to the topic.

use std::collections::BTreeMap;

use super::{Assignment, Subscriptions, subscribed_topics};

pub(super) fn assign(
    members: &Subscriptions,
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, Assignment> {
    let ids: Vec<&String> = members.keys().collect();
    let mut result: BTreeMap<String, Assignment> = BTreeMap::new();
    let mut turn = 0usize;
    for (topic, count) in subscribed_topics(members, partitions) {
        for p in 0..count {
            // A topic in `subscribed_topics` has at least one subscriber, so this finds one
            // within a full turn.
            let chosen = (0..ids.len())
                .map(|k| (turn + k) % ids.len())
                .find(|&i| members[ids[i]].contains(&topic))
                .expect("a subscribed topic has a subscriber");
            result.entry(ids[chosen].clone()).or_default().entry(topic.clone()).or_default().insert(p);
            turn = chosen + 1;
        }
    }
    result
}

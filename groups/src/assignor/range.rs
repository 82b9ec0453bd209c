//! The range assignor: per topic, the subscribed members sorted by id each take a contiguous
//! range; the first `partitions % members` of them take one more.

use std::collections::BTreeMap;

use super::{Assignment, Subscriptions, subscribed_topics};

pub(super) fn assign(
    members: &Subscriptions,
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = BTreeMap::new();
    for (topic, count) in subscribed_topics(members, partitions) {
        let subscribers: Vec<&String> =
            members.iter().filter(|(_, topics)| topics.contains(&topic)).map(|(id, _)| id).collect();
        let n = subscribers.len() as u32;
        let (base, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, id) in subscribers.into_iter().enumerate() {
            let take = base + u32::from((i as u32) < extra);
            let a = result.entry(id.clone()).or_default();
            a.entry(topic.clone()).or_default().extend(next..next + take);
            next += take;
        }
    }
    result
}

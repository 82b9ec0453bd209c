//! Server-side assignors: pure functions from the members' subscriptions, the topics' partition
//! counts and the current target assignment to the next target assignment.
//!
//! Every assignor gives each partition of a subscribed topic to exactly one member subscribed to
//! that topic, and nothing else; members are visited in id order, so the result is deterministic.

mod range;
mod round_robin;
mod sticky;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::api::TopicPartitions;

/// Partitions by topic; a topic is present only with at least one partition.
pub type Assignment = BTreeMap<String, BTreeSet<u32>>;
/// Each member's subscribed topics, by member id.
pub type Subscriptions = BTreeMap<String, BTreeSet<String>>;

/// The group's assignor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions over the subscribed members sorted by id.
    Range,
    /// All partitions of all topics interleaved over the members sorted by id.
    RoundRobin,
    /// Balanced, and moves as few partitions as possible from their current owners.
    #[default]
    Sticky,
}

impl fmt::Display for Assignor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::Sticky => "sticky",
        })
    }
}

impl FromStr for Assignor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "range" => Ok(Assignor::Range),
            "roundrobin" => Ok(Assignor::RoundRobin),
            "sticky" => Ok(Assignor::Sticky),
            other => Err(format!("unknown assignor {other:?} (range, roundrobin, sticky)")),
        }
    }
}

/// The target assignment of every member in `members` (each gets an entry, maybe empty).
/// `partitions` holds the partition count of each subscribed topic (absent or 0: assigned
/// nothing); `current` is the previous target, which only the sticky assignor looks at.
pub fn assign(
    assignor: Assignor,
    members: &Subscriptions,
    partitions: &BTreeMap<String, u32>,
    current: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut result = match assignor {
        Assignor::Range => range::assign(members, partitions),
        Assignor::RoundRobin => round_robin::assign(members, partitions),
        Assignor::Sticky => sticky::assign(members, partitions, current),
    };
    for id in members.keys() {
        result.entry(id.clone()).or_default();
    }
    for a in result.values_mut() {
        a.retain(|_, ps| !ps.is_empty());
    }
    result
}

/// The topics anyone subscribes to, with their partition counts (0 when unknown).
pub(crate) fn subscribed_topics(
    members: &Subscriptions,
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, u32> {
    let mut topics = BTreeMap::new();
    for subscription in members.values() {
        for topic in subscription {
            topics.insert(topic.clone(), partitions.get(topic).copied().unwrap_or(0));
        }
    }
    topics
}

/// The number of partitions in an assignment.
pub fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

pub(crate) fn to_list(a: &Assignment) -> Vec<TopicPartitions> {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| TopicPartitions { topic: t.clone(), partitions: ps.iter().copied().collect() })
        .collect()
}

pub(crate) fn from_list(list: &[TopicPartitions]) -> Assignment {
    let mut a = Assignment::new();
    for tp in list {
        if !tp.partitions.is_empty() {
            a.entry(tp.topic.clone()).or_default().extend(tp.partitions.iter().copied());
        }
    }
    a
}

/// Whether `a` holds partition `p` of `topic`.
pub(crate) fn holds(a: &Assignment, topic: &str, p: u32) -> bool {
    a.get(topic).is_some_and(|ps| ps.contains(&p))
}

/// Adds partition `p` of `topic` to `a`.
pub(crate) fn add(a: &mut Assignment, topic: &str, p: u32) {
    a.entry(topic.to_owned()).or_default().insert(p);
}

/// Removes partition `p` of `topic` from `a`, dropping the topic when it empties.
pub(crate) fn remove(a: &mut Assignment, topic: &str, p: u32) -> bool {
    let Some(ps) = a.get_mut(topic) else { return false };
    let removed = ps.remove(&p);
    if ps.is_empty() {
        a.remove(topic);
    }
    removed
}

/// Every (topic, partition) in `a`, in order.
pub(crate) fn iter(a: &Assignment) -> impl Iterator<Item = (&str, u32)> {
    a.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), *p)))
}

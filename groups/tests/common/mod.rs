//! Helpers shared by the coordinator's tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use weir_groups::{Coordinator, HeartbeatRequest, HeartbeatResponse, TopicPartitions};

pub const SESSION_MS: u32 = 10_000;
pub const REBALANCE_MS: u32 = 30_000;

pub fn topics(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

pub fn join(topics: &[&str]) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: String::new(),
        instance_id: None,
        member_epoch: 0,
        topics: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: None,
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        assignor: None,
    }
}

pub fn beat(member_id: &str, epoch: i32, owned: Option<Vec<TopicPartitions>>) -> HeartbeatRequest {
    HeartbeatRequest {
        member_id: member_id.to_owned(),
        instance_id: None,
        member_epoch: epoch,
        topics: None,
        owned,
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        assignor: None,
    }
}

pub fn tp(topic: &str, partitions: &[u32]) -> TopicPartitions {
    TopicPartitions { topic: topic.to_owned(), partitions: partitions.to_vec() }
}

pub fn flat(list: &[TopicPartitions]) -> BTreeSet<(String, u32)> {
    list.iter().flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.clone(), *p))).collect()
}

pub fn assigned(r: &HeartbeatResponse) -> BTreeSet<(String, u32)> {
    flat(r.assignment.as_ref().expect("an assignment in the answer"))
}

/// The partitions the coordinator holds for `member` (assigned or revoking).
pub fn held(c: &Coordinator, group: &str, member: &str) -> BTreeSet<(String, u32)> {
    let d = c.describe(group).expect("the group exists");
    let m = d.members.iter().find(|m| m.member_id == member).expect("the member exists");
    flat(&m.assignment).union(&flat(&m.revoking)).cloned().collect()
}

/// A small deterministic PRNG (xorshift64*), so tests need no crate.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Replays `records` (key, value) into a fresh coordinator.
pub fn replayed(records: &[(Vec<u8>, Option<Vec<u8>>)], now_ms: u64) -> Coordinator {
    let mut c = Coordinator::new(Default::default());
    for (k, v) in records {
        c.replay(now_ms, k, v.as_deref()).expect("a record replays");
    }
    c
}

/// What a compacted log keeps of `records`: the latest record of each key, in log order.
pub fn compacted(records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut latest: BTreeMap<&[u8], usize> = BTreeMap::new();
    for (i, (k, _)) in records.iter().enumerate() {
        latest.insert(k, i);
    }
    let keep: BTreeSet<usize> = latest.into_values().collect();
    keep.into_iter().map(|i| records[i].clone()).collect()
}

/// Asserts that two coordinators describe the same groups and offsets.
pub fn assert_same(a: &Coordinator, b: &Coordinator) {
    assert_eq!(a.list(), b.list(), "group listings differ");
    for g in a.list() {
        assert_eq!(a.describe(&g.group), b.describe(&g.group), "group {} differs", g.group);
        assert_eq!(
            a.fetch_offsets(&g.group, None),
            b.fetch_offsets(&g.group, None),
            "offsets of {} differ",
            g.group
        );
    }
}

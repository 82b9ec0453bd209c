//! Seeded simulation of one node of two shards: producers and a consumer on every shard, disk
//! faults, crashes that tear what was not synced, restarts. After every restart each record
//! ever acknowledged is at its offset, offsets are dense, and no batch is corrupt. A run is a
//! function of its seed: a failing seed replays exactly (`WEIR_SIM_SEED=n`).

mod common;

use bytes::Bytes;
use common::{batch, records};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use weir_log::storage::mem::CrashMode;
use weir_net::{Acks, TopicConfig};
use weir_node::core::CoreConfig;
use weir_node::disk::MemDisk;
use weir_node::runtime::Runtime;
use weir_node::service::types::{FetchPartition, ProducePartition};
use weir_replication::PartitionId;
use weir_sim::node::{SimNode, SimService};

const TOPIC: &str = "sim";
const PARTITIONS: u32 = 4;
const SHARDS: usize = 2;
const ROUNDS: usize = 4;
const PRODUCERS: usize = 3;
/// Seeds a plain `cargo test` runs; CI time stays in seconds.
const SEEDS: u64 = 24;

fn config() -> CoreConfig {
    weir_sim::node::sim_config(SHARDS)
}

/// Every record acknowledged: partition -> offset -> value.
type Acked = Rc<RefCell<BTreeMap<u32, BTreeMap<u64, Vec<u8>>>>>;

/// One producer: `count` requests of 1 to 3 batches to random partitions through a random
/// shard, each acknowledged record noted.
async fn produce(node: Vec<Rc<SimService>>, mut rng: fastrand::Rng, tag: String, count: usize, acked: Acked) {
    for n in 0..count {
        let partition = rng.u32(0..PARTITIONS);
        let batches: Vec<Vec<Vec<u8>>> = (0..rng.usize(1..=3))
            .map(|b| {
                (0..rng.usize(1..=20))
                    .map(|i| format!("{tag}-{n}-{b}-{i}-{}", "x".repeat(rng.usize(0..600))).into_bytes())
                    .collect()
            })
            .collect();
        let mut bytes = Vec::new();
        for b in &batches {
            bytes.extend_from_slice(&batch(b));
        }
        let svc = &node[rng.usize(0..node.len())];
        let part = ProducePartition {
            topic: TOPIC.into(),
            partition: PartitionId(partition),
            batches: Bytes::from(bytes),
            kafka_payloads: false,
            txn: Default::default(),
        };
        if let Ok(p) = svc.produce(Acks::Leader, vec![part]).await.pop().unwrap() {
            let mut acked = acked.borrow_mut();
            let log = acked.entry(partition).or_default();
            for (i, v) in batches.into_iter().flatten().enumerate() {
                let prev = log.insert(p.base_offset + i as u64, v);
                assert!(
                    prev.is_none(),
                    "offset {} of partition {partition} acknowledged twice",
                    p.base_offset + i as u64
                );
            }
        }
        svc.core.rt.sleep_ms(rng.u64(0..30)).await;
    }
}

/// Reads a partition from its start to its high watermark through `svc`.
async fn read_all(svc: &SimService, partition: u32) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let part = FetchPartition {
            topic: TOPIC.into(),
            partition: PartitionId(partition),
            offset,
            max_bytes: 64 << 10,
            read_committed: false,
        };
        let f = match svc.fetch(vec![part], 0).await.pop().unwrap() {
            Ok(f) => f,
            // A fault still armed on the disk can fail the open after a restart: the partition
            // is offline until upkeep's next attempt.
            Err(e) if e.code == weir_net::ErrorCode::StorageError => {
                svc.core.rt.sleep_ms(1000).await;
                continue;
            }
            Err(e) => panic!("fetch of {partition} failed: {e}"),
        };
        if f.batches.is_empty() {
            assert_eq!(offset, f.high_watermark, "nothing more below the high watermark");
            return out;
        }
        for (o, v) in records(&f.batches) {
            if o >= offset {
                assert_eq!(o, offset, "offsets of partition {partition} are dense");
                out.push((o, v));
                offset = o + 1;
            }
        }
    }
}

/// Checks every acknowledged record is where it was acknowledged; returns a digest of the logs.
fn check(node: &mut SimNode, acked: &Acked, seed: u64, round: usize) -> u64 {
    let mut digest = 0u64;
    for partition in 0..PARTITIONS {
        let svc = node.services[partition as usize % SHARDS].clone();
        let log = node.block_on(async move { read_all(&svc, partition).await }).expect("reads finish");
        let got: BTreeMap<u64, Vec<u8>> = log.into_iter().collect();
        for (offset, value) in acked.borrow().get(&partition).into_iter().flatten() {
            assert_eq!(
                got.get(offset),
                Some(value),
                "seed {seed} round {round}: acknowledged record {partition}/{offset} lost"
            );
        }
        for (o, v) in &got {
            digest = digest.rotate_left(7) ^ crc(*o, v);
        }
    }
    digest
}

fn crc(offset: u64, v: &[u8]) -> u64 {
    v.iter().fold(offset.wrapping_mul(0x9e37_79b9_7f4a_7c15), |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// One whole simulation; returns a digest of what it saw, for the replay check.
fn run(seed: u64) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut node = SimNode::start(MemDisk::default(), config(), 0);
    let svc = node.services[1].clone();
    node.block_on(async move { svc.create_topic(TOPIC.into(), PARTITIONS, TopicConfig::default()).await })
        .unwrap()
        .expect("topic created through the other shard");
    let acked: Acked = Rc::default();
    let mut digest = 0;
    for round in 0..ROUNDS {
        for p in 0..PRODUCERS {
            let task = produce(
                node.services.clone(),
                rng.fork(),
                format!("r{round}p{p}"),
                rng.usize(5..40),
                acked.clone(),
            );
            node.spawn(task);
        }
        // A disk fault now and then: a failed sync fails its log, which is reopened in place.
        let steps = rng.usize(1..400);
        let fault_at = rng.usize(0..steps * 2);
        for step in 0..steps {
            if step == fault_at {
                let p = rng.u32(0..PARTITIONS);
                if let Some(s) = node.disk.storage(TOPIC, p) {
                    s.faults().fail_sync_in.set(rng.u32(1..4));
                }
            }
            node.step();
        }
        let crash_seed = rng.u64(..);
        let disk = node.crash(|i| CrashMode::Torn { seed: crash_seed ^ i });
        node = SimNode::start(disk, config(), 10_000_000 * (round as u64 + 1));
        digest ^= check(&mut node, &acked, seed, round).rotate_left(round as u32);
    }
    let total: usize = acked.borrow().values().map(|l| l.len()).sum();
    assert!(total > 0, "seed {seed}: nothing was acknowledged");
    digest ^ total as u64
}

#[test]
fn acknowledged_records_survive_crashes_and_disk_faults() {
    let seeds: Vec<u64> = match std::env::var("WEIR_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("WEIR_SIM_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    };
    for seed in seeds {
        run(seed);
    }
}

#[test]
fn a_seed_replays_exactly() {
    assert_eq!(run(7), run(7));
}

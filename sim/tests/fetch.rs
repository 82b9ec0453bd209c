//! One fetch over partitions of several shards waits once, for whichever gets data first.

mod common;

use common::batch;
use weir_net::{Acks, TopicConfig};
use weir_node::disk::MemDisk;
use weir_node::runtime::Runtime;
use weir_node::service::types::{FetchPartition, ProducePartition};
use weir_replication::{PartitionId, ShardId};
use weir_sim::node::{SimNode, sim_config};

#[test]
fn one_fetch_waits_on_partitions_of_both_shards() {
    let mut node = SimNode::start(MemDisk::default(), sim_config(2), 0);
    let svc = node.services[0].clone();
    node.block_on(async move { svc.create_topic("f".into(), 8, TopicConfig::default()).await })
        .unwrap()
        .unwrap();
    // A partition on each shard, by the placement table.
    let table = node.disk.topics();
    let meta = &table.topics["f"];
    let on =
        |s: u16| (0..8).find(|&p| meta.local_shard(p) == Some(ShardId(s))).expect("both shards own some");
    let (mine, theirs) = (on(0), on(1));
    let fetching = node.services[0].clone();
    let producing = node.services[0].clone();
    let rt = node.rt.clone();
    node.spawn(async move {
        rt.sleep_ms(1000).await;
        let part = ProducePartition {
            topic: "f".into(),
            partition: PartitionId(theirs),
            batches: batch(&[b"late"]),
            kafka_payloads: false,
            txn: Default::default(),
        };
        producing.produce(Acks::Leader, vec![part]).await.pop().unwrap().expect("produced");
    });
    let start = node.rt.monotonic_ms();
    let rt = node.rt.clone();
    let (answers, waited) = node
        .block_on(async move {
            let parts = [mine, theirs].map(|p| FetchPartition {
                topic: "f".into(),
                partition: PartitionId(p),
                offset: 0,
                max_bytes: 1 << 20,
                read_committed: false,
            });
            let answers = fetching.fetch(parts.to_vec(), 5000).await;
            (answers, rt.monotonic_ms() - start)
        })
        .unwrap();
    assert!((1000..5000).contains(&waited), "answered when the data came, not at the deadline: {waited} ms");
    let [a, b] = [&answers[0], &answers[1]].map(|a| a.as_ref().expect("fetched"));
    assert!(a.batches.is_empty(), "nothing on shard 0's partition");
    assert!(!b.batches.is_empty(), "the record on shard 1's partition");
    assert_eq!(b.high_watermark, 1);
}

/// A fetch naming a partition many times, each up to its own max_bytes, reads within the
/// budget it is given: past it, the rest are answered with their bounds only, so however many
/// partitions a request names, a shard holds the budget and one batch for it.
#[test]
fn a_fetch_within_a_budget_reads_no_more_than_it() {
    let mut node = SimNode::start(MemDisk::default(), sim_config(1), 0);
    let svc = node.services[0].clone();
    let answers = node
        .block_on(async move {
            svc.create_topic("b".into(), 1, TopicConfig::default()).await.unwrap();
            let value = vec![7u8; 10_000];
            for _ in 0..10 {
                let part = ProducePartition {
                    topic: "b".into(),
                    partition: PartitionId(0),
                    batches: batch(&[&value]),
                    kafka_payloads: false,
                    txn: Default::default(),
                };
                svc.produce(Acks::Leader, vec![part]).await.pop().unwrap().expect("produced");
            }
            let part = FetchPartition {
                topic: "b".into(),
                partition: PartitionId(0),
                offset: 0,
                max_bytes: 1 << 20,
                read_committed: false,
            };
            svc.fetch_within(vec![part; 50], 0, Some(25_000)).await
        })
        .unwrap();
    let read: usize = answers.iter().map(|a| a.as_ref().expect("fetched").batches.len()).sum();
    // Whole batches, each about 10 kB: the 25 kB budget and one batch past it at most.
    assert!(read <= 25_000 + 10_200, "{read} bytes read");
    assert!(answers.iter().all(|a| a.as_ref().unwrap().high_watermark == 10), "bounds for every copy");
    assert!(answers[..2].iter().all(|a| !a.as_ref().unwrap().batches.is_empty()));
    assert!(answers[5..].iter().all(|a| a.as_ref().unwrap().batches.is_empty()));
}

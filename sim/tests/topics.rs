//! Deleting a topic fences its partitions: nothing that still holds one writes again, and a
//! topic re-created under the same name starts empty and stays its own.

mod common;

use common::{batch, records};
use weir_log::batch::BatchView;
use weir_net::{Acks, TopicConfig};
use weir_node::disk::MemDisk;
use weir_node::service::types::{FetchPartition, ProducePartition};
use weir_replication::PartitionId;
use weir_sim::node::{SimNode, sim_config};

#[test]
fn a_deleted_topic_writes_nothing_more_and_its_successor_starts_empty() {
    let mut node = SimNode::start(MemDisk::default(), sim_config(2), 0);
    let svc = node.services[0].clone();
    let owner = node.block_on({
        let svc = svc.clone();
        async move {
            svc.create_topic("t".into(), 1, TopicConfig::default()).await.unwrap();
            let part = ProducePartition {
                topic: "t".into(),
                partition: PartitionId(0),
                batches: batch(&["old"]),
                kafka_payloads: false,
                txn: Default::default(),
            };
            svc.produce(Acks::Leader, vec![part]).await.pop().unwrap().unwrap();
            svc.owner("t", 0)
        }
    });
    let owner = owner.unwrap();
    let old = node.services[owner.index()].core.partition("t", 0).expect("served");
    let (svc2, old2) = (svc.clone(), old.clone());
    let (refused, reopened, fetched) = node
        .block_on(async move {
            svc2.delete_topic("t".into()).await.unwrap();
            svc2.create_topic("t".into(), 1, TopicConfig::default()).await.unwrap();
            // Whoever still held the old partition can append nothing more through it.
            let b = batch(&["stale"]);
            let view = BatchView::validate(&b, 1 << 20).unwrap();
            let refused = old2.log.lock().await.append(&view, 0, 0).await.is_err();
            let reopened = old2.reopen_if_failed(u64::MAX / 2).await;
            let part = ProducePartition {
                topic: "t".into(),
                partition: PartitionId(0),
                batches: batch(&["new"]),
                kafka_payloads: false,
                txn: Default::default(),
            };
            svc2.produce(Acks::Leader, vec![part]).await.pop().unwrap().unwrap();
            let part = FetchPartition {
                topic: "t".into(),
                partition: PartitionId(0),
                offset: 0,
                max_bytes: 1 << 20,
                read_committed: false,
            };
            let f = svc2.fetch(vec![part], 0).await.pop().unwrap().unwrap();
            (refused, reopened, f)
        })
        .unwrap();
    assert!(refused, "the deleted partition refuses writes");
    assert!(!reopened, "and is never reopened");
    let values: Vec<_> = records(&fetched.batches).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, vec![b"new".to_vec()], "the new topic holds only its own record, at offset 0");
    assert_eq!(fetched.high_watermark, 1);
}

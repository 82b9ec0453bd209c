//! A failed log reopened in place never answers a produce from the new log that it appended to
//! the old one.

mod common;

use common::{batch, records};
use std::cell::RefCell;
use std::rc::Rc;
use weir_net::{Acks, TopicConfig};
use weir_node::disk::MemDisk;
use weir_node::service::types::{FetchPartition, ProducePartition};
use weir_replication::PartitionId;
use weir_sim::node::{SimNode, sim_config};

/// Each produce's value and answer: its base offset, or the error's message.
type Answers = Rc<RefCell<Vec<(&'static str, Result<u64, String>)>>>;

/// Spawns a produce of `n` records valued `value`; its answer lands in `answers`.
fn produce(node: &SimNode, value: &'static str, n: usize, answers: &Answers) {
    let (svc, answers) = (node.services[0].clone(), answers.clone());
    node.spawn(async move {
        let part = ProducePartition {
            topic: "r".into(),
            partition: PartitionId(0),
            batches: batch(&vec![value; n]),
            kafka_payloads: false,
            txn: Default::default(),
        };
        let answer = svc.produce(Acks::Leader, vec![part]).await.pop().unwrap();
        answers.borrow_mut().push((value, answer.map(|p| p.base_offset).map_err(|f| f.message)));
    });
}

#[test]
fn a_produce_in_flight_across_a_failed_sync_is_never_answered_from_the_reopened_log() {
    let mut node = SimNode::start(MemDisk::default(), sim_config(1), 0);
    let svc = node.services[0].clone();
    node.block_on(async move { svc.create_topic("r".into(), 1, TopicConfig::default()).await })
        .unwrap()
        .unwrap();
    let answers: Answers = Rc::default();
    produce(&node, "warm", 2, &answers);
    node.run_until_stalled();
    let st = node.disk.storage("r", 0).unwrap();
    let p = node.services[0].core.partition("r", 0).unwrap();
    // P0 leads a sync; its write-out is I/O 1, its fdatasync (run without the log locked) I/O 2.
    st.faults().hold_io_in.set(2);
    produce(&node, "p0", 2, &answers);
    node.run_until_stalled();
    assert!(st.faults().held.get(), "P0's fdatasync is in flight");
    // P1 appends behind it (buffered only) and waits for the next sync.
    produce(&node, "p1", 5, &answers);
    node.run_until_stalled();
    // P0's sync fails; before P1 runs again, upkeep tries to reopen the log and P3 appends.
    st.faults().fail_held();
    let reopened = Rc::new(RefCell::new(None));
    let (pr, out) = (p.clone(), reopened.clone());
    node.spawn(async move { *out.borrow_mut() = Some(pr.reopen_if_failed(1_000_000).await) });
    produce(&node, "p3", 8, &answers);
    node.run_until_stalled();
    // Every produce answered Ok has its own records at its offsets.
    let svc = node.services[0].clone();
    let log = node
        .block_on(async move {
            let part = FetchPartition {
                topic: "r".into(),
                partition: PartitionId(0),
                offset: 0,
                max_bytes: 1 << 20,
                read_committed: false,
            };
            svc.fetch(vec![part], 0).await.pop().unwrap().unwrap().batches
        })
        .unwrap();
    let stored = records(&log);
    for (value, answer) in answers.borrow().iter() {
        if let Ok(base) = answer {
            let at = stored.iter().find(|(o, _)| o == base).map(|(_, v)| String::from_utf8_lossy(v));
            assert_eq!(
                at.as_deref(),
                Some(*value),
                "{value} was answered with offset {base}, which holds {at:?}"
            );
        }
    }
    assert!(
        matches!(answers.borrow().iter().find(|a| a.0 == "p1"), Some((_, Err(_)))),
        "p1's records were never written"
    );
    assert_eq!(*reopened.borrow(), Some(false), "no reopen while a produce is in flight");
    // With nothing in flight, the log is reopened and serves again.
    let pr = p.clone();
    assert_eq!(node.block_on(async move { pr.reopen_if_failed(1_000_000).await }), Some(true));
    produce(&node, "after", 1, &answers);
    node.run_until_stalled();
    assert!(matches!(answers.borrow().last(), Some(("after", Ok(_)))), "{:?}", answers.borrow().last());
}

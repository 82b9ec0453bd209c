//! The Kafka listener on a three-node cluster, over the wire: every node describes every
//! topic, a Kafka batch kept as sent is replicated and served byte for byte by the leader
//! elected after a SIGKILL, and DeleteRecords is refused (not served in a cluster yet); ACLs
//! made through one node are listed by every node; transactional ids are refused (a node
//! alone's for now).

mod common;
#[macro_use]
#[path = "kafka_wire/wire.rs"]
#[allow(dead_code)]
mod wire;
#[path = "kafka_wire/acls.rs"]
mod acls;
#[path = "kafka_wire/requests.rs"]
#[allow(dead_code)]
mod requests;

use common::cluster::TestCluster;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
};
use kafka_protocol::messages::{RequestKind, ResponseKind};
use requests as req;
use std::time::{Duration, Instant};
use wire::Wire;

const TOPIC: &str = "trimmed";

/// Asks until `f` answers; panics after 30 s, naming `what`. The pause only spaces the asking.
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(t) = f() {
            return t;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("never reached: {what}");
}

/// Partition 0's leader as node `id`'s Kafka listener says, once it names one.
fn leader_of(kafka: &str) -> Option<i32> {
    let mut w = Wire::try_connect(kafka)?;
    let ResponseKind::Metadata(r) = w.try_call(ApiKey::Metadata, 12, req::metadata(12, &[TOPIC], false))?
    else {
        return None;
    };
    let t = r.topics.first()?;
    let leader = t.partitions.first()?.leader_id.0;
    (t.error_code == 0 && leader >= 0).then_some(leader)
}

/// Node `id`'s own replica of partition 0: its log end, as its DescribeTopic shows it.
fn own_log_end(cluster: &TestCluster, id: u32) -> Option<u64> {
    let out = cluster.cli_of(id).args(["topic", "describe", TOPIC, "--json"]).output().ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    json["partitions"][0]["log_end"].as_u64()
}

#[test]
fn a_cluster_serves_kafka_batches_as_sent_after_a_failover_and_refuses_delete_records_for_now() {
    let mut cluster = TestCluster::start_with_kafka(3, 1, &[]);
    let port = cluster.kafka_port.unwrap();
    let kafka = |id: i32| format!("{}:{port}", TestCluster::host(id as u32));
    until("three brokers", || {
        let mut w = Wire::try_connect(&kafka(1))?;
        let ResponseKind::Metadata(r) = w.try_call(ApiKey::Metadata, 12, req::metadata(12, &[], false))?
        else {
            return None;
        };
        (r.brokers.len() == 3).then_some(())
    });
    // A copy on each node; and a topic of one copy, which two nodes do not hold.
    for (name, copies) in [(TOPIC, 3), ("single", 1)] {
        let t = CreatableTopic::default()
            .with_name(req::topic(name))
            .with_num_partitions(1)
            .with_replication_factor(copies);
        let body = RequestKind::CreateTopics(
            CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000),
        );
        let r = kind!(Wire::connect(&kafka(1)).call(ApiKey::CreateTopics, 7, body), CreateTopics);
        assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    }
    // Every node describes both: its own replicas' bounds, and the metadata's word for the rest.
    for id in 1..=3 {
        for name in [TOPIC, "single"] {
            until(&format!("node {id} describing {name}"), || {
                let out = cluster.cli_of(id).args(["topic", "describe", name]).output().ok()?;
                out.status.success().then_some(())
            });
        }
    }
    let leader = until("a leader", || leader_of(&kafka(1)));
    // zstd: kept as sent, so the followers replicate the producer's own batch.
    let records: Vec<_> = (0..20)
        .map(|i| wire::record(i, 1_700_000_000_000 + i, format!("k{i}").into(), format!("record {i}").into()))
        .collect();
    let sent = wire::encode(&records, kafka_protocol::records::Compression::Zstd);
    // Until its replicas have opened it, the partition answers a retriable error.
    until("the records acknowledged", || {
        let mut w = Wire::try_connect(&kafka(leader))?;
        let body = req::produce(-1, TOPIC, 0, sent.clone());
        let ResponseKind::Produce(r) = w.try_call(ApiKey::Produce, 9, body)? else { return None };
        (r.responses[0].partition_responses[0].error_code == 0).then_some(())
    });
    let mut w = Wire::connect(&kafka(leader));

    // Deleting records is not served in a cluster yet: refused, and nothing goes.
    let p = DeleteRecordsPartition::default().with_partition_index(0).with_offset(12);
    let t = DeleteRecordsTopic::default().with_name(req::topic(TOPIC)).with_partitions(vec![p]);
    let body = RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(vec![t]));
    let r = kind!(w.call(ApiKey::DeleteRecords, 2, body), DeleteRecords);
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (42, -1), "INVALID_REQUEST");
    let r = kind!(w.call(ApiKey::ListOffsets, 7, req::list_offsets(TOPIC, -2)), ListOffsets);
    assert_eq!(r.topics[0].partitions[0].offset, 0);

    // Once every copy has the batch, the leader dies; the next serves it as it was sent.
    for id in (1..=3).filter(|id| *id != leader) {
        until(&format!("node {id}'s copy"), || (own_log_end(&cluster, id as u32)? == 20).then_some(()));
    }
    cluster.kill(leader as u32);
    let survivor = kafka(if leader == 1 { 2 } else { 1 });
    let next = until("a new leader", || leader_of(&survivor).filter(|l| *l != leader));
    // Named by the metadata before it may have taken the lead: asked until it serves the batch.
    let got = until("the new leader's fetch", || {
        let mut w = Wire::try_connect(&kafka(next))?;
        let ResponseKind::Fetch(r) = w.try_call(ApiKey::Fetch, 12, req::fetch(12, TOPIC, 0, 0, 0))? else {
            return None;
        };
        // Empty until its high watermark, which a new leader learns anew, covers the batch.
        let p = &r.responses[0].partitions[0];
        p.records.clone().filter(|r| p.error_code == 0 && !r.is_empty())
    });
    assert_eq!(got[21..23], sent[21..23], "attributes: zstd");
    assert_eq!(got[61..], sent[61..], "the records section, byte for byte");
}

#[test]
fn acls_made_through_one_node_are_listed_and_deleted_through_the_others_and_transactions_refused() {
    let cluster = TestCluster::start_with_kafka(3, 1, &[]);
    let port = cluster.kafka_port.unwrap();
    let kafka = |id: u32| format!("{}:{port}", TestCluster::host(id));
    let codes = until("a controller takes the bindings", || {
        let mut w = Wire::try_connect(&kafka(1))?;
        let codes = acls::create(&mut w, 3, vec![acls::creation("orders", "User:a")]);
        (codes == [0]).then_some(codes)
    });
    assert_eq!(codes, [0]);
    let want = vec![("orders".to_owned(), "User:a".to_owned())];
    for id in 1..=3 {
        // Each node lists what it has applied of the replicated metadata.
        until(&format!("node {id} lists the binding"), || {
            (acls::describe(&mut Wire::try_connect(&kafka(id))?, 3) == want).then_some(())
        });
    }
    let (code, gone) = acls::delete(&mut Wire::connect(&kafka(2)), 3, "orders", None);
    assert_eq!((code, gone), (0, want));
    until("node 3 lists none", || {
        acls::describe(&mut Wire::try_connect(&kafka(3))?, 3).is_empty().then_some(())
    });
    // Transactions are a node alone's for now: a transactional id is refused, at once.
    let body = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(wire::s("tx"))))
        .with_transaction_timeout_ms(60_000);
    let body = RequestKind::InitProducerId(body);
    let r = kind!(Wire::connect(&kafka(1)).call(ApiKey::InitProducerId, 4, body), InitProducerId);
    assert_eq!(r.error_code, 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED: {r:?}");
}

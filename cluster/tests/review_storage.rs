//! The Raft log must never silently forget entries it acknowledged as durable.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
use weir_cluster::log_store::LogStore;
use weir_cluster::types::{Entry, LogId};
use weir_cluster::{MetaCommand, NodeInfo};
use weir_replication::NodeId;

fn entry(term: u64, index: u64, node: u32) -> Entry {
    let info = NodeInfo {
        id: NodeId(node),
        cluster_addr: "127.0.0.1:1".into(),
        host: "127.0.0.1".into(),
        port: 1,
        shard_ports: vec![2],
    };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(MetaCommand::RegisterNode(info)),
    }
}

/// A flipped bit in the first record (not a torn tail: whole records follow it) must not make
/// the store forget the acknowledged entries after it, nor cut them from the file: a voter that
/// forgets acknowledged entries can let a committed entry be lost.
#[test]
fn a_corrupt_record_before_whole_ones_is_not_cut_like_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio_rt::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let mut store = LogStore::open(dir.path()).unwrap();
        for i in 1..=3 {
            // Each append is acknowledged (durable) on its own.
            store.blocking_append([entry(1, i, i as u32)]).await.unwrap();
        }
        drop(store);
        let log = dir.path().join("log");
        let mut bytes = std::fs::read(&log).unwrap();
        let whole = bytes.len() as u64;
        bytes[12] ^= 0x01; // inside the first record's payload
        std::fs::write(&log, &bytes).unwrap();

        match LogStore::open(dir.path()) {
            Err(_) => {} // refusing to start is acceptable
            Ok(mut reopened) => {
                let entries = reopened.try_get_log_entries(0..).await.unwrap();
                let len = std::fs::metadata(&log).unwrap().len();
                assert_eq!(
                    (entries.len(), len),
                    (3, whole),
                    "acknowledged entries silently dropped and the log cut to {len} bytes"
                );
                let _ = reopened.get_log_state().await;
            }
        }
    });
}

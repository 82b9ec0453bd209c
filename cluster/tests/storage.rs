//! The Raft store on real files: openraft's storage suite, reopening, and a torn tail.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
use weir_cluster::log_store::LogStore;
use weir_cluster::state_machine::StateMachine;
use weir_cluster::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use weir_cluster::{MetaCommand, NodeInfo};
use weir_replication::NodeId;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let raft = dir.path().join("raft");
        let log = LogStore::open(&raft).expect("a fresh store opens");
        Ok((dir, log, StateMachine::open(&raft)?))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

fn entry(term: u64, index: u64, node: u32) -> Entry {
    let info = NodeInfo {
        id: NodeId(node),
        cluster_addr: "127.0.0.1:1".into(),
        host: "127.0.0.1".into(),
        port: 1,
        shard_ports: vec![2],
        kafka: None,
    };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(MetaCommand::RegisterNode(info)),
    }
}

fn runtime() -> tokio_rt::runtime::Runtime {
    tokio_rt::runtime::Builder::new_current_thread().build().unwrap()
}

#[test]
fn a_reopened_store_has_exactly_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append((1..=5).map(|i| entry(1, i, i as u32))).await.unwrap();
        store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 4)).await.unwrap();
        store.blocking_append([entry(2, 4, 40)]).await.unwrap();
        store.purge(LogId::new(CommittedLeaderId::new(1, 1), 1)).await.unwrap();
        store.blocking_append([entry(2, 5, 50)]).await.unwrap();
        let vote = Vote::new(2, 3);
        store.save_vote(&vote).await.unwrap();
        let before = store.try_get_log_entries(0..).await.unwrap();
        drop(store);

        let mut reopened = LogStore::open(dir.path()).unwrap();
        let after = reopened.try_get_log_entries(0..).await.unwrap();
        assert_eq!(after, before);
        assert_eq!(after.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![2, 3, 4, 5]);
        assert_eq!(after[2], entry(2, 4, 40));
        assert_eq!(reopened.read_vote().await.unwrap(), Some(vote));
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));
        assert_eq!(state.last_log_id, Some(entry(2, 5, 50).log_id));
    });
}

#[test]
fn a_torn_tail_is_dropped_and_appends_go_on_after_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append((1..=3).map(|i| entry(1, i, i as u32))).await.unwrap();
        drop(store);
        let log = dir.path().join("log");
        let len = std::fs::metadata(&log).unwrap().len();
        // A crash in the middle of the third record's write.
        std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(len - 5).unwrap();

        let mut reopened = LogStore::open(dir.path()).unwrap();
        let entries = reopened.try_get_log_entries(0..).await.unwrap();
        assert_eq!(entries, vec![entry(1, 1, 1), entry(1, 2, 2)]);
        reopened.blocking_append([entry(2, 3, 30)]).await.unwrap();
        drop(reopened);
        let entries = LogStore::open(dir.path()).unwrap().try_get_log_entries(0..).await.unwrap();
        assert_eq!(entries, vec![entry(1, 1, 1), entry(1, 2, 2), entry(2, 3, 30)]);
    });
}

#[test]
fn the_state_machine_answers_publishes_and_survives_in_its_snapshot() {
    use openraft::RaftSnapshotBuilder;
    use openraft::storage::RaftStateMachine;
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut sm = StateMachine::open(dir.path()).unwrap();
        let meta = sm.subscribe();
        let delete = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 3),
            payload: EntryPayload::Normal(MetaCommand::DeleteTopic { name: "none".into() }),
        };
        let answers = sm.apply([entry(1, 1, 7), entry(1, 2, 8), delete]).await.unwrap();
        assert_eq!(answers[..2], [Ok(()), Ok(())]);
        assert!(matches!(answers[2], Err(weir_cluster::MetaError::UnknownTopic { .. })));
        assert_eq!(meta.borrow().nodes.keys().copied().collect::<Vec<_>>(), vec![NodeId(7), NodeId(8)]);

        let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(3));
        drop(sm);
        let mut reopened = StateMachine::open(dir.path()).unwrap();
        assert_eq!(reopened.applied_state().await.unwrap().0.map(|l| l.index), Some(3));
        assert_eq!(reopened.subscribe().borrow().nodes.len(), 2);

        let other = tempfile::tempdir().unwrap();
        let mut fresh = StateMachine::open(other.path()).unwrap();
        let published = fresh.subscribe();
        fresh.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
        assert_eq!(published.borrow().nodes.len(), 2, "an installed snapshot is published");
        let current = fresh.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
    });
}

/// A flipped bit in the first record, with whole (acknowledged) records after it, is not a torn
/// tail: the store refuses to open and leaves the file as it was, rather than cut the entries
/// after it (a voter that forgets acknowledged entries can lose a committed one).
#[test]
fn a_corrupt_record_before_whole_ones_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut store = LogStore::open(dir.path()).unwrap();
        for i in 1..=3 {
            // Each append is acknowledged (durable) on its own.
            store.blocking_append([entry(1, i, i as u32)]).await.unwrap();
        }
    });
    let log = dir.path().join("log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[12] ^= 0x01; // inside the first record's payload
    std::fs::write(&log, &bytes).unwrap();
    let refused = LogStore::open(dir.path());
    assert!(matches!(refused, Err(weir_cluster::ControlError::CorruptLog { offset: 0, .. })), "{refused:?}");
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "the log was changed");
}

//! The replicated state machine ([`RaftStateMachine`]) over [`ClusterMeta`]. Every applied batch
//! publishes the new metadata on a `watch` channel (so does an installed snapshot); each command
//! is answered with whether it applied.
//!
//! The applied state is in memory; what is durable is the snapshot, `<data_dir>/raft/snapshot`:
//! the metadata, the last applied log id and the membership, replaced atomically. At open the
//! state is the snapshot's, and openraft applies the log entries after it again, up to the
//! committed log id the log store kept, before the node starts (see `log_store`).

// openraft's storage traits return its own (large) error type; it is not ours to box.
#![allow(clippy::result_large_err)]

use crate::durable::write_atomic;
use crate::meta::ClusterMeta;
use crate::types::{Entry, LogId, StorageError, StoredMembership, TypeConfig, storage_error};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorVerb, RaftSnapshotBuilder, Snapshot, SnapshotMeta};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What a snapshot holds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Applied {
    meta: ClusterMeta,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// The snapshot file: openraft's description of the snapshot and its content.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    applied: Applied,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    applied: Applied,
    published: watch::Sender<Arc<ClusterMeta>>,
}

/// See the module documentation. Cheap to clone: clones share the state (the snapshot builder
/// is one).
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
}

fn io_error(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    storage_error(verb, &std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

impl StateMachine {
    /// Opens the state machine in `raft_dir` from its snapshot, if any.
    pub fn open(raft_dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(raft_dir).map_err(|e| storage_error(ErrorVerb::Write, &e))?;
        let path = raft_dir.join("snapshot");
        let applied = read_snapshot(&path)?.map(|s| s.applied).unwrap_or_default();
        let (published, _) = watch::channel(Arc::new(applied.meta.clone()));
        Ok(Self { inner: Arc::new(Mutex::new(Inner { path, applied, published })) })
    }

    /// The applied metadata, newest first: a receiver sees every state applied after it
    /// subscribed, or at least the newest one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMeta>> {
        self.lock().published.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("a panic while holding the state machine")
    }
}

fn read_snapshot(path: &Path) -> Result<Option<SnapshotFile>, StorageError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| io_error(ErrorVerb::Read, e))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage_error(ErrorVerb::Read, &e)),
    }
}

impl Inner {
    fn publish(&self) {
        self.published.send_replace(Arc::new(self.applied.meta.clone()));
    }

    /// Writes `file` atomically and returns it as openraft's snapshot.
    fn store_snapshot(&self, file: SnapshotFile) -> Result<Snapshot<TypeConfig>, StorageError> {
        let bytes = serde_json::to_vec(&file).map_err(|e| io_error(ErrorVerb::Write, e))?;
        write_atomic(&self.path, &bytes).map_err(|e| storage_error(ErrorVerb::Write, &e))?;
        let data = serde_json::to_vec(&file.applied).map_err(|e| io_error(ErrorVerb::Write, e))?;
        Ok(Snapshot { meta: file.meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let inner = self.lock();
        let applied = inner.applied.clone();
        let index = applied.last_applied.map_or(0, |l| l.index);
        let term = applied.last_applied.map_or(0, |l| l.leader_id.term);
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: format!("{term}-{index}"),
        };
        inner.store_snapshot(SnapshotFile { meta, applied })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = self.lock();
        Ok((inner.applied.last_applied, inner.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Result<(), crate::MetaError>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let mut answers = Vec::new();
        for entry in entries {
            inner.applied.last_applied = Some(entry.log_id);
            answers.push(match entry.payload {
                EntryPayload::Blank => Ok(()),
                EntryPayload::Normal(command) => inner.applied.meta.apply_unchecked(&command),
                EntryPayload::Membership(m) => {
                    inner.applied.membership = StoredMembership::new(Some(entry.log_id), m);
                    Ok(())
                }
            });
        }
        // Once per batch: the check and the published copy each walk the whole metadata.
        inner.applied.meta.check();
        inner.publish();
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let applied: Applied =
            serde_json::from_slice(snapshot.get_ref()).map_err(|e| io_error(ErrorVerb::Read, e))?;
        let mut inner = self.lock();
        inner.store_snapshot(SnapshotFile { meta: meta.clone(), applied: applied.clone() })?;
        inner.applied = applied;
        inner.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let inner = self.lock();
        let Some(file) = read_snapshot(&inner.path)? else { return Ok(None) };
        let data = serde_json::to_vec(&file.applied).map_err(|e| io_error(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot { meta: file.meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

//! The Raft type configuration of the control plane: the log carries [`MetaCommand`]s, each
//! answered with whether it applied; nodes are numbered by their [`NodeId`](weir_replication::NodeId)
//! widened to `u64` and addressed by their cluster address.

// openraft's storage traits return its own (large) error type; it is not ours to box.
#![allow(clippy::result_large_err)]

use crate::error::MetaError;
use crate::meta::MetaCommand;
use std::io::Cursor;

openraft::declare_raft_types!(
    /// The control plane's Raft types.
    pub TypeConfig:
        D = MetaCommand,
        R = Result<(), MetaError>,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type StorageError = openraft::StorageError<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
pub type Raft = openraft::Raft<TypeConfig>;

/// A storage error from an I/O error, as openraft wants it.
pub(crate) fn storage_error(verb: openraft::ErrorVerb, e: &std::io::Error) -> StorageError {
    let subject = openraft::ErrorSubject::Store;
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(e)).into()
}

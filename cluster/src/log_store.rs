//! The Raft log and vote on disk ([`RaftLogStorage`]), in `<data_dir>/raft/`:
//! - `log`: append-only records (see [`durable`](crate::durable)), one serde_json entry each,
//!   consecutive indexes. Recovery cuts a torn tail (a crash mid-append: a bad record that
//!   reaches the end of the file). Any other bad record (a checksum failure with bytes after
//!   it, a record that does not parse or breaks the sequence) may hide acknowledged entries:
//!   the store refuses to open and leaves the file as it is.
//! - `state`: the vote, the last purged log id and whether the node is **blank**, replaced
//!   atomically. A store opened on a directory with neither `state` nor `log` (a new node, or
//!   one whose data dir was wiped) is blank, and says so in `state` before it creates `log`, so
//!   a restart before it caught up is still blank. A blank node may not vote for a candidate
//!   with entries (see [`blank`](crate::blank)); [`LogStore::leave_blank`] records that it
//!   caught up. A `state` written before the field existed is not blank.
//! - `committed`: the last committed log id openraft told us of, so that at start it applies
//!   the committed entries again before anything is published (the metadata watch shows the
//!   committed state, not an older snapshot's). Replaced by rename but not fsynced: an older
//!   value, or none, is safe (it is only how far to re-apply at start), and a missing or
//!   unreadable file counts as none.
//!
//! Appends are fsynced before openraft is told they are durable; the vote is durable when
//! `save_vote` returns. Entries are also kept in memory: metadata logs are small, and a
//! snapshot lets openraft purge them.
//!
//! Owned by the control plane's thread; the reader shares the store through a mutex held only
//! for memory operations and the fsyncs of the append path.

// openraft's storage traits return its own (large) error type; it is not ours to box.
#![allow(clippy::result_large_err)]

use crate::durable::{decode_records, encode_record, sync_dir, write_atomic};
use crate::error::ControlError;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote, storage_error};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorVerb, LogState, RaftLogReader};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct HardState {
    vote: Option<Vote>,
    purged: Option<LogId>,
    /// Set at the first open of an empty directory, cleared once the node caught up.
    #[serde(default)]
    blank: bool,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    /// Where the next record goes: the end of the valid records.
    end: u64,
    /// Present entries by index, each with its record's offset in `log`.
    entries: BTreeMap<u64, (u64, Entry)>,
    hard: HardState,
    committed: Option<LogId>,
}

/// See the module documentation. Cheap to clone: clones share the store.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn write_error(e: std::io::Error) -> StorageError {
    storage_error(ErrorVerb::Write, &e)
}

fn json_error(e: serde_json::Error) -> StorageError {
    write_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl LogStore {
    /// Opens (or creates) the store in `raft_dir`, recovering the log as the module documentation
    /// says. A log with a bad record that is not a torn tail is refused with
    /// [`ControlError::CorruptLog`] and left as it is.
    pub fn open(raft_dir: &Path) -> Result<Self, ControlError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ControlError::Io { path: path.clone(), source }
        };
        std::fs::create_dir_all(raft_dir).map_err(io(raft_dir))?;
        let state_path = raft_dir.join("state");
        let path = raft_dir.join("log");
        let hard: HardState = match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ControlError::Config {
                reason: format!("{} does not parse: {e}", state_path.display()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let blank = !path.try_exists().map_err(io(&path))?;
                let hard = HardState { blank, ..HardState::default() };
                // Durable before `log` exists: a blank node restarted before it caught up is
                // blank still.
                let bytes = serde_json::to_vec(&hard).expect("a hard state serializes");
                write_atomic(&state_path, &bytes).map_err(io(&state_path))?;
                hard
            }
            Err(e) => return Err(io(&state_path)(e)),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        let (entries, end) = recover_entries(&bytes, hard.purged)
            .map_err(|offset| ControlError::CorruptLog { path: path.clone(), offset })?;
        if end < bytes.len() as u64 {
            // Only a torn tail is cut: nothing acknowledged follows it.
            file.set_len(end).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        sync_dir(raft_dir).map_err(io(raft_dir))?;
        let committed = read_committed(raft_dir);
        let inner = Inner { dir: raft_dir.into(), file, end, entries, hard, committed };
        Ok(Self { inner: Arc::new(Mutex::new(inner)) })
    }

    /// Whether the node is blank: its Raft state began empty and it has not caught up since.
    pub fn is_blank(&self) -> bool {
        self.lock().hard.blank
    }

    /// Records (durably: `state` is replaced atomically and fsynced) that the node caught up
    /// and is blank no more. Returns whether it was blank.
    pub fn leave_blank(&self) -> Result<bool, StorageError> {
        let mut inner = self.lock();
        if !inner.hard.blank {
            return Ok(false);
        }
        inner.hard.blank = false;
        if let Err(e) = inner.save_hard() {
            // Not durable: the node stays blank, in memory as on disk.
            inner.hard.blank = true;
            return Err(e);
        }
        Ok(true)
    }

    /// The vote and the last log id (or the last purged one) this store holds.
    pub fn vote_and_last_log_id(&self) -> (Option<Vote>, Option<LogId>) {
        let inner = self.lock();
        let last = inner.entries.last_key_value().map(|(_, (_, e))| e.log_id);
        (inner.hard.vote, last.or(inner.hard.purged))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("a panic while holding the log store")
    }
}

/// The `committed` file's log id; none if it is missing or does not parse.
fn read_committed(raft_dir: &Path) -> Option<LogId> {
    let bytes = std::fs::read(raft_dir.join("committed")).ok()?;
    serde_json::from_slice(&bytes).ok()?
}

type Recovered = (BTreeMap<u64, (u64, Entry)>, u64);

/// The consecutive entries of the valid record prefix past `purged`, and where that prefix ends
/// (a torn tail after it may be cut). A record that fails its checksum before the end of the
/// file, does not parse, or breaks the sequence is corruption: its offset is the error.
fn recover_entries(bytes: &[u8], purged: Option<LogId>) -> Result<Recovered, u64> {
    let decoded = decode_records(bytes);
    if decoded.corrupt {
        return Err(decoded.end);
    }
    let mut entries = BTreeMap::new();
    let mut last: Option<u64> = None;
    for (offset, payload) in decoded.records {
        let entry = match serde_json::from_slice::<Entry>(payload) {
            Ok(entry) if last.is_none_or(|l| entry.log_id.index == l + 1) => entry,
            _ => return Err(offset),
        };
        last = Some(entry.log_id.index);
        if purged.is_none_or(|p| entry.log_id.index > p.index) {
            entries.insert(entry.log_id.index, (offset, entry));
        }
    }
    Ok((entries, decoded.end))
}

fn record_error(e: crate::durable::RecordTooLong) -> StorageError {
    write_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

impl Inner {
    fn save_hard(&self) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(&self.hard).map_err(json_error)?;
        write_atomic(&self.dir.join("state"), &bytes).map_err(write_error)
    }

    fn append(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        let mut placed = Vec::with_capacity(entries.len());
        for entry in entries {
            let offset = self.end + buf.len() as u64;
            encode_record(&serde_json::to_vec(&entry).map_err(json_error)?, &mut buf)
                .map_err(record_error)?;
            placed.push((offset, entry));
        }
        self.file.seek(SeekFrom::Start(self.end)).map_err(write_error)?;
        self.file.write_all(&buf).map_err(write_error)?;
        self.file.sync_data().map_err(write_error)?;
        self.end += buf.len() as u64;
        for (offset, entry) in placed {
            let last = self.entries.last_key_value().map(|(&i, _)| i);
            assert!(last.is_none_or(|l| entry.log_id.index == l + 1), "log appends are consecutive");
            self.entries.insert(entry.log_id.index, (offset, entry));
        }
        Ok(())
    }

    /// Replaces the `committed` file (see the module documentation: no fsync).
    fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(&committed).map_err(json_error)?;
        let path = self.dir.join("committed");
        let tmp = path.with_extension("tmp-committed");
        std::fs::write(&tmp, &bytes).map_err(write_error)?;
        std::fs::rename(&tmp, &path).map_err(write_error)?;
        self.committed = committed;
        Ok(())
    }

    /// Removes the entries from `index` on, cutting the file at the first one's record.
    fn truncate(&mut self, index: u64) -> Result<(), StorageError> {
        let Some(&(offset, _)) = self.entries.get(&index) else { return Ok(()) };
        self.file.set_len(offset).map_err(write_error)?;
        self.file.sync_all().map_err(write_error)?;
        self.end = offset;
        self.entries.split_off(&index);
        Ok(())
    }

    /// Records `upto` as purged, then rewrites the log without the entries up to it (temporary
    /// file, fsync, rename, directory fsync). A crash in between is harmless: recovery skips
    /// entries at or below the purged id.
    fn purge(&mut self, upto: LogId) -> Result<(), StorageError> {
        self.hard.purged = Some(upto);
        self.save_hard()?;
        let kept = self.entries.split_off(&(upto.index + 1));
        let mut buf = Vec::new();
        let mut entries = BTreeMap::new();
        for (index, (_, entry)) in kept {
            let offset = buf.len() as u64;
            encode_record(&serde_json::to_vec(&entry).map_err(json_error)?, &mut buf)
                .map_err(record_error)?;
            entries.insert(index, (offset, entry));
        }
        let path = self.dir.join("log");
        write_atomic(&path, &buf).map_err(write_error)?;
        self.file = OpenOptions::new().read(true).write(true).open(&path).map_err(write_error)?;
        self.end = buf.len() as u64;
        self.entries = entries;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        Ok(inner.entries.range(range).map(|(_, (_, e))| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last_purged_log_id = inner.hard.purged;
        let last = inner.entries.last_key_value().map(|(_, (_, e))| e.log_id);
        Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.hard.vote = Some(*vote);
        inner.save_hard()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().hard.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.lock().save_committed(committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let result = self.lock().append(entries.into_iter().collect());
        // Durable (fsynced) before openraft hears of it; a failure is reported both ways.
        let io = result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(io);
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().truncate(log_id.index)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().purge(log_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("state")).unwrap()).unwrap()
    }

    #[test]
    fn an_empty_dir_is_blank_until_it_caught_up_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert!(store.is_blank());
        assert_eq!(state(dir.path())["blank"], true, "blank is durable before the log exists");
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert!(store.is_blank(), "a restart before catching up is blank still");
        assert!(store.leave_blank().unwrap());
        assert!(!store.leave_blank().unwrap(), "left once");
        drop(store);
        assert!(!LogStore::open(dir.path()).unwrap().is_blank());
        assert_eq!(state(dir.path())["blank"], false);
    }

    #[test]
    fn a_dir_with_raft_state_is_not_blank() {
        // A log without a state file: a node that appended but never voted.
        let with_log = tempfile::tempdir().unwrap();
        std::fs::write(with_log.path().join("log"), b"").unwrap();
        assert!(!LogStore::open(with_log.path()).unwrap().is_blank());
        // A state file written before the field existed.
        let old_state = tempfile::tempdir().unwrap();
        std::fs::write(old_state.path().join("state"), br#"{"vote":null,"purged":null}"#).unwrap();
        assert!(!LogStore::open(old_state.path()).unwrap().is_blank());
        // Only Raft's files count: the incarnation is written before the store opens.
        let incarnation_only = tempfile::tempdir().unwrap();
        std::fs::write(incarnation_only.path().join("incarnation"), b"7").unwrap();
        assert!(LogStore::open(incarnation_only.path()).unwrap().is_blank());
    }
}

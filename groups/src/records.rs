//! The records the coordinator persists in its `__consumer_offsets` partition.
//!
//! The partition is compacted: for each key only the latest record matters, and a tombstone
//! (no value) means the key's state is gone. Replaying the latest record of every key, in log
//! order, rebuilds the coordinator. Integers are big-endian; a string is a `u16` byte length
//! followed by that many bytes of UTF-8. Every key starts with its type byte, every value with
//! a version byte (0), so a later layout can be told apart.
//!
//! ```text
//! offset commit (type 1): the committed offset of one partition, for one group
//!   key    u8 1 | str group | str topic | u32 partition
//!   value  u8 0 | u64 offset | u64 commit_time_ms | str metadata
//!
//! group metadata (type 2): the group's epoch, assignor, the partition counts its target was
//! computed on, and the number of the next member id it makes
//!   key    u8 2 | str group
//!   value  u8 0 | JSON {"group_epoch": i32, "assignor": "range"|"roundrobin"|"sticky",
//!                       "partition_counts": {topic: u32},
//!                       "classic": {"generation": i32, "protocol_type": str|null,
//!                                   "protocol_name": str|null, "leader": str,
//!                                   "rebalance": true}}
//!   ("classic" is absent for a group that never had classic members, and in records
//!   written before classic groups existed; "leader" is absent with no stored members,
//!   "rebalance" when false, and both in records written before classic members were)
//!
//! member (type 3): one member's state
//!   key    u8 3 | str group | str member_id
//!   value  u8 0 | JSON {"instance_id": str|null, "member_epoch": i32, "topics": [str],
//!                       "session_timeout_ms": u32, "rebalance_timeout_ms": u32,
//!                       "assigned": {topic: [u32]}, "revoking": {topic: [u32]},
//!                       "target": {topic: [u32]}, "owned": {topic: [u32]}, "departed": bool}
//!
//! member ids (type 4): the number of the last member id the coordinator made, so that ids are
//! never made twice, even for a group that was forgotten and began again
//!   key    u8 4
//!   value  u8 0 | u64 number
//!
//! classic member (type 5): a member of a classic group's last completed generation
//!   key    u8 5 | str group | str member_id
//!   value  u8 0 | u32 n | n bytes protocol metadata | u32 m | m bytes assignment
//!               | JSON {"instance_id": str|null, "client_id": str, "client_host": str,
//!                       "protocol": str, "session_timeout_ms": u32,
//!                       "rebalance_timeout_ms": u32}
//!   (n at most CLASSIC_METADATA_BYTES_MAX, m at most CLASSIC_ASSIGNMENT_BYTES_MAX; the
//!   metadata is the member's for the generation's protocol only, as Kafka stores it)
//! ```
//!
//! A member's record is written when any of its fields changes and a tombstone when it goes; a
//! group's record when its metadata changes. When a group is left with no members and no
//! offsets (or is deleted), its member and offset tombstones come first, then the group's
//! tombstone. Within one change, tombstones of members come before records of members, so a
//! partition handed from a removed member to its successor is never held twice on replay.
//!
//! Classic groups (Kafka's JoinGroup protocol) persist their last completed generation, as
//! Kafka does: when the leader's sync makes the group stable, the group record's "classic"
//! field takes the generation, protocol and leader, and every member its classic member
//! record. A member of it that goes (leaves, expires, is removed or replaced) gets a tombstone
//! and the group record is rewritten with "rebalance"; a static member replaced without a
//! rebalance gets its new id's record instead. A group that becomes empty rewrites its record
//! with its bumped generation and no leader. Members still joining, held requests and given
//! member ids are not persisted. A reloaded classic group is therefore its last completed
//! generation, stable, each member's session starting afresh; or, if a stored member went
//! since (or the leader is gone), the same members preparing a rebalance; or empty. The stored
//! generation only grows; a generation made but not completed before a reload is made again
//! after it. A reloaded group with no members and no offsets holds nothing: the first tick
//! forgets it, with a tombstone.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::CommittedOffset;
use crate::classic::persist::StoredClassicMember;
use crate::error::GroupError;
use crate::group::StoredOffset;
use crate::{CLASSIC_ASSIGNMENT_BYTES_MAX, CLASSIC_METADATA_BYTES_MAX};

const OFFSET: u8 = 1;
const GROUP: u8 = 2;
const MEMBER: u8 = 3;
const MEMBER_IDS: u8 = 4;
const CLASSIC_MEMBER: u8 = 5;
const TRANSACTION: u8 = 6;
const PENDING_OFFSET: u8 = 7;
const VALUE_VERSION: u8 = 0;
/// An offset commit's value with the committed leader epoch after its metadata.
const OFFSET_VALUE_VERSION_EPOCH: u8 = 1;

/// A decoded record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Offset { group: String, topic: String, partition: u32 },
    Group { group: String },
    Member { group: String, member_id: String },
    MemberIds,
    ClassicMember { group: String, member_id: String },
    Transaction { transactional_id: String },
    PendingOffset { group: String, producer_id: i64, topic: String, partition: u32 },
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("strings are bounded far below 64 KiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn encode_key(key: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    match key {
        Key::Offset { group, topic, partition } => {
            out.push(OFFSET);
            put_str(&mut out, group);
            put_str(&mut out, topic);
            out.extend_from_slice(&partition.to_be_bytes());
        }
        Key::Group { group } => {
            out.push(GROUP);
            put_str(&mut out, group);
        }
        Key::Member { group, member_id } => {
            out.push(MEMBER);
            put_str(&mut out, group);
            put_str(&mut out, member_id);
        }
        Key::MemberIds => out.push(MEMBER_IDS),
        Key::ClassicMember { group, member_id } => {
            out.push(CLASSIC_MEMBER);
            put_str(&mut out, group);
            put_str(&mut out, member_id);
        }
        Key::Transaction { transactional_id } => {
            out.push(TRANSACTION);
            put_str(&mut out, transactional_id);
        }
        Key::PendingOffset { group, producer_id, topic, partition } => {
            out.push(PENDING_OFFSET);
            put_str(&mut out, group);
            out.extend_from_slice(&producer_id.to_be_bytes());
            put_str(&mut out, topic);
            out.extend_from_slice(&partition.to_be_bytes());
        }
    }
    out
}

/// Reads fields off the front of a record.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GroupError> {
        if self.0.len() < n {
            return Err(corrupt("a record shorter than its fields"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, GroupError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, GroupError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, GroupError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn str(&mut self) -> Result<String, GroupError> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes"));
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("a string that is not UTF-8"))
    }

    fn end(&self) -> Result<(), GroupError> {
        if self.0.is_empty() { Ok(()) } else { Err(corrupt("trailing bytes after a record's fields")) }
    }
}

fn corrupt(reason: &str) -> GroupError {
    GroupError::CorruptRecord { reason: reason.to_owned() }
}

pub(crate) fn decode_key(bytes: &[u8]) -> Result<Key, GroupError> {
    let mut r = Reader(bytes);
    let key = match r.u8()? {
        OFFSET => Key::Offset { group: r.str()?, topic: r.str()?, partition: r.u32()? },
        GROUP => Key::Group { group: r.str()? },
        MEMBER => Key::Member { group: r.str()?, member_id: r.str()? },
        MEMBER_IDS => Key::MemberIds,
        CLASSIC_MEMBER => Key::ClassicMember { group: r.str()?, member_id: r.str()? },
        TRANSACTION => Key::Transaction { transactional_id: r.str()? },
        PENDING_OFFSET => Key::PendingOffset {
            group: r.str()?,
            producer_id: r.u64()? as i64,
            topic: r.str()?,
            partition: r.u32()?,
        },
        other => return Err(GroupError::CorruptRecord { reason: format!("unknown key type {other}") }),
    };
    r.end()?;
    Ok(key)
}

/// An offset's value: version 0 without a leader epoch, version 1 with one (an `i32` after
/// the metadata), so a commit without one reads the same as before epochs were kept.
pub(crate) fn encode_offset(offset: &StoredOffset) -> Vec<u8> {
    let epoch = offset.committed.leader_epoch;
    let mut out = vec![if epoch.is_some() { OFFSET_VALUE_VERSION_EPOCH } else { VALUE_VERSION }];
    out.extend_from_slice(&offset.committed.offset.to_be_bytes());
    out.extend_from_slice(&offset.commit_time_ms.to_be_bytes());
    put_str(&mut out, &offset.committed.metadata);
    if let Some(e) = epoch {
        out.extend_from_slice(&e.to_be_bytes());
    }
    out
}

pub(crate) fn decode_offset(bytes: &[u8]) -> Result<StoredOffset, GroupError> {
    let mut r = Reader(bytes);
    let with_epoch = match r.u8()? {
        OFFSET_VALUE_VERSION_EPOCH => true,
        v => {
            version(v)?;
            false
        }
    };
    let offset = r.u64()?;
    let commit_time_ms = r.u64()?;
    let metadata = r.str()?;
    let leader_epoch = if with_epoch { Some(r.u32()? as i32) } else { None };
    r.end()?;
    Ok(StoredOffset { committed: CommittedOffset { offset, metadata, leader_epoch }, commit_time_ms })
}

pub(crate) fn encode_u64(n: u64) -> Vec<u8> {
    let mut out = vec![VALUE_VERSION];
    out.extend_from_slice(&n.to_be_bytes());
    out
}

pub(crate) fn decode_u64(bytes: &[u8]) -> Result<u64, GroupError> {
    let mut r = Reader(bytes);
    version(r.u8()?)?;
    let n = r.u64()?;
    r.end()?;
    Ok(n)
}

fn version(v: u8) -> Result<(), GroupError> {
    if v == VALUE_VERSION {
        Ok(())
    } else {
        Err(GroupError::CorruptRecord { reason: format!("unknown value version {v}") })
    }
}

/// A classic member value: the version byte, its protocol metadata and assignment as
/// `u32`-length-prefixed raw bytes (each within its limit), then JSON.
pub(crate) fn encode_classic_member(m: &StoredClassicMember) -> Vec<u8> {
    let mut out = vec![VALUE_VERSION];
    for bytes in [&m.metadata, &m.assignment] {
        let len = u32::try_from(bytes.len()).expect("classic bytes are bounded far below 4 GiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    serde_json::to_writer(&mut out, &m.fields).expect("a classic member serialises");
    out
}

pub(crate) fn decode_classic_member(bytes: &[u8]) -> Result<StoredClassicMember, GroupError> {
    let mut r = Reader(bytes);
    version(r.u8()?)?;
    let mut field = |max: usize| -> Result<Vec<u8>, GroupError> {
        let len = r.u32()? as usize;
        if len > max {
            return Err(corrupt("classic member bytes beyond their limit"));
        }
        Ok(r.take(len)?.to_vec())
    };
    let metadata = field(CLASSIC_METADATA_BYTES_MAX)?;
    let assignment = field(CLASSIC_ASSIGNMENT_BYTES_MAX)?;
    let fields =
        serde_json::from_slice(r.0).map_err(|e| GroupError::CorruptRecord { reason: e.to_string() })?;
    Ok(StoredClassicMember { fields, metadata, assignment })
}

/// A group or member value: the version byte, then JSON.
pub(crate) fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![VALUE_VERSION];
    serde_json::to_writer(&mut out, value).expect("group state serialises");
    out
}

pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GroupError> {
    let (&v, rest) = bytes.split_first().ok_or_else(|| corrupt("an empty value"))?;
    version(v)?;
    serde_json::from_slice(rest).map_err(|e| GroupError::CorruptRecord { reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_start_with_their_type() {
        let keys = [
            Key::Offset { group: "g".into(), topic: "t".into(), partition: 7 },
            Key::Group { group: "g".into() },
            Key::Member { group: "g".into(), member_id: "m-1".into() },
            Key::MemberIds,
            Key::ClassicMember { group: "g".into(), member_id: "m-2".into() },
        ];
        for (key, ty) in keys.iter().zip([1u8, 2, 3, 4, 5]) {
            let bytes = encode_key(key);
            assert_eq!(bytes[0], ty);
            assert_eq!(&decode_key(&bytes).unwrap(), key);
        }
        let offset = encode_key(&keys[0]);
        assert_eq!(offset, [1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
    }

    #[test]
    fn classic_members_round_trip_and_oversized_bytes_are_refused() {
        use crate::classic::persist::ClassicMemberRecord;
        let m = StoredClassicMember {
            fields: ClassicMemberRecord {
                instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "h".into(),
                protocol: "range".into(),
                session_timeout_ms: 1,
                rebalance_timeout_ms: 2,
            },
            metadata: vec![1, 2, 3],
            assignment: vec![4],
        };
        let bytes = encode_classic_member(&m);
        assert_eq!(&bytes[..13], [0, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 1, 4]);
        assert_eq!(decode_classic_member(&bytes).unwrap(), m);
        let mut huge = vec![0];
        huge.extend_from_slice(&(CLASSIC_METADATA_BYTES_MAX as u32 + 1).to_be_bytes());
        assert!(matches!(decode_classic_member(&huge), Err(GroupError::CorruptRecord { .. })));
        assert!(matches!(decode_classic_member(&bytes[..9]), Err(GroupError::CorruptRecord { .. })));
    }

    #[test]
    fn offsets_round_trip_and_bad_bytes_are_refused() {
        let stored = StoredOffset {
            committed: CommittedOffset { offset: 42, metadata: "meta".into(), leader_epoch: None },
            commit_time_ms: 9,
        };
        let bytes = encode_offset(&stored);
        assert_eq!(bytes.len(), 1 + 8 + 8 + 2 + 4);
        assert_eq!(decode_offset(&bytes).unwrap(), stored);
        assert!(matches!(decode_offset(&bytes[..10]), Err(GroupError::CorruptRecord { .. })));
        assert!(matches!(decode_key(&[9, 0]), Err(GroupError::CorruptRecord { .. })));
        let mut versioned = bytes.clone();
        versioned[0] = 1;
        assert!(matches!(decode_offset(&versioned), Err(GroupError::CorruptRecord { .. })));
    }
}

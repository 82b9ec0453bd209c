//! The inter-node protocol of replication: `ReplicaFetch` (api key 100; keys from 100 up are
//! between nodes and never collide with client APIs). Framed like every native request
//! (`weir_net::frame`), little-endian like the rest of the protocol.
//!
//! ```text
//! request body:  follower node u32, count u32, then per partition:
//!   partition u32, request_id u64, leader_epoch u32, fetch_offset u64, log_start u64,
//!   has_last_epoch u8, last_fetched_epoch u32, durable_offset u64                 (45 bytes)
//! answer body:   count u32, then per partition:
//!   partition u32, request_id u64, leader_epoch u32, high_watermark u64, log_start u64, tag u8
//!   tag 0 Records:   fetch_offset u64, batches (u32 length, zero padding to 16, the bytes)
//!   tag 1 Diverging: has_epoch u8, epoch u32, end_offset u64
//!   tag 2 Refused:   reason u8, log_start u64, log_end u64
//! ```
//! The batches are the leader's stored bytes, whole batches; the follower checks every CRC
//! before it takes the answer.

use bytes::Bytes;
use weir_net::DecodeError;
use weir_net::wire::{Reader, Writer};
use weir_replication::{FetchAnswer, FetchBody, FetchRefusal, FetchRequest, NodeId, PartitionId};

/// The api key of `ReplicaFetch`.
pub const REPLICA_FETCH_API: u16 = 100;
pub const REPLICA_FETCH_VERSION: u16 = 1;
/// Most batch bytes one answer carries, over all its partitions (at least one batch is sent
/// for the first partition with data, whatever its size).
pub const REPLICA_FETCH_BYTES_MAX: usize = 4 << 20;
/// Partitions one request carries at most.
pub const REPLICA_FETCH_PARTITIONS_MAX: usize = 4096;

const REQUEST_ITEM_BYTES: usize = 45;
const ANSWER_ITEM_BYTES_MIN: usize = 33;
/// The most one partition's answer takes besides its batches: the fixed fields, the tag and
/// the largest body (Records: fetch offset, length, up to 15 bytes of padding).
const ANSWER_ITEM_BYTES_MAX: usize = ANSWER_ITEM_BYTES_MIN + 8 + 4 + 15;

/// The largest answer body a leader whose `batch_bytes_max` is given may send: up to
/// [`REPLICA_FETCH_BYTES_MAX`] of batches plus the first batch whole (up to `batch_bytes_max`),
/// and every partition's fields.
pub fn answer_bytes_max(batch_bytes_max: usize) -> usize {
    4 + REPLICA_FETCH_BYTES_MAX + batch_bytes_max + REPLICA_FETCH_PARTITIONS_MAX * ANSWER_ITEM_BYTES_MAX
}

/// A follower's fetch for many partitions led by one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFetch {
    pub follower: NodeId,
    pub partitions: Vec<FetchRequest>,
}

/// The answer for one partition, with the batches read for `Records`.
#[derive(Debug, Clone)]
pub struct PartitionAnswer {
    pub answer: FetchAnswer,
    pub batches: Bytes,
}

fn opt_u32(w: &mut Writer, v: Option<u32>) {
    w.u8(u8::from(v.is_some())).u32(v.unwrap_or(0));
}

fn read_opt_u32(r: &mut Reader<'_>) -> Result<Option<u32>, DecodeError> {
    let has = r.u8()?;
    let v = r.u32()?;
    match has {
        0 => Ok(None),
        1 => Ok(Some(v)),
        other => Err(DecodeError::BadValue { field: "option flag", value: u64::from(other) }),
    }
}

impl ReplicaFetch {
    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.follower.0).u32(self.partitions.len() as u32);
        for p in &self.partitions {
            w.u32(p.partition.0).u64(p.request_id).u32(p.leader_epoch).u64(p.fetch_offset).u64(p.log_start);
            opt_u32(w, p.last_fetched_epoch);
            w.u64(p.durable_offset);
        }
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let follower = NodeId(r.u32()?);
        let n = r.count(REQUEST_ITEM_BYTES)?;
        if n > REPLICA_FETCH_PARTITIONS_MAX {
            return Err(DecodeError::BadValue { field: "replica fetch partitions", value: n as u64 });
        }
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(FetchRequest {
                partition: PartitionId(r.u32()?),
                replica: follower,
                request_id: r.u64()?,
                leader_epoch: r.u32()?,
                fetch_offset: r.u64()?,
                log_start: r.u64()?,
                last_fetched_epoch: read_opt_u32(&mut r)?,
                durable_offset: r.u64()?,
            });
        }
        r.finish()?;
        Ok(Self { follower, partitions })
    }
}

fn refusal_code(f: FetchRefusal) -> (u8, u64, u64) {
    match f {
        FetchRefusal::NotLeader => (0, 0, 0),
        FetchRefusal::FencedLeaderEpoch => (1, 0, 0),
        FetchRefusal::UnknownLeaderEpoch => (2, 0, 0),
        FetchRefusal::OffsetOutOfRange { log_start, log_end } => (3, log_start, log_end),
        FetchRefusal::UnknownReplica => (4, 0, 0),
        FetchRefusal::LeaderNotReady => (5, 0, 0),
    }
}

fn refusal(code: u8, log_start: u64, log_end: u64) -> Result<FetchRefusal, DecodeError> {
    Ok(match code {
        0 => FetchRefusal::NotLeader,
        1 => FetchRefusal::FencedLeaderEpoch,
        2 => FetchRefusal::UnknownLeaderEpoch,
        3 => FetchRefusal::OffsetOutOfRange { log_start, log_end },
        4 => FetchRefusal::UnknownReplica,
        5 => FetchRefusal::LeaderNotReady,
        other => return Err(DecodeError::BadValue { field: "fetch refusal", value: u64::from(other) }),
    })
}

/// Encodes an answer.
pub fn encode_answers(answers: &[PartitionAnswer], w: &mut Writer) {
    w.u32(answers.len() as u32);
    for PartitionAnswer { answer: a, batches } in answers {
        w.u32(a.partition.0).u64(a.request_id).u32(a.leader_epoch).u64(a.high_watermark).u64(a.log_start);
        match a.body {
            FetchBody::Records { fetch_offset } => {
                w.u8(0).u64(fetch_offset);
                w.batches(batches).expect("an answer's batches are bounded far below 4 GiB");
            }
            FetchBody::Diverging { epoch, end_offset } => {
                w.u8(1);
                opt_u32(w, epoch);
                w.u64(end_offset);
            }
            FetchBody::Refused(f) => {
                let (code, start, end) = refusal_code(f);
                w.u8(2).u8(code).u64(start).u64(end);
            }
        }
    }
}

/// Decodes an answer; the batches are slices of `body` (no copy).
pub fn decode_answers(body: &Bytes) -> Result<Vec<PartitionAnswer>, DecodeError> {
    let mut r = Reader::new(body);
    let n = r.count(ANSWER_ITEM_BYTES_MIN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let partition = PartitionId(r.u32()?);
        let request_id = r.u64()?;
        let leader_epoch = r.u32()?;
        let high_watermark = r.u64()?;
        let log_start = r.u64()?;
        let mut batches = Bytes::new();
        let body_kind = match r.u8()? {
            0 => {
                let fetch_offset = r.u64()?;
                batches = body.slice_ref(r.batches()?);
                FetchBody::Records { fetch_offset }
            }
            1 => FetchBody::Diverging { epoch: read_opt_u32(&mut r)?, end_offset: r.u64()? },
            2 => {
                let code = r.u8()?;
                FetchBody::Refused(refusal(code, r.u64()?, r.u64()?)?)
            }
            other => return Err(DecodeError::BadValue { field: "fetch body", value: u64::from(other) }),
        };
        let answer =
            FetchAnswer { partition, request_id, leader_epoch, high_watermark, log_start, body: body_kind };
        out.push(PartitionAnswer { answer, batches });
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_of_more_partitions_than_allowed_is_refused() {
        let req = FetchRequest {
            partition: PartitionId(0),
            replica: NodeId(2),
            request_id: 1,
            leader_epoch: 0,
            fetch_offset: 0,
            log_start: 0,
            last_fetched_epoch: None,
            durable_offset: 0,
        };
        let fetch =
            ReplicaFetch { follower: NodeId(2), partitions: vec![req; REPLICA_FETCH_PARTITIONS_MAX + 1] };
        let mut w = Writer::default();
        fetch.encode(&mut w);
        assert!(matches!(ReplicaFetch::decode(&w.buf), Err(DecodeError::BadValue { .. })));
    }

    /// An answer of records from offset 100, for the tests' messages.
    fn records_answer() -> FetchAnswer {
        FetchAnswer {
            partition: PartitionId(7),
            request_id: 5,
            leader_epoch: 4,
            high_watermark: 50,
            log_start: 1,
            body: FetchBody::Records { fetch_offset: 100 },
        }
    }

    /// A leader sends up to `REPLICA_FETCH_BYTES_MAX` of batches and the first batch whole,
    /// whatever its size up to `batch_bytes_max`: the follower's bound takes such an answer.
    #[test]
    fn an_answer_with_a_largest_batch_fits_the_followers_bound() {
        let batch_bytes_max = 16 << 20;
        let base = records_answer();
        let first = PartitionAnswer { answer: base, batches: Bytes::from(vec![1; batch_bytes_max]) };
        let rest =
            PartitionAnswer { answer: base, batches: Bytes::from(vec![1; REPLICA_FETCH_BYTES_MAX - 1]) };
        let mut w = Writer::default();
        encode_answers(&[first, rest], &mut w);
        assert!(w.buf.len() <= answer_bytes_max(batch_bytes_max), "{} bytes", w.buf.len());
    }

    #[test]
    fn a_fetch_and_its_answer_survive_the_wire() {
        let req = FetchRequest {
            partition: PartitionId(7),
            replica: NodeId(2),
            request_id: 9 << 32 | 3,
            leader_epoch: 4,
            fetch_offset: 100,
            log_start: 10,
            last_fetched_epoch: Some(3),
            durable_offset: 90,
        };
        let fetch = ReplicaFetch {
            follower: NodeId(2),
            partitions: vec![req, FetchRequest { last_fetched_epoch: None, ..req }],
        };
        let mut w = Writer::default();
        fetch.encode(&mut w);
        assert_eq!(ReplicaFetch::decode(&w.buf).unwrap(), fetch);
        let base = records_answer();
        let answers = vec![
            PartitionAnswer { answer: base, batches: Bytes::from_static(&[1; 32]) },
            PartitionAnswer {
                answer: FetchAnswer { body: FetchBody::Diverging { epoch: None, end_offset: 3 }, ..base },
                batches: Bytes::new(),
            },
            PartitionAnswer {
                answer: FetchAnswer {
                    body: FetchBody::Refused(FetchRefusal::OffsetOutOfRange { log_start: 1, log_end: 2 }),
                    ..base
                },
                batches: Bytes::new(),
            },
        ];
        let mut w = Writer::default();
        encode_answers(&answers, &mut w);
        let back = decode_answers(&Bytes::from(w.buf)).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in answers.iter().zip(&back) {
            assert_eq!(a.answer, b.answer);
            assert_eq!(a.batches, b.batches);
        }
    }
}

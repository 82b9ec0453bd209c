//! What clients are told of the cluster: its nodes (Metadata from version 2 on), each
//! partition's leader, replicas and in-sync replicas (Metadata version 2, DescribeTopic version
//! 3), and the cluster's status (ClusterStatus). A single node answers as node 0, leading every
//! partition it has, with itself as the only replica.

use crate::api::{ShardAddr, count};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Writer};

/// A node of the cluster as Metadata (version 2 on) lists it: where clients reach it, and each
/// of its shards on its own port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub node_id: u32,
    pub host: String,
    /// The node's client port (TCP and QUIC).
    pub port: u16,
    /// Every shard of the node, in shard order.
    pub shards: Vec<ShardAddr>,
}

/// Who leads a partition and who holds copies of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplication {
    /// The leader's node id; `None` while there is none (an election is under way).
    pub leader: Option<u32>,
    /// The shard of the leader node that holds the partition.
    pub leader_shard: u16,
    pub leader_epoch: u32,
    /// Node ids of every replica, in preference order (the first is the preferred leader).
    pub replicas: Vec<u32>,
    /// Node ids of the in-sync replicas: those acks=all waits for.
    pub isr: Vec<u32>,
    /// One past the last record durable on every in-sync replica: what consumers may read.
    pub high_watermark: u64,
    /// One past the last record in the leader's log, visible or not: above the high watermark
    /// while the in-sync replicas catch up.
    pub log_end: u64,
}

impl PartitionReplication {
    /// The one replica of a single node (node 0), led by it.
    pub fn single_node(leader_shard: u16, leader_epoch: u32, high_watermark: u64, log_end: u64) -> Self {
        Self {
            leader: Some(0),
            leader_shard,
            leader_epoch,
            replicas: vec![0],
            isr: vec![0],
            high_watermark,
            log_end,
        }
    }
}

/// Whether a node votes in the control plane's Raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Voter = 0,
    Learner = 1,
}

/// A node as ClusterStatus reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: u32,
    pub host: String,
    pub port: u16,
    /// Whether the controller hears the node's heartbeats.
    pub up: bool,
    /// Whether the node is the controller (the control plane's Raft leader).
    pub controller: bool,
    pub role: NodeRole,
}

/// A partition whose in-sync replicas are fewer than its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderReplicated {
    pub topic: String,
    pub partition: u32,
    pub replicas: Vec<u32>,
    pub isr: Vec<u32>,
}

/// Fewest bytes a [`NodeInfo`] takes: id, empty host, port, empty shard array.
pub const NODE_INFO_BYTES_MIN: usize = 4 + 2 + 2 + 4;
/// Fewest bytes a [`PartitionReplication`] takes: whether there is a leader, leader, shard, epoch, two empty arrays, high
/// watermark, log end.
pub const PARTITION_REPLICATION_BYTES_MIN: usize = 1 + 4 + 2 + 4 + 4 + 4 + 8 + 8;
/// Fewest bytes a [`NodeStatus`] takes: id, empty host, port, three flags.
pub const NODE_STATUS_BYTES_MIN: usize = 4 + 2 + 2 + 3;
/// Fewest bytes an [`UnderReplicated`] takes: empty topic, partition, two empty arrays.
pub const UNDER_REPLICATED_BYTES_MIN: usize = 2 + 4 + 4 + 4;
/// Fewest bytes a [`ShardAddr`] takes: shard, empty host, port.
pub const SHARD_ADDR_BYTES_MIN: usize = 2 + 2 + 2;

pub(crate) fn encode_shards(w: &mut Writer, shards: &[ShardAddr]) -> Result<(), EncodeError> {
    w.u32(count("shards", shards.len())?);
    for s in shards {
        w.u16(s.shard).str("host", &s.host)?.u16(s.port);
    }
    Ok(())
}

pub(crate) fn decode_shards(r: &mut Reader<'_>) -> Result<Vec<ShardAddr>, DecodeError> {
    let n = r.count(SHARD_ADDR_BYTES_MIN)?;
    (0..n).map(|_| Ok(ShardAddr { shard: r.u16()?, host: r.str()?, port: r.u16()? })).collect()
}

fn encode_ids(w: &mut Writer, field: &'static str, ids: &[u32]) -> Result<(), EncodeError> {
    w.u32(count(field, ids.len())?);
    for id in ids {
        w.u32(*id);
    }
    Ok(())
}

fn decode_ids(r: &mut Reader<'_>) -> Result<Vec<u32>, DecodeError> {
    let n = r.count(4)?;
    (0..n).map(|_| r.u32()).collect()
}

fn flag(r: &mut Reader<'_>, field: &'static str) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(DecodeError::BadValue { field, value: u64::from(v) }),
    }
}

pub(crate) fn encode_nodes(w: &mut Writer, nodes: &[NodeInfo]) -> Result<(), EncodeError> {
    w.u32(count("nodes", nodes.len())?);
    for n in nodes {
        w.u32(n.node_id).str("host", &n.host)?.u16(n.port);
        encode_shards(w, &n.shards)?;
    }
    Ok(())
}

pub(crate) fn decode_nodes(r: &mut Reader<'_>) -> Result<Vec<NodeInfo>, DecodeError> {
    let n = r.count(NODE_INFO_BYTES_MIN)?;
    (0..n)
        .map(|_| {
            Ok(NodeInfo { node_id: r.u32()?, host: r.str()?, port: r.u16()?, shards: decode_shards(r)? })
        })
        .collect()
}

pub(crate) fn encode_replication(w: &mut Writer, p: &PartitionReplication) -> Result<(), EncodeError> {
    // A flag rather than a reserved id: any u32 is a valid node id.
    w.u8(u8::from(p.leader.is_some())).u32(p.leader.unwrap_or(0));
    w.u16(p.leader_shard).u32(p.leader_epoch);
    encode_ids(w, "replicas", &p.replicas)?;
    encode_ids(w, "isr", &p.isr)?;
    w.u64(p.high_watermark).u64(p.log_end);
    Ok(())
}

pub(crate) fn decode_replication(r: &mut Reader<'_>) -> Result<PartitionReplication, DecodeError> {
    let has_leader = flag(r, "has leader")?;
    let leader = r.u32()?;
    Ok(PartitionReplication {
        leader: has_leader.then_some(leader),
        leader_shard: r.u16()?,
        leader_epoch: r.u32()?,
        replicas: decode_ids(r)?,
        isr: decode_ids(r)?,
        high_watermark: r.u64()?,
        log_end: r.u64()?,
    })
}

/// The body of a ClusterStatus response.
pub(crate) fn encode_status(
    w: &mut Writer,
    nodes: &[NodeStatus],
    under_replicated: &[UnderReplicated],
) -> Result<(), EncodeError> {
    w.u32(count("nodes", nodes.len())?);
    for n in nodes {
        w.u32(n.node_id).str("host", &n.host)?.u16(n.port);
        w.u8(u8::from(n.up)).u8(u8::from(n.controller)).u8(n.role as u8);
    }
    w.u32(count("under-replicated partitions", under_replicated.len())?);
    for u in under_replicated {
        w.str("topic", &u.topic)?.u32(u.partition);
        encode_ids(w, "replicas", &u.replicas)?;
        encode_ids(w, "isr", &u.isr)?;
    }
    Ok(())
}

pub(crate) fn decode_status(
    r: &mut Reader<'_>,
) -> Result<(Vec<NodeStatus>, Vec<UnderReplicated>), DecodeError> {
    let n = r.count(NODE_STATUS_BYTES_MIN)?;
    let nodes = (0..n)
        .map(|_| {
            Ok(NodeStatus {
                node_id: r.u32()?,
                host: r.str()?,
                port: r.u16()?,
                up: flag(r, "node up")?,
                controller: flag(r, "node is controller")?,
                role: match r.u8()? {
                    0 => NodeRole::Voter,
                    1 => NodeRole::Learner,
                    v => return Err(DecodeError::BadValue { field: "node role", value: u64::from(v) }),
                },
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    let n = r.count(UNDER_REPLICATED_BYTES_MIN)?;
    let under = (0..n)
        .map(|_| {
            Ok(UnderReplicated {
                topic: r.str()?,
                partition: r.u32()?,
                replicas: decode_ids(r)?,
                isr: decode_ids(r)?,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok((nodes, under))
}

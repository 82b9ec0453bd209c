//! Where a partition's requests go: its leader, from Metadata. The producer and the consumer ask
//! for metadata of a topic on any bootstrap address or known node, and resolve each partition's
//! leader to the address to send to.

use super::admin::unexpected;
use super::connection::{Connection, ResponseFrame, shard_address};
use super::error::{ClientError, Result};
use crate::api::{PartitionInfo, Request, Response, ShardAddr, TopicInfo};
use crate::cluster::NodeInfo;
use crate::error::ErrorCode;

/// A topic's metadata as one answer gave it, with what is needed to resolve its partitions'
/// addresses.
#[derive(Debug, Clone)]
pub struct TopicRoutes {
    pub topic: TopicInfo,
    /// The address the answer came from: the host of nodes and shards advertised on an
    /// unspecified address.
    answered_by: String,
    /// The answering node's shards (Metadata version 1 names no other node).
    shards: Vec<ShardAddr>,
    nodes: Vec<NodeInfo>,
}

impl TopicRoutes {
    /// Metadata of `topic` on `conn`; see [`check`](Self::check) for whether the topic is known.
    pub async fn fetch(conn: &mut Connection, topic: &str) -> Result<Self> {
        let frame = conn.call(&Request::Metadata { topics: vec![topic.to_owned()] }).await?;
        Self::from_frame(&frame, conn.addr(), topic)
    }

    fn from_frame(frame: &ResponseFrame, answered_by: &str, topic: &str) -> Result<Self> {
        match frame.response()? {
            Response::Metadata { shards, nodes, topics } => {
                let t = topics
                    .into_iter()
                    .next()
                    .ok_or_else(|| ClientError::InvalidArgument(format!("no metadata for {topic:?}")))?;
                Ok(Self { topic: t, answered_by: answered_by.to_owned(), shards, nodes })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// The topic's error (`UnknownTopic`) as an error.
    pub fn check(&self) -> Result<()> {
        ClientError::check(self.topic.error, format!("topic {:?}", self.topic.name))
    }

    pub fn partition(&self, partition: u32) -> Option<&PartitionInfo> {
        self.topic.partitions.iter().find(|p| p.partition == partition)
    }

    /// The address to send `partition`'s requests to: its leader's shard when `shard_aware`,
    /// else its leader node's client address. `Ok(None)` when metadata names no address for it
    /// (an answer without nodes), and when not shard-aware in a cluster of one node: the caller
    /// uses the address it was given, which may be a proxy's. `LeaderNotAvailable` when the
    /// partition has no leader now.
    pub fn leader_addr(&self, partition: u32, shard_aware: bool) -> Result<Option<String>> {
        let Some(p) = self.partition(partition) else { return Ok(None) };
        let at = |host: &str, port| shard_address(&self.answered_by, host, port);
        let Some(rep) = &p.replication else {
            // No replication in the answer: the answering node leads everything it has.
            let shard = self.shards.iter().find(|s| s.shard == p.shard);
            return Ok(shard.filter(|_| shard_aware).map(|s| at(&s.host, s.port)));
        };
        let Some(leader) = rep.leader else {
            let m = format!("partition {partition} of {:?} has no leader now", self.topic.name);
            return Err(ClientError::Server { code: ErrorCode::LeaderNotAvailable, message: m });
        };
        if !shard_aware && self.nodes.len() <= 1 {
            return Ok(None);
        }
        let Some(node) = self.nodes.iter().find(|n| n.node_id == leader) else { return Ok(None) };
        let shard = node.shards.iter().find(|s| s.shard == rep.leader_shard);
        Ok(Some(match shard {
            Some(s) if shard_aware => at(&s.host, s.port),
            _ => at(&node.host, node.port),
        }))
    }

    /// Every node's client address, to ask for metadata when the bootstrap list does not answer.
    pub fn node_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| shard_address(&self.answered_by, &n.host, n.port)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicConfig;
    use crate::cluster::PartitionReplication;

    fn routes(nodes: usize, leader: Option<u32>) -> TopicRoutes {
        let shards = |host: &str, base: u16| {
            (0..2).map(|s| ShardAddr { shard: s, host: host.into(), port: base + 1 + s }).collect::<Vec<_>>()
        };
        let nodes: Vec<NodeInfo> = (0..nodes as u32)
            .map(|id| {
                let base = 7400 + 10 * id as u16;
                // Node 1 listens on an unspecified address: reached at the host metadata came from.
                let host = if id == 1 { "0.0.0.0" } else { "10.0.0.9" };
                NodeInfo { node_id: id, host: host.into(), port: base, shards: shards(host, base) }
            })
            .collect();
        let replication = PartitionReplication {
            leader,
            leader_shard: 1,
            leader_epoch: 3,
            replicas: vec![0, 1],
            isr: vec![0, 1],
            high_watermark: 0,
            log_end: 0,
        };
        let partition = PartitionInfo {
            partition: 0,
            shard: 1,
            log_start: 0,
            log_end: 0,
            health: None,
            replication: Some(replication),
        };
        let topic = TopicInfo {
            name: "t".into(),
            error: ErrorCode::None,
            config: TopicConfig::default(),
            partitions: vec![partition],
        };
        let shards = nodes.first().map(|n| n.shards.clone()).unwrap_or_default();
        TopicRoutes { topic, answered_by: "broker:7400".into(), shards, nodes }
    }

    #[test]
    fn a_partition_goes_to_its_leaders_shard_or_node() {
        let r = routes(2, Some(1));
        assert_eq!(r.leader_addr(0, true).unwrap().as_deref(), Some("broker:7412"));
        assert_eq!(r.leader_addr(0, false).unwrap().as_deref(), Some("broker:7410"));
        let r = routes(2, Some(0));
        assert_eq!(r.leader_addr(0, true).unwrap().as_deref(), Some("10.0.0.9:7402"));
        assert_eq!(r.node_addrs(), ["10.0.0.9:7400", "broker:7410"]);
        // One node, not shard-aware: the address the client was given (perhaps a proxy's).
        assert_eq!(routes(1, Some(0)).leader_addr(0, false).unwrap(), None);
        // A partition metadata does not list, or a leader it names no node for: no address.
        assert_eq!(routes(2, Some(0)).leader_addr(9, true).unwrap(), None);
        assert_eq!(routes(2, Some(5)).leader_addr(0, true).unwrap(), None);
    }

    #[test]
    fn a_partition_without_a_leader_is_leader_not_available() {
        match routes(2, None).leader_addr(0, true) {
            Err(ClientError::Server { code: ErrorCode::LeaderNotAvailable, message }) => {
                assert!(message.contains("no leader"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}

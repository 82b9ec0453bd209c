//! Topic administration, node counters and the cluster's status.

use super::connection::{Connection, Target};
use super::error::{ClientError, Result};
use crate::TopicConfig;
use crate::api::{Request, Response, ShardStats, TopicInfo};
use crate::cluster::{NodeStatus, UnderReplicated};

/// The answer of ClusterStatus: every node, and the partitions with fewer in-sync replicas
/// than replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeStatus>,
    pub under_replicated: Vec<UnderReplicated>,
}

/// Creates, deletes, lists and describes topics. Connects to the first address of the target's
/// bootstrap list that answers.
#[derive(Debug)]
pub struct Admin {
    pub(crate) conn: Connection,
    pub(crate) target: Target,
}

impl Admin {
    pub async fn connect(target: &Target) -> Result<Self> {
        Ok(Self { conn: Connection::connect(target).await?, target: target.clone() })
    }

    /// Creates a topic of one replica per partition.
    pub async fn create_topic(&mut self, name: &str, partitions: u32, config: TopicConfig) -> Result<()> {
        self.create_replicated_topic(name, partitions, 1, None, config).await
    }

    /// Creates a topic with `replication_factor` copies of each partition; acks=all needs
    /// `min_insync_replicas` of them in sync (`None`: the cluster's default, see
    /// [`default_min_insync_replicas`](crate::api::default_min_insync_replicas)). A
    /// `min_insync_replicas` above `replication_factor` is refused with
    /// [`ClientError::MinInsyncAboveReplication`] before anything is sent.
    pub async fn create_replicated_topic(
        &mut self,
        name: &str,
        partitions: u32,
        replication_factor: u16,
        min_insync_replicas: Option<u16>,
        config: TopicConfig,
    ) -> Result<()> {
        // Above the replication factor no acks=all write could succeed, and u16::MAX would
        // read as "none" on the wire: refused here, before anything is sent.
        if let Some(min) = min_insync_replicas
            && min > replication_factor
        {
            return Err(ClientError::MinInsyncAboveReplication {
                min_insync_replicas: min,
                replication_factor,
            });
        }
        let req = Request::CreateTopic {
            name: name.into(),
            partitions,
            config,
            replication_factor,
            min_insync_replicas,
        };
        let r = self.conn.call(&req).await?;
        match r.response()? {
            Response::CreateTopic { error, message } => ClientError::check(error, message),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn delete_topic(&mut self, name: &str) -> Result<()> {
        let r = self.conn.call(&Request::DeleteTopic { name: name.into() }).await?;
        match r.response()? {
            Response::DeleteTopic { error, message } => ClientError::check(error, message),
            other => Err(unexpected(&other)),
        }
    }

    /// Every topic with its partitions and owning shards.
    pub async fn list_topics(&mut self) -> Result<Vec<TopicInfo>> {
        let r = self.conn.call(&Request::Metadata { topics: vec![] }).await?;
        match r.response()? {
            Response::Metadata { topics, .. } => Ok(topics),
            other => Err(unexpected(&other)),
        }
    }

    /// A topic with each partition's first and next offset, health, leader, replicas and
    /// in-sync replicas.
    pub async fn describe_topic(&mut self, name: &str) -> Result<TopicInfo> {
        let r = self.conn.call(&Request::DescribeTopic { name: name.into() }).await?;
        match r.response()? {
            Response::DescribeTopic { topic } => {
                ClientError::check(topic.error, format!("topic {name:?}"))?;
                Ok(topic)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// What each shard of the node has done since it started.
    pub async fn node_stats(&mut self) -> Result<Vec<ShardStats>> {
        let r = self.conn.call(&Request::NodeStats).await?;
        match r.response()? {
            Response::NodeStats { shards } => Ok(shards),
            other => Err(unexpected(&other)),
        }
    }

    /// The cluster's nodes and under-replicated partitions.
    pub async fn cluster_status(&mut self) -> Result<ClusterStatus> {
        let r = self.conn.call(&Request::ClusterStatus).await?;
        match r.response()? {
            Response::ClusterStatus { nodes, under_replicated } => {
                Ok(ClusterStatus { nodes, under_replicated })
            }
            other => Err(unexpected(&other)),
        }
    }
}

pub(crate) fn unexpected(resp: &Response<'_>) -> ClientError {
    ClientError::InvalidArgument(format!("unexpected response {:?}", resp.api_key()))
}

//! Topic administration and node counters.

use super::connection::{Connection, Target};
use super::error::{ClientError, Result};
use crate::TopicConfig;
use crate::api::{Request, Response, ShardStats, TopicInfo};

/// Creates, deletes, lists and describes topics.
#[derive(Debug)]
pub struct Admin {
    conn: Connection,
}

impl Admin {
    pub async fn connect(target: &Target) -> Result<Self> {
        Ok(Self { conn: Connection::connect(target).await? })
    }

    pub async fn create_topic(&mut self, name: &str, partitions: u32, config: TopicConfig) -> Result<()> {
        let req = Request::CreateTopic {
            name: name.into(),
            partitions,
            config,
            replication_factor: 1,
            min_insync_replicas: None,
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

    /// A topic with each partition's first and next offset.
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
}

pub(crate) fn unexpected(resp: &Response<'_>) -> ClientError {
    ClientError::InvalidArgument(format!("unexpected response {:?}", resp.api_key()))
}

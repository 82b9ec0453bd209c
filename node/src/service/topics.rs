//! Topic changes and descriptions. Shard 0 makes every change: it checks it, saves the table
//! (so a crash leaves the old or the new one), and has every shard apply it before it answers.

use super::PartitionService;
use super::types::{Failure, PartitionStatus};
use crate::bus::{Bus, ShardReply, ShardRequest};
use crate::disk::Disk;
use crate::metadata::{PARTITIONS_MAX, TopicMeta, TopicTable, check_topic_name};
use crate::runtime::Runtime;
use weir_net::{ErrorCode, TopicConfig};
use weir_replication::ShardId;

/// Checks a topic's replication settings against this node, a cluster of one: a replication
/// factor above 1 is refused, saying so, and `min_insync_replicas` must lie in
/// `1..=replication_factor`.
pub fn check_replication(replication_factor: u16, min_insync_replicas: Option<u16>) -> Result<(), Failure> {
    let bad = |m: String| Err(Failure::new(ErrorCode::InvalidArgument, m));
    if replication_factor == 0 {
        return bad("replication factor must be at least 1".into());
    }
    if replication_factor > 1 {
        return bad(format!("replication factor {replication_factor} exceeds the 1 node of this cluster"));
    }
    match min_insync_replicas {
        Some(m) if m == 0 || m > replication_factor => bad(format!(
            "min_insync_replicas {m} must lie within 1..={replication_factor} (the replication factor)"
        )),
        _ => Ok(()),
    }
}

/// The shard that makes topic changes.
pub const TOPIC_SHARD: ShardId = ShardId(0);

/// A topic and the status of each of its partitions, in partition order.
#[derive(Debug, Clone)]
pub struct TopicDescription {
    pub meta: TopicMeta,
    pub partitions: Vec<PartitionStatus>,
}

impl<D: Disk, R: Runtime, B: Bus> PartitionService<D, R, B> {
    /// Creates a topic, all or nothing: a topic whose partitions cannot all be opened is not
    /// created, and the answer names the ones that failed and why.
    pub async fn create_topic(
        &self,
        name: String,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<(), Failure> {
        if self.core.id != TOPIC_SHARD {
            return self.on_topic_shard(ShardRequest::CreateTopic { name, partitions, config }).await;
        }
        self.refuse_in_cluster()?;
        check_topic_name(&name).map_err(|m| Failure::new(ErrorCode::InvalidArgument, m))?;
        if partitions == 0 || partitions > PARTITIONS_MAX {
            let m = format!("partitions must be within 1..={PARTITIONS_MAX}");
            return Err(Failure::new(ErrorCode::InvalidArgument, m));
        }
        let _change = self.topic_changes.lock().await;
        let before = self.core.topics.borrow().clone();
        if before.topics.contains_key(&name) {
            return Err(Failure::new(ErrorCode::TopicAlreadyExists, format!("topic {name:?} exists")));
        }
        let defaults = &self.core.config;
        let meta = TopicMeta {
            replicas: crate::placement::place(&name, partitions, self.core.shards()),
            name: name.clone(),
            partitions,
            retention_ms: config.retention_ms.or(defaults.retention_ms),
            retention_bytes: config.retention_bytes.or(defaults.retention_bytes),
            cleanup_policy: config.cleanup_policy,
            delete_retention_ms: Some(config.delete_retention_ms.unwrap_or(defaults.delete_retention_ms)),
        };
        let mut table = before.clone();
        table.topics.insert(name.clone(), meta);
        self.commit(before, table, format!("create topic {name:?}")).await
    }

    /// Grows topic `name` to `count` partitions, all or nothing, as Kafka's CreatePartitions:
    /// the new partitions are placed by the default policy, the old ones stay where they are.
    /// With `validate_only`, checks the change and makes none.
    pub async fn add_partitions(&self, name: String, count: u32, validate_only: bool) -> Result<(), Failure> {
        if self.core.id != TOPIC_SHARD {
            let req = ShardRequest::AddPartitions { name, count, validate_only };
            return self.on_topic_shard(req).await;
        }
        self.refuse_in_cluster()?;
        if name == crate::groups::offsets_topic::OFFSETS_TOPIC {
            // Groups are placed by the hash of their id over its partitions: more would move them.
            let m = format!("{name} is internal: its partition count places the consumer groups");
            return Err(Failure::new(ErrorCode::InvalidArgument, m));
        }
        let _change = self.topic_changes.lock().await;
        let before = self.core.topics.borrow().clone();
        let Some(meta) = before.topics.get(&name) else {
            return Err(Failure::new(ErrorCode::UnknownTopic, format!("no topic {name:?}")));
        };
        if count <= meta.partitions || count > PARTITIONS_MAX {
            let m = format!(
                "{name:?} has {} partitions: a new count must lie within {}..={PARTITIONS_MAX}",
                meta.partitions,
                meta.partitions + 1
            );
            return Err(Failure::new(ErrorCode::InvalidArgument, m));
        }
        if validate_only {
            return Ok(());
        }
        let mut meta = meta.clone();
        let placed = crate::placement::place(&name, count, self.core.shards());
        meta.replicas.extend(placed.into_iter().skip(meta.partitions as usize));
        meta.partitions = count;
        let mut table = before.clone();
        table.topics.insert(name.clone(), meta);
        self.commit(before, table, format!("add partitions to {name:?}")).await
    }

    /// Saves `table` and has every shard apply it; if a shard cannot open what it adds, goes
    /// back to `before` (which deletes what was opened; should that fail too, the offline
    /// partitions say why) and fails with what went wrong.
    async fn commit(&self, before: TopicTable, table: TopicTable, what: String) -> Result<(), Failure> {
        self.save(&table).await?;
        let failures = self.apply_everywhere(table).await;
        if failures.is_empty() {
            return Ok(());
        }
        let message = format!("cannot {what}: {}", failures.join("; "));
        match self.save(&before).await {
            Ok(()) => {
                self.apply_everywhere(before).await;
            }
            Err(e) => tracing::error!(error = %e.message, "cannot undo a failed change: {what}"),
        }
        Err(Failure::new(ErrorCode::StorageError, message))
    }

    /// In a cluster, topics are created and deleted through the control plane, which places
    /// their replicas; this node's own table is the cluster metadata's.
    fn refuse_in_cluster(&self) -> Result<(), Failure> {
        if self.core.clustered() {
            let why =
                "this node is part of a cluster: topics are created and deleted through its control plane";
            return Err(Failure::new(ErrorCode::InvalidArgument, why));
        }
        Ok(())
    }

    pub async fn delete_topic(&self, name: String) -> Result<(), Failure> {
        if self.core.id != TOPIC_SHARD {
            return self.on_topic_shard(ShardRequest::DeleteTopic { name }).await;
        }
        self.refuse_in_cluster()?;
        let _change = self.topic_changes.lock().await;
        let mut table = self.core.topics.borrow().clone();
        if table.topics.remove(&name).is_none() {
            return Err(Failure::new(ErrorCode::UnknownTopic, format!("no topic {name:?}")));
        }
        self.save(&table).await?;
        self.apply_everywhere(table).await;
        Ok(())
    }

    async fn on_topic_shard(&self, req: ShardRequest) -> Result<(), Failure> {
        match self.bus.call(TOPIC_SHARD, req).await {
            Ok(ShardReply::TopicChanged(r)) => r,
            Ok(other) => Err(super::wrong(TOPIC_SHARD, "TopicChanged", &other)),
            Err(e) => Err(super::unavailable(e)),
        }
    }

    async fn save(&self, table: &TopicTable) -> Result<(), Failure> {
        self.core
            .disk
            .save_topics(table)
            .await
            .map_err(|e| Failure::new(ErrorCode::StorageError, format!("cannot save topics: {e}")))
    }

    /// Applies a new topic table on every shard, this one last, and waits until all have.
    /// Returns the partitions that could not be opened (a shard that is gone: all of its own).
    async fn apply_everywhere(&self, table: TopicTable) -> Vec<String> {
        let others: Vec<ShardId> =
            (0..self.core.shards()).map(|s| ShardId(s as u16)).filter(|&s| s != self.core.id).collect();
        let calls = others.iter().map(|&s| self.bus.call(s, ShardRequest::ApplyTopics(table.clone())));
        let mut failures = Vec::new();
        for (reply, s) in futures::future::join_all(calls).await.into_iter().zip(others) {
            match reply {
                Ok(ShardReply::TopicsApplied(f)) => failures.extend(f),
                _ => failures.push(format!("shard {} is not running", s.0)),
            }
        }
        failures.extend(self.core.apply_topics(table).await);
        failures
    }

    /// The topic and the status of its partitions (bounds, online or offline, damaged ranges),
    /// asked of their owners (one call per owner). A partition whose owner does not answer is
    /// offline, for that reason.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, Failure> {
        let meta = self.core.topics.borrow().topics.get(name).cloned();
        let meta = meta.ok_or_else(|| Failure::new(ErrorCode::UnknownTopic, format!("no topic {name:?}")))?;
        let partitions: Vec<u32> = (0..meta.partitions).collect();
        let groups = self.group(partitions, |&p| self.owner(name, p));
        let calls = groups.into_iter().map(|(to, idx, parts)| async move {
            let n = parts.len();
            let status = if to == self.core.id {
                self.core.describe_local(name, &parts).await
            } else {
                match self
                    .bus
                    .call(to, ShardRequest::Describe { topic: name.to_owned(), partitions: parts })
                    .await
                {
                    Ok(ShardReply::Described(s)) => s,
                    Ok(other) => {
                        let f = super::wrong(to, "Described", &other);
                        vec![PartitionStatus::offline(f.message, None); n]
                    }
                    Err(e) => {
                        vec![PartitionStatus::offline(format!("shard {} did not answer: {e}", to.0), None); n]
                    }
                }
            };
            (idx, status)
        });
        let partitions = Self::ungroup(futures::future::join_all(calls).await);
        Ok(TopicDescription { meta, partitions })
    }
}

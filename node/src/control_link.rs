//! What a node's shards need from the control plane: the applied cluster metadata and a way to
//! propose ISR changes. The control plane (crate `weir-cluster`, openraft on a thread of its own)
//! implements [`ControlLink`]; a node without peers has none and makes each partition a
//! one-replica assignment itself (see `crate::replicas`).
//!
//! `Send + Sync`: one link serves every shard of the node; each shard clones its own watch
//! receiver and calls `alter_partition` from its own thread. The futures it returns are `Send`
//! and are polled on the shard's glommio executor, so they must not need a tokio runtime
//! context to make progress (a oneshot answered by the control plane's thread does not).

use futures::future::BoxFuture;
use std::sync::Arc;
use weir_cluster::acl::{AclBinding, AclFilter, Matched};
use weir_cluster::{ClusterMeta, ClusterStatus, ControlError, CreateTopic};
use weir_replication::{AlterPartition, ControllerError, NodeId, PartitionState};

/// Why an ISR change got no answer from the controller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlterError {
    /// The controller refused the proposal; nothing changed. The replica is told.
    #[error("refused by the controller: {0}")]
    Refused(ControllerError),
    /// No controller answered (none elected, a network fault, shutdown). The replica is not
    /// told: it proposes again after `alter_timeout_ms`.
    #[error("controller unavailable: {reason}")]
    Unavailable { reason: String },
}

/// The control plane as the shards see it. See the module documentation.
///
/// Contract of [`meta`](Self::meta): only the newest value matters (a shard diffs it against what
/// it applied last). The link publishes a metadata value only once the controller has answered
/// a heartbeat of this node's current [`incarnation`](Self::incarnation), and only metadata
/// applied after that answer: a partition state from before the controller knew of this start
/// may name this node leader of an epoch its previous life led, and two lives must never lead one
/// epoch (the controller re-elects a restarted leader with a new epoch when it hears the new
/// incarnation).
pub trait ControlLink: Send + Sync + std::fmt::Debug + 'static {
    /// This node's id in the cluster.
    fn node_id(&self) -> NodeId;
    /// This node's incarnation: fresh at every start of the process, the value its heartbeats
    /// carry.
    fn incarnation(&self) -> u64;
    /// This node's certificate under the cluster CA (see "Trust" in `docs/cluster.md`): shown
    /// to followers on the shards' ports, presented to leaders when fetching. `None` (a link
    /// without one) leaves replication without a way to prove who a follower is: leaders then
    /// refuse its fetches.
    fn identity(&self) -> Option<weir_cluster::tls::NodeTls> {
        None
    }
    /// The applied cluster metadata.
    fn meta(&self) -> tokio_rt::sync::watch::Receiver<Arc<ClusterMeta>>;
    /// Proposes an ISR change to the controller; resolves with the partition's new state once it
    /// is committed, or why not.
    fn alter_partition(&self, req: AlterPartition) -> BoxFuture<'static, Result<PartitionState, AlterError>>;
    /// Creates a topic through the controller; resolves once it is committed. A link that
    /// cannot (a test's) says so.
    fn create_topic(&self, _topic: CreateTopic) -> BoxFuture<'static, Result<(), ControlError>> {
        Box::pin(async { Err(no_admin()) })
    }
    /// Deletes a topic through the controller; resolves once it is committed.
    fn delete_topic(&self, _name: String) -> BoxFuture<'static, Result<(), ControlError>> {
        Box::pin(async { Err(no_admin()) })
    }
    /// The cluster's nodes as the controller sees them.
    fn status(&self) -> BoxFuture<'static, Result<ClusterStatus, ControlError>> {
        Box::pin(async { Err(no_admin()) })
    }
    /// A block of `count` producer ids, committed as handed out to this node.
    fn allocate_producer_ids(
        &self,
        _count: u32,
    ) -> BoxFuture<'static, Result<std::ops::Range<i64>, ControlError>> {
        Box::pin(async { Err(no_admin()) })
    }
    /// Adds access control bindings through the controller; resolves once committed.
    fn create_acls(&self, _bindings: Vec<AclBinding>) -> BoxFuture<'static, Result<(), ControlError>> {
        Box::pin(async { Err(no_admin()) })
    }
    /// Removes the bindings the filters select, through the controller; resolves with them,
    /// filter by filter, once committed.
    fn delete_acls(&self, _filters: Vec<AclFilter>) -> BoxFuture<'static, Result<Matched, ControlError>> {
        Box::pin(async { Err(no_admin()) })
    }
}

fn no_admin() -> ControlError {
    ControlError::Unavailable { reason: "this control link takes no topic changes".into() }
}

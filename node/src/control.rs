//! Starting the node's control plane (`weir-cluster`) from its configuration, when the node is
//! in a cluster (`peers` set). The control plane runs on its own thread; the shards reach it
//! through the [`ControlHandle`] it returns.

use crate::config::NodeConfig;
use crate::control_link::{AlterError, ControlLink};
use futures::future::BoxFuture;
use std::sync::Arc;
use tokio_rt::sync::watch;
use weir_cluster::{
    ClusterMeta, ClusterStatus, ControlConfig, ControlError, ControlHandle, CreateTopic, NodeInfo,
};
use weir_replication::{AlterPartition, NodeId, PartitionState};

/// Why the control plane did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlStartError {
    #[error("cannot read the cluster CA file {path}: {source}")]
    CaFile { path: String, source: std::io::Error },
    #[error("{0}")]
    Control(#[from] ControlError),
}

/// The control plane's settings for this node: its peers, the CA, and what it registers (its
/// advertised host, client port and shard ports).
pub fn control_config(config: &NodeConfig) -> Result<Option<ControlConfig>, ControlStartError> {
    let Some(peers) = config.cluster_peers() else { return Ok(None) };
    let id = NodeId(config.node_id.expect("checked with peers"));
    let read = |path: &Option<std::path::PathBuf>| {
        let path = path.as_ref().expect("checked with peers");
        std::fs::read_to_string(path)
            .map_err(|source| ControlStartError::CaFile { path: path.display().to_string(), source })
    };
    let (ca_cert, ca_key) = (read(&config.cluster_ca_cert)?, read(&config.cluster_ca_key)?);
    let cluster_addr =
        peers.iter().find(|p| p.id == id.0).expect("checked: self among peers").cluster_addr.clone();
    let self_info = NodeInfo {
        id,
        cluster_addr,
        host: config.advertised_host(),
        port: config.listen.port(),
        shard_ports: (0..config.shards).map(|s| config.shard_port(s)).collect(),
        kafka: config.kafka_advertised(),
    };
    let peers = peers.into_iter().map(|p| (NodeId(p.id), p.cluster_addr)).collect();
    let mut control = ControlConfig::new(id, peers, config.data_dir.clone(), ca_cert, ca_key, self_info);
    control.set_timing(config.heartbeat_interval_ms, config.session_timeout_ms);
    control.listen = config.cluster_listen;
    Ok(Some(control))
}

/// Starts the control plane if the node is in a cluster.
pub fn start(config: &NodeConfig) -> Result<Option<ControlHandle>, ControlStartError> {
    match control_config(config)? {
        Some(control) => Ok(Some(weir_cluster::start(control)?)),
        None => Ok(None),
    }
}

/// The control plane as the shards see it ([`ControlLink`]): a [`ControlHandle`], with the
/// metadata held back until the controller has acted on this start (see [`ControlLink::meta`]):
/// a gate passes a metadata value only once it records this node's current incarnation
/// (`MetaCommand::NodeStarted`), which the controller commits after the changes that start
/// caused. The gate runs on a thread of its own, ending with the control plane.
#[derive(Debug)]
pub struct ClusterLink {
    handle: ControlHandle,
    gated: watch::Receiver<Arc<ClusterMeta>>,
    identity: weir_cluster::tls::NodeTls,
}

impl ClusterLink {
    /// `identity` is the node certificate the control plane issued at this start.
    pub fn new(handle: ControlHandle, identity: weir_cluster::tls::NodeTls) -> std::io::Result<Arc<Self>> {
        let (tx, gated) = watch::channel(Arc::new(ClusterMeta::default()));
        let mut source = handle.meta();
        let (node, incarnation) = (handle.node_id(), handle.incarnation());
        std::thread::Builder::new().name("weir-meta-gate".into()).spawn(move || {
            futures::executor::block_on(async move {
                loop {
                    let meta = source.borrow_and_update().clone();
                    if meta.incarnations.get(&node) == Some(&incarnation) {
                        tx.send_replace(meta);
                    }
                    if source.changed().await.is_err() {
                        return;
                    }
                }
            })
        })?;
        Ok(Arc::new(Self { handle, gated, identity }))
    }
}

impl ControlLink for ClusterLink {
    fn node_id(&self) -> NodeId {
        self.handle.node_id()
    }

    fn incarnation(&self) -> u64 {
        self.handle.incarnation()
    }

    fn identity(&self) -> Option<weir_cluster::tls::NodeTls> {
        Some(self.identity.clone())
    }

    fn meta(&self) -> watch::Receiver<Arc<ClusterMeta>> {
        self.gated.clone()
    }

    fn alter_partition(&self, req: AlterPartition) -> BoxFuture<'static, Result<PartitionState, AlterError>> {
        let handle = self.handle.clone();
        Box::pin(async move {
            handle.alter_partition(req).await.map_err(|e| match e {
                ControlError::Controller(e) => AlterError::Refused(e),
                e => AlterError::Unavailable { reason: e.to_string() },
            })
        })
    }

    fn create_topic(&self, topic: CreateTopic) -> BoxFuture<'static, Result<(), ControlError>> {
        let handle = self.handle.clone();
        Box::pin(async move { handle.create_topic(topic).await })
    }

    fn delete_topic(&self, name: String) -> BoxFuture<'static, Result<(), ControlError>> {
        let handle = self.handle.clone();
        Box::pin(async move { handle.delete_topic(&name).await })
    }

    fn status(&self) -> BoxFuture<'static, Result<ClusterStatus, ControlError>> {
        let handle = self.handle.clone();
        Box::pin(async move { handle.status().await })
    }

    fn allocate_producer_ids(
        &self,
        count: u32,
    ) -> BoxFuture<'static, Result<std::ops::Range<i64>, ControlError>> {
        let handle = self.handle.clone();
        Box::pin(async move { handle.allocate_producer_ids(count).await })
    }

    fn create_acls(
        &self,
        bindings: Vec<weir_cluster::acl::AclBinding>,
    ) -> BoxFuture<'static, Result<(), ControlError>> {
        let handle = self.handle.clone();
        Box::pin(async move { handle.create_acls(bindings).await })
    }

    fn delete_acls(
        &self,
        filters: Vec<weir_cluster::acl::AclFilter>,
    ) -> BoxFuture<'static, Result<weir_cluster::acl::Matched, ControlError>> {
        let handle = self.handle.clone();
        Box::pin(async move { handle.delete_acls(filters).await })
    }
}

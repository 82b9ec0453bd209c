//! Starting the node's control plane (`weir-cluster`) from its configuration, when the node is
//! in a cluster (`peers` set). The control plane runs on its own thread; the shards reach it
//! through the [`ControlHandle`] it returns.

use crate::config::NodeConfig;
use weir_cluster::{ControlConfig, ControlError, ControlHandle, NodeInfo};
use weir_replication::NodeId;

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
    };
    let peers = peers.into_iter().map(|p| (NodeId(p.id), p.cluster_addr)).collect();
    let mut control = ControlConfig::new(id, peers, config.data_dir.clone(), ca_cert, ca_key, self_info);
    control.heartbeat_interval_ms = config.heartbeat_interval_ms;
    control.session_timeout_ms = config.session_timeout_ms;
    Ok(Some(control))
}

/// Starts the control plane if the node is in a cluster.
pub fn start(config: &NodeConfig) -> Result<Option<ControlHandle>, ControlStartError> {
    match control_config(config)? {
        Some(control) => Ok(Some(weir_cluster::start(control)?)),
        None => Ok(None),
    }
}

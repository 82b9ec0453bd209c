//! A cluster of real `weir serve` processes for integration tests: node `i` on 127.0.0.`i`, every
//! node on the same ports (the whole of 127.0.0.0/8 is loopback), one cluster CA made here.
//!
//! A relayed cluster puts a [`Relay`] in front of every node: node `i` runs on 127.0.0.`100+i`
//! and advertises 127.0.0.`i`, where the relay forwards its UDP ports (client, shards, control
//! plane), so that a test can cut a node off while it runs. Its clients use QUIC: the relay
//! forwards no TCP.

use super::relay::Relay;
use super::{Node, free_ports, serve_command_on};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// See the module documentation. Nodes are killed (SIGKILL) on drop.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    /// The client port of every node; shard `s` listens on `port + 1 + s`.
    pub port: u16,
    /// The control plane's UDP port of every node.
    pub cluster_port: u16,
    pub shards: usize,
    pub ids: Vec<u32>,
    pub nodes: BTreeMap<u32, Node>,
    ca: (PathBuf, PathBuf),
    /// Extra `WEIR_*` settings of every node.
    pub env: Vec<(String, String)>,
    /// The Kafka listener's port of every node, at its own host; `None`: off.
    pub kafka_port: Option<u16>,
    /// In front of every node, in a relayed cluster.
    pub relay: Option<Relay>,
}

impl TestCluster {
    /// Starts nodes `1..=count` with `shards` shards each and extra settings `env`.
    pub fn start(count: u32, shards: usize, env: &[(&str, &str)]) -> Self {
        Self::start_with(count, shards, env, false)
    }

    /// As [`start`](Self::start), each node behind the relay (see the module documentation).
    pub fn start_relayed(count: u32, shards: usize, env: &[(&str, &str)]) -> Self {
        Self::start_with(count, shards, env, true)
    }

    fn start_with(count: u32, shards: usize, env: &[(&str, &str)], relayed: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = weir_cluster::tls::generate_ca().unwrap();
        let ca = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        std::fs::write(&ca.0, cert).unwrap();
        std::fs::write(&ca.1, key).unwrap();
        let port = free_ports(shards + 2);
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let ids = (1..=count).collect();
        let mut cluster = Self {
            dir,
            port,
            cluster_port: port + shards as u16 + 1,
            shards,
            ids,
            nodes: BTreeMap::new(),
            ca,
            env,
            kafka_port: None,
            relay: relayed.then(Relay::new),
        };
        if let Some(relay) = &cluster.relay {
            let ports = (0..=shards as u16).map(|i| port + i).chain([cluster.cluster_port]);
            for p in ports {
                for id in 1..=count {
                    let at = |host: String| format!("{host}:{p}").parse().unwrap();
                    relay.forward(at(Self::host(id)), at(cluster.own_host(id)));
                }
            }
        }
        for id in 1..=count {
            cluster.start_node(id);
        }
        cluster
    }

    /// Nodes `1..=count` as [`start`](Self::start) starts them, each with its Kafka listener
    /// on the same port at its own host.
    pub fn start_with_kafka(count: u32, shards: usize, env: &[(&str, &str)]) -> Self {
        let mut cluster = Self::start_with(0, shards, env, false);
        cluster.ids = (1..=count).collect();
        // Not one of the ports the nodes take already (the node would refuse to start).
        let taken = cluster.port..=cluster.cluster_port;
        cluster.kafka_port =
            Some(std::iter::repeat_with(|| free_ports(1)).find(|p| !taken.contains(p)).unwrap());
        for id in 1..=count {
            cluster.start_node(id);
        }
        cluster
    }

    /// The Kafka listeners of every node, as a bootstrap list.
    pub fn kafka_bootstrap(&self) -> String {
        let port = self.kafka_port.expect("a cluster with Kafka listeners");
        let addrs = self.ids.iter().map(|id| format!("{}:{port}", Self::host(*id)));
        addrs.collect::<Vec<_>>().join(",")
    }

    pub fn host(id: u32) -> String {
        format!("127.0.0.{id}")
    }

    /// Where node `id` runs: its advertised host, or behind a relay its own.
    pub fn own_host(&self, id: u32) -> String {
        match self.relay {
            Some(_) => format!("127.0.0.{}", 100 + id),
            None => Self::host(id),
        }
    }

    pub fn data_dir(&self, id: u32) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    fn peers(&self) -> String {
        let peers = self.ids.iter().map(|id| format!("{id}@{}:{}", Self::host(*id), self.cluster_port));
        peers.collect::<Vec<_>>().join(",")
    }

    /// Starts (or restarts) node `id` on its data dir; returns once it listens.
    pub fn start_node(&mut self, id: u32) {
        assert!(!self.nodes.contains_key(&id), "node {id} runs already");
        let mut env = self.env.clone();
        env.extend([
            ("WEIR_NODE_ID".to_owned(), id.to_string()),
            ("WEIR_PEERS".to_owned(), self.peers()),
            ("WEIR_CLUSTER_CA_CERT".to_owned(), self.ca.0.display().to_string()),
            ("WEIR_CLUSTER_CA_KEY".to_owned(), self.ca.1.display().to_string()),
        ]);
        let own = self.own_host(id);
        if let Some(port) = self.kafka_port {
            env.push(("WEIR_KAFKA_LISTEN".to_owned(), format!("{own}:{port}")));
        }
        if self.relay.is_some() {
            env.push(("WEIR_ADVERTISED_HOST".to_owned(), Self::host(id)));
            env.push(("WEIR_CLUSTER_LISTEN".to_owned(), format!("{own}:{}", self.cluster_port)));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let command = serve_command_on(&own, &self.data_dir(id), self.shards, self.port, &env);
        let node = Node::spawn(command, &own, &self.data_dir(id), self.shards, self.port);
        self.nodes.insert(id, node);
    }

    /// SIGKILL of node `id`.
    pub fn kill(&mut self, id: u32) {
        self.nodes.remove(&id).expect("node runs").kill();
    }

    /// The client addresses of the running nodes, as a bootstrap list.
    pub fn bootstrap(&self) -> String {
        let addrs = self.ids.iter().map(|id| format!("{}:{}", Self::host(*id), self.port));
        addrs.collect::<Vec<_>>().join(",")
    }

    /// The `weir` binary as a client of node `id` alone, over TCP.
    pub fn cli_of(&self, id: u32) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
        c.args(["--server", &format!("{}:{}", Self::host(id), self.port), "--transport", "tcp"]);
        c
    }

    /// The `weir` binary as a client of the cluster over TCP, bootstrapping from every node.
    pub fn cli(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
        c.args(["--server", &self.bootstrap(), "--transport", "tcp"]);
        c
    }
}

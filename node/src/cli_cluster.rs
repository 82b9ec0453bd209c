//! What `weir cluster status` prints: every node (address, up or down, whether it is the
//! controller, voter or learner) and the under-replicated partitions, as a table or as JSON of
//! stable keys.

use crate::cli_units::node_list;
use weir_net::NodeRole;
use weir_net::client::ClusterStatus;

fn role(r: NodeRole) -> &'static str {
    match r {
        NodeRole::Voter => "voter",
        NodeRole::Learner => "learner",
    }
}

/// The table as `weir cluster status` prints it.
pub fn table(s: &ClusterStatus) -> String {
    let mut out = format!("{:>7} {:<30} {:<5} {:<10} {}\n", "NODE", "ADDRESS", "STATE", "CONTROLLER", "ROLE");
    for n in &s.nodes {
        out.push_str(&format!(
            "{:>7} {:<30} {:<5} {:<10} {}\n",
            n.node_id,
            format!("{}:{}", n.host, n.port),
            if n.up { "up" } else { "down" },
            if n.controller { "yes" } else { "no" },
            role(n.role),
        ));
    }
    out.push_str(&format!("under-replicated partitions: {}\n", s.under_replicated.len()));
    if !s.under_replicated.is_empty() {
        out.push_str(&format!("{:<40} {:>9} {:>12} {:>12}\n", "TOPIC", "PARTITION", "REPLICAS", "ISR"));
        for u in &s.under_replicated {
            out.push_str(&format!(
                "{:<40} {:>9} {:>12} {:>12}\n",
                u.topic,
                u.partition,
                node_list(&u.replicas),
                node_list(&u.isr)
            ));
        }
    }
    out
}

pub fn json(s: &ClusterStatus) -> serde_json::Value {
    let nodes: Vec<_> = s
        .nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "node_id": n.node_id,
                "host": n.host,
                "port": n.port,
                "up": n.up,
                "controller": n.controller,
                "role": role(n.role),
            })
        })
        .collect();
    let under: Vec<_> = s
        .under_replicated
        .iter()
        .map(|u| {
            serde_json::json!({
                "topic": u.topic,
                "partition": u.partition,
                "replicas": u.replicas,
                "isr": u.isr,
            })
        })
        .collect();
    serde_json::json!({
        "nodes": nodes,
        "under_replicated_count": under.len(),
        "under_replicated": under,
    })
}

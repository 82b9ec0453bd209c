//! Where partitions live: a table from partition to replicas, stored with each topic.
//!
//! Placement is data, not a function every site recomputes: a topic's table is computed once, by
//! the default policy, when the topic is created, then saved in `topics.json` and read by every
//! site that routes a request. A controller will later write these tables; nothing else changes.

use weir_replication::{NodeId, ReplicaAddr, ShardId};

/// The node a single-node deployment runs as, until the cluster assigns ids.
pub const LOCAL_NODE: NodeId = NodeId(0);

/// The default policy: one replica on this node, on the shard a stable hash of topic name and
/// partition picks (CRC32C modulo the shard count), so partitions spread over the shards.
pub fn hash_shard(topic: &str, partition: u32, shards: usize) -> ShardId {
    let crc = crc32c::crc32c_append(crc32c::crc32c(topic.as_bytes()), &partition.to_le_bytes());
    ShardId((crc as usize % shards) as u16)
}

/// The default policy's table for a topic of `partitions` partitions.
pub fn place(topic: &str, partitions: u32, shards: usize) -> Vec<Vec<ReplicaAddr>> {
    (0..partitions)
        .map(|p| vec![ReplicaAddr { node: LOCAL_NODE, shard: hash_shard(topic, p, shards) }])
        .collect()
}

/// Makes a loaded table fit this node: partitions with no replicas, or whose local replica names
/// a shard this node does not have (it was started with fewer shards), are placed again by the
/// default policy. Returns how many were moved.
pub fn fit(topic: &str, table: &mut Vec<Vec<ReplicaAddr>>, partitions: u32, shards: usize) -> usize {
    table.resize(partitions as usize, Vec::new());
    let mut moved = 0;
    for (p, replicas) in table.iter_mut().enumerate() {
        let fits =
            !replicas.is_empty() && replicas.iter().all(|r| r.node != LOCAL_NODE || r.shard.index() < shards);
        if !fits {
            *replicas = vec![ReplicaAddr { node: LOCAL_NODE, shard: hash_shard(topic, p as u32, shards) }];
            moved += 1;
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_the_stable_hash() {
        // The hash decides where existing data lives: it must never change.
        let placed = place("orders", 4, 2);
        let shards: Vec<u16> = placed.iter().map(|r| r[0].shard.0).collect();
        let expected: Vec<u16> = (0..4).map(|p| hash_shard("orders", p, 2).0).collect();
        assert_eq!(shards, expected);
        assert!(placed.iter().all(|r| r.len() == 1 && r[0].node == LOCAL_NODE));
    }

    #[test]
    fn fit_keeps_what_fits_and_replaces_the_rest() {
        let mut table = place("t", 3, 4);
        table[0] = vec![ReplicaAddr { node: LOCAL_NODE, shard: ShardId(1) }];
        table[1] = vec![ReplicaAddr { node: LOCAL_NODE, shard: ShardId(7) }];
        table.truncate(2);
        assert_eq!(fit("t", &mut table, 3, 4), 2);
        assert_eq!(table[0][0].shard, ShardId(1), "a stored placement is data, kept as it is");
        assert_eq!(table[1][0].shard, hash_shard("t", 1, 4));
        assert_eq!(table[2][0].shard, hash_shard("t", 2, 4));
    }
}

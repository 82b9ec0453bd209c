//! Where a new topic's replicas go: a pure function of the registered nodes.
//!
//! Partition `i`'s replicas are `rf` consecutive nodes starting at node `start + i` (in id
//! order, wrapping), so the first replica, the preferred leader, rotates over the nodes and
//! leaders are balanced; each node spreads the replicas it receives over its shards in turn.

use weir_replication::{NodeId, ReplicaAddr, ShardId};

/// The replicas of `partitions` partitions with `replication_factor` replicas each, over
/// `nodes` (id and shard count, at least one shard each, ids distinct). `start` offsets the
/// rotation (and the shards), so that successive topics do not all start on the same node.
/// Panics if `replication_factor` is 0 or above the node count (the caller refuses those).
pub fn place(
    nodes: &[(NodeId, u16)],
    partitions: u32,
    replication_factor: u16,
    start: usize,
) -> Vec<Vec<ReplicaAddr>> {
    let rf = usize::from(replication_factor);
    assert!(rf >= 1 && rf <= nodes.len(), "replication factor {rf} over {} nodes", nodes.len());
    let mut nodes = nodes.to_vec();
    nodes.sort();
    // Replicas placed on each node so far, to pick its next shard.
    let mut placed = vec![start; nodes.len()];
    (0..partitions as usize)
        .map(|i| {
            (0..rf)
                .map(|j| {
                    let at = (start + i + j) % nodes.len();
                    let (node, shards) = nodes[at];
                    let shard = (placed[at] % usize::from(shards.max(1))) as u16;
                    placed[at] += 1;
                    ReplicaAddr { node, shard: ShardId(shard) }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn leaders_rotate_over_nodes_and_replicas_spread_over_shards() {
        let nodes = [(NodeId(3), 2), (NodeId(1), 2), (NodeId(2), 2)];
        let placement = place(&nodes, 6, 3, 0);
        let mut leaders = BTreeMap::<NodeId, usize>::new();
        let mut shards = BTreeMap::<(NodeId, ShardId), usize>::new();
        for replicas in &placement {
            assert_eq!(replicas.len(), 3);
            let distinct =
                replicas.iter().enumerate().all(|(i, r)| replicas[..i].iter().all(|o| o.node != r.node));
            assert!(distinct, "a node holds one replica of a partition: {replicas:?}");
            *leaders.entry(replicas[0].node).or_default() += 1;
            for r in replicas {
                *shards.entry((r.node, r.shard)).or_default() += 1;
            }
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2], "{placement:?}");
        assert_eq!(shards.len(), 6, "every shard of every node is used: {shards:?}");
        assert!(shards.values().all(|&n| n == 3), "{shards:?}");
        assert_eq!(placement[0][0].node, NodeId(1), "node order is by id");
    }

    #[test]
    fn start_offsets_the_first_leader_and_fewer_replicas_than_nodes_spread_too() {
        let nodes = [(NodeId(1), 1), (NodeId(2), 1), (NodeId(3), 1), (NodeId(4), 1)];
        let placement = place(&nodes, 4, 2, 1);
        let firsts: Vec<u32> = placement.iter().map(|r| r[0].node.0).collect();
        assert_eq!(firsts, vec![2, 3, 4, 1]);
        assert_eq!(placement[3].iter().map(|r| r.node.0).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    #[should_panic(expected = "replication factor")]
    fn a_replication_factor_above_the_node_count_is_a_caller_bug() {
        place(&[(NodeId(1), 1)], 1, 2, 0);
    }
}

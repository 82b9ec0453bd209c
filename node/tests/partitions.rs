//! Partitions that cannot be opened, or whose log failed: the node says why, never spins a
//! client on a wrong owner, and serves them again by itself once the cause is gone.

mod common;

use common::{Node, Via, batch_of, produce_raw, runtime};
use weir_net::client::{Admin, ClientError, Target};
use weir_net::{ErrorCode, PartitionState, TopicConfig};

/// Produces one small batch; the answer's error code and message.
async fn produce(target: &Target, topic: &str, partition: u32) -> (ErrorCode, String) {
    produce_raw(target, topic, partition, &batch_of(&[b"r0", b"r1", b"r2"])).await
}

/// A regular file where a partition's directory belongs: opening that partition fails.
fn block(dir: &std::path::Path, topic: &str, partition: u32) -> std::path::PathBuf {
    let path = dir.join("partitions").join(format!("{topic}-{partition}"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"not a directory").unwrap();
    path
}

#[test]
fn a_topic_whose_partition_cannot_open_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let target = node.target(Via::Tcp);
    let blocker = block(dir.path(), "blocked", 1);
    runtime().block_on(async {
        let mut admin = Admin::connect(&target).await.unwrap();
        match admin.create_topic("blocked", 3, TopicConfig::default()).await {
            Err(ClientError::Server { code: ErrorCode::StorageError, message }) => {
                assert!(message.contains("blocked/1"), "the failure names the partition: {message}")
            }
            other => panic!("expected a storage error, got {other:?}"),
        }
        // All or nothing: no half-made topic whose partition answers "not owner" forever.
        match admin.describe_topic("blocked").await {
            Err(ClientError::Server { code: ErrorCode::UnknownTopic, .. }) => {}
            other => panic!("the topic must not exist, got {other:?}"),
        }
        assert!(!dir.path().join("partitions/blocked-0").exists(), "opened partitions were removed");
        std::fs::remove_file(&blocker).unwrap();
        admin.create_topic("blocked", 3, TopicConfig::default()).await.unwrap();
        for p in 0..3 {
            assert_eq!(produce(&target, "blocked", p).await.0, ErrorCode::None);
        }
    });
}

#[test]
fn an_offline_partition_says_why_and_comes_back_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let target = node.target(Via::Tcp);
    runtime().block_on(async {
        Admin::connect(&target).await.unwrap().create_topic("t", 2, TopicConfig::default()).await.unwrap();
        assert_eq!(produce(&target, "t", 0).await.0, ErrorCode::None);
    });
    let (_, port) = node.stop();
    let real = dir.path().join("partitions/t-0");
    let aside = dir.path().join("t-0.aside");
    std::fs::rename(&real, &aside).unwrap();
    block(dir.path(), "t", 0);
    let node = Node::start_on(dir.path(), 2, port);
    let target = node.target(Via::Tcp);
    runtime().block_on(async {
        let (code, message) = produce(&target, "t", 0).await;
        assert_eq!(code, ErrorCode::StorageError, "{message}");
        assert!(message.contains("offline"), "{message}");
        assert_eq!(produce(&target, "t", 1).await.0, ErrorCode::None, "the other partition serves");
        // Describe says so too, with the cause and when the next attempt is.
        let info = Admin::connect(&target).await.unwrap().describe_topic("t").await.unwrap();
        let health = |p: usize| info.partitions[p].health.clone().expect("describe carries health");
        match health(0).state {
            PartitionState::Offline { cause, retry_in_ms } => {
                assert!(cause.contains("cannot open"), "{cause}");
                assert!(retry_in_ms.is_some_and(|ms| ms <= 60_000), "{retry_in_ms:?}");
            }
            other => panic!("partition 0 is offline, describe says {other:?}"),
        }
        assert_eq!(health(1).state, PartitionState::Online);
        let out = node.cli(Via::Tcp).args(["topic", "describe", "t"]).output().unwrap();
        let table = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{table}");
        assert!(table.contains("offline: cannot open"), "{table}");
        let out = node.cli(Via::Tcp).args(["topic", "describe", "t", "--json"]).output().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["partitions"][0]["state"], "offline", "{json}");
        assert_eq!(json["partitions"][1]["state"], "online", "{json}");
        std::fs::remove_file(&real).unwrap();
        std::fs::rename(&aside, &real).unwrap();
        // Maintenance retries after 1, 2, 4 ... seconds; wait for it, with a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (code, message) = produce(&target, "t", 0).await;
            if code == ErrorCode::None {
                break;
            }
            assert_eq!(code, ErrorCode::StorageError, "{message}");
            assert!(std::time::Instant::now() < deadline, "partition never came back: {message}");
            tokio_rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut admin = Admin::connect(&target).await.unwrap();
        let info = admin.describe_topic("t").await.unwrap();
        assert_eq!(info.partitions[0].log_end, 6, "both batches there, the one from before the restart too");
        assert_eq!(info.partitions[0].health.as_ref().unwrap().state, PartitionState::Online);
    });
}

#[test]
fn placement_is_stored_with_the_topic_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let target = node.target(Via::Tcp);
    runtime().block_on(async {
        Admin::connect(&target)
            .await
            .unwrap()
            .create_topic("placed", 4, TopicConfig::default())
            .await
            .unwrap();
    });
    let (_, port) = node.stop();
    // The table is data: move partition 0 to the other shard by editing it, and the node serves
    // it there after a restart (its files do not depend on the shard).
    let path = dir.path().join("topics.json");
    let mut table: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let shard = &mut table["topics"]["placed"]["replicas"][0][0]["shard"];
    let moved = 1 - shard.as_u64().expect("placement stored per partition");
    *shard = moved.into();
    std::fs::write(&path, serde_json::to_vec(&table).unwrap()).unwrap();
    let node = Node::start_on(dir.path(), 2, port);
    runtime().block_on(async {
        let info =
            Admin::connect(&node.target(Via::Tcp)).await.unwrap().describe_topic("placed").await.unwrap();
        assert_eq!(u64::from(info.partitions[0].shard), moved);
        // Asked on the shard the table names, directly: it owns the partition.
        let (code, message) = produce(&node.shard_target(moved as usize, Via::Tcp), "placed", 0).await;
        assert_eq!(code, ErrorCode::None, "{message}");
    });
}

/// A wide topic's partitions open concurrently within each shard, and the creation stays all or
/// nothing: every partition that failed is named, none of the others is left behind, and the
/// same creation succeeds once the obstacles are gone.
#[test]
fn a_wide_topic_is_created_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let target = node.target(Via::Tcp);
    let blocked = [7u32, 150, 299];
    let blockers: Vec<_> = blocked.iter().map(|&p| block(dir.path(), "wide", p)).collect();
    runtime().block_on(async {
        let mut admin = Admin::connect(&target).await.unwrap();
        match admin.create_topic("wide", 300, TopicConfig::default()).await {
            Err(ClientError::Server { code: ErrorCode::StorageError, message }) => {
                for p in blocked {
                    assert!(message.contains(&format!("wide/{p}:")), "names wide/{p}: {message}");
                }
            }
            other => panic!("expected a storage error, got {other:?}"),
        }
        let left: Vec<_> = std::fs::read_dir(dir.path().join("partitions"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !blockers.contains(p))
            .collect();
        assert!(left.is_empty(), "opened partitions were removed: {left:?}");
        for b in &blockers {
            std::fs::remove_file(b).unwrap();
        }
        admin.create_topic("wide", 300, TopicConfig::default()).await.unwrap();
        for p in [0, 7, 150, 298, 299] {
            assert_eq!(produce(&target, "wide", p).await.0, ErrorCode::None, "wide/{p}");
        }
    });
}

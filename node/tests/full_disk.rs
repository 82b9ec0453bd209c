//! A full disk: produce is refused with a clear error before the device is full, every
//! acknowledged record stays, topics can still be deleted, and a node restarts on a full disk.
//! Where the test runs as root it makes a real small filesystem (a loop-mounted ext4 in a temp
//! file); the free-space floor is tested everywhere.

mod common;

use common::{Node, Via, batch_of, produce_raw, runtime};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use weir_net::api::{Request, Response};
use weir_net::client::connection::Connection;
use weir_net::client::{Admin, ClientError, Producer, ProducerConfig, ProducerRecord, Target};
use weir_net::{ErrorCode, TopicConfig};

/// Records `(offset, value)` of a partition from its start, by raw fetches.
async fn read_partition(target: &Target, topic: &str, partition: u32) -> Vec<(u64, Vec<u8>)> {
    let mut conn = Connection::connect(target).await.unwrap();
    let (mut offset, mut out) = (0, Vec::new());
    loop {
        let req =
            Request::Fetch { topic: topic.into(), partition, offset, max_bytes: 1 << 20, max_wait_ms: 0 };
        let answer = conn.call(&req).await.unwrap();
        let Response::Fetch { error: ErrorCode::None, batches, high_watermark, .. } =
            answer.response().unwrap()
        else {
            panic!("fetch of {topic}/{partition} failed: {:?}", answer.response());
        };
        if batches.is_empty() {
            assert_eq!(offset, high_watermark);
            return out;
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(batches);
        let mut rest: &[u8] = &aligned;
        while !rest.is_empty() {
            let view = weir_log::batch::BatchView::validate(rest, usize::MAX).unwrap();
            let from = offset;
            for r in view.records().filter(|r| r.offset >= from) {
                out.push((r.offset, r.value.unwrap().to_vec()));
                offset = r.offset + 1;
            }
            rest = &rest[view.bytes().len()..];
        }
    }
}

/// A produce of one small record through a fresh connection: its error code and message.
async fn produce_one(target: &Target, topic: &str) -> (ErrorCode, String) {
    produce_raw(target, topic, 0, &batch_of(&[b"x"])).await
}

#[test]
fn below_its_free_space_floor_a_node_refuses_produce_and_serves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let port = Node::free_port(2);
    let floor = ("WEIR_STORAGE_MIN_FREE_BYTES", "1000000000000000000");
    let node = Node::start_with(dir.path(), 2, port, &[floor]);
    let target = node.target(Via::Tcp);
    runtime().block_on(async {
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_topic("t", 1, TopicConfig::default()).await.expect("topic changes have room");
        let (code, message) = produce_one(&target, "t").await;
        assert_eq!(code, ErrorCode::StorageError, "{message}");
        assert!(message.contains("storage_min_free_bytes"), "the refusal says why: {message}");
        assert!(read_partition(&target, "t", 0).await.is_empty(), "nothing of it was appended");
        admin.delete_topic("t").await.expect("a delete always has room");
    });
}

/// A loop-mounted ext4 of `mb` MiB at a fresh directory, unmounted on drop.
struct SmallFs {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    fn make(mb: u64) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).ok()?;
        std::fs::File::create(&image).ok()?.set_len(mb << 20).ok()?;
        let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
        let made = ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))
            && ok(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount));
        made.then_some(SmallFs { mount, _dir: dir })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).output();
    }
}

/// Writes a file until the device is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![7u8; 1 << 20];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_disk_costs_no_acknowledged_record_and_the_node_restarts_on_it() {
    let Some(fs) = SmallFs::make(96) else {
        eprintln!("no loop-mounted filesystem here (needs root): the free-space floor test covers the rest");
        return;
    };
    let data = fs.mount.join("data");
    let port = Node::free_port(2);
    // A floor with room for what a fast producer writes between two upkeeps (50 ms apart), so
    // the refusal comes from the floor, not from a full device.
    let env = [("WEIR_STORAGE_MIN_FREE_BYTES", "33554432"), ("WEIR_SEGMENT_BYTES", "4194304")];
    let node = Node::start_with(&data, 2, port, &env);
    let target = node.target(Via::Tcp);
    let acked: BTreeMap<(u32, u64), Vec<u8>> = runtime().block_on(async {
        let mut admin = Admin::connect(&target).await.unwrap();
        admin.create_topic("fill", 2, TopicConfig::default()).await.unwrap();
        admin.create_topic("keep", 1, TopicConfig::default()).await.unwrap();
        assert_eq!(produce_one(&target, "keep").await.0, ErrorCode::None);
        let config = ProducerConfig { retries: 0, linger_ms: 1, ..ProducerConfig::default() };
        let producer = Producer::connect(&target, config).await.unwrap();
        let mut acked = BTreeMap::new();
        let mut refusal = None;
        // 4 KiB records until the node refuses: far more than the filesystem holds.
        'outer: for round in 0..1000u32 {
            let mut pending = Vec::new();
            for i in 0..64u32 {
                let value = format!("{round}-{i}-{}", "v".repeat(4000)).into_bytes();
                let record = ProducerRecord {
                    topic: "fill".into(),
                    partition: Some(i % 2),
                    value: Some(value.clone()),
                    ..Default::default()
                };
                pending.push((i % 2, value, producer.enqueue(record).await.unwrap()));
            }
            for (p, value, ack) in pending {
                match ack.await {
                    Ok(offset) => {
                        acked.insert((p, offset), value);
                    }
                    Err(e) => {
                        refusal = Some(e);
                        break 'outer;
                    }
                }
            }
        }
        match refusal {
            Some(ClientError::Server { code: ErrorCode::StorageError, message }) => {
                assert!(
                    message.contains("storage_min_free_bytes"),
                    "refused by the floor, before ENOSPC: {message}"
                )
            }
            other => panic!("expected a refusal for lack of space, got {other:?}"),
        }
        for p in 0..2 {
            for (offset, value) in read_partition(&target, "fill", p).await {
                if let Some(v) = acked.get(&(p, offset)) {
                    assert_eq!(v, &value, "record {p}/{offset}");
                }
            }
        }
        acked
    });
    assert!(acked.len() > 1000, "a good part of the disk was filled: {} records", acked.len());
    // Every acknowledged record is there (checked above), and after a kill and a restart on a
    // disk filled to the brim.
    let (_, port) = node.kill();
    let filler = fill(&fs.mount);
    let node = Node::start_with(&data, 2, port, &env);
    let target = node.target(Via::Tcp);
    runtime().block_on(async {
        for p in 0..2 {
            let stored: BTreeMap<u64, Vec<u8>> =
                read_partition(&target, "fill", p).await.into_iter().collect();
            for ((ap, offset), value) in &acked {
                if *ap == p {
                    assert_eq!(
                        stored.get(offset),
                        Some(value),
                        "acknowledged record {p}/{offset} after the restart"
                    );
                }
            }
        }
        let (code, message) = produce_one(&target, "keep").await;
        assert_eq!(code, ErrorCode::StorageError, "a full disk refuses produce: {message}");
        Admin::connect(&target)
            .await
            .unwrap()
            .delete_topic("fill")
            .await
            .expect("a delete works on a full disk");
        std::fs::remove_file(&filler).unwrap();
        // Space is back: produce is served again once the shard has looked (every upkeep).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (code, message) = produce_one(&target, "keep").await;
            if code == ErrorCode::None {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "produce never came back: {message}");
            tokio_rt::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(read_partition(&target, "keep", 0).await.len(), 2);
    });
    drop(node);
    let leftovers: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(".dma-probe-") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
}

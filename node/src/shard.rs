//! One shard: a glommio executor pinned to a core, the partitions it owns, its listeners, and
//! its end of the channel mesh to the other shards.
//!
//! A request is handled by the shard that owns what it touches: the partition's owner for
//! produce, fetch and list-offsets (by a stable hash of topic and partition), shard 0 for topic
//! changes. A request that arrives elsewhere is forwarded over the mesh as its frame and
//! answered with the owner's response frame, so the connection's shard just relays bytes.

use crate::config::NodeConfig;
use crate::metadata::{TopicMeta, TopicTable};
use crate::partition::Partition;
use crate::stats::{NodeCounters, bump};
use futures::channel::oneshot;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use weir_log::{FlushPolicy, LogConfig};

/// Messages between shards. Frames are whole protocol frames (header and body).
#[derive(Debug)]
pub enum MeshMsg {
    Request {
        id: u64,
        from: usize,
        frame: Vec<u8>,
    },
    Response {
        id: u64,
        frame: Vec<u8>,
    },
    /// Shard 0 changed the topic table; apply it and answer with an empty `Response`.
    Topics {
        id: u64,
        from: usize,
        table: TopicTable,
    },
}

pub type Mesh = MeshBuilder<MeshMsg, Full>;
/// Messages queued between two shards at most; a sender waits when the queue is full.
pub const MESH_QUEUE_MAX: usize = 1024;

/// Which shard owns `partition` of `topic`: a stable hash, so it does not change across restarts.
pub fn owner(topic: &str, partition: u32, shards: usize) -> usize {
    let crc = crc32c::crc32c_append(crc32c::crc32c(topic.as_bytes()), &partition.to_le_bytes());
    (crc as usize) % shards
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// State of one shard; lives on its executor's thread.
#[derive(Debug)]
pub struct Shard {
    pub id: usize,
    pub config: Rc<NodeConfig>,
    pub topics: RefCell<TopicTable>,
    pub partitions: RefCell<HashMap<(String, u32), Rc<Partition>>>,
    senders: Senders<MeshMsg>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Vec<u8>>>>,
    next_id: Cell<u64>,
    /// Counters of every shard; this one writes only its own.
    pub counters: Arc<NodeCounters>,
    /// Serialises topic changes on shard 0: check, save, broadcast and apply happen as one step,
    /// so two concurrent creates (or a create and a delete) cannot lose each other.
    pub topic_changes: tokio_rt::sync::Mutex<()>,
    /// One FIFO lock per target shard around sends into the mesh: pipelined requests of one
    /// connection reach the owner in the order they were read, whatever the queue's wake order.
    send_order: Vec<tokio_rt::sync::Mutex<()>>,
}

/// Counts a request as in flight for as long as it lives.
#[derive(Debug)]
pub struct InFlight(Rc<Shard>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.counters.shard(self.0.id).in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shard {
    pub fn new(
        id: usize,
        config: Rc<NodeConfig>,
        topics: TopicTable,
        senders: Senders<MeshMsg>,
        counters: Arc<NodeCounters>,
    ) -> Rc<Self> {
        Rc::new(Self {
            id,
            config: config.clone(),
            topics: RefCell::new(topics),
            partitions: RefCell::new(HashMap::new()),
            senders,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            counters,
            topic_changes: tokio_rt::sync::Mutex::new(()),
            send_order: (0..config.shards).map(|_| tokio_rt::sync::Mutex::new(())).collect(),
        })
    }

    /// Counts a client request, in flight until the returned guard drops.
    pub fn begin_request(self: &Rc<Self>) -> InFlight {
        let mine = self.counters.shard(self.id);
        mine.in_flight.fetch_add(1, Ordering::SeqCst);
        bump(&mine.requests);
        InFlight(self.clone())
    }

    /// Counts a client request sent on to the shard that owns it.
    pub fn request_forwarded(&self) {
        bump(&self.counters.shard(self.id).forwarded);
    }

    /// Counts an accepted TCP connection or QUIC stream.
    pub fn connection_opened(&self) {
        bump(&self.counters.shard(self.id).connections);
    }

    /// Requests in flight on the whole node.
    pub fn requests_in_flight(&self) -> usize {
        self.counters.in_flight()
    }

    pub fn shards(&self) -> usize {
        self.config.shards
    }

    pub fn partition_dir(&self, topic: &str, partition: u32) -> PathBuf {
        self.config.data_dir.join("partitions").join(format!("{topic}-{partition}"))
    }

    pub fn log_config(&self, topic: &TopicMeta) -> LogConfig {
        let c = &self.config;
        LogConfig {
            segment_bytes_max: c.segment_bytes,
            segment_ms: c.segment_ms,
            batch_bytes_max: c.batch_bytes_max,
            flush: if c.fsync {
                FlushPolicy::Sync
            } else {
                FlushPolicy::Interval { flush_interval_ms: c.flush_interval_ms }
            },
            retention_ms: topic.retention_ms,
            retention_bytes: topic.retention_bytes,
            write_behind_buffers_max: 2,
            preallocate_bytes: (c.segment_bytes / 16).clamp(1 << 20, 32 << 20),
            ..LogConfig::default()
        }
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(&(topic.to_owned(), partition)).cloned()
    }

    /// Opens the partitions of `table` this shard owns and closes (and deletes) those of topics
    /// no longer in it.
    pub async fn apply_topics(&self, table: TopicTable) {
        let gone: Vec<(String, u32)> =
            self.partitions.borrow().keys().filter(|(t, _)| !table.topics.contains_key(t)).cloned().collect();
        for key in gone {
            let Some(p) = self.partitions.borrow_mut().remove(&key) else { continue };
            if let Err(e) = std::fs::remove_dir_all(&p.dir) {
                tracing::warn!(dir = %p.dir.display(), error = %e, "could not remove a deleted partition");
            }
        }
        for meta in table.topics.values() {
            for partition in 0..meta.partitions {
                if owner(&meta.name, partition, self.shards()) != self.id
                    || self.partition(&meta.name, partition).is_some()
                {
                    continue;
                }
                let dir = self.partition_dir(&meta.name, partition);
                match Partition::open(dir, self.log_config(meta), now_ms()).await {
                    Ok(p) => {
                        self.partitions.borrow_mut().insert((meta.name.clone(), partition), Rc::new(p));
                    }
                    Err(e) => {
                        tracing::error!(topic = %meta.name, partition, error = %e, "cannot open partition")
                    }
                }
            }
        }
        *self.topics.borrow_mut() = table;
    }

    fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Sends `msg` (built with a fresh id) to shard `to` and waits for its response frame.
    async fn call(&self, to: usize, msg: impl FnOnce(u64) -> MeshMsg) -> Option<Vec<u8>> {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let order = self.send_order[to].lock().await;
        let sent = self.senders.send_to(to, msg(id)).await;
        drop(order);
        if sent.is_err() {
            self.pending.borrow_mut().remove(&id);
            return None;
        }
        rx.await.ok()
    }

    /// Forwards a request frame to the shard that owns it; `None` if that shard is gone.
    pub async fn forward(&self, to: usize, frame: Vec<u8>) -> Option<Vec<u8>> {
        let from = self.id;
        self.call(to, |id| MeshMsg::Request { id, from, frame }).await
    }

    /// Tells every other shard about a new topic table and waits until all have applied it.
    pub async fn broadcast_topics(&self, table: &TopicTable) {
        let from = self.id;
        let calls = (0..self.shards())
            .filter(|&s| s != self.id)
            .map(|s| self.call(s, |id| MeshMsg::Topics { id, from, table: table.clone() }));
        futures::future::join_all(calls).await;
    }

    /// Completes a call made by this shard.
    pub fn complete(&self, id: u64, frame: Vec<u8>) {
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(frame);
        }
    }

    pub async fn reply(&self, to: usize, id: u64, frame: Vec<u8>) {
        if self.senders.send_to(to, MeshMsg::Response { id, frame }).await.is_err() {
            tracing::warn!(to, "shard gone; response dropped");
        }
    }
}

/// Creates the mesh that `shards` executors join.
pub fn mesh(shards: usize) -> Mesh {
    MeshBuilder::full(shards, MESH_QUEUE_MAX)
}

//! One shard: a glommio executor pinned to a core, the partitions it owns, its listeners, and
//! its end of the channel mesh to the other shards.
//!
//! A request is handled by the shard that owns what it touches: the partition's owner for
//! produce, fetch and list-offsets (as the topic's placement table says), shard 0 for topic
//! changes. A request that arrives elsewhere is forwarded over the mesh as its frame and
//! answered with the owner's response frame, so the connection's shard just relays bytes.

use crate::config::NodeConfig;
use crate::metadata::{TopicMeta, TopicTable};
use crate::partition::Partition;
use crate::stats::{NodeCounters, bump};
use futures::channel::oneshot;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};
use glommio::channels::shared_channel::ConnectedReceiver;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use weir_log::storage::dma::DmaStorage;
use weir_log::{FlushPolicy, LogConfig};

/// A partition as this node serves it: on direct I/O.
pub type NodePartition = Partition<DmaStorage>;

/// A partition of this shard that could not be opened: why, and when to try again.
#[derive(Debug, Clone)]
pub struct Offline {
    pub error: String,
    attempts: u32,
    next_ms: u64,
}

/// An answer over the mesh.
#[derive(Debug)]
pub enum MeshReply {
    /// A response frame to a forwarded request.
    Frame(Vec<u8>),
    /// A shard applied a topic table; these partitions of it could not be opened.
    TopicsApplied(Vec<String>),
}

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
        reply: MeshReply,
    },
    /// Shard 0 changed the topic table; apply it and answer with `MeshReply::TopicsApplied`.
    Topics {
        id: u64,
        from: usize,
        table: TopicTable,
    },
}

pub type Mesh = MeshBuilder<MeshMsg, Full>;
/// Messages queued between two shards at most; a sender waits when the queue is full.
pub const MESH_QUEUE_MAX: usize = 1024;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// State of one shard; lives on its executor's thread.
#[derive(Debug)]
pub struct Shard {
    pub id: usize,
    pub config: Rc<NodeConfig>,
    pub topics: RefCell<TopicTable>,
    pub partitions: RefCell<HashMap<(String, u32), Rc<NodePartition>>>,
    /// Partitions of this shard that failed to open; maintenance retries them.
    pub offline: RefCell<HashMap<(String, u32), Offline>>,
    senders: Senders<MeshMsg>,
    pending: RefCell<HashMap<u64, oneshot::Sender<MeshReply>>>,
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
            offline: RefCell::new(HashMap::new()),
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

    pub fn partition(&self, topic: &str, partition: u32) -> Option<Rc<NodePartition>> {
        self.partitions.borrow().get(&(topic.to_owned(), partition)).cloned()
    }

    /// Why a partition this shard should serve is offline, if it is.
    pub fn offline(&self, topic: &str, partition: u32) -> Option<Offline> {
        self.offline.borrow().get(&(topic.to_owned(), partition)).cloned()
    }

    /// Opens the partitions of `table` this shard owns and closes (and deletes) those of topics
    /// no longer in it. Returns the partitions that could not be opened, each with its cause;
    /// they stay offline, answering a storage error, while maintenance retries them.
    pub async fn apply_topics(&self, table: TopicTable) -> Vec<String> {
        let gone: Vec<(String, u32)> =
            self.partitions.borrow().keys().filter(|(t, _)| !table.topics.contains_key(t)).cloned().collect();
        self.offline.borrow_mut().retain(|(t, _), _| table.topics.contains_key(t));
        for key in gone {
            let Some(p) = self.partitions.borrow_mut().remove(&key) else { continue };
            let dir = self.partition_dir(&key.0, key.1);
            drop(p);
            let removed = glommio::executor().spawn_blocking({
                let dir = dir.clone();
                move || std::fs::remove_dir_all(dir)
            });
            if let Err(e) = removed.await {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted partition");
            }
        }
        let mut failures = Vec::new();
        for meta in table.topics.values() {
            for partition in 0..meta.partitions {
                let mine = meta.local_shard(partition).is_some_and(|s| s.index() == self.id);
                // An offline partition is maintenance's to retry, not a failure of this change.
                let known = self.partition(&meta.name, partition).is_some()
                    || self.offline(&meta.name, partition).is_some();
                if !mine || known {
                    continue;
                }
                if let Err(error) = self.open_partition(meta, partition).await {
                    failures.push(format!("{}/{partition}: {error}", meta.name));
                    let next_ms = now_ms() + crate::partition::reopen_delay_ms(1);
                    let offline = Offline { error, attempts: 1, next_ms };
                    self.offline.borrow_mut().insert((meta.name.clone(), partition), offline);
                }
            }
        }
        *self.topics.borrow_mut() = table;
        failures
    }

    async fn open_partition(&self, meta: &TopicMeta, partition: u32) -> Result<(), String> {
        let dir = self.partition_dir(&meta.name, partition);
        let name = format!("{}/{partition}", meta.name);
        let storage = DmaStorage::new(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        match Partition::open(storage, self.log_config(meta), now_ms(), name).await {
            Ok(p) => {
                self.offline.borrow_mut().remove(&(meta.name.clone(), partition));
                self.partitions.borrow_mut().insert((meta.name.clone(), partition), Rc::new(p));
                Ok(())
            }
            Err(e) => {
                tracing::error!(topic = %meta.name, partition, error = %e, "cannot open partition");
                Err(e.to_string())
            }
        }
    }

    /// Periodic upkeep, every few tens of milliseconds: flushes logs whose interval passed,
    /// enforces retention when `retention_due`, and recovers offline partitions and failed logs.
    pub async fn maintain(&self, now: u64, retention_due: bool) {
        // With fsync-before-ack there is nothing to flush on a timer: leave the partitions'
        // locks alone until retention is due. Segments then roll by age at that pace, which is
        // fine against `segment_ms` of hours.
        if !self.config.fsync || retention_due {
            let partitions: Vec<_> = self.partitions.borrow().values().cloned().collect();
            for p in partitions {
                let mut log = p.log.lock().await;
                if let Err(e) = log.tick(now).await {
                    tracing::error!(partition = %p.name, error = %e, "interval flush or roll failed");
                }
                if retention_due {
                    match log.enforce_retention_below(now, p.high_watermark()).await {
                        Ok(deleted) if !deleted.is_empty() => p.set_log_start(log.log_start()),
                        Ok(_) => {}
                        Err(e) => tracing::error!(partition = %p.name, error = %e, "retention failed"),
                    }
                }
            }
        }
        self.recover_partitions(now).await;
    }

    /// Retries opening the offline ones and
    /// recovers failed logs in place, each with a bounded number of attempts.
    pub async fn recover_partitions(&self, now: u64) {
        let due: Vec<((String, u32), Offline)> = self
            .offline
            .borrow()
            .iter()
            .filter(|(_, o)| o.attempts < crate::partition::REOPEN_ATTEMPTS_MAX && now >= o.next_ms)
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for ((topic, partition), o) in due {
            let Some(meta) = self.topics.borrow().topics.get(&topic).cloned() else { continue };
            if let Err(error) = self.open_partition(&meta, partition).await {
                let attempts = o.attempts + 1;
                let next_ms = now + crate::partition::reopen_delay_ms(attempts);
                self.offline.borrow_mut().insert((topic, partition), Offline { error, attempts, next_ms });
            }
        }
        let partitions: Vec<_> = self.partitions.borrow().values().cloned().collect();
        for p in partitions {
            p.reopen_if_failed(now).await;
        }
    }

    fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Sends `msg` (built with a fresh id) to shard `to` and waits for its reply.
    async fn call(&self, to: usize, msg: impl FnOnce(u64) -> MeshMsg) -> Option<MeshReply> {
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
        match self.call(to, |id| MeshMsg::Request { id, from, frame }).await {
            Some(MeshReply::Frame(frame)) => Some(frame),
            _ => None,
        }
    }

    /// Applies a new topic table on every shard, this one last, and waits until all have. Returns
    /// the partitions that could not be opened (a shard that is gone counts as all of its own).
    pub async fn apply_everywhere(&self, table: TopicTable) -> Vec<String> {
        let from = self.id;
        let calls = (0..self.shards())
            .filter(|&s| s != self.id)
            .map(|s| self.call(s, |id| MeshMsg::Topics { id, from, table: table.clone() }));
        let mut failures = Vec::new();
        for (reply, s) in futures::future::join_all(calls)
            .await
            .into_iter()
            .zip((0..self.shards()).filter(|&s| s != self.id))
        {
            match reply {
                Some(MeshReply::TopicsApplied(f)) => failures.extend(f),
                _ => failures.push(format!("shard {s} is not running")),
            }
        }
        failures.extend(self.apply_topics(table).await);
        failures
    }

    /// Completes a call made by this shard.
    pub fn complete(&self, id: u64, reply: MeshReply) {
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(reply);
        }
    }

    pub async fn reply(&self, to: usize, id: u64, reply: MeshReply) {
        if self.senders.send_to(to, MeshMsg::Response { id, reply }).await.is_err() {
            tracing::warn!(to, "shard gone; response dropped");
        }
    }
}

/// Serves what another shard sends this one: forwarded requests (each a task of its own),
/// answers to this shard's calls, and topic tables to apply.
pub async fn mesh_loop(shard: Rc<Shard>, rx: ConnectedReceiver<MeshMsg>) {
    use weir_net::frame::FrameHeader;
    while let Some(msg) = rx.recv().await {
        match msg {
            MeshMsg::Response { id, reply } => shard.complete(id, reply),
            MeshMsg::Request { id, from, frame } => {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let header =
                        FrameHeader::decode(&frame, usize::MAX).expect("forwarded frames were decoded once");
                    let resp = match crate::handler::handle(&shard, header, &frame).await {
                        Ok(r) | Err(r) => r,
                    };
                    shard.reply(from, id, MeshReply::Frame(resp)).await;
                })
                .detach();
            }
            MeshMsg::Topics { id, from, table } => {
                let failures = shard.apply_topics(table).await;
                shard.reply(from, id, MeshReply::TopicsApplied(failures)).await;
            }
        }
    }
}

/// Creates the mesh that `shards` executors join.
pub fn mesh(shards: usize) -> Mesh {
    MeshBuilder::full(shards, MESH_QUEUE_MAX)
}

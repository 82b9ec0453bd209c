//! Typed messages between the shards of a node, and the [`Bus`] that carries them: the glommio
//! channel mesh in a node ([`MeshBus`]), an in-memory hub in tests and the simulator
//! ([`MemBus`]).
//!
//! A request reaches the shard that owns what it touches as a [`ShardRequest`], already decoded,
//! its batches as owned `Bytes` moved, not copied; the answer comes back as a [`ShardReply`].
//! The receiving shard runs each request as a detached task: a caller that goes away drops the
//! answer, never the work.

use crate::metadata::TopicTable;
use crate::service::types::{
    Failure, FetchPartition, FetchedPartition, PartitionStatus, ProducePartition, Produced,
};
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use weir_net::{Acks, OffsetSpec, TopicConfig};
use weir_replication::ShardId;

/// What one shard asks of another.
#[derive(Debug)]
pub enum ShardRequest {
    Produce {
        acks: Acks,
        parts: Vec<ProducePartition>,
        /// Longest the acks are waited for (`RequestTimedOut` past it); `None`: no limit.
        timeout_ms: Option<u64>,
    },
    Fetch {
        parts: Vec<FetchPartition>,
        max_wait_ms: u32,
        /// Bytes the owner reads at most over all `parts` (past it, bounds only); `None`: each
        /// partition's own `max_bytes`.
        bytes_max: Option<usize>,
    },
    ListOffsets {
        topic: String,
        partition: u32,
        spec: OffsetSpec,
    },
    /// Bounds, state and damaged ranges of these partitions of a topic.
    Describe {
        topic: String,
        partitions: Vec<u32>,
    },
    /// To shard 0, which serialises topic changes.
    CreateTopic {
        name: String,
        partitions: u32,
        config: TopicConfig,
    },
    DeleteTopic {
        name: String,
    },
    AddPartitions {
        name: String,
        count: u32,
        validate_only: bool,
    },
    /// To the partition's owner: delete its records below `offset` (`None`: its high
    /// watermark).
    DeleteRecords {
        topic: String,
        partition: u32,
        offset: Option<u64>,
    },
    /// From shard 0: apply this table (open and close partitions).
    ApplyTopics(TopicTable),
    /// To the shard that coordinates the call's group.
    Group(crate::groups::call::GroupCall),
}

impl ShardRequest {
    /// Whether it carries a client's data request (counted as forwarded in the node's stats).
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            ShardRequest::Produce { .. } | ShardRequest::Fetch { .. } | ShardRequest::ListOffsets { .. }
        )
    }
}

/// The answer to a [`ShardRequest`], variant for variant.
#[derive(Debug)]
pub enum ShardReply {
    Produce(Vec<Result<Produced, Failure>>),
    Fetch(Vec<Result<FetchedPartition, Failure>>),
    ListOffsets(Result<u64, Failure>),
    /// The partition's log start after a DeleteRecords.
    RecordsDeleted(Result<u64, Failure>),
    Described(Vec<PartitionStatus>),
    TopicChanged(Result<(), Failure>),
    /// The partitions of the table that could not be opened, with their causes.
    TopicsApplied(Vec<String>),
    Group(crate::groups::call::GroupAnswer),
}

/// Why a call over the bus got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    #[error("shard {shard} is not running")]
    ShardDown { shard: u16 },
    #[error("shard {shard} answered {got} to {asked}")]
    WrongReply { shard: u16, asked: &'static str, got: &'static str },
}

/// Carries typed calls between the shards of one node. Used from one shard's thread.
#[allow(async_fn_in_trait)]
pub trait Bus: std::fmt::Debug + 'static {
    /// Sends `req` to shard `to` and waits for its answer. Calls from one shard to another are
    /// delivered in the order they were made.
    async fn call(&self, to: ShardId, req: ShardRequest) -> Result<ShardReply, BusError>;
}

/// Serves the requests that reach a shard; what a [`Bus`] delivers to.
pub trait Serve: 'static {
    fn serve(self: Rc<Self>, from: ShardId, req: ShardRequest) -> LocalBoxFuture<'static, ShardReply>;
}

type Handler = Rc<dyn Fn(ShardId, ShardRequest) -> LocalBoxFuture<'static, Result<ShardReply, BusError>>>;

/// The shards of a simulated node, each reachable while registered. Cloning shares it.
#[derive(Clone, Default)]
pub struct MemHub {
    handlers: Rc<RefCell<HashMap<ShardId, Handler>>>,
}

impl std::fmt::Debug for MemHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemHub").field("shards", &self.handlers.borrow().len()).finish()
    }
}

impl MemHub {
    /// Makes `shard` reachable: each request becomes a task spawned by `spawn`, detached.
    pub fn register<S: Serve>(
        &self,
        shard: ShardId,
        server: Rc<S>,
        spawn: impl Fn(LocalBoxFuture<'static, ()>) + 'static,
    ) {
        let handler: Handler = Rc::new(move |from, req| {
            let (tx, rx) = oneshot::channel();
            let server = server.clone();
            spawn(Box::pin(async move {
                let _ = tx.send(server.serve(from, req).await);
            }));
            Box::pin(async move { rx.await.map_err(|_| BusError::ShardDown { shard: shard.0 }) })
        });
        self.handlers.borrow_mut().insert(shard, handler);
    }

    /// Forgets every shard: after a simulated crash.
    pub fn clear(&self) {
        self.handlers.borrow_mut().clear();
    }

    pub fn bus(&self, shard: ShardId) -> MemBus {
        MemBus { shard, hub: self.clone() }
    }
}

/// One shard's end of a [`MemHub`].
#[derive(Debug, Clone)]
pub struct MemBus {
    shard: ShardId,
    hub: MemHub,
}

impl Bus for MemBus {
    async fn call(&self, to: ShardId, req: ShardRequest) -> Result<ShardReply, BusError> {
        let handler = self.hub.handlers.borrow().get(&to).cloned();
        let handler = handler.ok_or(BusError::ShardDown { shard: to.0 })?;
        handler(self.shard, req).await
    }
}

/// Messages on the glommio mesh.
#[derive(Debug)]
pub enum MeshMsg {
    Call { id: u64, from: ShardId, req: ShardRequest },
    Reply { id: u64, reply: ShardReply },
}

pub type Mesh = glommio::channels::channel_mesh::MeshBuilder<MeshMsg, glommio::channels::channel_mesh::Full>;
/// Messages queued between two shards at most; a sender waits when the queue is full.
pub const MESH_QUEUE_MAX: usize = 1024;

/// Creates the mesh that `shards` executors join.
pub fn mesh(shards: usize) -> Mesh {
    glommio::channels::channel_mesh::MeshBuilder::full(shards, MESH_QUEUE_MAX)
}

/// A shard's end of the glommio channel mesh.
#[derive(Debug)]
pub struct MeshBus {
    shard: ShardId,
    senders: glommio::channels::channel_mesh::Senders<MeshMsg>,
    pending: RefCell<HashMap<u64, oneshot::Sender<ShardReply>>>,
    next_id: Cell<u64>,
    /// One FIFO lock per target shard around sends into the mesh: pipelined requests of one
    /// connection reach the owner in the order they were read, whatever the queue's wake order.
    send_order: Vec<tokio_rt::sync::Mutex<()>>,
    /// Where a client's data request sent on to its owner is counted.
    counters: std::sync::Arc<crate::stats::NodeCounters>,
}

impl MeshBus {
    pub fn new(
        shard: ShardId,
        senders: glommio::channels::channel_mesh::Senders<MeshMsg>,
        shards: usize,
        counters: std::sync::Arc<crate::stats::NodeCounters>,
    ) -> Self {
        Self {
            shard,
            senders,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            send_order: (0..shards).map(|_| tokio_rt::sync::Mutex::new(())).collect(),
            counters,
        }
    }

    /// Hands an answer to the call waiting for it; a caller that went away drops it.
    fn complete(&self, id: u64, reply: ShardReply) {
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(reply);
        }
    }

    async fn send(&self, to: ShardId, msg: MeshMsg) -> Result<(), BusError> {
        self.senders.send_to(to.index(), msg).await.map_err(|_| BusError::ShardDown { shard: to.0 })
    }
}

impl Bus for MeshBus {
    async fn call(&self, to: ShardId, req: ShardRequest) -> Result<ShardReply, BusError> {
        if req.is_data() {
            crate::stats::bump(&self.counters.shard(self.shard.index()).forwarded);
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        // However this call ends (answered, failed, or dropped at an await), its entry goes.
        let _forget = Forget { pending: &self.pending, id };
        let order = self.send_order[to.index()].lock().await;
        self.send(to, MeshMsg::Call { id, from: self.shard, req }).await?;
        drop(order);
        rx.await.map_err(|_| BusError::ShardDown { shard: to.0 })
    }
}

/// Removes a call's entry from the pending answers when the call ends.
struct Forget<'a> {
    pending: &'a RefCell<HashMap<u64, oneshot::Sender<ShardReply>>>,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.pending.borrow_mut().remove(&self.id);
    }
}

/// Serves what other shards send this one over the mesh: calls (each a detached task of its
/// own) and answers to this shard's calls.
pub async fn mesh_loop<S: Serve>(
    bus: Rc<MeshBus>,
    server: Rc<S>,
    rx: glommio::channels::shared_channel::ConnectedReceiver<MeshMsg>,
) {
    while let Some(msg) = rx.recv().await {
        match msg {
            MeshMsg::Reply { id, reply } => bus.complete(id, reply),
            MeshMsg::Call { id, from, req } => {
                let (bus, server) = (bus.clone(), server.clone());
                glommio::spawn_local(async move {
                    let reply = server.serve(from, req).await;
                    if bus.send(from, MeshMsg::Reply { id, reply }).await.is_err() {
                        tracing::warn!(to = from.0, "shard gone; answer dropped");
                    }
                })
                .detach();
            }
        }
    }
}

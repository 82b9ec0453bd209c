//! The follower's side: a shard pulls from the leaders of the partitions it follows, and sends
//! its leaders' ISR changes to the control plane. Runs on the shard's glommio executor.
//!
//! Per (this shard, leader node, leader shard) one task with one QUIC connection (the shard's own
//! `quic_native` client endpoint) and one stream, one `ReplicaFetch` in flight on it at a time,
//! carrying every fetch queued for that leader shard meanwhile (a replica has at most one fetch in
//! flight: the queue is bounded by the partitions followed there). A fetch lost with a broken
//! connection is not retried here: its replica sends it again after `fetch_timeout_ms`.

use super::fetched::check_fetched;
use super::throttle::TokenBucket;
use super::wire::{
    PartitionAnswer, REPLICA_FETCH_API, REPLICA_FETCH_PARTITIONS_MAX, REPLICA_FETCH_VERSION, ReplicaFetch,
    decode_answers,
};
use crate::control_link::{AlterError, ControlLink};
use crate::quic_native::{Connection, Endpoint, Stream};
use crate::shard::Shard;
use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio_rt::sync::Notify;
use weir_net::frame::{FLAG_ERROR, FRAME_HEADER_BYTES, FrameHeader, encode_frame};
use weir_net::wire::Writer;
use weir_replication::{AlterPartition, AnswerVerdict, FetchRequest, NodeId, Output, PartitionId, ShardId};

/// How long a pair waits after a failed connection or call before the next.
const RECONNECT_DELAY_MS: u64 = 200;
/// Longest a fetch waits for its follower's flush to report a durable end that reaches its
/// fetch offset.
const FLUSH_WAIT_MS: u64 = 100;

type PairKey = (NodeId, ShardId);

/// The fetches queued for one leader shard, and the calls on their way to it.
#[derive(Debug, Default)]
struct Pair {
    queue: RefCell<Vec<FetchRequest>>,
    wake: Notify,
    calls: Cell<usize>,
}

/// Calls in flight to one leader shard at most, each on a stream of its own: a fetch never
/// waits behind more than this many held ones.
const PAIR_CALLS_MAX: usize = 4;

/// A follower shard's connection to a leader shard: the connection, the streams no call uses,
/// and the leader node's incarnation it was made to.
struct PairConnection {
    conn: Connection,
    idle: RefCell<Vec<Stream>>,
    incarnation: Option<u64>,
    /// A call or stream on it failed: the pair makes a new one.
    broken: Cell<bool>,
}

/// A shard's replication client. See the module documentation.
pub struct Fetcher {
    shard: Rc<Shard>,
    link: Arc<dyn ControlLink>,
    /// Woken when a replica of this shard put out a fetch or an ISR change.
    pub wake: Rc<Notify>,
    pairs: RefCell<HashMap<PairKey, Rc<Pair>>>,
    endpoint: RefCell<Option<Rc<Endpoint>>>,
    /// The partitions with an ISR change in flight to the controller (one each at most).
    altering: RefCell<HashSet<PartitionId>>,
    bucket: RefCell<TokenBucket>,
    next_correlation: Cell<u32>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").field("shard", &self.shard.id).finish_non_exhaustive()
    }
}

fn monotonic_ms(shard: &Shard) -> u64 {
    use crate::runtime::Runtime;
    shard.core().rt.monotonic_ms()
}

impl Fetcher {
    pub fn new(shard: Rc<Shard>, link: Arc<dyn ControlLink>) -> Rc<Self> {
        let rate = shard.config.replication_catchup_bytes_per_s_max;
        let bucket = TokenBucket::new(rate, monotonic_ms(&shard));
        Rc::new(Self {
            shard,
            link,
            wake: Rc::new(Notify::new()),
            pairs: RefCell::new(HashMap::new()),
            endpoint: RefCell::new(None),
            altering: RefCell::new(HashSet::new()),
            bucket: RefCell::new(bucket),
            next_correlation: Cell::new(0),
        })
    }

    /// Takes what the replicas put out, for as long as the shard runs: fetches to their leader
    /// shard's queue, ISR changes to the control link.
    pub async fn run(self: Rc<Self>) {
        loop {
            self.wake.notified().await;
            for p in self.shard.core().all_partitions() {
                let outputs: Vec<Output> = p.rep.outbox.borrow_mut().drain(..).collect();
                for o in outputs {
                    match o {
                        Output::Fetch { to, request } => self.queue_fetch(to, request),
                        Output::AlterPartition(req) => self.alter(req),
                        Output::ProduceDone { .. } => unreachable!("answered by the partition itself"),
                    }
                }
            }
        }
    }

    /// Queues `request` for the shard of node `to` that holds the partition's replica.
    fn queue_fetch(self: &Rc<Self>, to: NodeId, request: FetchRequest) {
        let shard = {
            let view = self.shard.core().cluster.borrow();
            let entry = view.as_ref().and_then(|v| v.meta.partitions.get(&request.partition).cloned());
            entry.and_then(|e| e.replicas.iter().find(|r| r.node == to).map(|r| r.shard))
        };
        let Some(shard) = shard else { return };
        let key = (to, shard);
        let pair = self.pairs.borrow().get(&key).cloned();
        let pair = pair.unwrap_or_else(|| {
            let pair = Rc::new(Pair::default());
            self.pairs.borrow_mut().insert(key, pair.clone());
            glommio::spawn_local(self.clone().run_pair(key, pair.clone())).detach();
            pair
        });
        let mut queue = pair.queue.borrow_mut();
        // One fetch per partition: a newer one replaces an older one still queued.
        queue.retain(|r| r.partition != request.partition);
        queue.push(request);
        pair.wake.notify_one();
    }

    /// Sends an ISR change to the controller and its answer back to the replica. At most one
    /// per partition is in flight: a replica proposes again after `alter_timeout_ms`, and while
    /// the controller does not answer, each retry would otherwise add a task that waits.
    fn alter(self: &Rc<Self>, req: AlterPartition) {
        if !self.altering.borrow_mut().insert(req.partition) {
            return tracing::debug!(
                partition = req.partition.0,
                "ISR change still in flight; this one dropped"
            );
        }
        let (this, answer) = (self.clone(), self.link.alter_partition(req.clone()));
        glommio::spawn_local(async move {
            let answered = answer.await;
            this.altering.borrow_mut().remove(&req.partition);
            let result = match answered {
                Ok(state) => Ok(state),
                Err(AlterError::Refused(e)) => Err(e),
                Err(e) => {
                    // Proposed again after `alter_timeout_ms`.
                    return tracing::warn!(partition = req.partition.0, error = %e, "ISR change unanswered");
                }
            };
            let Some(p) = this.shard.core().partition_by_id(req.partition) else { return };
            let now = monotonic_ms(&this.shard);
            p.rep.replica.borrow_mut().handle_alter_answer(now, &req, result);
            p.settle();
            p.rep.wake();
        })
        .detach();
    }

    /// One leader shard's fetch loop: a request with every fetch queued, on a stream of its own,
    /// up to [`PAIR_CALLS_MAX`] at once. A leader holds a fetch that finds nothing new (up to
    /// `REPLICA_FETCH_WAIT_MS`): with one call at a time, a partition whose fetch was queued
    /// behind a held one waited out the hold, and an acks=all produce to it took a second.
    async fn run_pair(self: Rc<Self>, key: PairKey, pair: Rc<Pair>) {
        // With the leader node's incarnation it was made to: a connection to an earlier process
        // of the node is dead (the new one cannot reset it), and waiting out a call on it would
        // stall the pair after every restart of the leader's node.
        let mut conn: Option<Rc<PairConnection>> = None;
        loop {
            if pair.queue.borrow().is_empty() || pair.calls.get() >= PAIR_CALLS_MAX {
                pair.wake.notified().await;
                continue;
            }
            let wait = self.bucket.borrow_mut().wait_ms(monotonic_ms(&self.shard));
            if wait > 0 {
                glommio::timer::sleep(Duration::from_millis(wait)).await;
            }
            let incarnation = self.incarnation(key.0);
            // Calls still on an old connection end by themselves (they time out).
            if conn.as_ref().is_some_and(|c| c.incarnation != incarnation || c.broken.get()) {
                conn = None;
            }
            if conn.is_none() {
                match with_timeout(CONNECT_TIMEOUT_MS, self.connect(key)).await {
                    Ok((c, s)) => {
                        let c = PairConnection {
                            conn: c,
                            idle: RefCell::new(vec![s]),
                            incarnation,
                            broken: Cell::new(false),
                        };
                        conn = Some(Rc::new(c));
                    }
                    Err(e) => {
                        tracing::warn!(leader = key.0.0, shard = key.1.0, error = %e, "cannot reach a leader");
                        glommio::timer::sleep(Duration::from_millis(RECONNECT_DELAY_MS)).await;
                        continue;
                    }
                }
            }
            let c = conn.clone().expect("connected above");
            let idle = c.idle.borrow_mut().pop();
            let stream = match idle {
                Some(s) => s,
                None => match with_timeout(CONNECT_TIMEOUT_MS, c.conn.open_bi()).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(leader = key.0.0, shard = key.1.0, error = %e, "cannot open a fetch stream");
                        c.broken.set(true);
                        glommio::timer::sleep(Duration::from_millis(RECONNECT_DELAY_MS)).await;
                        continue;
                    }
                },
            };
            let batch: Vec<FetchRequest> = {
                let mut queue = pair.queue.borrow_mut();
                let n = queue.len().min(REPLICA_FETCH_PARTITIONS_MAX);
                queue.drain(..n).collect()
            };
            let mut batch = batch;
            self.report_durable(&mut batch).await;
            pair.calls.set(pair.calls.get() + 1);
            let (this, pair) = (self.clone(), pair.clone());
            glommio::spawn_local(async move { this.run_call(key, &pair, c, stream, batch).await }).detach();
        }
    }

    /// One call of a pair on its own stream; the stream goes back to the connection's idle
    /// ones when the call succeeds. A leader that died (or restarted: its new process cannot
    /// reset the old connection) answers nothing: waiting for QUIC's idle timeout would stall
    /// the pair's partitions for as long, so the call times out and the connection is dropped.
    async fn run_call(
        &self,
        key: PairKey,
        pair: &Pair,
        c: Rc<PairConnection>,
        mut stream: Stream,
        batch: Vec<FetchRequest>,
    ) {
        match with_timeout(CALL_TIMEOUT_MS, self.call(&mut stream, batch)).await {
            Ok(answers) => {
                self.deliver(key.0, answers);
                c.idle.borrow_mut().push(stream);
            }
            Err(e) => {
                tracing::warn!(leader = key.0.0, shard = key.1.0, error = %e, "replica fetch failed");
                c.broken.set(true);
                glommio::timer::sleep(Duration::from_millis(RECONNECT_DELAY_MS)).await;
            }
        }
        pair.calls.set(pair.calls.get() - 1);
        pair.wake.notify_one();
    }

    /// A replica fetches again as soon as it appended, before its flush completes, so its
    /// fetch reports the durable end from before. The leader counts only durable ends towards
    /// the high watermark (and may hold a fetch that finds nothing new): waiting here for the
    /// flush (at most [`FLUSH_WAIT_MS`]) and reporting the durable end it reached lets acks=all
    /// complete at once. What is reported is true: durable, and within the fetch offset.
    async fn report_durable(&self, batch: &mut [FetchRequest]) {
        let deadline = monotonic_ms(&self.shard) + FLUSH_WAIT_MS;
        for req in batch.iter_mut().filter(|r| r.durable_offset < r.fetch_offset) {
            let Some(p) = self.shard.core().partition_by_id(req.partition) else { continue };
            loop {
                let mut settled = Box::pin(p.rep.settled.notified());
                settled.as_mut().enable();
                let durable = p.rep.replica.borrow().durable_end().min(req.fetch_offset);
                req.durable_offset = req.durable_offset.max(durable);
                let left = deadline.saturating_sub(monotonic_ms(&self.shard));
                if req.durable_offset >= req.fetch_offset || left == 0 {
                    break;
                }
                let timer = glommio::timer::sleep(Duration::from_millis(left));
                futures::future::select(settled, Box::pin(timer)).await;
            }
        }
    }

    /// The incarnation of `node` the metadata records (its latest start the controller acted on).
    fn incarnation(&self, node: NodeId) -> Option<u64> {
        let view = self.shard.core().cluster.borrow();
        view.as_ref().and_then(|v| v.meta.incarnations.get(&node).copied())
    }

    /// The leader shard's address, from the metadata.
    fn address(&self, (node, shard): PairKey) -> std::io::Result<SocketAddr> {
        let view = self.shard.core().cluster.borrow();
        let info = view.as_ref().and_then(|v| v.meta.nodes.get(&node).cloned());
        let unknown =
            || std::io::Error::other(format!("node {} has no address for shard {}", node.0, shard.0));
        let info = info.ok_or_else(unknown)?;
        let port = *info.shard_ports.get(shard.index()).ok_or_else(unknown)?;
        (info.host.as_str(), port).to_socket_addrs()?.next().ok_or_else(unknown)
    }

    async fn connect(&self, key: PairKey) -> std::io::Result<(Connection, Stream)> {
        let addr = self.address(key)?;
        let endpoint = self.endpoint()?;
        let config = self.client_config()?;
        // The leader must show a certificate for this name signed by the cluster CA.
        let name = weir_cluster::tls::node_dns_name(key.0);
        let conn = endpoint.connect(config, addr, &name).await?;
        let stream = conn.open_bi().await?;
        Ok((conn, stream))
    }

    /// Mutual TLS under the cluster CA (see "Trust" in `docs/cluster.md`): this node's
    /// certificate is presented, the leader's checked.
    fn client_config(&self) -> std::io::Result<quinn::ClientConfig> {
        let Some(identity) = self.link.identity() else {
            return Err(std::io::Error::other("this node has no cluster certificate to fetch with"));
        };
        let config = &self.shard.config;
        let (stream, connection) =
            (config.quic_stream_window_bytes_max, config.quic_connection_window_bytes_max);
        crate::cluster_tls::follower_config(&identity, stream, connection)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// The shard's client endpoint, bound on the node's listen address (any port).
    fn endpoint(&self) -> std::io::Result<Rc<Endpoint>> {
        if let Some(e) = self.endpoint.borrow().as_ref() {
            return Ok(e.clone());
        }
        let config = &self.shard.config;
        let busy_poll = Duration::from_micros(config.quic_busy_poll_us);
        let e = Endpoint::client(SocketAddr::new(config.listen.ip(), 0), busy_poll)?;
        *self.endpoint.borrow_mut() = Some(e.clone());
        Ok(e)
    }

    /// Sends one `ReplicaFetch` and reads its answer.
    async fn call(
        &self,
        stream: &mut Stream,
        partitions: Vec<FetchRequest>,
    ) -> std::io::Result<Vec<PartitionAnswer>> {
        let follower = self.link.node_id();
        let mut w = Writer::default();
        ReplicaFetch { follower, partitions }.encode(&mut w);
        let cid = self.next_correlation.get().wrapping_add(1);
        self.next_correlation.set(cid);
        stream.write_all(&encode_frame(REPLICA_FETCH_API, REPLICA_FETCH_VERSION, cid, 0, &w.buf)).await?;
        stream.flush().await?;
        let mut head = [0u8; FRAME_HEADER_BYTES];
        stream.read_exact(&mut head).await?;
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        // A leader sends at least one whole batch, up to `batch_bytes_max` (alike on every node).
        let bytes_max = FRAME_HEADER_BYTES + super::wire::answer_bytes_max(self.shard.config.batch_bytes_max);
        let header = FrameHeader::decode(&head, bytes_max).map_err(|e| bad(e.to_string()))?;
        let mut body = vec![0u8; header.body_len];
        stream.read_exact(&mut body).await?;
        if header.correlation_id != cid || header.flags & FLAG_ERROR != 0 {
            return Err(bad(format!("refused or mismatched answer (flags {})", header.flags)));
        }
        decode_answers(&Bytes::from(body)).map_err(|e| bad(e.to_string()))
    }

    /// Hands each answer to its replica; the batches are kept for the replica's append.
    fn deliver(&self, from: NodeId, answers: Vec<PartitionAnswer>) {
        let now = monotonic_ms(&self.shard);
        let bytes: usize = answers.iter().map(|a| a.batches.len()).sum();
        self.bucket.borrow_mut().spend(bytes, now);
        for PartitionAnswer { answer, batches } in answers {
            let Some(p) = self.shard.core().partition_by_id(answer.partition) else { continue };
            // Bytes are checked where they enter the process: an answer with a damaged batch,
            // one of a later epoch than the answer's, or offsets that do not run on from the
            // fetch offset is as good as lost (the replica fetches again after its timeout).
            if let Err(e) = check_fetched(&batches, &answer.body, answer.leader_epoch) {
                tracing::warn!(partition = %p.name, error = %e, "fetched batches refused; answer dropped");
                continue;
            }
            let verdict = p.rep.replica.borrow_mut().handle_fetch_answer(now, from, &answer);
            if verdict == AnswerVerdict::Append {
                p.rep.keep_fetched(answer.request_id, batches);
            }
            p.settle();
            p.rep.wake();
        }
    }
}

/// How long a follower waits for a leader's shard to accept its connection.
const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// How long a follower waits for the answer to a fetch: the longest a leader holds one, and
/// then some. Past it the connection is given up and made again.
const CALL_TIMEOUT_MS: u64 = super::serve::REPLICA_FETCH_WAIT_MS + 2_000;

/// `work`, or a `TimedOut` error once `ms` have passed.
async fn with_timeout<T>(
    ms: u64,
    work: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    let timer = glommio::timer::sleep(Duration::from_millis(ms));
    match futures::future::select(Box::pin(work), Box::pin(timer)).await {
        futures::future::Either::Left((done, _)) => done,
        futures::future::Either::Right(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {ms} ms")))
        }
    }
}

//! The producer: batches records per partition and sends them; each `send` resolves to the
//! record's offset once the node acknowledged its batch.
//!
//! A router task picks each record's partition and hands it to a worker task, one per address
//! (the partition leader's node, or its shard when shard-aware, from Metadata). A worker owns its
//! connection and one reusable batch builder per partition. A batch goes out when it is full
//! (`batch_bytes`) or `linger_ms` after its first record. The queues between the tasks are
//! bounded (`buffer_records_max`, [`REROUTES_MAX`]): `send` waits when they are full.
//!
//! A batch refused because the node asked does not lead its partition (`NotLeader`,
//! `NotOwner`, `LeaderNotAvailable`), or whose node stopped answering (its connection broke and
//! a new one is refused), goes back to the router, which asks for metadata again (of any
//! bootstrap address or known node; at most once per `retry_backoff_ms` per topic) and hands it
//! to the worker of the leader it names. Such rounds go on until the batch's delivery timeout,
//! not `retries`: an election takes what it takes. A batch goes to a leader metadata names anew
//! at once (as Kafka's producer does since KIP-951): its wait was for the election, not for that
//! node. While metadata still names the leader that refused it or does not answer, it goes back
//! there every `retry_backoff_ms`, metadata being asked again each time, so that a new leader
//! is found within about that much of its election. When no node answers for metadata, the
//! routes known stay, and the batch goes where they point. When a partition's leader moves,
//! the router takes the partition's batches back from the former leader's worker (once those
//! in flight there are answered) and hands them to the new leader's before any record queued
//! later: the partition keeps its order.
//!
//! Idempotent (the default, with acks=all): the producer takes a producer id at connect and
//! stamps each batch with its partition's next sequence; a batch sent again after its answer was
//! lost is recognised by the partition's leader (this one or the next) and stored once, and a
//! partition keeps the producer's order. Without idempotence delivery is at least once: a batch
//! whose answer was lost (the connection broke, or the node restarted after writing it) is sent
//! again and then stored twice. With more than one batch in
//! flight per connection (`max_in_flight`), a retried batch can also land after later batches of
//! its partition; `max_in_flight = 1` keeps each partition's order (a retried batch may still be
//! stored twice, back to back). Every record is answered within `delivery_timeout_ms` of its
//! queueing, retries included: acknowledged, refused, or failed with
//! [`ClientError::DeliveryTimeout`] (outcome unknown).

use super::connection::{Connection, Target};
use super::error::{ClientError, Result};
use super::idempotence::{SeqGuard, Sequences, init_producer_id, stamp};
use super::partitioner::partition_for_key;
use super::routing::TopicRoutes;
use crate::api::{Acks, Request, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio_rt::sync::{mpsc, oneshot};
use tokio_rt::time::Instant;
use weir_log::batch::{BatchBuilder, BuildError, ProducerStamp, Record};

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub linger_ms: u64,
    /// Largest batch the producer builds; at most the node's `batch_bytes_max`.
    pub batch_bytes: usize,
    /// Durability each batch waits for; `All` by default (as Kafka's producer).
    pub acks: Acks,
    /// Attempts after the first for a batch that failed with a retriable error, within
    /// `delivery_timeout_ms`; unlimited by default, as Kafka's producer: `delivery_timeout_ms`
    /// bounds the retries. A leader moving or being elected, and a node that does not answer,
    /// are waited for until `delivery_timeout_ms` whatever this says. A retried batch may
    /// already have been written (its answer was lost): delivery is at least once, and with
    /// `max_in_flight` above 1 a retry can reorder the partition.
    pub retries: u32,
    /// The wait before a retry: of a batch at a leader that refused it or does not answer while
    /// metadata names no other (metadata is asked again each time, as librdkafka's fast
    /// refresh), and, doubled per round up to [`RETRY_BACKOFF_MAX_MS`], before connecting again
    /// after a connection broke or while a partition has no leader. Also the shortest time
    /// between two metadata refreshes of a topic for batches refused at about the same time.
    pub retry_backoff_ms: u64,
    pub buffer_records_max: usize,
    /// Produce requests sent on the connection and not yet answered, at most. With more than
    /// one, a retried batch can land after a later one of the same partition (as in Kafka
    /// without idempotence); 1 keeps each partition's order. Per connection: with `shard_aware`,
    /// one per shard of the node.
    pub max_in_flight: usize,
    /// How long a record may take from `enqueue` to its acknowledgement, lingering, waiting for
    /// room, sending and retries included (Kafka's `delivery.timeout.ms`). Past it the record
    /// fails with [`ClientError::DeliveryTimeout`]; a batch fails when its oldest record's time
    /// is up. At least `linger_ms`.
    pub delivery_timeout_ms: u64,
    /// How long the node may wait for replicas before it answers a produce (the request's
    /// `timeout_ms`), at most: less when the batch's delivery deadline is nearer. At most
    /// `delivery_timeout_ms - linger_ms`, as Kafka's `request.timeout.ms`.
    pub request_timeout_ms: u64,
    /// Send each partition's batches to the shard that owns it, at the address Metadata gives
    /// for it; off, everything goes through the address the producer was given.
    pub shard_aware: bool,
    /// Idempotent (on by default, as Kafka's producer since 3.0; only with `acks` = `All`): the
    /// producer takes a producer id from the cluster, stamps each batch with its partition's
    /// next sequence, and a batch sent again after its answer was lost is recognised by the
    /// leader and stored once.
    pub idempotent: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger_ms: 5,
            batch_bytes: 1 << 20,
            acks: Acks::All,
            retries: u32::MAX,
            retry_backoff_ms: 100,
            buffer_records_max: 1 << 16,
            max_in_flight: 5,
            shard_aware: true,
            delivery_timeout_ms: 120_000,
            request_timeout_ms: 30_000,
            idempotent: true,
        }
    }
}

/// A record to send; `partition` overrides the key's partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: Option<u32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Milliseconds since the epoch; `None` stamps the time of `send`.
    pub timestamp: Option<i64>,
}

/// The pending acknowledgement of a queued record: resolves to its offset.
#[derive(Debug)]
pub struct Acknowledgement {
    rx: oneshot::Receiver<Result<u64>>,
}

impl Acknowledgement {
    /// Whether the answer has come. False also when no answer will ever come (the producer
    /// was dropped): awaiting it then returns `Closed` at once.
    pub fn is_answered(&self) -> bool {
        !self.rx.is_empty()
    }
}

impl std::future::Future for Acknowledgement {
    type Output = Result<u64>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<u64>> {
        std::pin::Pin::new(&mut self.rx).poll(cx).map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

enum Cmd {
    /// A record, where its answer goes, and when it was queued.
    Send(ProducerRecord, oneshot::Sender<Result<u64>>, Instant),
    Flush(oneshot::Sender<()>),
}

/// Sends records to a node. Cheap to share by reference across tasks. Delivery is at least once
/// (see the module docs): a record acknowledged once may be stored twice.
#[derive(Debug)]
pub struct Producer {
    tx: mpsc::Sender<Cmd>,
    task: tokio_rt::task::JoinHandle<()>,
}

impl Producer {
    pub async fn connect(target: &Target, config: ProducerConfig) -> Result<Self> {
        if config.batch_bytes < 4096 {
            return Err(ClientError::InvalidArgument("batch_bytes must be at least 4096".into()));
        }
        if config.max_in_flight == 0 {
            return Err(ClientError::InvalidArgument("max_in_flight must be at least 1".into()));
        }
        if config.request_timeout_ms == 0 {
            return Err(ClientError::Config {
                setting: "request_timeout_ms",
                reason: "must be above 0".into(),
            });
        }
        if config.delivery_timeout_ms < config.linger_ms.saturating_add(config.request_timeout_ms) {
            return Err(ClientError::Config {
                setting: "delivery_timeout_ms",
                reason: format!(
                    "{} is less than linger_ms + request_timeout_ms ({} + {}): a batch could not \
                     wait for its answer",
                    config.delivery_timeout_ms, config.linger_ms, config.request_timeout_ms
                ),
            });
        }
        let mut bootstrap = Connection::connect(target).await?;
        let seqs = match config.idempotent && config.acks == Acks::All {
            true => Some(Arc::new(Sequences::new(init_producer_id(&mut bootstrap, &config).await?))),
            false => None,
        };
        let bootstrap = Some(bootstrap);
        let (tx, rx) = mpsc::channel(config.buffer_records_max.max(1));
        let (reroute_tx, reroute_rx) = mpsc::channel(REROUTES_MAX);
        let router = Router {
            bootstrap,
            target: target.clone(),
            known_nodes: Vec::new(),
            config,
            topics: HashMap::new(),
            workers: HashMap::new(),
            aliases: HashMap::new(),
            sticky: HashMap::new(),
            reroute_tx,
            deferred: VecDeque::new(),
            seqs,
        };
        Ok(Self { tx, task: tokio_rt::spawn(route(router, rx, reroute_rx)) })
    }

    /// Queues a record, waiting only for room in the queue, and returns the future of its
    /// acknowledgement. Records queued one after another by one task keep that order in their
    /// partition: this is how to pipeline sends and keep per-key order.
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<Acknowledgement> {
        let (tx, rx) = oneshot::channel();
        // The delivery timeout counts from here, so the wait for room in the queue counts too.
        let queued = Instant::now();
        self.tx.send(Cmd::Send(record, tx, queued)).await.map_err(|_| ClientError::Closed)?;
        Ok(Acknowledgement { rx })
    }

    /// Queues a record and waits for its offset.
    pub async fn send(&self, record: ProducerRecord) -> Result<u64> {
        self.enqueue(record).await?.await
    }

    /// Sends everything queued so far and waits for the answers.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Flush(tx)).await.map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Flushes and stops the background tasks.
    pub async fn close(self) -> Result<()> {
        self.flush().await?;
        drop(self.tx);
        let _ = self.task.await;
        Ok(())
    }
}

/// Where a topic's partitions go: the topic's metadata, and once known, the worker each
/// partition's records go to (looked up once, not per record).
struct TopicRoute {
    name: Arc<str>,
    routes: TopicRoutes,
    /// Partitions as Metadata counts them.
    count: u32,
    /// Per partition, the leader address metadata named when the worker was picked, and the
    /// worker. Kept across refreshes: a partition whose leader moved is taken back from the
    /// worker it had (see [`Router::move_partition`]).
    workers: Vec<Option<(String, mpsc::Sender<WorkerCmd>)>>,
    /// When metadata of the topic was last asked for: refreshes are at most one per
    /// `retry_backoff_ms`, however many batches come back at once.
    refreshed: Instant,
}

/// Batches refused by a node that does not lead their partition, on their way back to the
/// router, at most; and as many again that the router takes while it waits on a worker. A
/// worker that finds the queue full waits for room, no longer than its batch may.
pub const REROUTES_MAX: usize = 256;

/// The longest wait between two attempts at a partition whose leader is moving or not
/// elected, or at an address that does not answer: the backoff doubles from
/// `retry_backoff_ms` up to this.
/// Beyond `request_timeout_ms` (which the node is asked to answer within), how long the
/// producer waits for an answer before it gives the connection up.
pub const ANSWER_GRACE_MS: u64 = 1_000;
pub const RETRY_BACKOFF_MAX_MS: u64 = 1_000;

/// The wait before attempt `attempt` (1 the first retry): `retry_backoff_ms` doubled per
/// attempt, at most [`RETRY_BACKOFF_MAX_MS`] (or `retry_backoff_ms` if that is larger).
fn backoff(config: &ProducerConfig, attempt: u32) -> Duration {
    let doubled = config.retry_backoff_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    Duration::from_millis(doubled.min(RETRY_BACKOFF_MAX_MS.max(config.retry_backoff_ms)))
}

/// A partition's batch in a worker: the topic, shared rather than copied per record.
pub(super) type BatchKey = (Arc<str>, u32);

/// Unkeyed records of a topic go to one partition until about a batch of them went there.
struct Sticky {
    partition: u32,
    bytes: usize,
}

/// A worker: one connection, the batches of the partitions routed to it.
struct WorkerHandle {
    tx: mpsc::Sender<WorkerCmd>,
    task: tokio_rt::task::JoinHandle<()>,
}

enum WorkerCmd {
    Send(Arc<str>, u32, ProducerRecord, oneshot::Sender<Result<u64>>, Instant),
    /// A sealed batch to send here, not before the instant: the one that led its partition
    /// refused it with the error, or it was taken back from the worker of its former leader.
    Resend(InFlight, ClientError, Instant),
    /// The partition moved to another worker: answer with its batches not yet acknowledged,
    /// oldest first, once those in flight here are answered. Queued behind every record the
    /// router sent here before, so nothing of the partition stays behind.
    Release(BatchKey, oneshot::Sender<VecDeque<Reroute>>),
    /// A batch of the partition this worker sent back to the router failed there: it will not
    /// come back.
    Gone(BatchKey),
    Flush(oneshot::Sender<()>),
}

/// Picks each record's partition and hands it to the worker of the partition's leader: with
/// `shard_aware`, a connection to the leader's shard's own address (from Metadata), so the node
/// never forwards the batch between shards. A partition goes to the same worker until its
/// leader changes; then its batches are taken back from the former worker and go to the new
/// one before any newer record, so the partition keeps its order.
struct Router {
    /// A connection to the bootstrap list (or a known node): metadata, and partitions without a
    /// leader address. `None` after a failure or an abandoned call, until the next metadata
    /// request connects.
    bootstrap: Option<Connection>,
    target: Target,
    /// Client addresses of the nodes the last metadata named: asked when no bootstrap address
    /// answers.
    known_nodes: Vec<String>,
    config: ProducerConfig,
    topics: HashMap<String, TopicRoute>,
    workers: HashMap<String, WorkerHandle>,
    /// Shard addresses that could not be reached, and the address used instead.
    aliases: HashMap<String, String>,
    sticky: HashMap<String, Sticky>,
    /// The idempotent producer's sequences, shared with every worker.
    seqs: Option<Arc<Sequences>>,
    /// Where workers send back the batches a node refused as not its partition's leader.
    reroute_tx: mpsc::Sender<Reroute>,
    /// Batches taken from the reroute queue while the router waited on a worker (so that a
    /// worker waiting for room there is not stuck), handled before the queue: at most
    /// [`REROUTES_MAX`] taken so, plus those a worker handed over with a released partition
    /// (at most its `max_in_flight`).
    deferred: VecDeque<Reroute>,
}

/// A batch refused because the node asked does not lead its partition, or whose node does not
/// answer.
struct Reroute {
    batch: InFlight,
    error: ClientError,
    /// The address of the worker that sends it back: where it goes again when metadata cannot
    /// be had.
    from: String,
}

async fn route(mut r: Router, mut rx: mpsc::Receiver<Cmd>, mut reroutes: mpsc::Receiver<Reroute>) {
    loop {
        // Batches sent back are older than any record still queued: they go first.
        if let Some(back) = r.deferred.pop_front() {
            r.reroute(back, &mut reroutes).await;
            continue;
        }
        tokio_rt::select! {
            biased;
            Some(back) = reroutes.recv() => r.reroute(back, &mut reroutes).await,
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(record, reply, queued)) => r.dispatch(record, reply, queued, &mut reroutes).await,
                Some(Cmd::Flush(done)) => {
                    r.flush_workers(&mut reroutes).await;
                    let _ = done.send(());
                }
                None => break,
            },
        }
    }
    r.shut_down(reroutes).await;
}

impl Router {
    /// A connection for metadata: the one kept, else a new one to the first bootstrap address
    /// that answers, else to a node the last metadata named.
    async fn metadata_conn(&mut self) -> Result<&mut Connection> {
        if self.bootstrap.is_none() {
            let c = match Connection::connect(&self.target).await {
                Ok(c) => c,
                Err(e) if self.known_nodes.is_empty() => return Err(e),
                Err(_) => Connection::connect(&self.target.with_addr(self.known_nodes.join(","))).await?,
            };
            self.bootstrap = Some(c);
        }
        Ok(self.bootstrap.as_mut().expect("connected above"))
    }

    /// Drops the metadata connection, and puts the address it went to last in the bootstrap
    /// list: the next connection tries the others first (that node may be down, or still
    /// joining its cluster).
    fn next_bootstrap(&mut self) {
        self.bootstrap = None;
        let mut addrs: Vec<String> = self.target.addrs().into_iter().map(str::to_owned).collect();
        if addrs.len() > 1 {
            addrs.rotate_left(1);
            self.target = self.target.with_addr(addrs.join(","));
        }
    }

    /// Metadata of `topic`, connecting again once if the kept connection failed.
    async fn fetch_routes(&mut self, topic: &str) -> Result<TopicRoutes> {
        for attempt in 0..2 {
            let fetched = TopicRoutes::fetch(self.metadata_conn().await?, topic).await;
            match fetched.and_then(|r| r.check().map(|()| r)) {
                Err(e) if e.is_retriable() && attempt == 0 => self.next_bootstrap(),
                Err(e) => {
                    if e.is_retriable() {
                        self.next_bootstrap();
                    }
                    return Err(e);
                }
                Ok(routes) => {
                    let nodes = routes.node_addrs();
                    if !nodes.is_empty() {
                        self.known_nodes = nodes;
                    }
                    return Ok(routes);
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Metadata of `topic` asked for again, no later than `expires`, unless it was asked for
    /// after `since` (when the refused batch was sent) and less than `retry_backoff_ms` ago:
    /// one refresh answers every batch refused at about the same time. What was known stays
    /// when no answer comes: the partitions go where it points until an answer says otherwise.
    async fn refresh(&mut self, topic: &str, expires: Instant, since: Instant) -> Result<()> {
        let window = Duration::from_millis(self.config.retry_backoff_ms);
        let Some(known) = self.topics.get_mut(topic) else { return Ok(()) };
        if known.refreshed >= since && known.refreshed + window > Instant::now() {
            return Ok(());
        }
        known.refreshed = Instant::now();
        let routes = match tokio_rt::time::timeout_at(expires, self.fetch_routes(topic)).await {
            Ok(r) => r?,
            Err(_) => {
                // The call was abandoned mid-way: its answer would meet the next request.
                self.bootstrap = None;
                return Err(gave_up("asking for metadata"));
            }
        };
        let known = self.topics.get_mut(topic).expect("known above");
        known.count = routes.topic.partitions.len() as u32;
        known.workers.resize(known.count as usize, None);
        known.routes = routes;
        Ok(())
    }

    async fn topic(&mut self, topic: &str) -> Result<&TopicRoute> {
        if !self.topics.contains_key(topic) {
            let routes = self.fetch_routes(topic).await?;
            let count = routes.topic.partitions.len() as u32;
            let workers = vec![None; count as usize];
            let refreshed = Instant::now();
            let route = TopicRoute { name: topic.into(), routes, count, workers, refreshed };
            self.topics.insert(topic.to_owned(), route);
        }
        Ok(&self.topics[topic])
    }

    /// The partition count of `topic`, asking for its metadata (again, after a backoff, while
    /// no node answers) no later than `expires`; `None` when time ran out.
    async fn partition_count(&mut self, topic: &str, expires: Instant) -> Result<Option<u32>> {
        for round in 1.. {
            match tokio_rt::time::timeout_at(expires, self.topic(topic)).await {
                Ok(Ok(t)) => return Ok(Some(t.count)),
                Ok(Err(e)) if !e.is_retriable() => return Err(e),
                Ok(Err(e)) => {
                    tracing::warn!(topic, error = %e, "no metadata; asking again");
                    let until = Instant::now() + backoff(&self.config, round);
                    if until >= expires {
                        return Ok(None);
                    }
                    tokio_rt::time::sleep_until(until).await;
                }
                Err(_) => {
                    // The call was abandoned mid-way: its answer would meet the next request.
                    self.bootstrap = None;
                    return Ok(None);
                }
            }
        }
        unreachable!("the rounds end by returning")
    }

    async fn dispatch(
        &mut self,
        r: ProducerRecord,
        reply: oneshot::Sender<Result<u64>>,
        queued: Instant,
        reroutes: &mut mpsc::Receiver<Reroute>,
    ) {
        let timeout_ms = self.config.delivery_timeout_ms;
        let expires = queued + Duration::from_millis(timeout_ms);
        // A known topic answers at once, even past the deadline (the worker then fails the
        // record); looking one up waits no longer than the record may.
        let count = match self.partition_count(&r.topic, expires).await {
            Ok(Some(count)) => count,
            Ok(None) => {
                let _ = reply.send(Err(delivery_timeout(queued, timeout_ms)));
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let partition = match self.pick_partition(&r, count) {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let worker = match self.partition_worker(&r.topic, partition, expires).await {
            Ok(w) => w,
            Err(e) => {
                let _ = reply.send(Err(e.unwrap_or_else(|| delivery_timeout(queued, timeout_ms))));
                return;
            }
        };
        let name = self.topics[&r.topic].name.clone();
        let worker = self.moved_to(worker, (name.clone(), partition), reroutes).await;
        match self.room(&worker, reroutes).await {
            Some(room) => room.send(WorkerCmd::Send(name, partition, r, reply, queued)),
            None => drop(reply.send(Err(ClientError::Closed))),
        }
    }

    fn pick_partition(&mut self, r: &ProducerRecord, count: u32) -> Result<u32> {
        if count == 0 {
            return Err(ClientError::InvalidArgument(format!("{} has no partitions", r.topic)));
        }
        Ok(match (r.partition, &r.key) {
            (Some(p), _) if p >= count => {
                return Err(ClientError::InvalidArgument(format!("{} has {count} partitions", r.topic)));
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => {
                let size = r.value.as_ref().map_or(0, Vec::len) + 16;
                let batch_bytes = self.config.batch_bytes;
                let s = self
                    .sticky
                    .entry(r.topic.clone())
                    .or_insert_with(|| Sticky { partition: now_ms() as u32 % count, bytes: 0 });
                s.bytes += size;
                if s.bytes > batch_bytes {
                    s.partition = (s.partition + 1) % count;
                    s.bytes = size;
                }
                s.partition % count
            }
        })
    }

    /// The worker of `partition`'s leader, and the worker the partition had before when that
    /// is another (its leader moved: see [`move_partition`](Self::move_partition)). While the
    /// partition has no leader, metadata is asked again after a growing backoff, up to
    /// `expires`. `Err(None)` when time ran out.
    async fn partition_worker(&mut self, topic: &str, partition: u32, expires: Instant) -> WorkerPick {
        for round in 1.. {
            if self.partition_count(topic, expires).await.map_err(Some)?.is_none() {
                return Err(None);
            }
            let route = &self.topics[topic];
            let addr = match route.routes.leader_addr(partition, self.config.shard_aware) {
                Ok(addr) => addr.unwrap_or_else(|| self.target.addr.clone()),
                Err(e) if e.is_retriable() => {
                    tracing::warn!(topic, partition, error = %e, "no leader; asking for metadata again");
                    let since = Instant::now();
                    let until = since + backoff(&self.config, round);
                    if until >= expires {
                        return Err(None);
                    }
                    tokio_rt::time::sleep_until(until).await;
                    if let Err(e) = self.refresh(topic, expires, since).await {
                        tracing::warn!(topic, error = %e, "no metadata; keeping the routes known");
                    }
                    continue;
                }
                Err(e) => return Err(Some(e)),
            };
            let before = route.workers.get(partition as usize).cloned().flatten();
            if let Some((was, w)) = &before
                && *was == addr
            {
                return Ok((w.clone(), None));
            }
            let worker = match tokio_rt::time::timeout_at(expires, self.worker(addr.clone())).await {
                Ok(Some(worker)) => worker,
                Ok(None) => {
                    let source = std::io::Error::other("no connection to the node");
                    return Err(Some(ClientError::Connect { addr: self.target.addr.clone(), source }));
                }
                Err(_) => return Err(None),
            };
            if let Some(slot) = self.topics.get_mut(topic).and_then(|t| t.workers.get_mut(partition as usize))
            {
                *slot = Some((addr, worker.clone()));
            }
            let former = before.map(|(_, w)| w).filter(|w| !w.same_channel(&worker));
            return Ok((worker, former));
        }
        unreachable!("the rounds end by returning")
    }

    /// The worker a partition goes to from now on; when it moved there from another, first
    /// takes its batches back from the former worker and hands them to the new one, so that
    /// they go before any newer record of the partition.
    async fn moved_to(
        &mut self,
        (worker, former): (mpsc::Sender<WorkerCmd>, Option<mpsc::Sender<WorkerCmd>>),
        key: BatchKey,
        reroutes: &mut mpsc::Receiver<Reroute>,
    ) -> mpsc::Sender<WorkerCmd> {
        let Some(former) = former else { return worker };
        let moved = self.move_partition(key, &former, reroutes).await;
        let error = leader_moved();
        // The leader moved: they go at once.
        for f in moved {
            self.hand_over(&worker, f, error.duplicate(), Instant::now(), reroutes).await;
        }
        worker
    }

    /// Takes back from `former` the batches of `key` it holds (once those in flight there are
    /// answered) and those it sent back meanwhile, oldest first.
    async fn move_partition(
        &mut self,
        key: BatchKey,
        former: &mpsc::Sender<WorkerCmd>,
        reroutes: &mut mpsc::Receiver<Reroute>,
    ) -> VecDeque<InFlight> {
        tracing::debug!(topic = %key.0, partition = key.1, "leader moved; taking the partition's batches back");
        let (tx, rx) = oneshot::channel();
        let Some(room) = self.room(former, reroutes).await else { return VecDeque::new() };
        room.send(WorkerCmd::Release(key.clone(), tx));
        let held = self.wait_draining(rx, reroutes).await.unwrap_or_default();
        // What the former worker sent back before it answered is in the queue by now, and older
        // than what it held.
        while self.deferred.len() < REROUTES_MAX {
            let Ok(back) = reroutes.try_recv() else { break };
            self.deferred.push_back(back);
        }
        // Batches of other partitions it held go after those already sent back.
        let (mine, others): (VecDeque<Reroute>, VecDeque<Reroute>) =
            std::mem::take(&mut self.deferred).into_iter().chain(held).partition(|r| r.batch.key == key);
        self.deferred = others;
        mine.into_iter().map(|r| r.batch).collect()
    }

    /// Hands a batch to a worker to send, not before `not_before`; fails it if the worker is
    /// gone.
    async fn hand_over(
        &mut self,
        worker: &mpsc::Sender<WorkerCmd>,
        f: InFlight,
        error: ClientError,
        not_before: Instant,
        reroutes: &mut mpsc::Receiver<Reroute>,
    ) {
        match self.room(worker, reroutes).await {
            Some(room) => room.send(WorkerCmd::Resend(f, error, not_before)),
            None => fail(f.replies, &final_error(&ClientError::Closed, f.maybe_written)),
        }
    }

    /// Room in a worker's queue (`None`: the worker is gone), taking batches from the reroute
    /// queue meanwhile as [`wait_draining`](Self::wait_draining) does: the worker may be
    /// waiting for room there.
    async fn room<'w>(
        &mut self,
        worker: &'w mpsc::Sender<WorkerCmd>,
        reroutes: &mut mpsc::Receiver<Reroute>,
    ) -> Option<mpsc::Permit<'w, WorkerCmd>> {
        loop {
            let room = self.deferred.len() < REROUTES_MAX;
            tokio_rt::select! {
                permit = worker.reserve() => return permit.ok(),
                Some(back) = reroutes.recv(), if room => self.deferred.push_back(back),
            }
        }
    }

    /// Waits for a worker's answer while taking batches from the reroute queue (as far as
    /// [`REROUTES_MAX`] of them), so that a worker waiting for room there can answer.
    async fn wait_draining<T>(
        &mut self,
        mut rx: oneshot::Receiver<T>,
        reroutes: &mut mpsc::Receiver<Reroute>,
    ) -> Option<T> {
        loop {
            let room = self.deferred.len() < REROUTES_MAX;
            tokio_rt::select! {
                answer = &mut rx => return answer.ok(),
                Some(back) = reroutes.recv(), if room => self.deferred.push_back(back),
            }
        }
    }

    /// A batch refused by a node that does not lead its partition, or whose node does not
    /// answer: ask for metadata again (unless it was just asked for) and hand it to the worker
    /// of the leader named, which sends it at once if the leader changed, else after
    /// `retry_backoff_ms`. When no node answers for metadata,
    /// it goes where the routes known point, or back to the worker it came from.
    async fn reroute(&mut self, back: Reroute, reroutes: &mut mpsc::Receiver<Reroute>) {
        let Reroute { batch, error, from } = back;
        let topic = batch.key.0.to_string();
        // An address unreachable before may answer now: its node may lead again.
        self.aliases.clear();
        let expires = batch.queued + Duration::from_millis(self.config.delivery_timeout_ms);
        if let Err(e) = self.refresh(&topic, expires, batch.sent).await {
            tracing::warn!(topic, error = %e, "no metadata; keeping the routes known");
        }
        let picked = match self.partition_worker(&topic, batch.key.1, expires).await {
            Err(Some(e)) if e.is_retriable() && !e.is_server_error() => {
                self.workers.get(&from).map(|w| (w.tx.clone(), None)).ok_or(Some(e))
            }
            other => other,
        };
        match picked {
            Ok((worker, former)) => {
                // To the leader it left (metadata names no other yet): again after the pause,
                // and metadata again. To another: at once. The oldest batch of the partition
                // goes first; those taken back follow.
                let unmoved = self.workers.get(&from).is_some_and(|w| w.tx.same_channel(&worker));
                let pause = Duration::from_millis(if unmoved { self.config.retry_backoff_ms } else { 0 });
                let not_before = Instant::now() + pause;
                let key = batch.key.clone();
                self.hand_over(&worker, batch, error, not_before, reroutes).await;
                self.moved_to((worker, former), key, reroutes).await;
            }
            Err(e) => {
                let e = e.unwrap_or_else(|| delivery_timeout(batch.queued, self.config.delivery_timeout_ms));
                let key = batch.key.clone();
                fail(batch.replies, &final_error(&e, batch.maybe_written));
                if let Some(w) = self.workers.get(&from).map(|w| w.tx.clone())
                    && let Some(room) = self.room(&w, reroutes).await
                {
                    room.send(WorkerCmd::Gone(key));
                }
            }
        }
    }

    /// The worker for `addr`, connecting it on first use. A shard address that cannot be reached
    /// falls back to the bootstrap address, for good: the node forwards from there.
    async fn worker(&mut self, addr: String) -> Option<mpsc::Sender<WorkerCmd>> {
        let addr = self.aliases.get(&addr).cloned().unwrap_or(addr);
        if let Some(w) = self.workers.get(&addr) {
            return Some(w.tx.clone());
        }
        let target = self.target.with_addr(addr.clone());
        let conn = match Connection::connect(&target).await {
            Ok(c) => c,
            Err(e) if addr != self.target.addr => {
                tracing::warn!(%addr, error = %e, "leader address unreachable; sending through the bootstrap address");
                self.aliases.insert(addr, self.target.addr.clone());
                return Box::pin(self.worker(self.target.addr.clone())).await;
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot connect");
                return None;
            }
        };
        let (tx, rx) = mpsc::channel(self.config.buffer_records_max.max(1));
        let worker = Worker {
            conn: Some(conn),
            target,
            config: self.config.clone(),
            batches: HashMap::new(),
            in_flight: VecDeque::new(),
            reroute: self.reroute_tx.clone(),
            releasing: None,
            away: HashMap::new(),
            seqs: self.seqs.clone(),
        };
        let task = tokio_rt::spawn(run(worker, rx));
        self.workers.insert(addr, WorkerHandle { tx: tx.clone(), task });
        Some(tx)
    }

    /// Flushes every worker, and the batches they send back to be rerouted meanwhile, until a
    /// round sends none back: every record queued before is then answered.
    async fn flush_workers(&mut self, reroutes: &mut mpsc::Receiver<Reroute>) {
        loop {
            let mut waits = Vec::new();
            let workers: Vec<_> = self.workers.values().map(|w| w.tx.clone()).collect();
            for w in workers {
                let (tx, rx) = oneshot::channel();
                if let Some(room) = self.room(&w, reroutes).await {
                    room.send(WorkerCmd::Flush(tx));
                    waits.push(rx);
                }
            }
            for rx in waits {
                self.wait_draining(rx, reroutes).await;
            }
            // A worker sends a batch back before it answers the flush: all are queued by now.
            while let Ok(back) = reroutes.try_recv() {
                self.deferred.push_back(back);
                if self.deferred.len() >= REROUTES_MAX {
                    break;
                }
            }
            if self.deferred.is_empty() {
                return;
            }
            while let Some(back) = self.deferred.pop_front() {
                self.reroute(back, reroutes).await;
            }
        }
    }

    /// The producer is gone: everything queued is sent (rerouted as needed) and answered, then
    /// each worker ends once every sender of its queue is gone (the routes hold clones too).
    /// A batch sent back after that fails, said maybe written if it may be.
    async fn shut_down(mut self, mut reroutes: mpsc::Receiver<Reroute>) {
        self.flush_workers(&mut reroutes).await;
        self.topics.clear();
        let closed = |back: Reroute| {
            fail(back.batch.replies, &final_error(&ClientError::Closed, back.batch.maybe_written))
        };
        for back in self.deferred.drain(..) {
            closed(back);
        }
        for (_, w) in self.workers.drain() {
            drop(w.tx);
            let mut task = w.task;
            loop {
                tokio_rt::select! {
                    _ = &mut task => break,
                    Some(back) = reroutes.recv() => closed(back),
                }
            }
        }
        while let Ok(back) = reroutes.try_recv() {
            closed(back);
        }
    }
}

/// Why a batch taken back from a former leader's worker is sent again.
fn leader_moved() -> ClientError {
    ClientError::Server {
        code: crate::error::ErrorCode::NotLeader,
        message: "the partition's leader moved".into(),
    }
}

/// A partition's worker, and the one it had before if its leader moved.
type WorkerPick =
    std::result::Result<(mpsc::Sender<WorkerCmd>, Option<mpsc::Sender<WorkerCmd>>), Option<ClientError>>;

struct Pending {
    builder: BatchBuilder,
    replies: Vec<oneshot::Sender<Result<u64>>>,
    /// When the batch goes out if it does not fill first; set by its first record.
    deadline: Instant,
    /// When its first (oldest) record was queued: the batch's delivery timeout counts from here.
    queued: Instant,
}

struct Worker {
    /// `None` once the connection broke or was given up with answers outstanding: the next send
    /// connects again, so that no late answer meets a new request. Some while a batch is in
    /// flight.
    conn: Option<Connection>,
    target: Target,
    config: ProducerConfig,
    batches: HashMap<BatchKey, Pending>,
    /// Batches sent and not yet answered, oldest first.
    in_flight: VecDeque<InFlight>,
    /// To the router: batches this address refused as not their partition's leader.
    reroute: mpsc::Sender<Reroute>,
    /// While a partition is taken back (see [`WorkerCmd::Release`]), the batches sent back
    /// meanwhile, of any partition: they go to the router with the answer, not through the
    /// reroute queue (the router, waiting for the answer, may have no room left to take them).
    /// At most `max_in_flight` (only batches in flight come back).
    releasing: Option<VecDeque<Reroute>>,
    /// Per partition, its batches sent back to the router that have not come back (as a
    /// [`WorkerCmd::Resend`], a [`WorkerCmd::Gone`], or the partition released). While any is
    /// away, the partition's newer batches follow it through the router instead of going out
    /// here: a connection that answers again must not take them before the older one.
    away: HashMap<BatchKey, usize>,
    seqs: Option<Arc<Sequences>>,
}

/// A batch on the wire, or waiting to go (again).
struct InFlight {
    key: BatchKey,
    batch: weir_log::batch::Batch,
    replies: Vec<oneshot::Sender<Result<u64>>>,
    request: super::connection::Pending,
    attempt: u32,
    /// When the batch's oldest record was queued.
    queued: Instant,
    /// When the batch was last sent (when queued, before it was).
    sent: Instant,
    /// An attempt reached the node and its answer was lost, or the node could not tell: if the
    /// batch fails in the end, it may have been written all the same.
    maybe_written: bool,
    /// An idempotent producer's batch: its sequence, given up unless it is acknowledged.
    seq: Option<SeqGuard>,
}

impl InFlight {
    fn new(
        key: BatchKey,
        batch: weir_log::batch::Batch,
        replies: Vec<oneshot::Sender<Result<u64>>>,
        queued: Instant,
        seq: Option<SeqGuard>,
    ) -> Self {
        let request = super::connection::Pending::placeholder();
        Self { key, batch, replies, request, attempt: 0, queued, sent: queued, maybe_written: false, seq }
    }
}

/// Records a worker takes from its queue in one go before it looks at answers and deadlines.
const COMMANDS_PER_PASS_MAX: usize = 1024;

async fn run(mut w: Worker, mut rx: mpsc::Receiver<WorkerCmd>) {
    loop {
        let next_deadline = w.batches.values().filter(|p| !p.builder.is_empty()).map(|p| p.deadline).min();
        let far = Instant::now() + Duration::from_secs(86_400);
        let oldest = w.in_flight.front().map(|f| f.request);
        let expiry = w.in_flight_expiry();
        tokio_rt::select! {
            cmd = rx.recv() => {
                // Then what else is queued, up to a bound, before going round again: one pass
                // over deadlines and timers per burst of records rather than per record.
                let mut cmd = cmd;
                for taken in 1.. {
                    match cmd {
                        Some(WorkerCmd::Send(topic, partition, record, reply, queued)) => {
                            w.add(topic, partition, record, reply, queued).await
                        }
                        Some(WorkerCmd::Resend(f, e, not_before)) => {
                            w.came_back(&f.key);
                            w.resend_here(f, e, not_before).await
                        }
                        Some(WorkerCmd::Gone(key)) => w.came_back(&key),
                        Some(WorkerCmd::Release(key, done)) => {
                            let held = w.release(key).await;
                            let _ = done.send(held);
                        }
                        Some(WorkerCmd::Flush(done)) => {
                            w.send_due(far).await;
                            w.drain().await;
                            let _ = done.send(());
                        }
                        None => {
                            w.send_due(far).await;
                            w.drain().await;
                            return;
                        }
                    }
                    if taken == COMMANDS_PER_PASS_MAX {
                        break;
                    }
                    cmd = match rx.try_recv() {
                        Ok(c) => Some(c),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    };
                }
            }
            () = tokio_rt::time::sleep_until(next_deadline.unwrap_or(far)), if next_deadline.is_some() => {
                w.send_due(Instant::now()).await;
            }
            // Only the read is raced (it is cancel-safe); handling the answer, retries included,
            // runs to completion in the branch's body. (A disabled branch's expression is still
            // evaluated, hence the placeholder rather than an unwrap.)
            received = receive(&mut w.conn, oldest.unwrap_or(super::connection::Pending::placeholder())), if oldest.is_some() => {
                w.answered(received).await
            }
            () = tokio_rt::time::sleep_until(expiry.unwrap_or(far)), if expiry.is_some() => w.expire().await,
        }
    }
}

/// The answer to `request` on the worker's connection, which is there while a batch is in
/// flight.
async fn receive(
    conn: &mut Option<Connection>,
    request: super::connection::Pending,
) -> Result<super::connection::ResponseFrame> {
    conn.as_mut().expect("a connection while batches are in flight").receive(request).await
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn delivery_timeout(queued: Instant, delivery_timeout_ms: u64) -> ClientError {
    ClientError::DeliveryTimeout { elapsed_ms: queued.elapsed().as_millis() as u64, delivery_timeout_ms }
}

/// A network step abandoned because the delivery timeout of the batches waiting on it came.
fn gave_up(what: &str) -> ClientError {
    ClientError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what}: out of time")))
}

/// How long the node may wait for replicas before it answers a batch queued at `queued`:
/// `request_timeout_ms`, or the time left to the batch's delivery deadline if less.
fn request_timeout_ms(config: &ProducerConfig, queued: Instant) -> u32 {
    let expires = queued + Duration::from_millis(config.delivery_timeout_ms);
    let left = expires.saturating_duration_since(Instant::now()).as_millis();
    left.min(u128::from(config.request_timeout_ms)).min(u128::from(u32::MAX)) as u32
}

/// A produce request for a batch; the node may wait for replicas `timeout_ms`.
fn produce_request<'a>(
    key: &BatchKey,
    batch: &'a weir_log::batch::Batch,
    acks: Acks,
    timeout_ms: u32,
) -> Request<'a> {
    Request::Produce {
        topic: key.0.to_string(),
        partition: key.1,
        acks,
        timeout_ms,
        batches: batch.as_bytes(),
    }
}

impl Worker {
    fn expires(&self, queued: Instant) -> Instant {
        queued + Duration::from_millis(self.config.delivery_timeout_ms)
    }

    /// Takes back the batches of `key` (its leader moved, and the router sends its records to
    /// another worker now): those in flight are answered first (the node may take them), and
    /// those refused come back here with the one still being built, oldest first.
    async fn release(&mut self, key: BatchKey) -> VecDeque<Reroute> {
        self.away.remove(&key);
        self.releasing = Some(VecDeque::new());
        while self.in_flight.iter().any(|f| f.key == key) {
            self.complete_oldest().await;
        }
        let mut held = self.releasing.take().expect("set above");
        if let Some(mut p) = self.batches.remove(&key)
            && !p.builder.is_empty()
        {
            let (stamp, seq) = stamp(&self.seqs, &key, p.builder.len());
            let batch = p.builder.seal_reset(stamp);
            let f = InFlight::new(key, batch, std::mem::take(&mut p.replies), p.queued, seq);
            held.push_back(Reroute { batch: f, error: leader_moved(), from: self.target.addr.clone() });
        }
        held
    }

    /// When the first batch in flight runs out of time.
    /// When the wait for an answer ends: a batch's delivery deadline, or `request_timeout_ms`
    /// (and [`ANSWER_GRACE_MS`]) after it was sent, whichever comes first. A node that stopped
    /// answering without closing the connection (paused, cut off) is given up then.
    fn in_flight_expiry(&self) -> Option<Instant> {
        let answer_by =
            |f: &InFlight| f.sent + Duration::from_millis(self.config.request_timeout_ms + ANSWER_GRACE_MS);
        self.in_flight.iter().map(|f| self.expires(f.queued).min(answer_by(f))).min()
    }

    async fn add(
        &mut self,
        topic: Arc<str>,
        partition: u32,
        r: ProducerRecord,
        reply: oneshot::Sender<Result<u64>>,
        queued: Instant,
    ) {
        if Instant::now() >= self.expires(queued) {
            let _ = reply.send(Err(delivery_timeout(queued, self.config.delivery_timeout_ms)));
            return;
        }
        let headers: Vec<(&[u8], &[u8])> = r.headers.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let record = Record {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &headers,
            timestamp: r.timestamp.unwrap_or_else(now_ms),
        };
        let key = (topic, partition);
        for attempt in 0..2 {
            let linger = Duration::from_millis(self.config.linger_ms);
            let batch_bytes = self.config.batch_bytes;
            let p = self.batches.entry(key.clone()).or_insert_with(|| Pending {
                builder: BatchBuilder::new(batch_bytes),
                replies: Vec::new(),
                deadline: Instant::now() + linger,
                queued,
            });
            let was_empty = p.builder.is_empty();
            match p.builder.push(&record) {
                Ok(()) => {
                    // Linger counts from a batch's first record, not from the last send.
                    if was_empty {
                        p.deadline = Instant::now() + linger;
                        p.queued = queued;
                    }
                    p.replies.push(reply);
                    if p.builder.sealed_bytes_max() >= batch_bytes.saturating_sub(1024) {
                        self.send_batch(&key).await;
                    }
                    return;
                }
                Err(BuildError::Full { .. }) if attempt == 0 && !p.builder.is_empty() => {
                    self.send_batch(&key).await
                }
                Err(e) => {
                    let _ = reply.send(Err(ClientError::InvalidArgument(e.to_string())));
                    return;
                }
            }
        }
    }

    async fn send_due(&mut self, now: Instant) {
        let due: Vec<BatchKey> = self
            .batches
            .iter()
            .filter(|(_, p)| p.deadline <= now && !p.builder.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.send_batch(&key).await;
        }
    }

    async fn send_batch(&mut self, key: &BatchKey) {
        if self.batches.get(key).is_none_or(|p| p.builder.is_empty()) {
            return;
        }
        // Room first, and (idempotent) no batch of the partition that starts an epoch in flight:
        // the partition does not know the producer until that one is appended, and would take a
        // later batch of it in its place if it were refused for a moment.
        while self.in_flight.len() >= self.config.max_in_flight || self.epoch_start_in_flight(key) {
            self.complete_oldest().await;
        }
        let Some(mut p) = self.batches.remove(key) else { return };
        let replies = std::mem::take(&mut p.replies);
        let queued = p.queued;
        if Instant::now() >= self.expires(queued) {
            // Never sent: it takes no sequence.
            let _ = p.builder.seal_reset(ProducerStamp::default());
            self.batches.insert(key.clone(), p);
            fail(replies, &delivery_timeout(queued, self.config.delivery_timeout_ms));
            return;
        }
        // Stamped last, once it goes: a batch given up meanwhile moved the partition's epoch.
        let (stamp, seq) = stamp(&self.seqs, key, p.builder.len());
        let batch = p.builder.seal_reset(stamp);
        // Keep the builder's memory for the next batch of this partition.
        self.batches.insert(key.clone(), p);
        let f = InFlight::new(key.clone(), batch, replies, queued, seq);
        if self.away.contains_key(key) {
            return self.send_back(f, leader_moved()).await;
        }
        self.transmit(f).await;
    }

    /// Whether a batch of `key` that starts its epoch (sequence 0) is in flight: until it is
    /// answered, no other batch of the partition goes (see `send_batch`).
    fn epoch_start_in_flight(&self, key: &BatchKey) -> bool {
        self.in_flight.iter().any(|f| f.key == *key && f.seq.as_ref().is_some_and(|g| g.starts_epoch))
    }

    /// A batch of `key` sent back to the router came back, or will not.
    fn came_back(&mut self, key: &BatchKey) {
        if let Some(n) = self.away.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.away.remove(key);
            }
        }
    }

    /// Sends a batch (connecting first if there is no connection) and queues it as in flight;
    /// retries or fails its records if it cannot be sent.
    async fn transmit(&mut self, f: InFlight) {
        let expires = self.expires(f.queued);
        if self.conn.is_none() {
            match tokio_rt::time::timeout_at(expires, Connection::connect(&self.target)).await {
                Ok(Ok(c)) => self.conn = Some(c),
                Ok(Err(e)) => return self.retry_or_fail(f, e, true).await,
                Err(_) => return self.retry_or_fail(f, gave_up("connecting"), true).await,
            }
        }
        let timeout_ms = request_timeout_ms(&self.config, f.queued);
        let conn = self.conn.as_mut().expect("connected above");
        let req = produce_request(&f.key, &f.batch, self.config.acks, timeout_ms);
        let sent = match tokio_rt::time::timeout_at(expires, conn.send(&req)).await {
            Ok(sent) => sent,
            Err(_) => Err(gave_up("sending")),
        };
        match sent {
            Ok(request) => self.in_flight.push_back(InFlight { request, sent: Instant::now(), ..f }),
            Err(e) => self.retry_or_fail(f, e, true).await,
        }
    }

    /// Waits for the oldest in-flight batch's response (no longer than the first batch in flight
    /// may wait) and resolves its records.
    async fn complete_oldest(&mut self) {
        let Some(request) = self.in_flight.front().map(|f| f.request) else { return };
        let expiry = self.in_flight_expiry().expect("a batch in flight");
        match tokio_rt::time::timeout_at(expiry, receive(&mut self.conn, request)).await {
            Ok(received) => self.answered(received).await,
            Err(_) => self.expire().await,
        }
    }

    /// Resolves the oldest in-flight batch with the response read for it.
    async fn answered(&mut self, received: Result<super::connection::ResponseFrame>) {
        let f = self.in_flight.pop_front().expect("an answer is for the oldest batch in flight");
        let result = received.and_then(|frame| match frame.response()? {
            Response::Produce { error, message, base_offset, .. } => {
                ClientError::check(error, message).map(|()| base_offset)
            }
            other => Err(super::admin::unexpected(&other)),
        });
        match result {
            Ok(base) => {
                let mut f = f;
                if let Some(seq) = &mut f.seq {
                    seq.answered = true;
                }
                for (i, r) in f.replies.into_iter().enumerate() {
                    let _ = r.send(Ok(base + i as u64));
                }
            }
            Err(e) => self.retry_or_fail(f, e, false).await,
        }
    }

    /// Answers every batch in flight.
    async fn drain(&mut self) {
        while !self.in_flight.is_empty() {
            self.complete_oldest().await;
        }
    }

    /// A batch in flight ran out of time unanswered: the connection is given up (a late answer
    /// would meet the next request), the batches out of time fail, and the others go again.
    async fn expire(&mut self) {
        self.conn = None;
        // Sent, and their answers given up: the node may have written them.
        let queue = self.in_flight.drain(..).map(|g| InFlight { maybe_written: true, ..g }).collect();
        let e = gave_up("waiting for the answer");
        // The node accepted the connection and said nothing: it may be cut off and no longer
        // lead. The batches go back to the router, in order, to ask metadata where their
        // leaders are, rather than to the same silent address.
        for g in self.fail_spent(queue, &e) {
            self.send_back(g, e.duplicate()).await;
        }
    }

    /// A batch failed: send it again if the error is transient and attempts and time are left,
    /// else fail its records. A broken connection loses every answer in flight, so those batches
    /// are sent again on a new connection, in order.
    async fn retry_or_fail(&mut self, f: InFlight, e: ClientError, newest: bool) {
        if matches!(e, ClientError::Connect { .. }) && newest && self.in_flight.is_empty() {
            // The address does not answer a new connection: its node may be down, and another
            // lead the partition now. The router asks metadata, and sends it back here after
            // `retry_backoff_ms` if nothing moved.
            return self.send_back(InFlight { attempt: f.attempt + 1, ..f }, e).await;
        }
        if matches!(e, ClientError::Io(_) | ClientError::Connect { .. }) {
            // No answer in flight will come. Everything unanswered goes again, in the order it
            // was first sent (`f` is the oldest when its answer failed, the newest when its send
            // did).
            self.conn = None;
            // Sent, and their answers lost: the node may have written them.
            let mut queue: VecDeque<InFlight> =
                self.in_flight.drain(..).map(|g| InFlight { maybe_written: true, ..g }).collect();
            if newest {
                // Its send failed: a frame cut short is never carried out.
                queue.push_back(f);
            } else {
                queue.push_front(InFlight { maybe_written: true, ..f });
            }
            return self.resend(queue, e).await;
        }
        let f = match &e {
            ClientError::Server { code, .. } if code.outcome_unknown() => {
                InFlight { maybe_written: true, ..f }
            }
            _ => f,
        };
        // A leader moving or being elected is waited for until the batch's time is up, however
        // many rounds that takes; other transient errors count against `retries`.
        let mut f = f;
        if self.restamp(&mut f, &e) {
            tracing::debug!(topic = %f.key.0, partition = f.key.1, error = %e, "sending again with a new stamp");
            let f = InFlight { attempt: f.attempt + 1, ..f };
            // Behind a batch of the partition away at the router, as any other would go.
            if self.away.contains_key(&f.key) {
                return self.send_back(f, e).await;
            }
            return Box::pin(self.transmit(f)).await;
        }
        let moved = matches!(&e, ClientError::Server { code, .. } if code.needs_metadata_refresh());
        let retriable = e.is_retriable() || self.sequence_may_heal(&f, &e);
        if !retriable || (!moved && f.attempt >= self.config.retries) {
            fail(f.replies, &final_error(&e, f.maybe_written));
            return;
        }
        if moved {
            return self.send_back(InFlight { attempt: f.attempt + 1, ..f }, e.duplicate()).await;
        }
        tracing::warn!(topic = %f.key.0, partition = f.key.1, error = %e, "produce failed; retrying");
        // The node refused this one batch with a transient error: send it again, after the
        // batches already in flight, unless its time runs out first.
        if !self.back_off(self.expires(f.queued)).await {
            fail(f.replies, &delivery_timeout(f.queued, self.config.delivery_timeout_ms));
            return;
        }
        Box::pin(self.transmit(InFlight { attempt: f.attempt + 1, ..f })).await
    }

    /// A batch its partition refused for its stamp, with a new one: the partition knows nothing
    /// of the producer (`UnknownProducerId`: a new epoch starts, from sequence 0), or the stamp
    /// is of an epoch this producer has ended since (refused `OutOfOrderSequence` or
    /// `ProducerFenced`: it takes the next sequence of the new one). A batch that may have been
    /// written keeps its stamp and fails: stamped anew it could be stored twice. Whether it was
    /// stamped anew (otherwise it is as it was, for the other rules).
    fn restamp(&self, f: &mut InFlight, e: &ClientError) -> bool {
        use crate::ErrorCode as C;
        let (Some(seqs), Some(guard)) = (&self.seqs, &f.seq) else { return false };
        let ClientError::Server { code, .. } = e else { return false };
        let stale = seqs.epoch(&f.key) != guard.epoch;
        let fix = match code {
            C::UnknownProducerId => true,
            C::OutOfOrderSequence | C::ProducerFenced => stale,
            _ => false,
        };
        // Within its time and attempts, like any retry.
        let spent = f.attempt >= self.config.retries || Instant::now() >= self.expires(f.queued);
        if !fix || f.maybe_written || spent || (!stale && !seqs.given_up(&f.key, guard.epoch)) {
            return false;
        }
        let Some((stamp, guard)) = seqs.restamp(&f.key, f.batch.header().last_offset_delta + 1) else {
            return false;
        };
        f.batch.restamp(stamp);
        // The old guard goes with an ended epoch: it ends nothing more.
        f.seq = Some(guard);
        true
    }

    /// Whether a batch refused `OutOfOrderSequence` may yet be taken: a batch of its partition
    /// before it is on its way again (refused for a moment, or resent), unless one was given up
    /// in its epoch, whose sequence no batch will fill.
    fn sequence_may_heal(&self, f: &InFlight, e: &ClientError) -> bool {
        let out_of_order =
            matches!(e, ClientError::Server { code: crate::ErrorCode::OutOfOrderSequence, .. });
        let live = |s: &Arc<Sequences>, g: &SeqGuard| s.epoch(&f.key) == g.epoch;
        out_of_order && self.seqs.as_ref().zip(f.seq.as_ref()).is_some_and(|(s, g)| live(s, g))
    }

    /// Hands a batch to the router to send to its partition's leader as metadata names it now
    /// (this address refused it as not the leader, or does not answer), waiting for room in
    /// the router's queue no longer than the batch may; a batch of the partition being taken
    /// back is kept for the router's answer instead.
    async fn send_back(&mut self, f: InFlight, error: ClientError) {
        if let Some(held) = &mut self.releasing {
            held.push_back(Reroute { batch: f, error, from: self.target.addr.clone() });
            return;
        }
        tracing::warn!(topic = %f.key.0, partition = f.key.1, %error, "asking for metadata again");
        let expires = self.expires(f.queued);
        match tokio_rt::time::timeout_at(expires, self.reroute.reserve()).await {
            Ok(Ok(room)) => {
                *self.away.entry(f.key.clone()).or_default() += 1;
                room.send(Reroute { batch: f, error, from: self.target.addr.clone() })
            }
            Ok(Err(_)) => fail(f.replies, &final_error(&ClientError::Closed, f.maybe_written)),
            Err(_) => fail(f.replies, &delivery_timeout(f.queued, self.config.delivery_timeout_ms)),
        }
    }

    /// A batch the router sent here (this address leads its partition now): sent no earlier
    /// than `not_before`, behind the batches in flight (`max_in_flight`), unless its time runs
    /// out first.
    async fn resend_here(&mut self, f: InFlight, e: ClientError, not_before: Instant) {
        tracing::debug!(topic = %f.key.0, partition = f.key.1, error = %e, "sending again to the leader");
        let expires = self.expires(f.queued);
        tokio_rt::time::sleep_until(not_before.min(expires)).await;
        // As in `send_batch`: no batch of the partition that starts an epoch is in flight.
        while self.in_flight.len() >= self.config.max_in_flight || self.epoch_start_in_flight(&f.key) {
            self.complete_oldest().await;
        }
        if Instant::now() >= expires {
            fail(
                f.replies,
                &final_error(&delivery_timeout(f.queued, self.config.delivery_timeout_ms), f.maybe_written),
            );
            return;
        }
        self.transmit(f).await
    }

    /// Waits `retry_backoff_ms`, or until `expires` if that comes first; whether time is left.
    async fn back_off(&self, expires: Instant) -> bool {
        let until = (Instant::now() + Duration::from_millis(self.config.retry_backoff_ms)).min(expires);
        tokio_rt::time::sleep_until(until).await;
        Instant::now() < expires
    }

    /// Sends `queue` again, in order, on a new connection: the batches of a connection that
    /// broke or was given up. Each round is an attempt for every batch in it; a batch out of
    /// attempts fails with the last error, one out of time with `DeliveryTimeout`.
    async fn resend(&mut self, mut queue: VecDeque<InFlight>, mut e: ClientError) {
        assert!(self.in_flight.is_empty() && self.conn.is_none(), "resending with a live connection");
        loop {
            queue = self.fail_spent(queue, &e);
            let Some(earliest) = queue.iter().map(|g| self.expires(g.queued)).min() else { return };
            tracing::warn!(batches = queue.len(), error = %e, "produce failed; sending again on a new connection");
            let attempt = queue.iter().map(|g| g.attempt).min().unwrap_or(0);
            tokio_rt::time::sleep_until((Instant::now() + backoff(&self.config, attempt + 1)).min(earliest))
                .await;
            if Instant::now() >= earliest {
                continue;
            }
            for g in &mut queue {
                g.attempt = g.attempt.saturating_add(1);
            }
            match self.reconnect_and_send(&mut queue, earliest).await {
                None => return,
                Some(again @ ClientError::Connect { .. }) => {
                    // The address does not answer: its node may be down, and another lead the
                    // partitions now. Nothing was sent on a new connection: the batches go back
                    // to the router, in order, to ask metadata where their leaders are.
                    for g in std::mem::take(&mut queue) {
                        self.send_back(g, again.duplicate()).await;
                    }
                    e = again;
                }
                Some(again) => e = again,
            }
        }
    }

    /// Fails the batches of `queue` out of time or of attempts (an address that does not
    /// answer is tried until time is up: its node may be restarting); returns the others.
    fn fail_spent(&self, queue: VecDeque<InFlight>, e: &ClientError) -> VecDeque<InFlight> {
        let now = Instant::now();
        let counted = !matches!(e, ClientError::Connect { .. });
        let mut left = VecDeque::with_capacity(queue.len());
        for g in queue {
            if now >= self.expires(g.queued) {
                fail(g.replies, &delivery_timeout(g.queued, self.config.delivery_timeout_ms));
            } else if counted && g.attempt >= self.config.retries {
                fail(g.replies, &final_error(e, g.maybe_written));
            } else {
                left.push_back(g);
            }
        }
        left
    }

    /// Connects (no later than `earliest`) and sends the batches of `queue` in order, each in
    /// its time. On a failure, `queue` holds what is unanswered again, in order, and the error
    /// is returned.
    async fn reconnect_and_send(
        &mut self,
        queue: &mut VecDeque<InFlight>,
        earliest: Instant,
    ) -> Option<ClientError> {
        let conn = match tokio_rt::time::timeout_at(earliest, Connection::connect(&self.target)).await {
            Ok(Ok(c)) => self.conn.insert(c),
            Ok(Err(e)) => return Some(e),
            Err(_) => return Some(gave_up("connecting")),
        };
        while let Some(g) = queue.pop_front() {
            let req = produce_request(
                &g.key,
                &g.batch,
                self.config.acks,
                request_timeout_ms(&self.config, g.queued),
            );
            let expires = g.queued + Duration::from_millis(self.config.delivery_timeout_ms);
            let e = match tokio_rt::time::timeout_at(expires, conn.send(&req)).await {
                Ok(Ok(request)) => {
                    self.in_flight.push_back(InFlight { request, sent: Instant::now(), ..g });
                    continue;
                }
                Ok(Err(e)) => e,
                Err(_) => gave_up("sending"),
            };
            // Broke again: what was sent on this connection is unanswered too, and older.
            queue.push_front(g);
            self.conn = None;
            // Sent on it, and their answers lost: the node may have written them.
            let mut again: VecDeque<InFlight> =
                self.in_flight.drain(..).map(|f| InFlight { maybe_written: true, ..f }).collect();
            again.append(queue);
            *queue = again;
            return Some(e);
        }
        None
    }
}

/// The error a batch fails with in the end: its last attempt's, said to be of unknown outcome if
/// an earlier attempt may have been written.
fn final_error(last: &ClientError, maybe_written: bool) -> ClientError {
    if maybe_written {
        ClientError::MaybeWritten { cause: Box::new(last.duplicate()) }
    } else {
        last.duplicate()
    }
}

/// Fails every record of a batch with `e`, said once (the same error for each).
fn fail(replies: Vec<oneshot::Sender<Result<u64>>>, e: &ClientError) {
    for r in replies {
        let _ = r.send(Err(e.duplicate()));
    }
}

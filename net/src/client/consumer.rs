//! The consumer: reads assigned partitions from chosen positions, long-polling for new data.
//!
//! Fetch is batch-granular: a fetched batch may start below the position, and the consumer
//! skips those records. Every fetched batch is validated in full before its records are read:
//! bytes entering this process are checked once, here.
//!
//! Each partition is read from its leader, as Metadata names it. A fetch answered `NotLeader`,
//! `NotOwner` or `LeaderNotAvailable`, or whose connection fails, is not an error to the
//! application: after `retry_backoff_ms` the consumer asks for metadata again (of the first
//! bootstrap address that answers, else of a node the last metadata named) and reads from the
//! leader named, at the same position. Only when none answers is the fetch's error returned: the
//! cluster is out of reach.

use super::connection::{Connection, Target};
use super::error::{ClientError, Result};
use super::routing::TopicRoutes;
use crate::api::{OffsetSpec, Request, Response};
use std::collections::{HashMap, VecDeque};
use weir_log::batch::BatchView;

/// Where a consumer starts reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    Earliest,
    Latest,
    Offset(u64),
    /// The first record at or after this timestamp (ms since the epoch).
    Timestamp(i64),
}

/// A record as the consumer hands it to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Bytes a fetch asks for at most.
    pub fetch_bytes_max: u32,
    /// Fetch each partition from the shard of its leader, at the address Metadata gives for it;
    /// off, from its leader node's client address (in a one-node cluster, the address the
    /// consumer was given).
    pub shard_aware: bool,
    /// How long to wait before reading a partition again from the leader that metadata names,
    /// after its last one refused or could not be reached.
    pub retry_backoff_ms: u64,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self { fetch_bytes_max: 1 << 20, shard_aware: true, retry_backoff_ms: 100 }
    }
}

/// Attempts at resolving a seek whose partition's leader moved or cannot be reached, at most:
/// each after `retry_backoff_ms` and a new look at metadata.
pub const SEEK_ATTEMPTS_MAX: u32 = 5;

#[derive(Debug)]
struct Assignment {
    topic: String,
    partition: u32,
    position: u64,
    /// Address of the connection this partition is read through.
    addr: String,
}

/// Reads records from the partitions assigned to it.
#[derive(Debug)]
pub struct Consumer {
    target: Target,
    /// Connections by address: the one given, and the owning shards' own.
    conns: HashMap<String, Connection>,
    /// Client addresses of the nodes the last metadata named (a bootstrap list of them): asked
    /// for metadata when no address the consumer was given answers.
    known_nodes: Option<String>,
    config: ConsumerConfig,
    assigned: Vec<Assignment>,
    /// Next assignment to fetch from, so partitions take turns.
    next: usize,
    ready: VecDeque<ConsumerRecord>,
    /// The partition whose fetch the node last refused, for a caller that acts on the refusal.
    failed: Option<(String, u32)>,
}

impl Consumer {
    pub async fn connect(target: &Target, config: ConsumerConfig) -> Result<Self> {
        let conn = Connection::connect(target).await?;
        Ok(Self {
            target: target.clone(),
            conns: HashMap::from([(target.addr.clone(), conn)]),
            known_nodes: None,
            config,
            assigned: Vec::new(),
            next: 0,
            ready: VecDeque::new(),
            failed: None,
        })
    }

    /// Adds a partition to read, starting at `seek`. A leader that moved meanwhile is looked
    /// for again, up to [`SEEK_ATTEMPTS_MAX`] times.
    pub async fn assign(&mut self, topic: &str, partition: u32, seek: Seek) -> Result<()> {
        let mut attempt = 1;
        let (addr, position) = loop {
            let addr = self.owner_addr(topic, partition).await?;
            match self.resolve(&addr, topic, partition, seek).await {
                Ok(position) => break (addr, position),
                Err(e) if moved(&e) && attempt < SEEK_ATTEMPTS_MAX => {
                    tracing::warn!(%topic, partition, error = %e, "seek refused or failed; asking for metadata again");
                    attempt += 1;
                    tokio_rt::time::sleep(std::time::Duration::from_millis(self.config.retry_backoff_ms))
                        .await;
                }
                Err(e) => return Err(e),
            }
        };
        self.assigned.retain(|a| !(a.topic == topic && a.partition == partition));
        self.assigned.push(Assignment { topic: topic.to_owned(), partition, position, addr });
        Ok(())
    }

    /// The address to read a partition through: its leader's (see
    /// [`ConsumerConfig::shard_aware`]) when it can be reached, else the one the consumer was
    /// given.
    async fn owner_addr(&mut self, topic: &str, partition: u32) -> Result<String> {
        let bootstrap = self.target.addr.clone();
        let routes = match self.routes_from(&bootstrap, topic).await {
            Err(ClientError::Connect { .. } | ClientError::Io(_)) if self.known_nodes.is_some() => {
                let known = self.known_nodes.clone().expect("checked above");
                self.routes_from(&known, topic).await?
            }
            r => r?,
        };
        let nodes = routes.node_addrs();
        if !nodes.is_empty() {
            self.known_nodes = Some(nodes.join(","));
        }
        // An unknown topic is said by the request that follows, with the node's own words.
        let Some(addr) = routes.leader_addr(partition, self.config.shard_aware)? else {
            return Ok(bootstrap);
        };
        match self.conn(&addr).await {
            Ok(_) => Ok(addr),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "leader address unreachable; reading through the given address");
                Ok(bootstrap)
            }
        }
    }

    /// Metadata of `topic` from the first address of the list `addrs` that answers it: one
    /// that cannot be reached, or answers with a transient error (a node still joining its
    /// cluster), gives way to the next.
    async fn routes_from(&mut self, addrs: &str, topic: &str) -> Result<TopicRoutes> {
        let mut last = ClientError::InvalidArgument(format!("no address in {addrs:?}"));
        for addr in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let routes = match self.conn(addr).await {
                Ok(c) => TopicRoutes::fetch(c, topic).await,
                Err(e) => Err(e),
            };
            match routes {
                Err(e @ (ClientError::Io(_) | ClientError::Decode(_))) => {
                    self.conns.remove(addr);
                    last = e;
                }
                Err(e) if e.is_retriable() || matches!(e, ClientError::Connect { .. }) => last = e,
                done => return done,
            }
        }
        Err(last)
    }

    /// The connection to `addr`, connecting (again) when there is none.
    async fn conn(&mut self, addr: &str) -> Result<&mut Connection> {
        if !self.conns.contains_key(addr) {
            let c = Connection::connect(&self.target.with_addr(addr)).await?;
            self.conns.insert(addr.to_owned(), c);
        }
        Ok(self.conns.get_mut(addr).expect("just inserted"))
    }

    /// Sends a request on the connection to `addr`. A connection that fails is dropped, so the
    /// next call connects again.
    async fn call(&mut self, addr: &str, req: &Request<'_>) -> Result<super::connection::ResponseFrame> {
        let r = self.conn(addr).await?.call(req).await;
        if matches!(r, Err(ClientError::Io(_) | ClientError::Decode(_) | ClientError::Correlation { .. })) {
            self.conns.remove(addr);
        }
        r
    }

    /// Moves the position of an assigned partition (assigning it if it was not).
    pub async fn seek(&mut self, topic: &str, partition: u32, seek: Seek) -> Result<()> {
        let Some(i) = self.assigned.iter().position(|a| a.topic == topic && a.partition == partition) else {
            return self.assign(topic, partition, seek).await;
        };
        // A leader that moved is looked for again (as a fetch does), a bounded number of times.
        for attempt in 1.. {
            let addr = self.assigned[i].addr.clone();
            match self.resolve(&addr, topic, partition, seek).await {
                Ok(position) => {
                    self.assigned[i].position = position;
                    return Ok(());
                }
                Err(e) if moved(&e) && attempt < SEEK_ATTEMPTS_MAX => self.find_leader(i, e).await?,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the attempts end by returning")
    }

    /// Stops reading a partition, dropping what was fetched of it and not yet polled.
    pub fn unassign(&mut self, topic: &str, partition: u32) {
        self.assigned.retain(|a| !(a.topic == topic && a.partition == partition));
        self.ready.retain(|r| !(r.topic == topic && r.partition == partition));
    }

    /// The partition whose fetch the node refused, when [`poll`](Self::poll) failed so.
    pub fn take_failed(&mut self) -> Option<(String, u32)> {
        self.failed.take()
    }

    /// The next offset to be read from an assigned partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.assigned.iter().find(|a| a.topic == topic && a.partition == partition).map(|a| a.position)
    }

    async fn resolve(&mut self, addr: &str, topic: &str, partition: u32, seek: Seek) -> Result<u64> {
        let spec = match seek {
            Seek::Offset(o) => return Ok(o),
            Seek::Earliest => OffsetSpec::Earliest,
            Seek::Latest => OffsetSpec::Latest,
            Seek::Timestamp(t) => OffsetSpec::Timestamp(t),
        };
        let r = self.call(addr, &Request::ListOffsets { topic: topic.to_owned(), partition, spec }).await?;
        match r.response()? {
            Response::ListOffsets { error, message, offset } => {
                ClientError::check(error, message).map(|()| offset)
            }
            other => Err(super::admin::unexpected(&other)),
        }
    }

    /// Records from the assigned partitions, waiting up to `timeout_ms` for some to arrive.
    /// Returns an empty vector when none did.
    pub async fn poll(&mut self, timeout_ms: u32) -> Result<Vec<ConsumerRecord>> {
        if self.assigned.is_empty() {
            return Err(ClientError::InvalidArgument("no partition assigned".into()));
        }
        // One round without waiting over all partitions, then a long poll on the next one.
        for round in 0..2 {
            for _ in 0..self.assigned.len() {
                let i = self.next % self.assigned.len();
                self.next = self.next.wrapping_add(1);
                let wait = if round == 1 { timeout_ms } else { 0 };
                self.fetch(i, wait).await?;
                if !self.ready.is_empty() {
                    return Ok(self.ready.drain(..).collect());
                }
                if round == 1 {
                    break;
                }
            }
        }
        Ok(Vec::new())
    }

    async fn fetch(&mut self, i: usize, max_wait_ms: u32) -> Result<()> {
        let a = &self.assigned[i];
        let req = Request::Fetch {
            topic: a.topic.clone(),
            partition: a.partition,
            offset: a.position,
            max_bytes: self.config.fetch_bytes_max,
            max_wait_ms,
        };
        let addr = a.addr.clone();
        let frame = match self.call(&addr, &req).await {
            Ok(frame) => frame,
            Err(e) if moved(&e) => return self.find_leader(i, e).await,
            Err(e) => return Err(e),
        };
        let Response::Fetch { error, message, batches, .. } = frame.response()? else {
            return Err(ClientError::InvalidArgument("unexpected response to fetch".into()));
        };
        if let Err(e) = ClientError::check(error, message) {
            if moved(&e) {
                return self.find_leader(i, e).await;
            }
            self.failed = Some((self.assigned[i].topic.clone(), self.assigned[i].partition));
            return Err(e);
        }
        let a = &mut self.assigned[i];
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(batches.len());
        aligned.extend_from_slice(batches);
        let mut rest: &[u8] = &aligned;
        while !rest.is_empty() {
            let view = BatchView::validate(rest, usize::MAX)?;
            // A transaction marker (a Kafka producer's) holds no record of the application's.
            let records = view.records().filter(|_| !view.header().is_control());
            for r in records.filter(|r| r.offset >= a.position) {
                self.ready.push_back(ConsumerRecord {
                    topic: a.topic.clone(),
                    partition: a.partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.map(<[u8]>::to_vec),
                    value: r.value.map(<[u8]>::to_vec),
                    headers: r.headers().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
                });
            }
            a.position = a.position.max(view.header().next_offset());
            rest = &rest[view.bytes().len()..];
        }
        Ok(())
    }

    /// The partition's leader moved, or cannot be reached: after a backoff, its address as
    /// metadata names it now. Metadata that names no leader yet is asked again at the next
    /// fetch; when no bootstrap address answers, the fetch's error `e` is returned.
    async fn find_leader(&mut self, i: usize, e: ClientError) -> Result<()> {
        let (topic, partition) = (self.assigned[i].topic.clone(), self.assigned[i].partition);
        tracing::warn!(%topic, partition, error = %e, "fetch refused or failed; asking for metadata again");
        tokio_rt::time::sleep(std::time::Duration::from_millis(self.config.retry_backoff_ms)).await;
        match self.owner_addr(&topic, partition).await {
            Ok(addr) => self.assigned[i].addr = addr,
            Err(ClientError::Connect { .. } | ClientError::Io(_)) => return Err(e),
            Err(again) => tracing::warn!(%topic, partition, error = %again, "no leader yet"),
        }
        Ok(())
    }
}

/// Whether a fetch failed because its partition's leader is elsewhere or unreachable: the
/// consumer looks for it again rather than failing.
fn moved(e: &ClientError) -> bool {
    match e {
        ClientError::Server { code, .. } => code.needs_metadata_refresh(),
        ClientError::Io(_) | ClientError::Connect { .. } => true,
        _ => false,
    }
}

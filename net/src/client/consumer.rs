//! The consumer: reads assigned partitions from chosen positions, long-polling for new data.
//!
//! Fetch is batch-granular: a fetched batch may start below the position, and the consumer
//! skips those records. Every fetched batch is validated in full before its records are read:
//! bytes entering this process are checked once, here.

use super::connection::{Connection, Target};
use super::error::{ClientError, Result};
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
    /// Fetch each partition from the shard that owns it, at the address Metadata gives for it;
    /// off, everything goes through the address the consumer was given.
    pub shard_aware: bool,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self { fetch_bytes_max: 1 << 20, shard_aware: true }
    }
}

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
    config: ConsumerConfig,
    assigned: Vec<Assignment>,
    /// Next assignment to fetch from, so partitions take turns.
    next: usize,
    ready: VecDeque<ConsumerRecord>,
}

impl Consumer {
    pub async fn connect(target: &Target, config: ConsumerConfig) -> Result<Self> {
        let conn = Connection::connect(target).await?;
        Ok(Self {
            target: target.clone(),
            conns: HashMap::from([(target.addr.clone(), conn)]),
            config,
            assigned: Vec::new(),
            next: 0,
            ready: VecDeque::new(),
        })
    }

    /// Adds a partition to read, starting at `seek`.
    pub async fn assign(&mut self, topic: &str, partition: u32, seek: Seek) -> Result<()> {
        let addr = self.owner_addr(topic, partition).await?;
        let position = self.resolve(&addr, topic, partition, seek).await?;
        self.assigned.retain(|a| !(a.topic == topic && a.partition == partition));
        self.assigned.push(Assignment { topic: topic.to_owned(), partition, position, addr });
        Ok(())
    }

    /// The address to read a partition through: its owning shard's, when shard-aware and the
    /// shard can be reached, else the one the consumer was given.
    async fn owner_addr(&mut self, topic: &str, partition: u32) -> Result<String> {
        if !self.config.shard_aware {
            return Ok(self.target.addr.clone());
        }
        let req = Request::Metadata { topics: vec![topic.to_owned()] };
        let bootstrap = self.target.addr.clone();
        let frame = self.call(&bootstrap, &req).await?;
        let addr = match frame.response()? {
            Response::Metadata { shards, topics, .. } => {
                let owner = topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition == partition)
                    .map(|p| p.shard);
                owner
                    .and_then(|o| shards.iter().find(|s| s.shard == o))
                    .map(|s| super::connection::shard_address(&bootstrap, &s.host, s.port))
            }
            other => return Err(super::admin::unexpected(&other)),
        };
        let Some(addr) = addr else { return Ok(self.target.addr.clone()) };
        match self.conn(&addr).await {
            Ok(_) => Ok(addr),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "shard address unreachable; reading through the given address");
                Ok(self.target.addr.clone())
            }
        }
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
        let addr = self.assigned[i].addr.clone();
        self.assigned[i].position = self.resolve(&addr, topic, partition, seek).await?;
        Ok(())
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
        let frame = self.call(&addr, &req).await?;
        let Response::Fetch { error, message, batches, .. } = frame.response()? else {
            return Err(ClientError::InvalidArgument("unexpected response to fetch".into()));
        };
        ClientError::check(error, message)?;
        let a = &mut self.assigned[i];
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(batches.len());
        aligned.extend_from_slice(batches);
        let mut rest: &[u8] = &aligned;
        while !rest.is_empty() {
            let view = BatchView::validate(rest, usize::MAX)?;
            for r in view.records().filter(|r| r.offset >= a.position) {
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
}

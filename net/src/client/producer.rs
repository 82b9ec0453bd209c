//! The producer: batches records per partition and sends them; each `send` resolves to the
//! record's offset once the node acknowledged its batch.
//!
//! A background task owns the connection and one reusable batch builder per partition. A batch
//! goes out when it is full (`batch_bytes`) or `linger_ms` after its first record. The queue of
//! records handed to the task is bounded (`buffer_records_max`): `send` waits when it is full.

use super::connection::Connection;
use super::error::{ClientError, Result};
use super::partitioner::partition_for_key;
use crate::api::{Acks, Request, Response};
use std::collections::HashMap;
use std::time::Duration;
use tokio_rt::sync::{mpsc, oneshot};
use tokio_rt::time::Instant;
use weir_log::batch::{BatchBuilder, BuildError, ProducerStamp, Record};

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub linger_ms: u64,
    /// Largest batch the producer builds; at most the node's `batch_bytes_max`.
    pub batch_bytes: usize,
    pub acks: Acks,
    /// Attempts after the first for a batch that failed with a retriable error.
    pub retries: u32,
    pub retry_backoff_ms: u64,
    pub buffer_records_max: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger_ms: 5,
            batch_bytes: 1 << 20,
            acks: Acks::Leader,
            retries: 5,
            retry_backoff_ms: 100,
            buffer_records_max: 1 << 16,
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
    Send(ProducerRecord, oneshot::Sender<Result<u64>>),
    Flush(oneshot::Sender<()>),
}

/// Sends records to a node. Cheap to share by reference across tasks.
#[derive(Debug)]
pub struct Producer {
    tx: mpsc::Sender<Cmd>,
    task: tokio_rt::task::JoinHandle<()>,
}

impl Producer {
    pub async fn connect(addr: &str, config: ProducerConfig) -> Result<Self> {
        if config.batch_bytes < 4096 {
            return Err(ClientError::InvalidArgument("batch_bytes must be at least 4096".into()));
        }
        let conn = Connection::connect(addr).await?;
        let (tx, rx) = mpsc::channel(config.buffer_records_max.max(1));
        let task = tokio_rt::spawn(run(
            Worker {
                conn,
                addr: addr.to_owned(),
                config,
                batches: HashMap::new(),
                partitions: HashMap::new(),
                sticky: HashMap::new(),
            },
            rx,
        ));
        Ok(Self { tx, task })
    }

    /// Queues a record, waiting only for room in the queue, and returns the future of its
    /// acknowledgement. Records queued one after another by one task keep that order in their
    /// partition: this is how to pipeline sends and keep per-key order.
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<Acknowledgement> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Send(record, tx)).await.map_err(|_| ClientError::Closed)?;
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

    /// Flushes and stops the background task.
    pub async fn close(self) -> Result<()> {
        self.flush().await?;
        drop(self.tx);
        let _ = self.task.await;
        Ok(())
    }
}

struct Pending {
    builder: BatchBuilder,
    replies: Vec<oneshot::Sender<Result<u64>>>,
    /// When the batch goes out if it does not fill first; set by its first record.
    deadline: Instant,
}

struct Worker {
    conn: Connection,
    addr: String,
    config: ProducerConfig,
    batches: HashMap<(String, u32), Pending>,
    /// Partition counts by topic, from metadata.
    partitions: HashMap<String, u32>,
    /// Partition that unkeyed records of a topic go to until its batch is sent.
    sticky: HashMap<String, u32>,
}

async fn run(mut w: Worker, mut rx: mpsc::Receiver<Cmd>) {
    loop {
        let next_deadline = w.batches.values().filter(|p| !p.builder.is_empty()).map(|p| p.deadline).min();
        let cmd = match next_deadline {
            Some(d) => tokio_rt::select! {
                cmd = rx.recv() => cmd,
                () = tokio_rt::time::sleep_until(d) => { w.send_due(Instant::now()).await; continue; }
            },
            None => rx.recv().await,
        };
        match cmd {
            Some(Cmd::Send(record, reply)) => w.add(record, reply).await,
            Some(Cmd::Flush(done)) => {
                w.send_due(Instant::now() + Duration::from_secs(86_400)).await;
                let _ = done.send(());
            }
            None => {
                w.send_due(Instant::now() + Duration::from_secs(86_400)).await;
                return;
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Worker {
    async fn partition_count(&mut self, topic: &str) -> Result<u32> {
        if let Some(&n) = self.partitions.get(topic) {
            return Ok(n);
        }
        let r = self.conn.call(&Request::Metadata { topics: vec![topic.to_owned()] }).await?;
        let n = match r.response()? {
            Response::Metadata { topics, .. } => match topics.into_iter().next() {
                Some(t) => {
                    ClientError::check(t.error, format!("topic {topic:?}"))?;
                    t.partitions.len() as u32
                }
                None => return Err(ClientError::InvalidArgument(format!("no metadata for {topic:?}"))),
            },
            other => return Err(super::admin::unexpected(&other)),
        };
        self.partitions.insert(topic.to_owned(), n);
        Ok(n)
    }

    async fn add(&mut self, r: ProducerRecord, reply: oneshot::Sender<Result<u64>>) {
        let count = match self.partition_count(&r.topic).await {
            Ok(n) => n,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let partition = match (r.partition, &r.key) {
            (Some(p), _) if p >= count => {
                let _ = reply
                    .send(Err(ClientError::InvalidArgument(format!("{} has {count} partitions", r.topic))));
                return;
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => *self.sticky.entry(r.topic.clone()).or_insert_with(|| now_ms() as u32 % count),
        };
        let headers: Vec<(&[u8], &[u8])> = r.headers.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let record = Record {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &headers,
            timestamp: r.timestamp.unwrap_or_else(now_ms),
        };
        let key = (r.topic.clone(), partition);
        for attempt in 0..2 {
            let linger = Duration::from_millis(self.config.linger_ms);
            let batch_bytes = self.config.batch_bytes;
            let p = self.batches.entry(key.clone()).or_insert_with(|| Pending {
                builder: BatchBuilder::new(batch_bytes),
                replies: Vec::new(),
                deadline: Instant::now() + linger,
            });
            let was_empty = p.builder.is_empty();
            match p.builder.push(&record) {
                Ok(()) => {
                    // Linger counts from a batch's first record, not from the last send.
                    if was_empty {
                        p.deadline = Instant::now() + linger;
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
        let due: Vec<(String, u32)> = self
            .batches
            .iter()
            .filter(|(_, p)| p.deadline <= now && !p.builder.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.send_batch(&key).await;
        }
    }

    async fn send_batch(&mut self, key: &(String, u32)) {
        let Some(mut p) = self.batches.remove(key) else { return };
        if p.builder.is_empty() {
            return;
        }
        let batch = p.builder.seal_reset(ProducerStamp::default());
        // Unkeyed records move on to another partition with the next batch.
        if let Some(s) = self.sticky.get_mut(&key.0) {
            let n = self.partitions.get(&key.0).copied().unwrap_or(1);
            *s = (*s + 1) % n;
        }
        let mut result = Err(ClientError::Closed);
        for attempt in 0..=self.config.retries {
            let req = Request::Produce {
                topic: key.0.clone(),
                partition: key.1,
                acks: self.config.acks,
                timeout_ms: 30_000,
                batches: batch.as_bytes(),
            };
            result = match self.conn.call(&req).await {
                Ok(frame) => match frame.response() {
                    Ok(Response::Produce { error, message, base_offset, .. }) => {
                        ClientError::check(error, message).map(|()| base_offset)
                    }
                    Ok(other) => Err(super::admin::unexpected(&other)),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match &result {
                Err(e) if e.is_retriable() && attempt < self.config.retries => {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "produce failed; retrying");
                    tokio_rt::time::sleep(Duration::from_millis(self.config.retry_backoff_ms)).await;
                    if matches!(e, ClientError::Io(_))
                        && let Ok(c) = Connection::connect(&self.addr).await
                    {
                        self.conn = c;
                    }
                }
                _ => break,
            }
        }
        match result {
            Ok(base) => {
                for (i, r) in p.replies.drain(..).enumerate() {
                    let _ = r.send(Ok(base + i as u64));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let code = match &e {
                    ClientError::Server { code, .. } => Some(*code),
                    _ => None,
                };
                for r in p.replies.drain(..) {
                    let err = match code {
                        Some(code) => ClientError::Server { code, message: msg.clone() },
                        None => ClientError::Io(std::io::Error::other(msg.clone())),
                    };
                    let _ = r.send(Err(err));
                }
            }
        }
        // Keep the builder's memory for the next batch of this partition.
        let linger = Duration::from_millis(self.config.linger_ms);
        self.batches.insert(
            key.clone(),
            Pending { builder: p.builder, replies: Vec::new(), deadline: Instant::now() + linger },
        );
    }
}

//! The idempotent producer's side (see the producer's module documentation): its producer id,
//! and per partition the epoch and sequence each batch is stamped with when it goes.

use super::connection::Connection;
use super::error::{ClientError, Result};
use super::producer::{BatchKey, ProducerConfig};
use crate::api::{Request, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_rt::time::Instant;
use weir_log::batch::ProducerStamp;

/// The stamp of the next batch of `key` with `records` records, and the guard of its sequence;
/// no stamp without an idempotent producer.
pub(super) fn stamp(
    seqs: &Option<Arc<Sequences>>,
    key: &BatchKey,
    records: usize,
) -> (ProducerStamp, Option<SeqGuard>) {
    match seqs {
        Some(s) => {
            let (stamp, guard) = s.stamp(key, records as u32);
            (stamp, Some(guard))
        }
        None => (ProducerStamp::default(), None),
    }
}

/// Asks the node for a producer id, again after `retry_backoff_ms` while the answer is a
/// transient refusal (no controller yet), for `request_timeout_ms` at most.
pub(super) async fn init_producer_id(conn: &mut Connection, config: &ProducerConfig) -> Result<i64> {
    let deadline = Instant::now() + Duration::from_millis(config.request_timeout_ms);
    loop {
        let answer = match conn.call(&Request::InitProducerId).await {
            // A node older than idempotence: the producer says so rather than guess.
            Err(ClientError::Server { code: crate::ErrorCode::UnsupportedVersion, message }) => {
                let reason = format!("the node gives no producer ids ({message}): set idempotent to false");
                return Err(ClientError::Config { setting: "idempotent", reason });
            }
            other => other?,
        };
        let e = match answer.response()? {
            Response::InitProducerId { error: crate::ErrorCode::None, producer_id, .. } => {
                return Ok(producer_id);
            }
            Response::InitProducerId { error, message, .. } => ClientError::Server { code: error, message },
            other => return Err(super::admin::unexpected(&other)),
        };
        if !e.is_retriable() || Instant::now() >= deadline {
            return Err(e);
        }
        tokio_rt::time::sleep(Duration::from_millis(config.retry_backoff_ms)).await;
    }
}

/// An idempotent producer's sequences: its producer id and, per partition, the epoch and the
/// next sequence to stamp. Shared by the workers: a partition moves between them with its
/// batches, each stamped once, when sealed, and sent again with the same stamp.
///
/// A batch given up (failed, not acknowledged) leaves a gap in its partition's sequences that
/// the leader would refuse every later batch for: the partition's next batches start a new
/// epoch at sequence 0 (once per epoch; the leader takes a newer epoch from 0), and batches of
/// the old epoch still on their way fail rather than wait for the gap to fill.
#[derive(Debug)]
pub(super) struct Sequences {
    producer_id: i64,
    parts: std::sync::Mutex<HashMap<BatchKey, Part>>,
}

/// One partition's stamps: the epoch, the next sequence, and whether a batch queued after
/// every batch of the earlier epochs (a fresh one) took a sequence of this epoch already.
#[derive(Debug, Clone, Copy, Default)]
struct Part {
    epoch: i16,
    next: i32,
    fresh: bool,
}

impl Sequences {
    pub(super) fn new(producer_id: i64) -> Self {
        Self { producer_id, parts: std::sync::Mutex::new(HashMap::new()) }
    }

    /// The stamp of a batch going for the first time.
    pub(super) fn stamp(self: &Arc<Self>, key: &BatchKey, records: u32) -> (ProducerStamp, SeqGuard) {
        self.next_stamp(key, records, true)
    }

    /// A new stamp, in the current epoch, for a batch of an earlier one that went before every
    /// fresh batch of this epoch; `None` once a fresh batch took a sequence of it (the old batch
    /// would land after it: it fails instead).
    pub(super) fn restamp(
        self: &Arc<Self>,
        key: &BatchKey,
        records: u32,
    ) -> Option<(ProducerStamp, SeqGuard)> {
        let fresh = self.parts.lock().expect("not poisoned").get(key).is_some_and(|p| p.fresh);
        (!fresh).then(|| self.next_stamp(key, records, false))
    }

    fn next_stamp(self: &Arc<Self>, key: &BatchKey, records: u32, fresh: bool) -> (ProducerStamp, SeqGuard) {
        let mut parts = self.parts.lock().expect("not poisoned");
        let p = parts.entry(key.clone()).or_default();
        let stamp =
            ProducerStamp { producer_id: self.producer_id, producer_epoch: p.epoch, base_sequence: p.next };
        p.next = ((i64::from(p.next) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32;
        p.fresh |= fresh;
        let starts_epoch = stamp.base_sequence == 0;
        let guard =
            SeqGuard { seqs: self.clone(), key: key.clone(), epoch: p.epoch, starts_epoch, answered: false };
        (stamp, guard)
    }

    pub(super) fn epoch(&self, key: &BatchKey) -> i16 {
        self.parts.lock().expect("not poisoned").get(key).map_or(0, |p| p.epoch)
    }

    /// A batch of `key` stamped in `epoch` was given up: the partition's next stamps start a new
    /// epoch. Whether one started (not at the last epoch, whose gap stays: the partition's later
    /// batches fail in turn).
    pub(super) fn given_up(&self, key: &BatchKey, epoch: i16) -> bool {
        let mut parts = self.parts.lock().expect("not poisoned");
        match parts.get_mut(key) {
            Some(p) if p.epoch == epoch && epoch < i16::MAX => {
                *p = Part { epoch: epoch + 1, next: 0, fresh: false };
                true
            }
            _ => false,
        }
    }
}

/// An idempotent batch's sequence: given up when the batch goes without an acknowledgement.
#[derive(Debug)]
pub(super) struct SeqGuard {
    seqs: Arc<Sequences>,
    key: BatchKey,
    pub(super) epoch: i16,
    /// The first batch of its epoch in its partition (sequence 0).
    pub(super) starts_epoch: bool,
    pub(super) answered: bool,
}

impl Drop for SeqGuard {
    fn drop(&mut self) {
        if !self.answered {
            self.seqs.given_up(&self.key, self.epoch);
        }
    }
}

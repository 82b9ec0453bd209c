//! The leader's side of `ReplicaFetch`: each partition's fetch goes to its replica
//! (`handle_fetch`), and for `Records` the batches are read from the log, whole, as stored.

use super::wire::{
    PartitionAnswer, REPLICA_FETCH_API, REPLICA_FETCH_BYTES_MAX, REPLICA_FETCH_VERSION, ReplicaFetch,
    encode_answers,
};
use crate::core::ShardCore;
use crate::disk::Disk;
use crate::frontend::native::{decode_error_code, error_frame};
use crate::peer::Peer;
use crate::runtime::Runtime;
use crate::shard::Shard;
use bytes::Bytes;
use std::rc::Rc;
use weir_net::ErrorCode;
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader, encode_frame};
use weir_net::wire::Writer;
use weir_replication::{FetchAnswer, FetchBody, FetchRefusal, FetchRequest};

/// Answers a `ReplicaFetch` frame (`frame` is header and body); `Err` closes the connection.
/// Served only to a `peer` that proved it is the follower it names (a QUIC connection whose
/// certificate, signed by the cluster CA, names that node): a follower's fetch moves the high
/// watermark, so a forged one could make consumers and acks=all see records only the leader
/// holds. Any other is refused, with nothing changed.
pub async fn replica_fetch(
    shard: &Rc<Shard>,
    header: FrameHeader,
    frame: Bytes,
    peer: &Peer,
) -> Result<Vec<u8>, Vec<u8>> {
    let fetch = match ReplicaFetch::decode(&frame[FRAME_HEADER_BYTES..]) {
        Ok(f) => f,
        Err(e) => return Err(error_frame(&header, decode_error_code(&e), e.to_string())),
    };
    if let Err(why) = peer.authenticate(fetch.follower) {
        tracing::warn!(error = %why, "replica fetch refused");
        return Err(error_frame(&header, ErrorCode::InvalidArgument, why.to_string()));
    }
    if !shard.core().clustered() {
        let why = "this node runs no cluster: it has no followers".to_owned();
        return Ok(error_frame(&header, ErrorCode::InvalidArgument, why));
    }
    let answers = shard.core().serve_replica_fetch(&fetch).await;
    let mut w = Writer::default();
    encode_answers(&answers, &mut w);
    Ok(encode_frame(REPLICA_FETCH_API, REPLICA_FETCH_VERSION, header.correlation_id, 0, &w.buf))
}

/// Longest a leader holds a `ReplicaFetch` with nothing to send, waiting for its partitions to
/// grow; well below the replica's `fetch_timeout_ms` (2 s), after which it would send again.
pub const REPLICA_FETCH_WAIT_MS: u64 = 500;

fn refused(req: &FetchRequest, why: FetchRefusal) -> PartitionAnswer {
    let answer = FetchAnswer {
        partition: req.partition,
        request_id: req.request_id,
        leader_epoch: req.leader_epoch,
        high_watermark: 0,
        log_start: 0,
        body: FetchBody::Refused(why),
    };
    PartitionAnswer { answer, batches: Bytes::new() }
}

impl<D: Disk, R: Runtime> ShardCore<D, R> {
    /// Each partition's answer, with at most [`REPLICA_FETCH_BYTES_MAX`] batch bytes over all
    /// (at least one batch for the first partition with any to send). When no partition has
    /// anything to send, waits up to [`REPLICA_FETCH_WAIT_MS`] for any of them to grow: a
    /// follower that caught up is answered as soon as there is more, not after its backoff.
    pub async fn serve_replica_fetch(&self, fetch: &ReplicaFetch) -> Vec<PartitionAnswer> {
        let mut budget = REPLICA_FETCH_BYTES_MAX;
        let mut out = Vec::with_capacity(fetch.partitions.len());
        let mut served = Vec::with_capacity(fetch.partitions.len());
        for req in &fetch.partitions {
            let Some(p) = self.partition_by_id(req.partition) else {
                out.push(refused(req, FetchRefusal::NotLeader));
                continue;
            };
            // The log is locked from the replica's answer until the read is planned: no log
            // operation (a truncation after a deposition) runs between what the replica
            // decided and what is read.
            let log = p.log.lock().await;
            let answer = p.rep.replica.borrow_mut().handle_fetch(self.rt.monotonic_ms(), req);
            drop(log);
            // A follower's progress may have moved the high watermark.
            p.settle();
            p.rep.wake();
            out.push(PartitionAnswer { answer, batches: Bytes::new() });
            served.push((out.len() - 1, p));
        }
        if self.read_answers(&mut out, &served, &mut budget).await == 0 {
            self.wait_for_growth(&out, &served).await;
            self.read_answers(&mut out, &served, &mut budget).await;
        }
        out
    }

    /// Reads the batches of every `Records` answer still empty, within `budget`; returns the
    /// bytes read. Only while the replica still leads the epoch it answered in: the answer
    /// says the logs agree up to its fetch offset, which a deposed leader's log may no longer.
    async fn read_answers(
        &self,
        out: &mut [PartitionAnswer],
        served: &[(usize, std::rc::Rc<crate::partition::Partition<D::Storage>>)],
        budget: &mut usize,
    ) -> usize {
        let mut total = 0;
        for (i, p) in served {
            let a = &mut out[*i];
            let FetchBody::Records { fetch_offset } = a.answer.body else { continue };
            if *budget == 0 || !a.batches.is_empty() {
                continue;
            }
            let plan = {
                let log = p.log.lock().await;
                let r = p.rep.replica.borrow();
                let leads = r.is_leader() && r.offsets().leader_epoch() == a.answer.leader_epoch;
                if !leads || log.next_offset() <= fetch_offset {
                    continue;
                }
                log.plan_fetch(fetch_offset, *budget, u64::MAX)
            };
            // A read that fails (a damaged batch) sends nothing: the follower asks again.
            if let Ok(Some(plan)) = plan
                && let Ok(read) = plan.execute().await
            {
                a.batches = read.bytes;
                *budget = budget.saturating_sub(a.batches.len());
                total += a.batches.len();
            }
        }
        total
    }

    /// Waits until the log of a partition answered with `Records` grows past the answer's
    /// fetch offset, or [`REPLICA_FETCH_WAIT_MS`] pass.
    async fn wait_for_growth(
        &self,
        out: &[PartitionAnswer],
        served: &[(usize, std::rc::Rc<crate::partition::Partition<D::Storage>>)],
    ) {
        let waiting: Vec<_> = served
            .iter()
            .filter_map(|(i, p)| match out[*i].answer.body {
                FetchBody::Records { fetch_offset } => Some((p, fetch_offset)),
                _ => None,
            })
            .collect();
        if waiting.is_empty() {
            return;
        }
        let mut grown: Vec<_> = waiting.iter().map(|(p, _)| Box::pin(p.rep.grew.notified())).collect();
        // Registered before looking, so growth in between is not missed.
        for g in &mut grown {
            g.as_mut().enable();
        }
        if waiting.iter().any(|(p, offset)| p.state().log_end() > *offset) {
            return;
        }
        let timer = self.rt.sleep_ms(REPLICA_FETCH_WAIT_MS);
        let _ = futures::future::select(futures::future::select_all(grown), timer).await;
    }
}

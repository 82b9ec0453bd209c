//! The leader's side of `ReplicaFetch`: each partition's fetch goes to its replica
//! (`handle_fetch`), and for `Records` the batches are read from the log, whole, as stored.

use super::wire::{
    PartitionAnswer, REPLICA_FETCH_API, REPLICA_FETCH_BYTES_MAX, REPLICA_FETCH_VERSION, ReplicaFetch,
    encode_answers,
};
use crate::core::ShardCore;
use crate::disk::Disk;
use crate::frontend::native::{decode_error_code, error_frame};
use crate::runtime::Runtime;
use crate::shard::Shard;
use bytes::Bytes;
use std::rc::Rc;
use weir_net::ErrorCode;
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader, encode_frame};
use weir_net::wire::Writer;
use weir_replication::{FetchAnswer, FetchBody, FetchRefusal, FetchRequest, NodeId};

/// The hook where the leader checks that the peer on the other end of the connection is node
/// `claimed`. Mutual TLS under the cluster CA will check that the connection's peer certificate
/// names `node-<claimed>.weir-cluster`; until then every claim is admitted.
pub fn authenticate_follower(claimed: NodeId) -> Result<(), String> {
    let _ = claimed;
    Ok(())
}

/// Answers a `ReplicaFetch` frame (`frame` is header and body); `Err` closes the connection.
pub async fn replica_fetch(shard: &Rc<Shard>, header: FrameHeader, frame: Bytes) -> Result<Vec<u8>, Vec<u8>> {
    let fetch = match ReplicaFetch::decode(&frame[FRAME_HEADER_BYTES..]) {
        Ok(f) => f,
        Err(e) => return Err(error_frame(&header, decode_error_code(&e), e.to_string())),
    };
    if let Err(why) = authenticate_follower(fetch.follower) {
        return Err(error_frame(&header, ErrorCode::InvalidArgument, why));
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
    /// (at least one batch for the first partition with any to send).
    pub async fn serve_replica_fetch(&self, fetch: &ReplicaFetch) -> Vec<PartitionAnswer> {
        let mut budget = REPLICA_FETCH_BYTES_MAX;
        let mut out = Vec::with_capacity(fetch.partitions.len());
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
            let plan = match answer.body {
                FetchBody::Records { fetch_offset } if budget > 0 => {
                    log.plan_read(fetch_offset, budget, u64::MAX)
                }
                _ => Ok(None),
            };
            drop(log);
            // A follower's progress may have moved the high watermark.
            p.settle();
            p.rep.wake();
            let mut batches = Bytes::new();
            // A read that fails (a damaged batch) sends nothing: the follower asks again.
            if let Ok(Some(plan)) = plan
                && let Ok(read) = plan.execute().await
            {
                batches = Bytes::copy_from_slice(read.bytes());
                budget = budget.saturating_sub(batches.len());
            }
            out.push(PartitionAnswer { answer, batches });
        }
        out
    }
}

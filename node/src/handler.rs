//! Answers requests: decides which shard owns each, forwards it there or serves it here.

use crate::metadata::{PARTITIONS_MAX, TopicMeta, check_topic_name};
use crate::shard::{Shard, now_ms};
use std::rc::Rc;
use std::time::Duration;
use weir_log::LogError;
use weir_log::batch::{BatchHeader, BatchView};
use weir_net::api::{API_VERSION, PartitionInfo, ShardAddr, TopicInfo};
use weir_net::frame::{FLAG_ERROR, FRAME_HEADER_BYTES, FrameHeader, encode_frame};
use weir_net::wire::Writer;
use weir_net::{Acks, ApiKey, DecodeError, ErrorBody, ErrorCode, OffsetSpec, Request, Response, TopicConfig};

/// Longest a fetch may wait for data.
pub const FETCH_WAIT_MS_MAX: u32 = 30_000;

pub fn response_frame(correlation_id: u32, resp: &Response<'_>) -> Vec<u8> {
    let mut w = Writer::default();
    resp.encode(&mut w);
    encode_frame(resp.api_key() as u16, API_VERSION, correlation_id, 0, &w.buf)
}

pub fn error_frame(header: &FrameHeader, error: ErrorCode, message: String) -> Vec<u8> {
    let mut w = Writer::default();
    ErrorBody { error, message }.encode(&mut w);
    encode_frame(header.api_key, header.api_version, header.correlation_id, FLAG_ERROR, &w.buf)
}

/// The code a decoding failure is answered with.
pub fn decode_error_code(e: &DecodeError) -> ErrorCode {
    match e {
        DecodeError::UnsupportedVersion { .. } | DecodeError::UnknownApi { .. } => {
            ErrorCode::UnsupportedVersion
        }
        DecodeError::FrameTooLarge { .. } => ErrorCode::RequestTooLarge,
        _ => ErrorCode::MalformedRequest,
    }
}

/// Which shard must handle a request: the one the placement table names for a partition (this
/// one for a partition it does not know, which it answers with the reason).
fn target(shard: &Shard, req: &Request<'_>) -> usize {
    match req {
        Request::CreateTopic { .. } | Request::DeleteTopic { .. } => 0,
        Request::Produce { topic, partition, .. }
        | Request::Fetch { topic, partition, .. }
        | Request::ListOffsets { topic, partition, .. } => {
            shard.topics.borrow().local_shard(topic, *partition).map_or(shard.id, |s| s.index())
        }
        _ => shard.id,
    }
}

/// Answers one request frame (`frame` is header and body). Never fails: every problem becomes
/// an error response. `Err` only for a body that does not decode, which closes the connection.
pub async fn handle(shard: &Rc<Shard>, header: FrameHeader, frame: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
    route(shard, header, frame, true).await
}

/// [`handle`], for a client's request (counted in the node's stats when forwarded) or one this
/// node made itself.
async fn route(
    shard: &Rc<Shard>,
    header: FrameHeader,
    frame: &[u8],
    from_client: bool,
) -> Result<Vec<u8>, Vec<u8>> {
    let body = &frame[FRAME_HEADER_BYTES..];
    let req = match Request::decode(header.api_key, header.api_version, body) {
        Ok(r) => r,
        Err(e) => return Err(error_frame(&header, decode_error_code(&e), e.to_string())),
    };
    let to = target(shard, &req);
    if to != shard.id {
        if from_client {
            shard.request_forwarded();
        }
        return Ok(match shard.forward(to, frame.to_vec()).await {
            Some(resp) => resp,
            None => error_frame(&header, ErrorCode::Unavailable, format!("shard {to} is not running")),
        });
    }
    Ok(serve(shard, &header, req).await)
}

/// Serves a request this shard owns.
pub async fn serve(shard: &Rc<Shard>, header: &FrameHeader, req: Request<'_>) -> Vec<u8> {
    let cid = header.correlation_id;
    match req {
        Request::ApiVersions => {
            let apis = ApiKey::ALL.iter().map(|k| (*k as u16, API_VERSION, API_VERSION)).collect();
            response_frame(cid, &Response::ApiVersions { apis })
        }
        Request::Metadata { topics } => {
            let table = shard.topics.borrow().clone();
            let host = shard.config.advertised_host();
            let shards = (0..shard.shards())
                .map(|s| ShardAddr { shard: s as u16, host: host.clone(), port: shard.config.shard_port(s) })
                .collect();
            let names: Vec<String> =
                if topics.is_empty() { table.topics.keys().cloned().collect() } else { topics };
            let topics = names
                .into_iter()
                .map(|name| match table.topics.get(&name) {
                    Some(meta) => TopicInfo {
                        partitions: (0..meta.partitions)
                            .map(|p| PartitionInfo {
                                partition: p,
                                shard: meta.local_shard(p).map_or(0, |s| s.0),
                                log_start: 0,
                                log_end: 0,
                            })
                            .collect(),
                        config: meta.config(),
                        error: ErrorCode::None,
                        name,
                    },
                    None => TopicInfo {
                        name,
                        error: ErrorCode::UnknownTopic,
                        config: TopicConfig::default(),
                        partitions: vec![],
                    },
                })
                .collect();
            response_frame(cid, &Response::Metadata { shards, topics })
        }
        Request::CreateTopic { name, partitions, config } => {
            let (error, message) = create_topic(shard, name, partitions, config).await;
            response_frame(cid, &Response::CreateTopic { error, message })
        }
        Request::DeleteTopic { name } => {
            let _change = shard.topic_changes.lock().await;
            let mut table = shard.topics.borrow().clone();
            let (error, message) = if table.topics.remove(&name).is_none() {
                (ErrorCode::UnknownTopic, format!("no topic {name:?}"))
            } else {
                match table.save_off_shard(&shard.config.data_dir).await {
                    Ok(()) => {
                        shard.apply_everywhere(table).await;
                        (ErrorCode::None, String::new())
                    }
                    Err(e) => (ErrorCode::StorageError, format!("cannot save topics: {e}")),
                }
            };
            response_frame(cid, &Response::DeleteTopic { error, message })
        }
        Request::DescribeTopic { name } => {
            let meta = shard.topics.borrow().topics.get(&name).cloned();
            let topic = match meta {
                None => TopicInfo {
                    name,
                    error: ErrorCode::UnknownTopic,
                    config: TopicConfig::default(),
                    partitions: vec![],
                },
                Some(meta) => describe(shard, header, meta).await,
            };
            response_frame(cid, &Response::DescribeTopic { topic })
        }
        Request::Produce { topic, partition, acks, batches, .. } => {
            let r = produce(shard, &topic, partition, acks, batches).await;
            let (error, message, base_offset, log_start) = match r {
                Ok((base, start)) => (ErrorCode::None, String::new(), base, start),
                Err((code, msg)) => (code, msg, 0, 0),
            };
            response_frame(cid, &Response::Produce { error, message, base_offset, log_start })
        }
        Request::Fetch { topic, partition, offset, max_bytes, max_wait_ms } => {
            fetch(shard, cid, &topic, partition, offset, max_bytes, max_wait_ms).await
        }
        Request::ListOffsets { topic, partition, spec } => {
            let (error, message, offset) = match list_offsets(shard, &topic, partition, spec).await {
                Ok(o) => (ErrorCode::None, String::new(), o),
                Err((c, m)) => (c, m, 0),
            };
            response_frame(cid, &Response::ListOffsets { error, message, offset })
        }
        Request::NodeStats => response_frame(cid, &Response::NodeStats { shards: shard.counters.snapshot() }),
    }
}

async fn create_topic(
    shard: &Rc<Shard>,
    name: String,
    partitions: u32,
    config: TopicConfig,
) -> (ErrorCode, String) {
    if let Err(m) = check_topic_name(&name) {
        return (ErrorCode::InvalidArgument, m);
    }
    if partitions == 0 || partitions > PARTITIONS_MAX {
        return (ErrorCode::InvalidArgument, format!("partitions must be within 1..={PARTITIONS_MAX}"));
    }
    let _change = shard.topic_changes.lock().await;
    let mut table = shard.topics.borrow().clone();
    if table.topics.contains_key(&name) {
        return (ErrorCode::TopicAlreadyExists, format!("topic {name:?} exists"));
    }
    let meta = TopicMeta {
        replicas: crate::placement::place(&name, partitions, shard.shards()),
        name: name.clone(),
        partitions,
        retention_ms: config.retention_ms.or(shard.config.retention_ms),
        retention_bytes: config.retention_bytes.or(shard.config.retention_bytes),
    };
    let before = table.clone();
    table.topics.insert(name.clone(), meta);
    if let Err(e) = table.save_off_shard(&shard.config.data_dir).await {
        return (ErrorCode::StorageError, format!("cannot save topics: {e}"));
    }
    let failures = shard.apply_everywhere(table).await;
    if failures.is_empty() {
        return (ErrorCode::None, String::new());
    }
    // All or nothing: a topic whose partitions cannot all be served is not created. Going back
    // deletes what was opened; should that fail too, the offline partitions say why.
    let message = format!("cannot create topic {name:?}: {}", failures.join("; "));
    match before.save_off_shard(&shard.config.data_dir).await {
        Ok(()) => {
            shard.apply_everywhere(before).await;
        }
        Err(e) => tracing::error!(topic = %name, error = %e, "cannot undo a failed topic creation"),
    }
    (ErrorCode::StorageError, message)
}

/// Bounds of every partition, asked of their owners with ListOffsets.
async fn describe(shard: &Rc<Shard>, header: &FrameHeader, meta: TopicMeta) -> TopicInfo {
    let mut partitions = Vec::with_capacity(meta.partitions as usize);
    for p in 0..meta.partitions {
        let mut bounds = [0u64; 2];
        for (i, spec) in [OffsetSpec::Earliest, OffsetSpec::Latest].into_iter().enumerate() {
            let req = Request::ListOffsets { topic: meta.name.clone(), partition: p, spec };
            let mut w = Writer::default();
            req.encode(&mut w);
            let frame =
                encode_frame(ApiKey::ListOffsets as u16, API_VERSION, header.correlation_id, 0, &w.buf);
            let h = FrameHeader::decode(&frame, usize::MAX).expect("a frame we built");
            let resp = match Box::pin(route(shard, h, &frame, false)).await {
                Ok(r) | Err(r) => r,
            };
            if let Ok(Response::ListOffsets { offset, .. }) =
                Response::decode(ApiKey::ListOffsets, &resp[FRAME_HEADER_BYTES..])
            {
                bounds[i] = offset;
            }
        }
        partitions.push(PartitionInfo {
            partition: p,
            shard: meta.local_shard(p).map_or(0, |s| s.0),
            log_start: bounds[0],
            log_end: bounds[1],
        });
    }
    TopicInfo { name: meta.name.clone(), error: ErrorCode::None, config: meta.config(), partitions }
}

type Failure = (ErrorCode, String);

fn find(shard: &Shard, topic: &str, partition: u32) -> Result<Rc<crate::shard::NodePartition>, Failure> {
    let count = shard.topics.borrow().topics.get(topic).map(|m| m.partitions);
    match count {
        None => Err((ErrorCode::UnknownTopic, format!("no topic {topic:?}"))),
        Some(n) if partition >= n => {
            Err((ErrorCode::UnknownPartition, format!("{topic} has {n} partitions")))
        }
        Some(_) => shard.partition(topic, partition).ok_or_else(|| match shard.offline(topic, partition) {
            // Retriable: maintenance keeps trying to open it.
            Some(o) => (ErrorCode::StorageError, format!("{topic}/{partition} is offline: {}", o.error)),
            None => (ErrorCode::NotOwner, format!("{topic}/{partition} is not served by shard {}", shard.id)),
        }),
    }
}

fn log_failure(e: LogError) -> Failure {
    match e {
        LogError::OffsetOutOfRange { .. } => (ErrorCode::OffsetOutOfRange, e.to_string()),
        LogError::Batch { source: weir_log::BatchError::TooLarge { .. }, .. } => {
            (ErrorCode::BatchTooLarge, e.to_string())
        }
        LogError::Batch { .. } | LogError::Corrupt { .. } => (ErrorCode::CorruptBatch, e.to_string()),
        e => (ErrorCode::StorageError, e.to_string()),
    }
}

/// Validates every batch of the request before appending any, then appends them all or none.
async fn produce(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    acks: Acks,
    batches: &[u8],
) -> Result<(u64, u64), Failure> {
    let p = find(shard, topic, partition)?;
    let limit = shard.config.batch_bytes_max;
    let batch_error = |e: weir_log::BatchError| match e {
        weir_log::BatchError::TooLarge { .. } => (ErrorCode::BatchTooLarge, e.to_string()),
        e => (ErrorCode::CorruptBatch, e.to_string()),
    };
    // Split by header only, copying each batch into an aligned buffer: batches sit 16-byte
    // aligned within the frame, but the frame itself may sit anywhere in the read buffer.
    let mut owned: Vec<rkyv::util::AlignedVec<16>> = Vec::new();
    let mut rest = batches;
    while !rest.is_empty() {
        let h =
            BatchHeader::decode(rest).and_then(|h| h.check_frame(limit).map(|()| h)).map_err(batch_error)?;
        let len = h.batch_len as usize;
        let bytes = rest.get(..len).ok_or_else(|| {
            batch_error(weir_log::BatchError::Truncated { needed: len, available: rest.len() })
        })?;
        let mut v = rkyv::util::AlignedVec::<16>::with_capacity(len);
        v.extend_from_slice(bytes);
        owned.push(v);
        rest = &rest[len..];
    }
    if owned.is_empty() {
        return Err((ErrorCode::InvalidArgument, "produce without batches".into()));
    }
    // Validate each batch once (CRC, header, rkyv, columns), all before appending any.
    let mut views = Vec::with_capacity(owned.len());
    for v in &owned {
        let view = BatchView::validate(v, limit).map_err(batch_error)?;
        // Produced batches have dense offsets; the log refuses others, so refuse them here,
        // before anything of the request is appended.
        let h = view.header();
        if h.last_offset_delta != h.record_count - 1 {
            return Err((ErrorCode::CorruptBatch, "batch offsets are not dense".into()));
        }
        views.push(view);
    }
    let (base, next) = {
        // One lock for all batches of the request, so they land together, in order, and all
        // or nothing.
        let mut log = p.log.lock().await;
        let a = log.append_all(&views, 0, now_ms()).await.map_err(|e| match e {
            weir_log::AppendAllError::NotAppended { source } => log_failure(source),
            e => (ErrorCode::StorageError, e.to_string()),
        })?;
        p.appended(a.last_offset + 1);
        (a.base_offset, a.last_offset + 1)
    };
    let log_start = p.log_start();
    // Consumers see the records once they are durable (fsync) or written out (interval flush).
    // With acks=leader the answer waits for that too; with acks=none it goes out now, and a
    // task of its own makes the records visible.
    let fsync = shard.config.fsync;
    let visible = async move {
        if fsync {
            p.log.wait_durable(next).await.map_err(log_failure)?;
        } else {
            p.log.lock().await.write_out().await.map_err(log_failure)?;
        }
        p.advance(next);
        Ok::<(), Failure>(())
    };
    match acks {
        Acks::Leader => visible.await?,
        Acks::None => {
            glommio::spawn_local(async move {
                if let Err((_, message)) = visible.await {
                    tracing::error!(%message, "write after an acks=none produce failed");
                }
            })
            .detach();
        }
    }
    Ok((base, log_start))
}

async fn fetch(
    shard: &Rc<Shard>,
    cid: u32,
    topic: &str,
    partition: u32,
    offset: u64,
    max_bytes: u32,
    max_wait_ms: u32,
) -> Vec<u8> {
    let fail = |(error, message): Failure| {
        response_frame(
            cid,
            &Response::Fetch { error, message, high_watermark: 0, log_start: 0, batches: &[] },
        )
    };
    let p = match find(shard, topic, partition) {
        Ok(p) => p,
        Err(f) => return fail(f),
    };
    let max_bytes = (max_bytes as usize).clamp(1, shard.config.request_bytes_max);
    let deadline =
        std::time::Instant::now() + Duration::from_millis(u64::from(max_wait_ms.min(FETCH_WAIT_MS_MAX)));
    loop {
        let hw = p.high_watermark();
        if offset > hw || offset < p.log_start() {
            return fail((
                ErrorCode::OffsetOutOfRange,
                format!("offset {offset} outside [{}, {hw}]", p.log_start()),
            ));
        }
        if offset < hw {
            let plan = p.log.lock().await.plan_read(offset, max_bytes, hw);
            let fetched = match plan {
                Ok(Some(plan)) => plan.execute().await,
                Ok(None) => Ok(weir_log::segment::Fetched::empty(offset)),
                Err(e) => Err(e),
            };
            return match fetched {
                Ok(f) => fetched_frame(cid, hw, p.log_start(), f.bytes()),
                Err(e) => fail(log_failure(e)),
            };
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(wait) = (!left.is_zero()).then(|| p.wait()).flatten() else {
            return fetched_frame(cid, hw, p.log_start(), &[]);
        };
        tracing::debug!(
            topic,
            partition,
            offset,
            wait_ms = left.as_millis() as u64,
            "fetch waiting for data"
        );
        let timer = glommio::timer::sleep(left);
        futures::pin_mut!(timer);
        let _ = futures::future::select(wait, timer).await;
    }
}

fn fetched_frame(cid: u32, high_watermark: u64, log_start: u64, batches: &[u8]) -> Vec<u8> {
    let resp = Response::Fetch {
        error: ErrorCode::None,
        message: String::new(),
        high_watermark,
        log_start,
        batches,
    };
    response_frame(cid, &resp)
}

async fn list_offsets(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    spec: OffsetSpec,
) -> Result<u64, Failure> {
    let p = find(shard, topic, partition)?;
    match spec {
        OffsetSpec::Earliest => Ok(p.log_start()),
        OffsetSpec::Latest => Ok(p.high_watermark()),
        OffsetSpec::Timestamp(ts) => {
            // Plan under the lock, read without it: the reads must not hold up the partition.
            let lookup = p.log.lock().await.plan_timestamp_lookup(ts);
            let found = lookup.execute().await.map_err(log_failure)?;
            Ok(found.unwrap_or(p.high_watermark()).min(p.high_watermark()))
        }
    }
}

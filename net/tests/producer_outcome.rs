//! A record whose first attempt the node could not settle ("outcome unknown") and whose last
//! attempt was refused fails as "may have been written", never as a plain refusal.

use tokio_rt::io::{AsyncReadExt, AsyncWriteExt};
use weir_net::api::{API_VERSION, PartitionInfo, ShardAddr, TopicInfo};
use weir_net::client::{ClientError, Producer, ProducerConfig, ProducerRecord, Target};
use weir_net::frame::{FRAME_HEADER_BYTES, FrameHeader, encode_frame};
use weir_net::wire::Writer;
use weir_net::{ApiKey, ErrorCode, Response, TopicConfig};

fn frame(api: ApiKey, cid: u32, resp: &Response<'_>) -> Vec<u8> {
    let mut w = Writer::default();
    // As a node of version 1 answers: Metadata without nodes or leaders.
    resp.encode_version(API_VERSION, &mut w).unwrap();
    encode_frame(api as u16, API_VERSION, cid, 0, &w.buf)
}

/// Serves one client: metadata of topic `t` (one partition), then answers produces with
/// `OutcomeUnknown` first and `StorageError` after.
async fn serve(mut s: tokio_rt::net::TcpStream, port: u16) {
    let mut produces = 0;
    loop {
        let mut head = [0u8; FRAME_HEADER_BYTES];
        if s.read_exact(&mut head).await.is_err() {
            return;
        }
        let h = FrameHeader::decode(&head, usize::MAX).unwrap();
        let mut body = vec![0u8; h.body_len];
        s.read_exact(&mut body).await.unwrap();
        let answer = match ApiKey::from_u16(h.api_key).unwrap() {
            ApiKey::Metadata => {
                let partitions = vec![PartitionInfo {
                    partition: 0,
                    shard: 0,
                    log_start: 0,
                    log_end: 0,
                    health: None,
                    replication: None,
                }];
                let topic = TopicInfo {
                    name: "t".into(),
                    error: ErrorCode::None,
                    config: TopicConfig::default(),
                    partitions,
                };
                let shards = vec![ShardAddr { shard: 0, host: "127.0.0.1".into(), port }];
                frame(
                    ApiKey::Metadata,
                    h.correlation_id,
                    &Response::Metadata { shards, nodes: vec![], topics: vec![topic] },
                )
            }
            ApiKey::Produce => {
                produces += 1;
                let error = if produces == 1 { ErrorCode::OutcomeUnknown } else { ErrorCode::StorageError };
                let resp = Response::Produce {
                    error,
                    message: format!("attempt {produces}"),
                    base_offset: 0,
                    log_start: 0,
                };
                frame(ApiKey::Produce, h.correlation_id, &resp)
            }
            ApiKey::InitProducerId => {
                let resp = Response::InitProducerId {
                    error: ErrorCode::None,
                    message: String::new(),
                    producer_id: 1,
                    producer_epoch: 0,
                };
                frame(ApiKey::InitProducerId, h.correlation_id, &resp)
            }
            other => panic!("unexpected request {other:?}"),
        };
        s.write_all(&answer).await.unwrap();
    }
}

#[test]
fn a_record_that_may_have_been_written_says_so_when_it_fails() {
    let rt = tokio_rt::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let listener = tokio_rt::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio_rt::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio_rt::spawn(serve(s, port));
            }
        });
        let config =
            ProducerConfig { retries: 1, retry_backoff_ms: 1, linger_ms: 0, ..ProducerConfig::default() };
        let producer = Producer::connect(&Target::tcp(format!("127.0.0.1:{port}")), config).await.unwrap();
        let record = ProducerRecord {
            topic: "t".into(),
            partition: Some(0),
            value: Some(b"v".to_vec()),
            ..Default::default()
        };
        match producer.enqueue(record).await.unwrap().await {
            Err(ClientError::MaybeWritten { cause }) => {
                assert!(
                    matches!(*cause, ClientError::Server { code: ErrorCode::StorageError, .. }),
                    "{cause}"
                )
            }
            other => panic!("expected MaybeWritten, got {other:?}"),
        }
    });
}

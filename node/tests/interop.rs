//! The node's own QUIC driver speaks QUIC, not just Weir's client: a stock quinn client, with
//! quinn's default transport and endpoint settings and nothing from Weir but the protocol's
//! frames, produces and fetches on the shared address and on each shard's own.

mod common;

use common::{Node, Via, answer_len, decode_answer, request_frame, runtime};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use weir_log::batch::{BatchBuilder, ProducerStamp, Record};
use weir_net::api::{Request, Response};
use weir_net::client::Admin;
use weir_net::frame::FRAME_HEADER_BYTES;
use weir_net::{Acks, ApiKey, ErrorCode, TopicConfig};

/// A quinn client as any application would write one: the node's certificate as its root, the
/// protocol's ALPN, every other setting quinn's default (1452-byte datagrams at most, quinn's
/// flow-control windows).
fn stock_client(cert_pem: &std::path::Path) -> (quinn::Endpoint, quinn::ClientConfig) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    tls.alpn_protocols = vec![b"weir/1".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    (endpoint, quinn::ClientConfig::new(Arc::new(quic)))
}

async fn call(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    req: &Request<'_>,
    cid: u32,
) -> Vec<u8> {
    send.write_all(&request_frame(req, cid)).await.unwrap();
    let mut frame = vec![0u8; FRAME_HEADER_BYTES];
    recv.read_exact(&mut frame).await.unwrap();
    frame.resize(answer_len(&frame, cid), 0);
    recv.read_exact(&mut frame[FRAME_HEADER_BYTES..]).await.unwrap();
    frame
}

#[test]
fn a_stock_quinn_client_produces_and_fetches_on_every_address() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Quic)).await.unwrap();
        admin.create_topic("interop", 2, TopicConfig::default()).await.unwrap();
        let (endpoint, config) = stock_client(&dir.path().join("tls/cert.pem"));
        // Batches of ~1 MiB, larger than quinn's default stream window, so that flow control
        // and many full-size datagrams both ways are part of the exchange.
        let value: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut builder = BatchBuilder::new(2 << 20);
        for i in 0..16u8 {
            let mut v = value.clone();
            v[0] = i;
            builder.push(&Record { key: None, value: Some(&v), headers: &[], timestamp: 1 }).unwrap();
        }
        let batch = builder.seal(ProducerStamp::default()).as_bytes().to_vec();
        let addrs = [node.addr(), node.shard_addr(0), node.shard_addr(1)];
        for (n, addr) in addrs.iter().enumerate() {
            let conn = endpoint
                .connect_with(config.clone(), addr.parse().unwrap(), "localhost")
                .unwrap()
                .await
                .unwrap();
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            let frame = call(&mut send, &mut recv, &Request::ApiVersions, 1).await;
            assert!(matches!(decode_answer(ApiKey::ApiVersions, &frame), Response::ApiVersions { .. }));
            let mut offsets = Vec::new();
            for partition in 0..2 {
                let req = Request::Produce {
                    topic: "interop".into(),
                    partition,
                    acks: Acks::Leader,
                    timeout_ms: 5000,
                    batches: &batch,
                };
                let frame = call(&mut send, &mut recv, &req, 2 + partition).await;
                match decode_answer(ApiKey::Produce, &frame) {
                    Response::Produce { error: ErrorCode::None, base_offset, .. } => {
                        offsets.push(base_offset)
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(offsets, [16 * n as u64; 2], "each address appended once to each partition");
            for partition in 0..2 {
                let req = Request::Fetch {
                    topic: "interop".into(),
                    partition,
                    offset: offsets[partition as usize],
                    max_bytes: 4 << 20,
                    max_wait_ms: 0,
                };
                let frame = call(&mut send, &mut recv, &req, 4 + partition).await;
                match decode_answer(ApiKey::Fetch, &frame) {
                    Response::Fetch { error: ErrorCode::None, batches, .. } => {
                        // The batch comes back byte for byte, apart from the base offset and
                        // leader epoch the node assigned (bytes 0..12, outside the CRC).
                        assert_eq!(batches.len(), batch.len());
                        assert_eq!(&batches[0..8], &offsets[partition as usize].to_le_bytes());
                        assert!(batches[12..] == batch[12..], "the fetched batch differs from the one sent");
                    }
                    other => panic!("{other:?}"),
                }
            }
            send.finish().unwrap();
            conn.close(0u32.into(), b"done");
        }
        endpoint.wait_idle().await;
    });
}

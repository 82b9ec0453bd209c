//! Weir's client speaks QUIC, not just to Weir's node: it reaches a stock quinn server (quinn's
//! default transport and endpoint settings, its own certificate) that answers the protocol's
//! frames from memory, and moves batches both ways through it.

use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use std::sync::Arc;
use weir_log::batch::{BatchBuilder, ProducerStamp, Record};
use weir_net::api::{Request, Response};
use weir_net::client::connection::Connection;
use weir_net::client::{ClientError, Target};
use weir_net::frame::{FrameDecoder, encode_frame};
use weir_net::tls::{Trust, fingerprint};
use weir_net::wire::Writer;
use weir_net::{Acks, ErrorCode};

/// A quinn server as any application would write one, with the protocol's ALPN; returns its
/// endpoint and its certificate's DER.
fn stock_server() -> (quinn::Endpoint, CertificateDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = cert.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
    let mut tls =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key.into())
            .unwrap();
    tls.alpn_protocols = vec![b"weir/1".to_vec()];
    let config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap()));
    (quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap(), der)
}

/// Answers ApiVersions, Produce (kept in memory, one log) and Fetch on one stream.
async fn serve(mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let mut decoder = FrameDecoder::new(16 << 20);
    let mut log: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        decoder.feed(&buf[..n]);
        while let Some((h, frame)) = decoder.next_frame().unwrap() {
            let req = Request::decode(h.api_key, h.api_version, &frame[16..]).unwrap();
            let response = match req {
                Request::ApiVersions => Response::ApiVersions { apis: vec![(0, 1, 1)] },
                Request::Produce { batches, .. } => {
                    log.push(batches.to_vec());
                    Response::Produce {
                        error: ErrorCode::None,
                        message: String::new(),
                        base_offset: log.len() as u64 - 1,
                        log_start: 0,
                    }
                }
                Request::Fetch { offset, .. } => Response::Fetch {
                    error: ErrorCode::None,
                    message: String::new(),
                    high_watermark: log.len() as u64,
                    log_start: 0,
                    batches: &log[offset as usize],
                },
                other => panic!("not served here: {other:?}"),
            };
            let mut w = Writer::default();
            response.encode(&mut w).unwrap();
            let out = encode_frame(h.api_key, h.api_version, h.correlation_id, 0, &w.buf);
            send.write_all(&out).await.unwrap();
        }
    }
}

#[test]
fn the_weir_client_reaches_a_stock_quinn_server() {
    let rt = tokio_rt::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (server, der) = stock_server();
        let addr = server.local_addr().unwrap().to_string();
        tokio_rt::spawn(async move {
            while let Some(incoming) = server.accept().await {
                let conn = incoming.await.unwrap();
                tokio_rt::spawn(async move {
                    while let Ok((send, recv)) = conn.accept_bi().await {
                        tokio_rt::spawn(serve(send, recv));
                    }
                });
            }
        });
        let target = Target::quic(addr.clone(), &Trust::Fingerprint(fingerprint(&der))).unwrap();
        let mut conn = Connection::connect(&target).await.unwrap();
        match conn.call(&Request::ApiVersions).await.unwrap().response().unwrap() {
            Response::ApiVersions { apis } => assert_eq!(apis, [(0, 1, 1)]),
            other => panic!("{other:?}"),
        }
        // Batches of ~1 MiB each way: past quinn's default windows, in full-size datagrams.
        let mut sent = Vec::new();
        for i in 0..4u8 {
            let value = vec![i; 1 << 20];
            let mut b = BatchBuilder::new(2 << 20);
            b.push(&Record { key: Some(b"k"), value: Some(&value), headers: &[], timestamp: 1 }).unwrap();
            let batch = b.seal(ProducerStamp::default()).as_bytes().to_vec();
            let req = Request::Produce {
                topic: "t".into(),
                partition: 0,
                acks: Acks::Leader,
                timeout_ms: 1000,
                batches: &batch,
            };
            match conn.call(&req).await.unwrap().response().unwrap() {
                Response::Produce { base_offset, .. } => assert_eq!(base_offset, u64::from(i)),
                other => panic!("{other:?}"),
            }
            sent.push(batch);
        }
        for (offset, batch) in sent.iter().enumerate() {
            let req = Request::Fetch {
                topic: "t".into(),
                partition: 0,
                offset: offset as u64,
                max_bytes: 4 << 20,
                max_wait_ms: 0,
            };
            match conn.call(&req).await.unwrap().response().unwrap() {
                Response::Fetch { batches, .. } => assert!(batches == &batch[..], "batch {offset} differs"),
                other => panic!("{other:?}"),
            }
        }
        // And the client's trust still holds against a stock server: another certificate is
        // refused.
        let wrong = Target::quic(addr, &Trust::Fingerprint([9; 32])).unwrap();
        assert!(matches!(Connection::connect(&wrong).await, Err(ClientError::Connect { .. })));
    });
}

//! The shard-native QUIC driver as a client (as one node's shard reaches another): it produces
//! and fetches on a node, also through a relay that drops, duplicates and reorders datagrams;
//! reaches a stock quinn server and honours its stream limit; refuses a server it does not
//! trust; and a handle of an ended connection never touches the next one.

mod common;

use common::{Node, Via, answer_len, decode_answer, request_frame, runtime};
use futures::{AsyncReadExt, AsyncWriteExt};
use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use weir_log::batch::{BatchBuilder, ProducerStamp, Record};
use weir_net::api::{Request, Response};
use weir_net::client::Admin;
use weir_net::frame::FRAME_HEADER_BYTES;
use weir_net::tls::{Trust, client_config, fingerprint};
use weir_net::{Acks, ApiKey, ErrorCode, TopicConfig};
use weir_node::quic_native::{Endpoint, Stream};

const BUSY_POLL: Duration = Duration::from_micros(200);

/// Runs `f` on a glommio executor of its own thread, as a shard would.
fn on_shard<T: Send + 'static>(f: impl AsyncFnOnce() -> T + Send + 'static) -> T {
    glommio::LocalExecutorBuilder::default().spawn(move || async move { f().await }).unwrap().join().unwrap()
}

/// Fails the test rather than hang when `f` does not finish in `secs` (a lost wake-up).
async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    let timeout = glommio::timer::sleep(Duration::from_secs(secs));
    futures::pin_mut!(f, timeout);
    match futures::future::select(f, timeout).await {
        futures::future::Either::Left((t, _)) => t,
        futures::future::Either::Right(_) => panic!("{what} did not finish in {secs} s"),
    }
}

async fn call(s: &mut Stream, req: &Request<'_>, cid: u32) -> Vec<u8> {
    s.write_all(&request_frame(req, cid)).await.unwrap();
    let mut frame = vec![0u8; FRAME_HEADER_BYTES];
    s.read_exact(&mut frame).await.unwrap();
    frame.resize(answer_len(&frame, cid), 0);
    s.read_exact(&mut frame[FRAME_HEADER_BYTES..]).await.unwrap();
    frame
}

#[test]
fn a_native_client_produces_and_fetches_on_every_address_of_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    runtime().block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Quic)).await.unwrap();
        admin.create_topic("native", 2, TopicConfig::default()).await.unwrap();
    });
    let trust = Trust::CaFile(dir.path().join("tls/cert.pem"));
    let addrs: Vec<SocketAddr> =
        [node.addr(), node.shard_addr(0), node.shard_addr(1)].iter().map(|a| a.parse().unwrap()).collect();
    on_shard(async move || {
        let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap(), BUSY_POLL).unwrap();
        // Batches of ~1 MiB: flow control and many full-size datagrams both ways.
        let mut builder = BatchBuilder::new(2 << 20);
        for i in 0..16u32 {
            let value: Vec<u8> = (0..64 * 1024u32).map(|j| (j * 7 + i) as u8).collect();
            builder.push(&Record { key: None, value: Some(&value), headers: &[], timestamp: 1 }).unwrap();
        }
        let batch = builder.seal(ProducerStamp::default()).as_bytes().to_vec();
        for (n, addr) in addrs.into_iter().enumerate() {
            let connect = endpoint.connect(client_config(&trust).unwrap(), addr, "localhost");
            let conn = within(10, "the handshake", connect).await.unwrap();
            let mut s = within(10, "opening a stream", conn.open_bi()).await.unwrap();
            let frame = call(&mut s, &Request::ApiVersions, 1).await;
            assert!(matches!(decode_answer(ApiKey::ApiVersions, &frame), Response::ApiVersions { .. }));
            for partition in 0..2u32 {
                let req = Request::Produce {
                    topic: "native".into(),
                    partition,
                    acks: Acks::Leader,
                    timeout_ms: 5000,
                    batches: &batch,
                };
                let frame = within(10, "a produce", call(&mut s, &req, 2 + partition)).await;
                match decode_answer(ApiKey::Produce, &frame) {
                    Response::Produce { error: ErrorCode::None, base_offset, .. } => {
                        assert_eq!(base_offset, 16 * n as u64, "each address appends once to each partition")
                    }
                    other => panic!("{other:?}"),
                }
                let req = Request::Fetch {
                    topic: "native".into(),
                    partition,
                    offset: 16 * n as u64,
                    max_bytes: 4 << 20,
                    max_wait_ms: 0,
                };
                let frame = within(10, "a fetch", call(&mut s, &req, 4 + partition)).await;
                match decode_answer(ApiKey::Fetch, &frame) {
                    Response::Fetch { error: ErrorCode::None, batches, .. } => {
                        // Byte for byte, apart from the base offset and leader epoch the node
                        // assigned (bytes 0..12, outside the CRC).
                        assert_eq!(batches.len(), batch.len());
                        assert_eq!(&batches[0..8], &(16 * n as u64).to_le_bytes());
                        assert!(batches[12..] == batch[12..], "the fetched batch differs from the one sent");
                    }
                    other => panic!("{other:?}"),
                }
            }
            s.finish().unwrap();
            drop(s);
            conn.close(0, b"done");
        }
        endpoint.close();
    });
}

/// A quinn server on tokio as any application would write one, which echoes each stream back
/// and lets a client have one stream open at a time. Returns its address and certificate.
fn stock_echo_server(rt: &tokio_rt::runtime::Runtime) -> (SocketAddr, CertificateDer<'static>) {
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
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap()));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(1u32.into());
    config.transport_config(Arc::new(transport));
    let _guard = rt.enter();
    let server = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    rt.spawn(async move {
        while let Some(incoming) = server.accept().await {
            let Ok(conn) = incoming.await else { continue };
            tokio_rt::spawn(async move {
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio_rt::spawn(async move {
                        let data = recv.read_to_end(64 << 20).await.unwrap();
                        send.write_all(&data).await.unwrap();
                        send.finish().unwrap();
                    });
                }
            });
        }
    });
    (addr, der)
}

#[test]
fn a_native_client_reaches_a_stock_quinn_server_within_its_stream_limit() {
    let rt = runtime();
    let (addr, der) = stock_echo_server(&rt);
    let trust = Trust::Fingerprint(fingerprint(&der));
    on_shard(async move || {
        let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap(), BUSY_POLL).unwrap();
        let conn = std::rc::Rc::new(
            endpoint.connect(client_config(&trust).unwrap(), addr, "localhost").await.unwrap(),
        );
        let mut first = conn.open_bi().await.unwrap();
        // The server allows one stream at a time: a second, opened meanwhile by another task,
        // waits until the first has ended and the server says so.
        let opened = std::rc::Rc::new(std::cell::Cell::new(false));
        let second = glommio::spawn_local({
            let (conn, opened) = (conn.clone(), opened.clone());
            async move {
                let s = conn.open_bi().await;
                opened.set(true);
                s
            }
        });
        glommio::executor().yield_now().await;
        let sent: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        first.write_chunk(bytes::Bytes::from(sent.clone())).await.unwrap();
        first.finish().unwrap();
        let mut echoed = Vec::new();
        first.read_to_end(&mut echoed).await.unwrap();
        assert!(echoed == sent, "the echo differs from what was sent");
        assert!(!opened.get(), "a second stream opened past the peer's limit");
        drop(first);
        let mut second = within(10, "opening the second stream", second).await.unwrap();
        second.write_all(b"again").await.unwrap();
        second.finish().unwrap();
        let mut echoed = Vec::new();
        second.read_to_end(&mut echoed).await.unwrap();
        assert_eq!(echoed, b"again");
        drop(second);
        conn.close(0, b"done");
        endpoint.close();
    });
}

#[test]
fn a_native_client_refuses_a_server_it_does_not_trust() {
    let rt = runtime();
    let (addr, _der) = stock_echo_server(&rt);
    on_shard(async move || {
        let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap(), BUSY_POLL).unwrap();
        let config = client_config(&Trust::Fingerprint([9; 32])).unwrap();
        let err = within(10, "the refused handshake", endpoint.connect(config, addr, "localhost"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
        assert!(err.to_string().contains("certificate"), "{err}");
        endpoint.close();
    });
}

#[test]
fn a_closed_connection_handle_never_reaches_the_next_connection() {
    let rt = runtime();
    let (addr, der) = stock_echo_server(&rt);
    let trust = Trust::Fingerprint(fingerprint(&der));
    on_shard(async move || {
        let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap(), BUSY_POLL).unwrap();
        let old = endpoint.connect(client_config(&trust).unwrap(), addr, "localhost").await.unwrap();
        old.close(0, b"done");
        within(10, "the closed connection to drain", old.closed()).await;
        // The endpoint has let go of the old connection, so the new one may get its handle:
        // the old `Connection` must not open streams on it, nor close it when dropped.
        let new = endpoint.connect(client_config(&trust).unwrap(), addr, "localhost").await.unwrap();
        let err = old.open_bi().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted, "{err}");
        drop(old);
        let mut s = within(10, "opening a stream", new.open_bi()).await.unwrap();
        s.write_all(b"still here").await.unwrap();
        s.finish().unwrap();
        let mut echoed = Vec::new();
        within(10, "the echo", s.read_to_end(&mut echoed)).await.unwrap();
        assert_eq!(echoed, b"still here");
        drop(s);
        new.close(0, b"done");
        endpoint.close();
    });
}

#[test]
fn a_native_client_through_loss_duplication_and_reordering_gets_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), 2);
    let rt = runtime();
    let relay = rt.block_on(async {
        let mut admin = Admin::connect(&node.target(Via::Tcp)).await.unwrap();
        admin.create_topic("lossy", 1, TopicConfig::default()).await.unwrap();
        // The relay's tasks go on running on the runtime's threads.
        common::lossy_relay(node.addr().parse().unwrap(), 0xc11e).await
    });
    let trust = Trust::CaFile(dir.path().join("tls/cert.pem"));
    on_shard(async move || {
        let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap(), BUSY_POLL).unwrap();
        let connect = endpoint.connect(client_config(&trust).unwrap(), relay, "localhost");
        let conn = within(30, "the handshake", connect).await.unwrap();
        let mut s = within(30, "opening a stream", conn.open_bi()).await.unwrap();
        // Batches from 1 KiB to ~512 KiB: single datagrams and long bursts, both ways.
        let batches: Vec<Vec<u8>> = (0..24u32)
            .map(|i| {
                let value: Vec<u8> = (0..1024u32 << (i % 10)).map(|j| (j * 31 + i) as u8).collect();
                let mut b = BatchBuilder::new(2 << 20);
                b.push(&Record { key: None, value: Some(&value), headers: &[], timestamp: 1 }).unwrap();
                b.seal(ProducerStamp::default()).as_bytes().to_vec()
            })
            .collect();
        for (i, batch) in batches.iter().enumerate() {
            let req = Request::Produce {
                topic: "lossy".into(),
                partition: 0,
                acks: Acks::Leader,
                timeout_ms: 5000,
                batches: batch,
            };
            let frame = within(30, "a produce", call(&mut s, &req, i as u32)).await;
            match decode_answer(ApiKey::Produce, &frame) {
                Response::Produce { error: ErrorCode::None, base_offset, .. } => {
                    assert_eq!(base_offset, i as u64)
                }
                other => panic!("{other:?}"),
            }
        }
        for (i, batch) in batches.iter().enumerate() {
            let req = Request::Fetch {
                topic: "lossy".into(),
                partition: 0,
                offset: i as u64,
                max_bytes: batch.len() as u32,
                max_wait_ms: 0,
            };
            let frame = within(30, "a fetch", call(&mut s, &req, 100 + i as u32)).await;
            match decode_answer(ApiKey::Fetch, &frame) {
                Response::Fetch { error: ErrorCode::None, batches: got, .. } => {
                    assert_eq!(got.len(), batch.len(), "batch {i}");
                    assert!(got[12..] == batch[12..], "batch {i} differs from the one sent");
                }
                other => panic!("{other:?}"),
            }
        }
        drop(s);
        conn.close(0, b"done");
        endpoint.close();
    });
}

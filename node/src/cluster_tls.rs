//! The node's side of the cluster's trust on its shards' QUIC ports (see "Trust" in
//! `docs/cluster.md`): which certificate a connecting peer is shown, which client certificates
//! are accepted, and the configuration a follower connects to its leaders with.
//!
//! Built once at start from the node's [`NodeTls`] (issued by the control plane and kept in
//! `<data_dir>/cluster-tls/`); immutable after, shared by every shard.

use crate::tls::CertError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use weir_cluster::tls::{NodeTls, node_dns_name};

fn setup(e: impl std::fmt::Display) -> CertError {
    CertError::Mismatch(e.to_string())
}

fn node_chain(node: &NodeTls) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CertError> {
    let cert = CertificateDer::from_pem_slice(node.cert_pem.as_bytes()).map_err(setup)?;
    let key = PrivateKeyDer::from_pem_slice(node.key_pem.as_bytes()).map_err(setup)?;
    Ok((vec![cert], key))
}

fn roots(node: &NodeTls) -> Result<Arc<rustls::RootCertStore>, CertError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(node.ca_cert_pem.as_bytes()).map_err(setup)?).map_err(setup)?;
    Ok(Arc::new(roots))
}

/// Accepts clients without a certificate (the SDK's), and checks any certificate presented
/// against the cluster CA: a connection's verified chain is then what proves a node's identity
/// (`crate::peer::Peer`).
pub fn client_verifier(
    node: &NodeTls,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, CertError> {
    rustls::server::WebPkiClientVerifier::builder_with_provider(roots(node)?, provider)
        .allow_unauthenticated()
        .build()
        .map_err(setup)
}

/// Shows the node certificate to a peer that asks for this node's cluster name (SNI), the
/// client-facing certificate to everyone else.
#[derive(Debug)]
pub struct ByName {
    name: String,
    node: Arc<CertifiedKey>,
    client: Arc<CertifiedKey>,
}

impl ByName {
    pub fn new(
        node: &NodeTls,
        client: Arc<CertifiedKey>,
        provider: &CryptoProvider,
    ) -> Result<Self, CertError> {
        let (chain, key) = node_chain(node)?;
        let certified = CertifiedKey::from_der(chain, key, provider).map_err(setup)?;
        Ok(Self { name: node_dns_name(node.node), node: Arc::new(certified), client })
    }
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            Some(name) if name.eq_ignore_ascii_case(&self.name) => Some(self.node.clone()),
            _ => Some(self.client.clone()),
        }
    }
}

/// The QUIC client configuration a follower dials a leader shard with: it presents this node's
/// certificate and accepts only a certificate chaining to the cluster CA that names the node it
/// dials (the server name given at connect, `node-<leader>.weir-cluster`).
pub fn follower_config(
    node: &NodeTls,
    stream_window_bytes: u32,
    connection_window_bytes: u32,
) -> Result<quinn::ClientConfig, CertError> {
    let mut tls = node.client_config().map_err(setup)?;
    tls.alpn_protocols = vec![weir_net::tls::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(setup)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let transport = weir_net::tls::transport_config(stream_window_bytes, connection_window_bytes);
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Reads the node's identity as the control plane stored it at this start: the CA certificate
/// (`ca_cert`) and `<data_dir>/cluster-tls/node.pem` and `node.key`.
pub fn stored_identity(
    node: weir_replication::NodeId,
    ca_cert: &std::path::Path,
    data_dir: &std::path::Path,
) -> Result<NodeTls, CertError> {
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path).map_err(|e| CertError::Read { path, reason: e.to_string() })
    };
    let dir = data_dir.join("cluster-tls");
    Ok(NodeTls {
        node,
        ca_cert_pem: read(ca_cert.to_owned())?,
        cert_pem: read(dir.join("node.pem"))?,
        key_pem: read(dir.join("node.key"))?,
    })
}

//! The cluster's trust: a cluster CA, node certificates for `node-<id>.weir-cluster` signed by
//! it, and the rustls configurations of mutual TLS between control planes (see "Trust" in
//! `docs/cluster.md`).
//!
//! Both sides present their node certificate and check that the peer's chains to the CA; the
//! client also checks that the server's certificate names the node it dialled, and the server
//! learns the client's node from its certificate ([`peer_is_node`]) and refuses a request that
//! claims to come from another node.

use crate::error::ControlError;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use weir_replication::NodeId;

/// The ALPN protocol of the control plane's QUIC connections.
pub const ALPN: &[u8] = b"weir-cluster/1";

/// The DNS name a node's certificate is issued for.
pub fn node_dns_name(node: NodeId) -> String {
    format!("node-{}.weir-cluster", node.0)
}

fn tls_error(reason: impl std::fmt::Display) -> ControlError {
    ControlError::Tls { reason: reason.to_string() }
}

/// The CA's parameters. Deterministic, so that the CA certificate can be rebuilt from its key
/// to sign node certificates: the issuer name and key identifier are what chains them.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "weir cluster CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A new cluster CA: `(cert_pem, key_pem)`.
pub fn generate_ca() -> Result<(String, String), ControlError> {
    let key = KeyPair::generate().map_err(tls_error)?;
    let cert = ca_params().self_signed(&key).map_err(tls_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A certificate for `node` (`node-<id>.weir-cluster`) signed by the CA: `(cert_pem, key_pem)`.
/// `ca_cert_pem` is checked to be the CA the key belongs to.
pub fn issue_node_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    node: NodeId,
) -> Result<(String, String), ControlError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(tls_error)?;
    let ca_cert = ca_params().self_signed(&ca_key).map_err(tls_error)?;
    let given = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes()).map_err(tls_error)?;
    let ca_end = webpki::EndEntityCert::try_from(&given).map_err(tls_error)?;
    let rebuilt = CertificateDer::from_pem_slice(ca_cert.pem().as_bytes()).map_err(tls_error)?;
    let rebuilt_end = webpki::EndEntityCert::try_from(&rebuilt).map_err(tls_error)?;
    if ca_end.subject() != rebuilt_end.subject() {
        return Err(tls_error("the CA certificate is not a Weir cluster CA"));
    }
    // Every Weir CA has the same subject: the key is what tells two apart. The certificate
    // holds its public key as a DER SubjectPublicKeyInfo, byte for byte as the key encodes it.
    let public = ca_key.public_key_der();
    if !given.as_ref().windows(public.len()).any(|w| w == public.as_slice()) {
        return Err(tls_error("the CA key does not belong to the CA certificate"));
    }
    let key = KeyPair::generate().map_err(tls_error)?;
    let mut params = CertificateParams::new(vec![node_dns_name(node)]).map_err(tls_error)?;
    params.distinguished_name.push(DnType::CommonName, node_dns_name(node));
    let cert = params.signed_by(&key, &ca_cert, &ca_key).map_err(tls_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What a node needs for mutual TLS: the CA to check peers against, and its own certificate.
#[derive(Debug, Clone)]
pub struct NodeTls {
    pub node: NodeId,
    pub ca_cert_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl NodeTls {
    /// Issues this node's certificate from the CA.
    pub fn issue(ca_cert_pem: &str, ca_key_pem: &str, node: NodeId) -> Result<Self, ControlError> {
        let (cert_pem, key_pem) = issue_node_cert(ca_cert_pem, ca_key_pem, node)?;
        Ok(Self { node, ca_cert_pem: ca_cert_pem.into(), cert_pem, key_pem })
    }

    /// Keeps the node's certificate and key in `dir` (`node.pem`, `node.key`, replaced
    /// atomically), for the node's shards to present on their own connections.
    pub fn store(&self, dir: &std::path::Path) -> Result<(), ControlError> {
        let io = |source| ControlError::Io { path: dir.into(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        crate::durable::write_atomic(&dir.join("node.pem"), self.cert_pem.as_bytes()).map_err(io)?;
        crate::durable::write_atomic_mode(&dir.join("node.key"), self.key_pem.as_bytes(), 0o600).map_err(io)
    }

    fn roots(&self) -> Result<Arc<rustls::RootCertStore>, ControlError> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.ca_cert_pem.as_bytes()).map_err(tls_error)?;
        roots.add(ca).map_err(tls_error)?;
        Ok(Arc::new(roots))
    }

    fn identity(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ControlError> {
        let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(tls_error)?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(tls_error)?;
        Ok((vec![cert], key))
    }

    /// The server side: requires a client certificate chaining to the CA.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, ControlError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
                .build()
                .map_err(tls_error)?;
        let (chain, key) = self.identity()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_error)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(tls_error)?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The client side: presents this node's certificate and checks the server's against the
    /// CA and the name given at connect time (see [`node_dns_name`]).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, ControlError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (chain, key) = self.identity()?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_error)?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(chain, key)
            .map_err(tls_error)?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

/// Whether the end-entity certificate `cert` (already verified to chain to the CA by the
/// handshake) names `node`.
pub fn peer_is_node(cert: &CertificateDer<'_>, node: NodeId) -> bool {
    let Ok(end) = webpki::EndEntityCert::try_from(cert) else { return false };
    let Ok(name) = ServerName::try_from(node_dns_name(node)) else { return false };
    end.verify_is_valid_for_subject_name(&name).is_ok()
}

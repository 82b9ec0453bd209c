//! The node's certificate for QUIC: the files the operator names, or a self-signed one that the
//! node generates into `<data_dir>/tls/` on first start and reuses after, so that a client which
//! pinned its fingerprint keeps trusting it across restarts.

use crate::config::NodeConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_net::tls::{ALPN, fingerprint, transport_config};

/// Why the node has no usable certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    #[error("certificate and key do not go together: {0}")]
    Mismatch(String),
}

/// The certificate a node presents, with where it came from.
#[derive(Debug)]
pub struct NodeCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the leaf certificate.
    pub fingerprint: [u8; 32],
    pub cert_path: PathBuf,
    /// Whether this start generated it.
    pub generated: bool,
}

impl NodeCert {
    /// The configured certificate, else the data dir's self-signed one, generated if missing.
    pub fn load_or_generate(config: &NodeConfig) -> Result<Self, CertError> {
        if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
            return Self::load(cert, key, false);
        }
        let dir = config.data_dir.join("tls");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if cert.exists() && key.exists() {
            return Self::load(&cert, &key, false);
        }
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        if !config.listen.ip().is_unspecified() {
            names.push(config.listen.ip().to_string());
        }
        names.extend(config.advertised_host.clone());
        names.dedup();
        let generated =
            rcgen::generate_simple_self_signed(names).map_err(|e| CertError::Generate(e.to_string()))?;
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| CertError::Write { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
        // The key first and only readable by its owner; each file lands whole or not at all.
        write_atomically(&key, generated.key_pair.serialize_pem().as_bytes(), 0o600)
            .map_err(write_err(&key))?;
        write_atomically(&cert, generated.cert.pem().as_bytes(), 0o644).map_err(write_err(&cert))?;
        Self::load(&cert, &key, true)
    }

    fn load(cert_path: &Path, key_path: &Path, generated: bool) -> Result<Self, CertError> {
        let read = |path: &Path| {
            let path = path.to_owned();
            move |e: rustls::pki_types::pem::Error| CertError::Read { path, reason: e.to_string() }
        };
        let chain = CertificateDer::pem_file_iter(cert_path)
            .map_err(read(cert_path))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read(cert_path))?;
        let Some(leaf) = chain.first() else {
            return Err(CertError::NoCertificate { path: cert_path.to_owned() });
        };
        let fingerprint = fingerprint(leaf);
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(read(key_path))?;
        Ok(Self { chain, key, fingerprint, cert_path: cert_path.to_owned(), generated })
    }

    /// The QUIC server configuration presenting this certificate. In a cluster (`cluster` is
    /// this node's identity under the cluster CA), a client that asks for the name
    /// `node-<this id>.weir-cluster` (a follower) is shown the node certificate instead, and a
    /// client certificate, when one is presented, must chain to the cluster CA; clients present
    /// none and are served as before.
    pub fn server_config(
        &self,
        config: &NodeConfig,
        cluster: Option<&weir_cluster::tls::NodeTls>,
    ) -> Result<quinn::ServerConfig, CertError> {
        let mismatch = |e: &dyn std::fmt::Display| CertError::Mismatch(e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| mismatch(&e))?;
        let mut tls = match cluster {
            None => builder
                .with_no_client_auth()
                .with_single_cert(self.chain.clone(), self.key.clone_key())
                .map_err(|e| mismatch(&e))?,
            Some(node) => {
                let verifier = crate::cluster_tls::client_verifier(node, provider.clone())?;
                let client =
                    rustls::sign::CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), &provider)
                        .map_err(|e| mismatch(&e))?;
                let resolver = crate::cluster_tls::ByName::new(node, Arc::new(client), &provider)?;
                builder.with_client_cert_verifier(verifier).with_cert_resolver(Arc::new(resolver))
            }
        };
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| CertError::Mismatch(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport =
            transport_config(config.quic_stream_window_bytes_max, config.quic_connection_window_bytes_max);
        transport.max_concurrent_bidi_streams(config.quic_streams_max.into());
        transport.max_concurrent_uni_streams(0u32.into());
        server.transport_config(Arc::new(transport));
        Ok(server)
    }
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    // A leftover from a crash would keep its old permissions: start from a new file.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig { data_dir: dir.path().to_owned(), ..NodeConfig::default() };
        let first = NodeCert::load_or_generate(&config).unwrap();
        assert!(first.generated);
        first.server_config(&config, None).unwrap();
        let again = NodeCert::load_or_generate(&config).unwrap();
        assert!(!again.generated);
        assert_eq!(first.fingerprint, again.fingerprint);
    }

    #[test]
    fn missing_or_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a pem\n").unwrap();
        let config = NodeConfig {
            data_dir: dir.path().to_owned(),
            tls_cert: Some(junk.clone()),
            tls_key: Some(junk),
            ..NodeConfig::default()
        };
        assert!(matches!(NodeCert::load_or_generate(&config), Err(CertError::NoCertificate { .. })));
        let config = NodeConfig {
            tls_cert: Some(dir.path().join("absent.pem")),
            tls_key: Some(dir.path().join("absent.key")),
            ..config
        };
        assert!(matches!(NodeCert::load_or_generate(&config), Err(CertError::Read { .. })));
    }
}

//! TLS for the QUIC transport: how a client decides to trust a node, certificate fingerprints,
//! and the QUIC transport settings both ends share.
//!
//! A node presents one certificate. A client trusts it in one of three ways: it chains to a CA
//! file (a real certificate, or the node's self-signed one used as its own CA); its SHA-256
//! fingerprint equals one the client pinned (the node prints it at start); or, for development,
//! anything (`Trust::Insecure`). The handshake signature is verified in every case, so a pinned
//! fingerprint is as strong as the key behind it.

use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The application protocol both ends announce in the TLS handshake.
pub const ALPN: &[u8] = b"weir/1";

/// Bytes a peer may send on one stream before the receiver reads them: room for a few 1 MiB
/// produce requests in flight, which a pipelining producer keeps. The client's setting; the
/// node's is `quic_stream_window_bytes_max`.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// Bytes a peer may send on all streams of a connection before the receiver reads them.
pub const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;
/// UDP socket buffers asked for (the kernel caps them at net.core.rmem_max / wmem_max). A 1 MiB
/// fetch answer arrives as a burst of ~900 datagrams; with the default 208 KiB receive buffer
/// most of it was dropped and every fetch waited for loss recovery (~40 ms).
pub const UDP_BUFFER_BYTES: usize = 8 << 20;

/// The largest UDP payload either end accepts, and the ceiling of path-MTU discovery. QUIC starts
/// at 1200 bytes and probes upwards, so a path with a 1500-byte MTU settles near 1452 while
/// loopback and jumbo-frame links reach this. Ten of them (the most a GSO send carries) stay
/// under the 64 KiB a UDP send can hold; larger packets than QUIC's default 1452 cut the
/// per-packet work (headers, encryption, acknowledgements) of a bulk transfer several-fold.
pub const UDP_PAYLOAD_BYTES_MAX: u16 = 6_452;

/// A connection with no traffic for this long is closed: the node's setting. A connection's idle
/// timeout is the smaller of both ends', so a client's [`QuicClientSettings`] apply to its own.
pub const IDLE_TIMEOUT_MS: u32 = 30_000;

/// How a client's QUIC connections find out that a node is gone, and keep a healthy idle one
/// open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuicClientSettings {
    /// How long a handshake with one address of the node may take.
    pub connect_timeout_ms: u64,
    /// A connection that received nothing for this long is closed: a node that vanished (killed,
    /// unplugged) is noticed after this. The smaller of both ends' settings applies.
    pub idle_timeout_ms: u32,
    /// A quiet connection is pinged this often, so a healthy one waiting on a long poll is never
    /// idle; well under `idle_timeout_ms`, so a lost ping or two are survived.
    pub keep_alive_ms: u64,
}

impl Default for QuicClientSettings {
    fn default() -> Self {
        Self { connect_timeout_ms: 3_000, idle_timeout_ms: 5_000, keep_alive_ms: 1_000 }
    }
}

impl QuicClientSettings {
    /// Refuses settings that would drop healthy connections or never time out.
    pub fn validate(&self) -> Result<(), TlsError> {
        let bad = |reason: &str| Err(TlsError::Setup(format!("QUIC client settings: {reason}")));
        if self.connect_timeout_ms == 0 || self.idle_timeout_ms == 0 {
            return bad("connect_timeout_ms and idle_timeout_ms must be above 0");
        }
        if self.keep_alive_ms == 0 || self.keep_alive_ms * 2 > u64::from(self.idle_timeout_ms) {
            return bad("keep_alive_ms must be above 0 and at most half of idle_timeout_ms");
        }
        Ok(())
    }
}

/// How a client decides that the node is the one it meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// PEM certificates to trust as roots (a CA, or the node's self-signed certificate).
    CaFile(PathBuf),
    /// The SHA-256 of the node's certificate (DER).
    Fingerprint([u8; 32]),
    /// Any certificate: for development only, it does not stop a man in the middle.
    Insecure,
}

/// Why a TLS setting could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("fingerprint {text:?}: expected 64 hex digits (colons allowed)")]
    BadFingerprint { text: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// SHA-256 of a certificate's DER bytes.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// A fingerprint as colon-separated upper-case hex, the way the node prints it.
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Reads a fingerprint written as 64 hex digits, with or without colons.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TlsError> {
    let bad = || TlsError::BadFingerprint { text: text.to_owned() };
    let hex: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Transport settings shared by the node and the client: `stream_window` bytes a peer may send
/// on one stream, and `connection_window` on all of them, before the receiver reads; the same
/// for what this end keeps unacknowledged.
pub fn transport_config(stream_window: u32, connection_window: u32) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(stream_window.into());
    t.receive_window(connection_window.into());
    t.send_window(connection_window.into());
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(IDLE_TIMEOUT_MS))));
    // The protocol uses streams only: no memory for unreliable datagrams.
    t.datagram_receive_buffer_size(None);
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(UDP_PAYLOAD_BYTES_MAX);
    t.mtu_discovery_config(Some(mtu));
    t
}

/// Endpoint settings shared by the node and the client: datagrams up to
/// [`UDP_PAYLOAD_BYTES_MAX`] are accepted (and the peer told so).
pub fn endpoint_config() -> quinn::EndpointConfig {
    let mut e = quinn::EndpointConfig::default();
    e.max_udp_payload_size(UDP_PAYLOAD_BYTES_MAX).expect("a payload size QUIC allows");
    e
}

/// A quinn endpoint (on the ambient tokio runtime) on its own UDP socket bound to `local`, with
/// Weir's endpoint settings and receive and send buffers large enough for a fetch answer's burst;
/// `server` makes it accept connections too.
pub fn endpoint(
    local: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(local)?;
    let state = quinn::udp::UdpSocketState::new((&socket).into())?;
    // Best effort: the kernel caps the sizes, and a smaller buffer only costs retransmissions.
    let _ = state.set_recv_buffer_size((&socket).into(), UDP_BUFFER_BYTES);
    let _ = state.set_send_buffer_size((&socket).into(), UDP_BUFFER_BYTES);
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime"))?;
    quinn::Endpoint::new(endpoint_config(), server, socket, runtime)
}

/// The QUIC client configuration for a trust choice, with the default [`QuicClientSettings`].
pub fn client_config(trust: &Trust) -> Result<quinn::ClientConfig, TlsError> {
    client_config_with(trust, &QuicClientSettings::default())
}

/// The QUIC client configuration for a trust choice and idle and keep-alive settings (the
/// connect timeout is the caller's to apply).
pub fn client_config_with(
    trust: &Trust,
    settings: &QuicClientSettings,
) -> Result<quinn::ClientConfig, TlsError> {
    settings.validate()?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let mut tls = match trust {
        Trust::CaFile(path) => {
            let read = |e: rustls::pki_types::pem::Error| TlsError::Read {
                path: path.clone(),
                reason: e.to_string(),
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(read)? {
                roots.add(cert.map_err(read)?).map_err(|e| TlsError::Setup(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate { path: path.clone() });
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { pinned: Some(*fp), provider: provider() }))
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { pinned: None, provider: provider() }))
            .with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Setup(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = transport_config(STREAM_WINDOW_BYTES, CONNECTION_WINDOW_BYTES);
    let idle = quinn::IdleTimeout::from(quinn::VarInt::from_u32(settings.idle_timeout_ms));
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(Duration::from_millis(settings.keep_alive_ms)));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Accepts the certificate whose fingerprint is pinned (or any, when none is), and checks the
/// handshake signatures with the certificate's key either way.
#[derive(Debug)]
struct Verifier {
    pinned: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pinned {
            Some(fp) if fingerprint(end_entity) != fp => Err(rustls::Error::General(format!(
                "the node's certificate has fingerprint {}, not the pinned {}",
                format_fingerprint(&fingerprint(end_entity)),
                format_fingerprint(&fp)
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_with_or_without_colons() {
        let fp = fingerprint(b"certificate");
        let text = format_fingerprint(&fp);
        assert_eq!(text.len(), 64 + 31);
        assert_eq!(parse_fingerprint(&text).unwrap(), fp);
        assert_eq!(parse_fingerprint(&text.replace(':', "").to_lowercase()).unwrap(), fp);
        assert!(matches!(parse_fingerprint("AB:CD"), Err(TlsError::BadFingerprint { .. })));
        assert!(matches!(parse_fingerprint(&"zz".repeat(32)), Err(TlsError::BadFingerprint { .. })));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("weir-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "nothing here\n").unwrap();
        let r = client_config(&Trust::CaFile(path.clone()));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(r, Err(TlsError::NoCertificate { .. })), "{r:?}");
        assert!(matches!(
            client_config(&Trust::CaFile("/nonexistent/ca.pem".into())),
            Err(TlsError::Read { .. })
        ));
    }
}

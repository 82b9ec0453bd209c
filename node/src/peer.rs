//! Who is on the other end of a connection, as far as the node can tell: a TCP client (never
//! authenticated), or a QUIC peer with the certificate chain it presented, verified against the
//! cluster CA by the handshake (see "Trust" in `docs/cluster.md`). Only a peer whose verified
//! certificate names node `n` may speak for node `n` (a follower's `ReplicaFetch`).
//!
//! Made once per connection (per QUIC stream, from its connection) on the shard serving it, and
//! handed to each request of that connection.

use rustls::pki_types::CertificateDer;
use std::rc::Rc;
use weir_replication::NodeId;

/// Why a connection may not speak for the node it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerRefused {
    /// TCP carries no peer certificate: nothing there can prove a node's identity.
    #[error("node {claimed}: replication is served over QUIC with a node certificate only, not TCP")]
    OverTcp { claimed: u32 },
    /// The QUIC peer presented no certificate.
    #[error("node {claimed}: the connection presented no node certificate")]
    NoCertificate { claimed: u32 },
    /// The certificate (verified against the cluster CA) names another node.
    #[error("node {claimed}: the connection's certificate does not name this node")]
    WrongNode { claimed: u32 },
}

/// The peer of one connection. See the module documentation.
#[derive(Debug, Clone, Default)]
pub enum Peer {
    /// A TCP connection.
    #[default]
    Tcp,
    /// A QUIC connection, with the certificate chain its handshake verified, if it sent one.
    Quic { chain: Option<Rc<Vec<CertificateDer<'static>>>> },
}

impl Peer {
    /// `Ok` only if this peer proved, with a certificate the cluster CA signed, that it is node
    /// `claimed`.
    pub fn authenticate(&self, claimed: NodeId) -> Result<(), PeerRefused> {
        let chain = match self {
            Peer::Tcp => return Err(PeerRefused::OverTcp { claimed: claimed.0 }),
            Peer::Quic { chain } => chain.as_ref().and_then(|c| c.first().cloned()),
        };
        let leaf = chain.ok_or(PeerRefused::NoCertificate { claimed: claimed.0 })?;
        match weir_cluster::tls::peer_is_node(&leaf, claimed) {
            true => Ok(()),
            false => Err(PeerRefused::WrongNode { claimed: claimed.0 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    fn chain_of(node: u32) -> Rc<Vec<CertificateDer<'static>>> {
        let (ca, key) = weir_cluster::tls::generate_ca().unwrap();
        let tls = weir_cluster::tls::NodeTls::issue(&ca, &key, NodeId(node)).unwrap();
        Rc::new(vec![CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).unwrap()])
    }

    #[test]
    fn only_a_certificate_naming_the_node_speaks_for_it() {
        assert_eq!(Peer::Tcp.authenticate(NodeId(2)), Err(PeerRefused::OverTcp { claimed: 2 }));
        let anonymous = Peer::Quic { chain: None };
        assert_eq!(anonymous.authenticate(NodeId(2)), Err(PeerRefused::NoCertificate { claimed: 2 }));
        let node3 = Peer::Quic { chain: Some(chain_of(3)) };
        assert_eq!(node3.authenticate(NodeId(2)), Err(PeerRefused::WrongNode { claimed: 2 }));
        assert_eq!(node3.authenticate(NodeId(3)), Ok(()));
    }
}

//! Mutual TLS between nodes: in-memory handshakes between rustls connections.

use rustls::pki_types::ServerName;
use std::sync::Arc;
use weir_cluster::tls::{NodeTls, generate_ca, node_dns_name, peer_is_node};
use weir_replication::NodeId;

/// Runs a handshake between `client` (dialling `dialled`) and `server`; returns the server's
/// connection if both sides accepted the other.
fn handshake(
    client: &NodeTls,
    server: &NodeTls,
    dialled: NodeId,
) -> Result<rustls::ServerConnection, rustls::Error> {
    let name = ServerName::try_from(node_dns_name(dialled)).unwrap();
    let mut c = rustls::ClientConnection::new(Arc::new(client.client_config().unwrap()), name)?;
    let mut s = rustls::ServerConnection::new(Arc::new(server.server_config().unwrap()))?;
    for _ in 0..20 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut &buf[..]).unwrap();
        s.process_new_packets()?;
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut &buf[..]).unwrap();
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()?;
            return Ok(s);
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn nodes_of_one_ca_accept_each_other_and_learn_who_the_client_is() {
    let (ca, key) = generate_ca().unwrap();
    let one = NodeTls::issue(&ca, &key, NodeId(1)).unwrap();
    let two = NodeTls::issue(&ca, &key, NodeId(2)).unwrap();
    let server = handshake(&one, &two, NodeId(2)).unwrap();
    let peer = &server.peer_certificates().unwrap()[0];
    assert!(peer_is_node(peer, NodeId(1)));
    assert!(!peer_is_node(peer, NodeId(2)), "a client claiming another node id is refused");
}

#[test]
fn a_peer_of_another_ca_is_refused_both_ways() {
    let (ca, key) = generate_ca().unwrap();
    let (other_ca, other_key) = generate_ca().unwrap();
    let one = NodeTls::issue(&ca, &key, NodeId(1)).unwrap();
    let stranger = NodeTls::issue(&other_ca, &other_key, NodeId(2)).unwrap();
    assert!(handshake(&stranger, &one, NodeId(1)).is_err(), "server refuses a foreign client");
    assert!(handshake(&one, &stranger, NodeId(2)).is_err(), "client refuses a foreign server");
}

#[test]
fn a_node_cert_presented_for_the_wrong_id_is_refused() {
    let (ca, key) = generate_ca().unwrap();
    let one = NodeTls::issue(&ca, &key, NodeId(1)).unwrap();
    let two = NodeTls::issue(&ca, &key, NodeId(2)).unwrap();
    // Node 2 answers where node 3 was dialled: the client refuses the name.
    assert!(handshake(&one, &two, NodeId(3)).is_err());
}

/// Every Weir CA has the same subject: the key, not the name, tells whether the CA certificate
/// given is the one the key belongs to.
#[test]
fn a_ca_key_of_another_ca_is_refused() {
    let (cert_x, _key_x) = generate_ca().unwrap();
    let (_cert_y, key_y) = generate_ca().unwrap();
    let mixed = weir_cluster::tls::issue_node_cert(&cert_x, &key_y, NodeId(1));
    assert!(mixed.is_err(), "a node certificate issued with another CA's key");
    let (cert, key) = generate_ca().unwrap();
    assert!(weir_cluster::tls::issue_node_cert(&cert, &key, NodeId(1)).is_ok());
}

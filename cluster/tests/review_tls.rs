//! `issue_node_cert` promises that the CA certificate given is checked to be the CA the key
//! belongs to.

use weir_cluster::tls::{generate_ca, issue_node_cert};
use weir_replication::NodeId;

#[test]
fn a_ca_key_of_another_ca_is_refused() {
    let (cert_x, _key_x) = generate_ca().unwrap();
    let (_cert_y, key_y) = generate_ca().unwrap();
    let mixed = issue_node_cert(&cert_x, &key_y, NodeId(1));
    assert!(mixed.is_err(), "a node certificate issued with another CA's key");
}

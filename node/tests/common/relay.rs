//! A UDP relay in front of cluster nodes that can cut one off: the others and its clients reach a
//! node only through the relay, and the node reaches the others only through theirs, so a cut
//! node keeps running while no datagram gets to it or from it.
//!
//! Each forwarded port maps a front address (what peers and clients are told) to the node's own
//! address. Every sender seen on a front port gets its own socket towards the node, so the node
//! can tell senders apart and its answers find their way back. The relay runs on its own tokio
//! runtime; dropping it stops every task and closes every socket.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rt::net::UdpSocket;

/// A sender's socket towards the node is dropped after this long without an answer.
const MAPPING_IDLE_MS: u64 = 30_000;

/// The IPs of the nodes cut off: nothing reaches them through a relay, and nothing they send
/// through one goes on.
type Cut = Arc<Mutex<HashSet<IpAddr>>>;

/// See the module documentation.
pub struct Relay {
    cut: Cut,
    runtime: tokio_rt::runtime::Runtime,
}

impl Relay {
    pub fn new() -> Self {
        let runtime =
            tokio_rt::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        Self { cut: Cut::default(), runtime }
    }

    /// Relays datagrams sent to `front` on to `node`, and the node's answers back.
    pub fn forward(&self, front: SocketAddr, node: SocketAddr) {
        let socket = std::net::UdpSocket::bind(front).unwrap_or_else(|e| panic!("relay at {front}: {e}"));
        socket.set_nonblocking(true).unwrap();
        let _entered = self.runtime.enter();
        let socket = Arc::new(UdpSocket::from_std(socket).unwrap());
        self.runtime.spawn(relay_front(socket, node, self.cut.clone()));
    }

    /// Cuts off the node at `ip` (its own address, not its front).
    pub fn cut(&self, ip: IpAddr) {
        self.cut.lock().unwrap().insert(ip);
    }

    pub fn heal(&self, ip: IpAddr) {
        self.cut.lock().unwrap().remove(&ip);
    }
}

/// Whether a datagram between `sender` and `node` is dropped: either end is cut off.
fn blocked(cut: &Cut, sender: IpAddr, node: IpAddr) -> bool {
    let cut = cut.lock().unwrap();
    cut.contains(&sender) || cut.contains(&node)
}

async fn relay_front(front: Arc<UdpSocket>, node: SocketAddr, cut: Cut) {
    let senders: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, sender)) = front.recv_from(&mut buf).await {
        if blocked(&cut, sender.ip(), node.ip()) {
            continue;
        }
        let known = senders.lock().unwrap().get(&sender).cloned();
        let towards = match known {
            Some(socket) => socket,
            None => {
                let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                socket.connect(node).await.unwrap();
                senders.lock().unwrap().insert(sender, socket.clone());
                let back =
                    relay_back(socket.clone(), front.clone(), sender, node, cut.clone(), senders.clone());
                tokio_rt::spawn(back);
                socket
            }
        };
        let _ = towards.send(&buf[..n]).await;
    }
    eprintln!("relay at {:?} stopped: nothing reaches {node} through it any more", front.local_addr());
}

/// The node's answers to `sender`, back through the front socket, until the mapping is idle.
async fn relay_back(
    towards: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    sender: SocketAddr,
    node: SocketAddr,
    cut: Cut,
    senders: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
) {
    let mut buf = vec![0u8; 65536];
    let idle = Duration::from_millis(MAPPING_IDLE_MS);
    while let Ok(Ok(n)) = tokio_rt::time::timeout(idle, towards.recv(&mut buf)).await {
        if !blocked(&cut, sender.ip(), node.ip()) {
            let _ = front.send_to(&buf[..n], sender).await;
        }
    }
    senders.lock().unwrap().remove(&sender);
}

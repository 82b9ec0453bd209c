//! How many connections the node keeps open: at most `connections_max` in all and
//! `connections_per_ip_max` from one client address, TCP and QUIC together. With the request
//! memory (`request_memory.rs`) this bounds what clients can make the node hold: each open
//! connection costs a fixed amount beside its requests (a task, a head buffer, QUIC windows).
//!
//! Shared by every shard. The node-wide count is an atomic; the per-address counts are a map
//! behind a lock, taken once when a connection opens and once when it closes, never per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Why a connection was refused; the message names the limit, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    #[error("connection refused: the node has {connections_max} connections open (connections_max)")]
    NodeFull { connections_max: usize },
    #[error(
        "connection refused: {ip} has {connections_per_ip_max} connections open (connections_per_ip_max)"
    )]
    AddressFull { ip: IpAddr, connections_per_ip_max: usize },
}

/// The connections open on the node, counted against its limits.
#[derive(Debug)]
pub struct ConnectionLimits {
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    connections_max: usize,
    connections_per_ip_max: usize,
}

impl ConnectionLimits {
    pub fn new(connections_max: usize, connections_per_ip_max: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            per_ip: Mutex::default(),
            connections_max,
            connections_per_ip_max,
        })
    }

    /// Counts a new connection from `ip` if both limits allow it; it counts until the returned
    /// guard drops.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionGuard, Refused> {
        let max = self.connections_max;
        if self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_err()
        {
            return Err(Refused::NodeFull { connections_max: max });
        }
        let mut per_ip = self.per_ip.lock().expect("no panic while the lock is held");
        let from_ip = per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.connections_per_ip_max {
            drop(per_ip);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::AddressFull { ip, connections_per_ip_max: self.connections_per_ip_max });
        }
        *from_ip += 1;
        Ok(ConnectionGuard { limits: self.clone(), ip })
    }
}

/// One open connection, counted until it drops (whichever way the connection ends).
#[derive(Debug)]
pub struct ConnectionGuard {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock().expect("no panic while the lock is held");
        let from_ip = per_ip.get_mut(&self.ip).expect("an admitted address is counted");
        *from_ip -= 1;
        if *from_ip == 0 {
            per_ip.remove(&self.ip);
        }
        drop(per_ip);
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_until_the_guards_drop() {
        let limits = ConnectionLimits::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refused::AddressFull { ip: a, connections_per_ip_max: 2 });
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refused::NodeFull { connections_max: 3 });
        drop(a1);
        let _a3 = limits.admit(a).unwrap();
        assert!(limits.admit(b).is_err());
    }
}

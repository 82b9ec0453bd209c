//! The node's request memory: one budget, `request_memory_bytes_max`, for the bytes held by
//! request frames being read and by requests not yet answered, across every shard and
//! connection (as Kafka's `queued.max.request.bytes`). Without it, memory was bounded per
//! connection only, and a few thousand connections each sending the start of a large frame
//! could take all of it.
//!
//! How it holds:
//! - A connection reads a frame's header into its small fixed head buffer (`frame_reader.rs`),
//!   then reserves the whole frame, `frame_len` bytes, before it allocates or reads the body.
//!   Reservations are all-or-nothing: no connection holds part of what it needs while it waits
//!   for the rest, so connections can never deadlock each holding half a frame.
//! - A reservation lives with its frame and is released when the frame is dropped: when the
//!   request's task ends, or with the connection if the frame was never read whole.
//! - A frame larger than the connection's head buffer is reserved when its header is read, and
//!   is *partial* until its last byte arrives; smaller frames are gathered whole in the head
//!   buffer first. Partial frames together hold at most three quarters of the budget (and at
//!   least one largest request): clients that announce large frames and then stall can pin no
//!   more than that. Small frames, reserved whole (most requests), always have the rest, and
//!   every request they hold ends by itself, so they keep making progress. A large frame may
//!   wait while stalled clients pin the partial share: `connections_max` and
//!   `connections_per_ip_max` bound how many can.
//! - A connection that finds no room is not read (TCP or QUIC flow control holds its client
//!   back) and waits in its shard's queue for its kind of frame, first come first served, so a
//!   large frame is not passed over forever by small ones of its shard. A release on the same
//!   shard wakes the head of each queue at once. A release on another shard is seen by polling,
//!   which costs nothing on the hot path: only the head of each queue of a starved shard polls,
//!   every [`STARVED_POLL_MS`], and only while it waits.
//! - The counters are two atomics that all shards share, changed once when a frame is reserved,
//!   once when it becomes whole, and once when it is released; there is no lock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::Duration;

/// How often the head of a starved shard's queue looks again for memory released by other
/// shards (a release on its own shard wakes it at once).
pub const STARVED_POLL_MS: u64 = 2;

/// The node-wide counters; shared by every shard.
#[derive(Debug)]
pub struct RequestMemory {
    /// Bytes reserved by all frames.
    used: AtomicUsize,
    /// Bytes reserved by frames still being received (also counted in `used`).
    partial: AtomicUsize,
    bytes_max: usize,
    partial_bytes_max: usize,
}

impl RequestMemory {
    /// A budget of `bytes_max` for frames of at most `frame_bytes_max` bytes each.
    pub fn new(bytes_max: usize, frame_bytes_max: usize) -> Self {
        assert!(bytes_max >= frame_bytes_max, "every frame must fit the request memory");
        let partial_bytes_max = (bytes_max - bytes_max / 4).max(frame_bytes_max);
        Self { used: AtomicUsize::new(0), partial: AtomicUsize::new(0), bytes_max, partial_bytes_max }
    }

    /// Bytes reserved now, node-wide.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `n` bytes (also from the partial share if `partial`), all or nothing.
    fn try_take(&self, n: usize, partial: bool) -> bool {
        if partial && !add_within(&self.partial, n, self.partial_bytes_max) {
            return false;
        }
        if !add_within(&self.used, n, self.bytes_max) {
            if partial {
                self.partial.fetch_sub(n, Ordering::AcqRel);
            }
            return false;
        }
        true
    }
}

/// Adds `n` to `counter` if the sum stays within `max`.
fn add_within(counter: &AtomicUsize, n: usize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_add(n).filter(|&t| t <= max))
        .is_ok()
}

/// Connections of one shard waiting for memory for one kind of frame, in arrival order.
#[derive(Debug, Default)]
struct Queue {
    /// Tickets of the waiting connections, and the waker of each that sleeps.
    waiting: VecDeque<(u64, Option<Waker>)>,
    next_ticket: u64,
}

impl Queue {
    fn wake_head(&mut self) {
        if let Some(w) = self.waiting.front_mut().and_then(|(_, w)| w.take()) {
            w.wake();
        }
    }
}

/// A shard's access to the node's request memory, with its own wait queues. Owned by one shard
/// (`Rc`); its connections reserve through it and their reservations release through it.
#[derive(Debug)]
pub struct ShardMemory {
    node: Arc<RequestMemory>,
    /// Waiting for whole frames (index 0) and for partial ones (index 1).
    queues: [RefCell<Queue>; 2],
}

impl ShardMemory {
    pub fn new(node: Arc<RequestMemory>) -> Rc<Self> {
        Rc::new(Self { node, queues: Default::default() })
    }

    /// Reserves `bytes` for one frame (`partial`: not yet received whole), waiting as long as
    /// the node has no room. A connection that has to wait takes a place in its shard's queue
    /// for as long as it waits: a wait that is dropped (a connection that turned to write an
    /// answer) leaves the queue and passes the turn on, so a connection busy elsewhere never
    /// holds up the ones behind it; it queues again at the back when it comes back.
    pub async fn reserve(self: &Rc<Self>, bytes: usize, partial: bool) -> Reservation {
        let kind = usize::from(partial);
        if self.queues[kind].borrow().waiting.is_empty() && self.node.try_take(bytes, partial) {
            return Reservation { memory: self.clone(), bytes, partial };
        }
        // Left on return, or when this wait is dropped.
        let place = self.enter(kind);
        let queue = &self.queues[kind];
        loop {
            let head = queue.borrow().waiting.front().is_some_and(|(t, _)| *t == place.ticket);
            if head && self.node.try_take(bytes, partial) {
                // Leaving the queue passes the turn on.
                drop(place);
                return Reservation { memory: self.clone(), bytes, partial };
            }
            let woken = Woken { queue, ticket: place.ticket, registered: false };
            if head {
                // Memory another shard releases is seen on the next poll.
                let poll = glommio::timer::sleep(Duration::from_millis(STARVED_POLL_MS));
                futures::pin_mut!(poll);
                futures::future::select(woken, poll).await;
            } else {
                woken.await;
            }
        }
    }

    fn enter(self: &Rc<Self>, kind: usize) -> Place {
        let mut q = self.queues[kind].borrow_mut();
        q.next_ticket += 1;
        let ticket = q.next_ticket;
        q.waiting.push_back((ticket, None));
        Place { memory: self.clone(), kind, ticket }
    }

    /// Returns `bytes` to the node (`partial`: from the partial share only) and wakes the
    /// connections of this shard that wait first.
    fn release(&self, bytes: usize, partial: bool) {
        if partial {
            self.node.partial.fetch_sub(bytes, Ordering::AcqRel);
        }
        self.node.used.fetch_sub(bytes, Ordering::AcqRel);
        self.queues.iter().for_each(|q| q.borrow_mut().wake_head());
    }
}

/// A connection's place in its shard's queue for request memory; leaves the queue on drop,
/// passing the turn on if it was first.
#[derive(Debug)]
pub struct Place {
    memory: Rc<ShardMemory>,
    kind: usize,
    ticket: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut q = self.memory.queues[self.kind].borrow_mut();
        q.waiting.retain(|(t, _)| *t != self.ticket);
        q.wake_head();
    }
}

/// Ready once its ticket's waker has been called (or polled again spuriously: the caller then
/// simply looks again).
struct Woken<'a> {
    queue: &'a RefCell<Queue>,
    ticket: u64,
    registered: bool,
}

impl Future for Woken<'_> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.registered {
            return Poll::Ready(());
        }
        let mut q = self.queue.borrow_mut();
        if let Some((_, w)) = q.waiting.iter_mut().find(|(t, _)| *t == self.ticket) {
            *w = Some(cx.waker().clone());
        }
        drop(q);
        self.registered = true;
        Poll::Pending
    }
}

/// Bytes of the request memory held for one frame, released on drop. Lives on the shard that
/// reserved it, with its frame (a request's task, or the connection reading the frame).
#[derive(Debug)]
pub struct Reservation {
    memory: Rc<ShardMemory>,
    bytes: usize,
    partial: bool,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The frame has been received whole: it no longer counts against the partial share.
    pub fn received(&mut self) {
        if std::mem::take(&mut self.partial) {
            self.memory.node.partial.fetch_sub(self.bytes, Ordering::AcqRel);
            self.memory.queues[1].borrow_mut().wake_head();
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.memory.release(self.bytes, self.partial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_frames_hold_at_most_their_share() {
        let node = RequestMemory::new(100, 40);
        assert!(node.try_take(50, true));
        assert!(!node.try_take(30, true), "past the partial share of 75");
        assert!(node.try_take(30, false), "whole frames have the rest");
        assert!(!node.try_take(30, false), "past the budget");
        assert_eq!(node.used(), 80);
        assert_eq!(node.partial.load(Ordering::Acquire), 50);
    }

    /// A waiting frame is served when memory comes back, before later ones of its kind, and
    /// a large frame is not passed over by small ones.
    #[test]
    fn waiters_are_served_in_order_when_memory_is_released() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let memory = ShardMemory::new(Arc::new(RequestMemory::new(100, 100)));
                let first = memory.reserve(60, false).await;
                let order = Rc::new(RefCell::new(Vec::new()));
                let waiter = |bytes: usize| {
                    let (memory, order) = (memory.clone(), order.clone());
                    glommio::spawn_local(async move {
                        let r = memory.reserve(bytes, false).await;
                        order.borrow_mut().push(bytes);
                        r
                    })
                };
                let large = waiter(100);
                let small = waiter(10);
                glommio::executor().yield_now().await;
                assert!(order.borrow().is_empty(), "the small frame waits behind the large one");
                drop(first);
                let large = large.await;
                assert_eq!(memory.node.used(), 100);
                drop(large);
                drop(small.await);
                assert_eq!(*order.borrow(), vec![100, 10]);
                assert_eq!(memory.node.used(), 0);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// A waiter that stops waiting (its connection turned to write an answer to a client that
    /// does not read) leaves the queue: the ones behind it are served when memory comes back.
    #[test]
    fn a_wait_that_is_dropped_holds_up_nobody() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let memory = ShardMemory::new(Arc::new(RequestMemory::new(100, 100)));
                let first = memory.reserve(60, false).await;
                let stalled = memory.reserve(50, false);
                {
                    // Polled once, so it queues, then dropped.
                    futures::pin_mut!(stalled);
                    assert!(futures::poll!(stalled.as_mut()).is_pending());
                }
                let behind = {
                    let memory = memory.clone();
                    glommio::spawn_local(async move { memory.reserve(40, false).await.bytes() })
                };
                drop(first);
                assert_eq!(behind.await, 40);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

//! The buffers a shard's QUIC endpoint receives datagrams into, which a large datagram leaves
//! without a copy.
//!
//! Owned by the endpoint's receiver task. A received GRO batch (up to 64 KiB of datagrams back
//! to back) is decrypted in place and its stream data kept, as `Bytes` into the same memory,
//! until the application reads it. Copying each batch out of a fixed buffer, as quinn does,
//! costs as much as a few percent of a core at wire speed. Here a batch that fills at least half
//! of its buffer keeps the buffer: the slot takes another, and the used one waits in a bounded
//! queue until everything in it has been read, then serves again. A small datagram is copied
//! out instead, so that a few bytes never pin a whole buffer.

use bytes::BytesMut;
use std::collections::VecDeque;
use std::io::IoSliceMut;

/// Bytes of one buffer: room for a GRO batch of 64 KiB.
pub(crate) const RECV_BUFFER_BYTES: usize = 64 << 10;
/// A datagram (or GRO batch) at least this long keeps its buffer rather than being copied: a
/// kept buffer is then at least half used, so that what the stream holds on to is at most
/// twice what it received.
const KEPT_BYTES_MIN: usize = RECV_BUFFER_BYTES / 2;
/// Used buffers waiting for their data to be read. Beyond this many the oldest is let go (its
/// memory is freed when its data has been read): a slow reader does not make the pool grow.
const RETURNING_MAX: usize = 64;

pub(crate) struct RecvBuffers {
    /// One buffer per datagram a receive call may read, each `RECV_BUFFER_BYTES` long.
    slots: Vec<BytesMut>,
    /// Buffers whose datagrams are still in use, oldest first, each emptied (`len` 0).
    returning: VecDeque<BytesMut>,
}

impl RecvBuffers {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots).map(|_| BytesMut::zeroed(RECV_BUFFER_BYTES)).collect(),
            returning: VecDeque::new(),
        }
    }

    /// The slots as a receive call takes them.
    pub(crate) fn io_slices(&mut self) -> Vec<IoSliceMut<'_>> {
        self.slots.iter_mut().map(|b| IoSliceMut::new(b)).collect()
    }

    /// The `len` bytes a receive call put into slot `i`, which is ready for the next call.
    pub(crate) fn take(&mut self, i: usize, len: usize) -> BytesMut {
        let slot = &mut self.slots[i];
        assert!(len <= slot.len(), "a receive of {len} bytes into a {} byte buffer", slot.len());
        if len < KEPT_BYTES_MIN {
            return BytesMut::from(&slot[..len]);
        }
        let datagram = slot.split_to(len);
        let mut used = std::mem::replace(slot, Self::reuse(&mut self.returning));
        used.clear();
        self.returning.push_back(used);
        if self.returning.len() > RETURNING_MAX {
            self.returning.pop_front();
        }
        datagram
    }

    /// A whole buffer: a returning one whose data has all been read, or else a new one.
    fn reuse(returning: &mut VecDeque<BytesMut>) -> BytesMut {
        // `try_reclaim` never allocates: it succeeds only when this is the last handle to the
        // buffer's memory, and then views all of that memory again from its start.
        let Some(at) = returning.iter_mut().position(|b| b.try_reclaim(RECV_BUFFER_BYTES)) else {
            return BytesMut::zeroed(RECV_BUFFER_BYTES);
        };
        let mut b = returning.remove(at).expect("the position found");
        assert!(b.is_empty() && b.capacity() >= RECV_BUFFER_BYTES, "a reclaimed buffer is whole");
        // SAFETY: every buffer was made by `zeroed` at its full length, and its bytes have only
        // been written since (by receives, by decryption in place); reclaiming moved no memory.
        // So all `RECV_BUFFER_BYTES` from its start are initialized.
        unsafe { b.set_len(RECV_BUFFER_BYTES) };
        b
    }

    #[cfg(test)]
    fn returning(&self) -> usize {
        self.returning.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(bufs: &mut RecvBuffers, i: usize, fill: u8, len: usize) -> BytesMut {
        bufs.io_slices()[i][..len].fill(fill);
        bufs.take(i, len)
    }

    #[test]
    fn a_large_datagram_keeps_its_buffer_and_the_buffer_serves_again_once_read() {
        let mut bufs = RecvBuffers::new(2);
        let at = bufs.slots[0].as_ptr();
        let big = receive(&mut bufs, 0, 7, 40_000);
        assert_eq!(big.as_ptr(), at, "taken without a copy");
        assert!(big.iter().all(|&b| b == 7));
        assert_eq!(bufs.slots[0].len(), RECV_BUFFER_BYTES, "the slot is whole again");
        assert_eq!(bufs.returning(), 1);
        // While the datagram lives, its buffer is not handed out again.
        let second = receive(&mut bufs, 0, 8, 50_000);
        assert_ne!(second.as_ptr(), at);
        assert_eq!(bufs.returning(), 2);
        assert!(big.iter().all(|&b| b == 7), "a later receive left the first datagram alone");
        // Once read (dropped), it is.
        drop(big);
        let third = receive(&mut bufs, 0, 9, 60_000);
        assert_eq!(bufs.slots[0].as_ptr(), at, "the first buffer came back to a slot");
        assert_eq!(bufs.slots[0].len(), RECV_BUFFER_BYTES);
        assert!(second.iter().all(|&b| b == 8) && third.iter().all(|&b| b == 9));
    }

    #[test]
    fn a_small_datagram_is_copied_and_leaves_its_slot_in_place() {
        let mut bufs = RecvBuffers::new(1);
        let at = bufs.slots[0].as_ptr();
        let small = receive(&mut bufs, 0, 3, 1200);
        assert_ne!(small.as_ptr(), at);
        assert_eq!(small.len(), 1200);
        assert_eq!((bufs.slots[0].as_ptr(), bufs.slots[0].len()), (at, RECV_BUFFER_BYTES));
        assert_eq!(bufs.returning(), 0);
    }

    #[test]
    fn a_slow_reader_does_not_grow_the_pool() {
        let mut bufs = RecvBuffers::new(1);
        let held: Vec<BytesMut> =
            (0..RETURNING_MAX + 10).map(|i| receive(&mut bufs, 0, i as u8, 40_000)).collect();
        assert_eq!(bufs.returning(), RETURNING_MAX);
        for (i, d) in held.iter().enumerate() {
            assert!(d.iter().all(|&b| b == i as u8), "datagram {i} changed");
        }
    }
}

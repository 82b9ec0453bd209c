//! Appending bytes to a direct-I/O file through aligned write-behind buffers.
//!
//! Bytes are copied into the current buffer. A full buffer joins a short queue, and the queue
//! is written with all its writes in flight at once when it reaches `write_behind_buffers_max`.
//! Written buffers come back to a spare pool, so steady appending allocates nothing and takes no
//! page faults. [`Appender::write_out`] also writes the unwritten part of the current buffer up
//! to the end of its last partial block, zero-padded. That part is copied into a small buffer of
//! exactly that size; the current buffer stays, and its partial block is rewritten in place by
//! the next write as it fills. Space is preallocated in steps so appends do not change the
//! file's size metadata. The step grows with the file, from [`PREALLOCATE_FIRST_BYTES`] up to
//! `preallocate_bytes`, so a partition that takes little data holds little unused disk: a node
//! with thousands of quiet partitions must not reserve a full step for each.
//!
//! Full-size buffers exist only while the file is being written: the first append allocates
//! one, and [`Appender::release_if_idle`] gives them all back once every appended byte is in
//! the file and nothing was appended since its previous call. An idle appender keeps only the
//! partial tail block (at most one alignment unit) so the next append continues it without a
//! read. Queued buffers are never given back before their writes complete (see `write_queued`).
//!
//! Owned by the shard that owns the partition; one operation at a time (`&mut self`).

use crate::error::{LogError, Result};
use crate::storage::{StorageFile, align_down, align_up};
use futures::future::join_all;
use std::rc::Rc;

/// Tuning of an [`Appender`].
#[derive(Debug, Clone, Copy)]
pub struct AppenderConfig {
    /// Size of each write-behind buffer; a multiple of the file's alignment.
    pub write_buffer_bytes: usize,
    /// Full buffers queued before they are written together.
    pub write_behind_buffers_max: usize,
    /// Largest step by which the file is preallocated ahead of the write position; 0 disables
    /// preallocation.
    pub preallocate_bytes: u64,
}

/// The first preallocation step of a file; each later step is as large as the file so far, up to
/// `preallocate_bytes`.
pub const PREALLOCATE_FIRST_BYTES: u64 = 1 << 20;

/// Writes appended bytes to a file. Positions are file positions in bytes.
pub struct Appender<F: StorageFile> {
    file: Rc<F>,
    name: String,
    config: AppenderConfig,
    align: usize,
    /// Buffer being filled; `cur[..fill]` holds the bytes at `[cur_pos, cur_pos + fill)`. Full
    /// size while appending; while idle, one alignment unit holding the partial tail block, or
    /// none when the end is aligned.
    cur: Option<F::Buf>,
    cur_pos: u64,
    fill: usize,
    /// Buffers not yet written, with their file positions.
    queued: Vec<(Rc<F::Buf>, u64)>,
    /// Full-size buffers whose writes are done, ready for reuse.
    spare: Vec<F::Buf>,
    /// Bytes `[0, written)` are in the file (readable, not necessarily durable).
    written: u64,
    /// Bytes `[0, durable)` are synced.
    durable: u64,
    /// The file is allocated up to here.
    allocated: u64,
    /// Something was appended since the last [`Appender::release_if_idle`].
    busy: bool,
}

impl<F: StorageFile> std::fmt::Debug for Appender<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("name", &self.name)
            .field("end", &self.end())
            .field("written", &self.written)
            .field("durable", &self.durable)
            .field("allocated", &self.allocated)
            .field("queued", &self.queued.len())
            .field("buffered_bytes", &self.buffered_bytes())
            .finish()
    }
}

impl<F: StorageFile> Appender<F> {
    /// Takes over `file` whose valid bytes end at `end` (everything after it is ignored and will
    /// be overwritten). The partial block before `end` is read back so appends continue it; no
    /// full-size buffer is allocated until the first append.
    pub async fn open(file: Rc<F>, name: String, end: u64, config: AppenderConfig) -> Result<Self> {
        let align = file.alignment();
        assert!(config.write_buffer_bytes >= align && config.write_buffer_bytes.is_multiple_of(align));
        assert!(config.write_behind_buffers_max >= 1);
        let cur_pos = align_down(end, align);
        let fill = (end - cur_pos) as usize;
        let mut cur = None;
        if fill > 0 {
            let tail = file.read_at(cur_pos, align).await.map_err(|e| LogError::io("read tail", &name, e))?;
            if tail.len() < fill {
                return Err(LogError::io(
                    "read tail",
                    &name,
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tail block is short"),
                ));
            }
            let mut small = file.alloc(align);
            small.as_mut()[..fill].copy_from_slice(&tail[..fill]);
            small.as_mut()[fill..].fill(0);
            cur = Some(small);
        }
        let allocated = file.size().await.map_err(|e| LogError::io("size", &name, e))?;
        Ok(Self {
            file,
            name,
            config,
            align,
            cur,
            cur_pos,
            fill,
            queued: Vec::new(),
            spare: Vec::new(),
            written: end,
            durable: end,
            allocated,
            busy: false,
        })
    }

    pub fn file(&self) -> &Rc<F> {
        &self.file
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Logical end: every byte appended so far.
    pub fn end(&self) -> u64 {
        self.cur_pos + self.fill as u64
    }

    /// Bytes below this position can be read from the file.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes below this position are durable.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// Bytes appended but not yet handed to the file.
    pub fn pending_bytes(&self) -> u64 {
        self.end() - self.written
    }

    /// Bytes of buffers held: the current one, the spares and the queued ones.
    pub fn buffered_bytes(&self) -> usize {
        let cur = self.cur.as_ref().map_or(0, |b| b.as_ref().len());
        let spare: usize = self.spare.iter().map(|b| b.as_ref().len()).sum();
        let queued: usize = self.queued.iter().map(|(b, _)| b.as_ref().as_ref().len()).sum();
        cur + spare + queued
    }

    /// Gives back the full-size buffers if the appender is idle: every appended byte is in the
    /// file (nothing queued, nothing pending) and nothing was appended since the previous call.
    /// Keeps only the partial tail block. Returns whether it released them. No I/O: the bytes
    /// given back are all written, so a dropped write elsewhere cannot depend on them.
    pub fn release_if_idle(&mut self) -> bool {
        let busy = std::mem::replace(&mut self.busy, false);
        if busy || !self.queued.is_empty() || self.written < self.end() {
            return false;
        }
        self.spare.clear();
        let full = self.config.write_buffer_bytes;
        if self.cur.as_ref().is_none_or(|b| b.as_ref().len() < full) {
            return true;
        }
        let end = self.end();
        let pos = align_down(end, self.align);
        let fill = (end - pos) as usize;
        let tail = (fill > 0).then(|| {
            let from = (pos - self.cur_pos) as usize;
            self.copy_out(from, from + self.align)
        });
        self.cur = tail;
        self.cur_pos = pos;
        self.fill = fill;
        true
    }

    /// Makes `cur` a full-size buffer holding the bytes it held, before an append.
    fn ensure_full_buffer(&mut self) {
        let size = self.config.write_buffer_bytes;
        if self.cur.as_ref().is_some_and(|b| b.as_ref().len() == size) {
            return;
        }
        let mut full = self.spare.pop().unwrap_or_else(|| self.file.alloc(size));
        if let Some(small) = self.cur.take() {
            full.as_mut()[..self.fill].copy_from_slice(&small.as_ref()[..self.fill]);
        }
        self.cur = Some(full);
    }

    fn cur_mut(&mut self) -> &mut [u8] {
        self.cur.as_mut().expect("a full buffer while appending").as_mut()
    }

    /// Copies `bytes` to the end. May write queued buffers when the queue is full. The slice
    /// `patch` is then applied to the copied bytes (at the same offsets), so a caller can patch
    /// header fields in the buffer instead of copying the batch first.
    pub async fn append(&mut self, bytes: &[u8], patch: impl FnOnce(&mut [u8])) -> Result<()> {
        self.ensure_allocated(self.end() + bytes.len() as u64).await?;
        if bytes.is_empty() {
            return Ok(());
        }
        self.busy = true;
        self.ensure_full_buffer();
        // Headers of a batch are patched in a small copy; the batch header is only 80 bytes and
        // may straddle two buffers.
        let mut head = [0u8; crate::batch::HEADER_BYTES];
        let n = head.len().min(bytes.len());
        head[..n].copy_from_slice(&bytes[..n]);
        patch(&mut head[..n]);
        let mut rest: &[u8] = bytes;
        let mut done = 0usize;
        while !rest.is_empty() {
            let room = self.config.write_buffer_bytes - self.fill;
            let take = room.min(rest.len());
            let fill = self.fill;
            let dst = &mut self.cur_mut()[fill..fill + take];
            dst.copy_from_slice(&rest[..take]);
            // Overlay the patched header bytes that fall into this piece.
            if done < n {
                let upto = n.min(done + take);
                dst[..upto - done].copy_from_slice(&head[done..upto]);
            }
            self.fill += take;
            done += take;
            rest = &rest[take..];
            if self.fill == self.config.write_buffer_bytes {
                self.seal_current();
                if self.queued.len() >= self.config.write_behind_buffers_max {
                    self.write_queued().await?;
                }
            }
        }
        Ok(())
    }

    async fn ensure_allocated(&mut self, upto: u64) -> Result<()> {
        let step = self.config.preallocate_bytes;
        if step == 0 || upto <= self.allocated {
            return Ok(());
        }
        let ahead = step.min(upto.max(PREALLOCATE_FIRST_BYTES));
        let target = align_up(upto + ahead, self.align);
        self.file.allocate(target).await.map_err(|e| LogError::io("allocate", &self.name, e))?;
        self.allocated = target;
        Ok(())
    }

    /// Where the unwritten part of the current buffer starts: an earlier partial write may have
    /// covered its first blocks.
    fn unwritten_from(&self) -> usize {
        align_down(self.written.saturating_sub(self.cur_pos), self.align) as usize
    }

    /// Copies `cur[from..to]` (zero-padding past `fill`) into a buffer of exactly that size.
    fn copy_out(&self, from: usize, to: usize) -> F::Buf {
        let mut out = self.file.alloc(to - from);
        let upto = self.fill.min(to);
        let cur = self.cur.as_ref().map_or(&[][..], |b| b.as_ref());
        out.as_mut()[..upto - from].copy_from_slice(&cur[from..upto]);
        out.as_mut()[upto - from..].fill(0);
        out
    }

    /// Queues the full current buffer and starts the next one. A buffer none of which was
    /// written goes out as it is; otherwise only its unwritten part is copied out and the
    /// buffer itself is reused at once.
    fn seal_current(&mut self) {
        self.drop_tail_copies();
        let size = self.config.write_buffer_bytes;
        let from = self.unwritten_from();
        if from == 0 {
            let next = self.spare.pop().unwrap_or_else(|| self.file.alloc(size));
            let full = self.cur.replace(next).expect("a full buffer being sealed");
            self.queued.push((Rc::new(full), self.cur_pos));
        } else if from < size {
            let out = self.copy_out(from, size);
            self.queued.push((Rc::new(out), self.cur_pos + from as u64));
        }
        self.cur_pos += size as u64;
        self.fill = 0;
    }

    /// Forgets queued copies of the current buffer's tail, left by a `write_out` that was
    /// interrupted: the copy about to be queued covers the same blocks with more bytes, and two
    /// writes of one block in flight could land in either order.
    fn drop_tail_copies(&mut self) {
        let cur_pos = self.cur_pos;
        self.queued.retain(|(_, pos)| *pos < cur_pos);
    }

    /// Writes all queued buffers, concurrently. The queue is emptied only once every write
    /// completed: if this future is dropped halfway, the buffers are still queued and the next
    /// write rewrites them (the same bytes at the same positions), so `written` never passes a
    /// byte that is not in the file.
    async fn write_queued(&mut self) -> Result<()> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let file = &*self.file;
        let name = &self.name;
        // The queued writes cover disjoint ranges, so their order does not matter; `written`
        // moves only when all have completed.
        let writes = self.queued.iter().map(|(buf, pos)| {
            let (buf, pos) = (buf.clone(), *pos);
            async move {
                let expected = buf.as_ref().as_ref().len();
                let written = file.write_at(buf, pos).await.map_err(|e| LogError::io("write", name, e))?;
                if written != expected {
                    return Err(LogError::ShortWrite { file: name.clone(), pos, written, expected });
                }
                Ok(pos + expected as u64)
            }
        });
        // Wait for every write even when one fails: an abandoned write could still land later,
        // after a reopen has recovered the file.
        let ends = join_all(writes).await.into_iter().collect::<Result<Vec<_>>>()?;
        let end = ends.into_iter().fold(self.written, u64::max);
        for (buf, _) in self.queued.drain(..) {
            if let Ok(buf) = Rc::try_unwrap(buf) {
                let reusable = buf.as_ref().len() == self.config.write_buffer_bytes;
                if reusable && self.spare.len() < self.config.write_behind_buffers_max {
                    self.spare.push(buf);
                }
            }
        }
        self.written = end.min(self.end());
        Ok(())
    }

    /// Hands every appended byte to the file: the queued buffers and the unwritten part of the
    /// current one up to the end of its last partial block, all in flight together.
    pub async fn write_out(&mut self) -> Result<()> {
        if self.written < self.end() && self.fill > 0 {
            self.drop_tail_copies();
            let from = self.unwritten_from();
            let to = align_up(self.fill as u64, self.align) as usize;
            let out = self.copy_out(from, to);
            self.queued.push((Rc::new(out), self.cur_pos + from as u64));
        }
        self.write_queued().await?;
        self.written = self.end();
        Ok(())
    }

    /// Writes out and syncs; afterwards every appended byte is durable.
    pub async fn sync(&mut self) -> Result<()> {
        self.write_out().await?;
        if self.durable < self.written {
            self.file.sync().await.map_err(|e| LogError::io("sync", &self.name, e))?;
            self.durable = self.written;
        }
        Ok(())
    }

    /// Syncs and cuts the preallocated space off, leaving the file exactly as long as its data.
    pub async fn finish(&mut self) -> Result<()> {
        self.sync().await?;
        let end = self.end();
        if self.allocated != end {
            self.file.truncate(end).await.map_err(|e| LogError::io("truncate", &self.name, e))?;
            self.file.sync().await.map_err(|e| LogError::io("sync", &self.name, e))?;
            self.allocated = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;
    use crate::storage::mem::MemStorage;
    use futures::executor::block_on;

    const CONFIG: AppenderConfig =
        AppenderConfig { write_buffer_bytes: 64 << 10, write_behind_buffers_max: 2, preallocate_bytes: 0 };

    fn bytes(from: usize, len: usize) -> Vec<u8> {
        (from..from + len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    async fn read_back<F: StorageFile>(file: &F, len: usize) -> Vec<u8> {
        let aligned = align_up(len as u64, file.alignment()) as usize;
        file.read_at(0, aligned).await.unwrap()[..len].to_vec()
    }

    #[test]
    fn an_idle_appender_holds_only_its_tail_block_and_appends_continue_it() {
        block_on(async {
            let st = MemStorage::new();
            let file = Rc::new(st.open("f", true).await.unwrap());
            let align = file.alignment();
            let mut a = Appender::open(file.clone(), "f".into(), 0, CONFIG).await.unwrap();
            assert_eq!(a.buffered_bytes(), 0, "no buffer before the first append");
            let mut expect = Vec::new();
            // Uneven pieces, so the end falls inside a block and across full buffers.
            for (round, len) in [1000usize, 200_000, 5, 70_000, 4096].into_iter().enumerate() {
                let piece = bytes(expect.len(), len);
                a.append(&piece, |_| {}).await.unwrap();
                expect.extend_from_slice(&piece);
                assert!(a.buffered_bytes() >= CONFIG.write_buffer_bytes, "round {round}");
                assert!(!a.release_if_idle(), "appended since the last look: not idle");
                a.write_out().await.unwrap();
                assert!(a.release_if_idle(), "written out and idle");
                let tail = if expect.len().is_multiple_of(align) { 0 } else { align };
                assert_eq!(a.buffered_bytes(), tail, "round {round}: only the tail block");
                assert_eq!(read_back(&*file, expect.len()).await, expect, "round {round}");
            }
            a.finish().await.unwrap();
            assert_eq!(read_back(&*file, expect.len()).await, expect);
        });
    }

    #[test]
    fn buffers_are_kept_while_bytes_are_pending() {
        block_on(async {
            let st = MemStorage::new();
            let file = Rc::new(st.open("f", true).await.unwrap());
            let mut a = Appender::open(file.clone(), "f".into(), 0, CONFIG).await.unwrap();
            a.append(&bytes(0, 100_000), |_| {}).await.unwrap();
            a.release_if_idle();
            assert!(!a.release_if_idle(), "bytes pending: not released");
            assert!(a.buffered_bytes() >= CONFIG.write_buffer_bytes);
            a.write_out().await.unwrap();
            assert!(a.release_if_idle());
            // Reopened at an unaligned end, it reads the tail block back into a small buffer.
            drop(a);
            let a = Appender::open(file, "f".into(), 100_000, CONFIG).await.unwrap();
            assert_eq!(a.buffered_bytes(), MEM_TAIL);
        });
    }

    const MEM_TAIL: usize = crate::storage::mem::MEM_ALIGN;

    /// A quiet file reserves only the first step; a busy one grows its steps to the largest.
    #[test]
    fn preallocation_grows_with_the_file() {
        block_on(async {
            let st = MemStorage::new();
            let file = Rc::new(st.open("f", true).await.unwrap());
            let config = AppenderConfig { preallocate_bytes: 32 << 20, ..CONFIG };
            let mut a = Appender::open(file.clone(), "f".into(), 0, config).await.unwrap();
            a.append(&bytes(0, 600), |_| {}).await.unwrap();
            let first = file.size().await.unwrap();
            assert!(first <= 600 + PREALLOCATE_FIRST_BYTES + MEM_TAIL as u64, "{first}");
            let mut written = 600;
            let mut ahead_max = 0;
            while written < 100 << 20 {
                a.append(&bytes(written, 1 << 20), |_| {}).await.unwrap();
                written += 1 << 20;
                let size = file.size().await.unwrap();
                let ahead = size - written as u64;
                assert!(ahead <= (written as u64).max(PREALLOCATE_FIRST_BYTES) + MEM_TAIL as u64, "{ahead}");
                ahead_max = ahead_max.max(ahead);
            }
            assert!(ahead_max >= 31 << 20, "a large file preallocates in full steps: {ahead_max}");
        });
    }
}

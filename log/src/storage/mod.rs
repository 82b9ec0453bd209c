//! The narrow I/O surface the partition log needs, with owned aligned buffers.
//!
//! [`DmaStorage`](dma::DmaStorage) is the real one: glommio `DmaFile`s, O_DIRECT through
//! io_uring. [`MemStorage`](mem::MemStorage) keeps files in memory and can inject the faults a
//! disk produces (failed or short writes, a full device, bit flips, a crash that loses or tears
//! what was not synced), so every recovery path is tested without a real crash.
//!
//! Both are single-threaded: a storage value and its files belong to the shard that opened them.

pub mod cached;
#[cfg(feature = "dma")]
pub mod dma;
pub mod mem;

use std::io;
use std::ops::Deref;
use std::rc::Rc;

/// An owned, aligned buffer that a file can write from.
pub trait IoBuf: AsRef<[u8]> + AsMut<[u8]> {}

/// One open file. Positions and lengths of writes must be multiples of [`alignment`];
/// reads must start aligned and may return fewer bytes than asked at the end of the file.
///
/// [`alignment`]: StorageFile::alignment
#[allow(async_fn_in_trait)]
pub trait StorageFile: std::fmt::Debug {
    type Buf: IoBuf;
    type ReadBuf: Deref<Target = [u8]>;

    /// The direct-I/O alignment of positions and lengths, a power of two.
    fn alignment(&self) -> usize;
    /// A buffer of `len` bytes suitable for [`write_at`](StorageFile::write_at). Its contents
    /// are unspecified: writers zero what they do not fill.
    fn alloc(&self, len: usize) -> Self::Buf;
    /// Writes the whole buffer at `pos`; returns the bytes written, which a caller must check.
    /// The buffer is shared, not consumed, so the writer can reuse it once the write is done.
    async fn write_at(&self, buf: Rc<Self::Buf>, pos: u64) -> io::Result<usize>;
    /// Reads up to `len` bytes at `pos`.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Self::ReadBuf>;
    /// Makes everything written so far durable, the file's size included (fdatasync). Not its
    /// directory entry: a file created since the last [`Storage::sync_dir`] may vanish at a
    /// crash with all its data.
    async fn sync(&self) -> io::Result<()>;
    async fn size(&self) -> io::Result<u64>;
    /// Sets the file's size; the new size is durable after the next [`sync`](StorageFile::sync).
    async fn truncate(&self, len: u64) -> io::Result<()>;
    /// Reserves space up to `len` bytes and extends the file's size to it (reading as zeros), so
    /// later appends change no metadata and a sync of them is cheaper. Durable after the next
    /// [`sync`](StorageFile::sync), like a truncation.
    async fn allocate(&self, len: u64) -> io::Result<()>;
    async fn close(self) -> io::Result<()>;
}

/// A directory of files: one partition's data directory.
#[allow(async_fn_in_trait)]
pub trait Storage: std::fmt::Debug {
    type File: StorageFile;

    /// Opens `name` for reading and writing, creating it if `create` is set. A creation is
    /// durable only after [`sync_dir`](Storage::sync_dir).
    async fn open(&self, name: &str, create: bool) -> io::Result<Self::File>;
    /// Removes `name`; the removal is durable only after [`sync_dir`](Storage::sync_dir), and a
    /// crash before it may bring the file back. Open handles on the file keep working (POSIX).
    async fn remove(&self, name: &str) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` if it exists, atomically: at any moment, and
    /// after any crash, `to` names either its old file or the renamed one. Like a creation or
    /// removal, the rename is durable only after [`sync_dir`](Storage::sync_dir); a crash before
    /// it may undo it, but never undoes it without also undoing every directory change made
    /// after it. Open handles of both files keep working (POSIX).
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Names of the files in the directory, in no particular order.
    async fn list(&self) -> io::Result<Vec<String>>;
    /// Makes the creations and removals in the directory so far durable.
    async fn sync_dir(&self) -> io::Result<()>;
    /// The directory is about to be deleted behind this storage's back (not file by file through
    /// [`remove`](Storage::remove)): handles of its files keep what they hold open and never
    /// again open a file by name, which may by then lead to another file. Nothing to do where
    /// handles never reopen.
    fn forget_names(&self) {}
}

/// Rounds `n` down to a multiple of the power of two `align`.
pub const fn align_down(n: u64, align: usize) -> u64 {
    n & !(align as u64 - 1)
}

/// Rounds `n` up to a multiple of the power of two `align`.
pub const fn align_up(n: u64, align: usize) -> u64 {
    (n + align as u64 - 1) & !(align as u64 - 1)
}

//! In-memory storage with injectable faults, for tests and the simulator.
//!
//! It is at least as unkind as a real disk. Each file keeps two images: what reads see now, and
//! what survived its last sync (size included: a truncation or allocation is durable only after
//! a sync, as with fdatasync). The directory, too, has two states: what `open` and `list` see
//! now, and what the last [`sync_dir`](Storage::sync_dir) made durable. A
//! [`crash`](MemStorage::crash) reverts the directory to its durable state, so a file created
//! since then is gone (even if its data was synced) and a file removed since then comes back
//! with its durable contents; it throws each surviving file's unsynced image away (or, in torn
//! mode, keeps a random subset of the unsynced blocks, some of them cut short, and a prefix of
//! the directory changes (creations, removals, renames) since the last `sync_dir`, in order, as
//! a journaling filesystem commits metadata); and every file handle opened before it fails from then on, as a process that died
//! would. As on POSIX, a handle names a file, not a name: one whose file was removed keeps
//! reading and writing it, and a file created later under the same name is another file.
//! Faults are armed through [`Faults`].

use super::{IoBuf, Storage, StorageFile};
use rkyv::util::AlignedVec;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::rc::Rc;

/// Alignment of the simulated device.
pub const MEM_ALIGN: usize = 4096;

/// A buffer aligned like a direct-I/O buffer, so batches read from it are 16-byte aligned.
#[derive(Debug, Clone)]
pub struct MemBuf(AlignedVec<4096>);

impl MemBuf {
    fn zeroed(len: usize) -> Self {
        let mut v = AlignedVec::with_capacity(len);
        v.resize(len, 0);
        Self(v)
    }

    fn copy_of(bytes: &[u8]) -> Self {
        let mut v = AlignedVec::with_capacity(bytes.len());
        v.extend_from_slice(bytes);
        Self(v)
    }
}

/// Resolves on its second poll: lets other tasks run while an I/O is "in flight", as on a real
/// device, so tests see operations of concurrent tasks interleave (group commit, for one).
#[derive(Debug, Default)]
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

impl AsRef<[u8]> for MemBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
impl AsMut<[u8]> for MemBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}
impl IoBuf for MemBuf {}
impl std::ops::Deref for MemBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// One file's contents (an inode): what directory entries and open handles refer to.
#[derive(Debug, Default, Clone)]
struct MemFileData {
    /// What reads return.
    live: Vec<u8>,
    /// What a crash leaves, size included: data and size changes are durable after a sync.
    durable: Vec<u8>,
    /// Blocks written since the last sync.
    dirty: BTreeSet<u64>,
    /// The shortest length the file was truncated to since the last sync.
    cut: Option<usize>,
}

type Inode = Rc<RefCell<MemFileData>>;

/// A creation or removal not yet made durable by `sync_dir`.
#[derive(Debug)]
enum DirOp {
    Create(String, Inode),
    Remove(String),
    Rename(String, String),
}

impl DirOp {
    fn apply(self, dir: &mut BTreeMap<String, Inode>) {
        match self {
            DirOp::Create(name, inode) => {
                dir.insert(name, inode);
            }
            DirOp::Remove(name) => {
                dir.remove(&name);
            }
            DirOp::Rename(from, to) => {
                if let Some(inode) = dir.remove(&from) {
                    dir.insert(to, inode);
                }
            }
        }
    }
}

/// Faults to inject. Counters count down on each matching call and fire at zero.
#[derive(Debug, Default)]
pub struct Faults {
    /// Fail the n-th next write with EIO (1 = the next one).
    pub fail_write_in: Cell<u32>,
    /// Make the n-th next write write only its first half.
    pub short_write_in: Cell<u32>,
    /// Fail the n-th next sync with EIO.
    pub fail_sync_in: Cell<u32>,
    /// Fail allocations with ENOSPC while set.
    pub disk_full: Cell<bool>,
    /// Make the n-th next write or sync wait, as an I/O in flight, until
    /// [`release_held`](Faults::release_held); it lands then, and never if its caller is
    /// cancelled first. [`held`](Faults::held) says that it is waiting.
    pub hold_io_in: Cell<u32>,
    /// Like `hold_io_in`, for [`sync_dir`](Storage::sync_dir) calls: holds the n-th next one,
    /// so a test can stop a directory change between its call and its durability.
    pub hold_dir_sync_in: Cell<u32>,
    /// Set while a write or sync is being held by `hold_io_in`.
    pub held: Cell<bool>,
    /// Wakes the held I/O on release.
    held_waker: RefCell<Option<std::task::Waker>>,
    /// Set by [`fail_held`](Faults::fail_held): the held I/O fails with EIO when released.
    held_fails: Cell<bool>,
}

impl Faults {
    /// Waits until released when `hold_io_in` counts down to this call; fails if the held I/O
    /// was released with [`fail_held`](Faults::fail_held).
    async fn maybe_hold(&self) -> io::Result<()> {
        if !countdown(&self.hold_io_in) {
            return Ok(());
        }
        self.hold().await
    }

    /// Waits until released; fails if released with [`fail_held`](Faults::fail_held).
    async fn hold(&self) -> io::Result<()> {
        self.held.set(true);
        std::future::poll_fn(|cx| {
            if self.held.get() {
                *self.held_waker.borrow_mut() = Some(cx.waker().clone());
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        if self.held_fails.replace(false) { Err(eio("held I/O failed")) } else { Ok(()) }
    }

    /// Ends the I/O held by `hold_io_in` with EIO, as a device error reported late would.
    pub fn fail_held(&self) {
        self.held_fails.set(true);
        self.release_held();
    }

    /// Lets the I/O held by `hold_io_in` complete (when its caller polls it again).
    pub fn release_held(&self) {
        self.held.set(false);
        if let Some(waker) = self.held_waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

fn countdown(c: &Cell<u32>) -> bool {
    match c.get() {
        0 => false,
        1 => {
            c.set(0);
            true
        }
        n => {
            c.set(n - 1);
            false
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The directory as `open`, `list` and `remove` see it.
    dir: BTreeMap<String, Inode>,
    /// The directory as of the last `sync_dir`: what a crash starts from.
    durable_dir: BTreeMap<String, Inode>,
    /// Creations and removals since the last `sync_dir`, in order.
    dir_ops: Vec<DirOp>,
    /// Bumped by a crash; handles from an older generation fail.
    generation: u64,
    /// Number of sync calls, to observe group commit.
    syncs: u64,
    writes: u64,
}

/// An in-memory directory. Cloning shares it, as two handles on one directory would.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    state: Rc<RefCell<State>>,
    faults: Rc<Faults>,
    /// File handles alive now, as descriptors a process holds open.
    handles: Rc<Cell<usize>>,
}

/// How much of the unsynced data a crash keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Everything written since the last sync is lost.
    LoseUnsynced,
    /// Each unsynced block independently survives, is lost, or survives only in part, as decided
    /// by the seed: the device reordered and tore writes in flight.
    Torn { seed: u64 },
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Number of syncs so far.
    pub fn syncs(&self) -> u64 {
        self.state.borrow().syncs
    }

    pub fn writes(&self) -> u64 {
        self.state.borrow().writes
    }

    /// A descriptor cache for [`CachedStorage`](super::cached::CachedStorage)s over in-memory
    /// directories, holding at most `capacity` files open.
    pub fn fd_cache(capacity: usize) -> super::cached::FdCache<MemFile> {
        super::cached::FdCache::new(capacity, Rc::new(MemBuf::zeroed))
    }

    /// File handles alive now: what a real directory would count as open descriptors.
    pub fn open_handles(&self) -> usize {
        self.handles.get()
    }

    /// Simulates a crash of the process or machine: directory changes and unsynced data go as
    /// `mode` says (see the module documentation), and every open file handle becomes unusable.
    pub fn crash(&self, mode: CrashMode) {
        let mut st = self.state.borrow_mut();
        st.generation += 1;
        let mut rng = match mode {
            CrashMode::LoseUnsynced => None,
            CrashMode::Torn { seed } => Some(SplitMix(seed)),
        };
        let ops = std::mem::take(&mut st.dir_ops);
        let kept = rng.as_mut().map_or(0, |r| (r.next() % (ops.len() as u64 + 1)) as usize);
        let mut dir = st.durable_dir.clone();
        for op in ops.into_iter().take(kept) {
            op.apply(&mut dir);
        }
        for inode in dir.values() {
            crash_file(&mut inode.borrow_mut(), rng.as_mut());
        }
        st.durable_dir = dir.clone();
        st.dir = dir;
    }

    fn lookup(&self, name: &str) -> Option<Inode> {
        self.state.borrow().dir.get(name).cloned()
    }

    /// Flips one bit at rest, in both images: a latent media error.
    pub fn flip_bit(&self, name: &str, pos: u64, bit: u8) {
        let inode = self.lookup(name).expect("flip_bit on a missing file");
        let mut f = inode.borrow_mut();
        let f = &mut *f;
        for image in [&mut f.live, &mut f.durable] {
            if let Some(b) = image.get_mut(pos as usize) {
                *b ^= 1 << (bit % 8);
            }
        }
    }

    /// Deletes a file behind the log's back, as an operator's mistake would; durably.
    pub fn remove_file(&self, name: &str) {
        let mut st = self.state.borrow_mut();
        st.dir.remove(name);
        st.durable_dir.remove(name);
        st.dir_ops.retain(|op| match op {
            DirOp::Create(n, _) | DirOp::Remove(n) => n != name,
            DirOp::Rename(from, to) => from != name && to != name,
        });
    }

    /// The current contents of a file, for assertions.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.lookup(name).map(|f| f.borrow().live.clone())
    }

    /// Overwrites a file's bytes in both images, creating it durably if needed, for tests that
    /// damage files by hand.
    pub fn set_contents(&self, name: &str, bytes: Vec<u8>) {
        let mut st = self.state.borrow_mut();
        let inode = st.dir.entry(name.to_owned()).or_default().clone();
        st.durable_dir.insert(name.to_owned(), inode.clone());
        let mut f = inode.borrow_mut();
        f.live = bytes.clone();
        f.durable = bytes;
        f.dirty.clear();
        f.cut = None;
    }
}

/// What a crash leaves of one file: its durable image, and in torn mode (`rng` set) perhaps its
/// size change since the last sync and each unsynced block whole, in part or not at all.
fn crash_file(f: &mut MemFileData, rng: Option<&mut SplitMix>) {
    let dirty = std::mem::take(&mut f.dirty);
    let mut image = f.durable.clone();
    if let Some(rng) = rng {
        if rng.next() % 2 == 0 {
            image.truncate(f.cut.unwrap_or(usize::MAX));
            image.resize(f.live.len(), 0);
        }
        for block in dirty {
            let start = block as usize * MEM_ALIGN;
            let end = (start + MEM_ALIGN).min(f.live.len());
            if start >= end {
                continue;
            }
            let keep = match rng.next() % 3 {
                0 => 0,
                1 => end - start,
                _ => (rng.next() as usize % (end - start) / 512) * 512,
            };
            if keep > 0 {
                if image.len() < start + keep {
                    image.resize(start + keep, 0);
                }
                image[start..start + keep].copy_from_slice(&f.live[start..start + keep]);
            }
        }
    }
    f.cut = None;
    f.live = image.clone();
    f.durable = image;
}

/// A small deterministic generator, so a torn crash replays from its seed.
#[derive(Debug)]
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A handle on one in-memory file. It refers to the file, not its name, as a POSIX descriptor
/// does: it outlives a removal of the name, until it is dropped.
#[derive(Debug)]
pub struct MemFile {
    name: String,
    inode: Inode,
    storage: MemStorage,
    generation: u64,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

impl MemFile {
    fn with<R>(&self, f: impl FnOnce(&mut MemFileData, &mut State) -> R) -> io::Result<R> {
        let mut st = self.storage.state.borrow_mut();
        if st.generation != self.generation {
            return Err(eio(&format!("handle on {} from before a crash", self.name)));
        }
        Ok(f(&mut self.inode.borrow_mut(), &mut st))
    }
}

impl StorageFile for MemFile {
    type Buf = MemBuf;
    type ReadBuf = MemBuf;

    fn alignment(&self) -> usize {
        MEM_ALIGN
    }

    fn alloc(&self, len: usize) -> MemBuf {
        MemBuf::zeroed(len)
    }

    async fn write_at(&self, buf: Rc<MemBuf>, pos: u64) -> io::Result<usize> {
        assert_eq!(pos % MEM_ALIGN as u64, 0, "unaligned write position");
        assert_eq!(buf.0.len() % MEM_ALIGN, 0, "unaligned write length");
        let faults = &self.storage.faults;
        if countdown(&faults.fail_write_in) {
            return Err(eio("write failed"));
        }
        let len = if countdown(&faults.short_write_in) { buf.0.len() / 2 } else { buf.0.len() };
        faults.maybe_hold().await?;
        YieldOnce::default().await;
        self.with(|f, st| {
            st.writes += 1;
            let start = pos as usize;
            if f.live.len() < start + len {
                f.live.resize(start + len, 0);
            }
            f.live[start..start + len].copy_from_slice(&buf.0[..len]);
            for block in (start / MEM_ALIGN)..(start + len).div_ceil(MEM_ALIGN) {
                f.dirty.insert(block as u64);
            }
            len
        })
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<MemBuf> {
        assert_eq!(pos % MEM_ALIGN as u64, 0, "unaligned read position");
        self.with(|f, _| {
            let start = (pos as usize).min(f.live.len());
            let end = (pos as usize).saturating_add(len).min(f.live.len());
            MemBuf::copy_of(&f.live[start..end])
        })
    }

    async fn sync(&self) -> io::Result<()> {
        if countdown(&self.storage.faults.fail_sync_in) {
            return Err(eio("sync failed"));
        }
        self.storage.faults.maybe_hold().await?;
        YieldOnce::default().await;
        self.with(|f, st| {
            st.syncs += 1;
            f.durable = f.live.clone();
            f.dirty.clear();
            f.cut = None;
        })
    }

    async fn size(&self) -> io::Result<u64> {
        self.with(|f, _| f.live.len() as u64)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        // Like the data, the new size is durable after the next sync (fdatasync syncs it).
        self.with(|f, _| {
            let len = len as usize;
            f.live.resize(len, 0);
            f.dirty.retain(|&b| (b as usize) * MEM_ALIGN < len);
            f.cut = Some(f.cut.map_or(len, |c| c.min(len)));
        })
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        if self.storage.faults.disk_full.get() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.with(|f, _| {
            let len = len as usize;
            // A size change, durable after the next sync.
            if f.live.len() < len {
                f.live.resize(len, 0);
            }
        })
    }

    async fn close(self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        self.storage.handles.set(self.storage.handles.get() - 1);
    }
}

impl Storage for MemStorage {
    type File = MemFile;

    async fn open(&self, name: &str, create: bool) -> io::Result<MemFile> {
        let mut st = self.state.borrow_mut();
        let inode = match st.dir.get(name) {
            Some(inode) => inode.clone(),
            None if create => {
                let inode = Inode::default();
                st.dir.insert(name.to_owned(), inode.clone());
                st.dir_ops.push(DirOp::Create(name.to_owned(), inode.clone()));
                inode
            }
            None => return Err(io::Error::new(io::ErrorKind::NotFound, name.to_owned())),
        };
        self.handles.set(self.handles.get() + 1);
        Ok(MemFile { name: name.to_owned(), inode, storage: self.clone(), generation: st.generation })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        if st.dir.remove(name).is_none() {
            return Err(io::Error::new(io::ErrorKind::NotFound, name.to_owned()));
        }
        st.dir_ops.push(DirOp::Remove(name.to_owned()));
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let Some(inode) = st.dir.remove(from) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, from.to_owned()));
        };
        st.dir.insert(to.to_owned(), inode);
        st.dir_ops.push(DirOp::Rename(from.to_owned(), to.to_owned()));
        Ok(())
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.state.borrow().dir.keys().cloned().collect())
    }

    async fn sync_dir(&self) -> io::Result<()> {
        if countdown(&self.faults.hold_dir_sync_in) {
            self.faults.hold().await?;
        }
        let mut st = self.state.borrow_mut();
        st.durable_dir = st.dir.clone();
        st.dir_ops.clear();
        Ok(())
    }
}

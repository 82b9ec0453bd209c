//! In-memory storage with injectable faults, for tests and the simulator.
//!
//! Each file keeps two images: what reads see now, and what survived the last sync. A
//! [`crash`](MemStorage::crash) throws the unsynced image away (or, in torn mode, keeps a random
//! subset of the unsynced blocks, some of them cut short), and every file handle opened before it
//! fails from then on, as a process that died would. Faults are armed through [`Faults`].

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

#[derive(Debug, Default, Clone)]
struct MemFileData {
    /// What reads return.
    live: Vec<u8>,
    /// What a crash leaves.
    durable: Vec<u8>,
    /// Blocks written since the last sync.
    dirty: BTreeSet<u64>,
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
    /// Make the n-th next write or sync never complete, as an I/O still in flight when its
    /// caller is cancelled; it never lands. [`held`](Faults::held) says that it happened.
    pub hold_io_in: Cell<u32>,
    /// Set once a write or sync is being held by `hold_io_in`.
    pub held: Cell<bool>,
}

impl Faults {
    /// Waits forever when `hold_io_in` counts down to this call.
    async fn maybe_hold(&self) {
        if countdown(&self.hold_io_in) {
            self.held.set(true);
            std::future::pending::<()>().await;
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
    files: BTreeMap<String, MemFileData>,
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

    /// Simulates a crash of the process or machine: unsynced data goes as `mode` says, and every
    /// open file handle becomes unusable.
    pub fn crash(&self, mode: CrashMode) {
        let mut st = self.state.borrow_mut();
        st.generation += 1;
        let mut rng = match mode {
            CrashMode::LoseUnsynced => None,
            CrashMode::Torn { seed } => Some(SplitMix(seed)),
        };
        for f in st.files.values_mut() {
            let dirty = std::mem::take(&mut f.dirty);
            let mut image = f.durable.clone();
            if let Some(rng) = rng.as_mut() {
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
            f.live = image.clone();
            f.durable = image;
        }
    }

    /// Flips one bit at rest, in both images: a latent media error.
    pub fn flip_bit(&self, name: &str, pos: u64, bit: u8) {
        let mut st = self.state.borrow_mut();
        let f = st.files.get_mut(name).expect("flip_bit on a missing file");
        for image in [&mut f.live, &mut f.durable] {
            if let Some(b) = image.get_mut(pos as usize) {
                *b ^= 1 << (bit % 8);
            }
        }
    }

    /// Deletes a file behind the log's back, as an operator's mistake would.
    pub fn remove_file(&self, name: &str) {
        self.state.borrow_mut().files.remove(name);
    }

    /// The current contents of a file, for assertions.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.state.borrow().files.get(name).map(|f| f.live.clone())
    }

    /// Overwrites a file's bytes in both images, for tests that damage files by hand.
    pub fn set_contents(&self, name: &str, bytes: Vec<u8>) {
        let mut st = self.state.borrow_mut();
        let f = st.files.entry(name.to_owned()).or_default();
        f.live = bytes.clone();
        f.durable = bytes;
        f.dirty.clear();
    }
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

/// A handle on one in-memory file.
#[derive(Debug)]
pub struct MemFile {
    name: String,
    storage: MemStorage,
    generation: u64,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

impl MemFile {
    fn with<R>(&self, f: impl FnOnce(&mut MemFileData, &mut State) -> R) -> io::Result<R> {
        let mut guard = self.storage.state.borrow_mut();
        let st = &mut *guard;
        if st.generation != self.generation {
            return Err(eio("file handle from before a crash"));
        }
        let mut data = st
            .files
            .remove(&self.name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{} was removed", self.name)))?;
        let r = f(&mut data, st);
        st.files.insert(self.name.clone(), data);
        Ok(r)
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
        faults.maybe_hold().await;
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
        self.storage.faults.maybe_hold().await;
        YieldOnce::default().await;
        self.with(|f, st| {
            st.syncs += 1;
            f.durable = f.live.clone();
            f.dirty.clear();
        })
    }

    async fn size(&self) -> io::Result<u64> {
        self.with(|f, _| f.live.len() as u64)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        // Size changes are metadata: journaled by the filesystem, so durable at once here.
        self.with(|f, _| {
            let len = len as usize;
            f.live.resize(len, 0);
            f.durable.resize(len, 0);
            f.dirty.retain(|&b| (b as usize) * MEM_ALIGN < len);
        })
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        if self.storage.faults.disk_full.get() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.with(|f, _| {
            let len = len as usize;
            if f.live.len() < len {
                f.live.resize(len, 0);
            }
            if f.durable.len() < len {
                f.durable.resize(len, 0);
            }
        })
    }

    async fn close(self) -> io::Result<()> {
        Ok(())
    }
}

impl Storage for MemStorage {
    type File = MemFile;

    async fn open(&self, name: &str, create: bool) -> io::Result<MemFile> {
        let mut st = self.state.borrow_mut();
        if !st.files.contains_key(name) {
            if !create {
                return Err(io::Error::new(io::ErrorKind::NotFound, name.to_owned()));
            }
            st.files.insert(name.to_owned(), MemFileData::default());
        }
        Ok(MemFile { name: name.to_owned(), storage: self.clone(), generation: st.generation })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        self.state
            .borrow_mut()
            .files
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_owned()))
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.state.borrow().files.keys().cloned().collect())
    }

    async fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}

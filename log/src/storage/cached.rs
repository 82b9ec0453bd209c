//! A bound on open files: [`CachedStorage`] wraps a [`Storage`] so that its files keep a
//! descriptor only while recently used, in a least-recently-used [`FdCache`] shared by every
//! partition of a shard.
//!
//! A node with ten thousand partitions would otherwise hold tens of thousands of descriptors
//! (each partition's data, index and epoch files, and one per sealed segment), past the
//! process's RLIMIT_NOFILE. A [`CachedFile`] remembers its name and reopens the file when it is
//! used after its descriptor was closed. Every descriptor holds one of the cache's `capacity`
//! permits from before its open until it is dropped, so the bound holds for operations in flight
//! too (a dropped glommio file's close is queued on its ring and lands with the executor's next
//! I/O, so the process may briefly hold a few more): an open that finds no permit closes the coldest descriptors, and
//! if all of them are in use it waits for one. An operation holds one descriptor at a time and
//! waits for none while holding it, so waiting cannot deadlock.
//!
//! POSIX lets a handle of a removed file go on using it; a closed descriptor cannot be reopened
//! by name once the name is gone (or names another file). So a removal through
//! [`CachedStorage::remove`] of a file that still has handles opens its descriptor if the cache
//! had closed it and pins it, outside the cache's count, until the last handle drops: the one
//! way past the bound, for files the log has just deleted. Should
//! that open fail, those handles fail with `NotFound`; they never reach whatever file took the
//! name later.
//!
//! Ownership: a cache and its storages belong to one shard (they are `Rc`-based); nothing here
//! is shared across threads.

use super::{Storage, StorageFile};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Makes an I/O buffer without a file: what a [`CachedFile`] whose descriptor is closed
/// allocates with.
pub type Allocator<B> = Rc<dyn Fn(usize) -> B>;

/// Counters of a cache, for `weir stats` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdCacheStats {
    /// Descriptors the cache holds open now (pinned ones of removed files excluded).
    pub open: usize,
    /// The most it holds open between operations.
    pub capacity: usize,
    /// Files reopened because their descriptor had been closed.
    pub reopens: u64,
    /// Descriptors closed to make room.
    pub evictions: u64,
}

/// The shard's bounded set of open descriptors, least recently used first out. Cloning shares it.
pub struct FdCache<F: StorageFile> {
    lru: Rc<RefCell<Lru<F>>>,
    alloc: Allocator<F::Buf>,
    /// One permit per descriptor that may be open.
    permits: Arc<Semaphore>,
    /// Wakes the opens waiting for a permit when a descriptor enters the order: it holds a
    /// permit that only an eviction gives back, and the semaphore alone would never wake them.
    evictable: Rc<Notify>,
}

impl<F: StorageFile> Clone for FdCache<F> {
    fn clone(&self) -> Self {
        Self {
            lru: self.lru.clone(),
            alloc: self.alloc.clone(),
            permits: self.permits.clone(),
            evictable: self.evictable.clone(),
        }
    }
}

/// An open descriptor and the permit it holds, given back when the descriptor closes, or when
/// its file is removed: a removed file's descriptor lives only as long as handles that were
/// open at the removal, and counting it could leave a task that holds one waiting for ever.
struct Held<F> {
    file: F,
    permit: Cell<Option<OwnedSemaphorePermit>>,
}

impl<F: StorageFile> std::fmt::Debug for FdCache<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdCache").field("stats", &self.stats()).finish()
    }
}

struct Lru<F> {
    capacity: usize,
    /// Open, evictable descriptors by the tick of their last use: the first is the coldest.
    order: BTreeMap<u64, Weak<Slot<F>>>,
    tick: u64,
    reopens: u64,
    evictions: u64,
}

/// One file's descriptor, shared by every handle of the file opened through one storage.
struct Slot<F> {
    name: String,
    alignment: usize,
    handle: RefCell<Option<Rc<Held<F>>>>,
    /// Key of the slot in [`Lru::order`] while it is there.
    tick: Cell<Option<u64>>,
    /// The name was removed: the descriptor, if open, is kept until the last handle drops, and
    /// is never reopened.
    removed: Cell<bool>,
    lru: Weak<RefCell<Lru<F>>>,
    /// The storage's map of slots by name, which forgets this one when it drops.
    names: Weak<RefCell<SlotMap<F>>>,
}

type SlotMap<F> = HashMap<String, Weak<Slot<F>>>;

impl<F> Drop for Slot<F> {
    fn drop(&mut self) {
        // `try_borrow_mut`: a slot never drops while these are borrowed, but a panic must not
        // turn into a double panic here.
        if let (Some(tick), Some(lru)) = (self.tick.get(), self.lru.upgrade())
            && let Ok(mut lru) = lru.try_borrow_mut()
        {
            lru.order.remove(&tick);
        }
        if let Some(names) = self.names.upgrade()
            && let Ok(mut names) = names.try_borrow_mut()
            && names.get(&self.name).is_some_and(|w| w.strong_count() == 0)
        {
            names.remove(&self.name);
        }
    }
}

impl<F: StorageFile> FdCache<F> {
    /// A cache holding at most `capacity` descriptors open (at least one), allocating buffers
    /// for closed files with `alloc`.
    pub fn new(capacity: usize, alloc: Allocator<F::Buf>) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let lru = Lru { capacity, order: BTreeMap::new(), tick: 0, reopens: 0, evictions: 0 };
        Self {
            lru: Rc::new(RefCell::new(lru)),
            alloc,
            permits: Arc::new(Semaphore::new(capacity)),
            evictable: Rc::default(),
        }
    }

    /// A permit for one more descriptor: closes the coldest ones until one is free, and waits
    /// for operations in flight to give one back if every descriptor is in use.
    async fn permit(&self) -> OwnedSemaphorePermit {
        loop {
            // Registered before looking, so a descriptor entering the order after the look
            // wakes this open.
            let evictable = self.evictable.notified();
            let mut evictable = std::pin::pin!(evictable);
            evictable.as_mut().enable();
            loop {
                if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                    return permit;
                }
                if !self.evict_coldest() {
                    break;
                }
            }
            let acquire = self.permits.clone().acquire_owned();
            futures::pin_mut!(acquire);
            match futures::future::select(acquire, evictable).await {
                futures::future::Either::Left((permit, _)) => {
                    return permit.expect("the semaphore is never closed");
                }
                futures::future::Either::Right(((), _)) => {}
            }
        }
    }

    /// Closes every descriptor the cache holds, waiting for each close (those that operations in
    /// flight hold close when they end). For a shard that stops: dropped instead, a descriptor
    /// closes only when its executor next runs, and may never.
    pub async fn close_all(&self) {
        loop {
            let coldest = {
                let mut lru = self.lru.borrow_mut();
                let Some((_, coldest)) = lru.order.pop_first() else { return };
                coldest.upgrade()
            };
            let Some(slot) = coldest else { continue };
            slot.tick.set(None);
            let handle = slot.handle.borrow_mut().take();
            if let Some(Ok(held)) = handle.map(Rc::try_unwrap)
                && let Err(e) = held.file.close().await
            {
                tracing::warn!(file = %slot.name, error = %e, "closing a file failed");
            }
        }
    }

    /// Closes the coldest descriptor (once the operations using it end); false if none is open.
    fn evict_coldest(&self) -> bool {
        let coldest = {
            let mut lru = self.lru.borrow_mut();
            let Some((_, coldest)) = lru.order.pop_first() else { return false };
            lru.evictions += 1;
            coldest.upgrade()
        };
        if let Some(slot) = coldest {
            slot.tick.set(None);
            // Dropped outside the borrow: the last holder of a descriptor closes it.
            let handle = slot.handle.borrow_mut().take();
            drop(handle);
        }
        true
    }

    pub fn stats(&self) -> FdCacheStats {
        let lru = self.lru.borrow();
        FdCacheStats {
            open: lru.order.len(),
            capacity: lru.capacity,
            reopens: lru.reopens,
            evictions: lru.evictions,
        }
    }

    /// Marks `slot` most recently used, entering it into the order if it was not there.
    fn touch(&self, slot: &Rc<Slot<F>>) {
        let mut lru = self.lru.borrow_mut();
        if let Some(old) = slot.tick.take() {
            lru.order.remove(&old);
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.order.insert(tick, Rc::downgrade(slot));
        slot.tick.set(Some(tick));
        drop(lru);
        self.evictable.notify_waiters();
    }

    /// Gives `handle` to `slot`, most recently used.
    fn admit(&self, slot: &Rc<Slot<F>>, handle: Rc<Held<F>>) {
        *slot.handle.borrow_mut() = Some(handle);
        self.touch(slot);
    }

    /// Opens `name` in `storage` under a permit.
    async fn open_held<S: Storage<File = F>>(
        &self,
        storage: &S,
        name: &str,
        create: bool,
    ) -> io::Result<Held<F>> {
        let permit = self.permit().await;
        Ok(Held { file: storage.open(name, create).await?, permit: Cell::new(Some(permit)) })
    }

    /// Takes `slot` out of the order and its descriptor out of the count: the descriptor stays
    /// open until the slot drops.
    fn pin(&self, slot: &Slot<F>) {
        if let Some(tick) = slot.tick.take() {
            self.lru.borrow_mut().order.remove(&tick);
        }
        if let Some(held) = &*slot.handle.borrow() {
            drop(held.permit.take());
        }
    }
}

/// A [`Storage`] whose files hold descriptors only while the shard's [`FdCache`] keeps them.
/// Cloning shares the directory and the cache.
pub struct CachedStorage<S: Storage> {
    inner: S,
    cache: FdCache<S::File>,
    /// The slot of each name opened through this storage, so handles of one file share one
    /// descriptor and a removal reaches them.
    slots: Rc<RefCell<SlotMap<S::File>>>,
}

impl<S: Storage + Clone> Clone for CachedStorage<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), cache: self.cache.clone(), slots: self.slots.clone() }
    }
}

impl<S: Storage> std::fmt::Debug for CachedStorage<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStorage").field("inner", &self.inner).finish()
    }
}

impl<S: Storage> CachedStorage<S> {
    pub fn new(inner: S, cache: FdCache<S::File>) -> Self {
        Self { inner, cache, slots: Rc::default() }
    }

    fn live_slot(&self, name: &str) -> Option<Rc<Slot<S::File>>> {
        self.slots.borrow().get(name).and_then(Weak::upgrade).filter(|s| !s.removed.get())
    }
}

/// A file of a [`CachedStorage`]: reopened by name when used after its descriptor was closed.
pub struct CachedFile<S: Storage> {
    storage: CachedStorage<S>,
    slot: Rc<Slot<S::File>>,
}

impl<S: Storage> std::fmt::Debug for CachedFile<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedFile").field("name", &self.slot.name).finish()
    }
}

impl<S: Storage> CachedFile<S> {
    /// The open descriptor, reopening the file if the cache closed it.
    async fn handle(&self) -> io::Result<Rc<Held<S::File>>> {
        if let Some(handle) = self.open_handle() {
            return Ok(handle);
        }
        let gone = || io::Error::new(io::ErrorKind::NotFound, format!("{} was removed", self.slot.name));
        if self.slot.removed.get() {
            return Err(gone());
        }
        let cache = &self.storage.cache;
        let reopened = Rc::new(cache.open_held(&self.storage.inner, &self.slot.name, false).await?);
        // Another task may have reopened it, or removed the name, while this one waited.
        if let Some(handle) = self.open_handle() {
            return Ok(handle);
        }
        if self.slot.removed.get() {
            return Err(gone());
        }
        cache.lru.borrow_mut().reopens += 1;
        cache.admit(&self.slot, reopened.clone());
        Ok(reopened)
    }

    fn open_handle(&self) -> Option<Rc<Held<S::File>>> {
        let handle = self.slot.handle.borrow().clone()?;
        if !self.slot.removed.get() {
            self.storage.cache.touch(&self.slot);
        }
        Some(handle)
    }
}

impl<S: Storage> StorageFile for CachedFile<S> {
    type Buf = <S::File as StorageFile>::Buf;
    type ReadBuf = <S::File as StorageFile>::ReadBuf;

    fn alignment(&self) -> usize {
        self.slot.alignment
    }

    fn alloc(&self, len: usize) -> Self::Buf {
        match &*self.slot.handle.borrow() {
            Some(handle) => handle.file.alloc(len),
            None => (self.storage.cache.alloc)(len),
        }
    }

    async fn write_at(&self, buf: Rc<Self::Buf>, pos: u64) -> io::Result<usize> {
        self.handle().await?.file.write_at(buf, pos).await
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Self::ReadBuf> {
        self.handle().await?.file.read_at(pos, len).await
    }

    async fn sync(&self) -> io::Result<()> {
        self.handle().await?.file.sync().await
    }

    async fn size(&self) -> io::Result<u64> {
        self.handle().await?.file.size().await
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.handle().await?.file.truncate(len).await
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        self.handle().await?.file.allocate(len).await
    }

    /// Closes the descriptor if no other handle of the file shares it.
    async fn close(self) -> io::Result<()> {
        if Rc::strong_count(&self.slot) > 1 {
            return Ok(());
        }
        self.storage.cache.pin(&self.slot);
        let handle = self.slot.handle.borrow_mut().take();
        match handle.map(Rc::try_unwrap) {
            Some(Ok(held)) => held.file.close().await,
            // An operation in flight holds it: the descriptor closes when that ends.
            Some(Err(_)) | None => Ok(()),
        }
    }
}

impl<S: Storage + Clone> Storage for CachedStorage<S> {
    type File = CachedFile<S>;

    async fn open(&self, name: &str, create: bool) -> io::Result<CachedFile<S>> {
        if let Some(slot) = self.live_slot(name) {
            return Ok(CachedFile { storage: self.clone(), slot });
        }
        let file = Rc::new(self.cache.open_held(&self.inner, name, create).await?);
        // Another task may have opened the name while this one waited: share its slot.
        if let Some(slot) = self.live_slot(name) {
            return Ok(CachedFile { storage: self.clone(), slot });
        }
        let slot = Rc::new(Slot {
            name: name.to_owned(),
            alignment: file.file.alignment(),
            handle: RefCell::new(None),
            tick: Cell::new(None),
            removed: Cell::new(false),
            lru: Rc::downgrade(&self.cache.lru),
            names: Rc::downgrade(&self.slots),
        });
        self.slots.borrow_mut().insert(name.to_owned(), Rc::downgrade(&slot));
        self.cache.admit(&slot, file);
        Ok(CachedFile { storage: self.clone(), slot })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        self.detach(name).await;
        self.inner.remove(name).await
    }

    /// Both names stop leading to the files their handles hold: those handles are detached as
    /// by a removal, so they keep their files and never reopen a name.
    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.detach(from).await;
        self.detach(to).await;
        self.inner.rename(from, to).await
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list().await
    }

    fn forget_names(&self) {
        let slots: Vec<_> = self.slots.borrow_mut().drain().filter_map(|(_, w)| w.upgrade()).collect();
        for slot in slots {
            slot.removed.set(true);
            self.cache.pin(&slot);
        }
    }

    async fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir().await
    }
}

impl<S: Storage + Clone> CachedStorage<S> {
    /// Detaches the handles of `name` from it before the name goes (unlinked or renamed away).
    async fn detach(&self, name: &str) {
        let slot = self.slots.borrow().get(name).and_then(Weak::upgrade);
        if let Some(slot) = slot {
            // Handles of the file live on, and POSIX lets them use it after the unlink: hold a
            // descriptor for them, opened while the name still leads to the file, outside the
            // count (see `Held`), so a removal never waits.
            if slot.handle.borrow().is_none()
                && let Ok(file) = self.inner.open(name, false).await
                && slot.handle.borrow().is_none()
            {
                *slot.handle.borrow_mut() = Some(Rc::new(Held { file, permit: Cell::new(None) }));
            }
            // Marked before the unlink, so no reopen by this name can reach a file created
            // after it.
            slot.removed.set(true);
            self.cache.pin(&slot);
            self.slots.borrow_mut().remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mem::{MemFile, MemStorage};
    use futures::executor::block_on;

    async fn write(file: &CachedFile<MemStorage>, fill: u8) {
        let mut buf = file.alloc(4096);
        buf.as_mut().fill(fill);
        assert_eq!(file.write_at(Rc::new(buf), 0).await.unwrap(), 4096);
    }

    async fn first_byte(file: &CachedFile<MemStorage>) -> io::Result<u8> {
        Ok(file.read_at(0, 4096).await?[0])
    }

    fn storage(capacity: usize) -> (MemStorage, CachedStorage<MemStorage>, FdCache<MemFile>) {
        let mem = MemStorage::new();
        let cache = MemStorage::fd_cache(capacity);
        (mem.clone(), CachedStorage::new(mem, cache.clone()), cache)
    }

    /// Ten files through a cache of three: never more than three descriptors open between
    /// operations, and every file reads back what was written to it.
    #[test]
    fn open_descriptors_stay_within_the_capacity() {
        block_on(async {
            let (mem, st, cache) = storage(3);
            let mut files = Vec::new();
            for i in 0..10u8 {
                let file = st.open(&format!("f{i}"), true).await.unwrap();
                write(&file, i).await;
                files.push(file);
                assert!(mem.open_handles() <= 3, "{} open", mem.open_handles());
            }
            for (i, file) in files.iter().enumerate().rev() {
                assert_eq!(first_byte(file).await.unwrap(), i as u8);
                file.sync().await.unwrap();
                assert!(mem.open_handles() <= 3, "{} open", mem.open_handles());
            }
            let stats = cache.stats();
            assert_eq!((stats.open, stats.capacity), (3, 3));
            assert!(stats.reopens >= 7 && stats.evictions >= 7, "{stats:?}");
            drop(files);
            assert_eq!((mem.open_handles(), cache.stats().open), (0, 0));
        });
    }

    /// Handles of one name share a descriptor; a closed file still allocates buffers.
    #[test]
    fn handles_of_a_name_share_one_descriptor() {
        block_on(async {
            let (mem, st, _) = storage(1);
            let a = st.open("a", true).await.unwrap();
            let again = st.open("a", false).await.unwrap();
            assert_eq!(mem.open_handles(), 1);
            write(&again, 7).await;
            assert_eq!(first_byte(&a).await.unwrap(), 7);
            let b = st.open("b", true).await.unwrap();
            assert_eq!(mem.open_handles(), 1, "a was closed to make room for b");
            assert_eq!(a.alloc(4096).len(), 4096);
            write(&a, 8).await;
            assert_eq!(first_byte(&again).await.unwrap(), 8);
            drop(b);
        });
    }

    /// A handle of a removed file keeps using it, as on POSIX, whether or not its descriptor
    /// was open at the removal, and never reaches the file created under the name later.
    #[test]
    fn a_removed_file_stays_usable_through_its_handles() {
        block_on(async {
            let (mem, st, cache) = storage(1);
            let evicted = st.open("evicted", true).await.unwrap();
            write(&evicted, 1).await;
            let pinned = st.open("pinned", true).await.unwrap();
            write(&pinned, 2).await;
            st.remove("evicted").await.unwrap();
            st.remove("pinned").await.unwrap();
            for (name, fill) in [("evicted", 3), ("pinned", 4)] {
                write(&st.open(name, true).await.unwrap(), fill).await;
            }
            assert_eq!(first_byte(&evicted).await.unwrap(), 1, "the removed file, not its successor");
            assert_eq!(first_byte(&pinned).await.unwrap(), 2, "the removed file, not its successor");
            evicted.sync().await.unwrap();
            assert_eq!(cache.stats().open, 0, "a pinned descriptor is not the cache's");
            assert_eq!(mem.open_handles(), 2);
            drop((evicted, pinned));
            assert_eq!(mem.open_handles(), 0);
        });
    }

    /// A rename moves a file under another name: handles of either file keep their own file
    /// (through a cache of one, so at least one was evicted), and opening the target name
    /// afterwards reaches the renamed file.
    #[test]
    fn handles_keep_their_files_across_a_rename() {
        block_on(async {
            let (_, st, _) = storage(1);
            let old = st.open("seg", true).await.unwrap();
            write(&old, 1).await;
            let new = st.open("seg.new", true).await.unwrap();
            write(&new, 2).await;
            st.rename("seg.new", "seg").await.unwrap();
            assert_eq!(first_byte(&old).await.unwrap(), 1, "the replaced file");
            assert_eq!(first_byte(&new).await.unwrap(), 2, "the renamed file");
            assert_eq!(first_byte(&st.open("seg", false).await.unwrap()).await.unwrap(), 2);
            assert!(st.open("seg.new", false).await.is_err());
        });
    }

    /// Closing the last handle closes the descriptor; closing one of two leaves it to the other.
    #[test]
    fn close_closes_the_last_handle_only() {
        block_on(async {
            let (mem, st, _) = storage(4);
            let a = st.open("a", true).await.unwrap();
            let again = st.open("a", false).await.unwrap();
            a.close().await.unwrap();
            write(&again, 5).await;
            assert_eq!(mem.open_handles(), 1);
            again.close().await.unwrap();
            assert_eq!(mem.open_handles(), 0);
        });
    }

    /// With every descriptor in use by an operation in flight, another file's operation waits
    /// for one to come back instead of opening past the bound, then goes on.
    #[test]
    fn an_open_past_the_bound_waits_for_an_operation_in_flight() {
        use futures::FutureExt;
        block_on(async {
            let (mem, st, _) = storage(1);
            let a = st.open("a", true).await.unwrap();
            write(&a, 1).await;
            let b = st.open("b", true).await.unwrap();
            write(&b, 2).await;
            mem.faults().hold_io_in.set(1);
            let mut sync_a = std::pin::pin!(a.sync().fuse());
            let mut read_b = std::pin::pin!(first_byte(&b).fuse());
            futures::select_biased! {
                _ = sync_a.as_mut() => panic!("the sync of a is held"),
                _ = read_b.as_mut() => panic!("b has no descriptor while a's sync holds the only one"),
                default => {}
            }
            assert!(mem.faults().held.get());
            assert_eq!(mem.open_handles(), 1);
            mem.faults().release_held();
            let (synced, read) = futures::join!(sync_a, read_b);
            synced.unwrap();
            assert_eq!(read.unwrap(), 2);
            assert_eq!(mem.open_handles(), 1);
        });
    }
    /// Two operations wait for the one descriptor while a third holds it. The first to get it
    /// leaves its descriptor idle in the cache when done: the second must close it and go on,
    /// not wait for a permit that nothing will give back.
    #[test]
    fn a_second_waiter_is_not_left_behind_an_idle_descriptor() {
        use std::task::Poll;
        block_on(async {
            let (mem, st, _) = storage(1);
            let mut files = Vec::new();
            for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
                let file = st.open(name, true).await.unwrap();
                write(&file, i as u8).await;
                files.push(file);
            }
            let [a, b, c] = &files[..] else { unreachable!() };
            first_byte(a).await.unwrap();
            mem.faults().hold_io_in.set(1);
            let mut sync_a = std::pin::pin!(a.sync());
            let mut read_b = std::pin::pin!(first_byte(b));
            let mut read_c = std::pin::pin!(first_byte(c));
            assert!(futures::poll!(sync_a.as_mut()).is_pending());
            assert!(futures::poll!(read_b.as_mut()).is_pending());
            assert!(futures::poll!(read_c.as_mut()).is_pending());
            mem.faults().release_held();
            let (synced, read) = futures::join!(sync_a, read_b);
            synced.unwrap();
            assert_eq!(read.unwrap(), 1);
            // Nothing else runs: c must get b's idle descriptor by itself.
            for _ in 0..16 {
                if let Poll::Ready(read) = futures::poll!(read_c.as_mut()) {
                    assert_eq!(read.unwrap(), 2);
                    assert_eq!(mem.open_handles(), 1);
                    return;
                }
            }
            panic!("c waits for ever for the descriptor that b left idle");
        });
    }

    /// Once the directory is forgotten (to be deleted whole), a handle whose descriptor was open
    /// keeps its file and one whose descriptor was closed fails, even when a file of the same
    /// name appears.
    #[test]
    fn a_forgotten_directory_is_never_reopened_by_name() {
        block_on(async {
            let (mem, st, cache) = storage(1);
            let closed = st.open("closed", true).await.unwrap();
            write(&closed, 1).await;
            let open = st.open("open", true).await.unwrap();
            write(&open, 2).await;
            st.forget_names();
            assert_eq!(cache.stats().open, 0);
            mem.remove_file("closed");
            mem.remove_file("open");
            let newer = CachedStorage::new(mem.clone(), cache.clone());
            for (name, fill) in [("closed", 3), ("open", 4)] {
                write(&newer.open(name, true).await.unwrap(), fill).await;
            }
            assert_eq!(first_byte(&closed).await.unwrap_err().kind(), io::ErrorKind::NotFound);
            assert_eq!(first_byte(&open).await.unwrap(), 2, "the old file, not its successor");
        });
    }
}

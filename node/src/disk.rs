//! Where a shard's partitions and the topic table live: a directory of partition directories on
//! a real filesystem ([`DataDir`]), or memory that a test can crash ([`MemDisk`]).

use crate::metadata::TopicTable;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use weir_log::storage::Storage;
use weir_log::storage::cached::{CachedStorage, FdCache};
use weir_log::storage::dma::{DmaAllocator, DmaStorage, DmaStorageFile};
use weir_log::storage::mem::{CrashMode, MemFile, MemStorage};

/// The partitions' storage of one shard. Used from the shard's thread only.
#[allow(async_fn_in_trait)]
pub trait Disk: std::fmt::Debug + 'static {
    type Storage: Storage + Clone + 'static;

    /// The storage of one partition, created empty if it does not exist.
    async fn partition(&self, topic: &str, partition: u32) -> io::Result<Self::Storage>;
    /// Deletes a partition's storage and everything in it.
    async fn remove_partition(&self, topic: &str, partition: u32) -> io::Result<()>;
    /// Makes the storage of partition `partition` of `topic` belong to the cluster-wide
    /// partition `owner`: storage marked for another owner (a topic of the same name deleted
    /// while this node was away, then created again) is deleted first, and unmarked storage is
    /// marked (durably). Returns whether another owner's storage was deleted.
    async fn claim_partition(&self, topic: &str, partition: u32, owner: u32) -> io::Result<bool>;
    /// Replaces the topic table so that a crash leaves either the old or the new one.
    async fn save_topics(&self, table: &TopicTable) -> io::Result<()>;
    /// A printable place of a partition, for messages.
    fn describe(&self, topic: &str, partition: u32) -> String;
    /// Bytes an unprivileged writer may still use on the partitions' device.
    async fn free_bytes(&self) -> io::Result<u64>;
    /// Closes the partition files held open, at shutdown (a later use reopens them).
    async fn close_files(&self);
}

/// The node's data dir: `partitions/<topic>-<partition>/` on direct I/O, `topics.json` beside.
/// One per shard: its partitions' files share the shard's descriptor cache.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
    cache: FdCache<DmaStorageFile>,
}

impl DataDir {
    /// The data dir at `root`, its shard holding at most `open_files_max` partition files open;
    /// `allocator` (the shard's probe file) gives buffers to files whose descriptor is closed.
    pub fn new(root: PathBuf, open_files_max: usize, allocator: DmaAllocator) -> Self {
        let cache = FdCache::new(open_files_max, Rc::new(move |len| allocator.alloc(len)));
        Self { root, cache }
    }

    fn partition_dir(&self, topic: &str, partition: u32) -> PathBuf {
        self.root.join("partitions").join(format!("{topic}-{partition}"))
    }
}

/// The file in a partition's directory naming the cluster-wide partition it belongs to.
pub const OWNER_FILE: &str = "partition.id";

/// See [`Disk::claim_partition`]: the directory's owner file says whose it is.
fn claim_dir(dir: &std::path::Path, owner: u32) -> io::Result<bool> {
    let file = dir.join(OWNER_FILE);
    let other = match std::fs::read_to_string(&file) {
        Ok(text) => text.trim().parse::<u32>().ok() != Some(owner),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    if other {
        std::fs::remove_dir_all(dir)?;
    } else if file.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{OWNER_FILE}.tmp"));
    std::fs::write(&tmp, owner.to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &file)?;
    std::fs::File::open(dir)?.sync_all()?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(other)
}

impl Disk for DataDir {
    type Storage = CachedStorage<DmaStorage>;

    async fn partition(&self, topic: &str, partition: u32) -> io::Result<Self::Storage> {
        let dir = self.partition_dir(topic, partition);
        let storage = glommio::executor().spawn_blocking(move || DmaStorage::new(dir)).await?;
        Ok(CachedStorage::new(storage, self.cache.clone()))
    }

    async fn remove_partition(&self, topic: &str, partition: u32) -> io::Result<()> {
        let dir = self.partition_dir(topic, partition);
        glommio::executor().spawn_blocking(move || std::fs::remove_dir_all(dir)).await
    }

    async fn claim_partition(&self, topic: &str, partition: u32, owner: u32) -> io::Result<bool> {
        let dir = self.partition_dir(topic, partition);
        glommio::executor().spawn_blocking(move || claim_dir(&dir, owner)).await
    }

    async fn save_topics(&self, table: &TopicTable) -> io::Result<()> {
        let (table, dir) = (table.clone(), self.root.clone());
        glommio::executor().spawn_blocking(move || table.save(&dir)).await
    }

    fn describe(&self, topic: &str, partition: u32) -> String {
        self.partition_dir(topic, partition).display().to_string()
    }

    async fn free_bytes(&self) -> io::Result<u64> {
        let root = self.root.clone();
        glommio::executor().spawn_blocking(move || free_bytes(&root)).await
    }

    async fn close_files(&self) {
        self.cache.close_all().await;
    }
}

/// Free bytes for unprivileged writers on the filesystem holding `path` (statvfs).
fn free_bytes(path: &std::path::Path) -> io::Result<u64> {
    space_bytes(path).map(|(_, free)| free)
}

/// The size of the filesystem holding `path` and its bytes free for unprivileged writers
/// (statvfs): `(total, usable)`. A blocking call: run it off the shard's thread.
pub fn space_bytes(path: &std::path::Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` points at memory statvfs fills on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // The fields' types differ by platform (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    Ok((st.f_blocks as u64 * st.f_frsize as u64, st.f_bavail as u64 * st.f_frsize as u64))
}

/// Partitions in memory ([`MemStorage`], with its faults), shared by every shard of a simulated
/// node: cloning shares it. A crash of the node is [`MemDisk::crash`]. Its descriptor cache is
/// shared by the shards too, and small by default, so simulations close and reopen files all
/// the time.
#[derive(Debug, Clone)]
pub struct MemDisk {
    inner: Rc<RefCell<MemDiskState>>,
    cache: FdCache<MemFile>,
}

/// Files a [`MemDisk`] holds open by default.
pub const MEM_OPEN_FILES_MAX: usize = 8;

impl Default for MemDisk {
    fn default() -> Self {
        Self::with_open_files_max(MEM_OPEN_FILES_MAX)
    }
}

#[derive(Debug, Default)]
struct MemDiskState {
    partitions: BTreeMap<(String, u32), MemStorage>,
    /// Each partition's owner, as `claim_partition` marked it.
    owners: BTreeMap<(String, u32), u32>,
    topics: TopicTable,
}

impl MemDisk {
    pub fn with_open_files_max(open_files_max: usize) -> Self {
        Self { inner: Rc::default(), cache: MemStorage::fd_cache(open_files_max) }
    }

    /// Loses or tears what was not synced in every partition, as a power cut would.
    pub fn crash(&self, mode: impl Fn(u64) -> CrashMode) {
        for (i, storage) in self.inner.borrow().partitions.values().enumerate() {
            storage.crash(mode(i as u64));
        }
    }

    /// The topic table last saved.
    pub fn topics(&self) -> TopicTable {
        self.inner.borrow().topics.clone()
    }

    /// The storage of a partition, if it was ever created: for faults and inspection.
    pub fn storage(&self, topic: &str, partition: u32) -> Option<MemStorage> {
        self.inner.borrow().partitions.get(&(topic.to_owned(), partition)).cloned()
    }
}

impl Disk for MemDisk {
    type Storage = CachedStorage<MemStorage>;

    async fn partition(&self, topic: &str, partition: u32) -> io::Result<Self::Storage> {
        let mut inner = self.inner.borrow_mut();
        let storage = inner.partitions.entry((topic.to_owned(), partition)).or_default().clone();
        Ok(CachedStorage::new(storage, self.cache.clone()))
    }

    async fn remove_partition(&self, topic: &str, partition: u32) -> io::Result<()> {
        self.inner.borrow_mut().partitions.remove(&(topic.to_owned(), partition));
        Ok(())
    }

    async fn claim_partition(&self, topic: &str, partition: u32, owner: u32) -> io::Result<bool> {
        let key = (topic.to_owned(), partition);
        let mut inner = self.inner.borrow_mut();
        let other = inner.owners.get(&key).is_some_and(|&o| o != owner);
        if other {
            inner.partitions.remove(&key);
        }
        inner.owners.insert(key, owner);
        Ok(other)
    }

    async fn save_topics(&self, table: &TopicTable) -> io::Result<()> {
        self.inner.borrow_mut().topics = table.clone();
        Ok(())
    }

    fn describe(&self, topic: &str, partition: u32) -> String {
        format!("memory:{topic}-{partition}")
    }

    /// Memory is never full: the free-space floor is tested on real filesystems.
    async fn free_bytes(&self) -> io::Result<u64> {
        Ok(u64::MAX)
    }

    async fn close_files(&self) {
        self.cache.close_all().await;
    }
}

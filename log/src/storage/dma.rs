//! Storage on glommio `DmaFile`: O_DIRECT reads and writes through io_uring.

use super::{IoBuf, Storage, StorageFile};
use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

impl IoBuf for DmaBuffer {}

/// The I/O error a glommio operation failed with (its errno kept), or one carrying its text.
pub fn to_io(e: glommio::GlommioError<()>) -> io::Error {
    match e {
        glommio::GlommioError::IoError(e) => e,
        glommio::GlommioError::EnhancedIoError { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

/// A data directory on a real filesystem. Must be used inside a glommio executor.
#[derive(Debug, Clone)]
pub struct DmaStorage {
    dir: PathBuf,
}

/// The file [`DmaStorage::probe`] opens: 4 KiB, kept in the data dir for good, so a node whose
/// disk is full still starts (it writes the file once, at its first start).
pub const PROBE_FILE: &str = ".dma-probe";
/// Prefix of the per-thread probe files earlier versions wrote (and could leave behind).
const OLD_PROBE_PREFIX: &str = ".dma-probe-";
const PROBE_BYTES: usize = 4096;

impl DmaStorage {
    /// Opens (creating it if needed) the directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Works around a glommio 0.9.0 bug: the first `DmaFile` opened on a device probes whether
    /// the device supports polled I/O with a read at offset 0 and caches the answer per device.
    /// On an empty file that read succeeds wrongly, and every later read on the device then fails
    /// with EOPNOTSUPP (os error 95). Opening a file that holds 4 KiB first makes the probe
    /// answer truthfully. Call once per executor before opening any segment. The file
    /// ([`PROBE_FILE`]) is written once (under a name of its own, then renamed: executors of one
    /// process probe at once) and kept, so a restart on a full disk needs no space for it.
    ///
    /// The probe file stays open as the executor's [`DmaAllocator`]; drop or close it when no
    /// cached file needs it.
    pub async fn probe(dir: &Path) -> io::Result<DmaAllocator> {
        let dir = dir.to_owned();
        let path = off_shard(move || ensure_probe_file(&dir)).await?;
        let file = DmaFile::open(&path).await.map_err(to_io)?;
        let read = file.read_at_aligned(0, PROBE_BYTES).await.map_err(to_io)?;
        if read.len() != PROBE_BYTES {
            file.close().await.map_err(to_io)?;
            return Err(io::Error::other("direct-I/O probe read came back short"));
        }
        Ok(DmaAllocator { file })
    }
}

/// Allocates DMA buffers from the executor's pool without a segment file open: glommio hands
/// them out through any file of the executor, and a [`CachedFile`](super::cached::CachedFile)
/// whose descriptor the cache closed still needs buffers. Holds the probe file open.
#[derive(Debug)]
pub struct DmaAllocator {
    file: DmaFile,
}

impl DmaAllocator {
    pub fn alloc(&self, len: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(len)
    }

    pub async fn close(self) -> io::Result<()> {
        self.file.close().await.map_err(to_io)
    }
}

/// The probe file in `dir`, written if it is missing or short. Removes probe files that earlier
/// versions left behind.
fn ensure_probe_file(dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(OLD_PROBE_PREFIX)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let path = dir.join(PROBE_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == PROBE_BYTES as u64) {
        return Ok(path);
    }
    let thread =
        format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let tmp = dir.join(format!("{PROBE_FILE}.tmp.{}.{thread}", std::process::id()));
    let written = std::fs::write(&tmp, vec![0u8; PROBE_BYTES]).and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        // A full disk: leave nothing behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

/// A file opened with O_DIRECT.
#[derive(Debug)]
pub struct DmaStorageFile {
    file: DmaFile,
}

impl StorageFile for DmaStorageFile {
    type Buf = DmaBuffer;
    type ReadBuf = ReadResult;

    fn alignment(&self) -> usize {
        // At least 4 KiB even where the device takes 512, so positions match the page size and
        // tail-block rewrites stay within one filesystem block.
        (self.file.alignment() as usize).max(4096)
    }

    fn alloc(&self, len: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(len)
    }

    async fn write_at(&self, buf: Rc<DmaBuffer>, pos: u64) -> io::Result<usize> {
        self.file.write_rc_at(buf, pos).await.map_err(to_io)
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<ReadResult> {
        self.file.read_at_aligned(pos, len).await.map_err(to_io)
    }

    async fn sync(&self) -> io::Result<()> {
        self.file.fdatasync().await.map_err(to_io)
    }

    async fn size(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(to_io)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.truncate(len).await.map_err(to_io)
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        self.file.pre_allocate(len, false).await.map_err(to_io)
    }

    async fn close(self) -> io::Result<()> {
        self.file.close().await.map_err(to_io)
    }
}

/// Runs a blocking file-system call (unlink, readdir, a directory fsync) on the executor's
/// blocking pool: io_uring has no directory fsync, and a shard's thread must never stall in one
/// while its other partitions and connections wait.
async fn off_shard<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    glommio::executor().spawn_blocking(f).await
}

impl Storage for DmaStorage {
    type File = DmaStorageFile;

    async fn open(&self, name: &str, create: bool) -> io::Result<DmaStorageFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(self.dir.join(name))
            .await
            .map_err(to_io)?;
        Ok(DmaStorageFile { file })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        let path = self.dir.join(name);
        off_shard(move || std::fs::remove_file(path)).await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (self.dir.join(from), self.dir.join(to));
        off_shard(move || std::fs::rename(from, to)).await
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        let dir = self.dir.clone();
        off_shard(move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                if let Some(name) = entry?.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        })
        .await
    }

    async fn sync_dir(&self) -> io::Result<()> {
        let dir = self.dir.clone();
        off_shard(move || std::fs::File::open(&dir)?.sync_all()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unlink, rename, readdir and the directory fsync run on the blocking pool, not the shard's thread.
    #[test]
    fn blocking_file_system_calls_leave_the_shard_thread() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let shard = std::thread::current().id();
                let ran_on = off_shard(|| Ok(std::thread::current().id())).await.unwrap();
                assert_ne!(ran_on, shard);
                let dir = tempfile::tempdir().unwrap();
                let storage = DmaStorage::new(dir.path()).unwrap();
                std::fs::write(dir.path().join("a"), b"x").unwrap();
                assert_eq!(storage.list().await.unwrap(), vec!["a".to_owned()]);
                std::fs::write(dir.path().join("b"), b"y").unwrap();
                storage.rename("b", "a").await.unwrap();
                assert_eq!(storage.list().await.unwrap(), vec!["a".to_owned()]);
                assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"y");
                storage.remove("a").await.unwrap();
                storage.sync_dir().await.unwrap();
                assert!(storage.list().await.unwrap().is_empty());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

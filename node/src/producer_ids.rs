//! Producer ids for idempotent producers (InitProducerId): unique in the cluster, never handed
//! out twice, across restarts too. They come in blocks of [`PRODUCER_ID_BLOCK`]: in a cluster,
//! from the controller, which records each block in the replicated metadata before handing it
//! out; on a node without peers, from the file `producer-ids` in the data dir, whose new end is
//! durable before any id of the block is handed out. A restart loses what was left of its block.
//!
//! One per node, shared by its shards (`Send + Sync`); a shard waits on the lock only when it
//! takes an id, never on the data path.

use crate::control_link::ControlLink;
use crate::service::types::Failure;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use weir_net::ErrorCode;

/// Ids taken from the source at once.
pub const PRODUCER_ID_BLOCK: u32 = 1000;

/// Where a node alone starts its ids: far from the controller's, which start at 0, so that a
/// data dir moved from a node alone into a cluster holds no producer a new one could be taken
/// for.
pub const FILE_IDS_START: i64 = 1 << 48;

/// Where blocks come from.
enum Source {
    /// A node without peers: the file holding the next id never handed out.
    File(PathBuf),
    Cluster(Arc<dyn ControlLink>),
}

/// See the module documentation.
pub struct ProducerIds {
    source: Source,
    block: futures::lock::Mutex<Range<i64>>,
}

impl std::fmt::Debug for ProducerIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerIds").finish_non_exhaustive()
    }
}

impl ProducerIds {
    /// Ids from the cluster's controller through `link`, or without one from `data_dir`.
    pub fn new(data_dir: PathBuf, link: Option<Arc<dyn ControlLink>>) -> Self {
        let source = match link {
            Some(link) => Source::Cluster(link),
            None => Source::File(data_dir.join("producer-ids")),
        };
        Self { source, block: futures::lock::Mutex::new(0..0) }
    }

    /// A producer id never handed out before.
    pub async fn next(&self) -> Result<i64, Failure> {
        let mut block = self.block.lock().await;
        if block.is_empty() {
            *block = self.take_block().await?;
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }

    async fn take_block(&self) -> Result<Range<i64>, Failure> {
        match &self.source {
            Source::Cluster(link) => link.allocate_producer_ids(PRODUCER_ID_BLOCK).await.map_err(|e| {
                Failure::new(ErrorCode::Unavailable, format!("no producer id from the controller: {e}"))
            }),
            Source::File(path) => take_block_from_file(path).map_err(|e| {
                Failure::new(ErrorCode::StorageError, format!("producer ids in {}: {e}", path.display()))
            }),
        }
    }
}

/// Reads the next free id from `path` (at least [`FILE_IDS_START`]), records the end of a new block
/// durably (a new file renamed over it, then the directory synced), and returns the block.
fn take_block_from_file(path: &std::path::Path) -> std::io::Result<Range<i64>> {
    use std::io::Write;
    let first = match std::fs::read_to_string(path) {
        Ok(text) => {
            text.trim().parse::<i64>().map_err(|e| std::io::Error::other(format!("{text:?}: {e}")))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FILE_IDS_START,
        Err(e) => return Err(e),
    };
    let first = first.max(FILE_IDS_START);
    let end = first + i64::from(PRODUCER_ID_BLOCK);
    let fresh = path.with_extension("new");
    let mut file = std::fs::File::create(&fresh)?;
    file.write_all(end.to_string().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&fresh, path)?;
    std::fs::File::open(path.parent().expect("a file in the data dir"))?.sync_all()?;
    Ok(first..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_the_file_are_never_handed_out_twice_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::new(dir.path().into(), None);
        let first: Vec<i64> = (0..1500).map(|_| futures::executor::block_on(ids.next()).unwrap()).collect();
        assert_eq!(first, (FILE_IDS_START..FILE_IDS_START + 1500).collect::<Vec<_>>());
        // A restart starts after the last block taken, whatever was left of it.
        let again = ProducerIds::new(dir.path().into(), None);
        assert_eq!(futures::executor::block_on(again.next()).unwrap(), FILE_IDS_START + 2000);
    }
}

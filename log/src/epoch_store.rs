//! Where a partition's leader-epoch cache lives on disk: two slot files written in turn.
//!
//! The cache is not replaced by a rename (the format predates [`Storage::rename`], and two
//! slots need no directory sync per change). Instead each change writes the whole cache, with a sequence number one higher than the last, into the slot
//! that does not hold the newest copy (`epochs.a` for even numbers, `epochs.b` for odd ones), and
//! syncs it. A write torn by a crash damages only that slot; the other still holds the previous
//! cache. Opening takes the intact slot with the higher sequence number. Owned by the partition
//! log, on its shard.

use crate::epoch_cache::EpochCache;
use crate::error::{LogError, Result};
use crate::log::{read_whole, write_whole};
use crate::storage::Storage;
use std::rc::Rc;

/// The slot files, by sequence number parity.
pub const EPOCH_SLOT_NAMES: [&str; 2] = ["epochs.a", "epochs.b"];

/// The cache and the files that keep it.
#[derive(Debug)]
pub(crate) struct EpochStore<F> {
    pub(crate) cache: EpochCache,
    /// Sequence number of the newest stored copy; 0 if none.
    sequence: u64,
    slots: [Rc<F>; 2],
}

/// What opening the store found.
pub(crate) struct Opened<F> {
    pub(crate) store: EpochStore<F>,
    /// A slot held bytes but none held an intact cache: it starts empty.
    pub(crate) lost: bool,
}

impl<F: crate::storage::StorageFile> EpochStore<F> {
    /// Opens (creating) both slots and loads the newest intact copy.
    pub(crate) async fn open<S: Storage<File = F>>(storage: &S) -> Result<Opened<F>> {
        let mut slots = Vec::with_capacity(2);
        let mut best: Option<(u64, EpochCache)> = None;
        let mut any_bytes = false;
        for name in EPOCH_SLOT_NAMES {
            let file = storage.open(name, true).await.map_err(|e| LogError::io("open", name, e))?;
            let bytes = read_whole(&file, name).await?;
            any_bytes |= !bytes.is_empty();
            if let Some((seq, cache)) = EpochCache::decode(&bytes)
                && best.as_ref().is_none_or(|(s, _)| seq > *s)
            {
                best = Some((seq, cache));
            }
            slots.push(Rc::new(file));
        }
        let lost = best.is_none() && any_bytes;
        if lost {
            tracing::warn!("no intact leader-epoch cache; starting with an empty one");
        }
        let (sequence, cache) = best.unwrap_or_default();
        let slots: [Rc<F>; 2] = slots.try_into().expect("two slots");
        Ok(Opened { store: Self { cache, sequence, slots }, lost })
    }

    /// Writes the cache as it is now into the older slot and syncs it.
    pub(crate) async fn persist(&mut self) -> Result<()> {
        let next = self.sequence + 1;
        let slot = (next % 2) as usize;
        write_whole(&self.slots[slot], EPOCH_SLOT_NAMES[slot], &self.cache.encode(next)).await?;
        self.sequence = next;
        Ok(())
    }
}

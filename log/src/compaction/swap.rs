//! Swapping a cleaned segment in, so that a crash at any point leaves either the whole old
//! segment (data and index) or the whole new one, never a mix.
//!
//! The cleaner writes `<base>.log.cleaned` (created, then the directory synced, before any
//! other file of the swap), then `<base>.index.cleaned` with a sealed footer that matches it,
//! syncs both and the directory. The swap then renames the data file over `<base>.log`, which
//! commits it, syncs the directory, renames the index over `<base>.index` and syncs the
//! directory again. At open ([`recover`]), a `.log.cleaned` means the swap never committed: both
//! `.cleaned` files are removed and the old segment stands. A `.index.cleaned` alone means the
//! data rename committed and the index rename did not: it is renamed into place, so the new
//! data gets its own index. See docs/format.md for the file states.

use crate::error::{LogError, Result};
use crate::storage::Storage;

/// Name of a segment's cleaned data file before it is swapped in.
pub fn cleaned_data_name(base: u64) -> String {
    format!("{base:020}.log.cleaned")
}

/// Name of a segment's cleaned index file before it is swapped in.
pub fn cleaned_index_name(base: u64) -> String {
    format!("{base:020}.index.cleaned")
}

fn parse(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

async fn remove_if_there<S: Storage>(storage: &S, name: &str) -> Result<()> {
    match storage.remove(name).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LogError::io("remove", name, e)),
        _ => Ok(()),
    }
}

async fn sync_dir<S: Storage>(storage: &S) -> Result<()> {
    storage.sync_dir().await.map_err(|e| LogError::io("sync", "data dir", e))
}

/// Removes a cleaning's files that will not be swapped in: the index first, durably, so that a
/// crash halfway never leaves an index that [`recover`] would take for a committed swap's.
pub async fn discard<S: Storage>(storage: &S, base: u64) -> Result<()> {
    remove_if_there(storage, &cleaned_index_name(base)).await?;
    sync_dir(storage).await?;
    remove_if_there(storage, &cleaned_data_name(base)).await?;
    sync_dir(storage).await
}

/// Swaps a segment's cleaned files in; see the module documentation. Each rename is durable
/// before the next step, so a crash leaves one of the states [`recover`] resolves.
pub async fn swap<S: Storage>(storage: &S, base: u64) -> Result<()> {
    let (data, index) = (cleaned_data_name(base), cleaned_index_name(base));
    let target = crate::segment::data_file_name(base);
    storage.rename(&data, &target).await.map_err(|e| LogError::io("rename", data, e))?;
    sync_dir(storage).await?;
    let target = crate::segment::index_file_name(base);
    storage.rename(&index, &target).await.map_err(|e| LogError::io("rename", index, e))?;
    sync_dir(storage).await
}

/// Resolves cleanings a crash interrupted, before the segments are opened: rolls an uncommitted
/// one back and a committed one forward. Returns whether the directory changed.
pub async fn recover<S: Storage>(storage: &S, names: &[String]) -> Result<bool> {
    let uncommitted: Vec<u64> = names.iter().filter_map(|n| parse(n, ".log.cleaned")).collect();
    for &base in &uncommitted {
        tracing::info!(segment = base, "an interrupted cleaning is rolled back");
        discard(storage, base).await?;
    }
    let mut changed = !uncommitted.is_empty();
    for base in names.iter().filter_map(|n| parse(n, ".index.cleaned")) {
        if uncommitted.contains(&base) {
            continue;
        }
        tracing::info!(segment = base, "an interrupted cleaning is completed");
        let (from, to) = (cleaned_index_name(base), crate::segment::index_file_name(base));
        storage.rename(&from, &to).await.map_err(|e| LogError::io("rename", from, e))?;
        sync_dir(storage).await?;
        changed = true;
    }
    Ok(changed)
}

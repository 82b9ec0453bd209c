//! Rewriting one sealed segment without the records a cleaning drops.

use super::CleanSegment;
use super::chunk::read_chunk;
use super::offset_map::OffsetMap;
use super::swap::{cleaned_data_name, cleaned_index_name};
use crate::appender::{Appender, AppenderConfig};
use crate::batch::{BatchView, retain};
use crate::error::{LogError, Result};
use crate::index::{SealedInfo, SegmentIndex};
use crate::storage::{Storage, StorageFile};
use std::rc::Rc;

const CLEANED_APPENDER: AppenderConfig =
    AppenderConfig { write_buffer_bytes: 256 << 10, write_behind_buffers_max: 2, preallocate_bytes: 0 };

/// What decides whether a segment's tombstones may go.
#[derive(Debug, Clone, Copy)]
pub struct Tombstones {
    /// `delete_retention_ms` has passed since the segment's last append.
    pub expired: bool,
    /// Records below this were mapped by earlier passes.
    pub map_from: u64,
}

/// Which records of a batch stay. A record goes when a later record with the same key is in the
/// map (superseded), or when it is an expired tombstone (null value) known to be its key's
/// latest record: mapped by this pass, or by an earlier one (below `map_from`), whose rewrite
/// removed the key's older records. A tombstone the map does not cover stays: older records of
/// its key may still be there, and would come back without it. Records without a key always
/// stay: nothing supersedes them. The last batch of a segment (`last_in_segment`) keeps at
/// least its last record, so the segment still ends at its end offset: a scan of it then finds
/// its whole offset range, and a read of any of its offsets finds a batch in it.
pub fn keep_flags(view: &BatchView<'_>, map: &OffsetMap, t: Tombstones, last_in_segment: bool) -> Vec<bool> {
    let mut keep: Vec<bool> = view
        .records()
        .map(|r| match r.key {
            None => true,
            Some(key) if map.latest(key).is_some_and(|latest| latest > r.offset) => false,
            Some(key) => {
                let known_latest = r.offset < t.map_from || map.latest(key) == Some(r.offset);
                r.value.is_some() || !t.expired || !known_latest
            }
        })
        .collect();
    if last_in_segment && !keep.contains(&true) {
        *keep.last_mut().expect("a batch has records") = true;
    }
    keep
}

/// The cleaning of one segment: reads it chunk by chunk and writes what stays to
/// `<base>.log.cleaned`, building the new index.
#[derive(Debug)]
pub struct Rewrite<F: StorageFile> {
    out: Appender<F>,
    index: SegmentIndex,
    /// Read position in the old segment.
    pos: u64,
    /// Offset after the last batch written: a batch starting above it must be pinned.
    expected: u64,
    /// Something was dropped or pinned: the new segment differs from the old.
    changed: bool,
}

/// A segment rewritten and synced, with its index, ready for
/// [`crate::PartitionLog::complete_clean`].
#[derive(Debug)]
pub struct CleanedSegment<F> {
    pub base: u64,
    /// The old segment as planned: the swap is dropped unless the log still holds exactly it.
    pub(crate) old_file: Rc<F>,
    pub(crate) old_size: u64,
    pub next_offset: u64,
    /// Bytes of the new segment's data.
    pub size: u64,
    pub(crate) index: SegmentIndex,
    pub(crate) max_append_ms: u64,
}

impl<F: StorageFile> Rewrite<F> {
    /// Creates the cleaned data file, durably in the directory before anything else of the
    /// cleaning (see [`super::swap`]).
    pub async fn start<S: Storage<File = F>>(
        storage: &S,
        seg: &CleanSegment<F>,
        interval: u64,
    ) -> Result<Self> {
        let name = cleaned_data_name(seg.base);
        let file = Rc::new(storage.open(&name, true).await.map_err(|e| LogError::io("create", &name, e))?);
        file.truncate(0).await.map_err(|e| LogError::io("truncate", &name, e))?;
        storage.sync_dir().await.map_err(|e| LogError::io("sync", "data dir", e))?;
        let out = Appender::open(file, name, 0, CLEANED_APPENDER).await?;
        Ok(Self { out, index: SegmentIndex::new(interval), pos: 0, expected: seg.base, changed: false })
    }

    /// Rewrites the next chunk of about `budget_bytes`. Returns the bytes read and written.
    pub async fn step(
        &mut self,
        seg: &CleanSegment<F>,
        map: &OffsetMap,
        tombstones: Tombstones,
        budget_bytes: u64,
    ) -> Result<(u64, u64)> {
        let name = crate::segment::data_file_name(seg.base);
        let chunk = read_chunk(&*seg.file, &name, seg.base, (self.pos, seg.size), budget_bytes).await?;
        let before = self.out.end();
        for &pos in &chunk.batches {
            let view = chunk.batch(pos)?;
            let h = *view.header();
            let last = pos + u64::from(h.batch_len) == seg.size;
            let keep = keep_flags(&view, map, tombstones, last);
            // A batch that keeps every record and follows its predecessor is copied as it is;
            // any other is rebuilt (pinned), or dropped when none of its records stays.
            let rebuilt = if !keep.contains(&false) && h.may_start_at(self.expected) {
                None
            } else {
                self.changed = true;
                match retain(&view, &keep) {
                    Some(b) => Some(b),
                    None => continue,
                }
            };
            let bytes = rebuilt.as_ref().map_or(view.bytes(), |b| b.as_bytes());
            let v =
                BatchView::validate(bytes, u32::MAX as usize).expect("a batch the cleaner writes is valid");
            let vh = v.header();
            assert!(vh.may_start_at(self.expected), "batches of a cleaned segment follow each other");
            let at = self.out.end();
            self.out.append(bytes, |_| {}).await?;
            self.index.on_batch(
                (vh.base_offset - seg.base) as u32,
                at as u32,
                vh.batch_len,
                vh.max_timestamp,
            );
            self.expected = vh.next_offset();
        }
        self.pos = chunk.end_pos;
        Ok((chunk.read_bytes, self.out.end() - before))
    }

    /// Whether the whole old segment was read.
    pub fn read_all(&self, seg: &CleanSegment<F>) -> bool {
        self.pos >= seg.size
    }

    /// Finishes the new segment: data synced and cut to its length, the sealed index written
    /// and synced as `<base>.index.cleaned`, the directory synced. `None` (and the files
    /// removed) if nothing changed. Returns also the bytes written.
    pub async fn finish<S: Storage<File = F>>(
        mut self,
        storage: &S,
        seg: &CleanSegment<F>,
    ) -> Result<(Option<CleanedSegment<F>>, u64)> {
        assert!(self.read_all(seg), "a segment is finished once read whole");
        self.out.finish().await?;
        if !self.changed {
            drop(self.out);
            super::swap::discard(storage, seg.base).await?;
            return Ok((None, 0));
        }
        assert_eq!(self.expected, seg.next_offset, "a cleaned segment keeps its offset range");
        let size = self.out.end();
        let info = SealedInfo {
            next_offset: seg.next_offset,
            size,
            max_timestamp: self.index.max_timestamp(),
            max_append_ms: seg.max_append_ms,
        };
        let bytes = self.index.encode_sealed(info);
        let name = cleaned_index_name(seg.base);
        let file = Rc::new(storage.open(&name, true).await.map_err(|e| LogError::io("create", &name, e))?);
        crate::log::write_whole(&file, &name, &bytes).await?;
        storage.sync_dir().await.map_err(|e| LogError::io("sync", "data dir", e))?;
        let cleaned = CleanedSegment {
            base: seg.base,
            old_file: seg.file.clone(),
            old_size: seg.size,
            next_offset: seg.next_offset,
            size,
            index: self.index,
            max_append_ms: seg.max_append_ms,
        };
        Ok((Some(cleaned), bytes.len() as u64))
    }
}

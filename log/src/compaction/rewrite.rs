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

/// Batches that keep at least one record whatever supersedes them: each idempotent producer's
/// latest batch (its producer id and sequences are what a log rebuilt from its batches knows
/// of it, as Kafka's cleaner keeps them), by base offset.
pub type KeptBatches = std::collections::HashSet<u64>;

/// Which records of a batch stay, and which one of them stays only to hold its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    /// One flag per record: whether it stays.
    pub flags: Vec<bool>,
    /// A superseded value kept to hold its place: it stays as a tombstone of its key (its value
    /// dropped), or it would bring its key back once a later tombstone of the key goes.
    pub placeholder: Option<usize>,
}

/// Which records of a batch stay. A record goes when a later record with the same key is in the
/// map (superseded), or when it is an expired tombstone (null value) known to be its key's
/// latest record: mapped by this pass, or by an earlier one (below `map_from`), whose rewrite
/// removed the key's older records. A tombstone the map does not cover stays: older records of
/// its key may still be there, and would come back without it. Records without a key always
/// stay: nothing supersedes them. The last batch of a segment (`last_in_segment`) keeps at
/// least its last record, so the segment still ends at its end offset: a scan of it then finds
/// its whole offset range, and a read of any of its offsets finds a batch in it. That record,
/// if superseded, is kept without its value ([`Keep::placeholder`]): what it says of its key is
/// then never newer than what a later record says.
pub fn keep_flags(view: &BatchView<'_>, map: &OffsetMap, t: Tombstones, last_in_segment: bool) -> Keep {
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
    let mut placeholder = None;
    if last_in_segment && !keep.contains(&true) {
        let last = keep.len() - 1;
        keep[last] = true;
        // A tombstone already says nothing newer than a later record of its key.
        let value = view.records().last().expect("a batch has records").value;
        placeholder = value.is_some().then_some(last);
    }
    Keep { flags: keep, placeholder }
}

/// The cleaning of one segment: reads it chunk by chunk and writes what stays to
/// `<base>.log.cleaned`, building the new index. The file is created at the first batch that
/// changes, with the unchanged batches before it copied: a segment a pass leaves as it is costs
/// reads only.
#[derive(Debug)]
pub struct Rewrite<F: StorageFile> {
    /// The new segment's data, once something changed.
    out: Option<Appender<F>>,
    /// Bytes of the new segment so far (before `out` exists, the unchanged prefix).
    end: u64,
    index: SegmentIndex,
    /// Read position in the old segment.
    pos: u64,
    /// Offset after the last batch kept: a batch starting above it must be pinned.
    expected: u64,
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
    /// The log's cuts when the pass was planned: a log cut since may have lost the records
    /// whose keys the pass dropped older records for, so the swap is dropped.
    pub(crate) cuts: u64,
}

impl<F: StorageFile> Rewrite<F> {
    pub fn new(seg: &CleanSegment<F>, interval: u64) -> Self {
        Self { out: None, end: 0, index: SegmentIndex::new(interval), pos: 0, expected: seg.base }
    }

    /// Creates the cleaned data file, durably in the directory before anything else of the
    /// cleaning (see [`super::swap`]), and copies the unchanged prefix of the old segment into
    /// it. Returns the bytes read and written.
    async fn begin_output<S: Storage<File = F>>(
        &mut self,
        storage: &S,
        seg: &CleanSegment<F>,
    ) -> Result<u64> {
        let name = cleaned_data_name(seg.base);
        let file = Rc::new(storage.open(&name, true).await.map_err(|e| LogError::io("create", &name, e))?);
        file.truncate(0).await.map_err(|e| LogError::io("truncate", &name, e))?;
        storage.sync_dir().await.map_err(|e| LogError::io("sync", "data dir", e))?;
        let mut out = Appender::open(file, name, 0, CLEANED_APPENDER).await?;
        let old_name = crate::segment::data_file_name(seg.base);
        let mut at = 0;
        while at < self.end {
            let len = (self.end - at).min(CLEANED_APPENDER.write_buffer_bytes as u64);
            let buf = crate::segment::read(&*seg.file, &old_name, at, len as usize).await?;
            assert!(buf.len() as u64 >= len, "the old segment holds its batches");
            out.append(&buf[..len as usize], |_| {}).await?;
            at += len;
        }
        self.out = Some(out);
        Ok(self.end)
    }

    /// Rewrites the next chunk of about `budget_bytes`. Returns the bytes read and written.
    pub async fn step<S: Storage<File = F>>(
        &mut self,
        storage: &S,
        seg: &CleanSegment<F>,
        map: &OffsetMap,
        (tombstones, kept): (Tombstones, &KeptBatches),
        budget_bytes: u64,
    ) -> Result<(u64, u64)> {
        let name = crate::segment::data_file_name(seg.base);
        let chunk = read_chunk(&*seg.file, &name, seg.base, (self.pos, seg.size), budget_bytes).await?;
        let (mut read, mut written) = (chunk.read_bytes, 0);
        for &pos in &chunk.batches {
            let view = chunk.batch(pos)?;
            let h = *view.header();
            let last = pos + u64::from(h.batch_len) == seg.size || kept.contains(&h.base_offset);
            let keep = keep_flags(&view, map, tombstones, last);
            // A batch that keeps every record as it is and follows its predecessor is copied;
            // any other is rebuilt (pinned), or dropped when none of its records stays.
            let same =
                !keep.flags.contains(&false) && keep.placeholder.is_none() && h.may_start_at(self.expected);
            if !same && self.out.is_none() {
                let copied = self.begin_output(storage, seg).await?;
                (read, written) = (read + copied, written + copied);
            }
            let rebuilt = match same {
                true => None,
                false => match retain(&view, &keep.flags, keep.placeholder) {
                    Some(b) => Some(b),
                    None => continue,
                },
            };
            let bytes = rebuilt.as_ref().map_or(view.bytes(), |b| b.as_bytes());
            written += self.put(bytes, seg).await?;
        }
        self.pos = chunk.end_pos;
        Ok((read, written))
    }

    /// Adds a batch to the new segment: written if the output exists, else only indexed, as
    /// the old segment holds it at the same position. Returns the bytes written.
    async fn put(&mut self, bytes: &[u8], seg: &CleanSegment<F>) -> Result<u64> {
        let v = BatchView::validate(bytes, u32::MAX as usize).expect("a batch the cleaner writes is valid");
        let h = v.header();
        assert!(h.may_start_at(self.expected), "batches of a cleaned segment follow each other");
        let len = bytes.len() as u64;
        let written = match &mut self.out {
            Some(out) => {
                out.append(bytes, |_| {}).await?;
                assert_eq!(out.end(), self.end + len, "the output holds every batch kept");
                len
            }
            None => 0,
        };
        self.index.on_batch((h.base_offset - seg.base) as u32, self.end as u32, h.batch_len, h.max_timestamp);
        self.end += len;
        self.expected = h.next_offset();
        Ok(written)
    }

    /// Whether the whole old segment was read.
    pub fn read_all(&self, seg: &CleanSegment<F>) -> bool {
        self.pos >= seg.size
    }

    /// Finishes the new segment: data synced and cut to its length, the sealed index written
    /// and synced as `<base>.index.cleaned`, the directory synced. `None` if nothing changed.
    /// Returns also the bytes written.
    pub async fn finish<S: Storage<File = F>>(
        mut self,
        storage: &S,
        seg: &CleanSegment<F>,
    ) -> Result<(Option<CleanedSegment<F>>, u64)> {
        assert!(self.read_all(seg), "a segment is finished once read whole");
        assert_eq!(self.expected, seg.next_offset, "a cleaned segment keeps its offset range");
        let Some(mut out) = self.out.take() else {
            assert_eq!(self.end, seg.size, "an unchanged segment is kept whole");
            return Ok((None, 0));
        };
        out.finish().await?;
        let size = out.end();
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
            cuts: 0,
        };
        Ok((Some(cleaned), bytes.len() as u64))
    }
}

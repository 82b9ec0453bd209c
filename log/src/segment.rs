//! One segment: a file of batches back to back, named by its base offset, and its index.
//!
//! This file holds what a segment is (its bounds and index), how one is scanned at recovery, and
//! how a read of stored batches is planned and carried out. The partition log decides which
//! segment is active and when segments roll.

use crate::batch::header::BATCH_ALIGN;
use crate::batch::{BatchHeader, BatchView, HEADER_BYTES, check_frame_and_crc};
use crate::damage::{DamagedRange, TORN_SECTOR_BYTES, looks_torn};
use crate::error::{BatchError, LogError, Result};
use crate::index::SegmentIndex;
use crate::storage::{StorageFile, align_down, align_up};
use std::ops::Deref;
use std::rc::Rc;

/// File names: the base offset in 20 digits, so names sort in offset order.
pub fn data_file_name(base: u64) -> String {
    format!("{base:020}.log")
}

pub fn index_file_name(base: u64) -> String {
    format!("{base:020}.index")
}

/// Parses `NNNN.log` into its base offset.
pub fn parse_data_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// A segment's bounds and index; for the active segment the appender owns writes.
#[derive(Debug)]
pub struct Segment<F> {
    pub base: u64,
    /// Offset after the last batch.
    pub next_offset: u64,
    /// Bytes of batches in the file.
    pub size: u64,
    pub index: SegmentIndex,
    pub file: Rc<F>,
    /// Largest broker clock (ms since the epoch) at which a batch was appended to the segment:
    /// what retention by time goes by, since producer timestamps may be anything. Where it is
    /// not known (a segment recovered by a scan), the time the log was opened stands in for it,
    /// which may keep data longer than asked but never deletes it early.
    pub max_append_ms: u64,
}

/// How a recovery scan of a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Reached the end of the data: end of file or zeroed (never written) space.
    Clean,
    /// Found a batch that is torn or corrupt at the position where the scan stopped, with no
    /// intact batch after it: the torn tail of the active segment.
    Damaged(BatchError),
}

/// What a scan found.
#[derive(Debug)]
pub struct Scan {
    pub end_pos: u64,
    pub next_offset: u64,
    pub end: ScanEnd,
    /// Damage in the middle, with intact batches after it (or, in a sealed segment, up to its
    /// end), in file order.
    pub damaged: Vec<DamagedRange>,
}

/// Bytes read per I/O when scanning or reading.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// What a segment is to a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    /// The active segment: its end may be a write torn by a crash, which the scan stops at.
    Active,
    /// A segment synced whole before the next was created: it ends where the next one starts,
    /// at `end_offset`, and damage anywhere in it is damage, never a torn tail.
    Sealed { end_offset: u64 },
}

/// Walks the batches of `file` from `from = (pos, next_offset)` (a batch boundary whose batch
/// has a base offset of at least `next_offset`), validating every batch fully and feeding each
/// to `index`; never reads past `file_len`. At a damaged batch it looks for the next intact one
/// ([`resync`]): if there is one, the bytes in between are a [`DamagedRange`] and the walk goes
/// on from it; if not, an active segment ends there (a torn tail) and a sealed one is damaged
/// up to its end.
#[allow(clippy::too_many_arguments)]
pub async fn scan<F: StorageFile>(
    file: &F,
    name: &str,
    index: &mut SegmentIndex,
    seg_base: u64,
    from: (u64, u64),
    file_len: u64,
    batch_bytes_max: usize,
    kind: ScanKind,
) -> Result<Scan> {
    let mut damaged = Vec::new();
    let mut from = from;
    loop {
        let run = scan_run(file, name, index, seg_base, from, file_len, batch_bytes_max).await?;
        let reason = match (&run.end, kind) {
            (ScanEnd::Clean, ScanKind::Active) => return Ok(Scan { damaged, ..run }),
            // An empty file (a segment created just before a crash): the caller removes it.
            (ScanEnd::Clean, ScanKind::Sealed { .. }) if file_len == 0 => return Ok(Scan { damaged, ..run }),
            (ScanEnd::Clean, ScanKind::Sealed { end_offset }) if run.end_pos == file_len => {
                if run.next_offset >= end_offset {
                    return Ok(Scan { damaged, ..run });
                }
                // A file shorter than its offsets: the missing end is damage too, recorded below
                // like any damage that reaches the end (no batch can follow the file's end).
                BatchError::Inconsistent { reason: "segment ends before the next one starts" }
            }
            // Zeros inside a sealed segment: space that should hold batches.
            (ScanEnd::Clean, ScanKind::Sealed { .. }) => BatchError::BadMagic { found: 0 },
            (ScanEnd::Damaged(reason), _) => reason.clone(),
        };
        let at = (run.end_pos, run.next_offset);
        if let Some((pos, base)) = resync(file, name, seg_base, at, file_len, batch_bytes_max, kind).await? {
            damaged.push(DamagedRange {
                segment: seg_base,
                start_pos: run.end_pos,
                end_pos: pos,
                first_offset: run.next_offset,
                last_offset: base - 1,
                reason,
            });
            from = (pos, base);
            continue;
        }
        return Ok(match kind {
            ScanKind::Active => Scan { damaged, ..run },
            // Not one batch, only zeros: the caller decides whether the segment is empty.
            ScanKind::Sealed { .. }
                if run.end_pos == 0 && damaged.is_empty() && run.end == ScanEnd::Clean =>
            {
                Scan { damaged, ..run }
            }
            ScanKind::Sealed { end_offset } if run.next_offset < end_offset => {
                damaged.push(DamagedRange {
                    segment: seg_base,
                    start_pos: run.end_pos,
                    end_pos: file_len,
                    first_offset: run.next_offset,
                    last_offset: end_offset - 1,
                    reason,
                });
                Scan { end_pos: file_len, next_offset: end_offset, end: ScanEnd::Clean, damaged }
            }
            // Nothing is missing: what follows the last batch holds no offsets of the log.
            ScanKind::Sealed { .. } => Scan { end: ScanEnd::Clean, damaged, ..run },
        });
    }
}

/// Looks past damage at `from = (pos, next_offset)` for the next intact batch: at a 16-byte
/// boundary, with a header that decodes, a frame within the file, a good CRC and valid
/// contents, and a base offset that continues the segment (at least `next_offset`, within the
/// segment's offsets). In an active segment it gives up at a lost sector (see
/// [`looks_torn`]): the damage is then a torn write, and whatever follows it was not synced
/// either. Returns the batch's position and base offset.
pub async fn resync<F: StorageFile>(
    file: &F,
    name: &str,
    seg_base: u64,
    from: (u64, u64),
    file_len: u64,
    batch_bytes_max: usize,
    kind: ScanKind,
) -> Result<Option<(u64, u64)>> {
    let (start, next_offset) = from;
    let mut win = Window::default();
    let mut pos = start + BATCH_ALIGN as u64;
    while pos + HEADER_BYTES as u64 <= file_len {
        if kind == ScanKind::Active && pos.is_multiple_of(TORN_SECTOR_BYTES) {
            let from = pos.saturating_sub(TORN_SECTOR_BYTES).max(start);
            let bytes = win.cover(file, name, from, pos).await?;
            if looks_torn(from, bytes) {
                return Ok(None);
            }
        }
        let head = win.cover(file, name, pos, pos + HEADER_BYTES as u64).await?;
        if let Ok(h) = BatchHeader::decode(head)
            && h.check_frame(batch_bytes_max).is_ok()
            && pos + u64::from(h.batch_len) <= file_len
            && h.base_offset >= next_offset
            && h.base_offset - seg_base <= u64::from(u32::MAX)
            && !matches!(kind, ScanKind::Sealed { end_offset } if h.next_offset() > end_offset)
        {
            let bytes = win.cover(file, name, pos, pos + u64::from(h.batch_len)).await?;
            if BatchView::validate_stored(bytes, batch_bytes_max).is_ok() {
                return Ok(Some((pos, h.base_offset)));
            }
        }
        pos += BATCH_ALIGN as u64;
    }
    Ok(None)
}

/// A window of a file read in large aligned chunks, for walks that move forward.
#[derive(Debug)]
struct Window<B> {
    at: u64,
    buf: Option<B>,
}

impl<B> Default for Window<B> {
    fn default() -> Self {
        Self { at: 0, buf: None }
    }
}

impl<B: Deref<Target = [u8]>> Window<B> {
    /// The bytes `[from, to)`, reading them if the window does not hold them. The caller keeps
    /// `to` within the file.
    async fn cover<F: StorageFile<ReadBuf = B>>(
        &mut self,
        file: &F,
        name: &str,
        from: u64,
        to: u64,
    ) -> Result<&[u8]> {
        let held = self.buf.as_ref().is_some_and(|b| self.at <= from && to <= self.at + b.len() as u64);
        if !held {
            let start = align_down(from, file.alignment());
            let buf = read(file, name, start, ((to - start) as usize).max(READ_CHUNK_BYTES)).await?;
            if (buf.len() as u64) < to - start {
                let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shorter than its size");
                return Err(LogError::io("read", name, e));
            }
            self.at = start;
            self.buf = Some(buf);
        }
        let buf = self.buf.as_ref().expect("the window is filled");
        Ok(&buf[(from - self.at) as usize..(to - self.at) as usize])
    }
}

/// The walk of [`scan`] up to the end of the data or the first damaged batch.
async fn scan_run<F: StorageFile>(
    file: &F,
    name: &str,
    index: &mut SegmentIndex,
    seg_base: u64,
    from: (u64, u64),
    file_len: u64,
    batch_bytes_max: usize,
) -> Result<Scan> {
    let (mut pos, mut next_offset) = from;
    let align = file.alignment();
    let mut buf_pos = 0u64;
    let mut buf: Option<F::ReadBuf> = None;
    let done = |end_pos, next_offset, end| Ok(Scan { end_pos, next_offset, end, damaged: Vec::new() });
    loop {
        if pos + HEADER_BYTES as u64 > file_len {
            let end =
                if pos == file_len { ScanEnd::Clean } else { tail_end(file, name, pos, file_len).await? };
            return done(pos, next_offset, end);
        }
        // Make sure the header is in the buffer, then the whole batch.
        let have = |buf: &Option<F::ReadBuf>, buf_pos: u64, need: u64| {
            buf.as_ref().is_some_and(|b| buf_pos <= pos && pos + need <= buf_pos + b.len() as u64)
        };
        if !have(&buf, buf_pos, HEADER_BYTES as u64) {
            buf_pos = align_down(pos, align);
            buf = Some(read(file, name, buf_pos, READ_CHUNK_BYTES).await?);
        }
        let at = (pos - buf_pos) as usize;
        let head = &buf.as_ref().expect("buffer is filled")[at..];
        if head[..HEADER_BYTES].iter().all(|&b| b == 0) {
            return done(pos, next_offset, ScanEnd::Clean);
        }
        let header = match BatchHeader::decode(head).and_then(|h| h.check_frame(batch_bytes_max).map(|()| h))
        {
            Ok(h) => h,
            Err(e) => return done(pos, next_offset, ScanEnd::Damaged(e)),
        };
        let len = u64::from(header.batch_len);
        if pos + len > file_len {
            let e = BatchError::Truncated { needed: len as usize, available: (file_len - pos) as usize };
            return done(pos, next_offset, ScanEnd::Damaged(e));
        }
        if !have(&buf, buf_pos, len) {
            buf_pos = align_down(pos, align);
            let want = align_up(pos - buf_pos + len, align) as usize;
            buf = Some(read(file, name, buf_pos, want.max(READ_CHUNK_BYTES)).await?);
        }
        let at = (pos - buf_pos) as usize;
        let bytes = &buf.as_ref().expect("buffer is filled")[at..at + len as usize];
        let view = match BatchView::validate_stored(bytes, batch_bytes_max) {
            Ok(v) => v,
            Err(e) => return done(pos, next_offset, ScanEnd::Damaged(e)),
        };
        let h = view.header();
        // Batches follow each other densely (the CRC does not cover the base offset, so a flip
        // there must not pass for a jump ahead; only `resync` may skip damage), except after a
        // gap left by compaction, before a batch whose CRC covers its base offset.
        if !h.may_start_at(next_offset) || h.base_offset - seg_base > u64::from(u32::MAX) {
            let e = BatchError::BadHeader { field: "base_offset", value: h.base_offset };
            return done(pos, next_offset, ScanEnd::Damaged(e));
        }
        index.on_batch((h.base_offset - seg_base) as u32, pos as u32, h.batch_len, h.max_timestamp);
        next_offset = h.next_offset();
        pos += len;
    }
}

/// A few bytes too short for a header remain: zeros are unwritten space, anything else is torn.
async fn tail_end<F: StorageFile>(file: &F, name: &str, pos: u64, file_len: u64) -> Result<ScanEnd> {
    let start = align_down(pos, file.alignment());
    let buf = read(file, name, start, (file_len - start) as usize).await?;
    let tail = &buf[(pos - start) as usize..];
    Ok(if tail.iter().all(|&b| b == 0) {
        ScanEnd::Clean
    } else {
        ScanEnd::Damaged(BatchError::Truncated { needed: HEADER_BYTES, available: tail.len() })
    })
}

/// Reads `len` bytes at `pos`, rounded up to the file's alignment.
pub(crate) async fn read<F: StorageFile>(file: &F, name: &str, pos: u64, len: usize) -> Result<F::ReadBuf> {
    let len = align_up(len as u64, file.alignment()) as usize;
    file.read_at(pos, len).await.map_err(|e| LogError::io("read", name, e))
}

/// Whole stored batches read from one segment, exactly as they are on disk.
#[derive(Debug)]
pub struct Fetched<B> {
    buf: Option<B>,
    start: usize,
    end: usize,
    /// Base offset of the first batch (it may hold records below the offset asked for: fetch is
    /// batch-granular and the client skips them).
    pub first_offset: u64,
    /// File position of the first batch in its segment.
    pub position: u64,
    /// Offset after the last batch returned: where the next fetch starts.
    pub next_offset: u64,
    pub batch_count: usize,
}

impl<B: Deref<Target = [u8]>> Fetched<B> {
    pub fn empty(offset: u64) -> Self {
        Self {
            buf: None,
            start: 0,
            end: 0,
            first_offset: offset,
            position: 0,
            next_offset: offset,
            batch_count: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.batch_count == 0
    }

    /// The batches' bytes, ready to send.
    pub fn bytes(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], |b| &b[self.start..self.end])
    }
}

/// A read decided while the log was borrowed and carried out after: it owns a handle on the
/// segment file, so it stays valid if the log rolls or deletes the segment meanwhile.
#[derive(Debug)]
pub struct ReadPlan<F> {
    pub(crate) file: Rc<F>,
    pub(crate) name: String,
    pub(crate) segment_base: u64,
    /// A batch boundary at or before the batch holding `offset`.
    pub(crate) start_pos: u64,
    /// Bytes past this position are not readable yet.
    pub(crate) visible_end: u64,
    pub(crate) offset: u64,
    /// Batches whose base offset is at or past this are left out.
    pub(crate) max_offset: u64,
    pub(crate) max_bytes: usize,
    pub(crate) batch_bytes_max: usize,
}

impl<F: StorageFile> ReadPlan<F> {
    /// Reads whole batches starting with the one that holds `offset`: at least one batch if any
    /// is visible, then more while they fit in `max_bytes`. Every batch returned passed its CRC;
    /// a corrupt first batch is an error, a corrupt later one ends the result before it.
    pub async fn execute(self) -> Result<Fetched<F::ReadBuf>> {
        let align = self.file.alignment();
        let mut pos = self.start_pos;
        // Read exactly max_bytes (rounded to the alignment) from the aligned start: a read no
        // larger than the executor's registered I/O memory is served from it, without a fresh
        // allocation and its page faults.
        let chunk = crate::storage::align_up(self.max_bytes.clamp(64 << 10, READ_CHUNK_BYTES) as u64, align);
        // The damaged offsets as far as this read can tell: from the one asked for to the end
        // of the batch there, if its header still says where that is.
        let corrupt = |pos, buf: &[u8], source| {
            let last = BatchHeader::decode(buf)
                .ok()
                .filter(|h| h.check_frame(self.batch_bytes_max).is_ok())
                .filter(|h| h.base_offset <= self.offset && self.offset <= h.last_offset())
                .map_or(self.offset, |h| h.last_offset());
            LogError::Corrupt {
                segment: self.segment_base,
                pos,
                first_offset: self.offset,
                last_offset: last,
                source,
            }
        };
        loop {
            if pos + HEADER_BYTES as u64 > self.visible_end {
                return Ok(Fetched::empty(self.offset));
            }
            let buf_pos = align_down(pos, align);
            let want = (self.visible_end - buf_pos).min(chunk.max(pos - buf_pos + HEADER_BYTES as u64));
            let buf = read(&*self.file, &self.name, buf_pos, want as usize).await?;
            let limit = buf.len().min((self.visible_end - buf_pos) as usize);
            let mut at = (pos - buf_pos) as usize;
            if at + HEADER_BYTES > limit {
                // The file is shorter than planned: it was cut after this read was planned.
                return Ok(Fetched::empty(self.offset));
            }
            // Skip batches wholly below the offset, by header only.
            while at + HEADER_BYTES <= limit {
                let h = BatchHeader::decode(&buf[at..]).map_err(|e| corrupt(pos, &buf[at..], e))?;
                h.check_frame(self.batch_bytes_max).map_err(|e| corrupt(pos, &buf[at..], e))?;
                if h.next_offset() > self.offset {
                    break;
                }
                at += h.batch_len as usize;
                pos += u64::from(h.batch_len);
            }
            if at + HEADER_BYTES > limit {
                continue; // the skip ran past the buffer; read on from `pos`
            }
            let first = BatchHeader::decode(&buf[at..]).map_err(|e| corrupt(pos, &buf[at..], e))?;
            if first.base_offset >= self.max_offset {
                return Ok(Fetched::empty(self.offset));
            }
            let first_len = first.batch_len as usize;
            if pos + first_len as u64 > self.visible_end {
                return Ok(Fetched::empty(self.offset));
            }
            if at + first_len > limit {
                // The first batch is larger than what was read: read exactly it and return it.
                let buf_pos = align_down(pos, align);
                let buf =
                    read(&*self.file, &self.name, buf_pos, (pos - buf_pos) as usize + first_len).await?;
                let at = (pos - buf_pos) as usize;
                let h = check_frame_and_crc(&buf[at..], self.batch_bytes_max)
                    .map_err(|e| corrupt(pos, &buf[at..], e))?;
                return Ok(Fetched {
                    buf: Some(buf),
                    start: at,
                    end: at + first_len,
                    first_offset: h.base_offset,
                    position: pos,
                    next_offset: h.next_offset(),
                    batch_count: 1,
                });
            }
            let start = at;
            let position = pos;
            let mut next_offset = first.base_offset;
            let mut count = 0;
            while at + HEADER_BYTES <= limit {
                let h = match check_frame_and_crc(&buf[at..limit], self.batch_bytes_max) {
                    Ok(h) => h,
                    Err(e) if count == 0 => return Err(corrupt(pos, &buf[at..limit], e)),
                    Err(BatchError::Truncated { .. }) => break,
                    Err(e) => {
                        tracing::warn!(segment = self.segment_base, pos, error = %e, "corrupt batch is not served");
                        break;
                    }
                };
                let len = h.batch_len as usize;
                if h.base_offset >= self.max_offset || (count > 0 && at + len - start > self.max_bytes) {
                    break;
                }
                count += 1;
                next_offset = h.next_offset();
                at += len;
                pos += len as u64;
            }
            return Ok(Fetched {
                buf: Some(buf),
                start,
                end: at,
                first_offset: first.base_offset,
                position,
                next_offset,
                batch_count: count,
            });
        }
    }
}

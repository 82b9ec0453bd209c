//! Reading a batch: validation once at ingest or recovery, then zero-copy iteration.

use super::columns::{ArchivedColumns, bit, bitmap_len};
use super::header::{BatchHeader, HEADER_BYTES, PayloadFormat, compute_crc};
use crate::error::BatchError;
use rkyv::vec::ArchivedVec;

/// One record as stored, borrowed from the batch bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    headers: Headers<'a>,
}

impl<'a> RecordView<'a> {
    pub fn headers(&self) -> Headers<'a> {
        self.headers.clone()
    }
}

/// A validated batch, borrowed from the bytes it was checked on.
///
/// Its payload is Weir's columns, whose records it iterates, or, from
/// [`validate_stored`](Self::validate_stored) only, a Kafka records section, which the log
/// stores and serves whole and whose records are read through `weir-kafka`.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    header: BatchHeader,
    bytes: &'a [u8],
    cols: Option<&'a ArchivedColumns>,
}

/// Checks the frame and the checksum of the batch at the start of `bytes`: magic, length within
/// `len_max` and within `bytes`, CRC32C. Returns the header. This is what a reader of stored
/// batches does on every read: the payload was fully validated when it was written, and a
/// matching CRC says it has not changed since.
pub fn check_frame_and_crc(bytes: &[u8], len_max: usize) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::decode(bytes)?;
    header.check_frame(len_max)?;
    let len = header.batch_len as usize;
    if bytes.len() < len {
        return Err(BatchError::Truncated { needed: len, available: bytes.len() });
    }
    let actual = compute_crc(&bytes[..len]);
    if actual != header.crc {
        return Err(BatchError::ChecksumMismatch { expected: header.crc, actual });
    }
    Ok(header)
}

impl<'a> BatchView<'a> {
    /// Full validation of the batch at the start of `bytes`: frame, CRC, header fields, the rkyv
    /// structure and the consistency of the columns. Done once, where bytes enter the system (a
    /// produce request, recovery of the active segment, a consumer receiving a fetch). The cost
    /// is constant in the rkyv part and one linear pass over the `u32` columns.
    ///
    /// `bytes` must start 16-byte aligned; bytes after the batch are ignored.
    pub fn validate(bytes: &'a [u8], len_max: usize) -> Result<Self, BatchError> {
        let header = check_frame_and_crc(bytes, len_max)?;
        header.check_fields()?;
        if header.payload_format() != Some(PayloadFormat::Columns) {
            return Err(BatchError::BadPayload {
                reason: "a Kafka records section, not Weir's columns".into(),
            });
        }
        Self::validate_columns(header, bytes)
    }

    /// [`validate`](Self::validate) for a batch of a partition's log, which may also be a
    /// Kafka-format batch: of that, the frame, the CRC and the header fields are checked. Its
    /// records were walked by the Kafka front end that wrote it, and the CRC says they have
    /// not changed since; a replica's leader is trusted as far (it is authenticated, and its
    /// batches went through the same front end). Recovery, the replicas' appends, the time
    /// index and reads of stored batches use this.
    pub fn validate_stored(bytes: &'a [u8], len_max: usize) -> Result<Self, BatchError> {
        let header = check_frame_and_crc(bytes, len_max)?;
        header.check_fields()?;
        match header.payload_format() {
            Some(PayloadFormat::Kafka) => {
                Ok(Self { header, bytes: &bytes[..header.batch_len as usize], cols: None })
            }
            _ => Self::validate_columns(header, bytes),
        }
    }

    fn validate_columns(header: BatchHeader, bytes: &'a [u8]) -> Result<Self, BatchError> {
        let bytes = &bytes[..header.batch_len as usize];
        let payload = &bytes[HEADER_BYTES..HEADER_BYTES + header.payload_len as usize];
        if !(payload.as_ptr() as usize).is_multiple_of(16) {
            return Err(BatchError::BadPayload { reason: "payload is not 16-byte aligned".into() });
        }
        let cols = rkyv::access::<ArchivedColumns, rkyv::rancor::Error>(payload)
            .map_err(|e| BatchError::BadPayload { reason: e.to_string() })?;
        check_columns(&header, cols)?;
        Ok(Self { header, bytes, cols: Some(cols) })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole batch as stored.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn record_count(&self) -> usize {
        self.header.record_count as usize
    }

    /// The payload, without the header and the padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[HEADER_BYTES..HEADER_BYTES + self.header.payload_len as usize]
    }

    /// Whether the payload is a Kafka records section (see [`PayloadFormat::Kafka`]).
    pub fn is_kafka(&self) -> bool {
        self.cols.is_none()
    }

    /// The records in offset order, borrowing keys and values from the batch bytes.
    ///
    /// Panics on a Kafka-format batch: whoever reads records of a partition's log converts
    /// those first (`weir_kafka::batch`), and the cleaner never meets one (a compacted topic
    /// stores Weir's columns only), so reaching here with one is a broken invariant.
    pub fn records(&self) -> Records<'a> {
        let cols = self.cols.expect("the records of a Kafka-format batch are read through weir-kafka");
        Records { header: self.header, cols, next: 0 }
    }
}

fn check_columns(h: &BatchHeader, c: &ArchivedColumns) -> Result<(), BatchError> {
    let n = h.record_count as usize;
    let bad = |reason| Err(BatchError::Inconsistent { reason });
    let per_record = |v: usize| v == 0 || v == n;
    if c.value_ends.len() != n {
        return bad("value_ends length differs from record_count");
    }
    if !per_record(c.offset_deltas.len())
        || !per_record(c.timestamp_deltas.len())
        || !per_record(c.key_ends.len())
        || !per_record(c.header_ends.len())
    {
        return bad("a per-record column has the wrong length");
    }
    for bitmap in [&c.key_nulls, &c.value_nulls] {
        if !bitmap.is_empty() && bitmap.len() != bitmap_len(n) {
            return bad("a null bitmap has the wrong length");
        }
    }
    if !c.key_nulls.is_empty() && c.key_ends.is_empty() {
        return bad("key_nulls without key_ends");
    }
    if c.header_key_ends.len() != c.header_value_ends.len() {
        return bad("header key and value columns differ in length");
    }
    if c.header_ends.is_empty() && !c.header_key_ends.is_empty() {
        return bad("headers without header_ends");
    }
    // Offsets: dense, or strictly increasing and ending at last_offset_delta.
    if c.offset_deltas.is_empty() {
        if h.last_offset_delta as usize != n - 1 {
            return bad("dense batch with last_offset_delta != record_count - 1");
        }
    } else {
        let mut prev: Option<u32> = None;
        for d in c.offset_deltas.iter().map(|d| d.to_native()) {
            if prev.is_some_and(|p| d <= p) {
                return bad("offset_deltas not strictly increasing");
            }
            prev = Some(d);
        }
        // Compaction may remove a batch's last records but keeps its offset range, so the last
        // delta may lie below `last_offset_delta`, never above it.
        if prev.is_none_or(|p| p > h.last_offset_delta) {
            return bad("last offset delta differs from the header");
        }
    }
    // Timestamps: the smallest is first_timestamp, the largest max_timestamp.
    let (lo, hi) = if c.timestamp_deltas.is_empty() {
        (0, 0)
    } else {
        let it = c.timestamp_deltas.iter().map(|d| d.to_native());
        (it.clone().min().unwrap_or(0), it.max().unwrap_or(0))
    };
    if lo != 0 || h.first_timestamp.checked_add(i64::from(hi)) != Some(h.max_timestamp) {
        return bad("timestamp deltas disagree with first/max timestamp");
    }
    // Ranges: every end lies in data and the walk through each record never goes back.
    let data_len = c.data.len() as u64;
    let mut pos = 0u64;
    let mut header_index = 0usize;
    let step = |end: u32, pos: &mut u64| -> Result<(), BatchError> {
        let end = u64::from(end);
        if end < *pos || end > data_len {
            return Err(BatchError::Inconsistent { reason: "a column end is out of order" });
        }
        *pos = end;
        Ok(())
    };
    for i in 0..n {
        let start = pos;
        if !c.key_ends.is_empty() {
            step(c.key_ends[i].to_native(), &mut pos)?;
            if bit(&c.key_nulls, i) && pos != start {
                return bad("null key with bytes");
            }
        }
        if !c.header_ends.is_empty() {
            let headers_end = c.header_ends[i].to_native() as usize;
            if headers_end < header_index || headers_end > c.header_key_ends.len() {
                return bad("header_ends out of order");
            }
            for j in header_index..headers_end {
                step(c.header_key_ends[j].to_native(), &mut pos)?;
                step(c.header_value_ends[j].to_native(), &mut pos)?;
            }
            header_index = headers_end;
        }
        let value_start = pos;
        step(c.value_ends[i].to_native(), &mut pos)?;
        if bit(&c.value_nulls, i) && pos != value_start {
            return bad("null value with bytes");
        }
    }
    if pos != data_len || header_index != c.header_key_ends.len() {
        return bad("trailing bytes in the data column");
    }
    Ok(())
}

/// Iterator over the records of a validated batch.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    header: BatchHeader,
    cols: &'a ArchivedColumns,
    next: usize,
}

fn at(v: &ArchivedVec<rkyv::rend::u32_le>, i: usize) -> usize {
    v[i].to_native() as usize
}

impl<'a> Iterator for Records<'a> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<RecordView<'a>> {
        let c = self.cols;
        let i = self.next;
        if i >= c.value_ends.len() {
            return None;
        }
        self.next += 1;
        let data = c.data.as_slice();
        let start = if i == 0 { 0 } else { at(&c.value_ends, i - 1) };
        let offset_delta = if c.offset_deltas.is_empty() { i as u32 } else { c.offset_deltas[i].to_native() };
        let ts_delta = if c.timestamp_deltas.is_empty() { 0 } else { c.timestamp_deltas[i].to_native() };
        let (key, mut pos) = if c.key_ends.is_empty() {
            (None, start)
        } else {
            let end = at(&c.key_ends, i);
            ((!bit(&c.key_nulls, i)).then(|| &data[start..end]), end)
        };
        let headers = if c.header_ends.is_empty() {
            Headers { cols: c, next: 0, end: 0, pos }
        } else {
            let first = if i == 0 { 0 } else { at(&c.header_ends, i - 1) };
            let end = at(&c.header_ends, i);
            let h = Headers { cols: c, next: first, end, pos };
            if end > first {
                pos = at(&c.header_value_ends, end - 1);
            }
            h
        };
        let value_end = at(&c.value_ends, i);
        let value = (!bit(&c.value_nulls, i)).then(|| &data[pos..value_end]);
        Some(RecordView {
            offset: self.header.base_offset + u64::from(offset_delta),
            timestamp: self.header.first_timestamp + i64::from(ts_delta),
            key,
            value,
            headers,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.cols.value_ends.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Records<'_> {}

/// The headers of one record, as `(key, value)` byte slices.
#[derive(Clone)]
pub struct Headers<'a> {
    cols: &'a ArchivedColumns,
    next: usize,
    end: usize,
    pos: usize,
}

impl std::fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl PartialEq for Headers<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.clone().eq(other.clone())
    }
}
impl Eq for Headers<'_> {}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let data = self.cols.data.as_slice();
        let key_end = at(&self.cols.header_key_ends, self.next);
        let value_end = at(&self.cols.header_value_ends, self.next);
        let item = (&data[self.pos..key_end], &data[key_end..value_end]);
        self.pos = value_end;
        self.next += 1;
        Some(item)
    }
}

//! Durable files of the Raft store: atomic replacement of small files, and the framing of the
//! append-only log's records.
//!
//! A record is `len: u32 LE | crc32c(payload): u32 LE | payload` (see `docs/format.md`).

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The largest record payload accepted at recovery: anything longer is a torn or corrupt length.
pub const RECORD_BYTES_MAX: usize = 64 << 20;
const HEADER_BYTES: usize = 8;

/// Replaces `path` with `bytes` atomically: a temporary file is written and fsynced, renamed over
/// `path`, and the directory fsynced, so a crash leaves the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// [`write_atomic`], the file created with permissions `mode` (0o600 for a private key).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().expect("a file in a directory"))
}

/// Fsyncs a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Appends the record framing `payload` to `out`; refuses a payload above
/// [`RECORD_BYTES_MAX`] (recovery would take it for a torn length), leaving `out` unchanged.
pub fn encode_record(payload: &[u8], out: &mut Vec<u8>) -> Result<(), RecordTooLong> {
    if payload.len() > RECORD_BYTES_MAX {
        return Err(RecordTooLong { len: payload.len() });
    }
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// A log record payload above [`RECORD_BYTES_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a log record of {len} bytes, above the limit of {RECORD_BYTES_MAX}")]
pub struct RecordTooLong {
    pub len: usize,
}

/// What recovery found in a log file.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The valid records, each with its offset.
    pub records: Vec<(u64, &'a [u8])>,
    /// The end of the valid records: where the next record goes.
    pub end: u64,
    /// Whether bytes follow the valid records that are not a torn tail: a record that fails its
    /// check yet ends before the end of the file. Such bytes may hold acknowledged records, so the
    /// file must not be cut there.
    pub corrupt: bool,
}

/// The records at the start of `bytes`, up to the first bad one. A bad record is a torn tail (a
/// crash mid-append) only if it reaches the end of the file: a short header, a length running
/// past the end, or a checksum failure of a record that ends exactly at the end. Any other bad
/// record is corruption ([`Decoded::corrupt`]).
pub fn decode_records(bytes: &[u8]) -> Decoded<'_> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + HEADER_BYTES) else { break };
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let start = at + HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + len).filter(|_| len <= RECORD_BYTES_MAX) else { break };
        if crc32c::crc32c(payload) != crc {
            let corrupt = start + len < bytes.len();
            return Decoded { records, end: at as u64, corrupt };
        }
        records.push((at as u64, payload));
        at = start + len;
    }
    Decoded { records, end: at as u64, corrupt: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_up_to_a_torn_tail() {
        let mut bytes = Vec::new();
        encode_record(b"one", &mut bytes).unwrap();
        encode_record(b"two", &mut bytes).unwrap();
        let whole = bytes.len() as u64;
        encode_record(b"three", &mut bytes).unwrap();
        let torn = decode_records(&bytes[..bytes.len() - 1]);
        assert_eq!((torn.records.len(), torn.end, torn.corrupt), (2, whole, false), "a torn tail is dropped");
        assert_eq!(torn.records[1], (11, &b"two"[..]));
        let mut flipped = bytes.clone();
        flipped[whole as usize + 9] ^= 1;
        let last = decode_records(&flipped);
        assert_eq!((last.end, last.corrupt), (whole, false), "a bad CRC at the end is a torn tail");
        assert_eq!(decode_records(&bytes).records.len(), 3);
    }

    #[test]
    fn a_bad_record_before_whole_ones_is_corruption() {
        let mut bytes = Vec::new();
        encode_record(b"one", &mut bytes).unwrap();
        encode_record(b"two", &mut bytes).unwrap();
        bytes[9] ^= 1;
        let decoded = decode_records(&bytes);
        assert_eq!((decoded.records.len(), decoded.end, decoded.corrupt), (0, 0, true));
    }

    #[test]
    fn a_record_above_the_limit_is_refused() {
        let mut out = Vec::new();
        let big = vec![0u8; RECORD_BYTES_MAX + 1];
        assert_eq!(encode_record(&big, &mut out), Err(RecordTooLong { len: RECORD_BYTES_MAX + 1 }));
        assert!(out.is_empty());
    }
}

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

/// Appends the record framing `payload` to `out`.
pub fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= RECORD_BYTES_MAX, "a log record above the limit");
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The records at the start of `bytes`, each with its offset, up to the first torn or corrupt
/// one; and the length of the valid prefix (where the next record goes).
pub fn decode_records(bytes: &[u8]) -> (Vec<(u64, &[u8])>, u64) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER_BYTES) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let start = at + HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + len).filter(|_| len <= RECORD_BYTES_MAX) else { break };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        records.push((at as u64, payload));
        at = start + len;
    }
    (records, at as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_up_to_a_torn_or_corrupt_one() {
        let mut bytes = Vec::new();
        encode_record(b"one", &mut bytes);
        encode_record(b"two", &mut bytes);
        let whole = bytes.len() as u64;
        encode_record(b"three", &mut bytes);
        let (records, end) = decode_records(&bytes[..bytes.len() - 1]);
        assert_eq!((records.len(), end), (2, whole), "a torn tail is dropped");
        assert_eq!(records[1], (11, &b"two"[..]));
        let mut flipped = bytes.clone();
        flipped[whole as usize + 9] ^= 1;
        assert_eq!(decode_records(&flipped).1, whole, "a bad CRC ends the log");
        assert_eq!(decode_records(&bytes).0.len(), 3);
    }
}

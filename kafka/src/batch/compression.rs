//! Kafka's record compression, decompressed within a byte limit.
//!
//! A Kafka batch compresses its records section as a whole. The decompressors here stop as soon
//! as the output would pass `limit` bytes, so a small batch that inflates to gigabytes (a zip
//! bomb) costs at most `limit` bytes of memory and the time to produce them. kafka-protocol's own
//! decompressors grow their output without such a bound, hence this module.

use crate::error::BatchConvertError;
use std::io::Read;

/// The compression codecs of Kafka's `attributes` bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Gzip,
    /// Either framing: snappy-java's ("xerial", which the Java client and kafka-python send)
    /// or one raw snappy block (which librdkafka sends). Kafka's broker reads both alike.
    Snappy,
    /// The LZ4 frame format.
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec of attribute bits 0-2.
    pub fn from_bits(bits: u8) -> Result<Self, BatchConvertError> {
        Ok(match bits {
            0 => Self::None,
            1 => Self::Gzip,
            2 => Self::Snappy,
            3 => Self::Lz4,
            4 => Self::Zstd,
            codec => return Err(BatchConvertError::UnknownCodec { codec }),
        })
    }

    /// Attribute bits 0-2 for the codec.
    pub fn bits(self) -> u8 {
        self as u8
    }
}

/// snappy-java's stream header: magic, then version 1 and minimum compatible version 1.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;

/// Decompresses `input`, compressed with `codec` (not `None`), into at most `limit` bytes.
pub fn decompress(codec: Codec, input: &[u8], limit: usize) -> Result<Vec<u8>, BatchConvertError> {
    let fail = |e: std::io::Error| BatchConvertError::Decompress { codec, reason: e.to_string() };
    match codec {
        Codec::None => unreachable!("uncompressed records are not decompressed"),
        Codec::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(input), limit),
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(fail)?;
            // A frame may ask for a window (history buffer) of up to 128 MiB by default. Streaming
            // compressors (the Java client's) size it by level, not by content, up to 8 MiB
            // through level 19; beyond that, no window larger than the output limit is needed.
            decoder.window_log_max(window_log(limit)).map_err(fail)?;
            read_bounded(codec, decoder, limit)
        }
        Codec::Lz4 => {
            let mut decoder = lz4::Decoder::new(input).map_err(fail)?;
            let out = read_bounded(codec, &mut decoder, limit)?;
            // The reader ends quietly at the end of its input; `finish` says whether the frame did.
            decoder.finish().1.map_err(|_| BatchConvertError::Decompress {
                codec,
                reason: "the LZ4 frame is truncated".into(),
            })?;
            Ok(out)
        }
        Codec::Snappy => snappy(input, limit),
    }
}

/// Smallest window log whose window covers `limit` bytes, and at least 23 (8 MiB).
fn window_log(limit: usize) -> u32 {
    (usize::BITS - limit.saturating_sub(1).leading_zeros()).clamp(23, 31)
}

/// Reads `reader` to its end into a vector that never grows past `limit + 1` bytes, the extra
/// byte telling an output of exactly `limit` from a larger one.
fn read_bounded(codec: Codec, reader: impl Read, limit: usize) -> Result<Vec<u8>, BatchConvertError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchConvertError::Decompress { codec, reason: e.to_string() })?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

fn snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, BatchConvertError> {
    let mut out = Vec::new();
    if input.len() >= XERIAL_HEADER_BYTES && input.starts_with(XERIAL_MAGIC) {
        let mut rest = &input[XERIAL_HEADER_BYTES..];
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(snappy_error("a block length is truncated"));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if tail.len() < len {
                return Err(snappy_error("a block is truncated"));
            }
            snappy_block(&tail[..len], &mut out, limit)?;
            rest = &tail[len..];
        }
    } else {
        snappy_block(input, &mut out, limit)?;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking the length the block declares against the
/// limit before allocating for it.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), BatchConvertError> {
    let len = snap::raw::decompress_len(block).map_err(|e| snappy_error_owned(e.to_string()))?;
    if len > limit - out.len() {
        return Err(too_large(limit));
    }
    let start = out.len();
    out.resize(start + len, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| snappy_error_owned(e.to_string()))?;
    if n != len {
        return Err(snappy_error("a block is shorter than it declares"));
    }
    Ok(())
}

fn snappy_error(reason: &str) -> BatchConvertError {
    snappy_error_owned(reason.into())
}

fn snappy_error_owned(reason: String) -> BatchConvertError {
    BatchConvertError::Decompress { codec: Codec::Snappy, reason }
}

fn too_large(limit: usize) -> BatchConvertError {
    BatchConvertError::TooLarge { what: "decompressed records", limit }
}

//! Kafka's zigzag varints (protobuf's encoding of signed integers), by hand.
//!
//! A `varint` holds an i32 in at most 5 bytes, a `varlong` an i64 in at most 10. Decoding
//! refuses a value that runs past the end, uses more bytes than its type allows, or sets bits
//! above the type's width, so every byte sequence has at most one reading.

/// Why a varint did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The bytes end before the varint's last byte.
    Truncated,
    /// More bytes, or higher bits, than the type holds.
    Overlong,
}

/// Decodes an unsigned LEB128 value of at most `max_bytes` bytes and `bits` bits from the start
/// of `buf`, returning it and its length.
fn read_unsigned(buf: &[u8], max_bytes: usize, bits: u32) -> Result<(u64, usize), VarintError> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(max_bytes) {
        let shift = 7 * i as u32;
        let chunk = u64::from(b & 0x7f);
        // The last allowed byte may carry only the bits left of the type's width.
        if shift + 7 > bits && chunk >> (bits - shift) != 0 {
            return Err(VarintError::Overlong);
        }
        value |= chunk << shift;
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() < max_bytes { Err(VarintError::Truncated) } else { Err(VarintError::Overlong) }
}

/// Decodes a zigzag varint (i32) from the start of `buf`: the value and the bytes it took.
pub fn read_varint(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    let (raw, n) = read_unsigned(buf, 5, 32)?;
    let raw = raw as u32;
    Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), n))
}

/// Decodes a zigzag varlong (i64) from the start of `buf`: the value and the bytes it took.
pub fn read_varlong(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    let (raw, n) = read_unsigned(buf, 10, 64)?;
    Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), n))
}

fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unsigned_len(mut raw: u64) -> usize {
    let mut n = 1;
    while raw >= 0x80 {
        raw >>= 7;
        n += 1;
    }
    n
}

fn write_unsigned(out: &mut Vec<u8>, mut raw: u64) {
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Appends `v` as a zigzag varint.
pub fn write_varint(out: &mut Vec<u8>, v: i32) {
    write_unsigned(out, zigzag32(v));
}

/// Appends `v` as a zigzag varlong.
pub fn write_varlong(out: &mut Vec<u8>, v: i64) {
    write_unsigned(out, zigzag64(v));
}

/// Bytes `v` takes as a zigzag varint.
pub fn varint_len(v: i32) -> usize {
    unsigned_len(zigzag32(v))
}

/// Bytes `v` takes as a zigzag varlong.
pub fn varlong_len(v: i64) -> usize {
    unsigned_len(zigzag64(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edges() {
        for v in [0, 1, -1, 63, -64, 64, -65, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            assert_eq!(read_varint(&out), Ok((v, out.len())));
        }
        for v in [0, 1, -1, i64::from(i32::MAX) + 1, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_len(v));
            assert_eq!(read_varlong(&out), Ok((v, out.len())));
        }
    }

    #[test]
    fn known_encodings() {
        // Zigzag: 0 -> 0, -1 -> 1, 1 -> 2, -2 -> 3; 150 -> 300 = 0xac 0x02.
        assert_eq!(read_varint(&[0x01]), Ok((-1, 1)));
        assert_eq!(read_varint(&[0x02]), Ok((1, 1)));
        assert_eq!(read_varint(&[0xac, 0x02]), Ok((150, 2)));
    }

    #[test]
    fn refuses_truncated_and_overlong() {
        assert_eq!(read_varint(&[]), Err(VarintError::Truncated));
        assert_eq!(read_varint(&[0x80, 0x80]), Err(VarintError::Truncated));
        assert_eq!(read_varint(&[0x80; 6]), Err(VarintError::Overlong));
        // Five bytes whose last sets bits above 32.
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]), Err(VarintError::Overlong));
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x0f]), Ok((i32::MIN, 5)));
        assert_eq!(read_varlong(&[0x80; 11]), Err(VarintError::Overlong));
        assert_eq!(
            read_varlong(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Err(VarintError::Overlong)
        );
    }
}

//! The walker's primitive reads: fixed-size skips, varints, and the length prefixes of
//! strings, bytes and arrays in their classic and compact forms.

use super::schema::Kind;
use super::walk::Walker;
use crate::error::GuardError;

/// The longest unsigned varint Kafka writes for a 32-bit value, in bytes.
const VARINT_BYTES_MAX: usize = 5;

impl<'a> Walker<'a> {
    /// Consumes `n` bytes, refusing if fewer remain.
    pub(super) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], GuardError> {
        let buf = self.buf;
        if n > buf.len() {
            return Err(GuardError::Truncated { field, needed: n, remaining: buf.len() });
        }
        let (head, tail) = buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(super) fn skip(&mut self, n: usize, field: &'static str) -> Result<(), GuardError> {
        self.take(n, field).map(|_| ())
    }

    pub(super) fn take_array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], GuardError> {
        let bytes = self.take(N, field)?;
        Ok(bytes.try_into().expect("take returned N bytes"))
    }

    /// An unsigned varint of at most five bytes whose value fits 32 bits, as the decoder reads.
    pub(super) fn uvarint(&mut self, field: &'static str) -> Result<u32, GuardError> {
        let mut value: u64 = 0;
        for i in 0..VARINT_BYTES_MAX {
            let [byte] = self.take_array::<1>(field)?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| GuardError::BadVarint { field });
            }
        }
        Err(GuardError::BadVarint { field })
    }

    /// A string's length: a classic `i16` or a compact varint. `None` is null.
    pub(super) fn string_length(
        &mut self,
        field: &'static str,
        nullable: bool,
    ) -> Result<Option<usize>, GuardError> {
        if self.flexible {
            return self.compact_length(field, nullable);
        }
        let raw = i16::from_be_bytes(self.take_array(field)?);
        self.classic_length(i64::from(raw), field, nullable)
    }

    /// A bytes field's length: a classic `i32` or a compact varint. `None` is null.
    pub(super) fn bytes_length(
        &mut self,
        field: &'static str,
        nullable: bool,
    ) -> Result<Option<usize>, GuardError> {
        if self.flexible {
            return self.compact_length(field, nullable);
        }
        let raw = i32::from_be_bytes(self.take_array(field)?);
        self.classic_length(i64::from(raw), field, nullable)
    }

    /// A compact length: an unsigned varint holding the length plus one, zero for null.
    pub(super) fn compact_length(
        &mut self,
        field: &'static str,
        nullable: bool,
    ) -> Result<Option<usize>, GuardError> {
        match self.uvarint(field)? {
            0 if nullable => Ok(None),
            0 => Err(GuardError::UnexpectedNull { field }),
            n => Ok(Some(n as usize - 1)),
        }
    }

    /// A classic signed length, where -1 is null.
    pub(super) fn classic_length(
        &self,
        raw: i64,
        field: &'static str,
        nullable: bool,
    ) -> Result<Option<usize>, GuardError> {
        match raw {
            -1 if nullable => Ok(None),
            -1 => Err(GuardError::UnexpectedNull { field }),
            n if n < 0 => Err(GuardError::NegativeLength { field, length: n }),
            n => Ok(Some(n as usize)),
        }
    }

    /// The fewest bytes one value of `kind` takes on the wire in this version; at least one,
    /// so that a count bounded by it is bounded by the bytes that remain.
    pub(super) fn min_size(&self, kind: &Kind) -> usize {
        let prefix = |classic: usize| if self.flexible { 1 } else { classic };
        let size = match kind {
            Kind::Int8 | Kind::Bool => 1,
            Kind::Int16 => 2,
            Kind::Int32 => 4,
            Kind::Int64 | Kind::Float64 => 8,
            Kind::Uuid => 16,
            Kind::String | Kind::NullableString => prefix(2),
            Kind::Bytes | Kind::NullableBytes | Kind::Records => prefix(4),
            Kind::Array(_) | Kind::NullableArray(_) => prefix(4),
            Kind::Struct(schema) => {
                let fields: usize = schema
                    .fields
                    .iter()
                    .filter(|f| f.present_in(self.version))
                    .map(|f| self.min_size(&f.kind))
                    .sum();
                fields + usize::from(self.flexible)
            }
        };
        size.max(1)
    }
}

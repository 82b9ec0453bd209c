//! The walker: interprets a `Struct` schema over a request body, checking every length and
//! count against the bytes that remain, without allocating.

use super::schema::{Field, Kind, Struct};
use crate::error::GuardError;

/// A cursor over a request body (or a tagged field's value) for one request version.
pub(super) struct Walker<'a> {
    pub(super) buf: &'a [u8],
    pub(super) version: i16,
    pub(super) flexible: bool,
}

impl<'a> Walker<'a> {
    pub(super) fn new(buf: &'a [u8], version: i16, flexible: bool) -> Self {
        Walker { buf, version, flexible }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Walks one structure: its fields present in this version, then its tagged fields.
    pub(super) fn walk_struct(&mut self, schema: &Struct) -> Result<(), GuardError> {
        let version = self.version;
        for field in schema.fields.iter().filter(|f| f.present_in(version)) {
            self.walk_kind(field.kind, field.name)?;
        }
        if self.flexible {
            self.walk_tagged_fields(schema)?;
        }
        Ok(())
    }

    fn walk_kind(&mut self, kind: Kind, field: &'static str) -> Result<(), GuardError> {
        match kind {
            Kind::Int8 | Kind::Bool => self.skip(1, field),
            Kind::Int16 => self.skip(2, field),
            Kind::Int32 => self.skip(4, field),
            Kind::Int64 | Kind::Float64 => self.skip(8, field),
            Kind::Uuid => self.skip(16, field),
            Kind::String | Kind::NullableString => {
                let nullable = matches!(kind, Kind::NullableString);
                let len = self.string_length(field, nullable)?;
                self.skip(len.unwrap_or(0), field)
            }
            Kind::Bytes | Kind::NullableBytes | Kind::Records => {
                let nullable = !matches!(kind, Kind::Bytes);
                let len = self.bytes_length(field, nullable)?;
                self.skip(len.unwrap_or(0), field)
            }
            Kind::Array(element) => self.walk_array(element, field, false),
            Kind::NullableArray(element) => self.walk_array(element, field, true),
            Kind::Struct(schema) => self.walk_struct(schema),
        }
    }

    fn walk_array(&mut self, element: &Kind, field: &'static str, nullable: bool) -> Result<(), GuardError> {
        let count = if self.flexible {
            self.compact_length(field, nullable)?
        } else {
            let raw = i32::from_be_bytes(self.take_array(field)?);
            self.classic_length(i64::from(raw), field, nullable)?
        };
        let Some(count) = count else { return Ok(()) };
        // The decoder reserves `count` elements before reading any, so the count must be
        // bounded by what the remaining bytes can hold before we loop over it.
        let needed = (count as u64).saturating_mul(self.min_size(element) as u64);
        if needed > self.remaining() as u64 {
            return Err(GuardError::CountTooLarge {
                field,
                count: count as u64,
                remaining: self.remaining(),
            });
        }
        for _ in 0..count {
            self.walk_kind(*element, field)?;
        }
        Ok(())
    }

    /// Tagged fields: a count, then (tag, size, value) triples. A value whose tag the schema
    /// knows for this version is walked by its kind, since the decoder reads it that way, and
    /// must fill its size exactly; other values are skipped, as the decoder does.
    fn walk_tagged_fields(&mut self, schema: &Struct) -> Result<(), GuardError> {
        const FIELD: &str = "tagged fields";
        let count = self.uvarint(FIELD)?;
        // Each tagged field takes at least two bytes: its tag and its size.
        if u64::from(count) * 2 > self.remaining() as u64 {
            return Err(GuardError::CountTooLarge {
                field: FIELD,
                count: u64::from(count),
                remaining: self.remaining(),
            });
        }
        for _ in 0..count {
            let tag = self.uvarint(FIELD)?;
            let size = self.uvarint(FIELD)? as usize;
            let value = self.take(size, FIELD)?;
            let known = schema.tagged.iter().find(|t| t.tag == tag && t.field.present_in(self.version));
            if let Some(tagged) = known {
                self.walk_tagged_value(&tagged.field, tag, value)?;
            }
        }
        Ok(())
    }

    fn walk_tagged_value(&self, field: &Field, tag: u32, value: &[u8]) -> Result<(), GuardError> {
        let mut inner = Walker::new(value, self.version, self.flexible);
        inner.walk_kind(field.kind, field.name)?;
        if inner.remaining() != 0 {
            return Err(GuardError::TaggedFieldSize {
                field: field.name,
                tag,
                size: value.len(),
                used: value.len() - inner.remaining(),
            });
        }
        Ok(())
    }
}

//! The description of a request body as data: the walker in `walk.rs` interprets it, and
//! `apis.rs` holds one table per API, transcribed from Kafka's message definitions
//! (`clients/src/main/resources/common/message/*Request.json`).

/// The highest version, for fields that exist from some version on.
pub(super) const MAX: i16 = i16::MAX;

/// How one field is laid out on the wire. Flexible versions encode strings, bytes and arrays
/// in their compact forms (unsigned varint length + 1); the kind does not change with them.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Int8,
    Int16,
    Int32,
    Int64,
    Uuid,
    Bool,
    /// Not used by the requests covered yet; kept so a schema can name every wire type.
    #[allow(dead_code)]
    Float64,
    String,
    /// A string that may be null. Where Kafka allows null only from some version on, the guard
    /// accepts it in all versions: the decoder refuses it there, which is safe.
    NullableString,
    Bytes,
    /// Not used by the requests covered yet; kept so a schema can name every wire type.
    #[allow(dead_code)]
    NullableBytes,
    /// A produce request's record data: nullable bytes the guard does not look into, since the
    /// request decoder keeps them as one `Bytes` and the record-batch code checks them itself.
    Records,
    Array(&'static Kind),
    NullableArray(&'static Kind),
    /// A nested structure; only found as an array element in the requests covered.
    Struct(&'static Struct),
}

/// A field and the versions (inclusive) in which it is on the wire.
#[derive(Debug)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) since: i16,
    pub(super) until: i16,
}

impl Field {
    pub(super) const fn new(name: &'static str, kind: Kind, since: i16, until: i16) -> Self {
        Field { name, kind, since, until }
    }

    pub(super) fn present_in(&self, version: i16) -> bool {
        self.since <= version && version <= self.until
    }
}

/// A tagged field the decoder knows: it decodes the value by its kind from the frame rather
/// than skipping `size` bytes, so the guard must walk it too.
#[derive(Debug)]
pub(super) struct TaggedField {
    pub(super) tag: u32,
    pub(super) field: Field,
}

/// A structure: its fields in wire order, then (in flexible versions) its tagged fields.
#[derive(Debug)]
pub(super) struct Struct {
    pub(super) fields: &'static [Field],
    pub(super) tagged: &'static [TaggedField],
}

impl Struct {
    pub(super) const fn new(fields: &'static [Field]) -> Self {
        Struct { fields, tagged: &[] }
    }

    pub(super) const fn with_tagged(fields: &'static [Field], tagged: &'static [TaggedField]) -> Self {
        Struct { fields, tagged }
    }
}

/// One request type: its API key, the versions the guard knows (inclusive), and the first
/// flexible version (all of its structures switch to compact encodings and tagged fields there).
#[derive(Debug)]
pub(super) struct Message {
    pub(super) api_key: i16,
    pub(super) min_version: i16,
    pub(super) max_version: i16,
    pub(super) flexible_from: i16,
    pub(super) body: Struct,
}

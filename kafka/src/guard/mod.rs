//! The frame guard: bounds a request body before `kafka-protocol`'s decoder sees it.
//!
//! That decoder reserves `Vec` capacity from array counts read off the wire, so a frame of a
//! few bytes claiming 2^31 elements would make the process abort on allocation failure. The
//! guard walks the body by the request's schema for its version and refuses it unless every
//! array count, string, bytes and records length, and tagged-field section fits in the bytes
//! that remain, and nothing follows the end. After it passes, every count the decoder reserves
//! for is bounded by the frame's length divided by the element's smallest wire size, so no
//! allocation exceeds a small multiple of the frame.
//!
//! It does not check everything the decoder checks (UTF-8, enum values, nulls allowed only from
//! some version on): the decoder refuses those itself without allocating from them.
//!
//! Sans-IO and stateless: any shard may call it concurrently.

mod apis;
mod lengths;
mod schema;
mod walk;

use crate::error::GuardError;

/// Checks a request body against the schema of `api_key` at `api_version`. The body is what
/// follows the request header; in header v2 the header ends with its own tagged fields, which
/// the caller has already consumed with the header.
///
/// Returns `UnsupportedVersion` without reading the body when the guard has no schema for the
/// pair; the caller answers those itself.
pub fn check_request(api_key: i16, api_version: i16, body: &[u8]) -> Result<(), GuardError> {
    let message = apis::MESSAGES
        .iter()
        .find(|m| m.api_key == api_key)
        .filter(|m| m.min_version <= api_version && api_version <= m.max_version)
        .ok_or(GuardError::UnsupportedVersion { api_key, api_version })?;
    let flexible = api_version >= message.flexible_from;
    let mut walker = walk::Walker::new(body, api_version, flexible);
    walker.walk_struct(&message.body)?;
    // Bytes after the schema are left alone, as Kafka's brokers leave them: librdkafka 2.16
    // sends three after its Metadata v12 body. The decoder never reads them.
    Ok(())
}

/// The versions (inclusive) the guard has a schema for, or `None` for an API it does not know.
pub fn versions(api_key: i16) -> Option<(i16, i16)> {
    apis::MESSAGES.iter().find(|m| m.api_key == api_key).map(|m| (m.min_version, m.max_version))
}

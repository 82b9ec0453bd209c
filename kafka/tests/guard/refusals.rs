//! Hand-made hostile bodies, one per way the guard refuses, with the error it must give.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::protocol::Encodable;
use weir_kafka::error::GuardError;
use weir_kafka::guard::check_request;

const METADATA: i16 = 3;
const FETCH: i16 = 1;
const FIND_COORDINATOR: i16 = 10;
const API_VERSIONS: i16 = 18;

#[test]
fn a_thirty_byte_frame_claiming_two_billion_topics_is_refused() {
    let mut body = vec![0x7f, 0xff, 0xff, 0xff];
    body.resize(30, 0);
    let verdict = check_request(METADATA, 1, &body);
    let expected = GuardError::CountTooLarge { field: "topics", count: 0x7fff_ffff, remaining: 26 };
    assert_eq!(verdict, Err(expected));
}

#[test]
fn a_compact_count_is_its_varint_minus_one() {
    // 0xffff_ffff as a varint: the largest count a compact array can claim.
    let mut body = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    body.resize(30, 0);
    let verdict = check_request(METADATA, 9, &body);
    let expected = GuardError::CountTooLarge { field: "topics", count: 0xffff_fffe, remaining: 25 };
    assert_eq!(verdict, Err(expected));
}

#[test]
fn a_count_is_bounded_by_its_elements_smallest_size_not_one_byte() {
    // Fetch v4: replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level, then topics.
    // Ten topics of at least six bytes each (a name's length and a partition count) need 60.
    let mut body = BytesMut::new();
    body.put_bytes(0, 17);
    body.put_i32(10);
    body.put_bytes(0, 30);
    let verdict = check_request(FETCH, 4, &body);
    assert_eq!(verdict, Err(GuardError::CountTooLarge { field: "topics", count: 10, remaining: 30 }));
}

#[test]
fn lengths_past_the_end_and_below_minus_one_are_refused() {
    let verdict = check_request(FIND_COORDINATOR, 0, &[0x00, 0x10, b'a', b'b', b'c']);
    assert_eq!(verdict, Err(GuardError::Truncated { field: "key", needed: 16, remaining: 3 }));
    let verdict = check_request(FIND_COORDINATOR, 0, &[0xff, 0xfe]);
    assert_eq!(verdict, Err(GuardError::NegativeLength { field: "key", length: -2 }));
    let verdict = check_request(FIND_COORDINATOR, 0, &[0xff, 0xff]);
    assert_eq!(verdict, Err(GuardError::UnexpectedNull { field: "key" }));
}

#[test]
fn varints_longer_than_five_bytes_or_wider_than_32_bits_are_refused() {
    let field = "client_software_name";
    let six_bytes = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0];
    assert_eq!(check_request(API_VERSIONS, 3, &six_bytes), Err(GuardError::BadVarint { field }));
    let too_wide = [0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0];
    assert_eq!(check_request(API_VERSIONS, 3, &too_wide), Err(GuardError::BadVarint { field }));
}

#[test]
fn tagged_field_sections_must_be_well_formed() {
    // ApiVersions v3: two empty compact strings, then the tagged fields.
    let field = "tagged fields";
    let many = [1, 1, 0x7f, 0, 0];
    let verdict = check_request(API_VERSIONS, 3, &many);
    assert_eq!(verdict, Err(GuardError::CountTooLarge { field, count: 0x7f, remaining: 2 }));
    let oversized = [1, 1, 1, 9, 0x20, b'x', b'y'];
    let verdict = check_request(API_VERSIONS, 3, &oversized);
    assert_eq!(verdict, Err(GuardError::Truncated { field, needed: 0x20, remaining: 2 }));
    let unknown = [1, 1, 1, 9, 2, b'x', b'y'];
    assert_eq!(check_request(API_VERSIONS, 3, &unknown), Ok(()));
}

/// A Fetch v12 body whose top-level tagged fields are `tags` (the encoder's own section, the
/// last byte, is replaced).
fn fetch_v12_with_tags(tags: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    FetchRequest::default().encode(&mut buf, 12).unwrap();
    let mut body = buf.to_vec();
    assert_eq!(body.pop(), Some(0), "an empty tagged-field section ends the body");
    body.extend_from_slice(tags);
    body
}

#[test]
fn a_known_tagged_field_is_walked_by_its_kind_and_must_fill_its_size() {
    // Tag 0 is cluster_id, a compact nullable string the decoder reads from the frame itself.
    assert_eq!(check_request(FETCH, 12, &fetch_v12_with_tags(&[1, 0, 3, 3, b'a', b'b'])), Ok(()));
    let verdict = check_request(FETCH, 12, &fetch_v12_with_tags(&[1, 0, 1, 11, 0, 0, 0, 0]));
    let field = "cluster_id";
    assert_eq!(verdict, Err(GuardError::Truncated { field, needed: 10, remaining: 0 }));
    let verdict = check_request(FETCH, 12, &fetch_v12_with_tags(&[1, 0, 5, 3, b'a', b'b', 0, 0]));
    assert_eq!(verdict, Err(GuardError::TaggedFieldSize { field, tag: 0, size: 5, used: 3 }));
}

#[test]
fn bytes_after_the_schema_are_let_through() {
    // librdkafka 2.16 sends three bytes after its Metadata v12 body; Kafka's brokers take it.
    let mut body = fetch_v12_with_tags(&[0]);
    assert_eq!(check_request(FETCH, 12, &body), Ok(()));
    body.extend_from_slice(&[1, 0, 0]);
    assert_eq!(check_request(FETCH, 12, &body), Ok(()));
}

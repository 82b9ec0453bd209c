//! The native protocol: every message round-trips, and no input makes a decoder panic.

use proptest::prelude::*;
use weir_net::api::{PartitionInfo, ShardAddr, ShardStats, TopicInfo};
use weir_net::frame::{FRAME_HEADER_BYTES, FrameDecoder, encode_frame};
use weir_net::wire::Writer;
use weir_net::{
    Acks, ApiKey, DecodeError, EncodeError, ErrorBody, ErrorCode, OffsetSpec, Request, Response, TopicConfig,
};

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,40}"
}

fn config() -> impl Strategy<Value = TopicConfig> {
    (proptest::option::of(any::<u32>()), proptest::option::of(any::<u32>()))
        .prop_map(|(a, b)| TopicConfig { retention_ms: a.map(u64::from), retention_bytes: b.map(u64::from) })
}

fn request(batches: &[u8]) -> impl Strategy<Value = Request<'_>> {
    prop_oneof![
        Just(Request::ApiVersions),
        Just(Request::NodeStats),
        proptest::collection::vec(name(), 0..4).prop_map(|topics| Request::Metadata { topics }),
        (name(), any::<u32>(), config()).prop_map(|(name, partitions, config)| Request::CreateTopic {
            name,
            partitions,
            config
        }),
        name().prop_map(|name| Request::DeleteTopic { name }),
        name().prop_map(|name| Request::DescribeTopic { name }),
        (name(), any::<u32>(), any::<bool>(), any::<u32>()).prop_map(
            move |(topic, partition, a, timeout_ms)| {
                Request::Produce {
                    topic,
                    partition,
                    acks: if a { Acks::Leader } else { Acks::None },
                    timeout_ms,
                    batches,
                }
            }
        ),
        (name(), any::<u32>(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
            |(topic, partition, offset, max_bytes, max_wait_ms)| Request::Fetch {
                topic,
                partition,
                offset,
                max_bytes,
                max_wait_ms
            }
        ),
        (name(), any::<u32>(), prop_oneof![Just(-2i64), Just(-1i64), 0i64..i64::MAX]).prop_map(
            |(topic, partition, s)| {
                let spec = match s {
                    -2 => OffsetSpec::Earliest,
                    -1 => OffsetSpec::Latest,
                    t => OffsetSpec::Timestamp(t),
                };
                Request::ListOffsets { topic, partition, spec }
            }
        ),
    ]
}

fn topic_info() -> impl Strategy<Value = TopicInfo> {
    (
        name(),
        config(),
        proptest::collection::vec((any::<u32>(), any::<u16>(), any::<u64>(), any::<u64>()), 0..5),
    )
        .prop_map(|(name, config, ps)| TopicInfo {
            name,
            error: ErrorCode::None,
            config,
            partitions: ps
                .into_iter()
                .map(|(partition, shard, log_start, log_end)| PartitionInfo {
                    partition,
                    shard,
                    log_start,
                    log_end,
                })
                .collect(),
        })
}

fn response(batches: &[u8]) -> impl Strategy<Value = Response<'_>> {
    let err =
        prop_oneof![Just(ErrorCode::None), Just(ErrorCode::UnknownTopic), Just(ErrorCode::CorruptBatch)];
    prop_oneof![
        proptest::collection::vec(any::<(u16, u16, u16)>(), 0..8)
            .prop_map(|apis| Response::ApiVersions { apis }),
        (
            proptest::collection::vec((any::<u16>(), name(), any::<u16>()), 0..3),
            proptest::collection::vec(topic_info(), 0..3)
        )
            .prop_map(|(s, topics)| Response::Metadata {
                shards: s.into_iter().map(|(shard, host, port)| ShardAddr { shard, host, port }).collect(),
                topics
            }),
        (err.clone(), name()).prop_map(|(error, message)| Response::CreateTopic { error, message }),
        topic_info().prop_map(|topic| Response::DescribeTopic { topic }),
        (err.clone(), any::<u64>(), any::<u64>()).prop_map(|(error, base_offset, log_start)| {
            Response::Produce { error, message: String::new(), base_offset, log_start }
        }),
        (err, any::<u64>(), any::<u64>()).prop_map(move |(error, high_watermark, log_start)| {
            Response::Fetch { error, message: "m".into(), high_watermark, log_start, batches }
        }),
        proptest::collection::vec(any::<(u16, u64, u64, u64)>(), 0..4).prop_map(|s| Response::NodeStats {
            shards: s
                .into_iter()
                .map(|(shard, connections, requests, forwarded)| ShardStats {
                    shard,
                    connections,
                    requests,
                    forwarded
                })
                .collect()
        }),
    ]
}

const BATCHES: [u8; 48] = [7u8; 48];

proptest! {
    #[test]
    fn requests_round_trip(req in request(&BATCHES)) {
        let mut w = Writer::default();
        req.encode(&mut w).unwrap();
        let frame = encode_frame(req.api_key() as u16, 1, 42, 0, &w.buf);
        let mut d = FrameDecoder::new(1 << 20);
        d.feed(&frame);
        let (h, frame) = d.next_frame().unwrap().unwrap();
        prop_assert_eq!(h.correlation_id, 42);
        let back = Request::decode(h.api_key, h.api_version, &frame[FRAME_HEADER_BYTES..]).unwrap();
        prop_assert_eq!(back, req);
    }

    #[test]
    fn responses_round_trip(resp in response(&BATCHES)) {
        let mut w = Writer::default();
        resp.encode(&mut w).unwrap();
        let back = Response::decode(resp.api_key(), &w.buf).unwrap();
        prop_assert_eq!(back, resp);
    }

    /// Arbitrary bodies for every API: decoding returns a value or a typed error, never panics.
    #[test]
    fn garbage_never_panics(api in 0u16..10, version in 0u16..3, body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::decode(api, version, &body);
        if let Ok(api) = ApiKey::from_u16(api) {
            let _ = Response::decode(api, &body);
        }
        let _ = ErrorBody::decode(&body);
        let mut d = FrameDecoder::new(4096);
        d.feed(&body);
        while let Ok(Some(_)) = d.next_frame() {}
    }
}

#[test]
fn produced_batches_stay_16_byte_aligned_in_the_frame() {
    for topic in ["a", "abc", "a-much-longer-topic-name"] {
        let req = Request::Produce {
            topic: topic.into(),
            partition: 3,
            acks: Acks::Leader,
            timeout_ms: 1,
            batches: &BATCHES,
        };
        let mut w = Writer::default();
        req.encode(&mut w).unwrap();
        let frame = encode_frame(ApiKey::Produce as u16, 1, 1, 0, &w.buf);
        let body = &frame[FRAME_HEADER_BYTES..];
        let Request::Produce { batches, .. } = Request::decode(ApiKey::Produce as u16, 1, body).unwrap()
        else {
            panic!("not a produce")
        };
        let offset = batches.as_ptr() as usize - frame.as_ptr() as usize;
        assert_eq!(offset % 16, 0, "batches at frame offset {offset}");
    }
}

#[test]
fn bad_inputs_get_typed_errors() {
    assert_eq!(Request::decode(99, 1, &[]), Err(DecodeError::UnknownApi { api_key: 99 }));
    assert_eq!(
        Request::decode(1, 7, &[0, 0, 0, 0]),
        Err(DecodeError::UnsupportedVersion { api_key: 1, version: 7 })
    );
    // ApiVersions is answered in any version.
    assert_eq!(Request::decode(0, 7, &[1, 2, 3]), Ok(Request::ApiVersions));
    assert_eq!(Request::decode(0, 1, &[1]), Err(DecodeError::TrailingBytes { left: 1 }));
    // A forged count cannot make the decoder allocate: it is checked against the bytes left.
    let mut w = Writer::default();
    w.u32(u32::MAX);
    assert!(matches!(
        Request::decode(ApiKey::Metadata as u16, 1, &w.buf),
        Err(DecodeError::Truncated { .. })
    ));
    let mut w = Writer::default();
    w.str("topic", "t").unwrap().u32(0).u8(9).u32(0).batches(&[]).unwrap();
    assert_eq!(
        Request::decode(ApiKey::Produce as u16, 1, &w.buf),
        Err(DecodeError::BadValue { field: "acks", value: 9 })
    );
    let mut w = Writer::default();
    w.u16(2).buf.extend_from_slice(&[0xff, 0xfe]);
    assert!(matches!(
        Request::decode(ApiKey::DeleteTopic as u16, 1, &w.buf),
        Err(DecodeError::BadUtf8 { .. })
    ));
    assert_eq!(ErrorCode::from_u16(4242), ErrorCode::Unknown);
}

/// Every request naming a topic refuses one longer than a string field holds, rather than
/// panicking; a response cuts a long message to fit and refuses a long name.
#[test]
fn oversize_fields_are_refused_by_every_encoder() {
    let long = "t".repeat(70_000);
    let too_long = EncodeError::FieldTooLong { field: "topic", len: 70_000, max: 65_535 };
    let requests = [
        Request::Metadata { topics: vec!["ok".into(), long.clone()] },
        Request::CreateTopic { name: long.clone(), partitions: 1, config: TopicConfig::default() },
        Request::DeleteTopic { name: long.clone() },
        Request::DescribeTopic { name: long.clone() },
        Request::Produce {
            topic: long.clone(),
            partition: 0,
            acks: Acks::Leader,
            timeout_ms: 1,
            batches: &BATCHES,
        },
        Request::Fetch { topic: long.clone(), partition: 0, offset: 0, max_bytes: 1, max_wait_ms: 0 },
        Request::ListOffsets { topic: long.clone(), partition: 0, spec: OffsetSpec::Latest },
    ];
    for req in &requests {
        assert_eq!(req.encode(&mut Writer::default()), Err(too_long.clone()), "{:?}", req.api_key());
    }
    let topic = TopicInfo {
        name: long.clone(),
        error: ErrorCode::None,
        config: TopicConfig::default(),
        partitions: vec![],
    };
    assert_eq!(Response::DescribeTopic { topic }.encode(&mut Writer::default()), Err(too_long));
    // A message quoting a long name is cut to fit, so an error can always be answered.
    let resp =
        Response::CreateTopic { error: ErrorCode::UnknownTopic, message: format!("no topic {long:?}") };
    let mut w = Writer::default();
    resp.encode(&mut w).unwrap();
    let Response::CreateTopic { message, .. } = Response::decode(ApiKey::CreateTopic, &w.buf).unwrap() else {
        panic!("not a CreateTopic answer")
    };
    assert_eq!(message.len(), 65_535);
    let mut w = Writer::default();
    ErrorBody { error: ErrorCode::UnknownTopic, message: long.clone() }.encode(&mut w);
    assert_eq!(ErrorBody::decode(&w.buf).unwrap().message.len(), 65_535);
}

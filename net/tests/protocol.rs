//! The native protocol: every message round-trips, and no input makes a decoder panic.

use proptest::prelude::*;
use weir_net::api::{
    BatchCacheStats, CREATE_TOPIC_CLEANUP_VERSION, CREATE_TOPIC_REPLICATION_VERSION,
    DESCRIBE_TOPIC_CLEANUP_VERSION, DESCRIBE_TOPIC_HEALTH_VERSION, DESCRIBE_TOPIC_REPLICATION_VERSION,
    METADATA_CLEANUP_VERSION, METADATA_CLUSTER_VERSION, PartitionInfo, ShardAddr, ShardStats, TopicInfo,
};
use weir_net::frame::{FRAME_HEADER_BYTES, FrameDecoder, encode_frame};
use weir_net::groups::{
    CommittedOffsetInfo, GroupHeartbeat, GroupInfo, GroupListing, GroupRequest, GroupResponse, MemberInfo,
    OffsetCommitEntry, TopicAssignment,
};
use weir_net::wire::Writer;
use weir_net::{
    Acks, ApiKey, CleanupPolicy, DamagedRangeInfo, DecodeError, EncodeError, ErrorBody, ErrorCode, NodeInfo,
    NodeRole, NodeStatus, OffsetSpec, PartitionHealth, PartitionReplication, PartitionState, Request,
    Response, TopicConfig, UnderReplicated,
};

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,40}"
}

fn config() -> impl Strategy<Value = TopicConfig> {
    let policy = prop_oneof![
        Just(CleanupPolicy::Delete),
        Just(CleanupPolicy::Compact),
        Just(CleanupPolicy::CompactDelete)
    ];
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        policy,
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(a, b, cleanup_policy, d)| TopicConfig {
            retention_ms: a.map(u64::from),
            retention_bytes: b.map(u64::from),
            cleanup_policy,
            delete_retention_ms: d.map(u64::from),
        })
}

fn request(batches: &[u8]) -> impl Strategy<Value = Request<'_>> {
    prop_oneof![
        Just(Request::ApiVersions),
        Just(Request::NodeStats),
        Just(Request::ClusterStatus),
        proptest::collection::vec(name(), 0..4).prop_map(|topics| Request::Metadata { topics }),
        (name(), any::<u32>(), config(), any::<u16>(), proptest::option::of(0u16..u16::MAX)).prop_map(
            |(name, partitions, config, replication_factor, min_insync_replicas)| Request::CreateTopic {
                name,
                partitions,
                config,
                replication_factor,
                min_insync_replicas,
            }
        ),
        name().prop_map(|name| Request::DeleteTopic { name }),
        name().prop_map(|name| Request::DescribeTopic { name }),
        (name(), any::<u32>(), 0u8..3, any::<u32>()).prop_map(move |(topic, partition, a, timeout_ms)| {
            Request::Produce {
                topic,
                partition,
                acks: [Acks::None, Acks::Leader, Acks::All][a as usize],
                timeout_ms,
                batches,
            }
        }),
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

fn assignments() -> impl Strategy<Value = Vec<TopicAssignment>> {
    proptest::collection::vec(
        (name(), proptest::collection::vec(any::<u32>(), 0..4))
            .prop_map(|(topic, partitions)| TopicAssignment { topic, partitions }),
        0..3,
    )
}

fn group_request() -> impl Strategy<Value = Request<'static>> {
    let heartbeat = (
        (name(), name(), proptest::option::of(name()), any::<i32>()),
        (proptest::option::of(proptest::collection::vec(name(), 0..3)), proptest::option::of(assignments())),
        (any::<u32>(), any::<u32>(), proptest::option::of(name())),
    )
        .prop_map(
            |((group, member_id, instance_id, member_epoch), (topics, owned), (s, r, assignor))| {
                GroupHeartbeat {
                    group,
                    member_id,
                    instance_id,
                    member_epoch,
                    topics,
                    owned,
                    session_timeout_ms: s,
                    rebalance_timeout_ms: r,
                    assignor,
                }
            },
        );
    let entry =
        (name(), any::<u32>(), any::<u64>(), name()).prop_map(|(topic, partition, offset, metadata)| {
            OffsetCommitEntry { topic, partition, offset, metadata }
        });
    prop_oneof![
        name().prop_map(|group| GroupRequest::FindCoordinator { group }),
        heartbeat.prop_map(GroupRequest::Heartbeat),
        (name(), name(), any::<i32>(), proptest::collection::vec(entry, 0..3)).prop_map(
            |(group, member_id, member_epoch, offsets)| GroupRequest::OffsetCommit {
                group,
                member_id,
                member_epoch,
                offsets
            }
        ),
        (name(), proptest::collection::vec((name(), any::<u32>()), 0..3))
            .prop_map(|(group, partitions)| GroupRequest::OffsetFetch { group, partitions }),
        Just(GroupRequest::ListGroups),
        name().prop_map(|group| GroupRequest::DescribeGroup { group }),
        name().prop_map(|group| GroupRequest::DeleteGroup { group }),
    ]
    .prop_map(Request::Group)
}

fn group_response() -> impl Strategy<Value = Response<'static>> {
    let err =
        prop_oneof![Just(ErrorCode::None), Just(ErrorCode::UnknownMemberId), Just(ErrorCode::NotCoordinator)];
    let member =
        (name(), proptest::option::of(name()), any::<i32>(), proptest::collection::vec(name(), 0..2))
            .prop_flat_map(|(member_id, instance_id, member_epoch, topics)| {
                (assignments(), assignments()).prop_map(move |(assignment, target)| MemberInfo {
                    member_id: member_id.clone(),
                    instance_id: instance_id.clone(),
                    member_epoch,
                    topics: topics.clone(),
                    assignment,
                    target,
                })
            });
    let info = (name(), name(), any::<i32>(), name(), proptest::collection::vec(member, 0..3)).prop_map(
        |(group, state, group_epoch, assignor, members)| GroupInfo {
            group,
            state,
            group_epoch,
            assignor,
            members,
        },
    );
    let offset = (name(), any::<u32>(), proptest::option::of(0..u64::MAX), name()).prop_map(
        |(topic, partition, offset, metadata)| CommittedOffsetInfo { topic, partition, offset, metadata },
    );
    let listing = (name(), name(), any::<u32>()).prop_map(|(group, state, members)| GroupListing {
        group,
        state,
        members,
    });
    prop_oneof![
        (err.clone(), name(), any::<u32>(), name(), any::<u16>()).prop_map(
            |(error, message, node_id, host, port)| {
                GroupResponse::FindCoordinator { error, message, node_id, host, port }
            }
        ),
        (err.clone(), name(), any::<i32>(), any::<u32>(), proptest::option::of(assignments())).prop_map(
            |(error, member_id, member_epoch, heartbeat_interval_ms, assignment)| GroupResponse::Heartbeat {
                error,
                message: "m".into(),
                member_id,
                member_epoch,
                heartbeat_interval_ms,
                assignment
            }
        ),
        (err.clone(), name()).prop_map(|(error, message)| GroupResponse::OffsetCommit { error, message }),
        (err.clone(), proptest::collection::vec(offset, 0..3)).prop_map(|(error, offsets)| {
            GroupResponse::OffsetFetch { error, message: String::new(), offsets }
        }),
        (err.clone(), proptest::collection::vec(listing, 0..3))
            .prop_map(|(error, groups)| GroupResponse::ListGroups { error, message: String::new(), groups }),
        (err.clone(), proptest::option::of(info)).prop_map(|(error, group)| GroupResponse::DescribeGroup {
            error,
            message: String::new(),
            group
        }),
        (err, name()).prop_map(|(error, message)| GroupResponse::DeleteGroup { error, message }),
    ]
    .prop_map(Response::Group)
}

fn health() -> impl Strategy<Value = PartitionHealth> {
    let state = prop_oneof![
        Just(PartitionState::Online),
        (name(), proptest::option::of(any::<u32>()))
            .prop_map(|(cause, retry)| PartitionState::Offline { cause, retry_in_ms: retry.map(u64::from) }),
    ];
    let range = (any::<u64>(), any::<u64>(), any::<u64>(), name()).prop_map(
        |(segment, first_offset, last_offset, reason)| DamagedRangeInfo {
            segment,
            first_offset,
            last_offset,
            reason,
        },
    );
    (state, proptest::collection::vec(range, 0..3))
        .prop_map(|(state, damaged)| PartitionHealth { state, damaged })
}

fn ids() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(any::<u32>(), 0..4)
}

fn replication() -> impl Strategy<Value = PartitionReplication> {
    (proptest::option::of(any::<u32>()), any::<u16>(), any::<u32>(), ids(), ids(), any::<(u64, u64)>())
        .prop_map(|(leader, leader_shard, leader_epoch, replicas, isr, (high_watermark, log_end))| {
            PartitionReplication {
                leader,
                leader_shard,
                leader_epoch,
                replicas,
                isr,
                high_watermark,
                log_end,
            }
        })
}

fn shard_addrs() -> impl Strategy<Value = Vec<ShardAddr>> {
    proptest::collection::vec((any::<u16>(), name(), any::<u16>()), 0..3)
        .prop_map(|s| s.into_iter().map(|(shard, host, port)| ShardAddr { shard, host, port }).collect())
}

fn nodes() -> impl Strategy<Value = Vec<NodeInfo>> {
    proptest::collection::vec((any::<u32>(), name(), any::<u16>(), shard_addrs()), 0..3).prop_map(|n| {
        n.into_iter().map(|(node_id, host, port, shards)| NodeInfo { node_id, host, port, shards }).collect()
    })
}

/// A topic; `with_health` as in DescribeTopic from version 2 on, `with_replication` as in
/// Metadata from version 2 and DescribeTopic from version 3 on.
fn topic_info(with_health: bool, with_replication: bool) -> impl Strategy<Value = TopicInfo> {
    let health = health().prop_map(move |h| with_health.then_some(h));
    let replication = replication().prop_map(move |r| with_replication.then_some(r));
    (
        name(),
        config(),
        proptest::collection::vec(
            (any::<u32>(), any::<u16>(), any::<u64>(), any::<u64>(), health, replication),
            0..5,
        ),
    )
        .prop_map(|(name, config, ps)| TopicInfo {
            name,
            error: ErrorCode::None,
            config,
            partitions: ps
                .into_iter()
                .map(|(partition, shard, log_start, log_end, health, replication)| PartitionInfo {
                    partition,
                    shard,
                    log_start,
                    log_end,
                    health,
                    replication,
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
        (shard_addrs(), nodes(), proptest::collection::vec(topic_info(false, true), 0..3))
            .prop_map(|(shards, nodes, topics)| Response::Metadata { shards, nodes, topics }),
        (err.clone(), name()).prop_map(|(error, message)| Response::CreateTopic { error, message }),
        topic_info(true, true).prop_map(|topic| Response::DescribeTopic { topic }),
        (proptest::collection::vec(node_status(), 0..3), proptest::collection::vec(under_replicated(), 0..3))
            .prop_map(|(nodes, under_replicated)| Response::ClusterStatus { nodes, under_replicated }),
        (err.clone(), any::<u64>(), any::<u64>()).prop_map(|(error, base_offset, log_start)| {
            Response::Produce { error, message: String::new(), base_offset, log_start }
        }),
        (err, any::<u64>(), any::<u64>()).prop_map(move |(error, high_watermark, log_start)| {
            Response::Fetch { error, message: "m".into(), high_watermark, log_start, batches }
        }),
        proptest::collection::vec(any::<((u16, u64, u64, u64), [u64; 8])>(), 0..4).prop_map(|s| {
            Response::NodeStats {
                shards: s
                    .into_iter()
                    .map(|((shard, connections, requests, forwarded), c)| ShardStats {
                        shard,
                        connections,
                        requests,
                        forwarded,
                        batch_cache: BatchCacheStats {
                            bytes: c[0],
                            bytes_max: c[1],
                            batches: c[2],
                            hits: c[3],
                            hit_bytes: c[4],
                            misses: c[5],
                            miss_bytes: c[6],
                            evictions: c[7],
                        },
                    })
                    .collect(),
            }
        }),
    ]
}

fn node_status() -> impl Strategy<Value = NodeStatus> {
    (any::<u32>(), name(), any::<u16>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(node_id, host, port, up, controller, voter)| NodeStatus {
            node_id,
            host,
            port,
            up,
            controller,
            role: if voter { NodeRole::Voter } else { NodeRole::Learner },
        },
    )
}

fn under_replicated() -> impl Strategy<Value = UnderReplicated> {
    (name(), any::<u32>(), ids(), ids()).prop_map(|(topic, partition, replicas, isr)| UnderReplicated {
        topic,
        partition,
        replicas,
        isr,
    })
}

const BATCHES: [u8; 48] = [7u8; 48];

proptest! {
    #[test]
    fn requests_round_trip(req in request(&BATCHES)) {
        let mut w = Writer::default();
        req.encode(&mut w).unwrap();
        // A request is encoded in the latest version of its API.
        let frame = encode_frame(req.api_key() as u16, req.api_key().latest_version(), 42, 0, &w.buf);
        let mut d = FrameDecoder::new(1 << 20);
        d.feed(&frame);
        let (h, frame) = d.next_frame().unwrap().unwrap();
        prop_assert_eq!(h.correlation_id, 42);
        let back = Request::decode(h.api_key, h.api_version, &frame[FRAME_HEADER_BYTES..]).unwrap();
        prop_assert_eq!(back, req);
    }

    #[test]
    fn group_messages_round_trip(req in group_request(), resp in group_response()) {
        let mut w = Writer::default();
        req.encode(&mut w).unwrap();
        prop_assert_eq!(Request::decode(req.api_key() as u16, req.api_key().latest_version(), &w.buf).unwrap(), req);
        let mut w = Writer::default();
        resp.encode(&mut w).unwrap();
        prop_assert_eq!(Response::decode(resp.api_key(), &w.buf).unwrap(), resp);
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
    fn garbage_never_panics(api in 0u16..19, version in 0u16..5, body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::decode(api, version, &body);
        if let Ok(api) = ApiKey::from_u16(api) {
            let _ = Response::decode_version(api, version, &body);
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
        Request::CreateTopic {
            name: long.clone(),
            partitions: 1,
            config: TopicConfig::default(),
            replication_factor: 1,
            min_insync_replicas: None,
        },
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

fn described(health: Option<PartitionHealth>) -> Response<'static> {
    described_replicated(health, None)
}

fn described_replicated(
    health: Option<PartitionHealth>,
    replication: Option<PartitionReplication>,
) -> Response<'static> {
    let partition = PartitionInfo { partition: 0, shard: 1, log_start: 5, log_end: 9, health, replication };
    let topic = TopicInfo {
        name: "t".into(),
        error: ErrorCode::None,
        config: TopicConfig::default(),
        partitions: vec![partition],
    };
    Response::DescribeTopic { topic }
}

/// DescribeTopic version 1 keeps its layout for clients that ask for it (no health); version 2
/// carries each partition's health; a version-2 answer without it is refused, not guessed.
#[test]
fn describe_topic_health_is_in_version_2_only() {
    let (lowest, highest) = ApiKey::DescribeTopic.versions();
    assert_eq!((lowest, highest), (1, DESCRIBE_TOPIC_CLEANUP_VERSION));
    assert!(Request::decode(ApiKey::DescribeTopic as u16, 2, &[1, 0, b't']).is_ok());
    assert!(Request::decode(ApiKey::DescribeTopic as u16, highest + 1, &[1, 0, b't']).is_err());
    let health = PartitionHealth {
        state: PartitionState::Offline { cause: "cannot open".into(), retry_in_ms: Some(2000) },
        damaged: vec![DamagedRangeInfo { segment: 0, first_offset: 3, last_offset: 4, reason: "crc".into() }],
    };
    let resp = described(Some(health));
    let mut v1 = Writer::default();
    resp.encode_version(1, &mut v1).unwrap();
    assert_eq!(Response::decode_version(ApiKey::DescribeTopic, 1, &v1.buf).unwrap(), described(None));
    let mut v2 = Writer::default();
    resp.encode_version(2, &mut v2).unwrap();
    assert_eq!(Response::decode_version(ApiKey::DescribeTopic, 2, &v2.buf).unwrap(), resp);
    assert_eq!(
        described(None).encode_version(2, &mut Writer::default()),
        Err(EncodeError::MissingField { field: "partition health" })
    );
}

/// A forged count of damaged ranges is refused against the bytes left before anything is
/// allocated for them.
#[test]
fn a_huge_damaged_range_count_is_refused_not_allocated() {
    let mut w = Writer::default();
    described(Some(PartitionHealth::online())).encode_version(2, &mut w).unwrap();
    // The count is the body's last four bytes: the partition has no damaged ranges.
    let at = w.buf.len() - 4;
    assert_eq!(w.buf[at..], [0, 0, 0, 0]);
    for forged in [u32::MAX, 1 << 20, 1] {
        let mut body = w.buf.clone();
        body[at..].copy_from_slice(&forged.to_le_bytes());
        // `needed` is the whole forged array's: the count itself was refused, before any item.
        let needed = forged as usize * 26;
        assert_eq!(
            Response::decode_version(ApiKey::DescribeTopic, 2, &body),
            Err(DecodeError::Truncated { at: body.len(), needed }),
            "count {forged}"
        );
    }
    // A bad state byte is refused too: it is the first byte after the bounds.
    let mut body = w.buf.clone();
    body[at - 8 - 2 - 1] = 7;
    assert_eq!(
        Response::decode_version(ApiKey::DescribeTopic, 2, &body),
        Err(DecodeError::BadValue { field: "partition state", value: 7 })
    );
}

fn replicated(leader: Option<u32>) -> PartitionReplication {
    PartitionReplication {
        leader,
        leader_shard: 1,
        leader_epoch: 7,
        replicas: vec![3, 1, 2],
        isr: vec![3, 1],
        high_watermark: 9,
        log_end: 11,
    }
}

/// DescribeTopic version 3 adds each partition's leader, replicas and ISR after its health;
/// versions 1 and 2 keep their layouts, and a version-3 answer without them is refused.
#[test]
fn describe_topic_replication_is_in_version_3_only() {
    let resp = described_replicated(Some(PartitionHealth::online()), Some(replicated(Some(3))));
    for (version, expected) in [
        (1, described(None)),
        (DESCRIBE_TOPIC_HEALTH_VERSION, described(Some(PartitionHealth::online()))),
        (DESCRIBE_TOPIC_REPLICATION_VERSION, resp.clone()),
    ] {
        let mut w = Writer::default();
        resp.encode_version(version, &mut w).unwrap();
        assert_eq!(Response::decode_version(ApiKey::DescribeTopic, version, &w.buf).unwrap(), expected);
    }
    assert_eq!(
        described(Some(PartitionHealth::online())).encode_version(3, &mut Writer::default()),
        Err(EncodeError::MissingField { field: "partition replication" })
    );
    // No leader (an election) is carried as such, not as some node id.
    let leaderless = described_replicated(Some(PartitionHealth::online()), Some(replicated(None)));
    let mut w = Writer::default();
    leaderless.encode_version(3, &mut w).unwrap();
    assert_eq!(Response::decode_version(ApiKey::DescribeTopic, 3, &w.buf).unwrap(), leaderless);
}

fn metadata_v2() -> Response<'static> {
    let shards = vec![ShardAddr { shard: 0, host: "10.0.0.1".into(), port: 7401 }];
    let nodes = vec![
        NodeInfo { node_id: 3, host: "10.0.0.3".into(), port: 7400, shards: shards.clone() },
        NodeInfo { node_id: 1, host: "10.0.0.1".into(), port: 7400, shards: vec![] },
    ];
    let partitions = vec![PartitionInfo {
        partition: 0,
        shard: 1,
        log_start: 0,
        log_end: 0,
        health: None,
        replication: Some(replicated(Some(3))),
    }];
    let topic =
        TopicInfo { name: "t".into(), error: ErrorCode::None, config: TopicConfig::default(), partitions };
    Response::Metadata { shards, nodes, topics: vec![topic] }
}

/// Metadata version 2 lists the nodes and each partition's leader; version 1 keeps its layout
/// (the answering node's shards and the partitions' owners only).
#[test]
fn metadata_lists_nodes_and_leaders_from_version_2() {
    assert_eq!(ApiKey::Metadata.versions(), (1, METADATA_CLEANUP_VERSION));
    let resp = metadata_v2();
    let mut w = Writer::default();
    resp.encode_version(METADATA_CLUSTER_VERSION, &mut w).unwrap();
    assert_eq!(Response::decode_version(ApiKey::Metadata, 2, &w.buf).unwrap(), resp);
    let mut v1 = Writer::default();
    resp.encode_version(1, &mut v1).unwrap();
    let Response::Metadata { shards, nodes, topics } =
        Response::decode_version(ApiKey::Metadata, 1, &v1.buf).unwrap()
    else {
        panic!("not a Metadata answer")
    };
    assert_eq!(shards.len(), 1);
    assert!(nodes.is_empty());
    assert_eq!(topics[0].partitions[0].replication, None);
    // Decoding version-1 bytes as version 2 does not guess: it fails, typed.
    assert!(Response::decode_version(ApiKey::Metadata, 2, &v1.buf).is_err());
}

/// CreateTopic version 1 (no replication fields) reads as one replica and the default minimum.
#[test]
fn create_topic_version_1_is_one_replica() {
    let mut w = Writer::default();
    w.str("topic", "t").unwrap().u32(3).u64(u64::MAX).u64(u64::MAX);
    assert_eq!(
        Request::decode(ApiKey::CreateTopic as u16, 1, &w.buf).unwrap(),
        Request::CreateTopic {
            name: "t".into(),
            partitions: 3,
            config: TopicConfig::default(),
            replication_factor: 1,
            min_insync_replicas: None,
        }
    );
    // The same bytes are short for version 2, and the version-2 fields are trailing in 1.
    assert!(matches!(
        Request::decode(ApiKey::CreateTopic as u16, CREATE_TOPIC_REPLICATION_VERSION, &w.buf),
        Err(DecodeError::Truncated { .. })
    ));
    w.u16(3).u16(2);
    assert_eq!(
        Request::decode(ApiKey::CreateTopic as u16, 1, &w.buf),
        Err(DecodeError::TrailingBytes { left: 4 })
    );
    let Request::CreateTopic { replication_factor, min_insync_replicas, .. } =
        Request::decode(ApiKey::CreateTopic as u16, 2, &w.buf).unwrap()
    else {
        panic!("not a CreateTopic")
    };
    assert_eq!((replication_factor, min_insync_replicas), (3, Some(2)));
    assert_eq!(weir_net::api::default_min_insync_replicas(3), 2);
    assert_eq!(weir_net::api::default_min_insync_replicas(1), 1);
}

/// Malformed cluster answers get typed errors: bad flags and roles, forged counts.
#[test]
fn malformed_cluster_answers_get_typed_errors() {
    let status = Response::ClusterStatus {
        nodes: vec![NodeStatus {
            node_id: 0,
            host: "h".into(),
            port: 1,
            up: true,
            controller: true,
            role: NodeRole::Voter,
        }],
        under_replicated: vec![],
    };
    let mut w = Writer::default();
    status.encode(&mut w).unwrap();
    assert_eq!(Response::decode(ApiKey::ClusterStatus, &w.buf).unwrap(), status);
    // Layout: count (4), id (4), host (2 + 1), port (2), up, controller, role, then the
    // under-replicated count (4).
    let (up, role) = (4 + 4 + 3 + 2, 4 + 4 + 3 + 2 + 2);
    for (at, value, field) in [(up, 2, "node up"), (up + 1, 9, "node is controller"), (role, 2, "node role")]
    {
        let mut body = w.buf.clone();
        body[at] = value;
        assert_eq!(
            Response::decode(ApiKey::ClusterStatus, &body),
            Err(DecodeError::BadValue { field, value: u64::from(value) })
        );
    }
    let mut body = w.buf.clone();
    let at = body.len() - 4;
    body[at..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(Response::decode(ApiKey::ClusterStatus, &body), Err(DecodeError::Truncated { .. })));
    // A partition's leader flag must be 0 or 1; it is the first byte after the bounds.
    let mut w2 = Writer::default();
    described_replicated(Some(PartitionHealth::online()), Some(replicated(Some(1))))
        .encode_version(3, &mut w2)
        .unwrap();
    let health_end = w2.buf.len() - (1 + 4 + 2 + 4 + (4 + 12) + (4 + 8) + 8 + 8);
    let mut body = w2.buf.clone();
    body[health_end] = 5;
    assert_eq!(
        Response::decode_version(ApiKey::DescribeTopic, 3, &body),
        Err(DecodeError::BadValue { field: "has leader", value: 5 })
    );
    // acks=all is 2 on the wire; 3 is malformed.
    let mut w = Writer::default();
    w.str("topic", "t").unwrap().u32(0).u8(2).u32(0).batches(&[]).unwrap();
    assert!(matches!(
        Request::decode(ApiKey::Produce as u16, 1, &w.buf),
        Ok(Request::Produce { acks: Acks::All, .. })
    ));
    w.buf[2 + 1 + 4] = 3;
    assert_eq!(
        Request::decode(ApiKey::Produce as u16, 1, &w.buf),
        Err(DecodeError::BadValue { field: "acks", value: 3 })
    );
}

/// The new codes keep their values and are retriable; those that mean "ask where the leader
/// is" say so.
#[test]
fn replication_error_codes_are_stable_and_retriable() {
    for (v, code, refresh) in [
        (15, ErrorCode::NotLeader, true),
        (16, ErrorCode::NotEnoughReplicas, false),
        (17, ErrorCode::LeaderNotAvailable, true),
        (18, ErrorCode::RequestTimedOut, false),
    ] {
        assert_eq!(ErrorCode::from_u16(v), code);
        assert_eq!(code as u16, v);
        assert!(code.is_retriable(), "{code:?}");
        assert_eq!(code.needs_metadata_refresh(), refresh, "{code:?}");
    }
    assert!(ErrorCode::RequestTimedOut.outcome_unknown());
    assert!(!ErrorCode::NotEnoughReplicas.outcome_unknown());
    assert!(!ErrorCode::UnknownTopic.is_retriable());
}

/// The cleanup settings travel from CreateTopic version 3, Metadata version 3 and DescribeTopic
/// version 4 on; older versions keep their layouts and read as the default policy.
#[test]
fn cleanup_settings_are_in_their_versions_only() {
    let config = TopicConfig {
        retention_ms: Some(7),
        retention_bytes: None,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: Some(1_000),
    };
    let create = |config| Request::CreateTopic {
        name: "t".into(),
        partitions: 2,
        config,
        replication_factor: 3,
        min_insync_replicas: None,
    };
    let mut w = Writer::default();
    create(config).encode(&mut w).unwrap();
    let latest = Request::decode(ApiKey::CreateTopic as u16, CREATE_TOPIC_CLEANUP_VERSION, &w.buf).unwrap();
    assert_eq!(latest, create(config));
    // The same bytes carry 9 trailing bytes for version 2, which is refused, not guessed at.
    assert!(Request::decode(ApiKey::CreateTopic as u16, CREATE_TOPIC_REPLICATION_VERSION, &w.buf).is_err());

    let Response::DescribeTopic { topic } = described(None) else { unreachable!() };
    let resp = Response::DescribeTopic { topic: TopicInfo { config, ..topic } };
    for (version, policy) in [
        (DESCRIBE_TOPIC_HEALTH_VERSION - 1, CleanupPolicy::Delete),
        (DESCRIBE_TOPIC_CLEANUP_VERSION, config.cleanup_policy),
    ] {
        let mut resp = resp.clone();
        if version >= DESCRIBE_TOPIC_HEALTH_VERSION {
            let Response::DescribeTopic { topic } = &mut resp else { unreachable!() };
            topic.partitions[0].health = Some(PartitionHealth::online());
            topic.partitions[0].replication = Some(replicated(Some(1)));
        }
        let mut w = Writer::default();
        resp.encode_version(version, &mut w).unwrap();
        let Response::DescribeTopic { topic } =
            Response::decode_version(ApiKey::DescribeTopic, version, &w.buf).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(topic.config.cleanup_policy, policy, "version {version}");
        assert_eq!(topic.config.retention_ms, Some(7));
    }
    let Response::Metadata { shards, nodes, mut topics } = metadata_v2() else { unreachable!() };
    topics[0].config = config;
    let resp = Response::Metadata { shards, nodes, topics };
    let mut w = Writer::default();
    resp.encode_version(METADATA_CLEANUP_VERSION, &mut w).unwrap();
    assert_eq!(Response::decode_version(ApiKey::Metadata, METADATA_CLEANUP_VERSION, &w.buf).unwrap(), resp);
}

/// Policies are named as Kafka names them, either order for both; anything else is refused.
#[test]
fn cleanup_policies_parse_as_kafka_names_them() {
    for (text, policy) in [
        ("delete", CleanupPolicy::Delete),
        ("compact", CleanupPolicy::Compact),
        ("compact,delete", CleanupPolicy::CompactDelete),
        ("delete, compact", CleanupPolicy::CompactDelete),
    ] {
        assert_eq!(text.parse::<CleanupPolicy>(), Ok(policy), "{text}");
        assert_eq!(policy.to_string().parse::<CleanupPolicy>(), Ok(policy));
    }
    for bad in ["", "compacted", "compact,compact", "delete,", "Delete"] {
        assert!(bad.parse::<CleanupPolicy>().is_err(), "{bad:?}");
    }
    assert!(CleanupPolicy::Compact.compacts() && !CleanupPolicy::Compact.deletes());
    assert!(CleanupPolicy::CompactDelete.compacts() && CleanupPolicy::CompactDelete.deletes());
}

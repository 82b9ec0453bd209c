//! The request schemas, one table per API, transcribed from Kafka's message definitions
//! (`*Request.json`) for the versions listed in each `Message`. Field names follow the
//! definitions in snake case; `MAX` marks a field still present at its message's highest
//! version.

use super::schema::{Field, Kind, MAX, Message, Struct, TaggedField};

// ApiVersions (API key 18).
const API_VERSIONS: Message = Message {
    api_key: 18,
    min_version: 0,
    max_version: 4,
    flexible_from: 3,
    body: Struct::new(&[
        Field::new("client_software_name", Kind::String, 3, MAX),
        Field::new("client_software_version", Kind::String, 3, MAX),
    ]),
};

// Metadata (API key 3).
const METADATA_REQUEST_TOPIC: Struct = Struct::new(&[
    Field::new("topic_id", Kind::Uuid, 10, MAX),
    Field::new("name", Kind::NullableString, 0, MAX),
]);
const METADATA: Message = Message {
    api_key: 3,
    min_version: 0,
    max_version: 12,
    flexible_from: 9,
    body: Struct::new(&[
        Field::new("topics", Kind::NullableArray(&Kind::Struct(&METADATA_REQUEST_TOPIC)), 0, MAX),
        Field::new("allow_auto_topic_creation", Kind::Bool, 4, MAX),
        Field::new("include_cluster_authorized_operations", Kind::Bool, 8, 10),
        Field::new("include_topic_authorized_operations", Kind::Bool, 8, MAX),
    ]),
};

// Produce (API key 0).
const PARTITION_PRODUCE_DATA: Struct =
    Struct::new(&[Field::new("index", Kind::Int32, 0, MAX), Field::new("records", Kind::Records, 0, MAX)]);
const TOPIC_PRODUCE_DATA: Struct = Struct::new(&[
    Field::new("name", Kind::String, 0, MAX),
    Field::new("partition_data", Kind::Array(&Kind::Struct(&PARTITION_PRODUCE_DATA)), 0, MAX),
]);
const PRODUCE: Message = Message {
    api_key: 0,
    min_version: 0,
    max_version: 11,
    flexible_from: 9,
    body: Struct::new(&[
        Field::new("transactional_id", Kind::NullableString, 3, MAX),
        Field::new("acks", Kind::Int16, 0, MAX),
        Field::new("timeout_ms", Kind::Int32, 0, MAX),
        Field::new("topic_data", Kind::Array(&Kind::Struct(&TOPIC_PRODUCE_DATA)), 0, MAX),
    ]),
};

// Fetch (API key 1).
const FETCH_PARTITION: Struct = Struct::new(&[
    Field::new("partition", Kind::Int32, 4, MAX),
    Field::new("current_leader_epoch", Kind::Int32, 9, MAX),
    Field::new("fetch_offset", Kind::Int64, 4, MAX),
    Field::new("last_fetched_epoch", Kind::Int32, 12, MAX),
    Field::new("log_start_offset", Kind::Int64, 5, MAX),
    Field::new("partition_max_bytes", Kind::Int32, 4, MAX),
]);
const FETCH_TOPIC: Struct = Struct::new(&[
    Field::new("topic", Kind::String, 4, MAX),
    Field::new("partitions", Kind::Array(&Kind::Struct(&FETCH_PARTITION)), 4, MAX),
]);
const FORGOTTEN_TOPIC: Struct = Struct::new(&[
    Field::new("topic", Kind::String, 7, MAX),
    Field::new("partitions", Kind::Array(&Kind::Int32), 7, MAX),
]);
const FETCH: Message = Message {
    api_key: 1,
    min_version: 4,
    max_version: 12,
    flexible_from: 12,
    body: Struct::with_tagged(
        &[
            Field::new("replica_id", Kind::Int32, 4, MAX),
            Field::new("max_wait_ms", Kind::Int32, 4, MAX),
            Field::new("min_bytes", Kind::Int32, 4, MAX),
            Field::new("max_bytes", Kind::Int32, 4, MAX),
            Field::new("isolation_level", Kind::Int8, 4, MAX),
            Field::new("session_id", Kind::Int32, 7, MAX),
            Field::new("session_epoch", Kind::Int32, 7, MAX),
            Field::new("topics", Kind::Array(&Kind::Struct(&FETCH_TOPIC)), 4, MAX),
            Field::new("forgotten_topics_data", Kind::Array(&Kind::Struct(&FORGOTTEN_TOPIC)), 7, MAX),
            Field::new("rack_id", Kind::String, 11, MAX),
        ],
        &[TaggedField { tag: 0, field: Field::new("cluster_id", Kind::NullableString, 12, MAX) }],
    ),
};

// ListOffsets (API key 2).
const LIST_OFFSETS_PARTITION: Struct = Struct::new(&[
    Field::new("partition_index", Kind::Int32, 1, MAX),
    Field::new("current_leader_epoch", Kind::Int32, 4, MAX),
    Field::new("timestamp", Kind::Int64, 1, MAX),
]);
const LIST_OFFSETS_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 1, MAX),
    Field::new("partitions", Kind::Array(&Kind::Struct(&LIST_OFFSETS_PARTITION)), 1, MAX),
]);
const LIST_OFFSETS: Message = Message {
    api_key: 2,
    min_version: 1,
    max_version: 7,
    flexible_from: 6,
    body: Struct::new(&[
        Field::new("replica_id", Kind::Int32, 1, MAX),
        Field::new("isolation_level", Kind::Int8, 2, MAX),
        Field::new("topics", Kind::Array(&Kind::Struct(&LIST_OFFSETS_TOPIC)), 1, MAX),
    ]),
};

// FindCoordinator (API key 10).
const FIND_COORDINATOR: Message = Message {
    api_key: 10,
    min_version: 0,
    max_version: 4,
    flexible_from: 3,
    body: Struct::new(&[
        Field::new("key", Kind::String, 0, 3),
        Field::new("key_type", Kind::Int8, 1, MAX),
        Field::new("coordinator_keys", Kind::Array(&Kind::String), 4, MAX),
    ]),
};

// JoinGroup (API key 11).
const JOIN_GROUP_REQUEST_PROTOCOL: Struct =
    Struct::new(&[Field::new("name", Kind::String, 0, MAX), Field::new("metadata", Kind::Bytes, 0, MAX)]);
const JOIN_GROUP: Message = Message {
    api_key: 11,
    min_version: 0,
    max_version: 9,
    flexible_from: 6,
    body: Struct::new(&[
        Field::new("group_id", Kind::String, 0, MAX),
        Field::new("session_timeout_ms", Kind::Int32, 0, MAX),
        Field::new("rebalance_timeout_ms", Kind::Int32, 1, MAX),
        Field::new("member_id", Kind::String, 0, MAX),
        Field::new("group_instance_id", Kind::NullableString, 5, MAX),
        Field::new("protocol_type", Kind::String, 0, MAX),
        Field::new("protocols", Kind::Array(&Kind::Struct(&JOIN_GROUP_REQUEST_PROTOCOL)), 0, MAX),
        Field::new("reason", Kind::NullableString, 8, MAX),
    ]),
};

// SyncGroup (API key 14).
const SYNC_GROUP_REQUEST_ASSIGNMENT: Struct = Struct::new(&[
    Field::new("member_id", Kind::String, 0, MAX),
    Field::new("assignment", Kind::Bytes, 0, MAX),
]);
const SYNC_GROUP: Message = Message {
    api_key: 14,
    min_version: 0,
    max_version: 5,
    flexible_from: 4,
    body: Struct::new(&[
        Field::new("group_id", Kind::String, 0, MAX),
        Field::new("generation_id", Kind::Int32, 0, MAX),
        Field::new("member_id", Kind::String, 0, MAX),
        Field::new("group_instance_id", Kind::NullableString, 3, MAX),
        Field::new("protocol_type", Kind::NullableString, 5, MAX),
        Field::new("protocol_name", Kind::NullableString, 5, MAX),
        Field::new("assignments", Kind::Array(&Kind::Struct(&SYNC_GROUP_REQUEST_ASSIGNMENT)), 0, MAX),
    ]),
};

// Heartbeat (API key 12).
const HEARTBEAT: Message = Message {
    api_key: 12,
    min_version: 0,
    max_version: 4,
    flexible_from: 4,
    body: Struct::new(&[
        Field::new("group_id", Kind::String, 0, MAX),
        Field::new("generation_id", Kind::Int32, 0, MAX),
        Field::new("member_id", Kind::String, 0, MAX),
        Field::new("group_instance_id", Kind::NullableString, 3, MAX),
    ]),
};

// LeaveGroup (API key 13).
const MEMBER_IDENTITY: Struct = Struct::new(&[
    Field::new("member_id", Kind::String, 3, MAX),
    Field::new("group_instance_id", Kind::NullableString, 3, MAX),
    Field::new("reason", Kind::NullableString, 5, MAX),
]);
const LEAVE_GROUP: Message = Message {
    api_key: 13,
    min_version: 0,
    max_version: 5,
    flexible_from: 4,
    body: Struct::new(&[
        Field::new("group_id", Kind::String, 0, MAX),
        Field::new("member_id", Kind::String, 0, 2),
        Field::new("members", Kind::Array(&Kind::Struct(&MEMBER_IDENTITY)), 3, MAX),
    ]),
};

// OffsetCommit (API key 8).
const OFFSET_COMMIT_REQUEST_PARTITION: Struct = Struct::new(&[
    Field::new("partition_index", Kind::Int32, 2, MAX),
    Field::new("committed_offset", Kind::Int64, 2, MAX),
    Field::new("committed_leader_epoch", Kind::Int32, 6, MAX),
    Field::new("committed_metadata", Kind::NullableString, 2, MAX),
]);
const OFFSET_COMMIT_REQUEST_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 2, MAX),
    Field::new("partitions", Kind::Array(&Kind::Struct(&OFFSET_COMMIT_REQUEST_PARTITION)), 2, MAX),
]);
const OFFSET_COMMIT: Message = Message {
    api_key: 8,
    min_version: 2,
    max_version: 8,
    flexible_from: 8,
    body: Struct::new(&[
        Field::new("group_id", Kind::String, 2, MAX),
        Field::new("generation_id_or_member_epoch", Kind::Int32, 2, MAX),
        Field::new("member_id", Kind::String, 2, MAX),
        Field::new("group_instance_id", Kind::NullableString, 7, MAX),
        Field::new("retention_time_ms", Kind::Int64, 2, 4),
        Field::new("topics", Kind::Array(&Kind::Struct(&OFFSET_COMMIT_REQUEST_TOPIC)), 2, MAX),
    ]),
};

// OffsetFetch (API key 9).
const OFFSET_FETCH_REQUEST_GROUP: Struct = Struct::new(&[
    Field::new("group_id", Kind::String, 8, MAX),
    Field::new("topics", Kind::NullableArray(&Kind::Struct(&OFFSET_FETCH_REQUEST_TOPICS)), 8, MAX),
]);
const OFFSET_FETCH_REQUEST_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 1, 7),
    Field::new("partition_indexes", Kind::Array(&Kind::Int32), 1, 7),
]);
const OFFSET_FETCH_REQUEST_TOPICS: Struct = Struct::new(&[
    Field::new("name", Kind::String, 8, MAX),
    Field::new("partition_indexes", Kind::Array(&Kind::Int32), 8, MAX),
]);
const OFFSET_FETCH: Message = Message {
    api_key: 9,
    min_version: 1,
    max_version: 8,
    flexible_from: 6,
    body: Struct::new(&[
        Field::new("group_id", Kind::String, 1, 7),
        Field::new("topics", Kind::NullableArray(&Kind::Struct(&OFFSET_FETCH_REQUEST_TOPIC)), 1, 7),
        Field::new("groups", Kind::Array(&Kind::Struct(&OFFSET_FETCH_REQUEST_GROUP)), 8, MAX),
        Field::new("require_stable", Kind::Bool, 7, MAX),
    ]),
};

// ListGroups (API key 16).
const LIST_GROUPS: Message = Message {
    api_key: 16,
    min_version: 0,
    max_version: 4,
    flexible_from: 3,
    body: Struct::new(&[Field::new("states_filter", Kind::Array(&Kind::String), 4, MAX)]),
};

// DescribeGroups (API key 15).
const DESCRIBE_GROUPS: Message = Message {
    api_key: 15,
    min_version: 0,
    max_version: 5,
    flexible_from: 5,
    body: Struct::new(&[
        Field::new("groups", Kind::Array(&Kind::String), 0, MAX),
        Field::new("include_authorized_operations", Kind::Bool, 3, MAX),
    ]),
};

// CreateTopics (API key 19).
const CREATABLE_REPLICA_ASSIGNMENT: Struct = Struct::new(&[
    Field::new("partition_index", Kind::Int32, 2, MAX),
    Field::new("broker_ids", Kind::Array(&Kind::Int32), 2, MAX),
]);
const CREATABLE_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 2, MAX),
    Field::new("num_partitions", Kind::Int32, 2, MAX),
    Field::new("replication_factor", Kind::Int16, 2, MAX),
    Field::new("assignments", Kind::Array(&Kind::Struct(&CREATABLE_REPLICA_ASSIGNMENT)), 2, MAX),
    Field::new("configs", Kind::Array(&Kind::Struct(&CREATABLE_TOPIC_CONFIG)), 2, MAX),
]);
const CREATABLE_TOPIC_CONFIG: Struct = Struct::new(&[
    Field::new("name", Kind::String, 2, MAX),
    Field::new("value", Kind::NullableString, 2, MAX),
]);
const CREATE_TOPICS: Message = Message {
    api_key: 19,
    min_version: 2,
    max_version: 7,
    flexible_from: 5,
    body: Struct::new(&[
        Field::new("topics", Kind::Array(&Kind::Struct(&CREATABLE_TOPIC)), 2, MAX),
        Field::new("timeout_ms", Kind::Int32, 2, MAX),
        Field::new("validate_only", Kind::Bool, 2, MAX),
    ]),
};

// DeleteTopics (API key 20).
const DELETE_TOPIC_STATE: Struct = Struct::new(&[
    Field::new("name", Kind::NullableString, 6, MAX),
    Field::new("topic_id", Kind::Uuid, 6, MAX),
]);
const DELETE_TOPICS: Message = Message {
    api_key: 20,
    min_version: 1,
    max_version: 6,
    flexible_from: 4,
    body: Struct::new(&[
        Field::new("topics", Kind::Array(&Kind::Struct(&DELETE_TOPIC_STATE)), 6, MAX),
        Field::new("topic_names", Kind::Array(&Kind::String), 1, 5),
        Field::new("timeout_ms", Kind::Int32, 1, MAX),
    ]),
};

// DeleteRecords (API key 21).
const DELETE_RECORDS_PARTITION: Struct = Struct::new(&[
    Field::new("partition_index", Kind::Int32, 0, MAX),
    Field::new("offset", Kind::Int64, 0, MAX),
]);
const DELETE_RECORDS_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 0, MAX),
    Field::new("partitions", Kind::Array(&Kind::Struct(&DELETE_RECORDS_PARTITION)), 0, MAX),
]);
const DELETE_RECORDS: Message = Message {
    api_key: 21,
    min_version: 0,
    max_version: 2,
    flexible_from: 2,
    body: Struct::new(&[
        Field::new("topics", Kind::Array(&Kind::Struct(&DELETE_RECORDS_TOPIC)), 0, MAX),
        Field::new("timeout_ms", Kind::Int32, 0, MAX),
    ]),
};

// CreatePartitions (API key 37).
const CREATE_PARTITIONS_ASSIGNMENT: Struct =
    Struct::new(&[Field::new("broker_ids", Kind::Array(&Kind::Int32), 0, MAX)]);
const CREATE_PARTITIONS_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 0, MAX),
    Field::new("count", Kind::Int32, 0, MAX),
    Field::new("assignments", Kind::NullableArray(&Kind::Struct(&CREATE_PARTITIONS_ASSIGNMENT)), 0, MAX),
]);
const CREATE_PARTITIONS: Message = Message {
    api_key: 37,
    min_version: 0,
    max_version: 3,
    flexible_from: 2,
    body: Struct::new(&[
        Field::new("topics", Kind::Array(&Kind::Struct(&CREATE_PARTITIONS_TOPIC)), 0, MAX),
        Field::new("timeout_ms", Kind::Int32, 0, MAX),
        Field::new("validate_only", Kind::Bool, 0, MAX),
    ]),
};

// InitProducerId (API key 22).
const INIT_PRODUCER_ID: Message = Message {
    api_key: 22,
    min_version: 0,
    max_version: 4,
    flexible_from: 2,
    body: Struct::new(&[
        Field::new("transactional_id", Kind::NullableString, 0, MAX),
        Field::new("transaction_timeout_ms", Kind::Int32, 0, MAX),
        Field::new("producer_id", Kind::Int64, 3, MAX),
        Field::new("producer_epoch", Kind::Int16, 3, MAX),
    ]),
};

// OffsetForLeaderEpoch (API key 23).
const OFFSET_FOR_LEADER_PARTITION: Struct = Struct::new(&[
    Field::new("partition", Kind::Int32, 2, MAX),
    Field::new("current_leader_epoch", Kind::Int32, 2, MAX),
    Field::new("leader_epoch", Kind::Int32, 2, MAX),
]);
const OFFSET_FOR_LEADER_TOPIC: Struct = Struct::new(&[
    Field::new("topic", Kind::String, 2, MAX),
    Field::new("partitions", Kind::Array(&Kind::Struct(&OFFSET_FOR_LEADER_PARTITION)), 2, MAX),
]);
const OFFSET_FOR_LEADER_EPOCH: Message = Message {
    api_key: 23,
    min_version: 2,
    max_version: 4,
    flexible_from: 4,
    body: Struct::new(&[
        Field::new("replica_id", Kind::Int32, 3, MAX),
        Field::new("topics", Kind::Array(&Kind::Struct(&OFFSET_FOR_LEADER_TOPIC)), 2, MAX),
    ]),
};

// DescribeConfigs (API key 32).
const DESCRIBE_CONFIGS_RESOURCE: Struct = Struct::new(&[
    Field::new("resource_type", Kind::Int8, 1, MAX),
    Field::new("resource_name", Kind::String, 1, MAX),
    Field::new("configuration_keys", Kind::NullableArray(&Kind::String), 1, MAX),
]);
const DESCRIBE_CONFIGS: Message = Message {
    api_key: 32,
    min_version: 1,
    max_version: 4,
    flexible_from: 4,
    body: Struct::new(&[
        Field::new("resources", Kind::Array(&Kind::Struct(&DESCRIBE_CONFIGS_RESOURCE)), 1, MAX),
        Field::new("include_synonyms", Kind::Bool, 1, MAX),
        Field::new("include_documentation", Kind::Bool, 3, MAX),
    ]),
};

// AlterReplicaLogDirs (API key 34).
const ALTER_REPLICA_LOG_DIR_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 1, MAX),
    Field::new("partitions", Kind::Array(&Kind::Int32), 1, MAX),
]);
const ALTER_REPLICA_LOG_DIR: Struct = Struct::new(&[
    Field::new("path", Kind::String, 1, MAX),
    Field::new("topics", Kind::Array(&Kind::Struct(&ALTER_REPLICA_LOG_DIR_TOPIC)), 1, MAX),
]);
const ALTER_REPLICA_LOG_DIRS: Message = Message {
    api_key: 34,
    min_version: 1,
    max_version: 2,
    flexible_from: 2,
    body: Struct::new(&[Field::new("dirs", Kind::Array(&Kind::Struct(&ALTER_REPLICA_LOG_DIR)), 1, MAX)]),
};

// DescribeLogDirs (API key 35).
const DESCRIBABLE_LOG_DIR_TOPIC: Struct = Struct::new(&[
    Field::new("topic", Kind::String, 1, MAX),
    Field::new("partitions", Kind::Array(&Kind::Int32), 1, MAX),
]);
const DESCRIBE_LOG_DIRS: Message = Message {
    api_key: 35,
    min_version: 1,
    max_version: 4,
    flexible_from: 2,
    body: Struct::new(&[Field::new(
        "topics",
        Kind::NullableArray(&Kind::Struct(&DESCRIBABLE_LOG_DIR_TOPIC)),
        1,
        MAX,
    )]),
};

// DeleteGroups (API key 42).
const DELETE_GROUPS: Message = Message {
    api_key: 42,
    min_version: 0,
    max_version: 2,
    flexible_from: 2,
    body: Struct::new(&[Field::new("groups_names", Kind::Array(&Kind::String), 0, MAX)]),
};

// ElectLeaders (API key 43).
const ELECT_LEADERS_TOPIC_PARTITIONS: Struct = Struct::new(&[
    Field::new("topic", Kind::String, 0, MAX),
    Field::new("partitions", Kind::Array(&Kind::Int32), 0, MAX),
]);
const ELECT_LEADERS: Message = Message {
    api_key: 43,
    min_version: 0,
    max_version: 2,
    flexible_from: 2,
    body: Struct::new(&[
        Field::new("election_type", Kind::Int8, 1, MAX),
        Field::new(
            "topic_partitions",
            Kind::NullableArray(&Kind::Struct(&ELECT_LEADERS_TOPIC_PARTITIONS)),
            0,
            MAX,
        ),
        Field::new("timeout_ms", Kind::Int32, 0, MAX),
    ]),
};

// AlterPartitionReassignments (API key 45).
const REASSIGNABLE_PARTITION: Struct = Struct::new(&[
    Field::new("partition_index", Kind::Int32, 0, MAX),
    Field::new("replicas", Kind::NullableArray(&Kind::Int32), 0, MAX),
]);
const REASSIGNABLE_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 0, MAX),
    Field::new("partitions", Kind::Array(&Kind::Struct(&REASSIGNABLE_PARTITION)), 0, MAX),
]);
const ALTER_PARTITION_REASSIGNMENTS: Message = Message {
    api_key: 45,
    min_version: 0,
    max_version: 1,
    flexible_from: 0,
    body: Struct::new(&[
        Field::new("timeout_ms", Kind::Int32, 0, MAX),
        Field::new("allow_replication_factor_change", Kind::Bool, 1, MAX),
        Field::new("topics", Kind::Array(&Kind::Struct(&REASSIGNABLE_TOPIC)), 0, MAX),
    ]),
};

// ListPartitionReassignments (API key 46).
const LIST_PARTITION_REASSIGNMENTS_TOPICS: Struct = Struct::new(&[
    Field::new("name", Kind::String, 0, MAX),
    Field::new("partition_indexes", Kind::Array(&Kind::Int32), 0, MAX),
]);
const LIST_PARTITION_REASSIGNMENTS: Message = Message {
    api_key: 46,
    min_version: 0,
    max_version: 0,
    flexible_from: 0,
    body: Struct::new(&[
        Field::new("timeout_ms", Kind::Int32, 0, MAX),
        Field::new(
            "topics",
            Kind::NullableArray(&Kind::Struct(&LIST_PARTITION_REASSIGNMENTS_TOPICS)),
            0,
            MAX,
        ),
    ]),
};

// DescribeCluster (API key 60).
const DESCRIBE_CLUSTER: Message = Message {
    api_key: 60,
    min_version: 0,
    max_version: 1,
    flexible_from: 0,
    body: Struct::new(&[
        Field::new("include_cluster_authorized_operations", Kind::Bool, 0, MAX),
        Field::new("endpoint_type", Kind::Int8, 1, MAX),
    ]),
};

// CreateAcls (API key 30).
const ACL_CREATION: Struct = Struct::new(&[
    Field::new("resource_type", Kind::Int8, 1, MAX),
    Field::new("resource_name", Kind::String, 1, MAX),
    Field::new("resource_pattern_type", Kind::Int8, 1, MAX),
    Field::new("principal", Kind::String, 1, MAX),
    Field::new("host", Kind::String, 1, MAX),
    Field::new("operation", Kind::Int8, 1, MAX),
    Field::new("permission_type", Kind::Int8, 1, MAX),
]);
const CREATE_ACLS: Message = Message {
    api_key: 30,
    min_version: 1,
    max_version: 3,
    flexible_from: 2,
    body: Struct::new(&[Field::new("creations", Kind::Array(&Kind::Struct(&ACL_CREATION)), 1, MAX)]),
};

// DescribeAcls (API key 29) and DeleteAcls (API key 31) filter alike.
const ACL_FILTER_FIELDS: &[Field] = &[
    Field::new("resource_type_filter", Kind::Int8, 1, MAX),
    Field::new("resource_name_filter", Kind::NullableString, 1, MAX),
    Field::new("pattern_type_filter", Kind::Int8, 1, MAX),
    Field::new("principal_filter", Kind::NullableString, 1, MAX),
    Field::new("host_filter", Kind::NullableString, 1, MAX),
    Field::new("operation", Kind::Int8, 1, MAX),
    Field::new("permission_type", Kind::Int8, 1, MAX),
];
const DESCRIBE_ACLS: Message = Message {
    api_key: 29,
    min_version: 1,
    max_version: 3,
    flexible_from: 2,
    body: Struct::new(ACL_FILTER_FIELDS),
};
const DELETE_ACLS_FILTER: Struct = Struct::new(ACL_FILTER_FIELDS);
const DELETE_ACLS: Message = Message {
    api_key: 31,
    min_version: 1,
    max_version: 3,
    flexible_from: 2,
    body: Struct::new(&[Field::new("filters", Kind::Array(&Kind::Struct(&DELETE_ACLS_FILTER)), 1, MAX)]),
};

// AddPartitionsToTxn (API key 24), the client's versions (4 on are brokers' batches).
const ADD_PARTITIONS_TO_TXN_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 0, MAX),
    Field::new("partitions", Kind::Array(&Kind::Int32), 0, MAX),
]);
const ADD_PARTITIONS_TO_TXN: Message = Message {
    api_key: 24,
    min_version: 0,
    max_version: 3,
    flexible_from: 3,
    body: Struct::new(&[
        Field::new("v3_and_below_transactional_id", Kind::String, 0, 3),
        Field::new("v3_and_below_producer_id", Kind::Int64, 0, 3),
        Field::new("v3_and_below_producer_epoch", Kind::Int16, 0, 3),
        Field::new("v3_and_below_topics", Kind::Array(&Kind::Struct(&ADD_PARTITIONS_TO_TXN_TOPIC)), 0, 3),
    ]),
};

// AddOffsetsToTxn (API key 25).
const ADD_OFFSETS_TO_TXN: Message = Message {
    api_key: 25,
    min_version: 0,
    max_version: 3,
    flexible_from: 3,
    body: Struct::new(&[
        Field::new("transactional_id", Kind::String, 0, MAX),
        Field::new("producer_id", Kind::Int64, 0, MAX),
        Field::new("producer_epoch", Kind::Int16, 0, MAX),
        Field::new("group_id", Kind::String, 0, MAX),
    ]),
};

// EndTxn (API key 26).
const END_TXN: Message = Message {
    api_key: 26,
    min_version: 0,
    max_version: 3,
    flexible_from: 3,
    body: Struct::new(&[
        Field::new("transactional_id", Kind::String, 0, MAX),
        Field::new("producer_id", Kind::Int64, 0, MAX),
        Field::new("producer_epoch", Kind::Int16, 0, MAX),
        Field::new("committed", Kind::Bool, 0, MAX),
    ]),
};

// TxnOffsetCommit (API key 28).
const TXN_OFFSET_COMMIT_PARTITION: Struct = Struct::new(&[
    Field::new("partition_index", Kind::Int32, 0, MAX),
    Field::new("committed_offset", Kind::Int64, 0, MAX),
    Field::new("committed_leader_epoch", Kind::Int32, 2, MAX),
    Field::new("committed_metadata", Kind::NullableString, 0, MAX),
]);
const TXN_OFFSET_COMMIT_TOPIC: Struct = Struct::new(&[
    Field::new("name", Kind::String, 0, MAX),
    Field::new("partitions", Kind::Array(&Kind::Struct(&TXN_OFFSET_COMMIT_PARTITION)), 0, MAX),
]);
const TXN_OFFSET_COMMIT: Message = Message {
    api_key: 28,
    min_version: 0,
    max_version: 3,
    flexible_from: 3,
    body: Struct::new(&[
        Field::new("transactional_id", Kind::String, 0, MAX),
        Field::new("group_id", Kind::String, 0, MAX),
        Field::new("producer_id", Kind::Int64, 0, MAX),
        Field::new("producer_epoch", Kind::Int16, 0, MAX),
        Field::new("generation_id", Kind::Int32, 3, MAX),
        Field::new("member_id", Kind::String, 3, MAX),
        Field::new("group_instance_id", Kind::NullableString, 3, MAX),
        Field::new("topics", Kind::Array(&Kind::Struct(&TXN_OFFSET_COMMIT_TOPIC)), 0, MAX),
    ]),
};

pub(super) const MESSAGES: &[&Message] = &[
    &API_VERSIONS,
    &METADATA,
    &PRODUCE,
    &FETCH,
    &LIST_OFFSETS,
    &FIND_COORDINATOR,
    &JOIN_GROUP,
    &SYNC_GROUP,
    &HEARTBEAT,
    &LEAVE_GROUP,
    &OFFSET_COMMIT,
    &OFFSET_FETCH,
    &LIST_GROUPS,
    &DESCRIBE_GROUPS,
    &CREATE_TOPICS,
    &DELETE_TOPICS,
    &DELETE_RECORDS,
    &CREATE_PARTITIONS,
    &INIT_PRODUCER_ID,
    &OFFSET_FOR_LEADER_EPOCH,
    &DESCRIBE_CONFIGS,
    &ALTER_REPLICA_LOG_DIRS,
    &DESCRIBE_LOG_DIRS,
    &DELETE_GROUPS,
    &ELECT_LEADERS,
    &ALTER_PARTITION_REASSIGNMENTS,
    &LIST_PARTITION_REASSIGNMENTS,
    &DESCRIBE_CLUSTER,
    &DESCRIBE_ACLS,
    &CREATE_ACLS,
    &DELETE_ACLS,
    &ADD_PARTITIONS_TO_TXN,
    &ADD_OFFSETS_TO_TXN,
    &END_TXN,
    &TXN_OFFSET_COMMIT,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn check_struct(message: &Message, schema: &Struct) {
        for field in schema.fields.iter().chain(schema.tagged.iter().map(|t| &t.field)) {
            assert!(field.since <= field.until, "API {} field {}", message.api_key, field.name);
            let element = match &field.kind {
                Kind::Array(element) | Kind::NullableArray(element) => element,
                other => other,
            };
            if let Kind::Struct(inner) = element {
                check_struct(message, inner);
            }
        }
        for tagged in schema.tagged {
            // Tagged fields exist only in flexible versions.
            assert!(tagged.field.since >= message.flexible_from, "{}", tagged.field.name);
        }
    }

    #[test]
    fn tables_are_consistent() {
        for (i, message) in MESSAGES.iter().enumerate() {
            assert!(message.min_version <= message.max_version, "API {}", message.api_key);
            let duplicate = MESSAGES[..i].iter().any(|m| m.api_key == message.api_key);
            assert!(!duplicate, "API {} listed twice", message.api_key);
            check_struct(message, &message.body);
        }
    }
}

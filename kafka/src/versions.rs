//! The APIs and versions Weir serves: Weir's own table, not `kafka-protocol`'s
//! `valid_versions()`, which lists versions the crate cannot decode and APIs Weir does not
//! implement. Clients use whatever ApiVersions advertises, so nothing unimplemented is listed.

use kafka_protocol::messages::ApiKey;

/// One served API: its key and the versions advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { key, min, max }
}

/// Every API Weir serves, with the versions it advertises.
pub const SERVED: &[ApiRange] = &[
    // Produce 0-2 are advertised but refused (see `PRODUCE_VERSION_MIN`): librdkafka before 2.11
    // turns compression off when the broker does not list Produce from version 0.
    api(ApiKey::Produce, 0, 11),
    api(ApiKey::Fetch, 4, 12),
    api(ApiKey::ListOffsets, 1, 7),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::OffsetCommit, 2, 8),
    api(ApiKey::OffsetFetch, 1, 8),
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 4),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::InitProducerId, 0, 4),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterReplicaLogDirs, 1, 2),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::DescribeCluster, 0, 1),
    // Stored and listed, not enforced until clients authenticate (`weir_cluster::acl`).
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    // Transactions, a node alone (a cluster refuses transactional ids); the clients' versions,
    // before KIP-890's broker-side verification.
    api(ApiKey::AddPartitionsToTxn, 0, 3),
    api(ApiKey::AddOffsetsToTxn, 0, 3),
    api(ApiKey::EndTxn, 0, 3),
    api(ApiKey::TxnOffsetCommit, 0, 3),
];

/// Produce versions below this carry message formats 0 and 1, which Weir does not take.
pub const PRODUCE_VERSION_MIN: i16 = 3;

/// The versions served of `key`, or `None` for an API Weir does not serve.
pub fn served(key: ApiKey) -> Option<ApiRange> {
    SERVED.iter().copied().find(|a| a.key == key)
}

/// Whether `version` of the API numbered `key` is served.
pub fn is_served(key: i16, version: i16) -> bool {
    ApiKey::try_from(key).ok().and_then(served).is_some_and(|a| (a.min..=a.max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_version_is_one_the_codec_knows() {
        for a in SERVED {
            let known = a.key.valid_versions();
            // Produce's oldest versions are advertised but refused before decoding.
            let min = if a.key == ApiKey::Produce { PRODUCE_VERSION_MIN } else { a.min };
            assert!(min >= known.min && a.max <= known.max, "{:?} {}..={} vs {known}", a.key, a.min, a.max);
        }
    }

    #[test]
    fn unserved_apis_and_versions_are_refused() {
        assert!(is_served(ApiKey::Fetch as i16, 12));
        assert!(!is_served(ApiKey::Fetch as i16, 13), "topic ids are not served");
        assert!(!is_served(ApiKey::Fetch as i16, 3));
        assert!(!is_served(ApiKey::ConsumerGroupHeartbeat as i16, 0));
        assert!(!is_served(-1, 0));
    }
}

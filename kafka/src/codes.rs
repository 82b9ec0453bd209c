//! Weir's error codes as Kafka's: what a Kafka client is told when the `PartitionService` or the
//! group coordinator refuses. Each maps to the Kafka code whose meaning (and retriability) is
//! the same, so that Kafka clients retry exactly what Weir's own clients retry.

use kafka_protocol::ResponseError as K;
use weir_net::ErrorCode as W;

/// The Kafka error code of a Weir error code (0 for none).
pub fn kafka_code(code: W) -> i16 {
    let k = match code {
        W::None => return 0,
        W::MalformedRequest => K::InvalidRequest,
        W::UnsupportedVersion => K::UnsupportedVersion,
        W::UnknownTopic | W::UnknownPartition => K::UnknownTopicOrPartition,
        W::OffsetOutOfRange => K::OffsetOutOfRange,
        W::CorruptBatch => K::CorruptMessage,
        W::BatchTooLarge => K::MessageTooLarge,
        W::RequestTooLarge => K::RecordListTooLarge,
        W::NotOwner | W::NotLeader => K::NotLeaderOrFollower,
        W::TopicAlreadyExists => K::TopicAlreadyExists,
        W::InvalidArgument => K::InvalidRequest,
        W::StorageError => K::KafkaStorageError,
        W::Unavailable => K::LeaderNotAvailable,
        // The outcome is unknown: a retriable timeout makes the producer resend, and idempotence
        // keeps the resend from storing the batch twice.
        W::OutcomeUnknown | W::RequestTimedOut => K::RequestTimedOut,
        W::NotEnoughReplicas => K::NotEnoughReplicas,
        W::LeaderNotAvailable => K::LeaderNotAvailable,
        W::OutOfOrderSequence => K::OutOfOrderSequenceNumber,
        W::ProducerFenced => K::InvalidProducerEpoch,
        W::UnknownProducerId => K::UnknownProducerId,
        W::InvalidRecord => K::InvalidRecord,
        W::NotCoordinator => K::NotCoordinator,
        W::CoordinatorLoadInProgress => K::CoordinatorLoadInProgress,
        W::UnknownMemberId => K::UnknownMemberId,
        W::FencedMemberEpoch => K::FencedMemberEpoch,
        W::StaleMemberEpoch => K::StaleMemberEpoch,
        W::UnreleasedInstanceId => K::UnreleasedInstanceId,
        W::GroupNotEmpty => K::NonEmptyGroup,
        W::GroupIdNotFound => K::GroupIdNotFound,
        W::GroupMaxSizeReached => K::GroupMaxSizeReached,
        _ => K::UnknownServerError,
    };
    k.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_errors_stay_retriable() {
        for w in
            [W::NotLeader, W::LeaderNotAvailable, W::NotEnoughReplicas, W::NotCoordinator, W::Unavailable]
        {
            let k = K::try_from_code(kafka_code(w)).expect("an error");
            assert!(k.is_retriable(), "{w:?} became {k:?}");
        }
        assert_eq!(kafka_code(W::None), 0);
        assert_eq!(kafka_code(W::UnknownTopic), 3);
    }
}

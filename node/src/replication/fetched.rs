//! What a follower checks of a leader's answer before its replica sees it: batches are taken
//! only if every one is intact (frame and CRC), none is of an epoch after the leader epoch the
//! answer speaks for, and their offsets run without gap or overlap from the fetch offset. An
//! answer that fails is dropped whole; the replica fetches again after its timeout.

use weir_log::BatchError;
use weir_log::batch::check_frame_and_crc;
use weir_replication::FetchBody;

/// Why a fetched answer's batches were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchedBatchError {
    #[error("the batch at byte {at} is damaged: {source}")]
    Damaged { at: usize, source: BatchError },
    #[error("a batch of epoch {epoch} in an answer of leader epoch {leader_epoch}")]
    EpochAhead { epoch: u32, leader_epoch: u32 },
    #[error("a batch at offset {base_offset} where offset {expected} comes next")]
    NotContiguous { base_offset: u64, expected: u64 },
    #[error("an answer without records carries {bytes} bytes of batches")]
    Unexpected { bytes: usize },
}

/// Checks the batches of an answer of `leader_epoch` with body `body` (see the module docs).
pub fn check_fetched(bytes: &[u8], body: &FetchBody, leader_epoch: u32) -> Result<(), FetchedBatchError> {
    let FetchBody::Records { fetch_offset } = *body else {
        return match bytes.len() {
            0 => Ok(()),
            n => Err(FetchedBatchError::Unexpected { bytes: n }),
        };
    };
    let (mut at, mut expected) = (0, fetch_offset);
    while at < bytes.len() {
        let h = check_frame_and_crc(&bytes[at..], u32::MAX as usize)
            .map_err(|source| FetchedBatchError::Damaged { at, source })?;
        if h.leader_epoch > leader_epoch {
            return Err(FetchedBatchError::EpochAhead { epoch: h.leader_epoch, leader_epoch });
        }
        if h.base_offset != expected {
            return Err(FetchedBatchError::NotContiguous { base_offset: h.base_offset, expected });
        }
        expected = h.last_offset() + 1;
        at += h.batch_len as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_log::batch::{BatchBuilder, ProducerStamp, Record};

    /// A stored batch: `n` records from `base` in `epoch` (the header fields a leader sets).
    fn batch(base: u64, n: usize, epoch: u32) -> Vec<u8> {
        let mut b = BatchBuilder::new(1 << 20);
        for _ in 0..n {
            b.push(&Record { key: None, value: Some(b"v"), headers: &[], timestamp: 1 }).unwrap();
        }
        let mut bytes = b.seal(ProducerStamp::default()).as_bytes().to_vec();
        bytes[0..8].copy_from_slice(&base.to_le_bytes());
        bytes[8..12].copy_from_slice(&epoch.to_le_bytes());
        bytes
    }

    #[test]
    fn only_contiguous_batches_of_the_answers_epochs_are_taken() {
        let records = FetchBody::Records { fetch_offset: 10 };
        let good = [batch(10, 2, 3), batch(12, 1, 4)].concat();
        assert_eq!(check_fetched(&good, &records, 4), Ok(()));
        assert_eq!(
            check_fetched(&good, &records, 3),
            Err(FetchedBatchError::EpochAhead { epoch: 4, leader_epoch: 3 })
        );
        let late = batch(11, 1, 3);
        assert_eq!(
            check_fetched(&late, &records, 4),
            Err(FetchedBatchError::NotContiguous { base_offset: 11, expected: 10 })
        );
        let gap = [batch(10, 2, 3), batch(13, 1, 3)].concat();
        assert_eq!(
            check_fetched(&gap, &records, 4),
            Err(FetchedBatchError::NotContiguous { base_offset: 13, expected: 12 })
        );
        let mut damaged = good.clone();
        let last = damaged.len() - 20;
        damaged[last] ^= 1;
        assert!(matches!(check_fetched(&damaged, &records, 4), Err(FetchedBatchError::Damaged { .. })));
        let diverging = FetchBody::Diverging { epoch: None, end_offset: 0 };
        assert_eq!(
            check_fetched(&good, &diverging, 4),
            Err(FetchedBatchError::Unexpected { bytes: good.len() })
        );
    }
}

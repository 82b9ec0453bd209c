//! The health of a partition as DescribeTopic (version 2 on) reports it: whether it is online,
//! and the ranges of its log quarantined as damaged. Encoded after each partition's bounds.

use crate::api::{count, opt_from_wire, opt_to_wire};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Writer};

/// Fewest bytes a [`PartitionHealth`] takes on the wire: state, empty cause, retry, empty array.
pub const PARTITION_HEALTH_BYTES_MIN: usize = 1 + 2 + 8 + 4;
/// Fewest bytes a [`DamagedRangeInfo`] takes on the wire: three u64 and an empty reason.
pub const DAMAGED_RANGE_BYTES_MIN: usize = 3 * 8 + 2;

/// Whether the partition's owner serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionState {
    Online,
    /// Its log failed, or it could not be opened: reads and writes answer a storage error.
    Offline {
        /// Why, as the node's log says it.
        cause: String,
        /// In how many milliseconds the node tries to bring it back (it never stops trying);
        /// `None` when the answering shard cannot tell (the owner did not answer).
        retry_in_ms: Option<u64>,
    },
}

/// Offsets of a partition's log quarantined as damaged: reads of them answer `CorruptBatch`
/// naming them, and a consumer may skip past `last_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRangeInfo {
    /// Base offset of the segment holding the damage.
    pub segment: u64,
    /// The offsets covered, `first_offset..=last_offset`.
    pub first_offset: u64,
    pub last_offset: u64,
    /// What the first damaged batch failed.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionHealth {
    pub state: PartitionState,
    /// Oldest first.
    pub damaged: Vec<DamagedRangeInfo>,
}

impl PartitionHealth {
    pub fn online() -> Self {
        Self { state: PartitionState::Online, damaged: Vec::new() }
    }
}

const STATE_ONLINE: u8 = 0;
const STATE_OFFLINE: u8 = 1;

pub(crate) fn encode(w: &mut Writer, h: &PartitionHealth) -> Result<(), EncodeError> {
    match &h.state {
        PartitionState::Online => w.u8(STATE_ONLINE).text("").u64(opt_to_wire(None)),
        PartitionState::Offline { cause, retry_in_ms } => {
            w.u8(STATE_OFFLINE).text(cause).u64(opt_to_wire(*retry_in_ms))
        }
    };
    w.u32(count("damaged ranges", h.damaged.len())?);
    for d in &h.damaged {
        w.u64(d.segment).u64(d.first_offset).u64(d.last_offset).text(&d.reason);
    }
    Ok(())
}

pub(crate) fn decode(r: &mut Reader<'_>) -> Result<PartitionHealth, DecodeError> {
    let state = r.u8()?;
    let cause = r.str()?;
    let retry = r.u64()?;
    let state = match state {
        STATE_ONLINE => PartitionState::Online,
        STATE_OFFLINE => PartitionState::Offline { cause, retry_in_ms: opt_from_wire(retry) },
        v => return Err(DecodeError::BadValue { field: "partition state", value: u64::from(v) }),
    };
    // Bounded by the bytes left: a forged count is refused before anything is allocated.
    let n = r.count(DAMAGED_RANGE_BYTES_MIN)?;
    let damaged = (0..n)
        .map(|_| {
            Ok(DamagedRangeInfo {
                segment: r.u64()?,
                first_offset: r.u64()?,
                last_offset: r.u64()?,
                reason: r.str()?,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(PartitionHealth { state, damaged })
}

//! What travels on the simulated network.

use rkyv::util::AlignedVec;
use std::rc::Rc;
use weir_log::BatchError;
use weir_log::batch::BatchView;
use weir_replication::{
    Acks, AlterPartition, AppendedRange, ControllerError, FetchAnswer, FetchRequest, PartitionState,
    ReplicaError,
};

/// Batches on the wire: aligned as a receive buffer is, so they validate in place; shared,
/// so a duplicated message costs no copy.
pub type Payload = Rc<AlignedVec<16>>;

/// The batches of a payload (whole batches back to back), each validated, CRC included: the one
/// walk over batches every part of the simulator uses.
pub fn batch_views(mut bytes: &[u8]) -> Result<Vec<BatchView<'_>>, BatchError> {
    let mut views = Vec::new();
    while !bytes.is_empty() {
        let view = BatchView::validate(bytes, usize::MAX)?;
        bytes = &bytes[view.bytes().len()..];
        views.push(view);
    }
    Ok(views)
}

/// A payload holding a copy of `bytes`.
pub fn payload(bytes: &[u8]) -> Payload {
    let mut v = AlignedVec::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    Rc::new(v)
}

/// Every message of the simulation: replication between nodes, the controller's protocol and
/// the clients'.
#[derive(Debug, Clone)]
pub enum Msg {
    Fetch(FetchRequest),
    /// The answer and, for records, the batches read from the leader's log.
    FetchAnswer(FetchAnswer, Payload),
    Heartbeat {
        incarnation: u64,
    },
    /// The controller's current decision, after a change.
    State(PartitionState),
    /// The answer to a heartbeat: the controller knows of `incarnation`, and its decision.
    Registered {
        incarnation: u64,
        state: PartitionState,
    },
    Alter(AlterPartition),
    /// The answer, and the proposal it answers.
    AlterAnswer(AlterPartition, Result<PartitionState, ControllerError>),
    Produce {
        produce: u64,
        acks: Acks,
        batch: Payload,
    },
    ProduceAnswer {
        produce: u64,
        result: Result<AppendedRange, ProduceError>,
    },
}

/// Why a produce failed, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProduceError {
    Replica(ReplicaError),
    /// The batch failed its CRC on arrival.
    Corrupt,
}

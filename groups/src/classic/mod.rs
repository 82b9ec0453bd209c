//! Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) with
//! client-side assignment, on the same groups and offsets as the native protocol.

pub(crate) mod api;
mod commit;
mod describe;
mod join;
mod membership;
pub(crate) mod persist;
pub(crate) mod state;
mod sync;
mod tick;
mod validate;

//! Front ends: protocols spoken to clients, each a thin layer over the
//! [`PartitionService`](crate::service::PartitionService). The native protocol today; the Kafka
//! listener will be a second one, not a second engine.

pub mod cluster;
pub mod kafka;
pub mod native;

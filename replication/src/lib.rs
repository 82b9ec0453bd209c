//! Replication: controller and replica state machines (sans-IO). Not built yet.

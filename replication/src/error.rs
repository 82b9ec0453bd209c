//! Errors of the replication state machines: typed, so a front end maps each to a protocol
//! error code and a caller knows whether to retry, refresh its metadata or give up.

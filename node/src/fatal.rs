//! A shard (or the control plane) that panics takes the whole process down, at once and with a
//! clear message.
//!
//! A shard owns its partitions outright: no other shard can serve them, so a node with one dead
//! shard would answer some requests and leave others unanswered for good, a half-alive node
//! that a supervisor cannot tell from a healthy one. A panic on a shard thread (a broken
//! invariant, an assertion) therefore ends the process with [`FATAL_EXIT_CODE`], after the
//! default hook has printed the panic and its location. Acknowledged records are on disk by
//! then (an acknowledgement waits for them), so nothing acknowledged is lost; a restart recovers.

use std::sync::Once;

/// Exit status of a node stopped by a shard's panic (`EX_SOFTWARE`).
pub const FATAL_EXIT_CODE: i32 = 70;

/// Threads whose name starts with this are shards (see `server::run`).
pub const SHARD_THREAD_PREFIX: &str = "shard-";
/// The control plane's thread (`weir-cluster`, Raft and the controller) and the thread that
/// passes its metadata on (`control::ClusterLink`): a node whose control plane died would keep
/// serving under metadata that no longer moves, and a controller that stopped deciding would
/// stall the whole cluster, so their panics are fatal too.
pub const CONTROL_THREAD_PREFIXES: [&str; 2] = ["weir-control", "weir-meta-gate"];

/// Installs the process-wide panic hook once: a panic on a shard thread prints the usual
/// report, then a `fatal` line, and exits. Panics on other threads are reported as before.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            let fatal = name.starts_with(SHARD_THREAD_PREFIX)
                || CONTROL_THREAD_PREFIXES.iter().any(|p| name.starts_with(p));
            if fatal {
                eprintln!("weir: fatal: {name} panicked; stopping the node (a restart recovers its logs)");
                tracing::error!(thread = name, "fatal: shard panicked; stopping the node");
                std::process::exit(FATAL_EXIT_CODE);
            }
        }));
    });
}

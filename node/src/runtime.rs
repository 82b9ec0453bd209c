//! What a shard's data path needs from the world besides storage: the time and detached tasks.
//!
//! The partition code and the request path call these, never `Instant::now()`, a glommio timer
//! or `spawn_local` directly, so the same code runs on a shard's glommio executor in a node and
//! on a single-threaded executor with simulated time in tests ([`crate::sim`]).

use futures::future::LocalBoxFuture;

/// The clock and task spawner of one shard. Cheap to clone; used from the shard's thread only.
pub trait Runtime: Clone + std::fmt::Debug + 'static {
    /// Wall-clock milliseconds since the Unix epoch: segment ages and append times.
    fn now_ms(&self) -> u64;
    /// Milliseconds on a clock that never goes back: deadlines.
    fn monotonic_ms(&self) -> u64;
    /// Resolves `ms` milliseconds of monotonic time from now.
    fn sleep_ms(&self, ms: u64) -> LocalBoxFuture<'static, ()>;
    /// Runs `task` to completion on this shard, detached from its caller: dropping the caller
    /// does not cancel it.
    fn spawn(&self, task: LocalBoxFuture<'static, ()>);
}

/// The real thing, on the shard's glommio executor.
#[derive(Debug, Clone)]
pub struct GlommioRuntime {
    started: std::time::Instant,
}

impl GlommioRuntime {
    pub fn new() -> Self {
        Self { started: std::time::Instant::now() }
    }
}

impl Default for GlommioRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime for GlommioRuntime {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn monotonic_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn sleep_ms(&self, ms: u64) -> LocalBoxFuture<'static, ()> {
        Box::pin(async move {
            glommio::timer::sleep(std::time::Duration::from_millis(ms)).await;
        })
    }

    fn spawn(&self, task: LocalBoxFuture<'static, ()>) {
        glommio::spawn_local(task).detach();
    }
}

//! Simulated time and tasks: a [`Runtime`] whose clock moves only when the simulation says so,
//! and whose tasks run on a single-threaded `LocalPool` in a fixed order.

use futures::executor::{LocalPool, LocalSpawner};
use futures::future::LocalBoxFuture;
use futures::task::LocalSpawnExt;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use weir_node::runtime::Runtime;

/// Wall-clock time at the start of every simulation: a fixed date, so runs replay exactly.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

#[derive(Debug, Default)]
struct Clock {
    now_ms: Cell<u64>,
    /// Sleepers by (deadline, sequence): woken in deadline order, ties in arrival order.
    timers: RefCell<BTreeMap<(u64, u64), Waker>>,
    seq: Cell<u64>,
}

/// One simulated node's runtime. Cloning shares it.
#[derive(Clone)]
pub struct SimRuntime {
    clock: Rc<Clock>,
    spawner: LocalSpawner,
}

impl std::fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRuntime").field("now_ms", &self.clock.now_ms.get()).finish()
    }
}

impl SimRuntime {
    /// A runtime whose tasks run on `pool`, its clock starting at `start_ms` of monotonic time.
    pub fn new(pool: &LocalPool, start_ms: u64) -> Self {
        let clock = Clock { now_ms: Cell::new(start_ms), ..Clock::default() };
        Self { clock: Rc::new(clock), spawner: pool.spawner() }
    }

    /// Moves the clock to the earliest deadline anyone sleeps until and wakes every sleeper due
    /// then. Returns false when nobody sleeps.
    pub fn advance(&self) -> bool {
        let Some(&(deadline, _)) = self.clock.timers.borrow().keys().next() else { return false };
        self.clock.now_ms.set(self.clock.now_ms.get().max(deadline));
        self.wake_due();
        true
    }

    fn wake_due(&self) {
        let now = self.clock.now_ms.get();
        let mut timers = self.clock.timers.borrow_mut();
        let later = timers.split_off(&(now + 1, 0));
        for (_, waker) in std::mem::replace(&mut *timers, later) {
            waker.wake();
        }
    }
}

/// A sleep until a deadline on the simulated clock.
struct Sleep {
    clock: Rc<Clock>,
    deadline: u64,
    key: Option<(u64, u64)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now_ms.get() >= self.deadline {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let seq = self.clock.seq.get();
                self.clock.seq.set(seq + 1);
                (self.deadline, seq)
            }
        };
        self.key = Some(key);
        self.clock.timers.borrow_mut().insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.clock.timers.borrow_mut().remove(&key);
        }
    }
}

impl Runtime for SimRuntime {
    fn now_ms(&self) -> u64 {
        EPOCH_MS + self.clock.now_ms.get()
    }

    fn monotonic_ms(&self) -> u64 {
        self.clock.now_ms.get()
    }

    fn sleep_ms(&self, ms: u64) -> LocalBoxFuture<'static, ()> {
        let deadline = self.clock.now_ms.get() + ms;
        Box::pin(Sleep { clock: self.clock.clone(), deadline, key: None })
    }

    fn spawn(&self, task: LocalBoxFuture<'static, ()>) {
        // The pool outlives its tasks unless the simulation crashes it, which drops them all,
        // as a crash of a process would: then there is nowhere to run, and nothing to do.
        let _ = self.spawner.spawn_local(task);
    }
}

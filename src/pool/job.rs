//! [`JobHandle`]: the caller's half of one job, and the cell it shares with the worker and
//! the loop.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::error::panic_message;

const PENDING: u8 = 0;
const CANCELLED: u8 = 1;
const DELIVERED: u8 = 2;

/// One job's fate, decided exactly once: cancelled by its handle, or delivered by the loop.
#[derive(Debug, Default)]
pub(crate) struct JobState(AtomicU8);

impl JobState {
    /// Claims the job for delivery; `false` if it was cancelled first.
    fn deliver(&self) -> bool {
        self.0
            .compare_exchange(PENDING, DELIVERED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn cancel(&self) -> bool {
        self.0
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire) == CANCELLED
    }

    fn is_delivered(&self) -> bool {
        self.0.load(Ordering::Acquire) == DELIVERED
    }
}

/// How running a job went; its value, if any, waits in the job's cell.
pub(crate) enum Outcome {
    Value,
    Panicked(String),
    /// Cancelled before a worker started it: it did not run.
    Skipped,
}

enum Stage<J, T> {
    Queued(J),
    Running,
    Done(T),
}

/// One job's only shared allocation: its fate, the job until a worker takes it, then its
/// value. The loop allocates it and, since the worker drops its reference before it
/// reports, the loop frees it too: nothing is freed across threads.
pub(crate) struct JobCell<J, T> {
    state: JobState,
    stage: Mutex<Stage<J, T>>,
}

impl<J, T> JobCell<J, T>
where
    J: FnOnce() -> T + Send,
    T: Send,
{
    pub(crate) fn new(job: J) -> JobCell<J, T> {
        JobCell {
            state: JobState::default(),
            stage: Mutex::new(Stage::Queued(job)),
        }
    }

    fn stage(&self) -> MutexGuard<'_, Stage<J, T>> {
        // Nothing panics while the lock is held (the job runs outside it); tolerate
        // poisoning anyway.
        self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The loop's claim on a failed job's delivery: `false` if it was cancelled meanwhile.
    pub(crate) fn claim_error(&self) -> bool {
        self.state.deliver()
    }

    /// The loop's claim on the value: `None` if the job was cancelled meanwhile.
    pub(crate) fn claim(&self) -> Option<T> {
        if !self.state.deliver() {
            return None;
        }
        match std::mem::replace(&mut *self.stage(), Stage::Running) {
            Stage::Done(v) => Some(v),
            _ => None,
        }
    }
}

/// The worker's view of a cell, whatever the job's types.
pub(crate) trait Run: Send + Sync {
    /// Runs the job (once), catching a panic, and leaves its value in the cell.
    fn run(&self) -> Outcome;
    fn state(&self) -> &JobState;
}

impl<J, T> Run for JobCell<J, T>
where
    J: FnOnce() -> T + Send,
    T: Send,
{
    fn run(&self) -> Outcome {
        if self.state.is_cancelled() {
            return Outcome::Skipped;
        }
        let Stage::Queued(job) = std::mem::replace(&mut *self.stage(), Stage::Running) else {
            return Outcome::Skipped;
        };
        match panic::catch_unwind(AssertUnwindSafe(job)) {
            Ok(v) => {
                *self.stage() = Stage::Done(v);
                Outcome::Value
            }
            Err(payload) => Outcome::Panicked(panic_message(&*payload)),
        }
    }

    fn state(&self) -> &JobState {
        &self.state
    }
}

/// The handle of a job started by [`Pool::run`](super::Pool::run).
///
/// Dropping it, or calling [`cancel`](JobHandle::cancel), before the result is delivered
/// means the job's `on_done` **never runs**. The job itself may still run (or be running):
/// a job a worker has not picked up yet is skipped, one already running is not interrupted,
/// and its result is dropped on arrival. To run a job for its `on_done` alone, without
/// keeping the handle, call [`detach`](JobHandle::detach).
#[must_use = "dropping a JobHandle cancels the job's on_done; call .detach() to keep it"]
pub struct JobHandle {
    cell: Option<Arc<dyn Run>>,
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("delivered", &self.is_delivered())
            .finish()
    }
}

impl JobHandle {
    pub(crate) fn new(cell: Arc<dyn Run>) -> JobHandle {
        JobHandle { cell: Some(cell) }
    }

    /// Cancels the job's `on_done`. Returns `true` if that prevented it from running,
    /// `false` if it had already run (or the job was already cancelled).
    pub fn cancel(&self) -> bool {
        self.cell.as_ref().is_some_and(|c| c.state().cancel())
    }

    /// Whether `on_done` has run.
    pub fn is_delivered(&self) -> bool {
        self.cell.as_ref().is_some_and(|c| c.state().is_delivered())
    }

    /// Lets the job run to its `on_done` without this handle (fire and forget).
    pub fn detach(mut self) {
        self.cell = None;
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

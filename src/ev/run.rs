//! Running the loop: [`Loop::run`] and its bounded variants, each a sequence of turns
//! (see `turn.rs` for one turn).

use std::io;
use std::time::{Duration, Instant};

use super::loop_logic::Loop;

impl<S> Loop<S> {
    /// Runs turns until [`Ctx::stop_loop`](super::Ctx::stop_loop) is called, no watcher is
    /// active (during a [`Ctx::shutdown`](super::Ctx::shutdown): none but signal watchers
    /// and repeating timers), or the shutdown's grace period is over.
    ///
    /// # Errors
    /// An error from the poller (never `EINTR`, which is retried).
    pub fn run(&mut self, state: &mut S) -> io::Result<()> {
        self.ctx.epoch += 1;
        self.ctx.stop = false;
        while !self.ctx.stop && self.ctx.holds_open() && !self.ctx.past_deadline() {
            self.ctx.turn(state, true)?;
        }
        self.ctx.end_turn();
        self.ctx.stop = false;
        Ok(())
    }

    /// Runs one turn; it may sleep until something happens (or the next timer is due).
    ///
    /// # Errors
    /// An error from the poller.
    pub fn run_once(&mut self, state: &mut S) -> io::Result<()> {
        self.ctx.epoch += 1;
        let r = self.ctx.turn(state, true);
        self.ctx.end_turn();
        r
    }

    /// Runs one turn that does not sleep: whatever is ready now is handled.
    ///
    /// # Errors
    /// An error from the poller.
    pub fn run_nowait(&mut self, state: &mut S) -> io::Result<()> {
        self.ctx.epoch += 1;
        let r = self.ctx.turn(state, false);
        self.ctx.end_turn();
        r
    }

    /// Runs turns for `limit` (sleeping when idle), or until [`Ctx::stop_loop`](super::Ctx::stop_loop) is called.
    ///
    /// # Errors
    /// An error from the poller.
    pub fn run_for(&mut self, state: &mut S, limit: Duration) -> io::Result<()> {
        self.run_until(state, limit, |_| false).map(|_| ())
    }

    /// Runs turns until `done(state)` holds, the loop is stopped, or `limit` passes.
    /// Returns whether `done` held. Tests and examples use it for bounded runs.
    ///
    /// # Errors
    /// An error from the poller.
    pub fn run_until(
        &mut self,
        state: &mut S,
        limit: Duration,
        mut done: impl FnMut(&S) -> bool,
    ) -> io::Result<bool> {
        let deadline = super::later(Instant::now(), limit);
        let guard = self.ctx.timer(limit, None, |_, _, _| {});
        self.ctx.stop = false;
        let mut ok = done(state);
        self.ctx.epoch += 1;
        while !ok && !self.ctx.stop && Instant::now() < deadline {
            self.ctx.turn(state, true)?;
            self.ctx.end_turn();
            ok = done(state);
            self.ctx.epoch += 1;
        }
        self.ctx.stop = false;
        self.ctx.remove(guard);
        Ok(ok)
    }
}

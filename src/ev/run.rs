//! Running the loop: [`Loop::run`] and its bounded variants, each a sequence of turns
//! (see `turn.rs` for one turn), and what ends a run: [`Ctx::stop_loop`], a
//! [`Ctx::shutdown`] and its grace period.

use std::io;
use std::time::{Duration, Instant};

use super::loop_logic::{Ctx, Loop};

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

impl<S> Ctx<S> {
    /// Starts a graceful shutdown: [`Loop::run`] goes on while watchers that do work are
    /// active, so work in progress can finish, but returns `grace` from now at the latest.
    /// A second call can only bring the deadline closer.
    ///
    /// From then on, signal watchers and repeating timers no longer keep the loop running
    /// (they never end by themselves): `run` returns when the last of the others is gone.
    /// They keep firing meanwhile, so a stats tick goes on, and a second SIGINT or SIGTERM
    /// reaches its watcher, which can end the loop at once (the convention users expect
    /// from daemons): check [`is_shutting_down`](Ctx::is_shutting_down) there.
    ///
    /// # The recipe
    ///
    /// From the signal watcher, on the first signal: drop the
    /// [`Listener`](crate::socket::Listener)s (no new connections), stop the timers that
    /// start new work (a stats tick may stay), [`close`](crate::bufio::Conn::close) each stream
    /// and [`detach`](crate::bufio::Stream::detach) it (it flushes its output, bounded by
    /// its own close timeout; [`close_then`](crate::bufio::Conn::close_then) tells you when
    /// it is done), let each ZeroMQ handler drop its
    /// [`ZmqWatcher`](crate::fair::ZmqWatcher) once its `Outbox` has drained, then call
    /// `shutdown(grace)`. On a second signal, [`stop_loop`](Ctx::stop_loop). (The example
    /// takes its signal numbers from `libc`, which it needs in your `Cargo.toml`.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use evnet::bufio::{Closed, Conn, Stream, StreamEvent, StreamHandler};
    /// use evnet::bytes::Bytes;
    /// use evnet::ev::{Ctx, Loop};
    ///
    /// #[derive(Default)]
    /// struct App {
    ///     clients: Vec<Stream<App>>,
    ///     ticks: u32,
    ///     log: Vec<String>,
    /// }
    ///
    /// fn on_signal(app: &mut App, cx: &mut Ctx<App>) {
    ///     if cx.is_shutting_down() {
    ///         app.log.push("second signal: exit now".into());
    ///         return cx.stop_loop();
    ///     }
    ///     for client in app.clients.drain(..) {
    ///         client.write(cx, b"bye\n");
    ///         client.close_then(cx, |app: &mut App, _cx, closed: Closed| {
    ///             app.log.push(format!("client: {closed}"));
    ///         });
    ///         client.detach(); // the loop keeps it until its output is out
    ///     }
    ///     cx.shutdown(Duration::from_secs(10));
    /// }
    ///
    /// # struct Quiet;
    /// # impl StreamHandler<App> for Quiet {
    /// #     fn read(&mut self, _: &Conn<App>, _: Bytes, _: &mut App, _: &mut Ctx<App>) {}
    /// #     fn event(&mut self, _: &Conn<App>, _: StreamEvent, _: &mut App, _: &mut Ctx<App>) {}
    /// # }
    /// let mut ev = Loop::<App>::new()?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut app = App::default();
    /// app.clients.push(Stream::new(&mut ev, evnet::socket2::Socket::from(std::os::fd::OwnedFd::from(a)), Quiet)?);
    /// for sig in [libc::SIGINT, libc::SIGTERM] {
    ///     ev.signal(sig, |app, cx, _| on_signal(app, cx))?;
    /// }
    /// let tick = Duration::from_millis(10);
    /// ev.timer(tick, Some(tick), |app, _cx, _| app.ticks += 1); // goes on to the end
    /// ev.timer(Duration::ZERO, None, |_, _, _| raise_sigterm());
    /// # fn raise_sigterm() {
    /// #     std::process::Command::new("kill")
    /// #         .args(["-TERM", &std::process::id().to_string()])
    /// #         .status()
    /// #         .unwrap();
    /// # }
    /// ev.run(&mut app)?; // returns once the client's close is over
    /// assert_eq!(app.log, ["client: closed, output flushed"]);
    /// let mut got = String::new();
    /// std::io::Read::read_to_string(&mut &b, &mut got)?;
    /// assert_eq!(got, "bye\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&mut self, grace: Duration) {
        let at = super::later(Instant::now(), grace);
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
    }

    /// Whether [`shutdown`](Ctx::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.deadline.is_some()
    }

    /// Whether [`Loop::run`] goes on: a watcher is active, and during a shutdown one that
    /// is not a signal watcher or a repeating timer.
    pub(super) fn holds_open(&self) -> bool {
        let perpetual = if self.deadline.is_some() {
            self.perpetual
        } else {
            0
        };
        self.active > perpetual
    }

    pub(super) fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Makes [`Loop::run`] return after the current turn. Safe from any callback.
    pub fn stop_loop(&mut self) {
        self.stop = true;
    }
}

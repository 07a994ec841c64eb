//! `ev`: a single-threaded, libev-style event loop.
//!
//! Watchers: **io** (an fd plus [`IoInterest`], level-triggered), **timer** (after, optional
//! repeat, monotonic clock, nanosecond deadlines), **prepare**, **check**, **idle** and
//! **wake** (a `Send + Clone` [`Waker`] for other threads). Everything evnet offers — the fair
//! ZeroMQ adapter, buffered streams, the thread pool — is built from these.
//!
//! ```
//! use std::time::Duration;
//! use evnet::ev::Loop;
//!
//! struct State { ticks: u32, woken: bool }
//!
//! let mut ev = Loop::<State>::new()?;
//! // A repeating 1 ms timer that stops the loop on its fifth tick.
//! ev.timer(Duration::from_millis(1), Some(Duration::from_millis(1)), |st, cx, _e| {
//!     st.ticks += 1;
//!     if st.ticks == 5 {
//!         cx.stop_loop();
//!     }
//! });
//! // A wake watcher another thread fires.
//! let (_w, waker) = ev.waker(|st, _cx, _e| st.woken = true)?;
//! std::thread::spawn(move || waker.wake());
//! let mut st = State { ticks: 0, woken: false };
//! ev.run(&mut st)?;
//! assert_eq!(st.ticks, 5);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # One turn
//! Exactly libev's order (see also [`guide`](crate::guide)):
//! 1. **prepare** callbacks run;
//! 2. io interest changes are applied to epoll (lazily: see below);
//! 3. the poll timeout is computed: zero if an idle watcher is active or a callback is
//!    already pending, else until the next timer (forever if there is none);
//! 4. **one** poll syscall;
//! 5. io readiness, wake-ups and expired timers (in deadline order) are queued as pending;
//! 6. **check** callbacks run (they can see, with [`Ctx::pending`], what this turn queued);
//! 7. pending io, wake and timer callbacks run in that order;
//! 8. **idle** callbacks run, only if nothing was pending.
//!
//! Starting, stopping or removing any watcher from any callback is defined: a watcher
//! stopped before its pending callback runs does not run, a watcher added during a phase
//! first runs in a later one, and ids are versioned ([`WatcherId`]) so a reused slot never
//! receives a stale event.
//!
//! # Why a thin epoll backend (and not `polling` or `mio`)
//! Fair delivery from edge-triggered ZeroMQ sockets pays the loop's per-turn cost on every
//! turn, so that cost decides the design. Measured on the target machine: one zero-timeout
//! `epoll_wait` (or mio `poll`) ≈ 110–120 ns, but one `polling` 3.x `wait()` ≈ 870 ns,
//! because it makes five syscalls (`timerfd_settime`, two `epoll_ctl` re-arms,
//! `epoll_pwait`, `read`). mio is one syscall but edge-triggered and rounds timeouts up to
//! whole milliseconds, which would put a floor of up to 1 ms under every timer.
//!
//! So `sys/epoll.rs` is a thin level-triggered epoll layer (about 200 lines): a turn is one
//! `epoll_wait` (zero timeout) or one `epoll_pwait2` (nanosecond timeout, Linux ≥ 5.11;
//! older kernels fall back to `epoll_wait` rounded *up* to the millisecond). Level
//! triggering makes io watchers libev-like without emulation. IoInterest changes are
//! batched and applied before the poll only where they differ from what the kernel has
//! (libev's `fd_reify`); an fd nobody wants any more stays registered until it reports
//! readiness, so the ZeroMQ adapter's stop/start of its io watcher every turn costs no
//! `epoll_ctl` at all. The syscalls live in the crate's `sys` module (its contract is in
//! `src/sys/mod.rs`), the only place with `unsafe` but one tokio registration.
//!
//! # The callback model
//! calloop's: the loop owns every callback; each is an `FnMut(&mut S, &mut Ctx<S>, Event)`
//! that receives the one shared `&mut S` the caller passed to [`Loop::run`], the loop
//! context [`Ctx`], and the [`Event`]. While a callback runs, it is moved out of its slot,
//! so the callback can use `Ctx` freely: create a timer, change another watcher's
//! interest, stop or remove any watcher (itself included), or stop the loop. There is no
//! `RefCell` in the loop and nothing to panic on re-entrancy; application data lives in
//! `S`, not behind shared pointers.

mod create;
mod event;
mod fdcache;
mod loop_logic;
mod meter;
mod phases;
mod remover;
mod run;
pub(crate) mod signal;
mod slab;
mod timer;
mod token;
mod turn;
mod wake;

pub use event::{Event, IoInterest};

/// `at + d`, saturating at a time a century away instead of overflowing (a timer or
/// timeout of `Duration::MAX` means "never", not a panic).
pub(crate) fn later(at: std::time::Instant, d: std::time::Duration) -> std::time::Instant {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);
    at.checked_add(d.min(CENTURY)).unwrap_or(at)
}
pub use loop_logic::{Ctx, Loop};
pub use meter::Stats;
pub use remover::Remover;
pub use token::WatcherId;
pub use wake::Waker;

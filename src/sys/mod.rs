//! `sys`: the only place in evnet that talks to the kernel directly, and the only place
//! with `unsafe` (every block has a `// SAFETY:` comment; the crate root denies
//! `unsafe_code` everywhere else but in the tokio front end's one registration, whose
//! host API leaves I/O safety to its caller).
//!
//! # The contract
//! Everything above (`ev`, `bufio`, `zmq`, `socket`) uses these types and nothing from
//! `libc` that needs `unsafe`. A backend provides:
//! - `Epoll`: a poller with **level-triggered** registration of a raw fd by a `u64` token
//!   for the interest bits [`EV_READ`] / [`EV_WRITE`] (error and hang-up, [`EV_ERR`], are
//!   reported to both), `add` / `modify` / `delete`, and `wait` that makes **one** syscall
//!   per call, with a nanosecond timeout where the kernel has one (rounded *up* otherwise),
//!   and reports `EINTR` as zero events;
//! - `Events`: the readiness reports of one wait, by token and bits;
//! - `EventFd`: a wake-up primitive another thread can fire (`Send + Sync`), readable until
//!   drained;
//! - `SignalFd`, `claim`, `release` (in [`signal`]): a readable fd that reports the
//!   signals claimed through it, and the handlers put back as they were on release.
//!
//! **Fd lifetime.** A registered fd must stay open until it is deleted: the callers
//! guarantee it (`ev::Ctx::io` borrows the fd for the watcher's life, streams and
//! listeners own theirs and remove the watcher before closing it), because the `polling`
//! backend hands the fd to the kernel as a `BorrowedFd` and kqueue would otherwise watch
//! whatever file reuses the number.
//!
//! # The backends
//! Chosen by `build.rs`: `epoll.rs` on Linux (epoll and an eventfd; signals by signalfd in
//! `signal.rs`), `polling.rs` elsewhere or with the `backend-polling` feature (the
//! `polling` crate: kqueue or epoll, a self-pipe waker, signals by a self-pipe handler in
//! `signal_pipe.rs`). `posix.rs` holds the helpers both share.

#[cfg(not(evnet_portable))]
mod epoll;
#[cfg(evnet_portable)]
mod polling;
mod posix;
pub(crate) mod signal;
#[cfg(evnet_portable)]
mod signal_pipe;

#[cfg(not(evnet_portable))]
pub(crate) use epoll::{Epoll, EventFd, Events};
#[cfg(evnet_portable)]
pub(crate) use polling::{Epoll, EventFd, Events};
#[cfg(any(feature = "calloop", feature = "tokio"))]
pub(crate) use posix::dup_cloexec;
pub(crate) use posix::{cvt, pin_current_thread, recv_into, set_timer_slack, SEND_FLAGS};

/// Readable in epoll terms.
#[cfg(not(evnet_portable))]
pub(crate) const EV_READ: u32 = libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32;
/// Writable in epoll terms.
#[cfg(not(evnet_portable))]
pub(crate) const EV_WRITE: u32 = libc::EPOLLOUT as u32;
/// Error or hang-up: reported to readers and writers alike, as libev does.
#[cfg(not(evnet_portable))]
pub(crate) const EV_ERR: u32 = libc::EPOLLERR as u32 | libc::EPOLLHUP as u32;

/// Readable (the portable backend's own bits; no kernel sees them).
#[cfg(evnet_portable)]
pub(crate) const EV_READ: u32 = 1;
/// Writable.
#[cfg(evnet_portable)]
pub(crate) const EV_WRITE: u32 = 4;
/// Error or hang-up.
#[cfg(evnet_portable)]
pub(crate) const EV_ERR: u32 = 8;

//! What a watcher asks for ([`IoInterest`]) and what its callback is told ([`Event`]).

use std::ops::BitOr;
use std::time::Instant;

use super::WatcherId;

/// Readiness an io watcher asks for: readable, writable, or both.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoInterest(u8);

impl IoInterest {
    /// No readiness at all (an io watcher with this interest never fires).
    pub const NONE: IoInterest = IoInterest(0);
    /// Readable: data, EOF, or an error can be read.
    pub const READABLE: IoInterest = IoInterest(1);
    /// Writable: a write would not block.
    pub const WRITABLE: IoInterest = IoInterest(2);
    /// Readable and writable.
    pub const BOTH: IoInterest = IoInterest(3);

    /// Whether readable is included.
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether writable is included.
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }

    /// This interest with readable added or removed.
    #[must_use]
    pub const fn with_readable(self, on: bool) -> IoInterest {
        if on {
            IoInterest(self.0 | 1)
        } else {
            IoInterest(self.0 & !1)
        }
    }

    /// This interest with writable added or removed.
    #[must_use]
    pub const fn with_writable(self, on: bool) -> IoInterest {
        if on {
            IoInterest(self.0 | 2)
        } else {
            IoInterest(self.0 & !2)
        }
    }

    pub(crate) const fn bits(self) -> u8 {
        self.0
    }
}

impl BitOr for IoInterest {
    type Output = IoInterest;
    fn bitor(self, rhs: IoInterest) -> IoInterest {
        IoInterest(self.0 | rhs.0)
    }
}

impl std::fmt::Debug for IoInterest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (false, false) => f.write_str("NONE"),
            (true, false) => f.write_str("READABLE"),
            (false, true) => f.write_str("WRITABLE"),
            (true, true) => f.write_str("READABLE | WRITABLE"),
        }
    }
}

pub(crate) const R_READ: u8 = 1;
pub(crate) const R_WRITE: u8 = 2;
pub(crate) const R_ERROR: u8 = 4;
pub(crate) const R_FIRED: u8 = 8;

/// What a callback is told about why it runs.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub(crate) watcher: WatcherId,
    pub(crate) ready: u8,
    pub(crate) due: Option<std::time::Instant>,
}

impl Event {
    /// The watcher whose callback this is: pass it to [`Ctx::stop`](super::Ctx::stop) or
    /// [`Ctx::remove`](super::Ctx::remove) to stop or drop the watcher from its own callback.
    pub fn watcher(&self) -> WatcherId {
        self.watcher
    }

    /// For io watchers: the fd is readable (or has an error or hang-up pending).
    pub fn is_readable(&self) -> bool {
        self.ready & R_READ != 0
    }

    /// For io watchers: the fd is writable (or has an error pending).
    pub fn is_writable(&self) -> bool {
        self.ready & R_WRITE != 0
    }

    /// For io watchers: the kernel reported an error or hang-up (`EPOLLERR`/`EPOLLHUP`).
    /// Such an event is also readable and writable, so the next read or write reports it.
    pub fn is_error(&self) -> bool {
        self.ready & R_ERROR != 0
    }

    /// For timers: the instant the timer was due. Lateness is `cx.now() - due`.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }
}

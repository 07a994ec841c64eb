//! The portable poller backend (off Linux, or with the `backend-polling` feature): the same
//! contract as the epoll layer in `epoll.rs` (level-triggered registration, tokens, `EINTR` as zero events), on the
//! `polling` crate, which uses kqueue on macOS and the BSDs and epoll elsewhere. It costs a
//! little more per turn than the direct epoll layer: `polling` takes a lock around each
//! wait and reports events through its own buffer (see docs/benchmarks.md).

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use polling::{Event, PollMode, Poller};

use super::{cvt, EV_ERR, EV_READ, EV_WRITE};

/// A poller instance (named as the epoll layer's, which it replaces).
#[derive(Debug)]
pub(crate) struct Epoll {
    poller: Poller,
}

/// One readiness report: the fd's token and epoll-style bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    pub(crate) token: u64,
    pub(crate) bits: u32,
}

/// The buffer [`Epoll::wait`] fills.
pub(crate) struct Events {
    raw: polling::Events,
    ready: Vec<Ready>,
}

impl Events {
    pub(crate) fn with_capacity(n: usize) -> Events {
        let cap = NonZeroUsize::new(n.max(1)).unwrap_or(NonZeroUsize::MIN);
        Events {
            raw: polling::Events::with_capacity(cap),
            ready: Vec::with_capacity(n.max(1)),
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<Ready> {
        self.ready.get(i).copied()
    }
}

/// `polling` keeps key `usize::MAX` for itself; the loop's two special tokens (the top two
/// `u64`s) move just below it. fd tokens are small and map to themselves.
fn key_of(token: u64) -> usize {
    match token {
        u64::MAX => usize::MAX - 1,
        t if t == u64::MAX - 1 => usize::MAX - 2,
        t => t as usize,
    }
}

fn token_of(key: usize) -> u64 {
    match key {
        k if k == usize::MAX - 1 => u64::MAX,
        k if k == usize::MAX - 2 => u64::MAX - 1,
        k => k as u64,
    }
}

fn interest(token: u64, bits: u32) -> Event {
    let key = key_of(token);
    match (bits & EV_READ != 0, bits & EV_WRITE != 0) {
        (true, true) => Event::all(key),
        (true, false) => Event::readable(key),
        (false, true) => Event::writable(key),
        (false, false) => Event::none(key),
    }
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        Ok(Epoll {
            poller: Poller::new()?,
        })
    }

    /// Registers `fd` with `bits`, or changes its registration if it already has one.
    pub(crate) fn set(&self, fd: RawFd, bits: u32, token: u64) -> io::Result<()> {
        // SAFETY: the fd is only borrowed for the call; the loop deletes it from the poller
        // before the owner closes it (io watcher removal does, see `Ctx::remove`).
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        match self
            .poller
            .modify_with_mode(b, interest(token, bits), PollMode::Level)
        {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => self.add(fd, bits, token),
            r => r,
        }
    }

    /// Registers a new fd, or changes the registration an fd of the same number left.
    pub(crate) fn add(&self, fd: RawFd, bits: u32, token: u64) -> io::Result<()> {
        // SAFETY: as in `set`: the fd is deleted from the poller before it is closed.
        let r = unsafe {
            self.poller
                .add_with_mode(fd, interest(token, bits), PollMode::Level)
        };
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // SAFETY: borrowed for the call only, as above.
                let b = unsafe { BorrowedFd::borrow_raw(fd) };
                self.poller
                    .modify_with_mode(b, interest(token, bits), PollMode::Level)
            }
            r => r,
        }
    }

    /// Removes `fd`; an fd the kernel no longer knows (closed meanwhile) is not an error.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: borrowed for the call only.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        match self.poller.delete(b) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EBADF)) => Ok(()),
            r => r,
        }
    }

    /// Waits for readiness. `None` waits forever.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.raw.clear();
        events.ready.clear();
        match self.poller.wait(&mut events.raw, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for ev in events.raw.iter() {
            let mut bits = 0;
            if ev.readable {
                bits |= EV_READ;
            }
            if ev.writable {
                bits |= EV_WRITE;
            }
            if ev.is_err() == Some(true) {
                bits |= EV_ERR;
            }
            events.ready.push(Ready {
                token: token_of(ev.key),
                bits,
            });
        }
        Ok(())
    }
}

/// The portable wake-up primitive for the `polling` backend: a non-blocking self-pipe
/// (POSIX `pipe` and `fcntl`, so it exists wherever kqueue does), with the eventfd's
/// interface: the read end is polled, a byte written makes it readable.
#[derive(Debug)]
pub(crate) struct EventFd {
    read: OwnedFd,
    write: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `pipe` writes two fds into the live two-element array.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        // SAFETY: both fds were just returned by the kernel and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            let fd = fd.as_raw_fd();
            // SAFETY: fcntl on an fd we own, with integer arguments only.
            unsafe {
                let fl = cvt(libc::fcntl(fd, libc::F_GETFL))?;
                cvt(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
                cvt(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
            }
        }
        Ok(EventFd { read, write })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The write end (for the signal handler, which writes raw).
    pub(crate) fn write_end(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// Makes the read end readable. A full pipe (EAGAIN) is already readable.
    pub(crate) fn notify(&self) {
        let one = 1u8;
        // SAFETY: writes 1 byte from a live u8 to an fd we own.
        let _ = unsafe { libc::write(self.write.as_raw_fd(), (&one as *const u8).cast(), 1) };
    }

    /// Empties the pipe so the read end is no longer readable.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads at most 64 bytes into a live 64-byte buffer from an fd we own.
            let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), 64) };
            if n < 64 {
                break;
            }
        }
    }
}

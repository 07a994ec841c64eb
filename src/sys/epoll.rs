//! The epoll backend (Linux, the default there): a thin, level-triggered epoll layer and
//! an eventfd for cross-thread wake-ups.
//!
//! # Contract (what the loop relies on; `polling.rs` keeps the same one)
//! - [`Epoll::wait`] is exactly one syscall: `epoll_wait` for a zero timeout,
//!   `epoll_pwait2` (nanosecond timeout) otherwise, falling back to `epoll_wait` with the
//!   timeout rounded *up* to whole milliseconds on kernels older than 5.11, so a timer is
//!   never reported early.
//! - Registration is level-triggered: a readable fd keeps being reported until it is
//!   drained or its registration changes. The loop applies interest changes lazily.
//! - `EINTR` is reported as zero events, never as an error.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::cvt;

/// An epoll instance.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
    /// Cleared the first time the kernel answers `ENOSYS` to `epoll_pwait2`.
    pwait2: AtomicBool,
}

/// One readiness report: the fd's token and the epoll bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    pub(crate) token: u64,
    pub(crate) bits: u32,
}

/// The buffer [`Epoll::wait`] fills.
pub(crate) struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    pub(crate) fn with_capacity(n: usize) -> Events {
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1)],
            len: 0,
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<Ready> {
        if i >= self.len {
            return None;
        }
        let e = self.buf[i];
        Some(Ready {
            token: e.u64,
            bits: e.events,
        })
    }
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd we own.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll {
            fd,
            pwait2: AtomicBool::new(true),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, bits: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: bits,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event that outlives the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// Registers `fd` with `bits`, or changes its registration if it already has one.
    pub(crate) fn set(&self, fd: RawFd, bits: u32, token: u64) -> io::Result<()> {
        match self.ctl(libc::EPOLL_CTL_MOD, fd, bits, token) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                self.ctl(libc::EPOLL_CTL_ADD, fd, bits, token)
            }
            r => r,
        }
    }

    /// Registers a new fd, or changes the registration an fd of the same number left.
    pub(crate) fn add(&self, fd: RawFd, bits: u32, token: u64) -> io::Result<()> {
        match self.ctl(libc::EPOLL_CTL_ADD, fd, bits, token) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.ctl(libc::EPOLL_CTL_MOD, fd, bits, token)
            }
            r => r,
        }
    }

    /// Removes `fd`; an fd the kernel no longer knows (closed meanwhile) is not an error.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        match self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EBADF)) => Ok(()),
            r => r,
        }
    }

    /// Waits for readiness: one syscall. `None` waits forever.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.len = 0;
        let max = events.buf.len().min(libc::c_int::MAX as usize) as libc::c_int;
        let ptr = events.buf.as_mut_ptr();
        let rc = match timeout {
            Some(t) if t.is_zero() => {
                // SAFETY: `ptr` points to `max` writable epoll_event slots.
                unsafe { libc::epoll_wait(self.fd.as_raw_fd(), ptr, max, 0) }
            }
            Some(t) if self.pwait2.load(Ordering::Relaxed) => {
                let ts = libc::timespec {
                    tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                    tv_nsec: t.subsec_nanos() as _,
                };
                // SAFETY: `ptr` points to `max` writable slots, `ts` outlives the call, and a
                // null sigmask with size 0 means "leave the signal mask alone".
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait2,
                        self.fd.as_raw_fd(),
                        ptr,
                        max,
                        &ts as *const libc::timespec,
                        std::ptr::null::<libc::sigset_t>(),
                        0usize,
                    )
                } as libc::c_int;
                if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                    self.pwait2.store(false, Ordering::Relaxed);
                    return self.wait(events, timeout);
                }
                rc
            }
            other => {
                let ms = match other {
                    None => -1,
                    Some(t) => {
                        let ms = t.as_nanos().div_ceil(1_000_000);
                        ms.min(libc::c_int::MAX as u128) as libc::c_int
                    }
                };
                // SAFETY: `ptr` points to `max` writable epoll_event slots.
                unsafe { libc::epoll_wait(self.fd.as_raw_fd(), ptr, max, ms) }
            }
        };
        match cvt(rc) {
            Ok(n) => {
                events.len = n as usize;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A non-blocking eventfd: the wake-up primitive behind [`Waker`](crate::ev::Waker).
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the fd readable. A full counter (EAGAIN) is already readable, so that is fine.
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an fd we own.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter so the fd is no longer readable.
    pub(crate) fn drain(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 from an fd we own.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
    }
}

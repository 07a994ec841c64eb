//! The only place in evnet that talks to the kernel directly: a thin, level-triggered
//! epoll layer and an eventfd for cross-thread wake-ups.
//!
//! # Contract (what the loop relies on)
//! - [`Epoll::wait`] is exactly one syscall: `epoll_wait` for a zero timeout,
//!   `epoll_pwait2` (nanosecond timeout) otherwise, falling back to `epoll_wait` with the
//!   timeout rounded *up* to whole milliseconds on kernels older than 5.11, so a timer is
//!   never reported early.
//! - Registration is level-triggered: a readable fd keeps being reported until it is
//!   drained or its registration changes. The loop applies interest changes lazily.
//! - `EINTR` is reported as zero events, never as an error.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
#[cfg(not(feature = "backend-polling"))]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(feature = "backend-polling"))]
use std::time::Duration;

#[cfg(feature = "backend-polling")]
pub(crate) use super::sys_polling::{Epoll, Events};

/// Readable in epoll terms.
pub(crate) const EV_READ: u32 = libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32;
/// Writable in epoll terms.
pub(crate) const EV_WRITE: u32 = libc::EPOLLOUT as u32;
/// Error or hang-up: reported to readers and writers alike, as libev does.
pub(crate) const EV_ERR: u32 = libc::EPOLLERR as u32 | libc::EPOLLHUP as u32;

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

#[cfg(not(feature = "backend-polling"))]
/// An epoll instance.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
    /// Cleared the first time the kernel answers `ENOSYS` to `epoll_pwait2`.
    pwait2: AtomicBool,
}

#[cfg(not(feature = "backend-polling"))]
/// One readiness report: the fd's token and the epoll bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    pub(crate) token: u64,
    pub(crate) bits: u32,
}

#[cfg(not(feature = "backend-polling"))]
/// The buffer [`Epoll::wait`] fills.
pub(crate) struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

#[cfg(not(feature = "backend-polling"))]
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

#[cfg(not(feature = "backend-polling"))]
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

/// A non-blocking eventfd: the wake-up primitive behind [`Waker`](super::Waker).
#[cfg(not(feature = "backend-polling"))]
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

#[cfg(not(feature = "backend-polling"))]
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

/// The portable wake-up primitive for the `polling` backend: a non-blocking self-pipe
/// (POSIX `pipe` and `fcntl`, so it exists wherever kqueue does), with the eventfd's
/// interface: the read end is polled, a byte written makes it readable.
#[cfg(feature = "backend-polling")]
#[derive(Debug)]
pub(crate) struct EventFd {
    read: OwnedFd,
    write: OwnedFd,
}

#[cfg(feature = "backend-polling")]
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

/// A close-on-exec duplicate of `fd`, owned: how a host loop that insists on owning what
/// it polls (calloop's `Generic`) gets `ZMQ_FD`, which libzmq owns. Both fds name the same
/// open file, so readiness is shared.
#[cfg_attr(not(any(feature = "calloop", feature = "tokio")), allow(dead_code))]
pub(crate) fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer argument and no pointers; an invalid `fd`
    // fails with EBADF.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `new` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Sets the calling thread's timer slack (`PR_SET_TIMERSLACK`). Linux lets a sleeping
/// thread's timeouts expire up to 50 µs late by default to batch wake-ups; a loop thread
/// that promises sub-millisecond timers asks for 1 ns instead.
pub(crate) fn set_timer_slack(ns: u64) -> io::Result<()> {
    let ns = libc::c_ulong::try_from(ns.max(1)).unwrap_or(libc::c_ulong::MAX);
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and no pointers.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_TIMERSLACK,
            ns,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })?;
    Ok(())
}

/// Receives from the socket `fd` into the spare capacity of `buf`, at most `max` bytes,
/// without zeroing it first; returns the byte count (0 at end of stream). `recv(2)` rather
/// than `read(2)`: the same bytes without the VFS layer's per-call checks (what std, mio
/// and tokio use for sockets).
pub(crate) fn recv_into(fd: RawFd, buf: &mut bytes::BytesMut, max: usize) -> io::Result<usize> {
    use bytes::BufMut;
    buf.reserve(max);
    let spare = buf.chunk_mut();
    let len = spare.len().min(max);
    loop {
        // SAFETY: `spare` is `len` writable bytes of `buf`'s allocation; recv(2) writes at
        // most `len` bytes there and we only expose the `n` it reports.
        let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, 0) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
            unsafe { buf.advance_mut(n) };
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Flags for every stream `send(2)`: a peer that went away must be an `EPIPE` for that
/// stream, never a `SIGPIPE` that kills a process which has not ignored it (a C host, a
/// binary that keeps `SIG_DFL`).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
/// Elsewhere `SO_NOSIGPIPE` is set on each socket instead.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

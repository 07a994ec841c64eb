//! POSIX helpers every backend and service shares: errno conversion, `fcntl`, timer slack,
//! `recv(2)` into spare capacity, the `send(2)` flags.

use std::io;
use std::os::fd::RawFd;
#[cfg(any(feature = "calloop", feature = "tokio"))]
use std::os::fd::{FromRawFd, OwnedFd};

/// `rc` as a result: a negative return is the thread's `errno`.
pub(crate) fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A close-on-exec duplicate of `fd`, owned: how a host loop that insists on owning what
/// it polls (calloop's `Generic`) gets `ZMQ_FD`, which libzmq owns. Both fds name the same
/// open file, so readiness is shared.
#[cfg(any(feature = "calloop", feature = "tokio"))]
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
#[cfg(any(target_os = "linux", target_os = "android"))]
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

/// Elsewhere there is no per-thread timer slack to set (macOS coalesces timers by QoS
/// class, the BSDs not at all): a no-op.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_timer_slack(_ns: u64) -> io::Result<()> {
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

/// Pins the calling thread to the `nth` CPU (counting from 0, wrapping around) of the set
/// it may run on now, and returns that CPU's number. Linux only.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pin_current_thread(nth: usize) -> io::Result<usize> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size and pointer describe `allowed`, which
    // the kernel fills.
    cvt(unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed)
    })?;
    // SAFETY: CPU_ISSET reads one bit of `allowed`, within CPU_SETSIZE.
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &allowed) })
        .collect();
    let Some(&cpu) = cpus.get(nth % cpus.len().max(1)) else {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    };
    // SAFETY: as above; the empty set then one bit set within CPU_SETSIZE.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE (it came from the loop above).
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: pid 0 is the calling thread; the size and pointer describe `one`.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) })?;
    Ok(cpu)
}

/// Elsewhere there is no portable affinity call (macOS has only hints).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pin_current_thread(_nth: usize) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "pinning a thread to a CPU is supported on Linux only",
    ))
}

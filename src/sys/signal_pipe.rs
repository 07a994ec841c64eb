//! The portable form of signal watchers (with the `polling` backend, so off Linux): where
//! there is no signalfd, a handler writes the signal's number to the loop's self-pipe, as
//! libev does. The handler runs on whichever thread the kernel picks and needs no signal
//! mask: `write(2)` is async-signal-safe, and the pipe's read end is one more fd the loop
//! polls. A full pipe drops the byte; the signal is already pending in it many times over.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use super::signal::{install, restore, Saved, MAX_SIGNAL};
use super::EventFd;

/// The pipe each signal's number is written to (its write end; -1: none).
static WRITE_FD: [AtomicI32; MAX_SIGNAL as usize + 1] =
    [const { AtomicI32::new(-1) }; MAX_SIGNAL as usize + 1];

/// Handlers between reading a slot and finishing their write: [`release`] waits for none,
/// so no handler can write to a pipe after the loop closed it (or to an fd that reused its
/// number).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The loop's signal pipe, with the signalfd's interface.
#[derive(Debug)]
pub(crate) struct SignalFd {
    pipe: EventFd,
}

impl SignalFd {
    pub(crate) fn new(_signals: &[i32]) -> io::Result<SignalFd> {
        Ok(SignalFd {
            pipe: EventFd::new()?,
        })
    }

    /// Nothing to change: the handler writes only the signals [`claim`] took.
    pub(crate) fn set(&self, _signals: &[i32]) -> io::Result<()> {
        Ok(())
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.pipe.raw()
    }

    /// Reads delivered signals into `buf`, one byte each; returns the bytes read, 0 when
    /// none is pending. [`crate::ev::signal::from_pipe`] decodes them.
    pub(crate) fn read(&self, buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is `buf.len()` writable bytes for the call's duration, and the
        // pipe's read end is ours.
        let n = unsafe { libc::read(self.pipe.raw(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).unwrap_or(0) // EAGAIN: nothing pending; EINTR: next turn
    }
}

/// The calling thread's `errno`, which a signal handler must leave as it found it.
fn errno() -> *mut libc::c_int {
    // SAFETY: each returns the calling thread's errno slot and takes no arguments.
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "emscripten", target_os = "redox"))]
        return libc::__errno_location();
        #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
        return libc::__errno();
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "dragonfly"
        ))]
        return libc::__error();
    }
}

extern "C" fn note(sig: libc::c_int) {
    let Some(slot) = usize::try_from(sig).ok().and_then(|i| WRITE_FD.get(i)) else {
        return;
    };
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let fd = slot.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = sig as u8; // MAX_SIGNAL < 256
                              // SAFETY: errno() is this thread's errno slot; write(2) is async-signal-safe and
                              // writes 1 byte from a live u8 to the pipe's write end, which stays open until
                              // `release` has cleared the slot and seen IN_FLIGHT at zero.
        unsafe {
            let saved = *errno();
            libc::write(fd, (&byte as *const u8).cast(), 1);
            *errno() = saved;
        }
    }
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
}

/// Sends `sig` to `fd`'s pipe from any thread the kernel delivers it to.
pub(crate) fn claim(sig: i32, fd: &SignalFd) -> io::Result<Saved> {
    let slot = &WRITE_FD[sig as usize];
    slot.store(fd.pipe.write_end(), Ordering::SeqCst);
    install(sig, note).inspect_err(|_| slot.store(-1, Ordering::SeqCst))
}

/// Undoes [`claim`]: the old disposition back, then no more writes to the pipe, and no
/// handler still writing when this returns (a handler runs for one `write(2)`; one that
/// interrupts this wait on the same thread finishes before the wait resumes).
pub(crate) fn release(sig: i32, saved: &Saved) {
    restore(sig, saved);
    WRITE_FD[sig as usize].store(-1, Ordering::SeqCst);
    while IN_FLIGHT.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_whose_write_fails_leaves_errno_as_it_found_it() {
        let fd = SignalFd::new(&[]).unwrap();
        // Fill the pipe so the handler's write fails with EAGAIN.
        let chunk = [0u8; 4096];
        // SAFETY: writes from a live buffer to the pipe's write end, which `fd` owns.
        while unsafe { libc::write(fd.pipe.write_end(), chunk.as_ptr().cast(), chunk.len()) } > 0 {}
        let saved = claim(libc::SIGUSR2, &fd).unwrap();
        // SAFETY: errno() is this thread's errno slot; raise runs the handler before it
        // returns, on this thread.
        let after = unsafe {
            *errno() = libc::ENOTTY;
            libc::raise(libc::SIGUSR2);
            *errno()
        };
        release(libc::SIGUSR2, &saved);
        assert_eq!(after, libc::ENOTTY);
    }

    #[test]
    fn a_claimed_signal_is_read_back_once_and_a_released_one_is_not_written() {
        let fd = SignalFd::new(&[]).unwrap();
        let saved = claim(libc::SIGUSR1, &fd).unwrap();
        // SAFETY: raise runs the handler on this thread before it returns.
        unsafe { libc::raise(libc::SIGUSR1) };
        let mut buf = [0u8; 16];
        let n = fd.read(&mut buf);
        assert_eq!(
            crate::ev::signal::from_pipe(&buf[..n]).collect::<Vec<_>>(),
            [libc::SIGUSR1]
        );
        assert_eq!(fd.read(&mut buf), 0);
        release(libc::SIGUSR1, &saved);
        assert_eq!(WRITE_FD[libc::SIGUSR1 as usize].load(Ordering::SeqCst), -1);
    }
}

//! Signal syscalls for [`Ctx::signal`](crate::ev::Ctx::signal), in two forms chosen with the
//! poller backend: on Linux a `signalfd`, the loop thread's signal mask, and a forwarding
//! handler for signals the kernel hands to other threads; with the portable backend
//! (`signal_pipe.rs`) a handler that writes the signal's number to a self-pipe, as
//! libev does where there is no signalfd. The dispositions and the shared checks are here.
//!
//! `signalfd` only sees signals pending for the thread that reads it (or for the process,
//! when every thread blocks them). A process-directed signal goes to *any* thread that does
//! not block it: libzmq's I/O threads, a worker pool, the test harness. Blocking the signal
//! in every thread is the usual rule, and it must happen before those threads start, which
//! is easy to get wrong. So evnet blocks the signal in the loop thread only and installs a
//! handler (`SA_RESTART`) that, wherever the kernel delivered the signal, re-sends it to
//! the loop thread with `pthread_kill`; it arrives there blocked, pending, and readable on
//! the signalfd. Nothing about thread creation order matters.

use std::io;
use std::mem::MaybeUninit;
#[cfg(not(evnet_portable))]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
#[cfg(not(evnet_portable))]
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(evnet_portable)]
pub(crate) use super::signal_pipe::{claim, release, SignalFd};

/// Highest signal number handled (Linux's `_NSIG` - 1).
pub(crate) const MAX_SIGNAL: i32 = 64;

/// The thread each signal is forwarded to (`pthread_t` as an integer; 0: none).
#[cfg(not(evnet_portable))]
static TARGET: [AtomicU64; MAX_SIGNAL as usize + 1] =
    [const { AtomicU64::new(0) }; MAX_SIGNAL as usize + 1];

use super::cvt;

#[cfg(not(evnet_portable))]
fn set_of(signals: &[i32]) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given; sigaddset only writes to it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &s in signals {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        set.assume_init()
    }
}

/// Whether `sig` is a signal a watcher may take (not SIGKILL/SIGSTOP, in range).
pub(crate) fn valid(sig: i32) -> bool {
    (1..=MAX_SIGNAL).contains(&sig) && sig != libc::SIGKILL && sig != libc::SIGSTOP
}

/// A non-blocking signalfd.
#[cfg(not(evnet_portable))]
#[derive(Debug)]
pub(crate) struct SignalFd {
    fd: OwnedFd,
}

#[cfg(not(evnet_portable))]
impl SignalFd {
    /// A signalfd for `signals`.
    pub(crate) fn new(signals: &[i32]) -> io::Result<SignalFd> {
        let set = set_of(signals);
        // SAFETY: `set` is an initialised sigset; -1 asks for a new fd, which we then own.
        let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    /// Replaces the set of signals the fd reports.
    pub(crate) fn set(&self, signals: &[i32]) -> io::Result<()> {
        let set = set_of(signals);
        // SAFETY: `set` is initialised and the fd is a live signalfd we own.
        cvt(unsafe { libc::signalfd(self.fd.as_raw_fd(), &set, 0) }).map(|_| ())
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads pending signals' records into `buf` (whole `signalfd_siginfo`s); returns the
    /// bytes read, 0 when none is pending. [`crate::ev::signal::from_signalfd`] decodes them.
    pub(crate) fn read(&self, buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is `buf.len()` writable bytes for the call's duration; the kernel
        // writes whole records into it.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).unwrap_or(0) // EAGAIN: nothing pending (EINTR: next turn)
    }
}

/// The previous disposition of a signal, restored by [`release`].
pub(crate) struct Saved(libc::sigaction);

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Saved(sigaction)")
    }
}

/// Installs `handler` for `sig` (`SA_RESTART`, nothing masked); returns the disposition
/// it replaced.
pub(crate) fn install(sig: i32, handler: extern "C" fn(libc::c_int)) -> io::Result<Saved> {
    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler as usize;
    act.sa_flags = libc::SA_RESTART;
    // SAFETY: `act.sa_mask` is a sigset inside `act`.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    let mut old = MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: both pointers are valid; every handler evnet installs is async-signal-safe.
    cvt(unsafe { libc::sigaction(sig, &act, old.as_mut_ptr()) })?;
    // SAFETY: sigaction succeeded and wrote the old disposition.
    Ok(Saved(unsafe { old.assume_init() }))
}

/// Puts back the disposition [`install`] replaced.
pub(crate) fn restore(sig: i32, saved: &Saved) {
    // SAFETY: `saved.0` is the disposition sigaction returned earlier.
    unsafe {
        libc::sigaction(sig, &saved.0, std::ptr::null_mut());
    }
}

#[cfg(not(evnet_portable))]
extern "C" fn forward(sig: libc::c_int) {
    let Some(target) = usize::try_from(sig).ok().and_then(|i| TARGET.get(i)) else {
        return;
    };
    let t = target.load(Ordering::SeqCst);
    if t != 0 {
        // SAFETY: pthread_kill is async-signal-safe; `t` is the loop thread's id, set
        // while that thread lives (it is cleared before the loop's signal state goes).
        unsafe {
            libc::pthread_kill(t as libc::pthread_t, sig);
        }
    }
}

/// Blocks `sig` in the calling (loop) thread and forwards it there from any other thread;
/// the loop's signalfd reads it once [`SignalFd::set`] includes it.
#[cfg(not(evnet_portable))]
pub(crate) fn claim(sig: i32, _fd: &SignalFd) -> io::Result<Saved> {
    let set = set_of(&[sig]);
    // SAFETY: `set` is initialised; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as u64;
    TARGET[sig as usize].store(me, Ordering::SeqCst);
    install(sig, forward)
}

/// Undoes [`claim`] on the loop thread: the old disposition back, forwarding off, the
/// signal unblocked (one still pending is then delivered under the old disposition).
#[cfg(not(evnet_portable))]
pub(crate) fn release(sig: i32, saved: &Saved) {
    TARGET[sig as usize].store(0, Ordering::SeqCst);
    restore(sig, saved);
    let set = set_of(&[sig]);
    // SAFETY: `set` is initialised; the old mask is not wanted.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

//! Cross-thread wake-ups: [`Waker`], the `Send + Clone` half of a wake watcher.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::sys::EventFd;

/// The loop's one eventfd, shared by all of its wake watchers, and libev's two flags that
/// keep `wake()` from writing it while the loop is awake anyway (`pipe_write_wanted` /
/// `pipe_write_skipped` in ev.c).
///
/// A waker raises its watcher's flag, then `skipped`, then writes the eventfd only if the
/// loop has said it is about to sleep (`wanted`). The loop sets `wanted` before it reads
/// `skipped` to choose its poll timeout (zero if set), and collects raised flags after the
/// poll whenever the eventfd fired or `skipped` is set. Both sides store before they load
/// (`SeqCst`), so either the loop sees `skipped` and does not sleep, or the waker sees
/// `wanted` and writes: no wake is lost, and a busy loop costs its wakers no syscall.
#[derive(Debug)]
pub(crate) struct WakeShared {
    pub(crate) efd: EventFd,
    /// The loop is about to poll with a timeout (or is polling): wakers must write.
    pub(crate) wanted: AtomicBool,
    /// A wake was raised since the loop last collected.
    pub(crate) skipped: AtomicBool,
}

impl WakeShared {
    pub(crate) fn new(efd: EventFd) -> WakeShared {
        WakeShared {
            efd,
            wanted: AtomicBool::new(false),
            skipped: AtomicBool::new(false),
        }
    }

    pub(crate) fn signal(&self) {
        self.skipped.store(true, Ordering::SeqCst);
        if self.wanted.load(Ordering::SeqCst) {
            self.efd.notify();
        }
    }
}

/// Wakes a [`Loop`](super::Loop) from any thread and makes one wake watcher's callback run
/// on the loop thread.
///
/// Several `wake()` calls before the loop gets to run the callback are coalesced into one
/// callback, as with libev's `ev_async`. A `Waker` outliving its loop is harmless: waking it
/// does nothing observable.
///
/// # Examples
/// ```
/// use evnet::ev::Loop;
///
/// let mut ev = Loop::<u32>::new()?;
/// let (w, waker) = ev.waker(|n, cx, e| {
///     *n += 1;
///     cx.remove(e.watcher());
/// })?;
/// std::thread::spawn(move || waker.wake()).join().unwrap();
/// let mut n = 0;
/// ev.run(&mut n)?; // returns once the wake watcher removed itself
/// assert_eq!(n, 1);
/// assert!(!ev.is_active(w));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Waker {
    pub(crate) shared: Arc<WakeShared>,
    pub(crate) flag: Arc<AtomicBool>,
}

impl Waker {
    /// Queues the wake watcher's callback and wakes the loop if it sleeps. Never blocks;
    /// costs no syscall while the loop is awake, and one `write` when it sleeps (libev's
    /// `ev_async_send`). Everything the calling thread did before `wake()` is visible to
    /// the callback.
    pub fn wake(&self) {
        // Already raised and not yet collected: that wake covers this one. The swap (not a
        // load) chains this thread's writes to the loop's acquiring swap.
        if self.flag.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.signal();
    }
}

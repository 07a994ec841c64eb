//! Cross-thread wake-ups: [`Waker`], the `Send + Clone` half of a wake watcher.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::sys::EventFd;

/// The loop's one eventfd, shared by all of its wake watchers.
#[derive(Debug)]
pub(crate) struct WakeShared {
    pub(crate) efd: EventFd,
    /// Set by the first `wake()` after the loop last drained the eventfd; later wakes skip
    /// the write syscall.
    pub(crate) notified: AtomicBool,
}

impl WakeShared {
    pub(crate) fn signal(&self) {
        if !self.notified.swap(true, Ordering::SeqCst) {
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
/// let (w, waker) = ev.wake(|n, cx, e| {
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
    /// costs one `write` syscall at most per loop turn, however many threads call it.
    pub fn wake(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.shared.signal();
    }
}

//! [`channel`]: a bounded queue into an event loop, from other loops or threads.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

use crate::ev::{Ctx, Waker, WatcherId};

/// How many messages a [`LoopReceiver`] delivers per loop turn unless told otherwise.
pub const DEFAULT_BATCH: usize = 64;

/// A bounded channel into an event loop: messages are queued by [`LoopSender`]s on any
/// thread and delivered on the receiving loop's thread, in order per sender, at most a
/// batch per turn (the rest in the next turns, after the io and timers that are due).
///
/// A send wakes the receiving loop only when it sleeps (libev's `ev_async` flags: a busy
/// loop costs its senders no syscall), and allocates nothing: the queue is preallocated
/// (`capacity` messages, at least one).
///
/// ```
/// use evnet::ev::Loop;
/// use evnet::loops::channel;
///
/// let (tx, rx) = channel::<u64>(1024);
/// let producer = std::thread::spawn(move || {
///     for i in 0..1000 {
///         tx.send(i).unwrap(); // blocks while the queue is full: not on a loop thread
///     }
/// }); // the last sender dropped: the receiver removes itself once drained
/// let mut ev = Loop::<Vec<u64>>::new()?;
/// rx.attach(&mut ev, |got, _cx, i| got.push(i))?;
/// let mut got = Vec::new();
/// ev.run(&mut got)?;
/// producer.join().unwrap();
/// assert_eq!(got, (0..1000).collect::<Vec<_>>());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn channel<T: Send + 'static>(capacity: usize) -> (LoopSender<T>, LoopReceiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let shared = Arc::new(Shared {
        waker: OnceLock::new(),
        senders: AtomicUsize::new(1),
    });
    (
        LoopSender {
            tx: Some(tx),
            shared: shared.clone(),
        },
        LoopReceiver {
            rx,
            shared,
            batch: DEFAULT_BATCH,
        },
    )
}

/// The receiving loop's waker (once attached) and the number of live senders.
struct Shared {
    waker: OnceLock<Waker>,
    senders: AtomicUsize,
}

impl Shared {
    fn wake(&self) {
        if let Some(w) = self.waker.get() {
            w.wake();
        }
    }
}

/// Why a send failed; the message comes back.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError<T> {
    /// The queue is full (only from [`try_send`](LoopSender::try_send)).
    Full(T),
    /// The receiver is gone (dropped, or its loop ended).
    Closed(T),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full(m) | SendError::Closed(m) => m,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("the loop's queue is full"),
            SendError::Closed(_) => f.write_str("the receiving loop is gone"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

/// The sending half of a [`channel`]: `Send`, `Clone` (one per producer), usable from any
/// thread or loop.
pub struct LoopSender<T> {
    /// `None` only while dropping: the queue's sender goes before the wake that tells the
    /// receiver it may be the last.
    tx: Option<Sender<T>>,
    shared: Arc<Shared>,
}

impl<T> fmt::Debug for LoopSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopSender").finish_non_exhaustive()
    }
}

impl<T> Clone for LoopSender<T> {
    fn clone(&self) -> LoopSender<T> {
        self.shared.senders.fetch_add(1, Ordering::SeqCst);
        LoopSender {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<T> LoopSender<T> {
    /// Queues `msg` without blocking, and wakes the receiving loop if it sleeps. From a
    /// loop thread this is the call to use: on [`SendError::Full`] keep the message and
    /// retry later (a timer), or drop it, as the application's policy says.
    ///
    /// # Errors
    /// [`SendError::Full`] when the queue is full, [`SendError::Closed`] when the receiver
    /// is gone; the message comes back in either.
    pub fn try_send(&self, msg: T) -> Result<(), SendError<T>> {
        let Some(tx) = &self.tx else {
            return Err(SendError::Closed(msg));
        };
        tx.try_send(msg).map_err(|e| match e {
            TrySendError::Full(m) => SendError::Full(m),
            TrySendError::Disconnected(m) => SendError::Closed(m),
        })?;
        self.shared.wake();
        Ok(())
    }

    /// Queues `msg`, blocking while the queue is full: for plain threads, never for a
    /// loop thread (it would stop that loop).
    ///
    /// # Errors
    /// [`SendError::Closed`] when the receiver is gone, with the message.
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        let Some(tx) = &self.tx else {
            return Err(SendError::Closed(msg));
        };
        tx.send(msg).map_err(|e| SendError::Closed(e.0))?;
        self.shared.wake();
        Ok(())
    }
}

impl<T> Drop for LoopSender<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if self.shared.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The last one: the receiver sees the queue disconnected once drained.
            self.shared.wake();
        }
    }
}

/// The receiving half of a [`channel`]: `Send`, so it can be made on one thread and
/// attached on the loop that consumes it.
pub struct LoopReceiver<T> {
    rx: Receiver<T>,
    shared: Arc<Shared>,
    batch: usize,
}

impl<T> fmt::Debug for LoopReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopReceiver")
            .field("queued", &self.rx.len())
            .field("batch", &self.batch)
            .finish()
    }
}

impl<T: Send + 'static> LoopReceiver<T> {
    /// At most `n` messages per loop turn (at least one; [`DEFAULT_BATCH`] unless set).
    #[must_use]
    pub fn batch(mut self, n: usize) -> LoopReceiver<T> {
        self.batch = n.max(1);
        self
    }

    /// Delivers the messages to `on_msg` on `cx`'s loop, a batch per turn, starting with
    /// any sent before this call. The watcher removes itself once every sender is dropped
    /// and the queue is drained (so it does not keep [`Loop::run`](crate::ev::Loop::run)
    /// going); removing it drops the receiver, and senders then get
    /// [`SendError::Closed`].
    ///
    /// # Errors
    /// Creating the loop's wake eventfd failed.
    pub fn attach<S: 'static, F>(self, cx: &mut Ctx<S>, mut on_msg: F) -> io::Result<WatcherId>
    where
        F: FnMut(&mut S, &mut Ctx<S>, T) + 'static,
    {
        let LoopReceiver { rx, shared, batch } = self;
        let me = shared.clone();
        let (w, waker) = cx.waker(move |st, cx, e| {
            for _ in 0..batch {
                match rx.try_recv() {
                    Ok(msg) => on_msg(st, cx, msg),
                    Err(TryRecvError::Empty) => return,
                    Err(TryRecvError::Disconnected) => {
                        cx.remove(e.watcher());
                        return;
                    }
                }
            }
            // The batch is spent: come back next turn, after the io and timers due now
            // (no syscall: the loop is awake).
            me.wake();
        })?;
        // Nothing can be lost: a send before `set` left its message queued, and this wake
        // collects it (or sees that every sender is already gone).
        let _ = shared.waker.set(waker.clone());
        waker.wake();
        Ok(w)
    }
}

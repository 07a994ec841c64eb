//! [`Mailbox`]: sends to a loop-owned ZeroMQ socket from other threads.

use std::fmt;
#[cfg(any(feature = "mio", feature = "calloop", feature = "tokio"))]
use std::sync::Arc;

use crossbeam_channel::{Receiver, SendError, Sender, TrySendError};

use crate::ev::Waker;

/// A `Send + Clone` handle that queues multipart messages for a [`ZmqWatcher`](super::ZmqWatcher)'s socket
/// from any thread (a ZeroMQ socket itself must stay on its loop's thread).
///
/// Messages go through a bounded queue and the loop's wake watcher; the watcher sends them
/// in its `writable` turn, within the same [`Budget`](super::Budget) as everything else,
/// before the handler's own `writable()` calls. Per sender, messages go out in the order
/// sent, none is lost: a full queue refuses with [`MailError::Full`] (or blocks, with
/// [`send`](Mailbox::send)) and hands the message back.
///
/// Get one with [`ZmqWatcher::mailbox`](super::ZmqWatcher::mailbox).
///
/// ```
/// use std::time::Duration;
/// use evnet::ev::{Ctx, Loop};
/// use evnet::fair::{ZmqHandler, Sock, ZmqWatcher};
/// use evnet::zmq;
///
/// struct Count;
/// impl ZmqHandler<Ctx<u32>> for Count {
///     fn readable(&mut self, _m: &mut [zmq::Message], _s: &mut Sock<'_>,
///                 (n, _cx): (&mut u32, &mut Ctx<u32>)) {
///         *n += 1;
///     }
/// }
/// struct Quiet; // a PUSH needs no readable()
/// impl ZmqHandler<Ctx<u32>> for Quiet {}
///
/// let ctx = zmq::Context::new();
/// let pull = ctx.socket(zmq::PULL)?;
/// pull.bind("inproc://mailbox-doc")?;
/// let push = ctx.socket(zmq::PUSH)?;
/// push.connect("inproc://mailbox-doc")?;
/// let mut ev = Loop::new()?;
/// let _rx = ZmqWatcher::new(&mut ev, pull, Count)?;
/// let tx = ZmqWatcher::new(&mut ev, push, Quiet)?;
/// let mailbox = tx.mailbox(&mut ev, 1024)?;
/// let t = std::thread::spawn(move || {
///     for i in 0..100u32 {
///         mailbox.send([&i.to_le_bytes()[..]]).expect("the watcher is open");
///     }
/// });
/// let mut n = 0;
/// ev.run_until(&mut n, Duration::from_secs(10), |n| *n == 100)?;
/// t.join().unwrap();
/// assert_eq!(n, 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Mailbox {
    tx: Sender<Vec<zmq::Message>>,
    waker: Wake,
}

/// How a [`Mailbox`] wakes the loop that owns its socket: evnet's own [`Waker`], or the
/// host loop's (a `mio::Waker`, a calloop `Ping`, a task waker) behind a function.
#[derive(Clone)]
pub(crate) enum Wake {
    Ev(Waker),
    #[cfg(any(feature = "mio", feature = "calloop", feature = "tokio"))]
    Host(Arc<dyn Fn() + Send + Sync>),
}

impl Wake {
    fn wake(&self) {
        match self {
            Wake::Ev(w) => w.wake(),
            #[cfg(any(feature = "mio", feature = "calloop", feature = "tokio"))]
            Wake::Host(f) => f(),
        }
    }
}

impl fmt::Debug for Wake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wake::Ev(w) => w.fmt(f),
            #[cfg(any(feature = "mio", feature = "calloop", feature = "tokio"))]
            Wake::Host(_) => f.write_str("Host"),
        }
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("queued", &self.tx.len())
            .field("capacity", &self.tx.capacity())
            .finish()
    }
}

/// A message the [`Mailbox`] did not take, handed back.
#[derive(Debug)]
#[non_exhaustive]
pub enum MailError {
    /// The queue is full (the socket is slower than its senders); try again later.
    Full(Vec<zmq::Message>),
    /// The watcher is closed or finished: nothing will ever send it.
    Closed(Vec<zmq::Message>),
}

impl MailError {
    /// The message that was not taken.
    pub fn into_message(self) -> Vec<zmq::Message> {
        match self {
            MailError::Full(m) | MailError::Closed(m) => m,
        }
    }
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailError::Full(_) => f.write_str("zeromq mailbox is full"),
            MailError::Closed(_) => f.write_str("zeromq mailbox is closed"),
        }
    }
}

impl std::error::Error for MailError {}

fn collect<I, T>(parts: I) -> Vec<zmq::Message>
where
    I: IntoIterator<Item = T>,
    T: Into<zmq::Message>,
{
    parts.into_iter().map(Into::into).collect()
}

impl Mailbox {
    pub(crate) fn from_parts(tx: Sender<Vec<zmq::Message>>, waker: Wake) -> Mailbox {
        Mailbox { tx, waker }
    }

    /// Queues one multipart message without blocking.
    ///
    /// # Errors
    /// [`MailError::Full`] when the queue is at its capacity, [`MailError::Closed`] when
    /// the watcher is gone; either way the message comes back.
    pub fn try_send<I, T>(&self, parts: I) -> Result<(), MailError>
    where
        I: IntoIterator<Item = T>,
        T: Into<zmq::Message>,
    {
        match self.tx.try_send(collect(parts)) {
            Ok(()) => {
                self.waker.wake();
                Ok(())
            }
            Err(TrySendError::Full(m)) => Err(MailError::Full(m)),
            Err(TrySendError::Disconnected(m)) => Err(MailError::Closed(m)),
        }
    }

    /// Queues one multipart message, waiting while the queue is full.
    ///
    /// # Errors
    /// [`MailError::Closed`] when the watcher is gone (the message comes back).
    pub fn send<I, T>(&self, parts: I) -> Result<(), MailError>
    where
        I: IntoIterator<Item = T>,
        T: Into<zmq::Message>,
    {
        match self.tx.send(collect(parts)) {
            Ok(()) => {
                self.waker.wake();
                Ok(())
            }
            Err(SendError(m)) => Err(MailError::Closed(m)),
        }
    }
}

/// The loop side of a mailbox: the queue's receiver, and the message being sent.
#[derive(Debug)]
pub(crate) struct Mail {
    rx: Receiver<Vec<zmq::Message>>,
    /// A message taken from the queue and not wholly accepted by libzmq yet.
    held: Option<Vec<zmq::Message>>,
    sent_parts: usize,
    tx: Sender<Vec<zmq::Message>>,
    waker: Wake,
}

/// What one [`Mail::flush_one`] did.
pub(crate) enum Sent {
    /// A message went out.
    One,
    /// The socket pushed back; the message is held for the next turn.
    Blocked,
    /// Nothing queued.
    Empty,
}

impl Mail {
    pub(crate) fn new(capacity: usize, waker: Wake) -> Mail {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        Mail {
            rx,
            held: None,
            sent_parts: 0,
            tx,
            waker,
        }
    }

    /// Another sender handle on this queue.
    pub(crate) fn mailbox(&self) -> Mailbox {
        Mailbox::from_parts(self.tx.clone(), self.waker.clone())
    }

    pub(crate) fn pending(&self) -> bool {
        self.held.is_some() || !self.rx.is_empty()
    }

    /// Sends the next message without blocking. A libzmq error other than `EAGAIN` drops
    /// that message (its sender is another thread, which cannot take it back) and is
    /// returned for the handler's `error()`.
    pub(crate) fn flush_one(&mut self, sock: &mut super::Sock<'_>) -> Result<Sent, super::Error> {
        if self.held.is_none() {
            match self.rx.try_recv() {
                Ok(m) => self.held = Some(m),
                Err(_) => return Ok(Sent::Empty),
            }
        }
        let Some(msg) = &self.held else {
            return Ok(Sent::Empty);
        };
        let r = sock.send_parts(msg, &mut self.sent_parts);
        if let Ok(false) = r {
            return Ok(Sent::Blocked);
        }
        self.held = None;
        self.sent_parts = 0;
        r.map(|_| Sent::One)
    }
}

//! [`Outbox`]: a queue of multipart messages sent one per `writable()` call.

use std::collections::VecDeque;
use std::fmt;

use super::{Error, Sock};

/// What [`Outbox::flush_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// One whole message went out; more are queued.
    Sent,
    /// The last queued message went out (writable interest was turned off).
    Drained,
    /// Nothing was queued (writable interest was turned off).
    Empty,
    /// The socket pushed back (high-water mark, or no peer yet): the message stays queued
    /// and is retried when the socket becomes writable again.
    Blocked,
}

/// A queue of outgoing multipart messages for a handler's `writable()`.
///
/// It never blocks, sends one whole message per [`flush_one`](Outbox::flush_one), and
/// turns writable interest off when it runs empty. A message stays queued until libzmq
/// accepted it, so [`Flushed::Blocked`] loses nothing, and a send that fails hands the
/// message back in [`FlushError`]: the outbox never drops a message.
///
/// That is evnet's side only. What the socket does with a message libzmq accepted is the
/// socket type's rule: a PUB (or XPUB, RADIO) socket never pushes back, so the outbox never
/// sees [`Flushed::Blocked`] there, and libzmq drops what a slow subscriber has no room for
/// at its high-water mark (`ZMQ_SNDHWM`, 1,000 messages by default: of a burst of 100,000
/// published at the defaults, a user saw 37,500 reach a SUB). Raise the HWM on both sides, or use a
/// socket type that blocks at the HWM (PUSH, DEALER, ROUTER with `ZMQ_ROUTER_MANDATORY`)
/// when every message must arrive.
///
/// # Publishing from a timer (or any other callback)
/// Keep the outbox and the [`ZmqWatcher`](super::ZmqWatcher) handle in the loop state
/// `S`: the timer pushes and asks for writable interest, and the handler's `writable()`
/// flushes from `S`. That is the intended way. A direct
/// `watcher.socket().send(.., zmq::DONTWAIT)` also works, but at the high-water mark it
/// fails with `EAGAIN` and the message is yours to keep and retry; the outbox does exactly
/// that, and the adapter wakes it when the socket can take more. (From another thread,
/// use a [`Mailbox`](super::Mailbox).)
///
/// ```
/// use std::time::Duration;
/// use evnet::ev::{Ctx, Loop};
/// use evnet::fair::{ZmqHandler, Outbox, Sock, ZmqWatcher};
/// use evnet::zmq;
///
/// #[derive(Default)]
/// struct App {
///     out: Outbox,
///     publisher: Option<ZmqWatcher>,
///     ticks: u32,
///     got: u32,
/// }
///
/// struct Publisher;
/// impl ZmqHandler<Ctx<App>> for Publisher {
///     fn writable(&mut self, sock: &mut Sock<'_>, (app, _cx): (&mut App, &mut Ctx<App>)) {
///         let _ = app.out.flush_one(sock); // turns writable off once empty
///     }
/// }
/// struct Subscriber;
/// impl ZmqHandler<Ctx<App>> for Subscriber {
///     fn readable(&mut self, _m: &mut [zmq::Message], _s: &mut Sock<'_>,
///                 (app, _cx): (&mut App, &mut Ctx<App>)) {
///         app.got += 1;
///     }
/// }
///
/// let ctx = zmq::Context::new();
/// let pull = ctx.socket(zmq::PULL)?;
/// pull.bind("inproc://outbox-doc")?;
/// let push = ctx.socket(zmq::PUSH)?;
/// push.connect("inproc://outbox-doc")?;
/// let mut ev = Loop::<App>::new()?;
/// let _sub = ZmqWatcher::new(&mut ev, pull, Subscriber)?;
/// let mut app = App { publisher: Some(ZmqWatcher::new(&mut ev, push, Publisher)?), ..App::default() };
/// let ms = Duration::from_millis(1);
/// ev.timer(ms, Some(ms), |app: &mut App, _cx, _e| {
///     app.ticks += 1;
///     app.out.push([format!("tick {}", app.ticks).as_bytes()]);
///     if let Some(p) = &app.publisher {
///         p.set_writable(true);
///     }
/// });
/// ev.run_until(&mut app, Duration::from_secs(10), |a| a.got >= 5)?;
/// assert!(app.got >= 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Vec<zmq::Message>>,
    /// Parts of the front message already accepted by libzmq.
    sent_parts: usize,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Queues one multipart message.
    pub fn push<I, T>(&mut self, parts: I)
    where
        I: IntoIterator<Item = T>,
        T: Into<zmq::Message>,
    {
        let parts: Vec<zmq::Message> = parts.into_iter().map(Into::into).collect();
        if !parts.is_empty() {
            self.queue.push_back(parts);
        }
    }

    /// Messages queued (including one partly sent).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes every queued message out, oldest first (e.g. after the watcher finished).
    pub fn drain(&mut self) -> impl Iterator<Item = Vec<zmq::Message>> + '_ {
        self.sent_parts = 0;
        self.queue.drain(..)
    }

    /// Sends the front message without blocking.
    ///
    /// # Errors
    /// A libzmq error other than `EAGAIN`: the front message leaves the queue and comes
    /// back in the [`FlushError`] (so one message a ROUTER cannot route does not wedge the
    /// queue); the rest stay queued. After [`Error::Terminated`] the watcher finishes and no
    /// further `writable()` call comes; what is still queued can be taken with
    /// [`drain`](Outbox::drain).
    pub fn flush_one(&mut self, sock: &mut Sock<'_>) -> Result<Flushed, FlushError> {
        let Some(front) = self.queue.front() else {
            sock.set_writable(false);
            return Ok(Flushed::Empty);
        };
        match sock.send_parts(front, &mut self.sent_parts) {
            Ok(true) => {}
            Ok(false) => return Ok(Flushed::Blocked),
            Err(error) => {
                self.sent_parts = 0;
                let message = self.queue.pop_front().unwrap_or_default();
                return Err(FlushError { error, message });
            }
        }
        self.queue.pop_front();
        self.sent_parts = 0;
        if self.queue.is_empty() {
            sock.set_writable(false);
            Ok(Flushed::Drained)
        } else {
            Ok(Flushed::Sent)
        }
    }
}

/// A queued message could not be sent: why, and the message itself, handed back whole.
#[derive(Debug)]
pub struct FlushError {
    /// The libzmq error (never `EAGAIN`).
    pub error: Error,
    /// The message that was not sent, every part of it.
    pub message: Vec<zmq::Message>,
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "queued {}-part message not sent: {}",
            self.message.len(),
            self.error
        )
    }
}

impl std::error::Error for FlushError {}

impl From<FlushError> for Error {
    fn from(e: FlushError) -> Error {
        e.error
    }
}

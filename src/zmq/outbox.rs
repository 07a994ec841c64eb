//! [`Outbox`]: a queue of multipart messages sent one per `writable()` call.

use std::collections::VecDeque;
use std::fmt;

use super::{Error, Sock};

/// What [`Outbox::flush_one`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
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
/// turns writable interest off when it runs empty. Push from anywhere (e.g. a timer
/// callback) and then ask for writable with
/// [`ZmqWatcher::set_writable`](super::ZmqWatcher::set_writable) or [`Sock::set_writable`].
///
/// A message stays queued until libzmq accepted it, so [`Flush::Blocked`] loses nothing,
/// and a send that fails hands the message back in [`FlushError`]: the outbox never drops
/// a message.
///
/// # Examples
/// ```
/// use evnet::zmq::Outbox;
/// let mut out = Outbox::new();
/// out.push([&b"topic"[..], &b"payload"[..]]);
/// assert_eq!(out.len(), 1);
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
    pub fn flush_one(&mut self, sock: &mut Sock<'_>) -> Result<Flush, FlushError> {
        let Some(front) = self.queue.front() else {
            sock.set_writable(false);
            return Ok(Flush::Empty);
        };
        let n = front.len();
        while self.sent_parts < n {
            let more = self.sent_parts + 1 < n;
            match sock.send(&front[self.sent_parts][..], more) {
                Ok(true) => self.sent_parts += 1,
                Ok(false) => return Ok(Flush::Blocked),
                Err(error) => {
                    self.sent_parts = 0;
                    let message = self.queue.pop_front().unwrap_or_default();
                    return Err(FlushError { error, message });
                }
            }
        }
        self.queue.pop_front();
        self.sent_parts = 0;
        if self.queue.is_empty() {
            sock.set_writable(false);
            Ok(Flush::Drained)
        } else {
            Ok(Flush::Sent)
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

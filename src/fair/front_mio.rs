//! [`MioZmq`]: the fair adapter on a `mio` 1.x loop.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Events, Registry, Token};

use super::accessors::zmq_accessors;
use super::hosted::Hosted;
use super::mailbox::{Mail, Mailbox, Wake};
use super::{Budget, Error, InsertError, ZmqHandler};

/// A ZeroMQ socket on a [`mio::Poll`] loop, served fairly: at most the [`Budget`] of
/// messages per loop turn, and never a missed message.
///
/// mio is edge-triggered, like `ZMQ_FD` itself, so a source that reads one budget per
/// event would stall with messages queued and no new edge coming. `MioZmq` gives the loop
/// the two halves of evnet's quartet:
///
/// - **before each `poll`**, [`poll_timeout`](MioZmq::poll_timeout) reads `ZMQ_EVENTS`
///   and answers a zero timeout while work is pending, so the poll does not sleep on it;
/// - **after each `poll`**, [`dispatch`](MioZmq::dispatch) gives the handler one bounded
///   turn: up to the budget of whole messages, and `writable()` calls while it asks.
///
/// Register it once with [`Registry::register`] (any interest: it always watches
/// `ZMQ_FD` for readability, which libzmq raises for both directions). Call both halves on
/// every loop turn, whatever woke the poll; skipping `poll_timeout` before a poll may let
/// it sleep on queued messages.
///
/// The example needs `mio` (1.x, feature `os-poll`) in your `Cargo.toml` besides evnet
/// (feature `mio`):
///
/// ```
/// use std::time::Duration;
/// use evnet::fair::{MioZmq, Sock};
/// use evnet::zmq;
/// use mio::{Events, Interest, Poll, Token};
///
/// let ctx = zmq::Context::new();
/// let pull = ctx.socket(zmq::PULL)?;
/// pull.bind("inproc://mio-doc")?;
/// let push = ctx.socket(zmq::PUSH)?;
/// push.connect("inproc://mio-doc")?;
/// for i in 0..1000u32 {
///     push.send(&i.to_le_bytes()[..], 0)?;
/// }
///
/// let mut poll = Poll::new()?;
/// let mut events = Events::with_capacity(64);
/// let mut zmq_pull = MioZmq::new(pull)?;
/// poll.registry().register(&mut zmq_pull, Token(0), Interest::READABLE)?;
/// let got = std::cell::Cell::new(0);
/// let mut on_msg = |_msg: &mut [zmq::Message], _sock: &mut Sock<'_>| got.set(got.get() + 1);
/// let mut turns = 0;
/// while got.get() < 1000 && turns < 10_000 {
///     turns += 1;
///     let timeout = zmq_pull.poll_timeout(Some(Duration::from_secs(1)));
///     poll.poll(&mut events, timeout)?;
///     zmq_pull.dispatch(&events, &mut on_msg)?;
///     // ... the loop's timers and other sources here ...
/// }
/// assert_eq!(got.get(), 1000);
/// assert!(turns >= 1000 / 64, "64 messages per turn at most");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a MioZmq closes its socket; keep it while the socket should be served"]
#[cfg_attr(docsrs, doc(cfg(feature = "mio")))]
pub struct MioZmq {
    hosted: Hosted,
    /// `ZMQ_FD`, owned by libzmq.
    fd: RawFd,
    token: Option<Token>,
    mail_token: Option<Token>,
}

impl std::fmt::Debug for MioZmq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MioZmq")
            .field("token", &self.token)
            .field("interest", &self.interest())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl MioZmq {
    /// Wraps `socket` with the default [`Budget`]; reading, unless the socket type cannot
    /// receive (PUSH and PUB start with no interest).
    ///
    /// # Errors
    /// Reading `ZMQ_FD` failed; the socket is given back.
    pub fn new(socket: zmq::Socket) -> Result<MioZmq, InsertError> {
        MioZmq::with_budget(socket, Budget::DEFAULT)
    }

    /// As [`new`](MioZmq::new), with a budget.
    ///
    /// # Errors
    /// Reading `ZMQ_FD` failed; the socket is given back.
    pub fn with_budget(socket: zmq::Socket, budget: Budget) -> Result<MioZmq, InsertError> {
        let fd = match socket.get_fd() {
            Ok(fd) => fd,
            Err(e) => return Err(InsertError::new(Error::from_zmq(e), socket)),
        };
        Ok(MioZmq {
            hosted: Hosted::new(socket, budget),
            fd,
            token: None,
            mail_token: None,
        })
    }

    zmq_accessors!(hosted);

    /// The loop asks the core before every poll, so nothing needs waking.
    fn interest_changed(&self) {}

    /// A [`Mailbox`] through which other threads send on this socket, waking the poll
    /// through a [`mio::Waker`] registered under `token` (a token of its own: events for
    /// it are this socket's, and [`dispatch`](MioZmq::dispatch) takes them as its own).
    /// Every call returns a handle to the same queue (the first call's capacity and token
    /// hold).
    ///
    /// # Errors
    /// Creating the `mio::Waker` failed.
    pub fn mailbox(
        &mut self,
        registry: &Registry,
        token: Token,
        capacity: usize,
    ) -> io::Result<Mailbox> {
        if let Some(m) = self.hosted.core.mailbox() {
            return Ok(m);
        }
        let waker = Arc::new(mio::Waker::new(registry, token)?);
        let mail = Mail::new(
            capacity,
            Wake::Host(Arc::new(move || {
                // A failed wake means the poll is gone; the queue then never drains and
                // senders learn of it once the socket is dropped.
                let _ = waker.wake();
            })),
        );
        let mb = mail.mailbox();
        self.hosted.core.set_mail(mail);
        self.mail_token = Some(token);
        Ok(mb)
    }

    /// Before a `poll`: `timeout`, the loop's own (its next timer), or zero when work is
    /// pending. Chain it for several sockets: `a.poll_timeout(b.poll_timeout(t))`. Reads
    /// `ZMQ_EVENTS` (unless the last turn ended on the budget), which re-arms `ZMQ_FD`:
    /// call it exactly once before each poll.
    pub fn poll_timeout(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        if self.hosted.must_not_sleep() {
            Some(Duration::ZERO)
        } else {
            timeout
        }
    }

    /// After a `poll`: one bounded turn for `handler`, whether or not this socket's token
    /// is among `events` (pending work does not raise `ZMQ_FD` again).
    ///
    /// # Errors
    /// The socket ended (its context terminated, or it failed): returned once, then the
    /// source is finished; deregister and drop it. A close the handler asked for
    /// ([`Sock::close`](super::Sock::close)) finishes it without an error.
    pub fn dispatch<D: ZmqHandler + ?Sized>(
        &mut self,
        events: &Events,
        handler: &mut D,
    ) -> Result<(), Error> {
        let fired = events.iter().any(|e| {
            let t = Some(e.token());
            t == self.token || (t == self.mail_token && t.is_some())
        });
        self.hosted.dispatch(fired, handler)
    }
}

impl Source for MioZmq {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        _interests: mio::Interest,
    ) -> io::Result<()> {
        SourceFd(&self.fd).register(registry, token, mio::Interest::READABLE)?;
        self.token = Some(token);
        Ok(())
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        _interests: mio::Interest,
    ) -> io::Result<()> {
        SourceFd(&self.fd).reregister(registry, token, mio::Interest::READABLE)?;
        self.token = Some(token);
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.token = None;
        SourceFd(&self.fd).deregister(registry)
    }
}

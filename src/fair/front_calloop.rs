//! [`CalloopZmq`]: the fair adapter as a `calloop` 0.14 event source.

use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use calloop::generic::Generic;
use calloop::ping::{make_ping, PingSource};
use calloop::{EventSource, Interest, Mode, Poll, PostAction, Readiness, Token, TokenFactory};

use super::accessors::zmq_accessors;
use super::core::{Core, Deliver};
use super::hosted::{dup_zmq_fd, Hosted};
use super::mailbox::{Mail, Mailbox, Wake};
use super::{Budget, Error, InsertError, Sock};

/// What a [`CalloopZmq`] hands its callback, with the [`ZmqIo`] as metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "calloop")))]
pub enum ZmqEvent {
    /// One whole message arrived: [`ZmqIo::message`] (or [`ZmqIo::split`]) holds it.
    Message,
    /// The socket can take a message and writable interest is on: send at most one.
    Writable,
    /// A receive or send failed without ending the socket.
    Error(Error),
    /// The socket ended (its context terminated, or it failed); the source removes itself
    /// from the loop and no event follows.
    Finished(Error),
}

/// The socket and the current message, as a [`CalloopZmq`] callback sees them.
#[cfg_attr(docsrs, doc(cfg(feature = "calloop")))]
pub struct ZmqIo {
    core: Rc<Core>,
    parts: Vec<zmq::Message>,
    len: usize,
}

impl std::fmt::Debug for ZmqIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqIo")
            .field("parts", &self.len)
            .finish_non_exhaustive()
    }
}

impl ZmqIo {
    /// The message of a [`ZmqEvent::Message`], every part in order (empty otherwise). The
    /// buffers are reused; take a part with `std::mem::replace`.
    pub fn message(&mut self) -> &mut [zmq::Message] {
        self.parts.get_mut(..self.len).unwrap_or_default()
    }

    /// The socket view: non-blocking sends, interest toggles, close.
    pub fn sock(&self) -> Sock<'_> {
        self.core.sock()
    }

    /// The message and the socket view at once, e.g. to reply from the message's parts.
    pub fn split(&mut self) -> (&mut [zmq::Message], Sock<'_>) {
        (
            self.parts.get_mut(..self.len).unwrap_or_default(),
            self.core.sock(),
        )
    }
}

/// A ZeroMQ socket as a [`calloop`] event source, served fairly: at most the [`Budget`]
/// of messages per dispatch, and never a missed message.
///
/// The calloop book's ZeroMQ source drains the socket on every wake-up, holding the loop
/// for a whole flood. This one maps evnet's quartet onto calloop's own hooks: in
/// [`before_sleep`](EventSource::before_sleep) (prepare) it reads `ZMQ_EVENTS` and, when
/// work is pending or its last dispatch stopped on the budget, hands calloop a synthetic
/// event, which makes the poll not sleep and calls it back; in
/// [`process_events`](EventSource::process_events) (check) it runs one bounded turn. Both
/// cost no syscall of their own (a `Ping` re-arm would cost two per turn). Sends from other
/// threads go through a [`Mailbox`] (a calloop `Ping` wakes the loop).
///
/// The callback gets a [`ZmqEvent`] and the [`ZmqIo`]; it returns nothing.
///
/// The example needs `calloop` (0.14) in your `Cargo.toml` besides evnet (feature
/// `calloop`):
///
/// ```
/// use std::time::Duration;
/// use evnet::fair::{CalloopZmq, ZmqEvent};
/// use evnet::zmq;
///
/// let ctx = zmq::Context::new();
/// let pull = ctx.socket(zmq::PULL)?;
/// pull.bind("inproc://calloop-doc")?;
/// let push = ctx.socket(zmq::PUSH)?;
/// push.connect("inproc://calloop-doc")?;
/// for i in 0..1000u32 {
///     push.send(&i.to_le_bytes()[..], 0)?;
/// }
///
/// let mut event_loop = calloop::EventLoop::<u32>::try_new()?;
/// let source = CalloopZmq::new(pull)?;
/// event_loop.handle().insert_source(source, |event, io, got: &mut u32| {
///     if event == ZmqEvent::Message {
///         assert_eq!(io.message().len(), 1);
///         *got += 1;
///     }
/// })?;
/// let mut got = 0;
/// let mut turns = 0;
/// while got < 1000 && turns < 10_000 {
///     event_loop.dispatch(Some(Duration::from_secs(1)), &mut got)?;
///     turns += 1;
/// }
/// assert_eq!(got, 1000);
/// assert!(turns >= 1000 / 64, "64 messages per dispatch at most");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a CalloopZmq does nothing until it is inserted into an event loop"]
#[cfg_attr(docsrs, doc(cfg(feature = "calloop")))]
pub struct CalloopZmq {
    hosted: Hosted,
    io: ZmqIo,
    fd: Generic<OwnedFd>,
    /// The token of the synthetic event `before_sleep` hands calloop.
    token: Option<Token>,
    ping: Option<PingSource>,
}

impl std::fmt::Debug for CalloopZmq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalloopZmq")
            .field("interest", &self.interest())
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// Delivers the core's work to the calloop callback.
struct ToCallback<'a, C> {
    io: &'a mut ZmqIo,
    callback: &'a mut C,
}

impl<C: FnMut(ZmqEvent, &mut ZmqIo)> Deliver for ToCallback<'_, C> {
    fn parts(&mut self) -> &mut Vec<zmq::Message> {
        &mut self.io.parts
    }

    fn readable(&mut self, _core: &Core, len: usize) {
        self.io.len = len;
        (self.callback)(ZmqEvent::Message, self.io);
        self.io.len = 0;
    }

    fn writable(&mut self, _core: &Core) {
        (self.callback)(ZmqEvent::Writable, self.io);
    }

    fn error(&mut self, _core: &Core, err: Error) {
        (self.callback)(ZmqEvent::Error(err), self.io);
    }
}

impl CalloopZmq {
    /// Wraps `socket` with the default [`Budget`]; reading, unless the socket type cannot
    /// receive (PUSH and PUB start with no interest).
    ///
    /// # Errors
    /// Reading or duplicating `ZMQ_FD` failed; the socket is given back.
    pub fn new(socket: zmq::Socket) -> Result<CalloopZmq, InsertError> {
        CalloopZmq::with_budget(socket, Budget::DEFAULT)
    }

    /// As [`new`](CalloopZmq::new), with a budget.
    ///
    /// # Errors
    /// Reading or duplicating `ZMQ_FD` failed; the socket is given back.
    pub fn with_budget(socket: zmq::Socket, budget: Budget) -> Result<CalloopZmq, InsertError> {
        // calloop's Generic owns what it polls; libzmq owns ZMQ_FD, so it gets a duplicate.
        let fd = match dup_zmq_fd(&socket) {
            Ok(fd) => fd,
            Err(error) => return Err(InsertError::new(error, socket)),
        };
        let hosted = Hosted::new(socket, budget);
        let io = ZmqIo {
            core: hosted.core.clone(),
            parts: Vec::new(),
            len: 0,
        };
        Ok(CalloopZmq {
            hosted,
            io,
            // ZMQ_FD signals edges; the core's `before_sleep` covers work the edge
            // already announced, so level-triggered would only re-check the fd each wait.
            fd: Generic::new(fd, Interest::READ, Mode::Edge),
            token: None,
            ping: None,
        })
    }

    zmq_accessors!(hosted);

    /// The loop asks the core before every poll, so nothing needs waking.
    fn interest_changed(&self) {}

    /// A [`Mailbox`] through which other threads send on this socket. Ask for it before
    /// inserting the source (its `Ping` registers with the source); every call returns a
    /// handle to the same queue (the first call's capacity holds).
    ///
    /// # Errors
    /// Creating the ping failed, or the source is already in a loop.
    pub fn mailbox(&mut self, capacity: usize) -> io::Result<Mailbox> {
        if let Some(m) = self.hosted.core.mailbox() {
            return Ok(m);
        }
        if self.token.is_some() {
            return Err(io::Error::other(
                "CalloopZmq::mailbox must be called before the source is inserted",
            ));
        }
        let (ping, source) = make_ping()?;
        let mail = Mail::new(
            capacity,
            Wake::Host(std::sync::Arc::new(move || ping.ping())),
        );
        let mb = mail.mailbox();
        self.hosted.core.set_mail(mail);
        self.ping = Some(source);
        Ok(mb)
    }
}

impl EventSource for CalloopZmq {
    type Event = ZmqEvent;
    type Metadata = ZmqIo;
    type Ret = ();
    type Error = io::Error;

    const NEEDS_EXTRA_LIFECYCLE_EVENTS: bool = true;

    fn process_events<F>(
        &mut self,
        readiness: Readiness,
        token: Token,
        mut callback: F,
    ) -> Result<PostAction, io::Error>
    where
        F: FnMut(ZmqEvent, &mut ZmqIo),
    {
        if self.hosted.is_finished() {
            return Ok(PostAction::Remove);
        }
        let mut fired = Some(token) == self.token;
        self.fd.process_events(readiness, token, |_, _| {
            fired = true;
            Ok(PostAction::Continue)
        })?;
        if let Some(ping) = self.ping.as_mut() {
            ping.process_events(readiness, token, |(), &mut ()| fired = true)
                .map_err(io::Error::other)?;
        }
        let mut d = ToCallback {
            io: &mut self.io,
            callback: &mut callback,
        };
        let result = self.hosted.dispatch_with(fired, &mut d);
        if let Err(err) = result {
            callback(ZmqEvent::Finished(err), &mut self.io);
        }
        if self.hosted.is_finished() {
            Ok(PostAction::Remove)
        } else {
            Ok(PostAction::Continue)
        }
    }

    fn register(&mut self, poll: &mut Poll, factory: &mut TokenFactory) -> calloop::Result<()> {
        self.token = Some(factory.token());
        self.fd.register(poll, factory)?;
        if let Some(ping) = self.ping.as_mut() {
            ping.register(poll, factory)?;
        }
        Ok(())
    }

    fn reregister(&mut self, poll: &mut Poll, factory: &mut TokenFactory) -> calloop::Result<()> {
        self.token = Some(factory.token());
        self.fd.reregister(poll, factory)?;
        if let Some(ping) = self.ping.as_mut() {
            ping.reregister(poll, factory)?;
        }
        Ok(())
    }

    fn unregister(&mut self, poll: &mut Poll) -> calloop::Result<()> {
        self.fd.unregister(poll)?;
        if let Some(ping) = self.ping.as_mut() {
            ping.unregister(poll)?;
        }
        Ok(())
    }

    fn before_sleep(&mut self) -> calloop::Result<Option<(Readiness, Token)>> {
        match self.token {
            Some(token) if self.hosted.must_not_sleep() => Ok(Some((Readiness::EMPTY, token))),
            _ => Ok(None),
        }
    }
}

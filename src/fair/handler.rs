//! The trait applications implement, and [`Sock`], the socket view their callbacks get.

use std::cell::Cell;

use crate::ev::{Ctx, IoInterest};

use super::Error;

/// The loop a ZeroMQ socket is served on, as its handler sees it: what each callback gets
/// besides the message and the socket.
///
/// - `()`: a loop evnet does not own (the [mio](super::MioZmq) and [tokio](super::TokioZmq)
///   front ends). The callbacks get `()`; the handler keeps its state in `self`.
/// - [`Ctx<S>`]: evnet's own loop over state `S` ([`ZmqWatcher`](super::ZmqWatcher)). The
///   callbacks get `(&mut S, &mut Ctx<S>)`, as every evnet watcher's callback does.
pub trait Host {
    /// What a callback gets.
    type Cx<'a>
    where
        Self: 'a;
}

impl Host for () {
    type Cx<'a> = ();
}

impl<S> Host for Ctx<S> {
    type Cx<'a>
        = (&'a mut S, &'a mut Ctx<S>)
    where
        S: 'a;
}

/// An application's handler for one ZeroMQ socket, on whatever loop serves it: evnet's own
/// ([`ZmqHandler<Ctx<S>>`](Host), for a [`ZmqWatcher`](super::ZmqWatcher)) or another one
/// (`ZmqHandler`, that is `ZmqHandler<()>`, for [`MioZmq`](super::MioZmq) and
/// [`TokioZmq`](super::TokioZmq)'s `dispatch`).
///
/// The adapter receives for the handler: it calls [`readable`](ZmqHandler::readable) once per
/// whole message (every part, in order), at most [`Budget`](super::Budget) messages per
/// turn. Receiving itself is what lets the adapter learn the socket is drained (`EAGAIN`)
/// without an extra `ZMQ_EVENTS` syscall per message.
///
/// Writes use an interest toggle: call [`Sock::set_writable`] (or
/// [`ZmqWatcher::set_writable`](super::ZmqWatcher::set_writable)) while there is output and
/// [`writable`](ZmqHandler::writable) is called, up to the budget, while the socket can take
/// more (after any [mailbox](super::Mailbox) messages); turn it off when done.
/// [`Outbox`](super::Outbox) does that bookkeeping.
///
/// On evnet's loop, the callbacks get the loop's state and context:
///
/// ```
/// use evnet::ev::Ctx;
/// use evnet::fair::{Sock, ZmqHandler};
/// use evnet::zmq;
///
/// struct Count;
/// impl ZmqHandler<Ctx<u64>> for Count {
///     fn readable(&mut self, _msg: &mut [zmq::Message], _sock: &mut Sock<'_>,
///                 (seen, _cx): (&mut u64, &mut Ctx<u64>)) {
///         *seen += 1;
///     }
/// }
/// fn takes(_: impl ZmqHandler<Ctx<u64>>) {}
/// takes(Count);
/// ```
///
/// On another loop they get `()`, and a closure over `(msg, sock)` is a handler that only
/// reads:
///
/// ```
/// use evnet::fair::{Sock, ZmqHandler};
/// use evnet::zmq;
///
/// let mut n = 0;
/// let mut count = |_msg: &mut [zmq::Message], _sock: &mut Sock<'_>| n += 1;
/// fn takes(_: &mut impl ZmqHandler) {}
/// takes(&mut count);
/// ```
pub trait ZmqHandler<H: Host + ?Sized = ()> {
    /// One whole message arrived. A part can be taken with
    /// `std::mem::replace(&mut msg[i], zmq::Message::new())`; the buffers
    /// are the adapter's and are reused for the next message.
    ///
    /// Send-only sockets (PUSH, PUB) start without readable interest and never get here,
    /// so their handlers need not implement it. The default turns readable interest off:
    /// further messages stay queued in the socket (up to its high-water mark), none is
    /// discarded.
    fn readable(&mut self, msg: &mut [zmq::Message], sock: &mut Sock<'_>, cx: H::Cx<'_>) {
        let _ = (msg, cx);
        sock.set_readable(false);
    }

    /// The socket can take a message and the handler asked for writable interest. Send at
    /// most one message (never blocking: [`Sock::send`] uses `ZMQ_DONTWAIT`). The default
    /// turns writable interest off.
    fn writable(&mut self, sock: &mut Sock<'_>, cx: H::Cx<'_>) {
        let _ = cx;
        sock.set_writable(false);
    }

    /// The socket has stopped for good: the context was terminated ([`Error::Terminated`],
    /// from a receive, a send or a paused watcher's look at `ZMQ_FD`) or the socket failed.
    /// No callback follows (on another loop, the front end's `dispatch` also returns
    /// `why`). On evnet's loop the socket closes once the
    /// [`ZmqWatcher`](super::ZmqWatcher) handle is dropped too, so drop it here (keep it in
    /// `S` as an `Option` for that), or `zmq_ctx_term` in another thread waits for it. To
    /// close the socket from its own `readable`/`writable` callbacks, call
    /// [`Sock::close`].
    fn finished(&mut self, why: Error, cx: H::Cx<'_>) {
        let _ = (why, cx);
    }

    /// A receive or send failed with an error that does not end the socket (it keeps
    /// going). The default ignores it.
    fn error(&mut self, err: Error, cx: H::Cx<'_>) {
        let _ = (err, cx);
    }
}

impl<F> ZmqHandler for F
where
    F: FnMut(&mut [zmq::Message], &mut Sock<'_>),
{
    fn readable(&mut self, msg: &mut [zmq::Message], sock: &mut Sock<'_>, (): ()) {
        self(msg, sock);
    }
}

/// The adapter's per-socket flags, shared by the quartet's callbacks and the handle.
#[derive(Debug)]
pub(crate) struct Flags {
    pub(crate) want: Cell<IoInterest>,
    /// A send saw `EAGAIN` during this turn: stop calling `writable()`.
    pub(crate) blocked: Cell<bool>,
    /// Close requested (handle dropped or `Sock::close`).
    pub(crate) closing: Cell<bool>,
    /// A send met `ETERM`: the watcher finishes after the callback, as for a receive.
    pub(crate) terminated: Cell<bool>,
}

impl Flags {
    /// A send's outcome, as the core must learn it: `EAGAIN` blocks this turn's writes
    /// (`Ok(false)`), `ETERM` finishes the socket after the callback.
    pub(crate) fn sent(&self, r: Result<(), zmq::Error>) -> Result<bool, Error> {
        match r {
            Ok(()) => Ok(true),
            Err(zmq::Error::EAGAIN) => {
                self.blocked.set(true);
                Ok(false)
            }
            Err(zmq::Error::ETERM) => {
                self.terminated.set(true);
                Err(Error::Terminated)
            }
            Err(e) => Err(Error::Socket(e)),
        }
    }
}

/// The socket as a handler's callback sees it: non-blocking sends, interest toggles, and
/// the raw [`zmq::Socket`] for everything else.
pub struct Sock<'a> {
    pub(crate) socket: &'a zmq::Socket,
    pub(crate) flags: &'a Flags,
}

impl std::fmt::Debug for Sock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sock")
            .field("interest", &self.flags.want.get())
            .field("blocked", &self.flags.blocked.get())
            .field("closing", &self.flags.closing.get())
            .finish_non_exhaustive()
    }
}

impl Sock<'_> {
    /// The underlying socket (options, subscribe, bind/connect). Receive through the
    /// adapter, not here; if you do, use `ZMQ_DONTWAIT`.
    pub fn socket(&self) -> &zmq::Socket {
        self.socket
    }

    /// Sends one part without blocking (`ZMQ_DONTWAIT`, plus `ZMQ_SNDMORE` if `more`).
    /// Returns `Ok(false)` when the socket cannot take it now (high-water mark or no peer):
    /// nothing was sent, and `writable()` is not called again this turn.
    ///
    /// # Errors
    /// Any libzmq error but `EAGAIN`. [`Error::Terminated`] is final: when the callback
    /// returns, the watcher stops and [`ZmqHandler::finished`] is called, exactly as when a
    /// receive meets it.
    pub fn send(&mut self, data: impl AsRef<[u8]>, more: bool) -> Result<bool, Error> {
        let flags = zmq::DONTWAIT | if more { zmq::SNDMORE } else { 0 };
        self.flags.sent(self.socket.send(data.as_ref(), flags))
    }

    /// Sends a whole multipart message without blocking; `Ok(false)` as for [`send`](Sock::send).
    ///
    /// `Ok(false)` means nothing went out: the first part met `EAGAIN`, and the whole
    /// message is yours to retry later (an [`Outbox`](super::Outbox) does that for you).
    ///
    /// # Errors
    /// Any libzmq error but `EAGAIN` on the first part. An `EAGAIN` on a *later* part is
    /// an error, [`Error::Socket`]`(zmq::Error::EAGAIN)`, because the parts before it are
    /// already queued in libzmq and cannot be taken back: do not send the message again.
    /// libzmq takes the rest of a message once it took the first part (its high-water mark
    /// counts whole messages), so this happens only when the peer's pipe goes away in the
    /// middle; libzmq then rolls the partial message back, and no peer receives half a
    /// message.
    pub fn send_multipart<T: AsRef<[u8]>>(&mut self, parts: &[T]) -> Result<bool, Error> {
        let Some((last, init)) = parts.split_last() else {
            return Ok(true);
        };
        for (i, p) in init.iter().enumerate() {
            if !self.send(p, true)? {
                if i == 0 {
                    return Ok(false);
                }
                // libzmq accepts the rest of a message once its first part went in.
                return Err(Error::Socket(zmq::Error::EAGAIN));
            }
        }
        match self.send(last, false)? {
            true => Ok(true),
            false if init.is_empty() => Ok(false),
            false => Err(Error::Socket(zmq::Error::EAGAIN)),
        }
    }

    /// Sends the parts of `msg` from `*sent` on, counting them in `sent`: `Ok(true)` once
    /// the whole message went, `Ok(false)` when the socket pushed back (resume later from
    /// `*sent`). The queues (`Outbox`, the mailbox) keep their partly sent message this way.
    pub(crate) fn send_parts(
        &mut self,
        msg: &[zmq::Message],
        sent: &mut usize,
    ) -> Result<bool, Error> {
        while let Some(part) = msg.get(*sent) {
            let more = *sent + 1 < msg.len();
            if !self.send(&part[..], more)? {
                return Ok(false);
            }
            *sent += 1;
        }
        Ok(true)
    }

    /// Asks for (or drops) `writable()` calls.
    pub fn set_writable(&mut self, on: bool) {
        self.flags.want.set(self.flags.want.get().with_writable(on));
    }

    /// Asks for (or drops) `readable()` calls; a socket not read from keeps its messages
    /// queued (up to its high-water mark).
    pub fn set_readable(&mut self, on: bool) {
        self.flags.want.set(self.flags.want.get().with_readable(on));
    }

    /// What the handler currently asks for.
    pub fn interest(&self) -> IoInterest {
        self.flags.want.get()
    }

    /// Whether a send saw the high-water mark (`EAGAIN`) during this turn.
    pub fn is_blocked(&self) -> bool {
        self.flags.blocked.get()
    }

    /// Stops the watcher for good after this callback returns; the handler is dropped.
    pub fn close(&mut self) {
        self.flags.closing.set(true);
    }
}

//! The prepare/check/idle/io quartet around `ZMQ_FD`.

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use crate::ev::{Ctx, IoInterest, WatcherId};

use super::accessors::zmq_accessors;
use super::core::{Core, Deliver, Plan, Step};
use super::mailbox::{Mail, Mailbox, Wake};
use super::{Budget, Error, InsertError, ZmqHandler};

#[derive(Debug, Clone, Copy)]
struct Ids {
    prepare: WatcherId,
    check: WatcherId,
    idle: WatcherId,
    io: WatcherId,
}

/// State shared by the prepare and check callbacks and the [`ZmqWatcher`] handle: the
/// loop-agnostic [`Core`] and the watchers that map its answers onto the loop.
struct Shared {
    core: Core,
    /// The quartet, until it is removed.
    ids: Cell<Option<Ids>>,
    /// The mailbox's wake watcher, once a mailbox was asked for.
    mail_watcher: Cell<Option<WatcherId>>,
    /// The loop's epoch right after this socket's last check callback returned.
    checked_at: Cell<Option<u64>>,
}

impl Shared {
    /// Stopped for good: closed, terminated or failed.
    fn is_finished(&self) -> bool {
        self.ids.get().is_none()
    }
}

/// A ZeroMQ socket on a [`Loop`](crate::ev::Loop), driven fairly by the quartet, with a
/// [`ZmqHandler`] receiving its messages.
///
/// This is the handle: it owns nothing the loop needs, and dropping it closes the watcher
/// (at the start of the next turn: the handler is dropped, and the socket closes once the
/// handle is gone too). It is `!Send` and `!Sync`, like the socket it wraps:
///
/// Dropping it at once is a mistake the compiler reports (`#[must_use]`):
///
/// ```compile_fail
/// # #![deny(unused_must_use)]
/// # use evnet::fair::{ZmqHandler, ZmqWatcher};
/// struct Quiet;
/// impl ZmqHandler<Ctx<()>> for Quiet {}
/// let ctx = zmq::Context::new();
/// let mut ev = evnet::ev::Loop::<()>::new().unwrap();
/// ZmqWatcher::new(&mut ev, ctx.socket(zmq::PULL).unwrap(), Quiet).unwrap(); // closed at once
/// ```
///
/// ```compile_fail
/// fn needs_send<T: Send>() {}
/// needs_send::<evnet::fair::ZmqWatcher>();
/// ```
///
/// ```compile_fail
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<evnet::fair::ZmqWatcher>();
/// ```
///
/// # Caveats
/// `ZMQ_FD` is edge-triggered: any libzmq call on the socket (a send, `get_events()`) may
/// consume the notification that messages are waiting. The adapter re-reads `ZMQ_EVENTS`
/// in prepare before it ever lets the loop sleep, so sends from other callbacks (timers,
/// other sockets' handlers) are safe. Do not touch the socket from a *prepare* watcher of
/// your own, which may run between that read and the poll.
#[must_use = "dropping a ZmqWatcher closes it; keep it (e.g. in the loop state) while the socket should be watched"]
pub struct ZmqWatcher {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for ZmqWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZmqWatcher")
            .field("interest", &self.shared.core.interest())
            .field("budget", &self.shared.core.budget())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl ZmqWatcher {
    /// Puts `socket` on the loop with `handler` and the default [`Budget`]; reading, unless
    /// the socket type cannot receive (PUSH and PUB start with no interest: ask for
    /// writable when there is something to send).
    ///
    /// # Errors
    /// Reading `ZMQ_FD` failed; the socket is given back (the handler is dropped).
    pub fn new<S: 'static, H: ZmqHandler<Ctx<S>> + 'static>(
        cx: &mut Ctx<S>,
        socket: zmq::Socket,
        handler: H,
    ) -> Result<ZmqWatcher, InsertError> {
        ZmqWatcher::with_budget(cx, socket, handler, Budget::DEFAULT)
    }

    /// As [`new`](ZmqWatcher::new), with a budget.
    ///
    /// # Errors
    /// Reading `ZMQ_FD` failed; the socket is given back (the handler is dropped).
    pub fn with_budget<S: 'static, H: ZmqHandler<Ctx<S>> + 'static>(
        cx: &mut Ctx<S>,
        socket: zmq::Socket,
        mut handler: H,
        budget: Budget,
    ) -> Result<ZmqWatcher, InsertError> {
        let fd = match socket.get_fd() {
            Ok(fd) => fd,
            Err(e) => return Err(InsertError::new(Error::from_zmq(e), socket)),
        };
        // The io and idle watchers only exist to decide whether the poll may sleep; their
        // callbacks never run because check stops both first.
        let io = match cx.io_raw(fd, IoInterest::READABLE, |_, _, _| {}) {
            Ok(io) => io,
            Err(e) => return Err(InsertError::new(Error::from_io(&e), socket)),
        };
        let shared = Rc::new(Shared {
            core: Core::new(socket, budget),
            ids: Cell::new(None),
            mail_watcher: Cell::new(None),
            checked_at: Cell::new(None),
        });
        cx.stop(io);
        let idle = cx.idle(|_, _, _| {});
        cx.stop(idle);
        let sh = shared.clone();
        let prepare = cx.prepare(move |_, cx, _| prepare(&sh, cx));
        let sh = shared.clone();
        let mut parts: Vec<zmq::Message> = Vec::new();
        let check = cx.check(move |st, cx, _| {
            let mut turn = Native {
                handler: &mut handler,
                parts: &mut parts,
                st,
                cx,
            };
            check(&sh, &mut turn);
        });
        shared.ids.set(Some(Ids {
            prepare,
            check,
            idle,
            io,
        }));
        Ok(ZmqWatcher { shared })
    }

    zmq_accessors!(shared);

    /// evnet's loop plans anew in every prepare: nothing to wake.
    fn interest_changed(&self) {}

    /// A [`Mailbox`] through which other threads send on this socket: a bounded queue of
    /// `capacity` multipart messages (at least 1), drained in the watcher's writable turns.
    /// Every call returns a handle to the same queue (the first call's capacity holds).
    ///
    /// # Errors
    /// Creating the loop's wake eventfd failed (the first wake watcher of a loop only).
    pub fn mailbox<S: 'static>(&self, cx: &mut Ctx<S>, capacity: usize) -> io::Result<Mailbox> {
        if let Some(m) = self.shared.core.mailbox() {
            return Ok(m);
        }
        // The wake only ends a sleep: the next prepare sees the queued mail and asks for
        // writable interest on the socket's behalf.
        let (w, waker) = cx.waker(|_, _, _| {})?;
        let mail = Mail::new(capacity, Wake::Ev(waker));
        let mb = mail.mailbox();
        self.shared.core.set_mail(mail);
        self.shared.mail_watcher.set(Some(w));
        Ok(mb)
    }

    /// Stops the watcher now and drops its handler. Safe from any callback, the handler's
    /// own included (it is dropped when that callback returns).
    pub fn close<S>(self, cx: &mut Ctx<S>) {
        remove_quartet(&self.shared, cx);
    }
}

impl Drop for ZmqWatcher {
    fn drop(&mut self) {
        self.shared.core.close();
    }
}

fn remove_quartet<S>(sh: &Shared, cx: &mut Ctx<S>) {
    if let Some(ids) = sh.ids.take() {
        cx.remove(ids.prepare);
        cx.remove(ids.check);
        cx.remove(ids.idle);
        cx.remove(ids.io);
    }
    // Mailbox senders see `Closed` from now on.
    sh.core.drop_mail();
    if let Some(w) = sh.mail_watcher.take() {
        cx.remove(w);
    }
}

/// Prepare: work pending → idle (the poll will not block); nothing → io on `ZMQ_FD`.
fn prepare<S>(sh: &Shared, cx: &mut Ctx<S>) {
    let Some(ids) = sh.ids.get() else { return };
    if sh.core.is_closing() {
        remove_quartet(sh, cx);
        return;
    }
    // Untouched: no callback and no caller code ran since this socket's check ended.
    let untouched = sh.checked_at.get() == Some(cx.epoch());
    match sh.core.plan(untouched) {
        Plan::Busy => {
            cx.start(ids.idle);
        }
        Plan::Sleep => {
            cx.start(ids.io);
        }
    }
}

/// The handler, its message buffer and the loop, as the core delivers to them.
struct Native<'a, S, H> {
    handler: &'a mut H,
    parts: &'a mut Vec<zmq::Message>,
    st: &'a mut S,
    cx: &'a mut Ctx<S>,
}

impl<S, H: ZmqHandler<Ctx<S>>> Deliver for Native<'_, S, H> {
    fn parts(&mut self) -> &mut Vec<zmq::Message> {
        self.parts
    }

    fn readable(&mut self, core: &Core, len: usize) {
        let msg = self.parts.get_mut(..len).unwrap_or_default();
        self.handler
            .readable(msg, &mut core.sock(), (&mut *self.st, &mut *self.cx));
    }

    fn writable(&mut self, core: &Core) {
        self.handler
            .writable(&mut core.sock(), (&mut *self.st, &mut *self.cx));
    }

    fn error(&mut self, _core: &Core, err: Error) {
        self.handler.error(err, (&mut *self.st, &mut *self.cx));
    }
}

/// Check: stop io and idle, then give the handler a bounded amount of work.
fn check<S, H: ZmqHandler<Ctx<S>>>(sh: &Shared, turn: &mut Native<'_, S, H>) {
    let Some(ids) = sh.ids.get() else { return };
    if sh.core.is_closing() {
        remove_quartet(sh, turn.cx);
        return;
    }
    let fd_fired = turn.cx.pending(ids.io).is_some();
    turn.cx.stop(ids.idle);
    turn.cx.stop(ids.io);
    let result = match sh.core.begin(fd_fired) {
        Step::Skip => return,
        Step::Work(seen) => sh.core.turn(seen, turn),
        Step::Fail(err) => Err(err),
    };
    if let Err(err) = result {
        remove_quartet(sh, turn.cx);
        turn.handler.finished(err, (&mut *turn.st, &mut *turn.cx));
    } else if sh.core.is_closing() {
        remove_quartet(sh, turn.cx);
    } else {
        // The loop moves its epoch once when this callback returns.
        sh.checked_at.set(Some(turn.cx.epoch() + 1));
    }
}

//! The prepare/check/idle/io quartet around `ZMQ_FD`.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Instant;

use crate::ev::{Ctx, Interest, WatcherId};

use super::budget::TIME_CHECK_EVERY;
use super::handler::Flags;
use super::mailbox::{Mail, Mailbox, Sent};
use super::{Budget, Error, Handler, InsertError, Sock};

#[derive(Debug, Clone, Copy)]
struct Ids {
    prepare: WatcherId,
    check: WatcherId,
    idle: WatcherId,
    io: WatcherId,
}

/// State shared by the prepare and check callbacks and the [`ZmqWatcher`] handle.
struct Shared {
    socket: zmq::Socket,
    flags: Flags,
    /// What this socket type can ever do: `ZMQ_EVENTS` never reports the rest (PUSH and PUB
    /// cannot receive, PULL and SUB cannot send), so the hot path never assumes it either.
    able: zmq::PollEvents,
    /// REQ and REP alternate strictly: after a turn's last message the other direction is
    /// due, so a full budget says nothing about what comes next and they are never hot.
    lockstep: bool,
    budget: Cell<Budget>,
    /// The directions whose last check stopped on the budget, not on `EAGAIN`: work is
    /// almost surely still queued there, so prepare goes idle without reading `ZMQ_EVENTS`
    /// when these cover everything wanted. Hot only ever leads to a non-blocking turn,
    /// never to sleeping, so it cannot lose a wake-up.
    hot: Cell<zmq::PollEvents>,
    /// `ZMQ_EVENTS` as prepare read it (or assumed it, when hot), for check.
    seen: Cell<zmq::PollEvents>,
    /// An error prepare met, delivered to the handler by check.
    fault: Cell<Option<Error>>,
    /// The quartet, until it is removed.
    ids: Cell<Option<Ids>>,
    /// Messages other threads queued through a [`Mailbox`], once one was asked for.
    mail: RefCell<Option<Mail>>,
}

impl Shared {
    /// The directions the handler wants that this socket type can ever be ready for.
    fn wanted(&self) -> zmq::PollEvents {
        let mut e = events_of(self.flags.want.get());
        if self.mail.borrow().as_ref().is_some_and(Mail::pending) {
            e |= zmq::POLLOUT;
        }
        e & self.able
    }
}

fn events_of(i: Interest) -> zmq::PollEvents {
    let mut e = zmq::PollEvents::empty();
    if i.is_readable() {
        e |= zmq::POLLIN;
    }
    if i.is_writable() {
        e |= zmq::POLLOUT;
    }
    e
}

/// What a socket type can do, and whether it alternates strictly.
fn abilities(kind: Option<zmq::SocketType>) -> (zmq::PollEvents, bool) {
    match kind {
        Some(zmq::PUSH | zmq::PUB) => (zmq::POLLOUT, false),
        Some(zmq::PULL | zmq::SUB) => (zmq::POLLIN, false),
        Some(zmq::REQ | zmq::REP) => (zmq::POLLIN | zmq::POLLOUT, true),
        _ => (zmq::POLLIN | zmq::POLLOUT, false),
    }
}

/// A ZeroMQ socket on a [`Loop`](crate::ev::Loop), driven fairly by the quartet, with a
/// [`Handler`] receiving its messages.
///
/// This is the handle: it owns nothing the loop needs, and dropping it closes the watcher
/// (at the start of the next turn: the handler is dropped, and the socket closes once the
/// handle is gone too). It is `!Send` and `!Sync`, like the socket it wraps:
///
/// Dropping it at once is a mistake the compiler reports (`#[must_use]`):
///
/// ```compile_fail
/// # #![deny(unused_must_use)]
/// # use evnet::zmq::{Handler, ZmqWatcher};
/// struct Quiet;
/// impl Handler<()> for Quiet {}
/// let ctx = zmq::Context::new();
/// let mut ev = evnet::ev::Loop::<()>::new().unwrap();
/// ZmqWatcher::new(&mut ev, ctx.socket(zmq::PULL).unwrap(), Quiet).unwrap(); // closed at once
/// ```
///
/// ```compile_fail
/// fn needs_send<T: Send>() {}
/// needs_send::<evnet::zmq::ZmqWatcher>();
/// ```
///
/// ```compile_fail
/// fn needs_sync<T: Sync>() {}
/// needs_sync::<evnet::zmq::ZmqWatcher>();
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
            .field("interest", &self.shared.flags.want.get())
            .field("budget", &self.shared.budget.get())
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
    /// Reading `ZMQ_FD` failed; the socket and handler are given back.
    pub fn new<S: 'static, H: Handler<S>>(
        cx: &mut Ctx<S>,
        socket: zmq::Socket,
        handler: H,
    ) -> Result<ZmqWatcher, InsertError<(zmq::Socket, H)>> {
        ZmqWatcher::with_budget(cx, socket, handler, Budget::DEFAULT)
    }

    /// As [`new`](ZmqWatcher::new), with a budget.
    ///
    /// # Errors
    /// Reading `ZMQ_FD` failed; the socket and handler are given back.
    pub fn with_budget<S: 'static, H: Handler<S>>(
        cx: &mut Ctx<S>,
        socket: zmq::Socket,
        mut handler: H,
        budget: Budget,
    ) -> Result<ZmqWatcher, InsertError<(zmq::Socket, H)>> {
        let fd = match socket.get_fd() {
            Ok(fd) => fd,
            Err(e) => {
                return Err(InsertError {
                    inner: (socket, handler),
                    error: Error::from_zmq(e),
                })
            }
        };
        // The io and idle watchers only exist to decide whether the poll may sleep; their
        // callbacks never run because check stops both first.
        let io = match cx.io(fd, Interest::READABLE, |_, _, _| {}) {
            Ok(io) => io,
            Err(_) => {
                return Err(InsertError {
                    inner: (socket, handler),
                    error: Error::Socket(zmq::Error::EINVAL),
                })
            }
        };
        let (able, lockstep) = abilities(socket.get_socket_type().ok());
        let want = if able.contains(zmq::POLLIN) {
            Interest::READABLE
        } else {
            Interest::NONE
        };
        let shared = Rc::new(Shared {
            socket,
            flags: Flags {
                want: Cell::new(want),
                blocked: Cell::new(false),
                closing: Cell::new(false),
                terminated: Cell::new(false),
            },
            able,
            lockstep,
            budget: Cell::new(budget.sane()),
            hot: Cell::new(zmq::PollEvents::empty()),
            seen: Cell::new(zmq::PollEvents::empty()),
            fault: Cell::new(None),
            ids: Cell::new(None),
            mail: RefCell::new(None),
        });
        cx.stop(io);
        let idle = cx.idle(|_, _, _| {});
        cx.stop(idle);
        let sh = shared.clone();
        let prepare = cx.prepare(move |_, cx, _| prepare(&sh, cx));
        let sh = shared.clone();
        let mut parts: Vec<zmq::Message> = Vec::new();
        let check = cx.check(move |st, cx, _| check(&sh, &mut handler, &mut parts, st, cx));
        shared.ids.set(Some(Ids {
            prepare,
            check,
            idle,
            io,
        }));
        Ok(ZmqWatcher { shared })
    }

    /// The socket, e.g. to send from a timer callback (use `ZMQ_DONTWAIT`) or set options.
    pub fn socket(&self) -> &zmq::Socket {
        &self.shared.socket
    }

    /// Asks for (or drops) `writable()` calls, from outside the handler.
    pub fn set_writable(&self, on: bool) {
        let f = &self.shared.flags.want;
        f.set(f.get().with_writable(on));
    }

    /// Asks for (or drops) `readable()` calls, from outside the handler.
    pub fn set_readable(&self, on: bool) {
        let f = &self.shared.flags.want;
        f.set(f.get().with_readable(on));
    }

    /// What the handler currently asks for.
    pub fn interest(&self) -> Interest {
        self.shared.flags.want.get()
    }

    /// Changes the turn budget; applies from the next turn.
    pub fn set_budget(&self, budget: Budget) {
        self.shared.budget.set(budget.sane());
    }

    /// The turn budget.
    pub fn budget(&self) -> Budget {
        self.shared.budget.get()
    }

    /// A [`Mailbox`] through which other threads send on this socket: a bounded queue of
    /// `capacity` multipart messages (at least 1), drained in the watcher's writable turns.
    /// Every call returns a handle to the same queue (the first call's capacity holds).
    ///
    /// # Errors
    /// Creating the loop's wake eventfd failed (the first wake watcher of a loop only).
    pub fn mailbox<S: 'static>(&self, cx: &mut Ctx<S>, capacity: usize) -> io::Result<Mailbox> {
        if let Some(m) = self.shared.mail.borrow().as_ref() {
            return Ok(Mailbox::from_parts(m.tx.clone(), m.waker.clone()));
        }
        // The wake only ends a sleep: the next prepare sees the queued mail and asks for
        // writable interest on the socket's behalf.
        let (w, waker) = cx.wake(|_, _, _| {})?;
        let mail = Mail::new(capacity, waker, w);
        let mb = Mailbox::from_parts(mail.tx.clone(), mail.waker.clone());
        *self.shared.mail.borrow_mut() = Some(mail);
        Ok(mb)
    }

    /// Whether the watcher has stopped for good (closed, terminated or failed).
    pub fn is_finished(&self) -> bool {
        self.shared.ids.get().is_none()
    }

    /// Stops the watcher now and drops its handler. Safe from any callback, the handler's
    /// own included (it is dropped when that callback returns).
    pub fn close<S>(self, cx: &mut Ctx<S>) {
        remove_quartet(&self.shared, cx);
    }
}

impl Drop for ZmqWatcher {
    fn drop(&mut self) {
        self.shared.flags.closing.set(true);
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
    if let Some(mail) = sh.mail.borrow_mut().take() {
        cx.remove(mail.watcher);
    }
}

/// Prepare: work pending → idle (the poll will not block); nothing → io on `ZMQ_FD`.
fn prepare<S>(sh: &Shared, cx: &mut Ctx<S>) {
    let Some(ids) = sh.ids.get() else { return };
    if sh.flags.closing.get() {
        remove_quartet(sh, cx);
        return;
    }
    let want = sh.wanted();
    if want.is_empty() {
        // Paused (or asking only for what this socket type can never do): no handler call,
        // the socket keeps its queue, but the loop still sleeps on ZMQ_FD so that check
        // learns of a terminated context (libzmq signals it there) and can finish.
        cx.start(ids.io);
        return;
    }
    let hot = sh.hot.get() & want;
    if !sh.lockstep && hot == want {
        sh.seen.set(hot);
        cx.start(ids.idle);
        return;
    }
    match sh.socket.get_events() {
        Ok(ev) if ev.intersects(want) => {
            sh.seen.set(ev);
            cx.start(ids.idle);
        }
        Ok(_) => {
            cx.start(ids.io);
        }
        Err(e) => {
            // Let check deliver it to the handler this very turn.
            sh.fault.set(Some(Error::from_zmq(e)));
            cx.start(ids.idle);
        }
    }
}

/// Receives one whole message into `parts` without blocking; returns its part count.
fn recv_whole(socket: &zmq::Socket, parts: &mut Vec<zmq::Message>) -> Result<usize, zmq::Error> {
    let mut k = 0;
    loop {
        if parts.len() == k {
            parts.push(zmq::Message::new());
        }
        socket.recv(&mut parts[k], zmq::DONTWAIT)?;
        k += 1;
        if !parts[k - 1].get_more() {
            return Ok(k);
        }
    }
}

/// Check: stop io and idle, then give the handler a bounded amount of work.
fn check<S, H: Handler<S>>(
    sh: &Shared,
    handler: &mut H,
    parts: &mut Vec<zmq::Message>,
    st: &mut S,
    cx: &mut Ctx<S>,
) {
    let Some(ids) = sh.ids.get() else { return };
    if sh.flags.closing.get() {
        remove_quartet(sh, cx);
        return;
    }
    let via_idle = cx.is_active(ids.idle);
    let fd_fired = cx.pending(ids.io).is_some();
    cx.stop(ids.idle);
    cx.stop(ids.io);
    sh.hot.set(zmq::PollEvents::empty());
    if let Some(err) = sh.fault.take() {
        return finish(sh, handler, err, st, cx);
    }
    let seen = if via_idle {
        sh.seen.get()
    } else if fd_fired {
        // Also the paused watcher's only look: termination shows here as an error.
        match sh.socket.get_events() {
            Ok(ev) => ev,
            Err(e) => return finish(sh, handler, Error::from_zmq(e), st, cx),
        }
    } else {
        return; // the poll woke for something else; ZMQ_FD stayed quiet
    };

    let budget = sh.budget.get();
    sh.flags.blocked.set(false);
    let mut hot = zmq::PollEvents::empty();
    if sh.wanted().contains(zmq::POLLIN) && seen.contains(zmq::POLLIN) {
        match read_turn(sh, handler, parts, budget, st, cx) {
            Turn::Drained => {}
            Turn::Hot => hot |= zmq::POLLIN,
            Turn::Finished(err) => return finish(sh, handler, err, st, cx),
        }
    }
    if !sh.flags.closing.get() && sh.wanted().contains(zmq::POLLOUT) && seen.contains(zmq::POLLOUT)
    {
        match write_turn(sh, handler, budget, st, cx) {
            Turn::Drained => {}
            Turn::Hot => hot |= zmq::POLLOUT,
            Turn::Finished(err) => return finish(sh, handler, err, st, cx),
        }
    }
    sh.hot.set(hot);
    if sh.flags.closing.get() {
        remove_quartet(sh, cx);
    }
}

/// How one direction's share of a turn ended.
enum Turn {
    /// `EAGAIN`, the handler stopped asking, or it closed the watcher.
    Drained,
    /// The budget ran out with work almost surely left.
    Hot,
    /// The socket is done for good: finish the watcher.
    Finished(Error),
}

/// Up to the budget of whole messages through `readable()`.
fn read_turn<S, H: Handler<S>>(
    sh: &Shared,
    handler: &mut H,
    parts: &mut Vec<zmq::Message>,
    budget: Budget,
    st: &mut S,
    cx: &mut Ctx<S>,
) -> Turn {
    let t0 = budget.time.map(|_| Instant::now());
    let mut n = 0u32;
    loop {
        match recv_whole(&sh.socket, parts) {
            Ok(k) => {
                let mut sock = Sock {
                    socket: &sh.socket,
                    flags: &sh.flags,
                };
                handler.readable(&mut parts[..k], &mut sock, st, cx);
                n += 1;
                if sh.flags.terminated.get() {
                    return Turn::Finished(Error::Terminated);
                }
                if sh.flags.closing.get() || !sh.flags.want.get().is_readable() {
                    return Turn::Drained;
                }
                if n >= budget.messages {
                    return Turn::Hot;
                }
                if let (Some(limit), Some(t0)) = (budget.time, t0) {
                    if n.is_multiple_of(TIME_CHECK_EVERY) && t0.elapsed() >= limit {
                        return Turn::Hot;
                    }
                }
            }
            Err(zmq::Error::EAGAIN) => return Turn::Drained,
            Err(zmq::Error::EINTR) => return Turn::Hot,
            // REQ/REP after the message that must be answered first: nothing to receive
            // now (`ZMQ_EVENTS` would not show POLLIN); not an error.
            Err(zmq::Error::EFSM) if sh.lockstep => return Turn::Drained,
            Err(e) => match Error::from_zmq(e) {
                Error::Terminated => return Turn::Finished(Error::Terminated),
                err => {
                    handler.error(err, st, cx);
                    return Turn::Drained;
                }
            },
        }
    }
}

/// Mailbox messages first, then `writable()` calls while the handler asks for them, up to
/// the budget.
fn write_turn<S, H: Handler<S>>(
    sh: &Shared,
    handler: &mut H,
    budget: Budget,
    st: &mut S,
    cx: &mut Ctx<S>,
) -> Turn {
    let mut n = 0u32;
    while n < budget.messages && !sh.flags.blocked.get() && !sh.flags.closing.get() {
        let mut sock = Sock {
            socket: &sh.socket,
            flags: &sh.flags,
        };
        let mailed = match sh.mail.borrow_mut().as_mut() {
            Some(mail) => mail.flush_one(&mut sock),
            None => Ok(Sent::Empty),
        };
        match mailed {
            Ok(Sent::One) => {}
            Ok(Sent::Blocked) => break,
            Ok(Sent::Empty) if sh.flags.want.get().is_writable() => {
                handler.writable(&mut sock, st, cx);
            }
            Ok(Sent::Empty) => break,
            Err(e) if sh.flags.terminated.get() => return Turn::Finished(e),
            Err(e) => handler.error(e, st, cx),
        }
        n += 1;
        if sh.flags.terminated.get() {
            return Turn::Finished(Error::Terminated);
        }
    }
    let more =
        sh.flags.want.get().is_writable() || sh.mail.borrow().as_ref().is_some_and(Mail::pending);
    if n >= budget.messages && more && !sh.flags.blocked.get() {
        Turn::Hot
    } else {
        Turn::Drained
    }
}

fn finish<S, H: Handler<S>>(sh: &Shared, handler: &mut H, err: Error, st: &mut S, cx: &mut Ctx<S>) {
    remove_quartet(sh, cx);
    handler.finished(err, st, cx);
}

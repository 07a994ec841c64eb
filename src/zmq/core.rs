//! The quartet's decisions, loop-agnostic: one state machine that every front end drives.
//!
//! A host loop (evnet's own, mio, calloop, tokio) gives the core three inputs and acts on
//! its answers:
//!
//! - **a turn begins** (before the host polls): [`Core::plan`] answers [`Plan::Busy`]
//!   (work is pending: the poll must not sleep) or [`Plan::Sleep`] (it may sleep on
//!   `ZMQ_FD`, which then wakes it for anything new);
//! - **the poll returned**, with or without `ZMQ_FD` among its events: [`Core::begin`]
//!   answers what this turn may do: nothing, a turn on the `ZMQ_EVENTS` it saw, or the
//!   error that ends the socket;
//! - **deliver now**: [`Core::turn`] receives up to the budget of whole messages for the
//!   handler and makes `writable()` calls (mailbox first) up to the budget, through a
//!   [`Deliver`], and remembers which directions stopped on the budget (*hot*).
//!
//! The never-miss-a-wake-up argument lives here once: the host may sleep on `ZMQ_FD` only
//! after [`Core::plan`] read `ZMQ_EVENTS` and found nothing wanted, and that read re-arms
//! the edge; hot directions only ever make a turn non-blocking.

use std::cell::{Cell, RefCell};

use crate::ev::Interest;

use super::budget::Slice;
use super::handler::Flags;
use super::mailbox::{Mail, Sent};
use super::{Budget, Error, Sock};

/// What the host loop may do in its next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Work is pending (or assumed pending, on a hot direction): poll without sleeping.
    Busy,
    /// Nothing wanted is pending: sleeping on `ZMQ_FD` is safe, it fires for anything new.
    Sleep,
}

/// What [`Core::begin`] found for this turn.
#[derive(Debug)]
pub(crate) enum Step {
    /// Nothing to do: the poll woke for something else and `ZMQ_FD` stayed quiet.
    Skip,
    /// Serve the handler on these `ZMQ_EVENTS`.
    Work(zmq::PollEvents),
    /// The socket is done for good.
    Fail(Error),
}

/// How the front end hands the core's work to its handler.
pub(crate) trait Deliver {
    /// The buffer whole messages are received into; reused from message to message.
    fn parts(&mut self) -> &mut Vec<zmq::Message>;
    /// One whole message is in `parts()[..len]`.
    fn readable(&mut self, core: &Core, len: usize);
    /// The socket can take a message and the handler asked for writable interest.
    fn writable(&mut self, core: &Core);
    /// A receive or send failed without ending the socket.
    fn error(&mut self, core: &Core, err: Error);
}

/// One socket's share of the quartet: the socket, the handler's interest and the hot/seen
/// bookkeeping between the two halves of a turn.
pub(crate) struct Core {
    pub(crate) socket: zmq::Socket,
    pub(crate) flags: Flags,
    /// What this socket type can ever do: `ZMQ_EVENTS` never reports the rest (PUSH and PUB
    /// cannot receive, PULL and SUB cannot send), so the hot path never assumes it either.
    able: zmq::PollEvents,
    /// REQ and REP alternate strictly: after a turn's last message the other direction is
    /// due, so a full budget says nothing about what comes next and they are never hot.
    lockstep: bool,
    budget: Cell<Budget>,
    /// The directions whose last turn stopped on the budget, not on `EAGAIN`: work is
    /// almost surely still queued there, so [`plan`](Core::plan) answers busy without
    /// reading `ZMQ_EVENTS` when these cover everything wanted.
    hot: Cell<zmq::PollEvents>,
    /// `ZMQ_EVENTS` as `plan` read it (or assumed it, when hot), for `begin`.
    seen: Cell<zmq::PollEvents>,
    /// `plan` answered busy and `begin` has not consumed it yet.
    busy: Cell<bool>,
    /// An error `plan` met, delivered by `begin`.
    fault: Cell<Option<Error>>,
    /// The last turn's last libzmq call on this socket was a `recv` that met `EAGAIN`.
    /// libzmq processed every pending command to answer it and left its signaler
    /// drained, so `ZMQ_FD` will become readable for anything new: if nothing touched
    /// the socket since, [`plan`](Core::plan) may sleep without reading `ZMQ_EVENTS`.
    drained: Cell<bool>,
    /// Messages other threads queued through a mailbox, once one was asked for.
    pub(crate) mail: RefCell<Option<Mail>>,
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

/// How one direction's share of a turn ended.
enum Turn {
    /// A `recv` met `EAGAIN`: the socket is empty, and libzmq has just processed its
    /// pending commands.
    Empty,
    /// `EAGAIN` on a send, the handler stopped asking, or it closed the socket.
    Drained,
    /// The budget ran out with work almost surely left.
    Hot,
    /// The socket is done for good.
    Finished(Error),
}

impl Core {
    /// A core for `socket`, reading unless the socket type cannot receive (PUSH and PUB
    /// start with no interest).
    pub(crate) fn new(socket: zmq::Socket, budget: Budget) -> Core {
        let (able, lockstep) = abilities(socket.get_socket_type().ok());
        let want = if able.contains(zmq::POLLIN) {
            Interest::READABLE
        } else {
            Interest::NONE
        };
        Core {
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
            busy: Cell::new(false),
            fault: Cell::new(None),
            drained: Cell::new(false),
            mail: RefCell::new(None),
        }
    }

    pub(crate) fn budget(&self) -> Budget {
        self.budget.get()
    }

    pub(crate) fn set_budget(&self, budget: Budget) {
        self.budget.set(budget.sane());
    }

    pub(crate) fn sock(&self) -> Sock<'_> {
        Sock {
            socket: &self.socket,
            flags: &self.flags,
        }
    }

    /// The directions the handler wants that this socket type can ever be ready for.
    pub(crate) fn wanted(&self) -> zmq::PollEvents {
        let mut e = events_of(self.flags.want.get());
        if self.mail.borrow().as_ref().is_some_and(Mail::pending) {
            e |= zmq::POLLOUT;
        }
        e & self.able
    }

    /// A turn begins: may the host's poll sleep on `ZMQ_FD`?
    ///
    /// `untouched` is the host's word that no code has run on this thread since the last
    /// [`turn`](Core::turn) returned (evnet's loop knows it from its epoch; the other
    /// front ends pass `false`). Then a receive-only socket whose last turn ended on
    /// `EAGAIN` sleeps without reading `ZMQ_EVENTS`: that `recv` already did what the read
    /// would, and nobody has called libzmq on the socket since.
    ///
    /// A socket with no interest (paused, or send-only with nothing to send) still sleeps
    /// on `ZMQ_FD`, so that [`begin`](Core::begin) learns of a terminated context there.
    pub(crate) fn plan(&self, untouched: bool) -> Plan {
        let want = self.wanted();
        let drained = self.drained.replace(false);
        let busy = if want.is_empty() || (untouched && drained && want == zmq::POLLIN) {
            false
        } else {
            let hot = self.hot.get() & want;
            if !self.lockstep && hot == want {
                self.seen.set(hot);
                true
            } else {
                match self.socket.get_events() {
                    Ok(ev) if ev.intersects(want) => {
                        self.seen.set(ev);
                        true
                    }
                    Ok(_) => false,
                    Err(e) => {
                        // `begin` delivers it this very turn.
                        self.fault.set(Some(Error::from_zmq(e)));
                        true
                    }
                }
            }
        };
        self.busy.set(busy);
        if busy {
            Plan::Busy
        } else {
            Plan::Sleep
        }
    }

    /// The poll returned; `fd_fired` says whether `ZMQ_FD` was among its events.
    pub(crate) fn begin(&self, fd_fired: bool) -> Step {
        let busy = self.busy.replace(false);
        self.drained.set(false);
        self.hot.set(zmq::PollEvents::empty());
        if let Some(err) = self.fault.take() {
            return Step::Fail(err);
        }
        if busy {
            Step::Work(self.seen.get())
        } else if fd_fired {
            // Also a paused socket's only look: termination shows here as an error.
            match self.socket.get_events() {
                Ok(ev) => Step::Work(ev),
                Err(e) => Step::Fail(Error::from_zmq(e)),
            }
        } else {
            Step::Skip
        }
    }

    /// Deliver now: a bounded amount of work on the events `begin` saw. `Err` ends the
    /// socket (the front end finishes it); a close the handler asked for shows in
    /// `flags.closing`.
    pub(crate) fn turn<D: Deliver>(&self, seen: zmq::PollEvents, d: &mut D) -> Result<(), Error> {
        let budget = self.budget.get();
        self.flags.blocked.set(false);
        let mut hot = zmq::PollEvents::empty();
        let mut eagain = false;
        if self.wanted().contains(zmq::POLLIN) && seen.contains(zmq::POLLIN) {
            match self.read_turn(budget, d) {
                Turn::Drained => {}
                Turn::Empty => eagain = true,
                Turn::Hot => hot |= zmq::POLLIN,
                Turn::Finished(err) => return Err(err),
            }
        }
        if !self.flags.closing.get()
            && self.wanted().contains(zmq::POLLOUT)
            && seen.contains(zmq::POLLOUT)
        {
            // A send comes after the `recv` that met `EAGAIN`: that look is stale.
            eagain = false;
            match self.write_turn(budget, d) {
                Turn::Drained | Turn::Empty => {}
                Turn::Hot => hot |= zmq::POLLOUT,
                Turn::Finished(err) => return Err(err),
            }
        }
        self.hot.set(hot);
        self.drained.set(eagain);
        Ok(())
    }

    /// Receives one whole message into `parts` without blocking; returns its part count.
    fn recv_whole(&self, parts: &mut Vec<zmq::Message>) -> Result<usize, zmq::Error> {
        let mut k = 0;
        loop {
            if parts.len() == k {
                parts.push(zmq::Message::new());
            }
            let Some(part) = parts.get_mut(k) else {
                return Err(zmq::Error::EINVAL);
            };
            self.socket.recv(part, zmq::DONTWAIT)?;
            k += 1;
            if !part.get_more() {
                return Ok(k);
            }
        }
    }

    /// Up to the budget of whole messages through `readable()`.
    fn read_turn<D: Deliver>(&self, budget: Budget, d: &mut D) -> Turn {
        let mut slice = Slice::start(budget);
        loop {
            match self.recv_whole(d.parts()) {
                Ok(k) => {
                    d.readable(self, k);
                    if self.flags.terminated.get() {
                        return Turn::Finished(Error::Terminated);
                    }
                    if self.flags.closing.get() || !self.flags.want.get().is_readable() {
                        return Turn::Drained;
                    }
                    if slice.spend() {
                        return Turn::Hot;
                    }
                }
                Err(zmq::Error::EAGAIN) => return Turn::Empty,
                Err(zmq::Error::EINTR) => return Turn::Hot,
                // REQ/REP after the message that must be answered first: nothing to receive
                // now (`ZMQ_EVENTS` would not show POLLIN); not an error.
                Err(zmq::Error::EFSM) if self.lockstep => return Turn::Drained,
                Err(e) => match Error::from_zmq(e) {
                    Error::Terminated => return Turn::Finished(Error::Terminated),
                    err => {
                        d.error(self, err);
                        return Turn::Drained;
                    }
                },
            }
        }
    }

    /// Mailbox messages first, then `writable()` calls while the handler asks for them, up
    /// to the budget.
    fn write_turn<D: Deliver>(&self, budget: Budget, d: &mut D) -> Turn {
        let mut slice = Slice::start(budget);
        let mut over = false;
        while !over && !self.flags.blocked.get() && !self.flags.closing.get() {
            let mailed = match self.mail.borrow_mut().as_mut() {
                Some(mail) => mail.flush_one(&mut self.sock()),
                None => Ok(Sent::Empty),
            };
            match mailed {
                Ok(Sent::One) => {}
                Ok(Sent::Blocked) => break,
                Ok(Sent::Empty) if self.flags.want.get().is_writable() => d.writable(self),
                Ok(Sent::Empty) => break,
                Err(e) if self.flags.terminated.get() => return Turn::Finished(e),
                Err(e) => d.error(self, e),
            }
            over = slice.spend();
            if self.flags.terminated.get() {
                return Turn::Finished(Error::Terminated);
            }
        }
        let more = self.flags.want.get().is_writable()
            || self.mail.borrow().as_ref().is_some_and(Mail::pending);
        if over && more && !self.flags.blocked.get() {
            Turn::Hot
        } else {
            Turn::Drained
        }
    }
}

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
//!
//! The core talks to libzmq only through [`Wire`] (read `ZMQ_EVENTS`, receive one part),
//! so its decisions are unit-tested against a scripted socket (`core_tests.rs`): `EAGAIN`
//! inside a multipart message, `ETERM` on either side, `EFSM` on REQ/REP, `ZMQ_EVENTS`
//! consumed by a send, the budget by count and by time.

use std::cell::{Cell, RefCell};

use crate::ev::IoInterest;

use super::budget::Slice;
use super::handler::Flags;
use super::mailbox::{Mail, Mailbox, Sent};
use super::{Budget, Error, Sock};

/// What the core needs from a ZeroMQ socket. Sends are the handler's (through
/// [`Sock`](super::Sock), or a test's own calls); the core only reports their outcome.
pub(crate) trait Wire {
    /// The socket type, which decides what `ZMQ_EVENTS` can ever report.
    fn kind(&self) -> Option<zmq::SocketType>;
    /// Reads `ZMQ_EVENTS` (which also processes libzmq's pending commands and re-arms the
    /// `ZMQ_FD` edge).
    fn events(&self) -> Result<zmq::PollEvents, zmq::Error>;
    /// Receives one part without blocking; whether more parts of its message follow.
    fn recv_part(&self, part: &mut zmq::Message) -> Result<bool, zmq::Error>;
    /// Sends the next queued mailbox message (only called when a mailbox exists).
    fn flush_mail(&self, mail: &mut Mail, flags: &Flags) -> Result<Sent, Error>;
}

impl Wire for zmq::Socket {
    fn kind(&self) -> Option<zmq::SocketType> {
        self.get_socket_type().ok()
    }

    fn events(&self) -> Result<zmq::PollEvents, zmq::Error> {
        self.get_events()
    }

    fn recv_part(&self, part: &mut zmq::Message) -> Result<bool, zmq::Error> {
        self.recv(part, zmq::DONTWAIT)?;
        Ok(part.get_more())
    }

    fn flush_mail(&self, mail: &mut Mail, flags: &Flags) -> Result<Sent, Error> {
        mail.flush_one(&mut Sock {
            socket: self,
            flags,
        })
    }
}

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
pub(crate) trait Deliver<W: Wire = zmq::Socket> {
    /// The buffer whole messages are received into; reused from message to message.
    fn parts(&mut self) -> &mut Vec<zmq::Message>;
    /// One whole message is in `parts()[..len]`.
    fn readable(&mut self, core: &Core<W>, len: usize);
    /// The socket can take a message and the handler asked for writable interest.
    fn writable(&mut self, core: &Core<W>);
    /// A receive or send failed without ending the socket.
    fn error(&mut self, core: &Core<W>, err: Error);
}

/// What [`Core::plan`] decided, for [`Core::begin`] to act on.
#[derive(Debug, Clone, Copy)]
enum Planned {
    /// Nothing decided yet, or `begin` consumed it.
    Nothing,
    /// Busy on these `ZMQ_EVENTS` (read, or assumed from hot directions).
    Busy(zmq::PollEvents),
    /// Reading `ZMQ_EVENTS` failed: the socket ends this very turn.
    Fault(Error),
}

/// How a pull-style consumer's request for the next message ended ([`Core::pull`]).
#[derive(Debug)]
#[cfg_attr(not(feature = "tokio"), allow(dead_code))] // only the tokio stream pulls
pub(crate) enum Pulled {
    /// A whole message of this many parts is in the buffer.
    Message(usize),
    /// The slice of consecutive messages is spent: yield to the host first.
    Yield,
    /// Nothing to receive now: wait for `ZMQ_FD`.
    Empty,
    /// The socket failed.
    Failed(Error),
}

/// One socket's share of the quartet: the socket, the handler's interest and the hot/seen
/// bookkeeping between the two halves of a turn.
pub(crate) struct Core<W: Wire = zmq::Socket> {
    socket: W,
    flags: Flags,
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
    /// What `plan` decided, for `begin`.
    planned: Cell<Planned>,
    /// Parts of a message received before a receive met `EAGAIN` or `EINTR` in its middle
    /// (libzmq delivers whole messages, but a torn one must never reach the handler):
    /// the next receive continues after them.
    partial: Cell<usize>,
    /// A pull-style consumer's slice of the budget, spanning the messages it takes in a
    /// row ([`pull`](Core::pull)).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    streak: Cell<Option<Slice>>,
    /// The last turn's last libzmq call on this socket was a `recv` that met `EAGAIN`.
    /// libzmq processed every pending command to answer it and left its signaler
    /// drained, so `ZMQ_FD` will become readable for anything new: if nothing touched
    /// the socket since, [`plan`](Core::plan) may sleep without reading `ZMQ_EVENTS`.
    drained: Cell<bool>,
    /// libzmq was called on the socket from outside a turn (the application through the
    /// `socket()` accessor, a pull-style consumer, a look at `ZMQ_EVENTS`) since the last
    /// turn ended: such a call may have consumed `ZMQ_FD`'s edge, so `drained` no longer
    /// proves that sleeping is safe.
    touched: Cell<bool>,
    /// Messages other threads queued through a mailbox, once one was asked for.
    mail: RefCell<Option<Mail>>,
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

fn events_of(i: IoInterest) -> zmq::PollEvents {
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

impl Core<zmq::Socket> {
    /// The socket as a handler sees it.
    pub(crate) fn sock(&self) -> Sock<'_> {
        Sock {
            socket: &self.socket,
            flags: &self.flags,
        }
    }
}

impl<W: Wire> Core<W> {
    /// A core for `socket`, reading unless the socket type cannot receive (PUSH and PUB
    /// start with no interest).
    pub(crate) fn new(socket: W, budget: Budget) -> Core<W> {
        let (able, lockstep) = abilities(socket.kind());
        let want = if able.contains(zmq::POLLIN) {
            IoInterest::READABLE
        } else {
            IoInterest::NONE
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
            planned: Cell::new(Planned::Nothing),
            partial: Cell::new(0),
            streak: Cell::new(None),
            drained: Cell::new(false),
            touched: Cell::new(false),
            mail: RefCell::new(None),
        }
    }

    pub(crate) fn budget(&self) -> Budget {
        self.budget.get()
    }

    pub(crate) fn set_budget(&self, budget: Budget) {
        self.budget.set(budget.sane());
    }

    /// The socket, for the core's tests (no touch: they script it).
    #[cfg(test)]
    pub(crate) fn socket(&self) -> &W {
        &self.socket
    }

    /// The socket, for the application (the `socket()` accessor): what it does with it
    /// counts as a touch.
    pub(crate) fn user_socket(&self) -> &W {
        self.touched.set(true);
        &self.socket
    }

    /// The send-side flags a [`Sock`] shares with the core.
    #[cfg(test)]
    pub(crate) fn flags(&self) -> &Flags {
        &self.flags
    }

    /// What the handler asks for.
    pub(crate) fn interest(&self) -> IoInterest {
        self.flags.want.get()
    }

    /// Asks for (or drops) `readable()` calls.
    pub(crate) fn set_readable(&self, on: bool) {
        self.flags.want.set(self.flags.want.get().with_readable(on));
    }

    /// Asks for (or drops) `writable()` calls.
    pub(crate) fn set_writable(&self, on: bool) {
        self.flags.want.set(self.flags.want.get().with_writable(on));
    }

    /// Asks the front end to stop the socket after this turn.
    pub(crate) fn close(&self) {
        self.flags.closing.set(true);
    }

    /// Whether a close was asked for.
    pub(crate) fn is_closing(&self) -> bool {
        self.flags.closing.get()
    }

    /// The mailbox, if one was made: another handle to the same queue.
    pub(crate) fn mailbox(&self) -> Option<Mailbox> {
        self.mail.borrow().as_ref().map(Mail::mailbox)
    }

    /// Makes `mail` this socket's mailbox queue.
    pub(crate) fn set_mail(&self, mail: Mail) {
        *self.mail.borrow_mut() = Some(mail);
    }

    /// Drops the mailbox queue: its senders see `Closed` from now on.
    pub(crate) fn drop_mail(&self) {
        self.mail.borrow_mut().take();
    }

    /// Reads `ZMQ_EVENTS`.
    pub(crate) fn events(&self) -> Result<zmq::PollEvents, Error> {
        self.touched.set(true);
        self.socket.events().map_err(Error::from_zmq)
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
    /// `untouched` is the host's word that no code could have called libzmq on the socket
    /// since the last [`turn`](Core::turn) returned (evnet's loop knows it from its epoch;
    /// tokio's from running the turn and the plan in one poll; mio and calloop pass
    /// `true`). The core adds what it saw itself: every way to the socket outside a turn
    /// (the `socket()` accessor, a pull, a look at `ZMQ_EVENTS`) marks it touched. With
    /// neither, a receive-only socket whose last turn ended on `EAGAIN` sleeps without
    /// reading `ZMQ_EVENTS`: that `recv` already did what the read would.
    ///
    /// A socket with no interest (paused, or send-only with nothing to send) still sleeps
    /// on `ZMQ_FD`, so that [`begin`](Core::begin) learns of a terminated context there.
    pub(crate) fn plan(&self, untouched: bool) -> Plan {
        let want = self.wanted();
        let drained = self.drained.replace(false);
        let untouched = untouched && !self.touched.get();
        let planned = if want.is_empty() || (untouched && drained && want == zmq::POLLIN) {
            Planned::Nothing
        } else {
            let hot = self.hot.get() & want;
            if !self.lockstep && hot == want {
                Planned::Busy(hot)
            } else {
                match self.socket.events() {
                    Ok(ev) if ev.intersects(want) => Planned::Busy(ev),
                    Ok(_) => Planned::Nothing,
                    // `begin` delivers it this very turn.
                    Err(e) => Planned::Fault(Error::from_zmq(e)),
                }
            }
        };
        self.planned.set(planned);
        match planned {
            Planned::Nothing => Plan::Sleep,
            Planned::Busy(_) | Planned::Fault(_) => Plan::Busy,
        }
    }

    /// The poll returned; `fd_fired` says whether `ZMQ_FD` was among its events.
    pub(crate) fn begin(&self, fd_fired: bool) -> Step {
        let planned = self.planned.replace(Planned::Nothing);
        self.drained.set(false);
        self.hot.set(zmq::PollEvents::empty());
        match planned {
            Planned::Fault(err) => Step::Fail(err),
            Planned::Busy(seen) => Step::Work(seen),
            // A receive-only socket woken by ZMQ_FD: the turn's first `recv` tells what a
            // look at ZMQ_EVENTS would (a message, EAGAIN, or ETERM), for one libzmq call
            // fewer per wake-up.
            Planned::Nothing if fd_fired && self.wanted() == zmq::POLLIN => Step::Work(zmq::POLLIN),
            // Also a paused socket's only look: termination shows here as an error.
            Planned::Nothing if fd_fired => match self.events() {
                Ok(ev) => Step::Work(ev),
                Err(err) => Step::Fail(err),
            },
            Planned::Nothing => Step::Skip,
        }
    }

    /// Deliver now: a bounded amount of work on the events `begin` saw. `Err` ends the
    /// socket (the front end finishes it); a close the handler asked for shows in
    /// `flags.closing`.
    pub(crate) fn turn<D: Deliver<W>>(
        &self,
        seen: zmq::PollEvents,
        d: &mut D,
    ) -> Result<(), Error> {
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
        self.touched.set(false);
        Ok(())
    }

    /// Receives one whole message into `parts` without blocking; returns its part count.
    /// A receive that fails inside a message keeps the parts so far (in `parts`, which the
    /// caller passes again) and the next call continues the message.
    fn recv_whole(&self, parts: &mut Vec<zmq::Message>) -> Result<usize, zmq::Error> {
        let mut k = self.partial.replace(0).min(parts.len());
        loop {
            if parts.len() == k {
                parts.push(zmq::Message::new());
            }
            let Some(part) = parts.get_mut(k) else {
                return Err(zmq::Error::EINVAL);
            };
            match self.socket.recv_part(part) {
                Ok(true) => k += 1,
                Ok(false) => return Ok(k + 1),
                Err(e) => {
                    self.partial.set(k);
                    return Err(e);
                }
            }
        }
    }

    /// For a pull-style consumer (an async `Stream`): the next whole message into `parts`,
    /// counted against one slice of the budget that spans the messages taken in a row, as
    /// a turn's are; [`Pulled::Yield`] once that slice is spent (the consumer's handling
    /// of each message, between calls, counts), then a fresh slice.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn pull(&self, parts: &mut Vec<zmq::Message>) -> Pulled {
        self.touched.set(true);
        if let Some(mut slice) = self.streak.take() {
            // The message returned last was handled in between: it spends the slice.
            if slice.spend() {
                return Pulled::Yield;
            }
            self.streak.set(Some(slice));
        }
        loop {
            match self.recv_whole(parts) {
                Ok(k) => {
                    if self.streak.get().is_none() {
                        self.streak.set(Some(Slice::start(self.budget.get())));
                    }
                    return Pulled::Message(k);
                }
                Err(zmq::Error::EAGAIN) => {
                    self.streak.set(None);
                    return Pulled::Empty;
                }
                Err(zmq::Error::EINTR) => continue,
                Err(e) => return Pulled::Failed(Error::from_zmq(e)),
            }
        }
    }

    /// Up to the budget of whole messages through `readable()`.
    fn read_turn<D: Deliver<W>>(&self, budget: Budget, d: &mut D) -> Turn {
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
    fn write_turn<D: Deliver<W>>(&self, budget: Budget, d: &mut D) -> Turn {
        let mut slice = Slice::start(budget);
        let mut over = false;
        while !over && !self.flags.blocked.get() && !self.flags.closing.get() {
            let mailed = match self.mail.borrow_mut().as_mut() {
                Some(mail) => self.socket.flush_mail(mail, &self.flags),
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

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

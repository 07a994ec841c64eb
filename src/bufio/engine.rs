//! The stream engine: socket readiness, reads and writes within the per-turn caps, the
//! dispatch loop that runs callbacks without nesting, interest settling, and timeouts.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use socket2::Socket;

use super::error::{Error, StreamEvent};
use super::filter::FlushMode;
use super::filtered::{filter_out, ADOPT_MIN};
use super::lifecycle::Writing;
use super::output::Output;
use super::read::{needs_more, satisfy, Outcome, Request};
use super::stream::{Conn, Link, State, StreamHandler};
use crate::ev::{Ctx, IoInterest};
use crate::sys;

impl<S: 'static> Conn<S> {
    // ----- the engine ------------------------------------------------------------------

    /// The time for activity stamps: the turn's cached time inside this stream's callbacks,
    /// a fresh reading elsewhere (the cached one may be old before the loop runs).
    pub(super) fn clock(&self, cx: &Ctx<S>) -> Instant {
        if self.in_dispatch.get() {
            cx.now()
        } else {
            Instant::now()
        }
    }

    /// A request, write or option changed: inside a callback of this stream the dispatch
    /// loop picks it up; elsewhere the stream runs on the next turn.
    pub(super) fn changed(&self, cx: &mut Ctx<S>) {
        if self.in_dispatch.get() || self.closed.get() {
            return;
        }
        self.kick_next_turn(cx);
    }

    /// Arms the kick timer: the stream dispatches again on the next turn.
    pub(super) fn kick_next_turn(&self, cx: &mut Ctx<S>) {
        if let Some(k) = self.st.borrow().ids.kick {
            if !cx.is_active(k) {
                cx.set_timer(k, Duration::ZERO, None);
            }
        }
    }

    pub(super) fn on_io(
        self: &Rc<Self>,
        readable: bool,
        writable: bool,
        st: &mut S,
        cx: &mut Ctx<S>,
    ) {
        if self.closed.get() {
            return;
        }
        self.new_turn(cx);
        if readable {
            self.fill();
        }
        if writable {
            self.push_out(cx);
        }
        self.dispatch(st, cx);
    }

    pub(super) fn new_turn(&self, cx: &Ctx<S>) {
        let turn = cx.turn_count();
        let mut g = self.st.borrow_mut();
        if g.turn != turn {
            g.turn = turn;
            g.now = cx.now();
            g.rd.read_turn = 0;
            g.wr.written_turn = 0;
        }
    }

    /// One read from the socket, within this turn's cap.
    pub(super) fn fill(&self) {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if !g.rd.state.is_open() || g.closing || over_write_high(g) {
            return;
        }
        let cap = g
            .opts
            .max_read
            .saturating_sub(g.rd.read_turn)
            .min(g.rate.allowance(true, g.now));
        if cap == 0 {
            return;
        }
        if !matches!(g.link, Link::Socket(_)) {
            return;
        }
        match sys::recv_into(g.fd, &mut g.rd.input, cap) {
            Ok(0) => g.rd.state.end(),
            Ok(n) => {
                g.rate.charge(true, n);
                g.rd.read_turn += n;
                g.rd.total_read += n as u64;
                g.rd.last_read = g.now;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                g.rd.state.fail();
                g.error.get_or_insert(Error::Io(e));
            }
        }
    }

    /// Moves output on, within this turn's cap: to the socket, into the partner's input,
    /// or through the filter into the underlying stream. Returns whether bytes moved or
    /// the output side failed (an error is then due).
    pub(super) fn push_out(&self, cx: &mut Ctx<S>) -> bool {
        let moved = {
            let mut g = self.st.borrow_mut();
            let g = &mut *g;
            if g.wr.state.failed() {
                return false;
            }
            let cap = g
                .opts
                .max_write
                .saturating_sub(g.wr.written_turn)
                .min(g.rate.allowance(false, g.now));
            let r = match &mut g.link {
                Link::Closed => Ok(0),
                Link::Socket(sock) => send_some(sock, &mut g.wr.output, cap),
                Link::Pair(p) => Ok(match p.upgrade() {
                    Some(p) => p.take_from_partner(&mut g.wr.output, cap, cx),
                    None => 0, // unlinked: the output stays, nobody reads it
                }),
                Link::Filter(f) => filter_out(
                    f,
                    &mut g.wr.output,
                    cap,
                    g.wr.state == Writing::Finishing,
                    cx,
                ),
            };
            match r {
                Ok(n) => {
                    if n > 0 {
                        g.rate.charge(false, n);
                        g.wr.written_turn += n;
                        g.wr.total_written += n as u64;
                        g.wr.last_write = g.now;
                        if g.wr.output.len() <= g.opts.write_low && !g.closing {
                            g.wr.write_cb_due = true;
                        }
                    }
                    n
                }
                Err(e) => {
                    g.fail(e);
                    g.wr.output.clear();
                    // Not bytes moved, but progress all the same: an error is due, and
                    // dispatch must deliver it rather than settle with no interest left.
                    usize::MAX
                }
            }
        };
        self.finish_if_drained(cx);
        moved > 0
    }

    /// Whether this stream's output holds at least a full write (`max_write`): a stream
    /// stacked on it waits for it to drain before giving it more.
    pub(super) fn backlogged(&self) -> bool {
        let g = self.st.borrow();
        g.wr.output.len() >= g.opts.max_write
    }

    /// A finishing stream whose output has drained signals the end downstream, once.
    pub(super) fn finish_if_drained(&self, cx: &mut Ctx<S>) {
        let partner = {
            let mut g = self.st.borrow_mut();
            let drained = g.wr.output.is_empty();
            if !g.wr.state.take_end(drained) {
                return;
            }
            let st = &mut *g;
            match &mut st.link {
                Link::Socket(s) => {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    None
                }
                Link::Pair(p) => p.upgrade(),
                Link::Filter(f) => {
                    // The filter's end (e.g. TLS close_notify) goes down before the
                    // underlying stream finishes, which may shut its socket at once.
                    let (end, err) = f.emit(FlushMode::Finished);
                    if !end.is_empty() {
                        f.under.write_bytes(cx, end);
                    }
                    let u = f.under.conn.clone();
                    if let Some(e) = err {
                        st.error.get_or_insert(e);
                    }
                    drop(g);
                    u.flush(cx, FlushMode::Finished);
                    return;
                }
                Link::Closed => None,
            }
        };
        if let Some(p) = partner {
            p.st.borrow_mut().rd.state.end();
            p.changed(cx);
        }
    }

    /// A pair partner's flush: take up to `cap` bytes of `out` into this stream's input,
    /// as much as its read high watermark leaves room for (more if a request needs it).
    pub(super) fn take_from_partner(&self, out: &mut Output, cap: usize, cx: &mut Ctx<S>) -> usize {
        if self.closed.get() {
            return 0;
        }
        let moved = {
            let Ok(mut g) = self.st.try_borrow_mut() else {
                return 0;
            };
            let g = &mut *g;
            if g.rd.state.ended() || over_write_high(g) {
                return 0;
            }
            let room = if needs_more(g.rd.req, g.rd.input.len(), g.opts.limits()) {
                usize::MAX
            } else {
                g.opts.read_high.saturating_sub(g.rd.input.len())
            };
            let read_cap = g.rate.allowance(true, g.now);
            let moved = out.move_into(&mut g.rd.input, cap.min(room).min(read_cap));
            if moved > 0 {
                g.rate.charge(true, moved);
                g.rd.total_read += moved as u64;
                g.rd.last_read = g.now;
            }
            moved
        };
        if moved > 0 {
            self.changed(cx);
        }
        moved
    }

    /// Runs callbacks until nothing is due: satisfied reads, events, write callbacks and
    /// flushes. A loop, not recursion: a callback that issues the next operation gets it
    /// on the next iteration.
    pub(super) fn dispatch(self: &Rc<Self>, st: &mut S, cx: &mut Ctx<S>) {
        if self.in_dispatch.replace(true) {
            return;
        }
        self.new_turn(cx);
        while !self.closed.get() {
            match self.next_due() {
                Some(Due::Read(data)) => self.call(st, cx, |h, c, st, cx| h.read(c, data, st, cx)),
                Some(Due::Event(e)) => self.call(st, cx, |h, c, st, cx| h.event(c, e, st, cx)),
                Some(Due::Write) => self.call(st, cx, |h, c, st, cx| h.write(c, st, cx)),
                None => {
                    if !self.push_out(cx) && !self.pump_in(cx) {
                        break;
                    }
                }
            }
        }
        self.in_dispatch.set(false);
        if !self.closed.get() {
            self.settle(cx);
        }
    }

    pub(super) fn next_due(&self) -> Option<Due> {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if g.closing {
            return None;
        }
        if std::mem::take(&mut g.connected_due) {
            return Some(Due::Event(StreamEvent::Connected));
        }
        if let Some(req) = g.rd.req {
            if !g.rd.state.failed() || !g.rd.input.is_empty() {
                match satisfy(
                    req,
                    &mut g.rd.input,
                    &mut g.rd.scanned,
                    g.opts.limits(),
                    g.rd.state.ended(),
                ) {
                    Outcome::Data(d) => {
                        g.rd.req = None;
                        if d.len() >= ADOPT_MIN
                            && g.rd.input.is_empty()
                            && matches!(g.link, Link::Filter(_))
                        {
                            // Let go of the emptied buffer: `d` is then the only owner of its
                            // memory, and echoed back it enters the filter uncopied.
                            g.rd.input = bytes::BytesMut::new();
                        }
                        return Some(Due::Read(d));
                    }
                    Outcome::TooLong => {
                        g.rd.req = None;
                        g.rd.state.fail();
                        return Some(Due::Event(StreamEvent::Error(Error::LineTooLong {
                            max: g.opts.max_line,
                        })));
                    }
                    Outcome::TooLarge => {
                        g.rd.req = None;
                        g.rd.state.fail();
                        let requested = match req {
                            Request::Exact(n) => n,
                            _ => 0,
                        };
                        return Some(Due::Event(StreamEvent::Error(Error::ExactTooLarge {
                            requested,
                            max: g.opts.max_exact,
                        })));
                    }
                    Outcome::Wait => {}
                }
            }
        }
        if let Some(e) = g.error.take() {
            return Some(Due::Event(StreamEvent::Error(e)));
        }
        // End of stream comes after the data: with input left and no request pending it
        // waits for the next request (which gets the data first).
        if (g.rd.req.is_some() || g.rd.input.is_empty()) && g.rd.state.report_end() {
            return Some(Due::Event(StreamEvent::Eof));
        }
        if std::mem::take(&mut g.rd.read_timed_out) {
            return Some(Due::Event(StreamEvent::ReadTimeout));
        }
        if std::mem::take(&mut g.wr.write_timed_out) {
            return Some(Due::Event(StreamEvent::WriteTimeout));
        }
        if std::mem::take(&mut g.wr.write_cb_due) {
            return Some(Due::Write);
        }
        None
    }

    /// Runs one handler callback with nothing borrowed.
    pub(super) fn call(
        self: &Rc<Self>,
        st: &mut S,
        cx: &mut Ctx<S>,
        f: impl FnOnce(&mut dyn StreamHandler<S>, &Conn<S>, &mut S, &mut Ctx<S>),
    ) {
        let Some(mut h) = self.handler.borrow_mut().take() else {
            return;
        };
        f(&mut *h, self, st, cx);
        let mut slot = self.handler.borrow_mut();
        if slot.is_none() && !self.closed.get() && !self.st.borrow().closing {
            *slot = Some(h);
        }
    }

    /// After a dispatch: finish a graceful close, or set the socket interest.
    pub(super) fn settle(&self, cx: &mut Ctx<S>) {
        let (io, want, done_closing, refill_at, spent) = {
            let mut g = self.st.borrow_mut();
            let g = &mut *g;
            if g.wr.output.len() > g.opts.write_high {
                g.wr.backpressure = true;
            } else if g.wr.output.len() <= g.opts.write_low {
                g.wr.backpressure = false;
            }
            let mut want_read = g.rd.state.is_open()
                && !g.closing
                && !g.wr.backpressure
                && (g.rd.input.len() < g.opts.read_high
                    || needs_more(g.rd.req, g.rd.input.len(), g.opts.limits()));
            let mut want_write = !g.wr.output.is_empty() && !g.wr.state.failed();
            // Out of tokens: stop asking the poller and come back at the next refill.
            let mut blocked = false;
            if want_read && g.rate.allowance(true, g.now) == 0 {
                want_read = false;
                blocked = true;
            }
            if want_write && g.rate.allowance(false, g.now) == 0 {
                want_write = false;
                blocked = true;
            }
            let refill_at = if blocked { g.rate.next_refill() } else { None };
            // Output left because this turn's share (`max_write`) is spent: a socket's
            // writable interest brings it back; a stream with no socket of its own (over a
            // filter or a pair) kicks itself into the next turn.
            let spent = want_write && g.ids.io.is_none() && g.wr.written_turn >= g.opts.max_write;
            let want = match (want_read, want_write) {
                (true, true) => IoInterest::BOTH,
                (true, false) => IoInterest::READABLE,
                (false, true) => IoInterest::WRITABLE,
                (false, false) => IoInterest::NONE,
            };
            (
                g.ids.io,
                want,
                g.closing && (g.wr.output.is_empty() || g.wr.state.failed()),
                refill_at,
                spent,
            )
        };
        if spent {
            self.kick_next_turn(cx);
        }
        if let Some(at) = refill_at {
            self.arm_rate_timer(cx, at);
        }
        if done_closing {
            self.st.borrow_mut().wr.state.finish();
            self.finish_if_drained(cx);
            self.teardown(Some(cx), false);
            return;
        }
        enum Next<S: 'static> {
            Nothing,
            Resume(Rc<Conn<S>>),
            Pull(Rc<Conn<S>>, bool),
        }
        let next = {
            let mut g = self.st.borrow_mut();
            if g.interest != want {
                g.interest = want;
                if let Some(io) = io {
                    cx.set_interest(io, want);
                }
            }
            let want_read = want.is_readable();
            match &g.link {
                // Room again: the partner's waiting output may come in.
                Link::Pair(p) => match p.upgrade() {
                    Some(p) if want_read && p.output_len() > 0 => Next::Resume(p),
                    _ => Next::Nothing,
                },
                // Ask the underlying stream for more exactly while this one wants it.
                Link::Filter(f) => Next::Pull(f.under.conn.clone(), want_read),
                _ => Next::Nothing,
            }
        };
        match next {
            Next::Nothing => {}
            Next::Resume(p) => p.changed(cx),
            Next::Pull(u, want) => {
                let has = u.pending_request().is_some();
                if want && !has {
                    u.request(cx, Some(Request::Chunk));
                } else if !want && has {
                    u.request(cx, None);
                }
            }
        }
    }

    /// (Re)arms the timeout timer for the earliest deadline.
    pub(super) fn arm_timeouts(&self, cx: &mut Ctx<S>) {
        let (rt, wt, ct, ht, timer) = {
            let g = self.st.borrow();
            let now = self.clock(cx);
            let until = |d: Option<Instant>| d.map(|d| d.saturating_duration_since(now));
            let ct = until(g.close_deadline);
            let ht = until(g.handshake_deadline);
            (
                g.opts.read_timeout,
                g.opts.write_timeout,
                ct,
                ht,
                g.ids.timer,
            )
        };
        let Some(first) = [rt, wt, ct, ht].into_iter().flatten().min() else {
            if let Some(t) = timer {
                cx.stop(t);
            }
            return;
        };
        self.arm(cx, |g| &mut g.ids.timer, first, Conn::on_timer);
    }

    pub(super) fn on_timer(self: &Rc<Self>, st: &mut S, cx: &mut Ctx<S>) {
        if self.closed.get() {
            return;
        }
        let now = cx.now();
        let give_up = self
            .st
            .borrow()
            .close_deadline
            .map(|d| d.saturating_duration_since(now));
        if give_up == Some(Duration::ZERO) {
            // A graceful close that could not drain: reset, as `abort` does.
            return self.teardown(Some(cx), true);
        }
        let next = {
            let mut g = self.st.borrow_mut();
            let g = &mut *g;
            let mut next: Option<Duration> = give_up;
            if let Some(d) = g.handshake_deadline {
                let left = d.saturating_duration_since(now);
                if left.is_zero() {
                    g.handshake_deadline = None;
                    let limit = g.opts.handshake_timeout.unwrap_or_default();
                    g.fail(Error::HandshakeTimeout(limit));
                } else {
                    next = Some(next.map_or(left, |n| n.min(left)));
                }
            }
            if let Some(rt) = g.opts.read_timeout {
                let waiting = g.rd.req.is_some() && g.rd.state.is_open();
                let rd = &mut g.rd;
                let r = idle_timeout(waiting, rt, &mut rd.last_read, &mut rd.read_timed_out, now);
                next = Some(next.map_or(r, |n| n.min(r)));
            }
            if let Some(wt) = g.opts.write_timeout {
                let waiting = !g.wr.output.is_empty() && !g.wr.state.failed();
                let wr = &mut g.wr;
                let w = idle_timeout(
                    waiting,
                    wt,
                    &mut wr.last_write,
                    &mut wr.write_timed_out,
                    now,
                );
                next = Some(next.map_or(w, |n| n.min(w)));
            }
            next
        };
        if let (Some(next), Some(t)) = (next, self.st.borrow().ids.timer) {
            cx.set_timer(t, next, None);
        }
        self.dispatch(st, cx);
    }
}

/// An idle timeout of `limit` for activity last seen at `last`, while `waiting`: marks
/// `fired` (and restarts the count) when it is due; returns how long until it is due next.
fn idle_timeout(
    waiting: bool,
    limit: Duration,
    last: &mut Instant,
    fired: &mut bool,
    now: Instant,
) -> Duration {
    if !waiting {
        return limit;
    }
    let idle = now.saturating_duration_since(*last);
    if idle >= limit {
        *fired = true;
        *last = now;
        limit
    } else {
        limit - idle
    }
}

/// One `send` of at most `cap` bytes.
fn send_some(sock: &Socket, out: &mut Output, cap: usize) -> Result<usize, Error> {
    if out.is_empty() || cap == 0 {
        return Ok(0);
    }
    let c = out.chunk();
    let n = c.len().min(cap);
    // Never SIGPIPE: a peer that went away is this stream's error, not the process's end.
    match sock.send_with_flags(&c[..n], sys::SEND_FLAGS) {
        Ok(n) => {
            out.advance(n);
            Ok(n)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(Error::Io(e)),
    }
}

/// Whether output is above the write high watermark (or still draining from it): the
/// stream takes no more input.
pub(super) fn over_write_high<S>(g: &State<S>) -> bool {
    g.wr.backpressure || g.wr.output.len() > g.opts.write_high
}

pub(super) enum Due {
    Read(Bytes),
    Event(StreamEvent),
    Write,
}

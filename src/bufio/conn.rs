//! [`Conn`]'s public API: read requests, writes, flushes, limits, rate limits, closing.

use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error::{Closed, Error};
use super::filter::FlushMode;
use super::limit::{Limiter, Membership, RateGroup, RateLimit};
use super::options::Options;
use super::output::Output;
use super::read::Request;
use super::stream::{CloseDone, Conn, Link, State};
use crate::ev::{Ctx, WatcherId};

impl<S: 'static> Conn<S> {
    // ----- requests and writes ---------------------------------------------------------

    /// Requests the next line (LF or CRLF, terminator stripped): [`StreamHandler::read`](super::StreamHandler::read) gets it.
    /// Replaces any pending request.
    pub fn read_line(&self, cx: &mut Ctx<S>) {
        self.request(cx, Some(Request::Line));
    }

    /// Requests exactly `n` bytes.
    pub fn read_exact(&self, cx: &mut Ctx<S>, n: usize) {
        self.request(cx, Some(Request::Exact(n)));
    }

    /// Requests whatever is buffered, once the read low watermark is met.
    pub fn read_chunk(&self, cx: &mut Ctx<S>) {
        self.request(cx, Some(Request::Chunk));
    }

    /// Requests `req`, or with `None` withdraws the pending request.
    pub fn request(&self, cx: &mut Ctx<S>, req: Option<Request>) {
        {
            let mut g = self.st.borrow_mut();
            if g.rd.req.is_none() && req.is_some() {
                g.rd.last_read = self.clock(cx);
            }
            if g.rd.req != req {
                g.rd.scanned = 0;
            }
            g.rd.req = req;
        }
        self.changed(cx);
    }

    /// The pending read request.
    pub fn pending_request(&self) -> Option<Request> {
        self.st.borrow().rd.req
    }

    /// Queues `data` for writing. Writes go out when the current callback returns, or on
    /// the next turn, at most [`Options::max_write`] bytes per turn.
    pub fn write(&self, cx: &mut Ctx<S>, data: &[u8]) {
        self.queue_output(cx, |out| out.push_slice(data));
    }

    /// Queues `data` for writing without copying it when nothing else is queued (e.g. an
    /// echo of what [`StreamHandler::read`](super::StreamHandler::read) delivered).
    pub fn write_bytes(&self, cx: &mut Ctx<S>, data: Bytes) {
        self.queue_output(cx, |out| out.push_bytes(data));
    }

    pub(super) fn queue_output(&self, cx: &mut Ctx<S>, push: impl FnOnce(&mut Output)) {
        {
            let mut g = self.st.borrow_mut();
            if g.closing || g.wr.state.failed() {
                return;
            }
            if g.wr.output.is_empty() {
                g.wr.last_write = self.clock(cx);
            }
            push(&mut g.wr.output);
        }
        self.changed(cx);
    }

    /// Pushes output on now (libevent's `bufferevent_flush`). [`FlushMode::Flush`] makes a
    /// filter emit what it holds back; [`FlushMode::Finished`] also ends the stream's output
    /// once it has drained: a socket shuts down its write side, a pair delivers end of
    /// stream to its partner, a filter finishes and passes `Finished` down. Reading goes on.
    pub fn flush(&self, cx: &mut Ctx<S>, mode: FlushMode) {
        {
            let mut g = self.st.borrow_mut();
            match mode {
                FlushMode::Normal => {}
                FlushMode::Flush => {
                    if let Link::Filter(f) = &mut g.link {
                        match f.emit(FlushMode::Flush) {
                            (_, Some(e)) => {
                                g.error.get_or_insert(e);
                            }
                            (out, None) if !out.is_empty() => f.under.write_bytes(cx, out),
                            _ => {}
                        }
                    }
                }
                FlushMode::Finished => g.wr.state.finish(),
            }
        }
        if self.in_dispatch.get() {
            return;
        }
        self.push_out(cx);
        self.changed(cx);
    }

    /// The other stream of a [`pair`](super::Stream::pair), while it exists.
    pub fn partner(&self) -> Option<Rc<Conn<S>>> {
        match &self.st.borrow().link {
            Link::Pair(p) => p.upgrade(),
            _ => None,
        }
    }

    /// Bytes buffered from the socket and not yet delivered.
    pub fn input_len(&self) -> usize {
        self.st.borrow().rd.input.len()
    }

    /// Bytes queued for the socket and not yet written.
    pub fn output_len(&self) -> usize {
        self.st.borrow().wr.output.len()
    }

    /// Takes everything buffered from the socket (e.g. the remainder after end of stream).
    pub fn take_input(&self, cx: &mut Ctx<S>) -> Bytes {
        let b = {
            let mut g = self.st.borrow_mut();
            g.rd.scanned = 0;
            g.rd.input.split().freeze()
        };
        self.changed(cx);
        b
    }

    /// Bytes read from and written to the socket so far.
    pub fn totals(&self) -> (u64, u64) {
        let g = self.st.borrow();
        (g.rd.total_read, g.wr.total_written)
    }

    /// The stream's limits.
    pub fn options(&self) -> Options {
        self.st.borrow().opts
    }

    /// Changes the stream's limits (watermarks apply from the next delivery on).
    pub fn set_options(&self, cx: &mut Ctx<S>, opts: Options) {
        self.st.borrow_mut().opts = opts.sane();
        self.arm_timeouts(cx);
        self.changed(cx);
    }

    /// The socket's file descriptor (for socket options; do not read or write it).
    pub fn fd(&self) -> RawFd {
        self.st.borrow().fd
    }

    /// Whether end of stream was read.
    pub fn is_eof(&self) -> bool {
        self.st.borrow().rd.state.ended()
    }

    /// Whether the stream is closed (or closing).
    pub fn is_closed(&self) -> bool {
        self.closed.get() || self.st.borrow().closing
    }

    // ----- rate limits -----------------------------------------------------------------

    /// Sets (or with `None` removes) this stream's own rate limit; its buckets start full.
    pub fn set_rate_limit(&self, cx: &mut Ctx<S>, limit: Option<RateLimit>) {
        self.st.borrow_mut().rate.limit = limit.map(|l| Limiter::new(&l, Instant::now()));
        self.changed(cx);
    }

    /// Joins `group`, leaving any group the stream was in. The lower of the stream's own
    /// limit and its share of the group wins.
    pub fn join_group(&self, cx: &mut Ctx<S>, group: &RateGroup) {
        let m = Membership::join(group);
        let old = self.st.borrow_mut().rate.group.replace(m);
        drop(old);
        self.changed(cx);
    }

    /// Leaves the stream's rate-limit group, if any (dropping the stream does this too).
    pub fn leave_group(&self, cx: &mut Ctx<S>) {
        let old = self.st.borrow_mut().rate.group.take();
        drop(old);
        self.changed(cx);
    }

    /// How many bytes the stream may read now under its own limit and its group's share
    /// (`usize::MAX` when unlimited).
    pub fn read_allowance(&self) -> usize {
        let mut g = self.st.borrow_mut();
        g.rate.allowance(true, Instant::now())
    }

    /// How many bytes the stream may write now (`usize::MAX` when unlimited).
    pub fn write_allowance(&self) -> usize {
        let mut g = self.st.borrow_mut();
        g.rate.allowance(false, Instant::now())
    }

    /// Takes `n` bytes from the stream's read bucket (and its group's) by hand.
    pub fn decrement_read(&self, n: usize) {
        self.st.borrow_mut().rate.charge(true, n);
    }

    /// Takes `n` bytes from the stream's write bucket (and its group's) by hand.
    pub fn decrement_write(&self, n: usize) {
        self.st.borrow_mut().rate.charge(false, n);
    }

    pub(super) fn arm_rate_timer(&self, cx: &mut Ctx<S>, at: Instant) {
        let after = at.saturating_duration_since(Instant::now());
        self.arm(cx, |g| &mut g.ids.rate_timer, after, Conn::dispatch);
    }

    /// Starts the stream's one-shot timer in `slot` to fire `after` from now, creating it
    /// on first use with `fire` as its callback.
    pub(super) fn arm(
        &self,
        cx: &mut Ctx<S>,
        slot: fn(&mut State<S>) -> &mut Option<WatcherId>,
        after: Duration,
        fire: fn(&Rc<Conn<S>>, &mut S, &mut Ctx<S>),
    ) {
        let existing = *slot(&mut self.st.borrow_mut());
        match existing {
            Some(t) => {
                cx.set_timer(t, after, None);
            }
            None => {
                let Some(me) = self.self_weak.upgrade() else {
                    return;
                };
                let t = cx.timer(after, None, move |st, cx, _| fire(&me, st, cx));
                *slot(&mut self.st.borrow_mut()) = Some(t);
            }
        }
    }

    // ----- closing ---------------------------------------------------------------------

    /// Graceful close: no more reads or callbacks; queued output is flushed, then the
    /// write side is shut down and the socket closed. A peer that does not take the output
    /// within [`Options::close_timeout`] gets a reset instead. To learn when it is over,
    /// use [`close_then`](Conn::close_then).
    ///
    /// The flush goes on after the close returns, as long as the stream lives: from a
    /// callback (the loop holds the stream while its callbacks run) or after
    /// [`Stream::detach`](super::Stream::detach). Dropping the owning
    /// [`Stream`](super::Stream) after `close` cuts it short (the output is discarded);
    /// `stream.close(cx); stream.detach();` is the way to close a stream you hold and let
    /// it finish.
    pub fn close(&self, cx: &mut Ctx<S>) {
        self.start_close(cx, None);
    }

    /// [`close`](Conn::close), and `done` runs once the close is over, on a later turn:
    /// with [`Closed::Flushed`] when every byte written before it went out and the
    /// connection was shut down (for a filtered stream, e.g. TLS: its end marker too, and
    /// the stream below closed), [`Closed::TimedOut`] when the peer did not take the output
    /// within [`Options::close_timeout`], [`Closed::Failed`] when the connection broke
    /// first, [`Closed::Aborted`] when [`abort`](Conn::abort) or dropping the owning
    /// `Stream` cut it short. On a stream already closing, `done` gets
    /// [`Closed::AlreadyClosing`].
    ///
    /// ```
    /// use evnet::bufio::{Closed, Conn, Stream, StreamEvent, StreamHandler};
    /// use evnet::bytes::Bytes;
    /// use evnet::ev::{Ctx, Loop};
    ///
    /// struct Quiet;
    /// impl StreamHandler<Option<String>> for Quiet {
    ///     fn read(&mut self, _: &Conn<Option<String>>, _: Bytes, _: &mut Option<String>,
    ///             _: &mut Ctx<Option<String>>) {}
    ///     fn event(&mut self, _: &Conn<Option<String>>, _: StreamEvent,
    ///              _: &mut Option<String>, _: &mut Ctx<Option<String>>) {}
    /// }
    ///
    /// let mut ev = Loop::<Option<String>>::new()?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let s = Stream::new(&mut ev, evnet::socket2::Socket::from(std::os::fd::OwnedFd::from(a)), Quiet)?;
    /// s.write(&mut ev, b"bye\n");
    /// s.close_then(&mut ev, |outcome, _cx, closed: Closed| {
    ///     *outcome = Some(closed.to_string());
    /// });
    /// s.detach(); // the loop keeps it until the close is over
    /// let mut outcome = None;
    /// ev.run(&mut outcome)?; // returns when nothing is left: the close is done
    /// assert_eq!(outcome.as_deref(), Some("closed, output flushed"));
    /// let mut got = String::new();
    /// std::io::Read::read_to_string(&mut &b, &mut got)?;
    /// assert_eq!(got, "bye\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close_then(
        &self,
        cx: &mut Ctx<S>,
        done: impl FnOnce(&mut S, &mut Ctx<S>, Closed) + 'static,
    ) {
        self.start_close(cx, Some(Box::new(done)));
    }

    fn start_close(&self, cx: &mut Ctx<S>, done: Option<CloseDone<S>>) {
        if self.closed.get() || self.st.borrow().closing {
            if let Some(done) = done {
                tell_closed(cx, done, Closed::AlreadyClosing);
            }
            return;
        }
        {
            let mut g = self.st.borrow_mut();
            g.closing = true;
            g.close_done = done;
            g.rd.req = None;
            g.close_deadline = g
                .opts
                .close_timeout
                .map(|t| crate::ev::later(self.clock(cx), t));
        }
        // No callback after a close: drop the handler now (or when its callback returns).
        let h = self.handler.borrow_mut().take();
        drop(h);
        self.arm_timeouts(cx);
        self.changed(cx);
    }

    /// Abortive close: queued output is discarded and the peer gets a reset (`SO_LINGER`
    /// 0). No callback runs afterwards.
    pub fn abort(&self, cx: &mut Ctx<S>) {
        self.teardown(Some(cx), true);
    }

    /// Closes now: watchers removed (through `cx`, or at the start of the next turn), the
    /// socket closed after them, the handler dropped. A filter hands its remaining output,
    /// run through the filter with [`FlushMode::Finished`], to the underlying stream and closes
    /// that gracefully; a pair's partner is unlinked (no end of stream).
    pub(super) fn teardown(&self, cx: Option<&mut Ctx<S>>, reset: bool) {
        if self.closed.replace(true) {
            return;
        }
        let (ws, mut link, pending, mut done, mut outcome) = {
            let Ok(mut g) = self.st.try_borrow_mut() else {
                return;
            };
            // How the close ended, for `close_then` (a filter's flush decides below).
            let done = g.close_done.take();
            let outcome = if g.wr.state.failed() {
                Closed::Failed(g.error.take().unwrap_or_else(|| {
                    Error::Io(std::io::Error::other("the stream failed while closing"))
                }))
            } else if reset {
                if g.close_deadline.is_some_and(|d| d <= Instant::now()) {
                    Closed::TimedOut
                } else {
                    Closed::Aborted
                }
            } else if g.wr.output.is_empty() {
                Closed::Flushed
            } else {
                Closed::Aborted // dropped with output queued: discarded
            };
            g.rate.group = None; // leaves the rate-limit group
            g.connecting = None; // cancels a connect in progress
            let ws: Vec<WatcherId> = [
                g.ids.io.take(),
                g.ids.kick.take(),
                g.ids.timer.take(),
                g.ids.rate_timer.take(),
            ]
            .into_iter()
            .flatten()
            .collect();
            g.rd.req = None;
            let pending = std::mem::take(&mut g.wr.output);
            let link = std::mem::replace(&mut g.link, Link::Closed);
            (ws, link, pending, done, outcome)
        };
        let is_filter = matches!(link, Link::Filter(_));
        if let Link::Socket(s) = &link {
            if reset {
                let _ = s.set_linger(Some(Duration::ZERO));
            }
        }
        let mut filter_failed = false;
        if let Link::Filter(f) = &mut link {
            if !reset {
                // Never discard: what was written goes through the filter, finished.
                let mut pending = pending;
                pending.move_into(&mut f.raw_out, usize::MAX);
                let (out, err) = f.emit(FlushMode::Finished);
                if let Some(err) = err {
                    // The peer must not take a truncated stream for a complete one: reset
                    // the underlying connection instead of closing it gracefully.
                    filter_failed = true;
                    outcome = Closed::Failed(err);
                } else {
                    f.under.conn.push_output(out);
                }
            }
        }
        // A filter closed gracefully is over when the stream below it is.
        let forward = if is_filter && !reset && !filter_failed {
            done.take()
        } else {
            None
        };
        let mut tell = done.map(|d| (d, outcome));
        let under = match link {
            Link::Filter(f) => Some((f.under, reset || filter_failed)),
            other => {
                match cx {
                    Some(cx) => {
                        for w in &ws {
                            cx.remove(*w);
                        }
                        drop(other);
                        if let Some((done, outcome)) = tell.take() {
                            tell_closed(cx, done, outcome);
                        }
                    }
                    None => {
                        self.remover.remove_then_drop(&ws, other);
                        if let Some((done, outcome)) = tell.take() {
                            self.remover.defer(move |cx| tell_closed(cx, done, outcome));
                        }
                    }
                }
                None
            }
        };
        if let Some((under, reset)) = under {
            // The filter's own watchers go; the underlying stream closes with `cx`, now or
            // at the start of the next turn.
            let fin = move |cx: &mut Ctx<S>| {
                for w in &ws {
                    cx.remove(*w);
                }
                if reset {
                    under.abort(cx);
                    if let Some((done, outcome)) = tell {
                        tell_closed(cx, done, outcome);
                    }
                } else {
                    match forward {
                        Some(done) => under.close_then(cx, move |st, cx, c| done(st, cx, c)),
                        None => under.close(cx),
                    }
                    // Its watchers keep it until the flush and shutdown are done.
                    under.detach();
                }
            };
            self.remover.defer(fin);
        }
        // Outside its own callback the handler goes now; inside, when the callback returns.
        if let Ok(mut h) = self.handler.try_borrow_mut() {
            drop(h.take());
        }
    }

    /// Queues output from inside the crate, without waking anything (a closing filter).
    pub(super) fn push_output(&self, data: Bytes) {
        if let Ok(mut g) = self.st.try_borrow_mut() {
            if !data.is_empty() {
                g.wr.output.push_bytes(data);
            }
        }
    }
}

/// Runs a `close_then` callback on the next turn, with the loop's state.
fn tell_closed<S: 'static>(cx: &mut Ctx<S>, done: CloseDone<S>, outcome: Closed) {
    let mut once = Some((done, outcome));
    cx.timer(Duration::ZERO, None, move |st, cx, _| {
        if let Some((done, outcome)) = once.take() {
            done(st, cx, outcome);
        }
    });
}

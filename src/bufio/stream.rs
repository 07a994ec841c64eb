//! [`Stream`]: a buffered stream over a non-blocking socket, and [`Conn`], what its
//! callbacks act on.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use socket2::Socket;

use super::error::{Error, Event};
use super::limit::{Limiter, Membership, RateGroup, RateLimit};
use super::options::Options;
use super::output::Output;
use super::read::{needs_more, satisfy, Outcome, Request};
use crate::ev::{sys, Ctx, Interest, Remover, Watcher};

/// The callbacks of a [`Stream`] (libevent's read / write / event callbacks).
///
/// Every callback gets the stream's [`Conn`], through which it issues the next read,
/// writes, or closes. Callbacks never nest: a read issued from inside `read` that buffered
/// input already satisfies is delivered after `read` returns, by a loop, so any number of
/// back-to-back operations run in constant stack.
pub trait Handler<S>: 'static {
    /// The pending read request was satisfied with `data`.
    fn read(&mut self, conn: &Conn<S>, data: Bytes, st: &mut S, cx: &mut Ctx<S>);

    /// Output drained to the write low watermark. The default does nothing.
    fn write(&mut self, conn: &Conn<S>, st: &mut S, cx: &mut Ctx<S>) {
        let _ = (conn, st, cx);
    }

    /// End of stream, an error, or a timeout.
    fn event(&mut self, conn: &Conn<S>, event: Event, st: &mut S, cx: &mut Ctx<S>);
}

struct State {
    sock: Option<Socket>,
    fd: RawFd,
    io: Option<Watcher>,
    kick: Option<Watcher>,
    timer: Option<Watcher>,
    rate_timer: Option<Watcher>,
    limit: Option<Limiter>,
    group: Option<Membership>,
    input: BytesMut,
    output: Output,
    /// The loop's time at this turn's first activity (saves a clock read per syscall).
    now: Instant,
    scanned: usize,
    req: Option<Request>,
    opts: Options,
    eof: bool,
    eof_reported: bool,
    /// Reading stopped for good (an error, a line too long).
    read_failed: bool,
    /// Writing stopped for good.
    write_failed: bool,
    error: Option<Error>,
    write_cb_due: bool,
    read_timed_out: bool,
    write_timed_out: bool,
    closing: bool,
    interest: Interest,
    turn: u64,
    read_turn: usize,
    written_turn: usize,
    last_read: Instant,
    last_write: Instant,
    total_read: u64,
    total_written: u64,
}

/// A stream as its callbacks see it: requests, writes, limits, close.
///
/// Methods that change what the stream does take the loop context: inside one of the
/// stream's own callbacks the change takes effect when the callback returns; anywhere else
/// (a timer, another stream's callback) the stream runs it on the next loop turn. Either
/// way no callback of this stream runs inside the call.
pub struct Conn<S> {
    st: RefCell<State>,
    handler: RefCell<Option<Box<dyn Handler<S>>>>,
    closed: Cell<bool>,
    in_dispatch: Cell<bool>,
    self_weak: RefCell<Option<Weak<Conn<S>>>>,
    remover: Remover<S>,
}

/// A buffered stream on the loop (libevent's bufferevent, libevnet's bufio): input and
/// output buffers over a non-blocking socket (TCP or Unix), read requests by chunk, line or
/// exact size, watermarks, per-turn read/write caps, timeouts, graceful and abortive close.
///
/// This is the owning handle: dropping it closes the stream at once (queued output is
/// discarded; use [`Conn::close`] to flush first) and no callback runs afterwards, not even
/// one already due. [`detach`](Stream::detach) hands the stream to the loop instead, until a
/// callback closes it.
///
/// ```
/// use std::io::{Read, Write};
/// use bytes::Bytes;
/// use evnet::bufio::{Conn, Event, Handler, Stream};
/// use evnet::ev::{Ctx, Loop};
///
/// /// Echoes lines back upper-cased until "quit".
/// struct Shout;
/// impl Handler<u32> for Shout {
///     fn read(&mut self, c: &Conn<u32>, line: Bytes, n: &mut u32, cx: &mut Ctx<u32>) {
///         *n += 1;
///         if &line[..] == b"quit" {
///             return c.close(cx); // flushes, then shuts down
///         }
///         c.write(cx, &line.to_ascii_uppercase());
///         c.write(cx, b"\n");
///         c.read_line(cx);
///     }
///     fn event(&mut self, c: &Conn<u32>, _e: Event, _n: &mut u32, cx: &mut Ctx<u32>) {
///         c.abort(cx);
///     }
/// }
///
/// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
/// let mut ev = Loop::<u32>::new()?;
/// let s = Stream::new(&mut ev, socket2::Socket::from(std::os::fd::OwnedFd::from(a)), Shout)?;
/// s.read_line(&mut ev);
/// s.detach();
/// b.write_all(b"hello\r\nworld\nquit\n")?;
/// let mut n = 0;
/// ev.run(&mut n)?; // returns once the stream has closed itself
/// let mut out = String::new();
/// b.read_to_string(&mut out)?;
/// assert_eq!(out, "HELLO\nWORLD\n");
/// assert_eq!(n, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Stream<S: 'static> {
    conn: Rc<Conn<S>>,
    detached: bool,
}

impl<S> std::ops::Deref for Stream<S> {
    type Target = Conn<S>;
    fn deref(&self) -> &Conn<S> {
        &self.conn
    }
}

impl<S> std::fmt::Debug for Stream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.conn, f)
    }
}

impl<S> std::fmt::Debug for Conn<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.st.borrow();
        f.debug_struct("Conn")
            .field("fd", &g.fd)
            .field("input", &g.input.len())
            .field("output", &g.output.len())
            .field("request", &g.req)
            .field("eof", &g.eof)
            .field("closed", &self.closed.get())
            .finish()
    }
}

impl<S: 'static> Stream<S> {
    /// Puts a connected socket on the loop with default [`Options`]. No read is requested
    /// yet (input is read ahead up to the read high watermark).
    ///
    /// # Errors
    /// Making the socket non-blocking failed.
    pub fn new<H: Handler<S>>(
        cx: &mut Ctx<S>,
        socket: Socket,
        handler: H,
    ) -> io::Result<Stream<S>> {
        Stream::with_options(cx, socket, Options::default(), handler)
    }

    /// As [`new`](Stream::new), with options.
    ///
    /// # Errors
    /// Making the socket non-blocking failed.
    pub fn with_options<H: Handler<S>>(
        cx: &mut Ctx<S>,
        socket: Socket,
        opts: Options,
        handler: H,
    ) -> io::Result<Stream<S>> {
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        let now = Instant::now();
        let conn = Rc::new(Conn {
            st: RefCell::new(State {
                sock: Some(socket),
                fd,
                io: None,
                kick: None,
                timer: None,
                rate_timer: None,
                limit: None,
                group: None,
                input: BytesMut::new(),
                output: Output::default(),
                now,
                scanned: 0,
                req: None,
                opts: opts.sane(),
                eof: false,
                eof_reported: false,
                read_failed: false,
                write_failed: false,
                error: None,
                write_cb_due: false,
                read_timed_out: false,
                write_timed_out: false,
                closing: false,
                interest: Interest::READABLE,
                turn: 0,
                read_turn: 0,
                written_turn: 0,
                last_read: now,
                last_write: now,
                total_read: 0,
                total_written: 0,
            }),
            handler: RefCell::new(Some(Box::new(handler))),
            closed: Cell::new(false),
            in_dispatch: Cell::new(false),
            self_weak: RefCell::new(None),
            remover: cx.remover(),
        });
        *conn.self_weak.borrow_mut() = Some(Rc::downgrade(&conn));
        // The watchers hold the stream strongly: a detached stream lives as long as they
        // do, and removing them (close, drop of the handle, or the loop dropped) frees it.
        let c = conn.clone();
        let io = cx.io(fd, Interest::READABLE, move |st, cx, e| {
            c.on_io(e.is_readable(), e.is_writable(), st, cx);
        });
        let c = conn.clone();
        let kick = cx.timer(Duration::ZERO, None, move |st, cx, _| c.dispatch(st, cx));
        cx.stop(kick);
        {
            let mut g = conn.st.borrow_mut();
            g.io = Some(io);
            g.kick = Some(kick);
        }
        conn.arm_timeouts(cx);
        Ok(Stream {
            conn,
            detached: false,
        })
    }

    /// Gives the stream to the loop: it lives until one of its callbacks (or any holder of
    /// a `&Conn`) closes or aborts it, or the loop is dropped.
    pub fn detach(mut self) {
        self.detached = true;
    }
}

impl<S: 'static> Drop for Stream<S> {
    fn drop(&mut self) {
        if !self.detached {
            self.conn.teardown(None, false);
        }
    }
}

impl<S: 'static> Conn<S> {
    // ----- requests and writes ---------------------------------------------------------

    /// Requests the next line (LF or CRLF, terminator stripped): [`Handler::read`] gets it.
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
            if g.req.is_none() && req.is_some() {
                g.last_read = self.clock(cx);
            }
            if g.req != req {
                g.scanned = 0;
            }
            g.req = req;
        }
        self.changed(cx);
    }

    /// The pending read request.
    pub fn pending_request(&self) -> Option<Request> {
        self.st.borrow().req
    }

    /// Queues `data` for writing. Writes go out when the current callback returns, or on
    /// the next turn, at most [`Options::max_write`] bytes per turn.
    pub fn write(&self, cx: &mut Ctx<S>, data: &[u8]) {
        {
            let mut g = self.st.borrow_mut();
            if g.closing || g.write_failed {
                return;
            }
            if g.output.is_empty() {
                g.last_write = self.clock(cx);
            }
            g.output.push_slice(data);
        }
        self.changed(cx);
    }

    /// Queues `data` for writing without copying it when nothing else is queued (e.g. an
    /// echo of what [`Handler::read`] delivered).
    pub fn write_bytes(&self, cx: &mut Ctx<S>, data: Bytes) {
        {
            let mut g = self.st.borrow_mut();
            if g.closing || g.write_failed {
                return;
            }
            if g.output.is_empty() {
                g.last_write = self.clock(cx);
            }
            g.output.push_bytes(data);
        }
        self.changed(cx);
    }

    /// Bytes buffered from the socket and not yet delivered.
    pub fn input_len(&self) -> usize {
        self.st.borrow().input.len()
    }

    /// Bytes queued for the socket and not yet written.
    pub fn output_len(&self) -> usize {
        self.st.borrow().output.len()
    }

    /// Takes everything buffered from the socket (e.g. the remainder after end of stream).
    pub fn take_input(&self, cx: &mut Ctx<S>) -> Bytes {
        let b = {
            let mut g = self.st.borrow_mut();
            g.scanned = 0;
            g.input.split().freeze()
        };
        self.changed(cx);
        b
    }

    /// Bytes read from and written to the socket so far.
    pub fn totals(&self) -> (u64, u64) {
        let g = self.st.borrow();
        (g.total_read, g.total_written)
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
        self.st.borrow().eof
    }

    /// Whether the stream is closed (or closing).
    pub fn is_closed(&self) -> bool {
        self.closed.get() || self.st.borrow().closing
    }

    // ----- rate limits -----------------------------------------------------------------

    /// Sets (or with `None` removes) this stream's own rate limit; its buckets start full.
    pub fn set_rate_limit(&self, cx: &mut Ctx<S>, limit: Option<RateLimit>) {
        self.st.borrow_mut().limit = limit.map(|l| Limiter::new(&l, Instant::now()));
        self.changed(cx);
    }

    /// Joins `group`, leaving any group the stream was in. The lower of the stream's own
    /// limit and its share of the group wins.
    pub fn join_group(&self, cx: &mut Ctx<S>, group: &RateGroup) {
        let m = Membership::join(group);
        let old = self.st.borrow_mut().group.replace(m);
        drop(old);
        self.changed(cx);
    }

    /// Leaves the stream's rate-limit group, if any (dropping the stream does this too).
    pub fn leave_group(&self, cx: &mut Ctx<S>) {
        let old = self.st.borrow_mut().group.take();
        drop(old);
        self.changed(cx);
    }

    /// How many bytes the stream may read now under its own limit and its group's share
    /// (`usize::MAX` when unlimited).
    pub fn read_allowance(&self) -> usize {
        let mut g = self.st.borrow_mut();
        g.now = Instant::now();
        allowance(&mut g, true)
    }

    /// How many bytes the stream may write now (`usize::MAX` when unlimited).
    pub fn write_allowance(&self) -> usize {
        let mut g = self.st.borrow_mut();
        g.now = Instant::now();
        allowance(&mut g, false)
    }

    /// Takes `n` bytes from the stream's read bucket (and its group's) by hand.
    pub fn decrement_read(&self, n: usize) {
        charge(&mut self.st.borrow_mut(), true, n);
    }

    /// Takes `n` bytes from the stream's write bucket (and its group's) by hand.
    pub fn decrement_write(&self, n: usize) {
        charge(&mut self.st.borrow_mut(), false, n);
    }

    fn arm_rate_timer(&self, cx: &mut Ctx<S>, at: Instant) {
        let after = at.saturating_duration_since(Instant::now());
        let existing = self.st.borrow().rate_timer;
        match existing {
            Some(t) => {
                cx.set_timer(t, after, None);
            }
            None => {
                let Some(me) = self.self_weak.borrow().as_ref().and_then(Weak::upgrade) else {
                    return;
                };
                let t = cx.timer(after, None, move |st, cx, _| me.dispatch(st, cx));
                self.st.borrow_mut().rate_timer = Some(t);
            }
        }
    }

    // ----- closing ---------------------------------------------------------------------

    /// Graceful close: no more reads or callbacks; queued output is flushed, then the
    /// write side is shut down and the socket closed.
    pub fn close(&self, cx: &mut Ctx<S>) {
        {
            let mut g = self.st.borrow_mut();
            if g.closing {
                return;
            }
            g.closing = true;
            g.req = None;
        }
        // No callback after a close: drop the handler now (or when its callback returns).
        let h = self.handler.borrow_mut().take();
        drop(h);
        self.changed(cx);
    }

    /// Abortive close: queued output is discarded and the peer gets a reset (`SO_LINGER`
    /// 0). No callback runs afterwards.
    pub fn abort(&self, cx: &mut Ctx<S>) {
        self.teardown(Some(cx), true);
    }

    /// Closes now: watchers removed (through `cx`, or at the start of the next turn), the
    /// socket closed after them, the handler dropped.
    fn teardown(&self, cx: Option<&mut Ctx<S>>, reset: bool) {
        if self.closed.replace(true) {
            return;
        }
        let (ws, sock) = {
            let Ok(mut g) = self.st.try_borrow_mut() else {
                return;
            };
            g.group = None; // leaves the rate-limit group
            let ws: Vec<Watcher> = [
                g.io.take(),
                g.kick.take(),
                g.timer.take(),
                g.rate_timer.take(),
            ]
            .into_iter()
            .flatten()
            .collect();
            g.output.clear();
            g.req = None;
            (ws, g.sock.take())
        };
        if reset {
            if let Some(s) = &sock {
                let _ = s.set_linger(Some(Duration::ZERO));
            }
        }
        match cx {
            Some(cx) => {
                for w in ws {
                    cx.remove(w);
                }
                drop(sock);
            }
            None => self.remover.remove_then_drop(&ws, sock),
        }
        // Outside its own callback the handler goes now; inside, when the callback returns.
        if let Ok(mut h) = self.handler.try_borrow_mut() {
            drop(h.take());
        }
    }

    // ----- the engine ------------------------------------------------------------------

    /// The time for activity stamps: the turn's cached time inside this stream's callbacks,
    /// a fresh reading elsewhere (the cached one may be old before the loop runs).
    fn clock(&self, cx: &Ctx<S>) -> Instant {
        if self.in_dispatch.get() {
            cx.now()
        } else {
            Instant::now()
        }
    }

    /// A request, write or option changed: inside a callback of this stream the dispatch
    /// loop picks it up; elsewhere the stream runs on the next turn.
    fn changed(&self, cx: &mut Ctx<S>) {
        if self.in_dispatch.get() || self.closed.get() {
            return;
        }
        if let Some(k) = self.st.borrow().kick {
            if !cx.is_active(k) {
                cx.set_timer(k, Duration::ZERO, None);
            }
        }
    }

    fn on_io(self: &Rc<Self>, readable: bool, writable: bool, st: &mut S, cx: &mut Ctx<S>) {
        if self.closed.get() {
            return;
        }
        self.new_turn(cx);
        if readable {
            self.fill();
        }
        if writable {
            self.flush();
        }
        self.dispatch(st, cx);
    }

    fn new_turn(&self, cx: &Ctx<S>) {
        let turn = cx.stats().turns;
        let mut g = self.st.borrow_mut();
        if g.turn != turn {
            g.turn = turn;
            g.now = cx.now();
            g.read_turn = 0;
            g.written_turn = 0;
        }
    }

    /// One read from the socket, within this turn's cap.
    fn fill(&self) {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if g.eof || g.read_failed || g.closing {
            return;
        }
        let cap = g
            .opts
            .max_read
            .saturating_sub(g.read_turn)
            .min(allowance(g, true));
        if cap == 0 {
            return;
        }
        match sys::read_into(g.fd, &mut g.input, cap) {
            Ok(0) => g.eof = true,
            Ok(n) => {
                charge(g, true, n);
                g.read_turn += n;
                g.total_read += n as u64;
                g.last_read = g.now;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                g.read_failed = true;
                g.error.get_or_insert(Error::Io(e));
            }
        }
    }

    /// One write to the socket, within this turn's cap. Returns whether bytes went out.
    fn flush(&self) -> bool {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if g.output.is_empty() || g.write_failed {
            return false;
        }
        let cap = g
            .opts
            .max_write
            .saturating_sub(g.written_turn)
            .min(allowance(g, false));
        let Some(sock) = &g.sock else { return false };
        if cap == 0 {
            return false;
        }
        let chunk = g.output.chunk();
        let n = chunk.len().min(cap);
        match sock.send(&chunk[..n]) {
            Ok(n) => {
                charge(g, false, n);
                g.output.advance(n);
                g.written_turn += n;
                g.total_written += n as u64;
                g.last_write = g.now;
                if g.output.len() <= g.opts.write_low && !g.closing {
                    g.write_cb_due = true;
                }
                n > 0
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                g.write_failed = true;
                g.read_failed = true;
                g.output.clear();
                g.error.get_or_insert(Error::Io(e));
                false
            }
        }
    }

    /// Runs callbacks until nothing is due: satisfied reads, events, write callbacks and
    /// flushes. A loop, not recursion: a callback that issues the next operation gets it
    /// on the next iteration.
    fn dispatch(self: &Rc<Self>, st: &mut S, cx: &mut Ctx<S>) {
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
                    if !self.flush() {
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

    fn next_due(&self) -> Option<Due> {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if g.closing {
            return None;
        }
        if let Some(req) = g.req {
            if !g.read_failed || !g.input.is_empty() {
                match satisfy(
                    req,
                    &mut g.input,
                    &mut g.scanned,
                    g.opts.read_low,
                    g.opts.max_line,
                    g.eof,
                ) {
                    Outcome::Data(d) => {
                        g.req = None;
                        return Some(Due::Read(d));
                    }
                    Outcome::TooLong => {
                        g.req = None;
                        g.read_failed = true;
                        return Some(Due::Event(Event::Error(Error::LineTooLong {
                            max: g.opts.max_line,
                        })));
                    }
                    Outcome::Wait => {}
                }
            }
        }
        if let Some(e) = g.error.take() {
            return Some(Due::Event(Event::Error(e)));
        }
        if g.eof && !g.eof_reported {
            g.eof_reported = true;
            return Some(Due::Event(Event::Eof));
        }
        if std::mem::take(&mut g.read_timed_out) {
            return Some(Due::Event(Event::ReadTimeout));
        }
        if std::mem::take(&mut g.write_timed_out) {
            return Some(Due::Event(Event::WriteTimeout));
        }
        if std::mem::take(&mut g.write_cb_due) {
            return Some(Due::Write);
        }
        None
    }

    /// Runs one handler callback with nothing borrowed.
    fn call(
        self: &Rc<Self>,
        st: &mut S,
        cx: &mut Ctx<S>,
        f: impl FnOnce(&mut dyn Handler<S>, &Conn<S>, &mut S, &mut Ctx<S>),
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
    fn settle(&self, cx: &mut Ctx<S>) {
        let (io, want, done_closing, refill_at) = {
            let mut g = self.st.borrow_mut();
            let g = &mut *g;
            let mut want_read = !g.eof
                && !g.read_failed
                && !g.closing
                && (g.input.len() < g.opts.read_high
                    || needs_more(g.req, g.input.len(), g.opts.read_low, g.opts.max_line));
            let mut want_write = !g.output.is_empty() && !g.write_failed;
            // Out of tokens: stop asking the poller and come back at the next refill.
            let mut blocked = false;
            if want_read && allowance(g, true) == 0 {
                want_read = false;
                blocked = true;
            }
            if want_write && allowance(g, false) == 0 {
                want_write = false;
                blocked = true;
            }
            let refill_at = if blocked { next_refill(g) } else { None };
            let want = match (want_read, want_write) {
                (true, true) => Interest::BOTH,
                (true, false) => Interest::READABLE,
                (false, true) => Interest::WRITABLE,
                (false, false) => Interest::NONE,
            };
            (
                g.io,
                want,
                g.closing && (g.output.is_empty() || g.write_failed),
                refill_at,
            )
        };
        if let Some(at) = refill_at {
            self.arm_rate_timer(cx, at);
        }
        if done_closing {
            if let Some(s) = &self.st.borrow().sock {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            self.teardown(Some(cx), false);
            return;
        }
        let mut g = self.st.borrow_mut();
        if g.interest != want {
            g.interest = want;
            if let Some(io) = io {
                cx.set_interest(io, want);
            }
        }
    }

    /// (Re)arms the timeout timer for the earliest deadline.
    fn arm_timeouts(&self, cx: &mut Ctx<S>) {
        let (rt, wt, timer) = {
            let g = self.st.borrow();
            (g.opts.read_timeout, g.opts.write_timeout, g.timer)
        };
        let Some(first) = [rt, wt].into_iter().flatten().min() else {
            if let Some(t) = timer {
                cx.stop(t);
            }
            return;
        };
        let t = match timer {
            Some(t) => t,
            None => {
                let Some(me) = self.self_weak.borrow().as_ref().and_then(Weak::upgrade) else {
                    return;
                };
                let t = cx.timer(first, None, move |st, cx, _| me.on_timer(st, cx));
                self.st.borrow_mut().timer = Some(t);
                return;
            }
        };
        cx.set_timer(t, first, None);
    }

    fn on_timer(self: &Rc<Self>, st: &mut S, cx: &mut Ctx<S>) {
        if self.closed.get() {
            return;
        }
        let now = cx.now();
        let next = {
            let mut g = self.st.borrow_mut();
            let g = &mut *g;
            let mut next: Option<Duration> = None;
            if let Some(rt) = g.opts.read_timeout {
                if g.req.is_some() && !g.eof && !g.read_failed {
                    let idle = now.saturating_duration_since(g.last_read);
                    if idle >= rt {
                        g.read_timed_out = true;
                        g.last_read = now;
                        next = Some(rt);
                    } else {
                        next = Some(rt - idle);
                    }
                } else {
                    next = Some(rt);
                }
            }
            if let Some(wt) = g.opts.write_timeout {
                let mut w = wt;
                if !g.output.is_empty() && !g.write_failed {
                    let idle = now.saturating_duration_since(g.last_write);
                    if idle >= wt {
                        g.write_timed_out = true;
                        g.last_write = now;
                    } else {
                        w = wt - idle;
                    }
                }
                next = Some(next.map_or(w, |n| n.min(w)));
            }
            next
        };
        if let (Some(next), Some(t)) = (next, self.st.borrow().timer) {
            cx.set_timer(t, next, None);
        }
        self.dispatch(st, cx);
    }
}

/// What the stream may move now: the lower of its own bucket and its group share.
fn allowance(g: &mut State, read: bool) -> usize {
    let now = g.now;
    let mut a = usize::MAX;
    if let Some(l) = &mut g.limit {
        let b = if read { &mut l.read } else { &mut l.write };
        b.refill(now);
        a = a.min(b.allowance());
    }
    if let Some(m) = &g.group {
        if let Ok(mut grp) = m.group.try_borrow_mut() {
            a = a.min(grp.share(read, now));
        }
    }
    a
}

/// Takes `n` moved bytes from the stream's bucket and its group's.
fn charge(g: &mut State, read: bool, n: usize) {
    if let Some(l) = &mut g.limit {
        if read {
            l.read.consume(n);
        } else {
            l.write.consume(n);
        }
    }
    if let Some(m) = &g.group {
        if let Ok(mut grp) = m.group.try_borrow_mut() {
            if read {
                grp.limiter.read.consume(n);
                grp.total_read += n as u64;
            } else {
                grp.limiter.write.consume(n);
                grp.total_written += n as u64;
            }
        }
    }
}

/// The earliest refill of any bucket the stream depends on.
fn next_refill(g: &State) -> Option<Instant> {
    let own = g
        .limit
        .as_ref()
        .map(|l| l.read.next_tick().min(l.write.next_tick()));
    let grp = g.group.as_ref().and_then(|m| {
        m.group.try_borrow().ok().map(|grp| {
            grp.limiter
                .read
                .next_tick()
                .min(grp.limiter.write.next_tick())
        })
    });
    own.into_iter().chain(grp).min()
}

enum Due {
    Read(Bytes),
    Event(Event),
    Write,
}

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
use super::filter::{Filter, FilterResult, FlushMode};
use super::limit::{Limiter, Membership, RateGroup, RateLimit};
use super::options::Options;
use super::output::Output;
use super::read::{needs_more, satisfy, Outcome, Request};
use crate::ev::{sys, Ctx, Interest, Remover, WatcherId};
use crate::socket::{self, ConnectOptions, Connected, Connecting, Endpoint, Resolve};

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

/// The callback a connecting stream hands to `socket::connect`.
type OnConnected<S> = Box<dyn FnOnce(&mut S, &mut Ctx<S>, io::Result<Connected>)>;

/// What a stream's bytes go through.
enum Link<S: 'static> {
    /// Closed: nothing.
    Closed,
    /// A non-blocking socket, watched by the stream's io watcher.
    Socket(Socket),
    /// The other half of an in-memory pair.
    Pair(Weak<Conn<S>>),
    /// A filter over an underlying stream.
    Filter(Box<Filtered<S>>),
}

struct Filtered<S: 'static> {
    under: Stream<S>,
    filter: Box<dyn Filter>,
    /// Bytes from the underlying stream the filter has not taken yet.
    raw_in: BytesMut,
    /// Bytes written to this stream the filter has not taken yet.
    raw_out: BytesMut,
    /// The underlying stream reached end of stream.
    under_eof: bool,
}

struct State<S: 'static> {
    link: Link<S>,
    fd: RawFd,
    /// After output drains: shut down (socket), EOF to the partner (pair), finish the
    /// underlying stream (filter).
    finishing: bool,
    finished: bool,
    /// A connect in progress (dropping the stream cancels it).
    connecting: Option<Connecting<S>>,
    connected_due: bool,
    io: Option<WatcherId>,
    kick: Option<WatcherId>,
    timer: Option<WatcherId>,
    rate_timer: Option<WatcherId>,
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
    /// Output went above the write high watermark and has not drained to the low one
    /// yet: reading is paused.
    backpressure: bool,
    /// A graceful close gives up (resets) at this time.
    close_deadline: Option<Instant>,
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
pub struct Conn<S: 'static> {
    st: RefCell<State<S>>,
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
#[must_use = "dropping a Stream closes it at once; keep it, or call .detach() to hand it to the loop"]
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
        let conn = Conn::build(cx, Link::Socket(socket), fd, opts, Box::new(handler));
        // The watchers hold the stream strongly: a detached stream lives as long as they
        // do, and removing them (close, drop of the handle, or the loop dropped) frees it.
        let c = conn.clone();
        let io = cx.io(fd, Interest::READABLE, move |st, cx, e| {
            c.on_io(e.is_readable(), e.is_writable(), st, cx);
        });
        let io = match io {
            Ok(io) => io,
            Err(e) => {
                conn.teardown(Some(cx), false);
                return Err(e);
            }
        };
        conn.st.borrow_mut().io = Some(io);
        Ok(Stream {
            conn,
            detached: false,
        })
    }

    /// A stream that connects to the first of `endpoints` that answers (see
    /// [`socket::connect`](crate::socket::connect): RFC 8305 fallback, stagger, timeout).
    /// Requests and writes may be issued at once; they take effect when the connection is
    /// up, announced by [`Event::Connected`]. A failed connect is an [`Event::Error`].
    /// Dropping the stream cancels the connect.
    pub fn connect<H: Handler<S>>(
        cx: &mut Ctx<S>,
        endpoints: Vec<Endpoint>,
        copts: ConnectOptions,
        opts: Options,
        handler: H,
    ) -> Stream<S> {
        Stream::connecting(cx, opts, Box::new(handler), |cx, done| {
            socket::connect(cx, endpoints, copts, done)
        })
    }

    /// As [`connect`](Stream::connect), resolving `host` first with `resolver` (e.g. a
    /// [`thread::Pool`](crate::thread::Pool)).
    pub fn connect_host<R: Resolve<S> + ?Sized, H: Handler<S>>(
        cx: &mut Ctx<S>,
        resolver: &R,
        host: &str,
        port: u16,
        copts: ConnectOptions,
        opts: Options,
        handler: H,
    ) -> Stream<S> {
        Stream::connecting(cx, opts, Box::new(handler), |cx, done| {
            socket::connect_host(cx, resolver, host, port, copts, done)
        })
    }

    /// A stream waiting for the connect that `start` begins (and that dropping it cancels).
    fn connecting(
        cx: &mut Ctx<S>,
        opts: Options,
        handler: Box<dyn Handler<S>>,
        start: impl FnOnce(&mut Ctx<S>, OnConnected<S>) -> Connecting<S>,
    ) -> Stream<S> {
        let conn = Conn::build(cx, Link::Closed, -1, opts, handler);
        conn.st.borrow_mut().interest = Interest::NONE;
        let weak = Rc::downgrade(&conn);
        let h = start(
            cx,
            Box::new(move |st, cx, r| {
                if let Some(c) = weak.upgrade() {
                    c.on_connected(r, st, cx);
                }
            }),
        );
        conn.st.borrow_mut().connecting = Some(h);
        Stream {
            conn,
            detached: false,
        }
    }

    /// Two streams linked in memory (libevent's bufferevent pair): what one writes, the
    /// other reads. Callbacks are always deferred to a later turn, never run from inside
    /// the partner's call; watermarks and per-turn caps apply as over a socket (a side
    /// above its read high watermark stops taking bytes, and the writer's output waits).
    /// [`FlushMode::Finished`] delivers end of stream to the partner after the data; dropping
    /// one side unlinks the other without an end of stream.
    pub fn pair<A: Handler<S>, B: Handler<S>>(
        cx: &mut Ctx<S>,
        opts: Options,
        a: A,
        b: B,
    ) -> (Stream<S>, Stream<S>) {
        let x = Conn::build(cx, Link::Closed, -1, opts, Box::new(a));
        let y = Conn::build(cx, Link::Closed, -1, opts, Box::new(b));
        x.st.borrow_mut().link = Link::Pair(Rc::downgrade(&y));
        y.st.borrow_mut().link = Link::Pair(Rc::downgrade(&x));
        // A pair reads nothing from a poller: its input arrives from the partner.
        for c in [&x, &y] {
            c.st.borrow_mut().interest = Interest::NONE;
        }
        (
            Stream {
                conn: x,
                detached: false,
            },
            Stream {
                conn: y,
                detached: false,
            },
        )
    }

    /// A stream that runs `filter` over `under` (libevent's filtering bufferevent): bytes
    /// read from `under` pass through [`Filter::input`] into this stream's input, bytes
    /// written here pass through [`Filter::output`] into `under`'s output. The filtered
    /// stream owns `under` and replaces its handler.
    ///
    /// Nothing is ever stuck between the layers: when this stream stops taking input (its
    /// read high watermark, a rate limit) `under` stops reading, and as soon as the
    /// application drains below the watermark `under` is asked for more and delivers what
    /// it buffered meanwhile. Dropping the filtered stream with output queued runs the
    /// filter one last time with [`FlushMode::Finished`] and closes `under` gracefully, so the
    /// bytes are flushed, not discarded.
    pub fn filter<F: Filter, H: Handler<S>>(
        cx: &mut Ctx<S>,
        under: Stream<S>,
        filter: F,
        opts: Options,
        handler: H,
    ) -> Stream<S> {
        let fd = under.fd();
        let under_conn = under.conn.clone();
        let link = Link::Filter(Box::new(Filtered {
            under,
            filter: Box::new(filter),
            raw_in: BytesMut::new(),
            raw_out: BytesMut::new(),
            under_eof: false,
        }));
        let conn = Conn::build(cx, link, fd, opts, Box::new(handler));
        conn.st.borrow_mut().interest = Interest::NONE;
        let bridge = Bridge {
            upper: Rc::downgrade(&conn),
        };
        *under_conn.handler.borrow_mut() = Some(Box::new(bridge));
        under_conn.request(cx, Some(Request::Chunk));
        Stream {
            conn,
            detached: false,
        }
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
    /// A stream's state and its kick timer (and timeout timer); a socket stream adds its io
    /// watcher.
    fn build(
        cx: &mut Ctx<S>,
        link: Link<S>,
        fd: RawFd,
        opts: Options,
        handler: Box<dyn Handler<S>>,
    ) -> Rc<Conn<S>> {
        let now = Instant::now();
        let conn = Rc::new(Conn {
            st: RefCell::new(State {
                link,
                fd,
                finishing: false,
                finished: false,
                connecting: None,
                connected_due: false,
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
                backpressure: false,
                close_deadline: None,
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
            handler: RefCell::new(Some(handler)),
            closed: Cell::new(false),
            in_dispatch: Cell::new(false),
            self_weak: RefCell::new(None),
            remover: cx.remover(),
        });
        *conn.self_weak.borrow_mut() = Some(Rc::downgrade(&conn));
        let c = conn.clone();
        let kick = cx.timer(Duration::ZERO, None, move |st, cx, _| c.dispatch(st, cx));
        cx.stop(kick);
        conn.st.borrow_mut().kick = Some(kick);
        conn.arm_timeouts(cx);
        conn
    }

    fn on_connected(self: &Rc<Self>, r: io::Result<Connected>, st: &mut S, cx: &mut Ctx<S>) {
        if self.closed.get() {
            return;
        }
        // The connect finished: its handle has nothing left to cancel.
        let done = self.st.borrow_mut().connecting.take();
        if let Some(h) = done {
            h.detach();
        }
        let up = r
            .and_then(|c| c.socket.set_nonblocking(true).map(|()| c.socket))
            .and_then(|sock| {
                let c = self.clone();
                let io = cx.io(sock.as_raw_fd(), Interest::READABLE, move |st, cx, e| {
                    c.on_io(e.is_readable(), e.is_writable(), st, cx);
                })?;
                Ok((sock, io))
            });
        match up {
            Ok((sock, io)) => {
                let fd = sock.as_raw_fd();
                let mut g = self.st.borrow_mut();
                g.link = Link::Socket(sock);
                g.fd = fd;
                g.io = Some(io);
                g.interest = Interest::READABLE;
                g.connected_due = true;
            }
            Err(e) => {
                let mut g = self.st.borrow_mut();
                g.read_failed = true;
                g.write_failed = true;
                g.error.get_or_insert(Error::Io(e));
            }
        }
        self.dispatch(st, cx);
    }

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
        self.queue_output(cx, |out| out.push_slice(data));
    }

    /// Queues `data` for writing without copying it when nothing else is queued (e.g. an
    /// echo of what [`Handler::read`] delivered).
    pub fn write_bytes(&self, cx: &mut Ctx<S>, data: Bytes) {
        self.queue_output(cx, |out| out.push_bytes(data));
    }

    fn queue_output(&self, cx: &mut Ctx<S>, push: impl FnOnce(&mut Output)) {
        {
            let mut g = self.st.borrow_mut();
            if g.closing || g.write_failed {
                return;
            }
            if g.output.is_empty() {
                g.last_write = self.clock(cx);
            }
            push(&mut g.output);
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
                FlushMode::Finished => g.finishing = true,
            }
        }
        if self.in_dispatch.get() {
            return;
        }
        self.push_out(cx);
        self.changed(cx);
    }

    /// The other stream of a [`pair`](Stream::pair), while it exists.
    pub fn partner(&self) -> Option<Rc<Conn<S>>> {
        match &self.st.borrow().link {
            Link::Pair(p) => p.upgrade(),
            _ => None,
        }
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
        allowance(&mut g, true, Instant::now())
    }

    /// How many bytes the stream may write now (`usize::MAX` when unlimited).
    pub fn write_allowance(&self) -> usize {
        let mut g = self.st.borrow_mut();
        allowance(&mut g, false, Instant::now())
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
        self.arm(cx, |g| &mut g.rate_timer, after, Conn::dispatch);
    }

    /// Starts the stream's one-shot timer in `slot` to fire `after` from now, creating it
    /// on first use with `fire` as its callback.
    fn arm(
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
                let Some(me) = self.self_weak.borrow().as_ref().and_then(Weak::upgrade) else {
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
    /// within [`Options::close_timeout`] gets a reset instead.
    pub fn close(&self, cx: &mut Ctx<S>) {
        {
            let mut g = self.st.borrow_mut();
            if g.closing {
                return;
            }
            g.closing = true;
            g.req = None;
            g.close_deadline = g.opts.close_timeout.map(|t| self.clock(cx) + t);
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
    fn teardown(&self, cx: Option<&mut Ctx<S>>, reset: bool) {
        if self.closed.replace(true) {
            return;
        }
        let (ws, link, pending) = {
            let Ok(mut g) = self.st.try_borrow_mut() else {
                return;
            };
            g.group = None; // leaves the rate-limit group
            g.connecting = None; // cancels a connect in progress
            let ws: Vec<WatcherId> = [
                g.io.take(),
                g.kick.take(),
                g.timer.take(),
                g.rate_timer.take(),
            ]
            .into_iter()
            .flatten()
            .collect();
            g.req = None;
            let pending = std::mem::take(&mut g.output);
            (ws, std::mem::replace(&mut g.link, Link::Closed), pending)
        };
        let mut link = link;
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
                if err.is_some() {
                    // Nobody is left to tell (the handler goes with the close), and the
                    // peer must not take a truncated stream for a complete one: reset
                    // the underlying connection instead of closing it gracefully.
                    filter_failed = true;
                } else {
                    f.under.conn.push_output(out);
                }
            }
        }
        let under = match link {
            Link::Filter(f) => Some((f.under, reset || filter_failed)),
            other => {
                match cx {
                    Some(cx) => {
                        for w in &ws {
                            cx.remove(*w);
                        }
                        drop(other);
                    }
                    None => self.remover.remove_then_drop(&ws, other),
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
                } else {
                    under.close(cx);
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
    fn push_output(&self, data: Bytes) {
        if let Ok(mut g) = self.st.try_borrow_mut() {
            if !data.is_empty() {
                g.output.push_bytes(data);
            }
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
            self.push_out(cx);
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
        if g.eof || g.read_failed || g.closing || over_write_high(g) {
            return;
        }
        let cap = g
            .opts
            .max_read
            .saturating_sub(g.read_turn)
            .min(allowance(g, true, g.now));
        if cap == 0 {
            return;
        }
        if !matches!(g.link, Link::Socket(_)) {
            return;
        }
        match sys::recv_into(g.fd, &mut g.input, cap) {
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

    /// Moves output on, within this turn's cap: to the socket, into the partner's input,
    /// or through the filter into the underlying stream. Returns whether bytes moved or
    /// the output side failed (an error is then due).
    fn push_out(&self, cx: &mut Ctx<S>) -> bool {
        let moved = {
            let mut g = self.st.borrow_mut();
            let g = &mut *g;
            if g.write_failed {
                return false;
            }
            let cap = g
                .opts
                .max_write
                .saturating_sub(g.written_turn)
                .min(allowance(g, false, g.now));
            let r = match &mut g.link {
                Link::Closed => Ok(0),
                Link::Socket(sock) => send_some(sock, &mut g.output, cap),
                Link::Pair(p) => Ok(match p.upgrade() {
                    Some(p) => p.take_from_partner(&mut g.output, cap, cx),
                    None => 0, // unlinked: the output stays, nobody reads it
                }),
                Link::Filter(f) => filter_out(f, &mut g.output, cap, g.finishing, cx),
            };
            match r {
                Ok(n) => {
                    if n > 0 {
                        charge(g, false, n);
                        g.written_turn += n;
                        g.total_written += n as u64;
                        g.last_write = g.now;
                        if g.output.len() <= g.opts.write_low && !g.closing {
                            g.write_cb_due = true;
                        }
                    }
                    n
                }
                Err(e) => {
                    g.write_failed = true;
                    g.read_failed = true;
                    g.output.clear();
                    g.error.get_or_insert(e);
                    // Not bytes moved, but progress all the same: an error is due, and
                    // dispatch must deliver it rather than settle with no interest left.
                    usize::MAX
                }
            }
        };
        self.finish_if_drained(cx);
        moved > 0
    }

    /// A finishing stream whose output has drained signals the end downstream, once.
    fn finish_if_drained(&self, cx: &mut Ctx<S>) {
        let partner = {
            let mut g = self.st.borrow_mut();
            if !g.finishing || g.finished || !g.output.is_empty() {
                return;
            }
            g.finished = true;
            match &g.link {
                Link::Socket(s) => {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    None
                }
                Link::Pair(p) => p.upgrade(),
                Link::Filter(f) => {
                    let u = f.under.conn.clone();
                    drop(g);
                    u.flush(cx, FlushMode::Finished);
                    return;
                }
                Link::Closed => None,
            }
        };
        if let Some(p) = partner {
            p.st.borrow_mut().eof = true;
            p.changed(cx);
        }
    }

    /// Runs the input side of a filter over bytes from the underlying stream, as far as
    /// this stream has room. Returns whether input grew (or end of stream arrived).
    fn pump_in(&self, _cx: &mut Ctx<S>) -> bool {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if g.eof || g.read_failed || g.closing || over_write_high(g) {
            return false;
        }
        let room = if needs_more(g.req, g.input.len(), g.opts.limits()) {
            g.opts.max_read
        } else {
            g.opts.read_high.saturating_sub(g.input.len())
        };
        let Link::Filter(f) = &mut g.link else {
            return false;
        };
        if room == 0 || (f.raw_in.is_empty() && !f.under_eof) {
            return false;
        }
        let mode = if f.under_eof {
            FlushMode::Finished
        } else {
            FlushMode::Normal
        };
        let before = g.input.len();
        let r = f.filter.input(&mut f.raw_in, &mut g.input, room, mode);
        let grew = g.input.len() - before;
        let ended = f.under_eof && f.raw_in.is_empty();
        match r {
            FilterResult::Error(m) => {
                g.read_failed = true;
                g.error.get_or_insert(Error::Filter(m));
                return true;
            }
            FilterResult::NeedMore if f.under_eof => {
                // The stream ended inside a unit the filter needed whole.
                g.read_failed = true;
                g.error
                    .get_or_insert(Error::Filter("end of stream inside a filtered unit".into()));
                return true;
            }
            _ => {}
        }
        if grew > 0 {
            g.total_read += grew as u64;
            g.last_read = g.now;
        }
        if ended {
            g.eof = true;
            return true;
        }
        grew > 0
    }

    /// Bytes (or the end) from the underlying stream of a filter.
    fn take_from_under(&self, data: Option<Bytes>, err: Option<Error>) {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if let Some(e) = err {
            g.read_failed = true;
            g.error.get_or_insert(e);
        }
        if let Link::Filter(f) = &mut g.link {
            match data {
                Some(d) => f.raw_in.extend_from_slice(&d),
                None => f.under_eof = true,
            }
        }
    }

    /// A pair partner's flush: take up to `cap` bytes of `out` into this stream's input,
    /// as much as its read high watermark leaves room for (more if a request needs it).
    fn take_from_partner(&self, out: &mut Output, cap: usize, cx: &mut Ctx<S>) -> usize {
        if self.closed.get() {
            return 0;
        }
        let moved = {
            let Ok(mut g) = self.st.try_borrow_mut() else {
                return 0;
            };
            let g = &mut *g;
            if g.eof || over_write_high(g) {
                return 0;
            }
            let room = if needs_more(g.req, g.input.len(), g.opts.limits()) {
                usize::MAX
            } else {
                g.opts.read_high.saturating_sub(g.input.len())
            };
            let read_cap = allowance(g, true, g.now);
            let moved = out.move_into(&mut g.input, cap.min(room).min(read_cap));
            if moved > 0 {
                charge(g, true, moved);
                g.total_read += moved as u64;
                g.last_read = g.now;
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

    fn next_due(&self) -> Option<Due> {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if g.closing {
            return None;
        }
        if std::mem::take(&mut g.connected_due) {
            return Some(Due::Event(Event::Connected));
        }
        if let Some(req) = g.req {
            if !g.read_failed || !g.input.is_empty() {
                match satisfy(req, &mut g.input, &mut g.scanned, g.opts.limits(), g.eof) {
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
                    Outcome::TooLarge => {
                        g.req = None;
                        g.read_failed = true;
                        let requested = match req {
                            Request::Exact(n) => n,
                            _ => 0,
                        };
                        return Some(Due::Event(Event::Error(Error::ExactTooLarge {
                            requested,
                            max: g.opts.max_exact,
                        })));
                    }
                    Outcome::Wait => {}
                }
            }
        }
        if let Some(e) = g.error.take() {
            return Some(Due::Event(Event::Error(e)));
        }
        // End of stream comes after the data: with input left and no request pending it
        // waits for the next request (which gets the data first).
        if g.eof && !g.eof_reported && (g.req.is_some() || g.input.is_empty()) {
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
            if g.output.len() > g.opts.write_high {
                g.backpressure = true;
            } else if g.output.len() <= g.opts.write_low {
                g.backpressure = false;
            }
            let mut want_read = !g.eof
                && !g.read_failed
                && !g.closing
                && !g.backpressure
                && (g.input.len() < g.opts.read_high
                    || needs_more(g.req, g.input.len(), g.opts.limits()));
            let mut want_write = !g.output.is_empty() && !g.write_failed;
            // Out of tokens: stop asking the poller and come back at the next refill.
            let mut blocked = false;
            if want_read && allowance(g, true, g.now) == 0 {
                want_read = false;
                blocked = true;
            }
            if want_write && allowance(g, false, g.now) == 0 {
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
            self.st.borrow_mut().finishing = true;
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
    fn arm_timeouts(&self, cx: &mut Ctx<S>) {
        let (rt, wt, ct, timer) = {
            let g = self.st.borrow();
            let ct = g
                .close_deadline
                .map(|d| d.saturating_duration_since(self.clock(cx)));
            (g.opts.read_timeout, g.opts.write_timeout, ct, g.timer)
        };
        let Some(first) = [rt, wt, ct].into_iter().flatten().min() else {
            if let Some(t) = timer {
                cx.stop(t);
            }
            return;
        };
        self.arm(cx, |g| &mut g.timer, first, Conn::on_timer);
    }

    fn on_timer(self: &Rc<Self>, st: &mut S, cx: &mut Ctx<S>) {
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
            if let Some(rt) = g.opts.read_timeout {
                let mut r = rt;
                if g.req.is_some() && !g.eof && !g.read_failed {
                    let idle = now.saturating_duration_since(g.last_read);
                    if idle >= rt {
                        g.read_timed_out = true;
                        g.last_read = now;
                    } else {
                        r = rt - idle;
                    }
                }
                next = Some(next.map_or(r, |n| n.min(r)));
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

/// Runs the output side of a filter over up to `cap` bytes of `out`, into the underlying
/// stream. Returns how many bytes of `out` the filter took.
fn filter_out<S: 'static>(
    f: &mut Filtered<S>,
    out: &mut Output,
    cap: usize,
    finishing: bool,
    cx: &mut Ctx<S>,
) -> Result<usize, Error> {
    let taken = out.move_into(&mut f.raw_out, cap);
    let mode = if finishing && out.is_empty() {
        FlushMode::Finished
    } else if taken > 0 {
        FlushMode::Normal
    } else {
        return Ok(0);
    };
    let (bytes, err) = f.emit(mode);
    if let Some(e) = err {
        return Err(e);
    }
    if !bytes.is_empty() {
        f.under.write_bytes(cx, bytes);
    }
    Ok(taken)
}

impl<S: 'static> Filtered<S> {
    /// Runs the output side of the filter over what it holds (`raw_out`) with `mode`:
    /// what it produced for the underlying stream, and its error if it failed.
    fn emit(&mut self, mode: FlushMode) -> (Bytes, Option<Error>) {
        let mut dst = BytesMut::new();
        let err = match self
            .filter
            .output(&mut self.raw_out, &mut dst, usize::MAX, mode)
        {
            FilterResult::Ok | FilterResult::NeedMore => None,
            FilterResult::Error(m) => Some(Error::Filter(m)),
        };
        (dst.freeze(), err)
    }
}

/// Whether output is above the write high watermark (or still draining from it): the
/// stream takes no more input.
fn over_write_high<S>(g: &State<S>) -> bool {
    g.backpressure || g.output.len() > g.opts.write_high
}

/// What the stream may move now: the lower of its own bucket and its group share.
fn allowance<S>(g: &mut State<S>, read: bool, now: Instant) -> usize {
    let mut a = usize::MAX;
    if let Some(l) = &mut g.limit {
        let b = if read { &mut l.read } else { &mut l.write };
        b.refill(now);
        a = a.min(b.allowance());
    }
    if let Some(m) = &g.group {
        if let Ok(mut grp) = m.group.try_borrow_mut() {
            a = a.min(grp.share(read, now, m.id));
        }
    }
    a
}

/// Takes `n` moved bytes from the stream's bucket and its group's.
fn charge<S>(g: &mut State<S>, read: bool, n: usize) {
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
fn next_refill<S>(g: &State<S>) -> Option<Instant> {
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

/// The handler a filter installs on its underlying stream: everything goes up.
struct Bridge<S: 'static> {
    upper: Weak<Conn<S>>,
}

impl<S: 'static> Handler<S> for Bridge<S> {
    fn read(&mut self, under: &Conn<S>, data: Bytes, st: &mut S, cx: &mut Ctx<S>) {
        if let Some(up) = self.upper.upgrade() {
            up.take_from_under(Some(data), None);
            // Keep pulling while the upper stream wants input; its settle stops us.
            under.read_chunk(cx);
            up.dispatch(st, cx);
        }
    }

    fn write(&mut self, _: &Conn<S>, st: &mut S, cx: &mut Ctx<S>) {
        // The underlying output drained: the filter may move more of the upper output.
        if let Some(up) = self.upper.upgrade() {
            up.dispatch(st, cx);
        }
    }

    fn event(&mut self, under: &Conn<S>, e: Event, st: &mut S, cx: &mut Ctx<S>) {
        let Some(up) = self.upper.upgrade() else {
            return;
        };
        match e {
            Event::Eof => {
                // What the underlying stream still buffers comes before the end.
                let rest = under.take_input(cx);
                if !rest.is_empty() {
                    up.take_from_under(Some(rest), None);
                }
                up.take_from_under(None, None);
            }
            Event::Error(e) => up.take_from_under(None, Some(e)),
            Event::Connected => {}
            Event::ReadTimeout => up.st.borrow_mut().read_timed_out = true,
            Event::WriteTimeout => up.st.borrow_mut().write_timed_out = true,
        }
        up.dispatch(st, cx);
    }
}

enum Due {
    Read(Bytes),
    Event(Event),
    Write,
}

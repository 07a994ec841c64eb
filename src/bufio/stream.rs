//! [`Stream`]: a buffered stream over a non-blocking socket, and [`Conn`], what its
//! callbacks act on.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use socket2::Socket;

use super::error::{Error, StreamEvent};
use super::filter::Filter;
use super::filtered::{Bridge, Filtered};
use super::lifecycle::{Reading, Writing};
use super::limit::Rates;
use super::options::Options;
use super::output::Output;
use super::read::Request;
use crate::ev::{Ctx, IoInterest, Remover, WatcherId};
use crate::socket::{self, ConnectOptions, Connected, Connecting, Resolve, Target};

/// The callbacks of a [`Stream`] (libevent's read / write / event callbacks).
///
/// Every callback gets the stream's [`Conn`], through which it issues the next read,
/// writes, or closes. Callbacks never nest: a read issued from inside `read` that buffered
/// input already satisfies is delivered after `read` returns, by a loop, so any number of
/// back-to-back operations run in constant stack.
pub trait StreamHandler<S>: 'static {
    /// The pending read request was satisfied with `data`.
    fn read(&mut self, conn: &Conn<S>, data: Bytes, st: &mut S, cx: &mut Ctx<S>);

    /// Output drained to the write low watermark. The default does nothing.
    fn write(&mut self, conn: &Conn<S>, st: &mut S, cx: &mut Ctx<S>) {
        let _ = (conn, st, cx);
    }

    /// End of stream, an error, or a timeout.
    fn event(&mut self, conn: &Conn<S>, event: StreamEvent, st: &mut S, cx: &mut Ctx<S>);
}

/// The callback of [`Conn::close_then`].
pub(super) type CloseDone<S> = Box<dyn FnOnce(&mut S, &mut Ctx<S>, super::Closed)>;

/// The callback a connecting stream hands to `socket::connect`.
pub(super) type OnConnected<S> = Box<dyn FnOnce(&mut S, &mut Ctx<S>, io::Result<Connected>)>;

/// What a stream's bytes go through.
pub(super) enum Link<S: 'static> {
    /// Closed: nothing.
    Closed,
    /// A non-blocking socket, watched by the stream's io watcher.
    Socket(Socket),
    /// The other half of an in-memory pair.
    Pair(Weak<Conn<S>>),
    /// A filter over an underlying stream.
    Filter(Box<Filtered<S>>),
}

pub(super) struct State<S: 'static> {
    pub(super) link: Link<S>,
    pub(super) fd: RawFd,
    /// A connect in progress (dropping the stream cancels it).
    pub(super) connecting: Option<Connecting<S>>,
    pub(super) connected_due: bool,
    pub(super) opts: Options,
    pub(super) rate: Rates,
    pub(super) rd: ReadSide,
    pub(super) wr: WriteSide,
    pub(super) ids: Watchers,
    /// An error to deliver as [`StreamEvent::Error`].
    pub(super) error: Option<Error>,
    /// Closing gracefully: no more reads or callbacks; output drains, then teardown.
    pub(super) closing: bool,
    /// A graceful close gives up (resets) at this time.
    pub(super) close_deadline: Option<Instant>,
    /// Who to tell when the close is over ([`Conn::close_then`]).
    pub(super) close_done: Option<CloseDone<S>>,
    /// When a filter's handshake must be over (see [`Options::handshake_timeout`]).
    pub(super) handshake_deadline: Option<Instant>,
    /// What the io watcher asks the poller for.
    pub(super) interest: IoInterest,
    /// The loop turn this stream last ran in, and the loop's time then (saves a clock
    /// read per syscall).
    pub(super) turn: u64,
    pub(super) now: Instant,
}

impl<S: 'static> State<S> {
    /// The stream is broken both ways: reading and writing stop, and `e` (the first error
    /// only) is due for the handler.
    pub(super) fn fail(&mut self, e: Error) {
        self.rd.state.fail();
        self.wr.state.fail();
        self.error.get_or_insert(e);
    }
}

/// The input side of a stream: buffered bytes, the pending request, end of stream.
pub(super) struct ReadSide {
    pub(super) input: BytesMut,
    /// How far a line search got (a long line arriving in pieces is scanned once).
    pub(super) scanned: usize,
    pub(super) req: Option<Request>,
    pub(super) state: Reading,
    pub(super) read_timed_out: bool,
    /// Bytes read in this turn (against `max_read`).
    pub(super) read_turn: usize,
    pub(super) last_read: Instant,
    pub(super) total_read: u64,
}

/// The output side: queued bytes, the graceful end, backpressure.
pub(super) struct WriteSide {
    pub(super) output: Output,
    pub(super) state: Writing,
    /// Output went above the write high watermark and has not drained to the low one
    /// yet: reading is paused.
    pub(super) backpressure: bool,
    pub(super) write_cb_due: bool,
    pub(super) write_timed_out: bool,
    /// Bytes written in this turn (against `max_write`).
    pub(super) written_turn: usize,
    pub(super) last_write: Instant,
    pub(super) total_written: u64,
}

/// The stream's watchers on the loop.
#[derive(Default)]
pub(super) struct Watchers {
    /// On the socket (socket streams only).
    pub(super) io: Option<WatcherId>,
    /// A zero-delay timer that runs the stream on the next turn after a change from
    /// outside its callbacks.
    pub(super) kick: Option<WatcherId>,
    /// Read, write and close timeouts.
    pub(super) timer: Option<WatcherId>,
    /// The next rate-limit refill.
    pub(super) rate_timer: Option<WatcherId>,
}

/// A stream as its callbacks see it: requests, writes, limits, close.
///
/// Methods that change what the stream does take the loop context: inside one of the
/// stream's own callbacks the change takes effect when the callback returns; anywhere else
/// (a timer, another stream's callback) the stream runs it on the next loop turn. Either
/// way no callback of this stream runs inside the call.
pub struct Conn<S: 'static> {
    pub(super) st: RefCell<State<S>>,
    pub(super) handler: RefCell<Option<Box<dyn StreamHandler<S>>>>,
    pub(super) closed: Cell<bool>,
    pub(super) in_dispatch: Cell<bool>,
    /// The stream itself, for the timers it arms later (set once, by `Rc::new_cyclic`).
    pub(super) self_weak: Weak<Conn<S>>,
    pub(super) remover: Remover<S>,
}

/// A buffered stream on the loop (libevent's bufferevent, libevnet's bufio): input and
/// output buffers over a non-blocking socket (TCP or Unix), read requests by chunk, line or
/// exact size, watermarks, per-turn read/write caps, timeouts, graceful and abortive close.
///
/// This is the owning handle: dropping it closes the stream at once (queued output is
/// discarded; use [`Conn::close`] to flush first) and no callback runs afterwards, not even
/// one already due. [`detach`](Stream::detach) hands the stream to the loop instead, until a
/// callback closes it. Forgetting both is a compile-time warning (`#[must_use]`):
///
/// ```compile_fail
/// # #![deny(unused_must_use)]
/// # use evnet::bufio::{Conn, StreamEvent, StreamHandler, Stream};
/// # struct H;
/// # impl StreamHandler<()> for H {
/// #     fn read(&mut self, _: &Conn<()>, _: evnet::bytes::Bytes, _: &mut (), _: &mut evnet::ev::Ctx<()>) {}
/// #     fn event(&mut self, _: &Conn<()>, _: StreamEvent, _: &mut (), _: &mut evnet::ev::Ctx<()>) {}
/// # }
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let mut ev = evnet::ev::Loop::<()>::new().unwrap();
/// Stream::new(&mut ev, evnet::socket2::Socket::from(std::os::fd::OwnedFd::from(a)), H).unwrap();
/// ```
///
/// ```
/// use std::io::{Read, Write};
/// use evnet::bytes::Bytes;
/// use evnet::bufio::{Conn, StreamEvent, StreamHandler, Stream};
/// use evnet::ev::{Ctx, Loop};
///
/// /// Echoes lines back upper-cased until "quit".
/// struct Shout;
/// impl StreamHandler<u32> for Shout {
///     fn read(&mut self, c: &Conn<u32>, line: Bytes, n: &mut u32, cx: &mut Ctx<u32>) {
///         *n += 1;
///         if &line[..] == b"quit" {
///             return c.close(cx); // flushes, then shuts down
///         }
///         c.write(cx, &line.to_ascii_uppercase());
///         c.write(cx, b"\n");
///         c.read_line(cx);
///     }
///     fn event(&mut self, c: &Conn<u32>, _e: StreamEvent, _n: &mut u32, cx: &mut Ctx<u32>) {
///         c.abort(cx);
///     }
/// }
///
/// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
/// let mut ev = Loop::<u32>::new()?;
/// let s = Stream::new(&mut ev, evnet::socket2::Socket::from(std::os::fd::OwnedFd::from(a)), Shout)?;
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
    pub(super) conn: Rc<Conn<S>>,
    pub(super) detached: bool,
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
            .field("input", &g.rd.input.len())
            .field("output", &g.wr.output.len())
            .field("request", &g.rd.req)
            .field("read", &g.rd.state)
            .field("write", &g.wr.state)
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
    pub fn new<H: StreamHandler<S>>(
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
    pub fn with_options<H: StreamHandler<S>>(
        cx: &mut Ctx<S>,
        socket: Socket,
        opts: Options,
        handler: H,
    ) -> io::Result<Stream<S>> {
        socket.set_nonblocking(true)?;
        // Where send(2) has no MSG_NOSIGNAL, a peer that went away must not raise SIGPIPE
        // on a socket the app made itself (socket2 already sets this on the ones it makes).
        #[cfg(target_vendor = "apple")]
        socket.set_nosigpipe(true)?;
        let fd = socket.as_raw_fd();
        let conn = Conn::build(cx, Link::Socket(socket), fd, opts, Box::new(handler));
        // The watchers hold the stream strongly: a detached stream lives as long as they
        // do, and removing them (close, drop of the handle, or the loop dropped) frees it.
        let c = conn.clone();
        let io = cx.io_raw(fd, IoInterest::READABLE, move |st, cx, e| {
            c.on_io(e.is_readable(), e.is_writable(), st, cx);
        });
        let io = match io {
            Ok(io) => io,
            Err(e) => {
                conn.teardown(Some(cx), false);
                return Err(e);
            }
        };
        conn.st.borrow_mut().ids.io = Some(io);
        Ok(Stream {
            conn,
            detached: false,
        })
    }

    /// A stream that connects to `target` (see [`socket::connect`](crate::socket::connect):
    /// names looked up by `resolver`, RFC 8305 fallback, stagger, timeout). Requests and
    /// writes may be issued at once; they take effect when the connection is up, announced
    /// by [`StreamEvent::Connected`]. A failed connect is an [`StreamEvent::Error`].
    /// Dropping the stream cancels the connect.
    pub fn connect<R: Resolve<S> + ?Sized, H: StreamHandler<S>>(
        cx: &mut Ctx<S>,
        resolver: &R,
        target: impl Into<Target>,
        copts: ConnectOptions,
        opts: Options,
        handler: H,
    ) -> Stream<S> {
        Stream::connecting(cx, opts, Box::new(handler), |cx, done| {
            socket::connect(cx, resolver, target, copts, done)
        })
    }

    /// A stream waiting for the connect that `start` begins (and that dropping it cancels).
    fn connecting(
        cx: &mut Ctx<S>,
        opts: Options,
        handler: Box<dyn StreamHandler<S>>,
        start: impl FnOnce(&mut Ctx<S>, OnConnected<S>) -> Connecting<S>,
    ) -> Stream<S> {
        let conn = Conn::build(cx, Link::Closed, -1, opts, handler);
        conn.st.borrow_mut().interest = IoInterest::NONE;
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
    /// [`FlushMode::Finished`](super::FlushMode::Finished) delivers end of stream to the partner after the data; dropping
    /// one side unlinks the other without an end of stream.
    pub fn pair<A: StreamHandler<S>, B: StreamHandler<S>>(
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
            c.st.borrow_mut().interest = IoInterest::NONE;
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
    /// filter one last time with [`FlushMode::Finished`](super::FlushMode::Finished) and closes `under` gracefully, so the
    /// bytes are flushed, not discarded.
    pub fn filter<F: Filter, H: StreamHandler<S>>(
        cx: &mut Ctx<S>,
        under: Stream<S>,
        filter: F,
        opts: Options,
        handler: H,
    ) -> Stream<S> {
        let fd = under.fd();
        let under_conn = under.conn.clone();
        let mut filtered = Filtered {
            under,
            handshake_pending: filter.handshaking(),
            filter: Box::new(filter),
            raw_in: BytesMut::new(),
            raw_out: BytesMut::new(),
            under_eof: false,
        };
        // A filter that speaks first (a TLS client's hello) does so now.
        filtered.flush_own(cx);
        let handshaking = filtered.handshake_pending;
        let link = Link::Filter(Box::new(filtered));
        let conn = Conn::build(cx, link, fd, opts, Box::new(handler));
        conn.st.borrow_mut().interest = IoInterest::NONE;
        if let (true, Some(t)) = (handshaking, opts.handshake_timeout) {
            conn.st.borrow_mut().handshake_deadline = Some(crate::ev::later(conn.clock(cx), t));
            conn.arm_timeouts(cx);
        }
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
    pub(super) fn build(
        cx: &mut Ctx<S>,
        link: Link<S>,
        fd: RawFd,
        opts: Options,
        handler: Box<dyn StreamHandler<S>>,
    ) -> Rc<Conn<S>> {
        let now = Instant::now();
        let remover = cx.remover();
        let conn = Rc::new_cyclic(|me| Conn {
            st: RefCell::new(State {
                link,
                fd,
                connecting: None,
                connected_due: false,
                opts: opts.sane(),
                rate: Rates::default(),
                rd: ReadSide {
                    input: BytesMut::new(),
                    scanned: 0,
                    req: None,
                    state: Reading::Open,
                    read_timed_out: false,
                    read_turn: 0,
                    last_read: now,
                    total_read: 0,
                },
                wr: WriteSide {
                    output: Output::default(),
                    state: Writing::Open,
                    backpressure: false,
                    write_cb_due: false,
                    write_timed_out: false,
                    written_turn: 0,
                    last_write: now,
                    total_written: 0,
                },
                ids: Watchers::default(),
                error: None,
                closing: false,
                close_deadline: None,
                close_done: None,
                handshake_deadline: None,
                interest: IoInterest::READABLE,
                turn: 0,
                now,
            }),
            handler: RefCell::new(Some(handler)),
            closed: Cell::new(false),
            in_dispatch: Cell::new(false),
            self_weak: me.clone(),
            remover,
        });
        let c = conn.clone();
        let kick = cx.timer(Duration::ZERO, None, move |st, cx, _| c.dispatch(st, cx));
        cx.stop(kick);
        conn.st.borrow_mut().ids.kick = Some(kick);
        conn.arm_timeouts(cx);
        conn
    }

    pub(super) fn on_connected(
        self: &Rc<Self>,
        r: io::Result<Connected>,
        st: &mut S,
        cx: &mut Ctx<S>,
    ) {
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
                let io = cx.io_raw(sock.as_raw_fd(), IoInterest::READABLE, move |st, cx, e| {
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
                g.ids.io = Some(io);
                g.interest = IoInterest::READABLE;
                g.connected_due = true;
            }
            Err(e) => self.st.borrow_mut().fail(Error::Io(e)),
        }
        self.dispatch(st, cx);
    }
}

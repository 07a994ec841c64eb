//! [`connect`]: connecting to an address list with fallback, RFC 8305 style.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket};

use super::bind::stream_socket;
use super::target::{Resolve, Resolved, Resolving, Target};
use crate::ev::{Ctx, IoInterest, Remover, WatcherId};

/// Where to connect: an IP address and port, or a Unix-domain socket path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// TCP over IPv4 or IPv6.
    Inet(SocketAddr),
    /// A Unix-domain stream socket.
    Unix(PathBuf),
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Endpoint {
        Endpoint::Inet(a)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Inet(a) => write!(f, "{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Connect timing: the delay before starting the next address while an attempt is still
/// pending, and the overall timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// RFC 8305's "connection attempt delay": 250 ms by default.
    pub stagger: Duration,
    /// Gives up with `TimedOut` after this long; `None` waits for the kernel (minutes).
    pub timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            stagger: Duration::from_millis(250),
            timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// A connected, non-blocking, close-on-exec socket and the endpoint that answered.
#[derive(Debug)]
pub struct Connected {
    /// The connection.
    pub socket: Socket,
    /// The endpoint it is connected to.
    pub peer: Endpoint,
}

type OnDone<S> = Box<dyn FnOnce(&mut S, &mut Ctx<S>, io::Result<Connected>)>;

struct Attempt {
    socket: Socket,
    watcher: WatcherId,
    peer: Endpoint,
}

struct Inner<S> {
    queue: VecDeque<Endpoint>,
    attempts: Vec<Attempt>,
    stagger_timer: Option<WatcherId>,
    deadline: Option<WatcherId>,
    resolving: Option<Resolving>,
    last_error: Option<io::Error>,
    on_done: Option<OnDone<S>>,
    opts: ConnectOptions,
}

/// A connection in progress (see [`connect`]). Dropping it before `on_done` ran cancels
/// the attempt: its sockets are closed and `on_done` never runs. To let it finish without
/// the handle, [`detach`](Connecting::detach) it.
#[must_use = "dropping a Connecting cancels it; call .detach() to let it finish"]
pub struct Connecting<S: 'static> {
    inner: Option<Rc<RefCell<Inner<S>>>>,
    remover: Remover<S>,
}

impl<S> std::fmt::Debug for Connecting<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("done", &self.is_done())
            .finish()
    }
}

impl<S> Connecting<S> {
    /// Whether `on_done` has run (or the attempt was cancelled).
    pub fn is_done(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|i| i.try_borrow().is_ok_and(|g| g.on_done.is_none()))
    }

    /// Lets the connection attempt run to its `on_done` without this handle.
    pub fn detach(mut self) {
        self.inner = None;
    }
}

impl<S: 'static> Drop for Connecting<S> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let Ok(mut g) = inner.try_borrow_mut() else {
            return;
        };
        g.on_done = None;
        g.resolving = None;
        let mut ws: Vec<WatcherId> = g.attempts.iter().map(|a| a.watcher).collect();
        ws.extend(g.stagger_timer.take());
        ws.extend(g.deadline.take());
        let socks: Vec<Socket> = g.attempts.drain(..).map(|a| a.socket).collect();
        g.queue.clear();
        self.remover.remove_then_drop(&ws, socks);
    }
}

/// Connects to `target` (its addresses looked up by `resolver` when it is a name), the
/// first address that answers, and calls `on_done` with the socket (or the last error) on
/// the loop. The timeout covers the lookup too.
///
/// Addresses are tried in an order that alternates IPv6 and IPv4 (starting with the family
/// of the first one given), RFC 8305 style: the next attempt starts when the previous one
/// fails, or after [`ConnectOptions::stagger`] if it is still pending. The first success
/// wins and the other attempts are closed. [`ConnectOptions::timeout`] bounds the whole
/// operation.
///
/// ```
/// use std::time::Duration;
/// use evnet::ev::Loop;
/// use evnet::socket::{connect, ConnectOptions, Endpoint, NoLookup};
///
/// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let good = server.local_addr()?;
/// // A port nobody listens on: refused at once, then the fallback answers.
/// let refused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
/// let mut ev = Loop::<Option<std::io::Result<Endpoint>>>::new()?;
/// let addresses = vec![Endpoint::from(refused), Endpoint::from(good)];
/// connect(&mut ev, &NoLookup, addresses, ConnectOptions::default(), |out, _cx, r| {
///     *out = Some(r.map(|c| c.peer))
/// })
/// .detach();
/// let mut out = None;
/// ev.run_until(&mut out, Duration::from_secs(5), |o| o.is_some())?;
/// assert_eq!(out.unwrap()?, Endpoint::Inet(good));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect<S: 'static, R, F>(
    cx: &mut Ctx<S>,
    resolver: &R,
    target: impl Into<Target>,
    opts: ConnectOptions,
    on_done: F,
) -> Connecting<S>
where
    R: Resolve<S> + ?Sized,
    F: FnOnce(&mut S, &mut Ctx<S>, io::Result<Connected>) + 'static,
{
    let inner = new_inner(opts, Box::new(on_done));
    arm_deadline(&inner, cx);
    match target.into() {
        Target::Endpoints(endpoints) => {
            inner.borrow_mut().queue = interleave(endpoints);
            start_next(&inner, cx);
            if inner.borrow().attempts.is_empty() {
                // Every address failed at once (or there were none).
                drive_next_turn(&inner, cx);
            }
        }
        named => look_up(&inner, cx, resolver, &named),
    }
    Connecting {
        inner: Some(inner),
        remover: cx.remover(),
    }
}

/// Asks `resolver` for `target`'s addresses; connecting starts when they come.
fn look_up<S: 'static, R: Resolve<S> + ?Sized>(
    inner: &Rc<RefCell<Inner<S>>>,
    cx: &mut Ctx<S>,
    resolver: &R,
    target: &Target,
) {
    let me = inner.clone();
    let done: Resolved<S> = Box::new(move |st, cx, r| {
        let inner = me;
        inner.borrow_mut().resolving = None;
        match r {
            Ok(addrs) => {
                let eps = addrs.into_iter().map(Endpoint::Inet).collect();
                inner.borrow_mut().queue = interleave(eps);
                start_next(&inner, cx);
                drive(&inner, st, cx);
            }
            Err(e) => finish(&inner, st, cx, Err(e)),
        }
    });
    let started = match target {
        Target::Host(host, port) => resolver.resolve(cx, host, *port, done),
        Target::Service {
            service,
            proto,
            domain,
        } => resolver.resolve_service(cx, service, proto, domain, done),
        Target::Mail(domain) => resolver.resolve_mail(cx, domain, done),
        // Addresses are connected to without a lookup (see `connect`).
        Target::Endpoints(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "addresses need no lookup",
        )),
    };
    match started {
        Ok(guard) => inner.borrow_mut().resolving = Some(guard),
        Err(e) => {
            inner.borrow_mut().last_error = Some(e);
            drive_next_turn(inner, cx);
        }
    }
}

fn new_inner<S>(opts: ConnectOptions, on_done: OnDone<S>) -> Rc<RefCell<Inner<S>>> {
    Rc::new(RefCell::new(Inner {
        queue: VecDeque::new(),
        attempts: Vec::new(),
        stagger_timer: None,
        deadline: None,
        resolving: None,
        last_error: None,
        on_done: Some(on_done),
        opts,
    }))
}

fn arm_deadline<S: 'static>(inner: &Rc<RefCell<Inner<S>>>, cx: &mut Ctx<S>) {
    let Some(limit) = inner.borrow().opts.timeout else {
        return;
    };
    let me = inner.clone();
    let t = cx.timer(limit, None, move |st, cx, _| {
        me.borrow_mut().deadline = None;
        let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        finish(&me, st, cx, Err(e));
    });
    inner.borrow_mut().deadline = Some(t);
}

/// IPv6 and IPv4 alternate, starting with the first endpoint's family; Unix paths keep
/// their place among them.
fn interleave(eps: Vec<Endpoint>) -> VecDeque<Endpoint> {
    let first_v6 = matches!(eps.first(), Some(Endpoint::Inet(a)) if a.is_ipv6());
    let (mut a, mut b): (VecDeque<_>, VecDeque<_>) = eps
        .into_iter()
        .partition(|e| matches!(e, Endpoint::Inet(x) if x.is_ipv6()) == first_v6);
    let mut out = VecDeque::with_capacity(a.len() + b.len());
    loop {
        match (a.pop_front(), b.pop_front()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// Starts attempts until one is pending or the queue is empty. Immediate results (a Unix
/// connect) are recorded for [`drive`].
fn start_next<S: 'static>(inner: &Rc<RefCell<Inner<S>>>, cx: &mut Ctx<S>) {
    loop {
        let Some(ep) = inner.borrow_mut().queue.pop_front() else {
            return;
        };
        match begin(&ep) {
            Ok((socket, true)) => {
                // Connected at once: park it as a finished attempt on a dummy watcher-less
                // path by making it writable-ready; the io watcher fires on the next turn.
                add_attempt(inner, cx, socket, ep);
                return;
            }
            Ok((socket, false)) => {
                add_attempt(inner, cx, socket, ep);
                arm_stagger(inner, cx);
                return;
            }
            Err(e) => {
                inner.borrow_mut().last_error = Some(annotate(e, &ep));
            }
        }
    }
}

fn annotate(e: io::Error, ep: &Endpoint) -> io::Error {
    io::Error::new(e.kind(), format!("connect {ep}: {e}"))
}

/// Creates a socket and starts connecting; `true` if already connected.
fn begin(ep: &Endpoint) -> io::Result<(Socket, bool)> {
    let (socket, addr) = match ep {
        Endpoint::Inet(a) => (stream_socket(a)?, SockAddr::from(*a)),
        Endpoint::Unix(p) => (
            super::bind::nonblocking_stream(Domain::UNIX)?,
            SockAddr::unix(p)?,
        ),
    };
    match socket.connect(&addr) {
        Ok(()) => Ok((socket, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((socket, false)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok((socket, false)),
        Err(e) => Err(e),
    }
}

fn add_attempt<S: 'static>(
    inner: &Rc<RefCell<Inner<S>>>,
    cx: &mut Ctx<S>,
    socket: Socket,
    peer: Endpoint,
) {
    // Watchers hold the state strongly: a detached attempt lives as long as they do, and
    // removing them (cancel, finish, or the loop dropped) frees it.
    let me = inner.clone();
    let fd = socket.as_raw_fd();
    let Ok(w) = cx.io_raw(fd, IoInterest::WRITABLE, move |st, cx, e| {
        settle(&me, e.watcher(), st, cx);
    }) else {
        return; // cannot happen: a `Socket`'s fd is never negative
    };
    inner.borrow_mut().attempts.push(Attempt {
        socket,
        watcher: w,
        peer,
    });
}

fn arm_stagger<S: 'static>(inner: &Rc<RefCell<Inner<S>>>, cx: &mut Ctx<S>) {
    if inner.borrow().queue.is_empty() {
        return;
    }
    let stagger = inner.borrow().opts.stagger;
    let me = inner.clone();
    let t = cx.timer(stagger, None, move |st, cx, _| {
        me.borrow_mut().stagger_timer = None;
        start_next(&me, cx);
        drive(&me, st, cx);
    });
    if let Some(old) = inner.borrow_mut().stagger_timer.replace(t) {
        cx.remove(old);
    }
}

/// An attempt's socket became writable: connected, or failed.
fn settle<S: 'static>(inner: &Rc<RefCell<Inner<S>>>, w: WatcherId, st: &mut S, cx: &mut Ctx<S>) {
    let attempt = {
        let mut g = inner.borrow_mut();
        let Some(i) = g.attempts.iter().position(|a| a.watcher == w) else {
            return;
        };
        g.attempts.swap_remove(i)
    };
    cx.remove(attempt.watcher);
    let err = match attempt.socket.take_error() {
        Ok(None) => attempt.socket.peer_addr().err(),
        Ok(Some(e)) | Err(e) => Some(e),
    };
    match err {
        None => {
            let c = Connected {
                socket: attempt.socket,
                peer: attempt.peer,
            };
            finish(inner, st, cx, Ok(c));
        }
        Some(e) => {
            inner.borrow_mut().last_error = Some(annotate(e, &attempt.peer));
            drop(attempt.socket);
            // A failure starts the next address at once, without waiting for the stagger.
            start_next(inner, cx);
            drive(inner, st, cx);
        }
    }
}

/// Runs [`drive`] on the next turn, so an outcome known at once is still reported from a
/// callback, like any other. The timer is the stagger timer's slot: cancelling removes it.
fn drive_next_turn<S: 'static>(inner: &Rc<RefCell<Inner<S>>>, cx: &mut Ctx<S>) {
    let me = inner.clone();
    let t = cx.timer(Duration::ZERO, None, move |st, cx, e| {
        cx.remove(e.watcher());
        drive(&me, st, cx);
    });
    inner.borrow_mut().stagger_timer = Some(t);
}

/// Ends the operation if nothing is left to try.
fn drive<S: 'static>(inner: &Rc<RefCell<Inner<S>>>, st: &mut S, cx: &mut Ctx<S>) {
    let exhausted = {
        let g = inner.borrow();
        g.attempts.is_empty() && g.queue.is_empty() && g.resolving.is_none()
    };
    if exhausted {
        let e = inner.borrow_mut().last_error.take().unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no addresses to connect to")
        });
        finish(inner, st, cx, Err(e));
    }
}

fn finish<S: 'static>(
    inner: &Rc<RefCell<Inner<S>>>,
    st: &mut S,
    cx: &mut Ctx<S>,
    r: io::Result<Connected>,
) {
    let (cb, attempts, timers) = {
        let mut g = inner.borrow_mut();
        let Some(cb) = g.on_done.take() else { return };
        g.queue.clear();
        g.resolving = None;
        let timers: Vec<WatcherId> = g
            .stagger_timer
            .take()
            .into_iter()
            .chain(g.deadline.take())
            .collect();
        (cb, std::mem::take(&mut g.attempts), timers)
    };
    for a in attempts {
        cx.remove(a.watcher); // the losers: removed, then closed
    }
    for t in timers {
        cx.remove(t);
    }
    cb(st, cx, r);
}

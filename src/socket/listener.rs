//! [`Listener`]: accepting connections on the loop, a bounded batch per turn.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use socket2::{SockAddr, Socket};

use crate::ev::{Ctx, IoInterest, Remover, WatcherId};

/// Connections accepted per listening socket per loop turn unless told otherwise.
pub const DEFAULT_ACCEPT_BATCH: usize = 64;

/// How long accepting pauses when the process or system is out of file descriptors or
/// memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`); a level-triggered listener would
/// otherwise spin on the pending connection.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One accepted connection: a non-blocking, close-on-exec socket and the peer's address.
#[derive(Debug)]
pub struct Accepted {
    /// The connection.
    pub socket: Socket,
    /// The peer's address (for Unix sockets usually unnamed).
    pub peer: SockAddr,
}

/// What a [`Listener`]'s callback receives.
#[derive(Debug)]
#[non_exhaustive]
pub enum Accept {
    /// A new connection.
    Conn(Accepted),
    /// Accepting failed in a way worth knowing (out of fds or memory); the listener pauses
    /// for 100 ms and resumes by itself. Transient per-connection errors
    /// (`ECONNABORTED`, `EINTR`, a peer gone before accept) are skipped silently.
    Error(io::Error),
}

type OnAccept<S> = Box<dyn FnMut(&mut S, &mut Ctx<S>, Accept)>;

struct Inner<S> {
    sockets: Vec<Socket>,
    watchers: Vec<WatcherId>,
    backoff: Option<WatcherId>,
    batch: usize,
    on_accept: Option<OnAccept<S>>,
}

/// Listening sockets on a loop: every readable turn accepts up to a batch of connections
/// per socket (default [`DEFAULT_ACCEPT_BATCH`]) and hands each to the callback, so a
/// connection storm cannot starve the loop's other watchers.
///
/// Dropping the handle stops accepting and closes the sockets (at the start of the next
/// turn); no callback runs after the drop.
///
/// ```
/// use evnet::ev::Loop;
/// use evnet::socket::{bind_tcp_all, Accept, Listener};
///
/// let mut ev = Loop::<usize>::new()?;
/// let socks = bind_tcp_all(Some("127.0.0.1"), 0)?;
/// let addr = socks[0].local_addr()?.as_socket().unwrap();
/// let _l = Listener::new(&mut ev, socks, |n: &mut usize, _cx, a| {
///     if let Accept::Conn(_c) = a { *n += 1 }
/// });
/// let _peer = std::net::TcpStream::connect(addr)?;
/// let mut n = 0;
/// ev.run_until(&mut n, std::time::Duration::from_secs(5), |n| *n == 1)?;
/// assert_eq!(n, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a Listener stops accepting and closes its sockets; keep it while it should accept"]
pub struct Listener<S> {
    inner: Rc<RefCell<Inner<S>>>,
    remover: Remover<S>,
}

impl<S> std::fmt::Debug for Listener<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("sockets", &self.inner.borrow().sockets.len())
            .finish()
    }
}

impl<S: 'static> Listener<S> {
    /// Starts accepting on `sockets` (already listening and non-blocking, e.g. from
    /// [`bind_tcp_all`](super::bind_tcp_all) or [`bind_unix`](super::bind_unix)).
    pub fn new<F>(cx: &mut Ctx<S>, sockets: Vec<Socket>, on_accept: F) -> Listener<S>
    where
        F: FnMut(&mut S, &mut Ctx<S>, Accept) + 'static,
    {
        Listener::with_batch(cx, sockets, DEFAULT_ACCEPT_BATCH, on_accept)
    }

    /// As [`new`](Listener::new), accepting at most `batch` (≥ 1) connections per socket
    /// per turn.
    pub fn with_batch<F>(
        cx: &mut Ctx<S>,
        sockets: Vec<Socket>,
        batch: usize,
        on_accept: F,
    ) -> Listener<S>
    where
        F: FnMut(&mut S, &mut Ctx<S>, Accept) + 'static,
    {
        let inner = Rc::new(RefCell::new(Inner {
            sockets: Vec::new(),
            watchers: Vec::new(),
            backoff: None,
            batch: batch.max(1),
            on_accept: Some(Box::new(on_accept)),
        }));
        for (i, s) in sockets.into_iter().enumerate() {
            let weak = Rc::downgrade(&inner);
            let Ok(w) = cx.io_raw(s.as_raw_fd(), IoInterest::READABLE, move |st, cx, _e| {
                if let Some(inner) = weak.upgrade() {
                    accept_batch(&inner, i, st, cx);
                }
            }) else {
                continue; // cannot happen: a `Socket`'s fd is never negative
            };
            let mut g = inner.borrow_mut();
            g.sockets.push(s);
            g.watchers.push(w);
        }
        Listener {
            inner,
            remover: cx.remover(),
        }
    }

    /// The local addresses listened on.
    pub fn local_addrs(&self) -> Vec<SockAddr> {
        let g = self.inner.borrow();
        g.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

impl<S> Drop for Listener<S> {
    fn drop(&mut self) {
        let Ok(mut g) = self.inner.try_borrow_mut() else {
            return;
        };
        // No callback after this point, even later in this turn.
        g.on_accept = None;
        let mut ws = std::mem::take(&mut g.watchers);
        ws.extend(g.backoff.take());
        let socks = std::mem::take(&mut g.sockets);
        self.remover.remove_then_drop(&ws, socks);
    }
}

fn accept_batch<S: 'static>(inner: &Rc<RefCell<Inner<S>>>, i: usize, st: &mut S, cx: &mut Ctx<S>) {
    let batch = inner.borrow().batch;
    for _ in 0..batch {
        let r = {
            let g = inner.borrow();
            match g.sockets.get(i) {
                Some(s) => s.accept(),
                None => return,
            }
        };
        let event = match r {
            Ok((socket, peer)) => match socket.set_nonblocking(true) {
                Ok(()) => Accept::Conn(Accepted { socket, peer }),
                Err(_) => continue, // the connection is dropped; nothing to report on
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if is_resource_exhaustion(&e) => {
                pause(inner, cx);
                Accept::Error(e)
            }
            // ECONNABORTED, EINTR, EPROTO, a peer that left: skip it.
            Err(_) => continue,
        };
        let stop = matches!(event, Accept::Error(_));
        // Run the callback with nothing borrowed: it may drop this listener.
        let Some(mut cb) = inner.borrow_mut().on_accept.take() else {
            return;
        };
        cb(st, cx, event);
        let mut g = inner.borrow_mut();
        if g.on_accept.is_none() && !g.watchers.is_empty() {
            g.on_accept = Some(cb);
        } else {
            return; // dropped meanwhile
        }
        if stop {
            return;
        }
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn pause<S: 'static>(inner: &Rc<RefCell<Inner<S>>>, cx: &mut Ctx<S>) {
    let ws = inner.borrow().watchers.clone();
    for w in &ws {
        cx.stop(*w);
    }
    let weak = Rc::downgrade(inner);
    let t = cx.timer(ACCEPT_BACKOFF, None, move |_st, cx, e| {
        cx.remove(e.watcher());
        if let Some(inner) = weak.upgrade() {
            let mut g = inner.borrow_mut();
            g.backoff = None;
            for w in &g.watchers {
                cx.start(*w);
            }
        }
    });
    if let Some(old) = inner.borrow_mut().backoff.replace(t) {
        cx.remove(old);
    }
}

//! Where the relay client hands each message: `--forward` in one of three forms.
//!
//! | form | transport | when the receiver is slower |
//! |---|---|---|
//! | `HOST:PORT` | UDP, one datagram per message | the kernel drops at the receiver's socket (a syslog daemon's default receive buffer holds about 1,000 lines) |
//! | `unix:PATH` | Unix datagram socket (what `/dev/log` is) | `EAGAIN`/`ENOBUFS`: the message waits, the socket is watched for room; nothing is dropped |
//! | `tcp:HOST:PORT` | TCP, RFC 6587 octet counting (`LEN SP MSG`) | TCP pushes back; while the receiver is down, messages are queued and the connection is made again after a backoff |
//!
//! With the two reliable forms, a queue that reaches its bound (`--queue-messages`,
//! `--queue-bytes`: the server's per-client bounds) stops the client reading from the
//! relay, so the relay's own per-client queue takes the rest: the local hop never drops.
//! Messages the TCP connection had taken when it broke are lost with it, as with any
//! plain-TCP syslog (RELP would be needed to know).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::rc::Rc;
use std::str::FromStr;
use std::time::Duration;

use evnet::bufio::{Conn, Options, Stream, StreamEvent, StreamHandler};
use evnet::bytes::Bytes;
use evnet::ev::{Ctx, IoInterest, WatcherId};
use evnet::socket::{ConnectOptions, Endpoint, NoLookup};

/// `--forward`'s three forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardTo {
    Udp(String),
    Unix(PathBuf),
    Tcp(String),
}

/// Which of the three a target is (a copy, for matching without borrowing the target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Udp,
    Unix,
    Tcp,
}

impl ForwardTo {
    fn form(&self) -> Form {
        match self {
            ForwardTo::Udp(_) => Form::Udp,
            ForwardTo::Unix(_) => Form::Unix,
            ForwardTo::Tcp(_) => Form::Tcp,
        }
    }
}

impl FromStr for ForwardTo {
    type Err = String;

    fn from_str(s: &str) -> Result<ForwardTo, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix:PATH needs a path".into());
            }
            return Ok(ForwardTo::Unix(PathBuf::from(path)));
        }
        let (form, hostport) = match s.strip_prefix("tcp:") {
            Some(rest) => ("tcp", rest),
            None => ("udp", s.strip_prefix("udp:").unwrap_or(s)),
        };
        if hostport
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!("{s}: HOST:PORT, unix:PATH or tcp:HOST:PORT"));
        }
        Ok(match form {
            "tcp" => ForwardTo::Tcp(hostport.to_owned()),
            _ => ForwardTo::Udp(hostport.to_owned()),
        })
    }
}

/// The state a forwarder lives in: it reaches its forwarder, and tells it to read from
/// the relay again once the queue has room.
pub trait Forwarding: Sized + 'static {
    fn forwarder(&mut self) -> &mut Forwarder<Self>;
    fn resume_reading(&mut self, cx: &mut Ctx<Self>);
    fn log(&self, what: std::fmt::Arguments<'_>);
}

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Hands messages to the forward target; see the module docs.
pub struct Forwarder<S: 'static> {
    to: ForwardTo,
    udp: Option<UdpSocket>,
    unix: Option<Rc<UnixDatagram>>,
    /// TCP: the connection (connecting or up), and whether it is up.
    tcp: Option<Stream<S>>,
    tcp_up: bool,
    /// Messages not handed over yet (unix: waiting for room; tcp: waiting for the
    /// connection), and their bytes.
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// The io watcher waiting for room on the unix socket, or the timer of the next try.
    waiting: Option<WatcherId>,
    backoff: Duration,
    /// Messages handed to the target (UDP: sent; unix: taken by the socket; tcp: written
    /// to the connection), skipped (unix: too big for a datagram), and TCP connections made.
    pub sent: u64,
    pub skipped: u64,
    pub connections: u64,
}

impl<S: Forwarding> Forwarder<S> {
    /// A forwarder to `to`, queueing at most `max_messages` / `max_bytes`. UDP sockets are
    /// bound to the unspecified address of the target's family (any route, IPv6 too).
    pub fn new(to: ForwardTo, max_messages: usize, max_bytes: usize) -> io::Result<Forwarder<S>> {
        let mut f = Forwarder {
            to: to.clone(),
            udp: None,
            unix: None,
            tcp: None,
            tcp_up: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            max_messages,
            max_bytes,
            waiting: None,
            backoff: BACKOFF_MIN,
            sent: 0,
            skipped: 0,
            connections: 0,
        };
        match to {
            ForwardTo::Udp(hostport) => {
                let addr: SocketAddr = hostport.to_socket_addrs()?.next().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{hostport}: no address"))
                })?;
                let any: SocketAddr = if addr.is_ipv6() {
                    "[::]:0".parse().expect("literal")
                } else {
                    "0.0.0.0:0".parse().expect("literal")
                };
                let udp = UdpSocket::bind(any)?;
                udp.connect(addr)?;
                f.udp = Some(udp);
            }
            ForwardTo::Unix(_) => {
                let sock = UnixDatagram::unbound()?;
                sock.set_nonblocking(true)?;
                f.unix = Some(Rc::new(sock));
            }
            ForwardTo::Tcp(_) => {}
        }
        Ok(f)
    }

    /// Whether the queue is at its bound: stop reading from the relay until
    /// [`Forwarding::resume_reading`] is called.
    pub fn is_full(&self) -> bool {
        let tcp_out = self.tcp.as_ref().map_or(0, |s| s.output_len());
        self.queue.len() >= self.max_messages || self.queued_bytes + tcp_out >= self.max_bytes
    }

    /// Messages waiting (for tests and the stats line).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn push(&mut self, msg: Bytes) {
        self.queued_bytes += msg.len();
        self.queue.push_back(msg);
    }
}

/// Hands `msg` to `st`'s forwarder (or queues it).
pub fn send<S: Forwarding>(st: &mut S, cx: &mut Ctx<S>, msg: Bytes) {
    let f = st.forwarder();
    match f.to.form() {
        Form::Udp => {
            if let Some(u) = &f.udp {
                f.sent += u64::from(u.send(&msg).is_ok());
            }
        }
        Form::Unix => {
            f.push(msg);
            if f.waiting.is_none() {
                flush_unix(st, cx);
            }
        }
        Form::Tcp => {
            if f.tcp_up {
                if let Some(s) = &f.tcp {
                    s.write_bytes(cx, frame(&msg));
                    f.sent += 1;
                }
            } else {
                f.push(msg);
                if f.tcp.is_none() && f.waiting.is_none() {
                    connect_tcp(st, cx);
                }
            }
        }
    }
}

/// RFC 6587 octet counting: `LEN SP MSG`.
fn frame(msg: &[u8]) -> Bytes {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg);
    Bytes::from(out)
}

/// Sends what the unix queue holds until the socket has no room; then waits for room
/// (or, when nobody listens at the path, tries again after a backoff).
fn flush_unix<S: Forwarding>(st: &mut S, cx: &mut Ctx<S>) {
    let was_full = st.forwarder().is_full();
    let f = st.forwarder();
    let ForwardTo::Unix(path) = f.to.clone() else {
        return;
    };
    let Some(sock) = f.unix.clone() else { return };
    let mut wait_room = false;
    let mut retry = None;
    while let Some(msg) = f.queue.front() {
        match sock.send_to(msg, &path) {
            Ok(_) => {
                f.sent += 1;
                f.backoff = BACKOFF_MIN;
                f.queued_bytes -= msg.len();
                f.queue.pop_front();
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                wait_room = true;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                // Never deliverable: said, and skipped (the one case a message goes).
                let n = msg.len();
                f.skipped += 1;
                f.queued_bytes -= n;
                f.queue.pop_front();
                st.log(format_args!(
                    "{}: a {n}-byte message is too big for it; skipped",
                    path.display()
                ));
                return flush_unix(st, cx);
            }
            Err(e) => {
                // Nobody at the path (ENOENT, ECONNREFUSED): the daemon is down or
                // restarting. Keep everything, try again after the backoff.
                retry = Some(e);
                break;
            }
        }
    }
    let f = st.forwarder();
    if wait_room {
        let w = cx.io(sock, IoInterest::WRITABLE, |st: &mut S, cx, _| {
            if let Some(w) = st.forwarder().waiting.take() {
                cx.remove(w);
            }
            flush_unix(st, cx);
        });
        f.waiting = Some(w);
    }
    if let Some(e) = retry {
        let delay = f.backoff;
        f.backoff = (f.backoff * 2).min(BACKOFF_MAX);
        let t = cx.timer(delay, None, |st: &mut S, cx, _| {
            st.forwarder().waiting = None;
            flush_unix(st, cx);
        });
        f.waiting = Some(t);
        let queued = f.queued();
        st.log(format_args!(
            "{}: {e}; {queued} queued, trying again in {delay:?}",
            path.display()
        ));
    }
    if was_full && !st.forwarder().is_full() {
        st.resume_reading(cx);
    }
}

/// Connects to the TCP target; queued messages go once it is up.
fn connect_tcp<S: Forwarding>(st: &mut S, cx: &mut Ctx<S>) {
    let f = st.forwarder();
    let ForwardTo::Tcp(hostport) = f.to.clone() else {
        return;
    };
    let endpoints: Vec<Endpoint> = match hostport.to_socket_addrs() {
        Ok(a) => a.map(Endpoint::from).collect(),
        Err(e) => {
            st.log(format_args!("forward {hostport}: {e}"));
            return tcp_down(st, cx);
        }
    };
    let copts = ConnectOptions {
        timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    };
    let opts = Options {
        max_write: 64 * 1024,
        write_low: 0,
        write_high: f.max_bytes,
        ..Options::default()
    };
    let s = Stream::connect(cx, &NoLookup, endpoints, copts, opts, TcpForward);
    s.read_chunk(cx); // to see the end: a syslog daemon sends nothing
    f.tcp = Some(s);
}

/// The TCP connection is gone (or never came): try again after the backoff.
fn tcp_down<S: Forwarding>(st: &mut S, cx: &mut Ctx<S>) {
    let f = st.forwarder();
    if let Some(s) = f.tcp.take() {
        s.detach();
    }
    f.tcp_up = false;
    let delay = f.backoff;
    f.backoff = (f.backoff * 2).min(BACKOFF_MAX);
    let t = cx.timer(delay, None, |st: &mut S, cx, _| {
        st.forwarder().waiting = None;
        connect_tcp(st, cx);
    });
    f.waiting = Some(t);
}

/// The TCP forward connection's handler.
struct TcpForward;

impl<S: Forwarding> StreamHandler<S> for TcpForward {
    fn read(&mut self, c: &Conn<S>, _: Bytes, _: &mut S, cx: &mut Ctx<S>) {
        c.read_chunk(cx); // whatever the daemon says is ignored
    }

    fn write(&mut self, _: &Conn<S>, st: &mut S, cx: &mut Ctx<S>) {
        // Drained to the low watermark: room again.
        if !st.forwarder().is_full() {
            st.resume_reading(cx);
        }
    }

    fn event(&mut self, c: &Conn<S>, e: StreamEvent, st: &mut S, cx: &mut Ctx<S>) {
        if let StreamEvent::Connected = e {
            let f = st.forwarder();
            f.tcp_up = true;
            f.backoff = BACKOFF_MIN;
            f.connections += 1;
            let queued: Vec<Bytes> = f.queue.drain(..).collect();
            f.queued_bytes = 0;
            f.sent += queued.len() as u64;
            for m in queued {
                c.write_bytes(cx, frame(&m));
            }
            st.log(format_args!("forward connected"));
            return;
        }
        st.log(format_args!("forward connection ended: {e}"));
        c.abort(cx);
        tcp_down(st, cx);
    }
}

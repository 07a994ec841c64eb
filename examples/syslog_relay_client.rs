//! The relay's client (see `syslog_relay_server`): connects over TLS with a client
//! certificate, forwards every message it receives to a local syslog, and reconnects
//! forever: connect and handshake timeouts, a full-jitter backoff (a random delay up to
//! 0.5 s, the window doubling to 30 s; `syslog_relay/backoff.rs`), reset
//! after a session that lasted. SIGINT/SIGTERM: close_notify, exit 0.
//!
//! `--forward` takes three forms (`syslog_relay/forward.rs` has the details):
//! `HOST:PORT` (UDP, one datagram per message; a receiver slower than a burst loses what
//! its socket buffer cannot hold), `unix:PATH` (a Unix datagram socket such as `/dev/log`:
//! nothing dropped, the client waits for room) and `tcp:HOST:PORT` (RFC 6587 octet
//! counting, reconnecting, queued while down). With the last two, a full queue
//! (`--queue-messages`, `--queue-bytes`) stops the client reading from the relay, whose
//! own per-client queue then holds the rest.
//!
//! Try: `cargo run --example syslog_relay_client -- --server 127.0.0.1:6514 --cert c.pem
//! --key c.key --ca ca.pem --servername relay.test --forward unix:/dev/log`.

#[macro_use]
#[path = "util/out.rs"]
mod out;
#[path = "syslog_relay/backoff.rs"]
mod backoff;
#[path = "syslog_relay/forward.rs"]
mod forward;
#[path = "util/octet.rs"]
mod octet;
#[path = "syslog_relay/resume.rs"]
mod resume;

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backoff::Backoff;
use clap::{Parser, ValueEnum};
use evnet::bufio::{Closed, Conn, Options, Stream, StreamEvent, StreamHandler};
use evnet::bytes::{Bytes, BytesMut};
use evnet::ev::{Ctx, Loop, WatcherId};
use evnet::socket::{ConnectOptions, Endpoint, NoLookup};
use evnet::tls::{self, ClientPem, Session, TlsConnector};
use forward::{ForwardTo, Forwarder, Forwarding};

#[derive(Parser)]
#[command(about = "Receives the relay's syslog over TLS and forwards it to a local syslog")]
struct Args {
    /// The relay, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:6514")]
    server: String,
    #[arg(long)]
    cert: String,
    #[arg(long)]
    key: String,
    /// CA the server's certificate must chain to.
    #[arg(long)]
    ca: String,
    /// Name to expect in the server's certificate (default: the host of --server).
    #[arg(long)]
    servername: Option<String>,
    /// Where each message goes: HOST:PORT (UDP), unix:PATH (Unix datagram, e.g.
    /// unix:/dev/log; never drops) or tcp:HOST:PORT (RFC 6587 octet counting).
    #[arg(long, default_value = "127.0.0.1:514")]
    forward: ForwardTo,
    /// Most messages waiting for the forward target (unix: and tcp:) before the client
    /// stops reading from the relay.
    #[arg(long, default_value_t = 10_000)]
    queue_messages: usize,
    /// Most bytes waiting for the forward target (unix: and tcp:).
    #[arg(long, default_value_t = 4 << 20)]
    queue_bytes: usize,
    #[arg(long, value_enum, default_value = "line")]
    framing: Framing,
    /// Resume after a reconnect or a restart: the last sequence forwarded is kept in this
    /// file, and the server (started with --replay-messages) sends what came meanwhile.
    #[arg(long)]
    state: Option<std::path::PathBuf>,
    /// Seconds between stats lines on stderr (0: none; SIGUSR1 writes one at any time):
    /// messages in from the relay, forwarded, queued for the target, skipped (too big for
    /// a datagram), sessions with the relay, TCP connections to the target.
    #[arg(long, default_value_t = 60)]
    stats_interval: u64,
    /// Seconds for the TCP connect, and again for the TLS handshake.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Framing {
    Line,
    Octet,
}

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the backoff.
const LASTED: Duration = Duration::from_secs(10);
/// Largest octet-counted message accepted.
const MAX_MESSAGE: usize = 64 * 1024;

struct App {
    args: Args,
    config: Arc<rustls::ClientConfig>,
    fwd: Forwarder<App>,
    /// Reading from the relay is paused: the forward queue is full.
    paused: bool,
    /// The resume protocol's state (with `--state`).
    resume: Option<resume::Resume>,
    /// Messages received from the relay, and sessions with it.
    received: u64,
    sessions: u64,
    stream: Option<Stream<App>>,
    connected_at: Option<Instant>,
    backoff: Backoff,
    retry: Option<WatcherId>,
    stopping: bool,
}

fn log(what: std::fmt::Arguments<'_>) {
    eprintln!("syslog-relay-client: {what}");
}

impl Forwarding for App {
    fn forwarder(&mut self) -> &mut Forwarder<App> {
        &mut self.fwd
    }

    fn resume_reading(&mut self, cx: &mut Ctx<App>) {
        if !std::mem::take(&mut self.paused) {
            return;
        }
        if let Some(s) = &self.stream {
            match (&self.resume, self.args.framing) {
                (None, Framing::Line) => s.read_line(cx),
                _ => s.read_chunk(cx),
            }
        }
    }

    fn log(&self, what: std::fmt::Arguments<'_>) {
        log(what);
    }
}

/// Asks for the next message from the relay, unless the forward queue is full (then
/// [`Forwarding::resume_reading`] asks once it has room).
fn read_next(c: &Conn<App>, app: &mut App, cx: &mut Ctx<App>) {
    if app.fwd.is_full() {
        app.paused = true;
        c.request(cx, None);
        return;
    }
    match (&app.resume, app.args.framing) {
        (None, Framing::Line) => c.read_line(cx),
        _ => c.read_chunk(cx),
    }
}

/// The plain stream's handler until TLS takes it over.
struct Nothing;
impl StreamHandler<App> for Nothing {
    fn read(&mut self, _: &Conn<App>, _: Bytes, _: &mut App, _: &mut Ctx<App>) {}
    fn event(&mut self, _: &Conn<App>, _: StreamEvent, _: &mut App, _: &mut Ctx<App>) {}
}

/// Forwards messages; octet-counted frames are cut out of `pending`.
struct Forward {
    pending: BytesMut,
}

impl Forward {
    fn octet_frames(&mut self, app: &mut App, cx: &mut Ctx<App>) -> Result<(), &'static str> {
        while let Some(msg) = octet::next_frame(&mut self.pending, MAX_MESSAGE)? {
            app.received += 1;
            forward::send(app, cx, msg.freeze());
        }
        Ok(())
    }
}

impl Forward {
    /// With the resume protocol: the server's answer, then `<seq> <len> <msg>` frames.
    fn resume_frames(&mut self, app: &mut App, cx: &mut Ctx<App>) -> Result<(), &'static str> {
        let Some(r) = &mut app.resume else {
            return Ok(());
        };
        if r.awaiting {
            match r.answer(&mut self.pending)? {
                None => return Ok(()),
                Some(resume::Answer::Resumed(missed)) => {
                    log(format_args!("resumed after {} ({missed} missed)", r.last));
                }
                Some(resume::Answer::Plain) => {
                    log(format_args!(
                        "the server does not resume (no --replay-messages)"
                    ));
                    app.resume = None;
                    return self.plain_frames(app, cx);
                }
            }
        }
        while let Some((seq, msg)) = resume::next_frame(&mut self.pending, MAX_MESSAGE)? {
            let Some(r) = &app.resume else { break };
            if r.seen(seq) {
                continue;
            }
            app.received += 1;
            forward::send(app, cx, msg.freeze());
            if let Some(r) = &mut app.resume {
                if let Err(e) = r.record(seq) {
                    log(format_args!("--state: {e}"));
                }
            }
        }
        Ok(())
    }

    /// What is pending, in the configured framing (a server that did not resume).
    fn plain_frames(&mut self, app: &mut App, cx: &mut Ctx<App>) -> Result<(), &'static str> {
        match app.args.framing {
            Framing::Octet => self.octet_frames(app, cx),
            Framing::Line => {
                while let Some(lf) = self.pending.iter().position(|&b| b == b'\n') {
                    let line = self.pending.split_to(lf + 1);
                    app.received += 1;
                    forward::send(app, cx, line.freeze());
                }
                Ok(())
            }
        }
    }
}

impl StreamHandler<App> for Forward {
    fn read(&mut self, c: &Conn<App>, data: Bytes, app: &mut App, cx: &mut Ctx<App>) {
        if app.resume.is_some() {
            self.pending.extend_from_slice(&data);
            if let Err(e) = self.resume_frames(app, cx) {
                log(format_args!("bad frame from the server: {e}"));
                c.abort(cx);
                return ended(app, cx);
            }
            return read_next(c, app, cx);
        }
        match app.args.framing {
            Framing::Line => {
                app.received += 1;
                forward::send(app, cx, data)
            }
            Framing::Octet => {
                self.pending.extend_from_slice(&data);
                if let Err(e) = self.octet_frames(app, cx) {
                    log(format_args!("bad frame from the server: {e}"));
                    c.abort(cx);
                    return ended(app, cx);
                }
            }
        }
        read_next(c, app, cx);
    }

    fn event(&mut self, c: &Conn<App>, e: StreamEvent, app: &mut App, cx: &mut Ctx<App>) {
        match e {
            StreamEvent::Connected => {
                log(format_args!("connected to {}", app.args.server));
                app.connected_at = Some(cx.now());
                app.sessions += 1;
                return;
            }
            StreamEvent::Eof => log(format_args!("the server closed the connection")),
            StreamEvent::Error(err) => match tls::Error::of(&err) {
                Some(t) => log(format_args!("connection failed: {}", out::Chain(t))),
                None => log(format_args!("connection failed: {}", out::Chain(&err))),
            },
            other => log(format_args!("connection ended: {other:?}")),
        }
        c.abort(cx);
        ended(app, cx);
    }
}

/// The session is over: try again after the backoff (unless stopping).
fn ended(app: &mut App, cx: &mut Ctx<App>) {
    if let Some(s) = app.stream.take() {
        s.detach();
    }
    if app.stopping {
        cx.stop_loop();
        return;
    }
    if app
        .connected_at
        .take()
        .is_some_and(|t| cx.now().duration_since(t) >= LASTED)
    {
        app.backoff.reset();
    }
    let delay = app.backoff.next_delay();
    log(format_args!("reconnecting in {delay:?}"));
    let t = cx.timer(delay, None, |app: &mut App, cx, _| {
        app.retry = None;
        connect(app, cx)
    });
    app.retry = Some(t);
}

fn connect(app: &mut App, cx: &mut Ctx<App>) {
    log(format_args!("connecting to {}", app.args.server));
    let endpoints: Vec<Endpoint> = match app.args.server.to_socket_addrs() {
        Ok(a) => a.map(Endpoint::from).collect(),
        Err(e) => {
            log(format_args!("{}: {e}", app.args.server));
            return ended(app, cx);
        }
    };
    let timeout = Duration::from_secs(app.args.timeout);
    let copts = ConnectOptions {
        timeout: Some(timeout),
        ..ConnectOptions::default()
    };
    let wide = Options {
        max_read: 64 * 1024,
        max_write: 64 * 1024,
        ..Options::default()
    };
    let under = Stream::connect(cx, &NoLookup, endpoints, copts, wide, Nothing);
    let name = app.args.servername.clone().unwrap_or_else(|| {
        let host = app.args.server.rsplit_once(':').map_or("", |(h, _)| h);
        host.trim_matches(['[', ']']).to_owned()
    });
    let opts = Options {
        handshake_timeout: Some(timeout * 2), // the connect's time counts too
        max_line: MAX_MESSAGE,
        ..Options::default()
    };
    let handler = Forward {
        pending: BytesMut::new(),
    };
    let connector = TlsConnector::new(app.config.clone()).options(opts);
    match connector.wrap(cx, under, &name, &Session::default(), handler) {
        Ok(s) => {
            match (&mut app.resume, app.args.framing) {
                (Some(r), _) => {
                    s.write(cx, r.hello().as_bytes()); // goes out after the handshake
                    s.read_chunk(cx);
                }
                (None, Framing::Line) => s.read_line(cx),
                (None, Framing::Octet) => s.read_chunk(cx),
            }
            app.stream = Some(s);
        }
        Err(e) => {
            log(format_args!("{}", out::Chain(&e)));
            ended(app, cx);
        }
    }
}

/// The stats line (see `--stats-interval`).
fn report(app: &mut App) {
    let f = &app.fwd;
    log(format_args!(
        "stats: in {}, forwarded {}, queued {}, skipped {}, sessions {}, forward connections {}",
        app.received,
        f.sent,
        f.queued(),
        f.skipped,
        app.sessions,
        f.connections
    ));
}

/// `Ctx::shutdown`'s recipe: no reconnect; the session (if any) sends close_notify, and
/// `run` returns when that close is over, or after 5 s. A second signal stops at once.
fn stop(app: &mut App, cx: &mut Ctx<App>) {
    if app.stopping {
        log(format_args!("stopping now"));
        return cx.stop_loop();
    }
    app.stopping = true;
    if let Some(t) = app.retry.take() {
        cx.remove(t);
    }
    if let Some(s) = app.stream.take() {
        log(format_args!("stopping: close_notify"));
        s.close_then(cx, |_: &mut App, _, closed| {
            if !matches!(closed, Closed::Flushed) {
                log(format_args!("close: {closed}"));
            }
        });
        s.detach();
    }
    cx.shutdown(Duration::from_secs(5));
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = ClientPem::new(&args.ca)
        .identity(&args.cert, &args.key)
        .build()?;
    let fwd = Forwarder::new(args.forward.clone(), args.queue_messages, args.queue_bytes)?;
    let mut ev = Loop::<App>::new()?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |app: &mut App, cx, _| stop(app, cx))?;
    }
    ev.signal(libc::SIGUSR1, |app: &mut App, _, _| report(app))?;
    if args.stats_interval > 0 {
        let every = Duration::from_secs(args.stats_interval);
        ev.timer(every, Some(every), |app: &mut App, _, _| report(app));
    }
    let resume = args.state.clone().map(resume::Resume::load);
    let mut app = App {
        args,
        config,
        fwd,
        paused: false,
        resume,
        received: 0,
        sessions: 0,
        stream: None,
        connected_at: None,
        backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
        retry: None,
        stopping: false,
    };
    ev.timer(Duration::ZERO, None, |app: &mut App, cx, _| {
        connect(app, cx)
    });
    outln!("started");
    ev.run(&mut app)?;
    log(format_args!("stopped"));
    Ok(())
}

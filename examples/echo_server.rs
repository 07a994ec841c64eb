//! A line-echo server on evnet: TCP on every address of a host:port (IPv4 and IPv6), and
//! optionally a Unix socket, with optional per-connection and global rate limits.
//!
//! It is a limited-read server: lines are bounded (`--max-line`), a client that sends
//! without reading its replies is held back by output backpressure (`--write-high`: reading
//! stops while that much output is queued), a client that stops taking output is dropped
//! (`--write-timeout`), a connection that sends nothing is dropped (`--idle-timeout`, so a
//! slowloris cannot hold a connection forever), and a close never waits forever
//! (`--close-timeout`). Memory per connection stays within about
//! `write-high + 64 KiB + max-line`, whatever the peer does.
//!
//! `--listen None:7020` (the default) listens on 0.0.0.0:7020 and [::]:7020. Try it with
//! `cargo run --release --example echo_client -- --connect localhost:7020`.
//!
//! `--threads N` runs N loops on N threads (`evnet::loops`), shared nothing: each listens
//! on its own `SO_REUSEPORT` socket for every TCP address and the kernel spreads the
//! connections (the Unix socket, which cannot be sharded, is served by loop 0). SIGINT or
//! SIGTERM stops every loop gracefully.

#[macro_use]
#[path = "util/out.rs"]
mod out;
#[path = "util/until_signal.rs"]
mod until_signal;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use evnet::bufio::{
    Conn, Error, Options, RateGroup, RateLimit, Stream, StreamEvent, StreamHandler,
};
use evnet::ev::{Ctx, Loop, WatcherId};
use evnet::loops::LoopsBuilder;
use evnet::socket::{
    bind_tcp, bind_tcp_shard, bind_unix, listen_addrs, Accept, Listener, DEFAULT_BACKLOG,
};
use until_signal::{run_until_signal, PerLoop};

#[derive(Parser)]
#[command(
    about = "Line-echo server: TCP on every address of a host:port, optionally Unix, with limits"
)]
struct Args {
    /// Listen on every address of HOST:PORT (`None:7020`: 0.0.0.0 and ::); repeatable.
    #[arg(long, default_value = "None:7020")]
    listen: Vec<String>,
    /// Also listen on a Unix socket.
    #[arg(long)]
    unix: Option<String>,
    /// Per-connection rate limit, bytes/s each way.
    #[arg(long)]
    rate: Option<u64>,
    /// Per-connection burst, bytes (default: the rate; needs --rate).
    #[arg(long, requires = "rate")]
    burst: Option<u64>,
    /// One limit shared by all connections, bytes/s each way.
    #[arg(long)]
    group_rate: Option<u64>,
    /// The group's burst, bytes (default: the group rate; needs --group-rate).
    #[arg(long, requires = "group_rate")]
    group_burst: Option<u64>,
    /// Longest line accepted, bytes.
    #[arg(long, default_value_t = Options::default().max_line)]
    max_line: usize,
    /// Stop reading from a client while this much output is queued for it, bytes.
    #[arg(long, default_value_t = Options::default().write_high)]
    write_high: usize,
    /// Drop a client that takes no output for this long, seconds (0: never).
    #[arg(long, default_value_t = 10.0)]
    write_timeout: f64,
    /// Drop a client that sends nothing for this long, seconds (0: never).
    #[arg(long, default_value_t = 60.0)]
    idle_timeout: f64,
    /// Reset a closing connection that does not drain within this long, seconds.
    #[arg(long, default_value_t = 10.0)]
    close_timeout: f64,
    /// Event loops, one thread each, sharing the TCP addresses with SO_REUSEPORT.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin loop i to the i-th CPU (with --threads; Linux).
    #[arg(long)]
    pin: bool,
}

/// Every address of `host:port`, as `bind_tcp_all`; but a host without IPv6 (the
/// kernel refuses the family, or has no such address) still listens on the rest, with a
/// warning, as long as one address was bound.
/// With `shard`, every socket is an `SO_REUSEPORT` shard other loops can bind beside.
fn bind_every(host: &str, port: u16, shard: bool) -> Result<Vec<socket2::Socket>> {
    let mut out = Vec::new();
    let mut port = port;
    let mut skipped = Vec::new();
    for mut addr in listen_addrs(Some(host), port)? {
        addr.set_port(port);
        let bound = if shard {
            bind_tcp_shard(addr, DEFAULT_BACKLOG)
        } else {
            bind_tcp(addr, DEFAULT_BACKLOG)
        };
        match bound {
            Ok(s) => {
                if port == 0 {
                    port = s.local_addr()?.as_socket().map_or(0, |a| a.port());
                }
                out.push(s);
            }
            Err(e)
                if addr.is_ipv6()
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
                    ) =>
            {
                skipped.push(format!("{addr} ({e})"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if out.is_empty() {
        anyhow::bail!(
            "{host}:{port}: nothing could be bound: {}",
            skipped.join(", ")
        );
    }
    for s in skipped {
        eprintln!("echo_server: warning: no IPv6 here, not listening on {s}");
    }
    Ok(out)
}

/// Seconds, 0 meaning never.
fn secs(s: f64) -> Result<Option<Duration>> {
    if !(s >= 0.0 && s.is_finite()) {
        bail!("{s}: expected a non-negative number of seconds");
    }
    Ok((s > 0.0).then(|| Duration::from_secs_f64(s)))
}

impl Args {
    fn options(&self) -> Result<Options> {
        Ok(Options {
            max_line: self.max_line,
            write_high: self.write_high,
            write_timeout: secs(self.write_timeout)?,
            read_timeout: secs(self.idle_timeout)?,
            close_timeout: secs(self.close_timeout)?,
            ..Options::default()
        })
    }
}

struct State {
    /// `loop i: ` with --threads, else empty: the prefix of this loop's reports.
    name: String,
    listener: Option<Listener<State>>,
    conns: u64,
    open: u64,
    group: Option<RateGroup>,
    rate: Option<RateLimit>,
    opts: Options,
    /// Accept errors (e.g. out of fds) are logged at most once a second, with a count.
    accept_errors: u64,
    accept_logged: Option<Instant>,
}

struct Echo {
    id: u64,
}

impl StreamHandler<State> for Echo {
    fn read(&mut self, c: &Conn<State>, line: Bytes, _st: &mut State, cx: &mut Ctx<State>) {
        c.write_bytes(cx, line);
        c.write(cx, b"\n");
        c.read_line(cx);
    }

    fn event(&mut self, c: &Conn<State>, e: StreamEvent, st: &mut State, cx: &mut Ctx<State>) {
        match e {
            StreamEvent::Eof => c.close(cx),
            StreamEvent::Error(Error::LineTooLong { max }) => {
                eprintln!("conn {}: line longer than {max} bytes; closing it", self.id);
                c.write(cx, b"error: line too long\n");
                c.close(cx);
            }
            other => {
                eprintln!("conn {}: {other:?}", self.id);
                c.abort(cx);
            }
        }
        st.open -= 1;
    }
}

fn on_accept(st: &mut State, cx: &mut Ctx<State>, a: Accept) {
    let c = match a {
        Accept::Conn(c) => c,
        Accept::Error(e) => {
            st.accept_errors += 1;
            let now = Instant::now();
            let quiet = st
                .accept_logged
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
            if quiet {
                eprintln!("accept: {e} ({} since the last report)", st.accept_errors);
                st.accept_errors = 0;
                st.accept_logged = Some(now);
            }
            return;
        }
        _ => return,
    };
    st.conns += 1;
    st.open += 1;
    let id = st.conns;
    let _ = c.socket.set_nodelay(true);
    match Stream::with_options(cx, c.socket, st.opts, Echo { id }) {
        Ok(s) => {
            if let Some(r) = st.rate {
                s.set_rate_limit(cx, Some(r));
            }
            if let Some(g) = &st.group {
                s.join_group(cx, g);
            }
            s.read_line(cx);
            s.detach();
        }
        Err(e) => eprintln!("conn {id}: {}", out::Chain(&e)),
    }
}

impl State {
    fn new(name: String, listener: Listener<State>, args: &Args, opts: Options) -> State {
        State {
            name,
            listener: Some(listener),
            conns: 0,
            open: 0,
            group: args
                .group_rate
                .map(|r| RateGroup::new(RateLimit::symmetric(r, args.group_burst.unwrap_or(r)))),
            rate: args
                .rate
                .map(|r| RateLimit::symmetric(r, args.burst.unwrap_or(r))),
            opts,
            accept_errors: 0,
            accept_logged: None,
        }
    }

    /// `Ctx::shutdown`'s recipe: stops accepting and gives open connections up to 5 s (the
    /// stats tick and the signal watchers stay: they do not hold the loop open); a second
    /// signal ends the loop at once.
    fn shut_down(&mut self, cx: &mut Ctx<State>) {
        if cx.is_shutting_down() {
            eprintln!("{}second signal: stopping now", self.name);
            return cx.stop_loop();
        }
        eprintln!(
            "{}shutting down: {} connections served, {} open",
            self.name, self.conns, self.open
        );
        self.listener = None;
        cx.shutdown(Duration::from_secs(5));
    }
}

/// The stats line every 10 s.
fn stats_timer(ev: &mut Loop<State>) -> WatcherId {
    let sec = Duration::from_secs(10);
    ev.timer(sec, Some(sec), |st: &mut State, _, _| {
        let g = st.group.as_ref().map(RateGroup::totals);
        outln!(
            "{}{} connections, {} open, group totals {g:?}",
            st.name,
            st.conns,
            st.open
        );
    })
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.unix.is_some() && args.listen == ["None:7020"] {
        args.listen.clear(); // only the Unix socket was asked for
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if args.threads > 1 && args.group_rate.is_some() {
        bail!("--group-rate is one loop's budget; it cannot be shared by --threads loops");
    }
    let opts = args.options()?;
    let shard = args.threads > 1;
    let mut sockets = Vec::new();
    for spec in &args.listen {
        let (host, port) = spec
            .rsplit_once(':')
            .with_context(|| format!("{spec}: expected HOST:PORT"))?;
        let port: u16 = port.parse().with_context(|| format!("{spec}: bad port"))?;
        for s in bind_every(host, port, shard)? {
            outln!("listening on {:?}", s.local_addr()?.as_socket());
            sockets.push(s);
        }
    }
    if shard {
        return serve_on_loops(args, opts, sockets);
    }
    let mut ev = Loop::<State>::new()?;
    if let Some(p) = &args.unix {
        sockets.push(bind_unix(p, true)?);
        outln!("listening on unix:{p}");
    }
    let listener = Listener::new(&mut ev, sockets, on_accept);
    let mut st = State::new(String::new(), listener, &args, opts);
    stats_timer(&mut ev);
    // SIGINT/SIGTERM: stop accepting, give open connections up to 5 s, exit 0; a second
    // one: exit now.
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |st: &mut State, cx, _| st.shut_down(cx))?;
    }
    ev.run(&mut st)?;
    Ok(())
}

/// `--threads N`: loop 0 takes the sockets bound here, the others bind shards beside them;
/// this thread waits for a signal and stops them all.
fn serve_on_loops(args: Args, opts: Options, sockets: Vec<socket2::Socket>) -> Result<()> {
    let addrs = sockets
        .iter()
        .map(|s| s.local_addr().ok().and_then(|a| a.as_socket()))
        .collect::<Option<Vec<_>>>()
        .context("a listening socket without an address")?;
    let unix = match &args.unix {
        Some(p) => {
            let s = bind_unix(p, true)?;
            outln!("listening on unix:{p} (loop 0)");
            Some(s)
        }
        None => None,
    };
    let first = PerLoop::first((sockets, unix));
    let threads = args.threads;
    let args = std::sync::Arc::new(args);
    let builder = LoopsBuilder::new(threads).pin(args.pin).name("echo");
    run_until_signal(builder, |b| {
        let loops = b.spawn(
            move |i, ev| {
                // Loop 0 takes the sockets bound here (and the Unix one); the others bind
                // shards.
                let sockets = match first.take(i) {
                    Some((mut socks, unix)) => {
                        socks.extend(unix);
                        socks
                    }
                    None => addrs
                        .iter()
                        .map(|a| bind_tcp_shard(*a, DEFAULT_BACKLOG))
                        .collect::<std::io::Result<_>>()?,
                };
                let listener = Listener::new(ev, sockets, on_accept);
                stats_timer(ev);
                Ok(State::new(format!("loop {i}: "), listener, &args, opts))
            },
            |st, cx| st.shut_down(cx),
        )?;
        outln!("serving on {threads} loops");
        Ok(loops)
    })
}

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

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use evnet::bufio::{Conn, Error, Event, Handler, Options, RateGroup, RateLimit, Stream};
use evnet::ev::{Ctx, Loop};
use evnet::socket::{bind_tcp_all, bind_unix, Accept, Listener};

const USAGE: &str = "\
usage: echo_server [--listen HOST:PORT]... [--unix PATH]
    [--rate BYTES_PER_S --burst BYTES] [--group-rate BYTES_PER_S --group-burst BYTES]
    [--max-line BYTES] [--write-high BYTES] [--write-timeout SECS] [--idle-timeout SECS]
    [--close-timeout SECS]

  --listen HOST:PORT     listen on every address of HOST (default None:7020: 0.0.0.0 and ::)
  --unix PATH            also listen on a Unix socket
  --rate, --burst        per-connection rate limit, bytes/s each way (burst defaults to rate)
  --group-rate, --group-burst
                         one limit shared by all connections
  --max-line BYTES       longest line accepted (default 65536)
  --write-high BYTES     stop reading while this much output is queued (default 1048576)
  --write-timeout SECS   drop a client that takes no output for this long (default 10; 0: never)
  --idle-timeout SECS    drop a client that sends nothing for this long (default 60; 0: never)
  --close-timeout SECS   reset a closing connection that does not drain (default 10)
";

struct Args {
    listen: Vec<String>,
    unix: Option<String>,
    rate: Option<(u64, u64)>,
    group: Option<(u64, u64)>,
    opts: Options,
}

/// Seconds, 0 meaning never.
fn secs(v: &str) -> Result<Option<Duration>> {
    let s: f64 = v
        .parse()
        .with_context(|| format!("{v}: expected seconds"))?;
    if !(s >= 0.0 && s.is_finite()) {
        bail!("{v}: expected a non-negative number of seconds");
    }
    Ok((s > 0.0).then(|| Duration::from_secs_f64(s)))
}

fn parse() -> Result<Args> {
    let mut a = Args {
        listen: Vec::new(),
        unix: None,
        rate: None,
        group: None,
        opts: Options {
            write_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            close_timeout: Some(Duration::from_secs(10)),
            ..Options::default()
        },
    };
    let (mut rate, mut burst, mut grate, mut gburst) = (None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--listen" => a.listen.push(v()?),
            "--unix" => a.unix = Some(v()?),
            "--rate" => rate = Some(v()?.parse::<u64>()?),
            "--burst" => burst = Some(v()?.parse::<u64>()?),
            "--group-rate" => grate = Some(v()?.parse::<u64>()?),
            "--group-burst" => gburst = Some(v()?.parse::<u64>()?),
            "--max-line" => a.opts.max_line = v()?.parse()?,
            "--write-high" => a.opts.write_high = v()?.parse()?,
            "--write-timeout" => a.opts.write_timeout = secs(&v()?)?,
            "--idle-timeout" => a.opts.read_timeout = secs(&v()?)?,
            "--close-timeout" => a.opts.close_timeout = secs(&v()?)?,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    a.rate = rate.map(|r| (r, burst.unwrap_or(r)));
    a.group = grate.map(|r| (r, gburst.unwrap_or(r)));
    if a.listen.is_empty() && a.unix.is_none() {
        a.listen.push("None:7020".into());
    }
    Ok(a)
}

struct State {
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

impl Handler<State> for Echo {
    fn read(&mut self, c: &Conn<State>, line: Bytes, _st: &mut State, cx: &mut Ctx<State>) {
        c.write_bytes(cx, line);
        c.write(cx, b"\n");
        c.read_line(cx);
    }

    fn event(&mut self, c: &Conn<State>, e: Event, st: &mut State, cx: &mut Ctx<State>) {
        match e {
            Event::Eof => c.close(cx),
            Event::Error(Error::LineTooLong { max }) => {
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
                .map_or(true, |t| now.duration_since(t) >= Duration::from_secs(1));
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
        Err(e) => eprintln!("conn {id}: {e}"),
    }
}

fn main() -> Result<()> {
    let args = parse()?;
    let mut ev = Loop::<State>::new()?;
    let mut sockets = Vec::new();
    for spec in &args.listen {
        let (host, port) = spec
            .rsplit_once(':')
            .with_context(|| format!("{spec}: expected HOST:PORT"))?;
        let port: u16 = port.parse().with_context(|| format!("{spec}: bad port"))?;
        for s in bind_tcp_all(Some(host), port)? {
            println!("listening on {:?}", s.local_addr()?.as_socket());
            sockets.push(s);
        }
    }
    if let Some(p) = &args.unix {
        sockets.push(bind_unix(p, true)?);
        println!("listening on unix:{p}");
    }
    let _listener = Listener::new(&mut ev, sockets, on_accept);
    let mut st = State {
        conns: 0,
        open: 0,
        group: args
            .group
            .map(|(r, b)| RateGroup::new(RateLimit::symmetric(r, b))),
        rate: args.rate.map(|(r, b)| RateLimit::symmetric(r, b)),
        opts: args.opts,
        accept_errors: 0,
        accept_logged: None,
    };
    let sec = Duration::from_secs(10);
    ev.timer(sec, Some(sec), |st: &mut State, _, _| {
        let g = st.group.as_ref().map(RateGroup::totals);
        println!(
            "{} connections, {} open, group totals {g:?}",
            st.conns, st.open
        );
    });
    ev.run(&mut st)?;
    Ok(())
}

//! A line-echo client on evnet: connects (host names resolved on a worker thread, IPv6 and
//! IPv4 tried RFC 8305 style), sends lines one at a time and reports round-trip times.
//! `--help` lists the flags.

#[macro_use]
#[path = "util/out.rs"]
mod out;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use evnet::bufio::{Conn, Stream, StreamEvent, StreamHandler};
use evnet::ev::{Ctx, Loop};
use evnet::pool::Pool;
use evnet::socket::{connect, ConnectOptions, Endpoint, Target};

struct State {
    /// Kept alive while host names resolve on it.
    _pool: Pool<State>,
    lines: usize,
    rtts: Vec<Duration>,
    finished: usize,
    conns: usize,
    failed: usize,
    streams: Vec<Stream<State>>,
}

struct Client {
    sent: usize,
    at: Instant,
}

impl Client {
    fn send(&mut self, c: &Conn<State>, cx: &mut Ctx<State>) {
        // The next line; the reply comes to `read`.
        self.sent += 1;
        self.at = Instant::now();
        c.write(cx, format!("hello {}\n", self.sent).as_bytes());
        c.read_line(cx);
    }
}

impl StreamHandler<State> for Client {
    fn read(&mut self, c: &Conn<State>, line: Bytes, st: &mut State, cx: &mut Ctx<State>) {
        st.rtts.push(self.at.elapsed());
        if line != format!("hello {}", self.sent).as_bytes() {
            eprintln!("unexpected reply {:?}", String::from_utf8_lossy(&line));
        }
        if self.sent < st.lines {
            self.send(c, cx);
        } else {
            st.finished += 1;
            c.close(cx);
            if st.finished + st.failed == st.conns {
                cx.stop_loop();
            }
        }
    }

    fn event(&mut self, c: &Conn<State>, e: StreamEvent, st: &mut State, cx: &mut Ctx<State>) {
        eprintln!("connection: {e:?}");
        st.failed += 1;
        c.abort(cx);
        if st.finished + st.failed == st.conns {
            cx.stop_loop();
        }
    }
}

fn on_connected(st: &mut State, cx: &mut Ctx<State>, r: std::io::Result<evnet::socket::Connected>) {
    let c = match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect: {e}");
            st.failed += 1;
            if st.finished + st.failed == st.conns {
                cx.stop_loop();
            }
            return;
        }
    };
    let _ = c.socket.set_nodelay(true);
    let client = Client {
        sent: 1,
        at: Instant::now(),
    };
    match Stream::new(cx, c.socket, client) {
        Ok(s) => {
            s.write(cx, b"hello 1\n");
            s.read_line(cx);
            st.streams.push(s);
        }
        Err(e) => eprintln!("stream: {}", out::Chain(&e)),
    }
}

#[derive(Parser)]
#[command(about = "Line-echo client: sends lines one at a time and reports round-trip times")]
struct Args {
    /// Server to connect to (host names resolved on the thread pool).
    #[arg(long = "connect", default_value = "localhost:7020")]
    target: String,
    /// Connect to a Unix socket instead.
    #[arg(long)]
    unix: Option<String>,
    /// Lines per connection.
    #[arg(long, default_value_t = 1000)]
    lines: usize,
    /// Connections, run at once.
    #[arg(long, default_value_t = 1)]
    conns: usize,
}

fn main() -> Result<()> {
    let Args {
        target,
        unix,
        lines,
        conns,
    } = Args::parse();
    let mut ev = Loop::<State>::new()?;
    let pool = Pool::new(&mut ev)?;
    let mut pending = Vec::new();
    for _ in 0..conns {
        let on_done = |st: &mut State, cx: &mut Ctx<State>, r| on_connected(st, cx, r);
        let h = match &unix {
            Some(p) => connect(
                &mut ev,
                &pool,
                Endpoint::Unix(p.into()),
                ConnectOptions::default(),
                on_done,
            ),
            None => {
                let (host, port) = target
                    .rsplit_once(':')
                    .with_context(|| format!("{target}: expected HOST:PORT"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                connect(
                    &mut ev,
                    &pool,
                    Target::host(host, port.parse()?),
                    ConnectOptions::default(),
                    on_done,
                )
            }
        };
        pending.push(h);
    }
    let mut st = State {
        _pool: pool,
        lines,
        rtts: Vec::new(),
        finished: 0,
        conns,
        failed: 0,
        streams: Vec::new(),
    };
    let t = Instant::now();
    ev.run(&mut st)?;
    let secs = t.elapsed().as_secs_f64();
    st.rtts.sort();
    let pct = |p: f64| {
        st.rtts
            .get(((st.rtts.len().max(1) - 1) as f64 * p) as usize)
            .copied()
    };
    outln!(
        "{} connections ok, {} failed; {} round trips in {secs:.2}s; rtt p50 {:?} p99 {:?}",
        st.finished,
        st.failed,
        st.rtts.len(),
        pct(0.5).unwrap_or_default(),
        pct(0.99).unwrap_or_default()
    );
    drop(pending);
    Ok(())
}

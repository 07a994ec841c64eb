//! The pub/sub fairness scenario, shared by `examples/pubsub_fairness` and
//! `benches/starvation` (and the naive drain by `benches/throughput`).
//!
//! One loop holds a SUB socket flooded by a publisher thread, a quiet SUB socket that gets
//! one timestamped message every 10 ms, and a repeating 1 ms timer. The same scenario runs
//! with the article's naive "drain everything on each wake-up" handler or with evnet's
//! fair adapter at a given budget.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use evnet::ev::{Ctx, IoInterest, Loop, WatcherId};
use evnet::fair::{Budget, Sock, ZmqHandler, ZmqWatcher};

/// Where the sockets talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Inproc,
    Ipc,
    Tcp,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Inproc, Transport::Ipc, Transport::Tcp];

    pub fn parse(s: &str) -> Result<Transport> {
        Ok(match s {
            "inproc" => Transport::Inproc,
            "ipc" => Transport::Ipc,
            "tcp" => Transport::Tcp,
            _ => bail!("unknown transport {s:?} (inproc, ipc or tcp)"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Inproc => "inproc",
            Transport::Ipc => "ipc",
            Transport::Tcp => "tcp",
        }
    }

    /// An endpoint to bind; `get_last_endpoint` gives the one to connect to.
    pub fn endpoint(self, tag: &str) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        match self {
            Transport::Inproc => format!("inproc://{tag}-{n}"),
            Transport::Ipc => format!("ipc:///tmp/evnet-{pid}-{tag}-{n}.sock"),
            Transport::Tcp => "tcp://127.0.0.1:*".to_string(),
        }
    }
}

/// Binds `sock` on a fresh endpoint of `t`; returns the endpoint to connect to.
pub fn bind(sock: &zmq::Socket, t: Transport, tag: &str) -> Result<String> {
    sock.bind(&t.endpoint(tag))?;
    sock.get_last_endpoint()?
        .map_err(|_| anyhow::anyhow!("endpoint is not UTF-8"))
}

/// How the receiving side handles its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The article's `do { recv } while (ZMQ_EVENTS & POLLIN)` on every `ZMQ_FD` wake-up.
    Naive,
    /// evnet's fair adapter with this budget.
    Fair(Budget),
}

impl Mode {
    /// The sweep the benchmarks run: the naive peer, then budgets 1, 8, 64 and the default.
    pub const SWEEP: [Mode; 5] = [
        Mode::Naive,
        Mode::Fair(Budget::messages(1)),
        Mode::Fair(Budget::messages(8)),
        Mode::Fair(Budget::messages(64)),
        Mode::Fair(Budget::DEFAULT),
    ];

    pub fn label(self) -> String {
        match self {
            Mode::Naive => "naive drain".into(),
            Mode::Fair(b) if b == Budget::DEFAULT => format!("evnet default ({})", b.messages),
            Mode::Fair(b) => format!("evnet budget {}", b.messages),
        }
    }

    pub fn key(self) -> String {
        match self {
            Mode::Naive => "naive".into(),
            Mode::Fair(b) if b == Budget::DEFAULT => "evnet_default".into(),
            Mode::Fair(b) => format!("evnet_{}", b.messages),
        }
    }
}

/// A ZeroMQ socket as an io watcher's source: `ZMQ_FD`, which libzmq owns, stays open as
/// long as the socket does, so the watcher keeps the socket.
struct ZmqFd(zmq::Socket, std::os::fd::RawFd);

impl std::os::fd::AsFd for ZmqFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: `self.1` is the socket's ZMQ_FD, open until the socket (`self.0`) is
        // closed, which cannot happen while `self` is borrowed.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.1) }
    }
}

/// Watches `socket` the naive way: an io watcher on `ZMQ_FD`, and on each wake-up the
/// article's loop, reading `ZMQ_EVENTS` before every message, until no message is left.
/// It also drains once right away: messages queued before the first edge (a fresh pipe
/// raises none) would otherwise wait forever. Returns the io and start-up watchers;
/// removing them drops the socket.
pub fn watch_naive<S: 'static>(
    cx: &mut Ctx<S>,
    socket: zmq::Socket,
    mut on_msg: impl FnMut(&mut S, &mut Ctx<S>, &[zmq::Message]) + 'static,
) -> Result<[WatcherId; 2]> {
    let fd = socket.get_fd()?;
    let socket = Rc::new(ZmqFd(socket, fd));
    let watched = Rc::clone(&socket);
    let mut parts: Vec<zmq::Message> = Vec::new();
    let drain = Rc::new(RefCell::new(move |st: &mut S, cx: &mut Ctx<S>| {
        let socket = &socket.0;
        while let Ok(ev) = socket.get_events() {
            if !ev.contains(zmq::POLLIN) {
                break;
            }
            let mut k = 0;
            loop {
                if parts.len() == k {
                    parts.push(zmq::Message::new());
                }
                if socket.recv(&mut parts[k], zmq::DONTWAIT).is_err() {
                    return;
                }
                k += 1;
                if !parts[k - 1].get_more() {
                    break;
                }
            }
            on_msg(st, cx, &parts[..k]);
        }
    }));
    let d = drain.clone();
    let io = cx.io(watched, IoInterest::READABLE, move |st, cx, _| {
        (d.borrow_mut())(st, cx)
    });
    let start = cx.timer(Duration::ZERO, None, move |st, cx, _| {
        (drain.borrow_mut())(st, cx)
    });
    Ok([io, start])
}

/// The scenario's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub messages: u64,
    pub size: usize,
    pub transport: Transport,
    /// How long the no-traffic baseline runs.
    pub baseline: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            messages: 1_000_000,
            size: 64,
            transport: Transport::Inproc,
            baseline: Duration::from_millis(500),
        }
    }
}

/// Percentiles of a sample, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pcts {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub n: usize,
}

impl Pcts {
    pub fn of(ns: &mut [u64]) -> Pcts {
        if ns.is_empty() {
            return Pcts::default();
        }
        ns.sort_unstable();
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        Pcts {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
            n: ns.len(),
        }
    }
}

/// One run's numbers.
#[derive(Debug, Clone)]
pub struct Report {
    pub mode: String,
    pub key: String,
    pub messages: u64,
    pub msgs_per_s: f64,
    pub timer: Pcts,
    pub quiet: Pcts,
    /// Raw timer lateness samples (ns), for plots.
    pub timer_samples: Vec<u64>,
}

impl Report {
    pub fn json(&self) -> String {
        format!(
            "{{\"mode\":\"{}\",\"messages\":{},\"msgs_per_s\":{:.0},\"timer_late_p50_us\":{:.1},\"timer_late_p99_us\":{:.1},\"timer_late_max_us\":{:.1},\"quiet_late_p50_us\":{:.1},\"quiet_late_p99_us\":{:.1},\"quiet_late_max_us\":{:.1},\"ticks\":{}}}",
            self.key,
            self.messages,
            self.msgs_per_s,
            self.timer.p50,
            self.timer.p99,
            self.timer.max,
            self.quiet.p50,
            self.quiet.p99,
            self.quiet.max,
            self.timer.n
        )
    }
}

struct St {
    epoch: Instant,
    size: usize,
    target: u64,
    got: u64,
    bad: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// (due, lateness) of every tick and (sent, latency) of every quiet message, as ns
    /// since `epoch`; only those whose reference time falls in the flood window count, so
    /// a tick that was due mid-flood but fired after it counts with its full lateness.
    ticks: Vec<(u64, u64)>,
    quiet: Vec<(u64, u64)>,
}

impl St {
    fn on_flood(&mut self, msg: &[zmq::Message]) {
        if msg.len() != 1 || msg[0].len() != self.size {
            self.bad += 1;
        }
        let now = Instant::now();
        if self.first.is_none() {
            self.first = Some(now);
        }
        self.got += 1;
        if self.got == self.target {
            self.last = Some(now);
        }
    }

    fn on_quiet(&mut self, msg: &[zmq::Message]) {
        if let Some(b) = msg.first().and_then(|m| m.get(..8)) {
            let sent = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
            let now = self.epoch.elapsed().as_nanos() as u64;
            self.quiet.push((sent, now.saturating_sub(sent)));
        }
    }
}

struct Flood;
impl ZmqHandler<Ctx<St>> for Flood {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        st.on_flood(m);
    }
}

struct Quiet;
impl ZmqHandler<Ctx<St>> for Quiet {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        st.on_quiet(m);
    }
}

/// A publisher thread behind an XPUB: it waits for the subscription, then runs `body`.
fn publisher(
    ctx: &zmq::Context,
    t: Transport,
    tag: &str,
    body: impl FnOnce(&zmq::Socket) + Send + 'static,
) -> Result<(String, thread::JoinHandle<()>)> {
    let xpub = ctx.socket(zmq::XPUB)?;
    xpub.set_sndhwm(0)?;
    let ep = bind(&xpub, t, tag)?;
    let h = thread::spawn(move || {
        // The subscription frame: no message is sent into the void before it.
        if xpub.recv_bytes(0).is_ok() {
            body(&xpub);
        }
    });
    Ok((ep, h))
}

fn sub(ctx: &zmq::Context, ep: &str) -> Result<zmq::Socket> {
    let s = ctx.socket(zmq::SUB)?;
    s.set_rcvhwm(0)?;
    s.connect(ep)?;
    s.set_subscribe(b"")?;
    Ok(s)
}

/// Runs the scenario once. With `flood == false` it is the no-traffic baseline (timer and
/// quiet socket only, for `cfg.baseline`).
pub fn run(cfg: &Config, mode: Mode, flood: bool) -> Result<Report> {
    let ctx = zmq::Context::new();
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));

    let stop_q = stop.clone();
    let (quiet_ep, quiet_thread) = publisher(&ctx, cfg.transport, "quiet", move |s| {
        while !stop_q.load(Ordering::Relaxed) {
            let mut buf = [0u8; 16];
            buf[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
            let _ = s.send(&buf[..], 0);
            thread::sleep(Duration::from_millis(10));
        }
    })?;

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let flood_thread = if flood {
        let (n, size) = (cfg.messages, cfg.size);
        let (ep, h) = publisher(&ctx, cfg.transport, "flood", move |s| {
            let payload = vec![0xabu8; size];
            for _ in 0..n {
                if s.send(&payload[..], 0).is_err() {
                    return;
                }
            }
            // Keep the socket open until the receiver has everything.
            let _ = done_rx.recv();
        })?;
        Some((ep, h))
    } else {
        None
    };

    let mut ev = Loop::<St>::new()?;
    let quiet_sock = sub(&ctx, &quiet_ep)?;
    let mut handles: Vec<ZmqWatcher> = Vec::new();
    let mut naive: Vec<[WatcherId; 2]> = Vec::new();
    match mode {
        Mode::Naive => naive.push(watch_naive(&mut ev, quiet_sock, |st, _, m| st.on_quiet(m))?),
        Mode::Fair(b) => handles.push(ZmqWatcher::with_budget(&mut ev, quiet_sock, Quiet, b)?),
    }
    if let Some((ep, _)) = &flood_thread {
        let s = sub(&ctx, ep)?;
        match mode {
            Mode::Naive => naive.push(watch_naive(&mut ev, s, |st, _, m| st.on_flood(m))?),
            Mode::Fair(b) => handles.push(ZmqWatcher::with_budget(&mut ev, s, Flood, b)?),
        }
    }
    let ms = Duration::from_millis(1);
    ev.timer(ms, Some(ms), |st, cx, e| {
        if let Some(due) = e.due() {
            let late = cx.now().saturating_duration_since(due).as_nanos() as u64;
            st.ticks.push(((due - st.epoch).as_nanos() as u64, late));
        }
    });

    let mut st = St {
        epoch,
        size: cfg.size,
        target: cfg.messages,
        got: 0,
        bad: 0,
        first: None,
        last: None,
        ticks: Vec::new(),
        quiet: Vec::new(),
    };
    let (elapsed, got, window) = if flood {
        let ok = ev.run_until(&mut st, Duration::from_secs(120), |st| st.got >= st.target)?;
        if !ok {
            bail!("flood incomplete: {} of {} messages", st.got, st.target);
        }
        let (first, last) = st.first.zip(st.last).context("no flood window")?;
        let ns = |t: Instant| (t - epoch).as_nanos() as u64;
        // Run on until every tick due inside the window has fired, however late.
        ev.run_until(&mut st, Duration::from_millis(20), |_| false)?;
        (last - first, st.got, ns(first)..=ns(last))
    } else {
        let from = epoch.elapsed().as_nanos() as u64;
        ev.run_until(&mut st, cfg.baseline, |_| false)?;
        (cfg.baseline, 0, from..=epoch.elapsed().as_nanos() as u64)
    };
    let in_window = |v: &[(u64, u64)]| -> Vec<u64> {
        v.iter()
            .filter(|(at, _)| window.contains(at))
            .map(|&(_, x)| x)
            .collect()
    };
    let mut ticks = in_window(&st.ticks);
    let mut quiet = in_window(&st.quiet);
    if st.bad > 0 {
        bail!("{} malformed flood messages", st.bad);
    }

    stop.store(true, Ordering::Relaxed);
    let _ = done_tx.send(());
    drop(handles);
    for w in naive.into_iter().flatten() {
        ev.remove(w);
    }
    ev.run_nowait(&mut st)?; // dropped handles close their watchers (and sockets)
    drop(ev);
    quiet_thread
        .join()
        .ok()
        .context("quiet publisher panicked")?;
    if let Some((_, h)) = flood_thread {
        h.join().ok().context("flood publisher panicked")?;
    }

    Ok(Report {
        mode: if flood {
            mode.label()
        } else {
            "no traffic (baseline)".into()
        },
        key: if flood { mode.key() } else { "baseline".into() },
        messages: got,
        msgs_per_s: if elapsed.is_zero() {
            0.0
        } else {
            got as f64 / elapsed.as_secs_f64()
        },
        timer: Pcts::of(&mut ticks),
        quiet: Pcts::of(&mut quiet),
        timer_samples: ticks,
    })
}

/// Prints the scenario table (a closed stdout ends the program quietly, exit 0).
pub fn print_table(rows: &[Report]) {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<24} {:>9} {:>11} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "mode",
        "messages",
        "msgs/s",
        "tmr p50",
        "tmr p99",
        "tmr max",
        "quiet p50",
        "quiet p99",
        "quiet max"
    );
    let _ = writeln!(
        t,
        "{:<24} {:>9} {:>11} | {:>29} | {:>29}",
        "", "", "", "timer lateness (µs)", "quiet-socket latency (µs)"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{:<24} {:>9} {:>11.0} | {:>9.1} {:>9.1} {:>9.1} | {:>9.1} {:>9.1} {:>9.1}",
            r.mode,
            r.messages,
            r.msgs_per_s,
            r.timer.p50,
            r.timer.p99,
            r.timer.max,
            r.quiet.p50,
            r.quiet.p99,
            r.quiet.max
        );
    }
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_all(t.as_bytes()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("stdout: {e}");
        std::process::exit(1);
    }
}

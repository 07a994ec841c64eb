//! Graceful shutdown, the recipe of `Ctx::shutdown`: on SIGTERM a daemon stops accepting,
//! stops producing, lets its streams flush and its Outbox drain, and `run` returns when
//! they are done (its signal watchers and its stats tick, still active, do not hold it),
//! or at the end of the grace period when a peer never reads, or at once on a second
//! SIGTERM.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use evnet::bufio::{Stream, StreamEvent};
use evnet::ev::{Ctx, Loop, WatcherId};
use evnet::fair::{Flushed, Outbox, Sock, ZmqHandler, ZmqWatcher};
use evnet::socket::{bind_tcp_all, Accept, Listener};
use evnet::zmq;
use util::Fns;

const REPLY: usize = 4 << 20;

/// SIGTERM is process-wide and one loop at a time may take it: one test at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Daemon {
    listener: Option<Listener<Daemon>>,
    streams: Vec<Stream<Daemon>>,
    out: Outbox,
    zmq: Option<ZmqWatcher>,
    ticker: Option<WatcherId>,
    ticks: u64,
    /// A stats tick that goes on through the shutdown.
    stats: u64,
    /// Streams closed, as `close_then` reported.
    closed: Vec<String>,
}

/// Sends the Outbox; once shutting down and drained, drops its own watcher.
struct Sender;
impl ZmqHandler<Ctx<Daemon>> for Sender {
    fn writable(&mut self, s: &mut Sock<'_>, (d, cx): (&mut Daemon, &mut Ctx<Daemon>)) {
        if let Ok(Flushed::Drained | Flushed::Empty) = d.out.flush_one(s) {
            if cx.is_shutting_down() {
                d.zmq = None;
            }
        }
    }
}

fn on_term(d: &mut Daemon, cx: &mut Ctx<Daemon>, grace: Duration) {
    if cx.is_shutting_down() {
        return cx.stop_loop(); // a second signal: now
    }
    d.listener = None; // no new connections
    if let Some(t) = d.ticker.take() {
        cx.remove(t); // no new work
    }
    for s in d.streams.drain(..) {
        // Flush, then shut down; the loop keeps the stream until that is over.
        s.close_then(cx, |d: &mut Daemon, _, c| d.closed.push(format!("{c:?}")));
        s.detach();
    }
    if d.out.is_empty() {
        d.zmq = None;
    }
    cx.shutdown(grace);
}

fn daemon(ev: &mut Loop<Daemon>, push: zmq::Socket, grace: Duration) -> (Daemon, u16) {
    let socks = bind_tcp_all(Some("127.0.0.1"), 0).unwrap();
    let port = socks[0].local_addr().unwrap().as_socket().unwrap().port();
    let listener = Listener::new(ev, socks, |d: &mut Daemon, cx, a| {
        let Accept::Conn(c) = a else { return };
        let s = Stream::new(
            cx,
            c.socket,
            Fns::new(|_, _, _, _| {}, |c, _e: StreamEvent, _, cx| c.abort(cx)),
        )
        .unwrap();
        s.write(cx, &vec![b'r'; REPLY]); // a big reply, still going out at SIGTERM
        d.streams.push(s);
    });
    let zw = ZmqWatcher::new(ev, push, Sender).unwrap();
    let ms = Duration::from_millis(1);
    let ticker = ev.timer(ms, Some(ms), |d: &mut Daemon, _, _| {
        d.ticks += 1;
        for _ in 0..100 {
            d.out.push([&d.ticks.to_le_bytes()[..]]);
        }
        if let Some(z) = &d.zmq {
            z.set_writable(true);
        }
    });
    let tick = Duration::from_millis(5);
    ev.timer(tick, Some(tick), |d: &mut Daemon, _, _| d.stats += 1);
    let d = Daemon {
        listener: Some(listener),
        zmq: Some(zw),
        ticker: Some(ticker),
        ..Daemon::default()
    };
    for sig in [libc::SIGTERM, libc::SIGINT] {
        ev.signal(sig, move |d, cx, _| on_term(d, cx, grace))
            .unwrap();
    }
    (d, port)
}

fn sigterm() {
    let pid = std::process::id().to_string();
    assert!(std::process::Command::new(util::provision::tool("kill"))
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

#[test]
fn sigterm_lets_streams_flush_and_the_outbox_drain_then_run_returns() {
    let _g = serial();
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    let push = ctx.socket(zmq::PUSH).unwrap();
    pull.set_rcvhwm(10).unwrap();
    push.set_sndhwm(10).unwrap();
    util::link(&pull, &push, "tcp", "shutdown").unwrap();
    let mut ev = Loop::<Daemon>::new().unwrap();
    let (mut d, port) = daemon(&mut ev, push, Duration::from_secs(30));
    // Slow consumers: a PULL drained by a thread, and 5 clients reading their replies.
    let puller = std::thread::spawn(move || {
        pull.set_rcvtimeo(5000).unwrap();
        let mut n = 0u64;
        while pull.recv_bytes(0).is_ok() {
            n += 1;
        }
        n
    });
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                s.read_to_end(&mut got).map(|_| got.len())
            })
        })
        .collect();
    ev.run_until(&mut d, Duration::from_secs(20), |d| {
        d.streams.len() == 5 && d.ticks > 20
    })
    .unwrap();
    sigterm();
    let t0 = Instant::now();
    ev.run(&mut d).unwrap();
    let took = t0.elapsed();
    assert!(d.listener.is_none() && d.zmq.is_none(), "the recipe ran");
    assert!(
        took < Duration::from_secs(20),
        "run returned after {took:?}"
    );
    for c in clients {
        assert_eq!(
            c.join().unwrap().unwrap(),
            REPLY,
            "every reply flushed whole"
        );
    }
    assert_eq!(puller.join().unwrap(), d.ticks * 100, "the Outbox drained");
    assert_eq!(d.closed, ["Flushed"; 5], "each close_then said so");
}

#[test]
fn a_peer_that_never_reads_holds_shutdown_only_for_the_grace_period() {
    let _g = serial();
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    let push = ctx.socket(zmq::PUSH).unwrap();
    util::link(&pull, &push, "inproc", "shutdown-stuck").unwrap();
    let mut ev = Loop::<Daemon>::new().unwrap();
    let grace = Duration::from_millis(300);
    let (mut d, port) = daemon(&mut ev, push, grace);
    let _stuck = TcpStream::connect(("127.0.0.1", port)).unwrap(); // never reads
    ev.run_until(&mut d, Duration::from_secs(20), |d| !d.streams.is_empty())
        .unwrap();
    let _keep = pull;
    sigterm();
    let t0 = Instant::now();
    ev.run(&mut d).unwrap();
    let took = t0.elapsed();
    assert!(
        took >= grace,
        "returned after {took:?}, before the grace period"
    );
    assert!(took < Duration::from_secs(10), "returned after {took:?}");
}

#[test]
fn a_second_sigterm_during_the_grace_period_ends_run_at_once() {
    let _g = serial();
    let _w = util::watchdog::watchdog(Duration::from_secs(60), "second SIGTERM");
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    let push = ctx.socket(zmq::PUSH).unwrap();
    util::link(&pull, &push, "inproc", "shutdown-twice").unwrap();
    let mut ev = Loop::<Daemon>::new().unwrap();
    // An hour of grace, and a peer that never reads: only the second signal ends it.
    let (mut d, port) = daemon(&mut ev, push, Duration::from_secs(3600));
    let _stuck = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ev.run_until(&mut d, Duration::from_secs(20), |d| !d.streams.is_empty())
        .unwrap();
    let _keep = pull;
    sigterm();
    assert!(ev
        .run_until(&mut d, Duration::from_secs(20), |d| d.listener.is_none())
        .unwrap());
    let stats = d.stats;
    sigterm();
    ev.run(&mut d).unwrap();
    assert!(
        d.closed.is_empty(),
        "the stuck stream never finished its close"
    );
    assert!(d.stats >= stats, "the stats tick went on meanwhile");
}

#[test]
fn during_a_shutdown_a_repeating_timer_holds_nothing_until_it_is_set_to_fire_once() {
    let mut ev = Loop::<Vec<&str>>::new().unwrap();
    let tick = Duration::from_millis(1);
    let t = ev.timer(tick, Some(tick), |log, _, _| log.push("tick"));
    ev.shutdown(Duration::from_secs(3600));
    let mut log = Vec::new();
    // Only a repeating timer is active: nothing holds the shutting-down loop.
    ev.run(&mut log).unwrap();
    assert!(ev.is_active(t));
    // Made one-shot (stopped, changed, started again), it is work in progress again.
    assert!(ev.set_timer(t, tick, None));
    log.clear();
    ev.run(&mut log).unwrap();
    assert_eq!(log, ["tick"], "run waited for the one-shot timer");
    // And back to repeating: counted as such again.
    assert!(ev.set_timer(t, tick, Some(tick)));
    ev.run(&mut log).unwrap();
    assert!(ev.is_active(t));
}

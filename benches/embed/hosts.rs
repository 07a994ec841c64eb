//! Each receiver of `benches/embed` on its host loop, with that loop's own 1 ms timer, and
//! each loop as a ping-pong client.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Poll as TaskPoll;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use evnet::ev::{Ctx, Loop};
use evnet::fair::{CalloopZmq, MioZmq, Sock, TokioZmq, ZmqEvent, ZmqHandler, ZmqWatcher};
use futures::StreamExt;

use super::peers;
use super::scenario::{self, Transport};

pub const PERIOD: Duration = Duration::from_millis(1);
const LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rx {
    Raw,
    Evnet,
    Mio,
    MioNaive,
    Calloop,
    CalloopBook,
    CalloopCap64,
    Tokio,
    TokioStream,
    Tmq,
}

impl Rx {
    pub const ALL: [Rx; 10] = [
        Rx::Raw,
        Rx::Evnet,
        Rx::Mio,
        Rx::MioNaive,
        Rx::Calloop,
        Rx::CalloopBook,
        Rx::CalloopCap64,
        Rx::Tokio,
        Rx::TokioStream,
        Rx::Tmq,
    ];

    /// The clients of the round trip.
    pub const RTT: [Rx; 5] = [Rx::Raw, Rx::Evnet, Rx::Mio, Rx::Calloop, Rx::Tokio];

    pub fn label(self) -> &'static str {
        match self {
            Rx::Raw => "raw blocking recv",
            Rx::Evnet => "evnet ZmqWatcher",
            Rx::Mio => "evnet MioZmq",
            Rx::MioNaive => "naive drain to EAGAIN",
            Rx::Calloop => "evnet CalloopZmq",
            Rx::CalloopBook => "calloop book source",
            Rx::CalloopCap64 => "book source, 64/dispatch",
            Rx::Tokio => "evnet TokioZmq::dispatch",
            Rx::TokioStream => "evnet TokioZmq Stream",
            Rx::Tmq => "tmq 0.5 Pull",
        }
    }

    pub fn host(self) -> &'static str {
        match self {
            Rx::Raw => "raw",
            Rx::Evnet => "evnet",
            Rx::Mio | Rx::MioNaive => "mio",
            Rx::Calloop | Rx::CalloopBook | Rx::CalloopCap64 => "calloop",
            Rx::Tokio | Rx::TokioStream | Rx::Tmq => "tokio",
        }
    }
}

/// When a receiver stops: `messages` received and at least `min` gone by.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    pub messages: u64,
    pub min: Duration,
}

impl Stop {
    fn done(&self, got: u64, t0: Instant) -> bool {
        got >= self.messages && t0.elapsed() >= self.min
    }
}

pub struct Received {
    pub got: u64,
    /// The timer's lateness at each tick, ns.
    pub lat: Vec<u64>,
}

/// The 1 ms timer's bookkeeping: each tick is due one period after the previous one ran.
struct Ticker {
    next: Instant,
    lat: Vec<u64>,
}

impl Ticker {
    fn new() -> Ticker {
        Ticker {
            next: Instant::now() + PERIOD,
            lat: Vec::new(),
        }
    }

    fn fire(&mut self) {
        let now = Instant::now();
        self.lat
            .push(now.saturating_duration_since(self.next).as_nanos() as u64);
        self.next = now + PERIOD;
    }
}

/// Counts messages.
#[derive(Clone, Default)]
struct Count(Rc<Cell<u64>>);
impl ZmqHandler for Count {
    fn readable(&mut self, _: &mut [zmq::Message], _: &mut Sock<'_>, (): ()) {
        self.0.set(self.0.get() + 1);
    }
}

/// Receives on `rx`'s loop from `ep` until `stop`; `go` starts the sender.
pub fn receive(
    ctx: &zmq::Context,
    ep: &str,
    rx: Rx,
    stop: Stop,
    go: &dyn Fn(),
) -> Result<Received> {
    // The tokio receivers connect their own socket: a PULL connected here and dropped
    // would still be dealt a share of the PUSH's round robin while it closes.
    if matches!(rx, Rx::Tokio | Rx::TokioStream | Rx::Tmq) {
        return tokio_rx(ctx, ep, rx, stop, go);
    }
    let pull = ctx.socket(zmq::PULL)?;
    pull.connect(ep)?;
    match rx {
        Rx::Raw => {
            go();
            let mut msg = zmq::Message::new();
            let mut got = 0;
            while got < stop.messages {
                pull.recv(&mut msg, 0)?;
                got += 1;
            }
            Ok(Received {
                got,
                lat: Vec::new(),
            })
        }
        Rx::Evnet => evnet_rx(pull, stop, go),
        Rx::Mio | Rx::MioNaive => mio_rx(pull, rx, stop, go),
        Rx::Calloop | Rx::CalloopBook | Rx::CalloopCap64 => calloop_rx(pull, rx, stop, go),
        Rx::Tokio | Rx::TokioStream | Rx::Tmq => unreachable!("handled above"),
    }
}

struct EvSt {
    got: u64,
    ticker: Ticker,
    stop: Stop,
    t0: Instant,
}

/// Counts, and stops the loop once `stop` holds: an application's `Loop::run`, not
/// `run_until` (whose `done` between turns would hide the adapter's quiet-turn path).
struct EvCount;
impl ZmqHandler<Ctx<EvSt>> for EvCount {
    fn readable(
        &mut self,
        _: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, cx): (&mut EvSt, &mut Ctx<EvSt>),
    ) {
        st.got += 1;
        if st.stop.done(st.got, st.t0) {
            cx.stop_loop();
        }
    }
}

fn evnet_rx(pull: zmq::Socket, stop: Stop, go: &dyn Fn()) -> Result<Received> {
    let mut ev = Loop::<EvSt>::new()?;
    let _w = ZmqWatcher::new(&mut ev, pull, EvCount)?;
    ev.timer(PERIOD, None, |st, cx, e| {
        st.ticker.fire();
        if st.stop.done(st.got, st.t0) || st.t0.elapsed() > LIMIT {
            cx.stop_loop();
        }
        cx.set_timer(e.watcher(), PERIOD, None);
    });
    let mut st = EvSt {
        got: 0,
        ticker: Ticker::new(),
        stop,
        t0: Instant::now(),
    };
    go();
    st.t0 = Instant::now();
    ev.run(&mut st)?;
    Ok(Received {
        got: st.got,
        lat: st.ticker.lat,
    })
}

fn mio_rx(pull: zmq::Socket, rx: Rx, stop: Stop, go: &dyn Fn()) -> Result<Received> {
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(64);
    let count = Count::default();
    let mut h = count.clone();
    let mut ticker = Ticker::new();
    let mut ours = None;
    let fd = pull.get_fd()?;
    let mut raw = None;
    if rx == Rx::Mio {
        let mut z = MioZmq::new(pull)?;
        poll.registry()
            .register(&mut z, Token(0), Interest::READABLE)?;
        ours = Some(z);
    } else {
        poll.registry()
            .register(&mut mio::unix::SourceFd(&fd), Token(0), Interest::READABLE)?;
        raw = Some(pull);
    }
    let mut msg = zmq::Message::new();
    go();
    let t0 = Instant::now();
    // The naive source starts with a drain: messages may be queued before its first edge.
    let mut first = true;
    while !stop.done(count.0.get(), t0) && t0.elapsed() < LIMIT {
        let timeout = ticker.next.saturating_duration_since(Instant::now());
        let timeout = match ours.as_mut() {
            Some(z) => z.poll_timeout(Some(timeout)),
            None => Some(timeout),
        };
        poll.poll(&mut events, timeout)?;
        if let Some(z) = ours.as_mut() {
            z.dispatch(&events, &mut h)?;
        } else if let Some(s) = raw.as_ref() {
            if first || !events.is_empty() {
                first = false;
                peers::drain_to_eagain(s, &mut msg, |_| count.0.set(count.0.get() + 1));
            }
        }
        if Instant::now() >= ticker.next {
            ticker.fire();
        }
    }
    Ok(Received {
        got: count.0.get(),
        lat: ticker.lat,
    })
}

struct ClSt {
    got: u64,
    ticker: Ticker,
}

fn calloop_rx(pull: zmq::Socket, rx: Rx, stop: Stop, go: &dyn Fn()) -> Result<Received> {
    use calloop::timer::{TimeoutAction, Timer};
    let mut el = calloop::EventLoop::<ClSt>::try_new()?;
    let h = el.handle();
    match rx {
        Rx::Calloop => {
            let z = CalloopZmq::new(pull)?;
            h.insert_source(z, |ev, _, st: &mut ClSt| {
                if ev == ZmqEvent::Message {
                    st.got += 1;
                }
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        _ => {
            let cap = (rx == Rx::CalloopCap64).then_some(64);
            let src = peers::BookSource::new(pull, cap)?;
            h.insert_source(src, |_msg, _, st: &mut ClSt| st.got += 1)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    h.insert_source(Timer::from_duration(PERIOD), |_, _, st: &mut ClSt| {
        st.ticker.fire();
        TimeoutAction::ToDuration(PERIOD)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut st = ClSt {
        got: 0,
        ticker: Ticker::new(),
    };
    go();
    let t0 = Instant::now();
    while !stop.done(st.got, t0) && t0.elapsed() < LIMIT {
        el.dispatch(None, &mut st)?;
    }
    Ok(Received {
        got: st.got,
        lat: st.ticker.lat,
    })
}

fn tokio_rx(ctx: &zmq::Context, ep: &str, rx: Rx, stop: Stop, go: &dyn Fn()) -> Result<Received> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let ticker = Rc::new(RefCell::new(Ticker::new()));
    let got = Rc::new(Cell::new(0u64));
    let t = ticker.clone();
    local.block_on(&rt, async {
        let tick = tokio::task::spawn_local(async move {
            loop {
                let next = t.borrow().next;
                tokio::time::sleep_until(next.into()).await;
                t.borrow_mut().fire();
            }
        });
        *ticker.borrow_mut() = Ticker::new();
        let r = receive_tokio(ctx, ep, rx, stop, &got, go).await;
        tick.abort();
        r
    })?;
    let lat = std::mem::take(&mut ticker.borrow_mut().lat);
    Ok(Received {
        got: got.get(),
        lat,
    })
}

async fn receive_tokio(
    ctx: &zmq::Context,
    ep: &str,
    rx: Rx,
    stop: Stop,
    got: &Rc<Cell<u64>>,
    go: &dyn Fn(),
) -> Result<()> {
    let min = tokio::time::sleep(stop.min);
    if stop.messages > 0 {
        match rx {
            Rx::Tmq => {
                let mut s = tmq::pull(ctx).connect(ep)?;
                go();
                while got.get() < stop.messages {
                    match s.next().await {
                        Some(Ok(_)) => got.set(got.get() + 1),
                        Some(Err(e)) => bail!("tmq: {e}"),
                        None => bail!("tmq stream ended"),
                    }
                }
            }
            Rx::TokioStream => {
                let pull = ctx.socket(zmq::PULL)?;
                pull.connect(ep)?;
                let mut s = TokioZmq::new(pull)?;
                go();
                while got.get() < stop.messages {
                    match s.next().await {
                        Some(Ok(_)) => got.set(got.get() + 1),
                        Some(Err(e)) => bail!("stream: {e}"),
                        None => bail!("stream ended"),
                    }
                }
            }
            _ => {
                let pull = ctx.socket(zmq::PULL)?;
                pull.connect(ep)?;
                let mut z = TokioZmq::new(pull)?;
                let n = stop.messages;
                let mut h = |_: &mut [zmq::Message], s: &mut Sock<'_>| {
                    got.set(got.get() + 1);
                    if got.get() >= n {
                        s.close();
                    }
                };
                go();
                z.dispatch(&mut h).await?;
            }
        }
    }
    min.await;
    Ok(())
}

/// `k` round trips of 64 B from a DEALER on `rx`'s loop to a raw ROUTER echo thread; the
/// latency of each, ns.
pub fn round_trips(t: Transport, rx: Rx, k: usize) -> Result<Vec<u64>> {
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER)?;
    let ep = scenario::bind(&router, t, "rtt")?;
    let echo = thread::spawn(move || -> Result<()> {
        loop {
            let m = router.recv_multipart(0)?;
            if m.get(1).is_some_and(|p| p.as_slice() == b"stop") {
                return Ok(());
            }
            router.send_multipart(m, 0)?;
        }
    });
    let dealer = ctx.socket(zmq::DEALER)?;
    dealer.connect(&ep)?;
    let payload = [7u8; super::SIZE];
    // One round trip outside the measurement: the connection is up.
    dealer.send(&payload[..], 0)?;
    dealer.recv_bytes(0)?;
    let pp = PingPong {
        sent: Instant::now(),
        lat: Rc::new(RefCell::new(Vec::with_capacity(k))),
        k,
    };
    let lat = pp.lat.clone();
    let stop = |s: &zmq::Socket| s.send(&b"stop"[..], 0);
    match rx {
        Rx::Raw => {
            for _ in 0..k {
                let t0 = Instant::now();
                dealer.send(&payload[..], 0)?;
                dealer.recv_bytes(0)?;
                lat.borrow_mut().push(t0.elapsed().as_nanos() as u64);
            }
            stop(&dealer)?;
        }
        Rx::Evnet => {
            let mut ev = Loop::<()>::new()?;
            let w = ZmqWatcher::new(&mut ev, dealer, EvPing(pp))?;
            w.socket().send(&payload[..], 0)?;
            ev.run_until(&mut (), LIMIT, |_| lat.borrow().len() >= k)?;
            stop(w.socket())?;
        }
        Rx::Mio => {
            use mio::{Events, Interest, Poll, Token};
            let mut poll = Poll::new()?;
            let mut events = Events::with_capacity(64);
            let mut z = MioZmq::new(dealer)?;
            poll.registry()
                .register(&mut z, Token(0), Interest::READABLE)?;
            let mut h = pp;
            z.socket().send(&payload[..], 0)?;
            while lat.borrow().len() < k {
                let timeout = z.poll_timeout(Some(Duration::from_secs(1)));
                poll.poll(&mut events, timeout)?;
                z.dispatch(&events, &mut h)?;
            }
            stop(z.socket())?;
        }
        Rx::Calloop => {
            let mut el = calloop::EventLoop::<()>::try_new()?;
            let z = CalloopZmq::new(dealer)?;
            z.socket().send(&payload[..], 0)?;
            let mut h = pp;
            let d =
                calloop::Dispatcher::new(z, move |ev, io: &mut evnet::fair::ZmqIo, _: &mut ()| {
                    if ev == ZmqEvent::Message {
                        let (m, mut s) = io.split();
                        h.readable(m, &mut s, ());
                    }
                });
            el.handle()
                .register_dispatcher(d.clone())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            while lat.borrow().len() < k {
                el.dispatch(Some(Duration::from_secs(1)), &mut ())?;
            }
            stop(d.as_source_ref().socket())?;
        }
        Rx::Tokio => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut z = TokioZmq::new(dealer)?;
                z.socket().send(&payload[..], 0)?;
                let mut h = pp;
                let l = lat.clone();
                std::future::poll_fn(|cx| {
                    let r = z.poll_dispatch(cx, &mut h);
                    if l.borrow().len() >= k {
                        return TaskPoll::Ready(Ok(()));
                    }
                    match r {
                        TaskPoll::Ready(Err(e)) => TaskPoll::Ready(Err(e)),
                        _ => TaskPoll::Pending,
                    }
                })
                .await?;
                stop(z.socket())?;
                anyhow::Ok(())
            })?;
        }
        _ => bail!("{} is not a round-trip client", rx.label()),
    }
    echo.join()
        .map_err(|_| anyhow::anyhow!("echo thread panicked"))??;
    let v = lat.borrow().clone();
    Ok(v)
}

/// Sends the next ping from the reply's `readable`, recording each round trip.
struct PingPong {
    sent: Instant,
    lat: Rc<RefCell<Vec<u64>>>,
    k: usize,
}

impl ZmqHandler for PingPong {
    fn readable(&mut self, _: &mut [zmq::Message], s: &mut Sock<'_>, (): ()) {
        let now = Instant::now();
        let mut lat = self.lat.borrow_mut();
        lat.push(now.duration_since(self.sent).as_nanos() as u64);
        if lat.len() < self.k {
            self.sent = Instant::now();
            let _ = s.send([7u8; super::SIZE], false);
        }
    }
}

struct EvPing(PingPong);
impl ZmqHandler<Ctx<()>> for EvPing {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        s: &mut Sock<'_>,
        (_, _): (&mut (), &mut Ctx<()>),
    ) {
        self.0.readable(m, s, ());
    }
}

//! Request/reply with the *server* on each loop: a raw blocking DEALER client on its own
//! thread does `k` round trips of 64 B against a ROUTER echo served by each loop and peer;
//! the server thread's CPU per round trip is what each loop costs.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::Poll as TaskPoll;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use evnet::ev::{Ctx, Loop};
use evnet::fair::{CalloopZmq, MioZmq, Sock, TokioZmq, ZmqEvent, ZmqHandler, ZmqWatcher};
use futures::{SinkExt, StreamExt};

use super::hosts::Rx;
use super::peers;
use super::scenario::{self, Transport};
use super::util;

/// The servers measured, in the table's order.
pub const SERVERS: [Rx; 7] = [
    Rx::Raw,
    Rx::Evnet,
    Rx::Mio,
    Rx::Calloop,
    Rx::CalloopBook,
    Rx::Tokio,
    Rx::Tmq,
];

/// The table's label of a server.
pub fn label(rx: Rx) -> &'static str {
    match rx {
        Rx::Raw => "raw blocking ROUTER",
        Rx::CalloopBook => "calloop book source",
        Rx::Tmq => "tmq 0.5 Router",
        other => other.label(),
    }
}

/// One run's numbers.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// Round trips per second, seen by the client.
    pub rate: f64,
    /// The server thread's CPU per round trip, ns.
    pub cpu_ns: f64,
}

const STOP: &[u8] = b"stop";

/// Echoes `[id, body]`; false at the stop message.
fn echo(m: &[zmq::Message], s: &mut Sock<'_>) -> bool {
    if m.last().is_some_and(|b| &b[..] == STOP) {
        return false;
    }
    let parts: Vec<&[u8]> = m.iter().map(|p| &p[..]).collect();
    let _ = s.send_multipart(&parts);
    true
}

struct EvEcho;
impl ZmqHandler<Ctx<()>> for EvEcho {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        s: &mut Sock<'_>,
        (_, cx): (&mut (), &mut Ctx<()>),
    ) {
        if !echo(m, s) {
            cx.stop_loop();
        }
    }
}

struct PlainEcho(Rc<Cell<bool>>);
impl ZmqHandler for PlainEcho {
    fn readable(&mut self, m: &mut [zmq::Message], s: &mut Sock<'_>, (): ()) {
        if !echo(m, s) {
            self.0.set(true);
        }
    }
}

/// Runs `server`'s loop with a ROUTER bound on `t` until the stop message; sends the
/// endpoint on `ready`, returns the thread's CPU spent serving.
fn serve(ctx: zmq::Context, t: Transport, server: Rx, ready: mpsc::Sender<String>) -> Result<u64> {
    let cpu0 = util::thread_cpu_now_ns();
    let done = Rc::new(Cell::new(false));
    if server == Rx::Tmq {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            use tmq::AsZmqSocket;
            let router = tmq::router(&ctx).bind(&t.endpoint("serve"))?;
            let ep = router.get_socket().get_last_endpoint()?.unwrap_or_default();
            let (mut tx, mut rx) = router.split();
            ready.send(ep)?;
            while let Some(m) = rx.next().await {
                let m = m?;
                if m.iter().last().is_some_and(|b| &b[..] == STOP) {
                    break;
                }
                tx.send(m).await?;
            }
            anyhow::Ok(())
        })?;
        return Ok(util::thread_cpu_now_ns() - cpu0);
    }
    let router = ctx.socket(zmq::ROUTER)?;
    let ep = scenario::bind(&router, t, "serve")?;
    match server {
        Rx::Raw => {
            ready.send(ep)?;
            loop {
                let m = router.recv_multipart(0)?;
                if m.last().is_some_and(|b| b.as_slice() == STOP) {
                    break;
                }
                router.send_multipart(m, 0)?;
            }
        }
        Rx::Evnet => {
            let mut ev = Loop::<()>::new()?;
            let _w = ZmqWatcher::new(&mut ev, router, EvEcho)?;
            ready.send(ep)?;
            ev.run(&mut ())?;
        }
        Rx::Mio => {
            use mio::{Events, Interest, Poll, Token};
            let mut poll = Poll::new()?;
            let mut events = Events::with_capacity(64);
            let mut z = MioZmq::new(router)?;
            poll.registry()
                .register(&mut z, Token(0), Interest::READABLE)?;
            let mut h = PlainEcho(done.clone());
            ready.send(ep)?;
            while !done.get() {
                let timeout = z.poll_timeout(None);
                poll.poll(&mut events, timeout)?;
                z.dispatch(&events, &mut h)?;
            }
        }
        Rx::Calloop => {
            let mut el = calloop::EventLoop::<()>::try_new()?;
            let z = CalloopZmq::new(router)?;
            let d = done.clone();
            el.handle()
                .insert_source(z, move |ev, io: &mut evnet::fair::ZmqIo, _: &mut ()| {
                    if ev == ZmqEvent::Message {
                        let (m, mut s) = io.split();
                        if !echo(m, &mut s) {
                            d.set(true);
                        }
                    }
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            ready.send(ep)?;
            while !done.get() {
                el.dispatch(None, &mut ())?;
            }
        }
        Rx::CalloopBook => {
            let mut el = calloop::EventLoop::<()>::try_new()?;
            let src = peers::BookSource::new(router, None)?;
            let d = done.clone();
            el.handle()
                .insert_source(
                    src,
                    move |m: Vec<Vec<u8>>, s: &mut zmq::Socket, _: &mut ()| {
                        if m.last().is_some_and(|b| b.as_slice() == STOP) {
                            d.set(true);
                        } else {
                            let _ = s.send_multipart(m, zmq::DONTWAIT);
                        }
                    },
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            ready.send(ep)?;
            while !done.get() {
                el.dispatch(None, &mut ())?;
            }
        }
        Rx::Tokio => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut z = TokioZmq::new(router)?;
                let mut h = PlainEcho(done.clone());
                ready.send(ep)?;
                std::future::poll_fn(|cx| {
                    let r = z.poll_dispatch(cx, &mut h);
                    if done.get() {
                        return TaskPoll::Ready(Ok(()));
                    }
                    match r {
                        TaskPoll::Ready(Err(e)) => TaskPoll::Ready(Err(e)),
                        _ => TaskPoll::Pending,
                    }
                })
                .await?;
                anyhow::Ok(())
            })?;
        }
        other => bail!("{} is not a round-trip server", other.label()),
    }
    Ok(util::thread_cpu_now_ns() - cpu0)
}

/// `k` round trips from a raw DEALER against `server`.
pub fn serve_round_trips(t: Transport, server: Rx, k: usize) -> Result<Served> {
    let ctx = zmq::Context::new();
    let (ready_tx, ready) = mpsc::channel();
    let c2 = ctx.clone();
    let srv = thread::spawn(move || serve(c2, t, server, ready_tx));
    let ep = ready.recv_timeout(Duration::from_secs(30))?;
    let dealer = ctx.socket(zmq::DEALER)?;
    dealer.connect(&ep)?;
    let payload = [7u8; super::SIZE];
    // One round trip outside the measurement: the connection is up.
    dealer.send(&payload[..], 0)?;
    dealer.recv_bytes(0)?;
    let t0 = Instant::now();
    for _ in 0..k {
        dealer.send(&payload[..], 0)?;
        dealer.recv_bytes(0)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    dealer.send(STOP, 0)?;
    let cpu = srv
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    Ok(Served {
        rate: k as f64 / secs,
        cpu_ns: cpu as f64 / (k + 1) as f64,
    })
}

//! A worker for `examples/broker.rs`: the ZeroMQ guide's "Paranoid Pirate" worker on an
//! evnet loop. It says `READY`, answers `REQUEST`s (after `--work-ms` of simulated work, on
//! a timer, so heartbeats keep flowing meanwhile), and sends a heartbeat every
//! `--heartbeat-ms`. When 3 heartbeats in a row bring nothing from the broker, it takes
//! the broker for gone: it closes its socket and reconnects with a new one (and a new
//! identity), saying `READY` again, with an exponential back-off up to 32 intervals.
//!
//! `cargo run --release --example worker -- --connect tcp://127.0.0.1:5556`

#[macro_use]
#[path = "util/out.rs"]
mod out;
#[path = "util/pirate.rs"]
mod pirate;

use std::time::Duration;

use clap::Parser;
use evnet::ev::{Ctx, Loop};
use evnet::fair::{Sock, ZmqHandler, ZmqWatcher};
use evnet::zmq;

#[derive(Parser)]
#[command(about = "Worker for the broker example (ZeroMQ guide ch. 4, Paranoid Pirate)")]
struct Args {
    /// The broker's backend endpoint.
    #[arg(long, default_value = "tcp://127.0.0.1:5556")]
    connect: String,
    /// Heartbeat interval in milliseconds (the broker is gone after 3 silent ones).
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    /// Simulated work per request, milliseconds.
    #[arg(long, default_value_t = 0)]
    work_ms: u64,
}

struct Worker {
    ctx: zmq::Context,
    endpoint: String,
    socket: Option<ZmqWatcher>,
    /// Heartbeats left before the broker is taken for gone.
    liveness: u32,
    /// Heartbeat intervals to wait before the next reconnect.
    backoff: u32,
    /// Intervals still to wait before reconnecting (0: connected).
    waiting: u32,
    work: Duration,
    handled: u64,
}

impl Worker {
    /// A fresh DEALER to the broker, announced with READY.
    fn connect(&mut self, cx: &mut Ctx<Worker>) -> anyhow::Result<()> {
        self.socket = None; // closes the old one (linger 0: its queue is dropped)
        let s = self.ctx.socket(zmq::DEALER)?;
        s.set_linger(0)?;
        s.connect(&self.endpoint)?;
        s.send(pirate::READY, zmq::DONTWAIT)?;
        self.socket = Some(ZmqWatcher::new(cx, s, FromBroker)?);
        self.liveness = pirate::LIVENESS;
        Ok(())
    }

    fn send(&self, frames: &[&[u8]]) {
        if let Some(s) = &self.socket {
            let _ = s.socket().send_multipart(frames, zmq::DONTWAIT);
        }
    }
}

struct FromBroker;
impl ZmqHandler<Ctx<Worker>> for FromBroker {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (w, cx): (&mut Worker, &mut Ctx<Worker>),
    ) {
        w.liveness = pirate::LIVENESS;
        w.backoff = 1;
        if m.first().map(|k| &k[..]) != Some(pirate::REQUEST) {
            return; // a heartbeat: liveness is all it brings
        }
        let (Some(id), Some(body)) = (m.get(1), m.get(2)) else {
            return;
        };
        let (id, reply) = (id.to_vec(), pirate::answer(body));
        cx.timer(w.work, None, move |w: &mut Worker, _, _| {
            w.handled += 1;
            w.send(&[pirate::REPLY, &id, &reply]);
        });
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let heartbeat = Duration::from_millis(args.heartbeat_ms.max(1));
    let mut ev = Loop::<Worker>::new()?;
    let mut w = Worker {
        ctx: zmq::Context::new(),
        endpoint: args.connect.clone(),
        socket: None,
        liveness: pirate::LIVENESS,
        backoff: 1,
        waiting: 0,
        work: Duration::from_millis(args.work_ms),
        handled: 0,
    };
    w.connect(&mut ev)?;
    outln!("worker connected to {}", args.connect);
    ev.timer(heartbeat, Some(heartbeat), |w: &mut Worker, cx, _| {
        if w.waiting > 0 {
            w.waiting -= 1;
            if w.waiting == 0 {
                match w.connect(cx) {
                    Ok(()) => outln!("worker reconnected"),
                    Err(e) => eprintln!("worker: reconnect failed: {e:#}"),
                }
            }
            return;
        }
        w.liveness = w.liveness.saturating_sub(1);
        if w.liveness == 0 {
            eprintln!(
                "worker: broker silent; reconnecting in {} intervals",
                w.backoff
            );
            w.socket = None;
            w.waiting = w.backoff;
            w.backoff = (w.backoff * 2).min(32);
            return;
        }
        w.send(&[pirate::HEARTBEAT]);
    });
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |_, cx, _| cx.stop_loop())?;
    }
    ev.run(&mut w)?;
    outln!("handled {}", w.handled);
    Ok(())
}

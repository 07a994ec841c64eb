//! A load-balancing broker for N worker processes, on one evnet loop: the reliable
//! request-reply pattern of the ZeroMQ guide, chapter 4 ("Paranoid Pirate"), with retries.
//!
//! Clients (DEALER or REQ) send to the frontend ROUTER; workers (`examples/worker.rs`,
//! DEALER) connect to the backend ROUTER and say `READY`. Each request goes to the worker
//! that has been idle longest, one at a time. Both sides send heartbeats every
//! `--heartbeat-ms`; a worker silent for 3 of them is taken for dead and the request it
//! held is sent to another worker. Every request is answered exactly once: a late reply
//! from a worker given up on is dropped (workers answer idempotently, so either answer
//! would be the same). A restarted worker rejoins by saying `READY` again.
//!
//! `cargo run --release --example broker -- --frontend tcp://127.0.0.1:5555 \
//!   --backend tcp://127.0.0.1:5556`, then start workers with `--connect` to the backend.

#[macro_use]
#[path = "util/out.rs"]
mod out;
#[path = "util/pirate.rs"]
mod pirate;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use clap::Parser;
use evnet::ev::{Ctx, Loop};
use evnet::fair::{Sock, ZmqHandler, ZmqWatcher};
use evnet::zmq;

#[derive(Parser)]
#[command(about = "Load-balancing broker with heartbeats and retries (ZeroMQ guide ch. 4)")]
struct Args {
    /// Endpoint the clients' ROUTER binds (`tcp://127.0.0.1:*` picks a port).
    #[arg(long, default_value = "tcp://127.0.0.1:5555")]
    frontend: String,
    /// Endpoint the workers' ROUTER binds.
    #[arg(long, default_value = "tcp://127.0.0.1:5556")]
    backend: String,
    /// Heartbeat interval in milliseconds (a worker is dead after 3 missed).
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
}

/// A request in the broker's hands until its reply goes out.
struct Request {
    /// The client's envelope (identity, and any tag frames before the body).
    envelope: Vec<Vec<u8>>,
    body: Vec<u8>,
    /// The worker working on it, if any.
    worker: Option<Vec<u8>>,
}

struct Worker {
    /// Heard from last (any message counts as a heartbeat).
    seen: Instant,
    /// The request it holds.
    holds: Option<u64>,
}

struct Broker {
    front: Option<ZmqWatcher>,
    back: Option<ZmqWatcher>,
    heartbeat: Duration,
    next_id: u64,
    requests: HashMap<u64, Request>,
    /// Requests waiting for a worker, oldest first (retries go first).
    queue: VecDeque<u64>,
    workers: HashMap<Vec<u8>, Worker>,
    /// Idle workers, longest idle first.
    idle: VecDeque<Vec<u8>>,
    answered: u64,
    retried: u64,
}

impl Broker {
    /// Hands queued requests to idle workers.
    fn dispatch(&mut self) {
        let Some(back) = &self.back else { return };
        while !self.queue.is_empty() {
            let Some(w) = self.idle.pop_front() else {
                break;
            };
            let Some(worker) = self.workers.get_mut(&w) else {
                continue; // it died while idle
            };
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let Some(req) = self.requests.get_mut(&id) else {
                self.idle.push_front(w);
                continue;
            };
            let id_bytes = id.to_be_bytes();
            let frames: [&[u8]; 4] = [&w, pirate::REQUEST, &id_bytes, &req.body];
            match back.socket().send_multipart(frames, zmq::DONTWAIT) {
                Ok(()) => {
                    worker.holds = Some(id);
                    req.worker = Some(w);
                }
                Err(_) => {
                    // The worker's pipe is full or gone: forget it, keep the request.
                    self.queue.push_front(id);
                    self.workers.remove(&w);
                }
            }
        }
    }

    /// Forgets a worker; the request it held goes back to the front of the queue.
    fn bury(&mut self, w: &[u8]) {
        if let Some(dead) = self.workers.remove(w) {
            self.idle.retain(|i| i != w);
            if let Some(id) = dead.holds {
                if let Some(req) = self.requests.get_mut(&id) {
                    req.worker = None;
                    self.queue.push_front(id);
                    self.retried += 1;
                }
            }
            outln!("worker {} lost", hex(w));
        }
    }
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The clients' side: every request gets an id and waits for a worker.
struct Frontend;
impl ZmqHandler<Ctx<Broker>> for Frontend {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (b, _): (&mut Broker, &mut Ctx<Broker>),
    ) {
        let Some((body, envelope)) = m.split_last() else {
            return;
        };
        let id = b.next_id;
        b.next_id += 1;
        b.requests.insert(
            id,
            Request {
                envelope: envelope.iter().map(|f| f.to_vec()).collect(),
                body: body.to_vec(),
                worker: None,
            },
        );
        b.queue.push_back(id);
        b.dispatch();
    }
}

/// The workers' side: READY, HEARTBEAT, REPLY.
struct Backend;
impl ZmqHandler<Ctx<Broker>> for Backend {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (b, _): (&mut Broker, &mut Ctx<Broker>),
    ) {
        let (Some(w), Some(kind)) = (m.first(), m.get(1)) else {
            return;
        };
        let w = w.to_vec();
        let known = b.workers.contains_key(&w);
        match &kind[..] {
            k if k == pirate::READY => {
                if known {
                    b.bury(&w); // restarted under the same identity: start afresh
                }
                b.workers.insert(
                    w.clone(),
                    Worker {
                        seen: Instant::now(),
                        holds: None,
                    },
                );
                b.idle.push_back(w.clone());
                outln!("worker {} ready", hex(&w));
            }
            k if k == pirate::REPLY && known => {
                let (Some(id), Some(body)) = (m.get(2), m.get(3)) else {
                    return;
                };
                let id = u64::from_be_bytes(id[..].try_into().unwrap_or([0xff; 8]));
                let Some(worker) = b.workers.get_mut(&w) else {
                    return;
                };
                worker.seen = Instant::now();
                if worker.holds == Some(id) {
                    worker.holds = None;
                    b.idle.push_back(w.clone());
                }
                // Exactly once: a reply for a request already answered (or retried and
                // answered elsewhere) finds nothing and is dropped.
                if b.requests
                    .get(&id)
                    .is_some_and(|r| r.worker.as_deref() == Some(&w[..]))
                {
                    if let (Some(req), Some(front)) = (b.requests.remove(&id), &b.front) {
                        let mut frames: Vec<&[u8]> =
                            req.envelope.iter().map(Vec::as_slice).collect();
                        frames.push(&body[..]);
                        if front.socket().send_multipart(frames, zmq::DONTWAIT).is_ok() {
                            b.answered += 1;
                        }
                    }
                }
            }
            k if k == pirate::HEARTBEAT && known => {
                if let Some(worker) = b.workers.get_mut(&w) {
                    worker.seen = Instant::now();
                }
            }
            // A worker the broker gave up on (or never met): it must say READY again,
            // which it does when the broker's heartbeats stop reaching it.
            _ => {}
        }
        b.dispatch();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ctx = zmq::Context::new();
    let (front, back) = (ctx.socket(zmq::ROUTER)?, ctx.socket(zmq::ROUTER)?);
    front.bind(&args.frontend)?;
    back.bind(&args.backend)?;
    outln!(
        "frontend {} backend {}",
        front.get_last_endpoint()?.unwrap_or_default(),
        back.get_last_endpoint()?.unwrap_or_default()
    );
    let mut ev = Loop::<Broker>::new()?;
    let heartbeat = Duration::from_millis(args.heartbeat_ms.max(1));
    let mut broker = Broker {
        front: Some(ZmqWatcher::new(&mut ev, front, Frontend)?),
        back: Some(ZmqWatcher::new(&mut ev, back, Backend)?),
        heartbeat,
        next_id: 0,
        requests: HashMap::new(),
        queue: VecDeque::new(),
        workers: HashMap::new(),
        idle: VecDeque::new(),
        answered: 0,
        retried: 0,
    };
    // Heartbeats out, and the dead buried (their requests retried elsewhere).
    ev.timer(heartbeat, Some(heartbeat), |b: &mut Broker, _, _| {
        let limit = b.heartbeat * pirate::LIVENESS;
        let dead: Vec<Vec<u8>> = b
            .workers
            .iter()
            .filter(|(_, w)| w.seen.elapsed() > limit)
            .map(|(id, _)| id.clone())
            .collect();
        for w in dead {
            b.bury(&w);
        }
        if let Some(back) = &b.back {
            for w in b.workers.keys() {
                let _ = back
                    .socket()
                    .send_multipart([&w[..], pirate::HEARTBEAT], zmq::DONTWAIT);
            }
        }
        b.dispatch();
    });
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |_, cx, _| cx.stop_loop())?;
    }
    ev.run(&mut broker)?;
    outln!(
        "stopped: {} answered, {} retried, {} waiting",
        broker.answered,
        broker.retried,
        broker.requests.len()
    );
    Ok(())
}

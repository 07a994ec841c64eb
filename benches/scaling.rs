//! N loops on N cores: one loop against two (or `--loops N`), serving a server-bound load.
//!
//! The server is `evnet::loops::Loops`, each loop accepting on its own `SO_REUSEPORT`
//! shard of one port. Every request (64 B) costs the handler about 50 µs of CPU (a
//! calibrated compute loop) before the 64 B reply. The client is one evnet loop on its own
//! thread, cheap by design: 16 connections, each keeping 32 requests in flight (a reply
//! sends the next request), so the server never waits for it.
//!
//! Reported: requests/s over the measured window, the server loops' CPU per request (their
//! thread CPU over everything they served), and each configuration's ratio to one loop.
//!
//! cargo bench --bench scaling -- [--runs R] [--loops N] [--pinned]

mod util;

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use evnet::bufio::{Conn, Options, Stream, StreamEvent, StreamHandler};
use evnet::ev::{Ctx, Loop};
use evnet::loops::LoopsBuilder;
use evnet::socket::{bind_tcp_shard, Accept, Listener};

const REQ: usize = 64;
const CONNS: usize = 16;
const WINDOW: usize = 32;
const WORK: Duration = Duration::from_micros(50);
const WARMUP: Duration = Duration::from_millis(300);
const MEASURE: Duration = Duration::from_secs(2);

/// A compute loop the optimizer cannot remove.
fn spin(iters: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

/// Iterations of `spin` that take `WORK` of this thread's CPU.
fn calibrate() -> u64 {
    let n = 1_000_000;
    let c0 = util::thread_cpu_now_ns();
    spin(n);
    let ns = (util::thread_cpu_now_ns() - c0).max(1);
    n * WORK.as_nanos() as u64 / ns
}

struct Server {
    listener: Option<Listener<Server>>,
    iters: u64,
    served: u64,
}

struct Work;
impl StreamHandler<Server> for Work {
    fn read(&mut self, c: &Conn<Server>, req: Bytes, st: &mut Server, cx: &mut Ctx<Server>) {
        spin(st.iters);
        st.served += 1;
        c.write_bytes(cx, req);
        c.read_exact(cx, REQ);
    }
    fn event(&mut self, c: &Conn<Server>, _e: StreamEvent, _: &mut Server, cx: &mut Ctx<Server>) {
        c.close(cx);
    }
}

struct Client {
    replies: u64,
    measuring: Option<(Instant, u64)>,
    result: Option<(Duration, u64)>,
}

struct Pipeline;
impl StreamHandler<Client> for Pipeline {
    fn read(&mut self, c: &Conn<Client>, rep: Bytes, st: &mut Client, cx: &mut Ctx<Client>) {
        st.replies += 1;
        c.write_bytes(cx, rep); // the next request
        c.read_exact(cx, REQ);
    }
    fn event(&mut self, _: &Conn<Client>, e: StreamEvent, _: &mut Client, _: &mut Ctx<Client>) {
        panic!("client connection: {e:?}"); // the server never closes first
    }
}

/// One run with `n` server loops: (requests/s, server CPU ns per request).
fn run(n: usize, pinned: bool, iters: u64) -> Result<(f64, f64)> {
    let first = bind_tcp_shard("127.0.0.1:0".parse()?, 1024)?;
    let addr: SocketAddr = first.local_addr()?.as_socket().expect("inet");
    let first = Mutex::new(Some(first));
    let cpu = Arc::new(Mutex::new(Vec::new()));
    let cpu2 = cpu.clone();
    let loops = LoopsBuilder::new(n).pin(pinned).name("srv").spawn(
        move |_, ev| {
            let sock = match first.lock().ok().and_then(|mut f| f.take()) {
                Some(s) => s,
                None => bind_tcp_shard(addr, 1024)?,
            };
            let l = Listener::new(ev, vec![sock], |st: &mut Server, cx, a| {
                if let Accept::Conn(c) = a {
                    let _ = c.socket.set_nodelay(true);
                    if let Ok(s) = Stream::with_options(cx, c.socket, Options::default(), Work) {
                        s.read_exact(cx, REQ);
                        s.detach();
                    }
                }
                let _ = st;
            });
            Ok(Server {
                listener: Some(l),
                iters,
                served: 0,
            })
        },
        move |st, cx| {
            cpu2.lock()
                .unwrap()
                .push((util::thread_cpu_now_ns(), st.served));
            st.listener = None;
            cx.stop_loop();
        },
    )?;
    let client = std::thread::spawn(move || -> Result<(Duration, u64)> {
        let mut ev = Loop::<Client>::new()?;
        for _ in 0..CONNS {
            let s = TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            let st = Stream::with_options(&mut ev, s.into(), Options::default(), Pipeline)?;
            for _ in 0..WINDOW {
                st.write(&mut ev, &[7u8; REQ]);
            }
            st.read_exact(&mut ev, REQ);
            st.detach();
        }
        ev.timer(WARMUP, None, |st: &mut Client, _, _| {
            st.measuring = Some((Instant::now(), st.replies));
        });
        ev.timer(WARMUP + MEASURE, None, |st: &mut Client, cx, _| {
            if let Some((t0, r0)) = st.measuring {
                st.result = Some((t0.elapsed(), st.replies - r0));
            }
            cx.stop_loop();
        });
        let mut st = Client {
            replies: 0,
            measuring: None,
            result: None,
        };
        ev.run(&mut st)?;
        st.result.ok_or_else(|| anyhow::anyhow!("no measurement"))
    });
    let (took, replies) = client.join().expect("client thread")?;
    loops.stop();
    loops.join()?;
    let (cpu_ns, served) = cpu
        .lock()
        .unwrap()
        .iter()
        .fold((0u64, 0u64), |(c, s), (c2, s2)| (c + c2, s + s2));
    Ok((
        replies as f64 / took.as_secs_f64(),
        cpu_ns as f64 / served.max(1) as f64,
    ))
}

fn main() -> Result<()> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let pinned = raw.iter().any(|a| a == "--pinned");
    let mut loops = 2usize;
    let mut rest = Vec::new();
    let mut it = raw.into_iter().filter(|a| a != "--pinned");
    while let Some(a) = it.next() {
        if a == "--loops" {
            loops = it.next().unwrap_or_default().parse()?;
        } else {
            rest.push(a);
        }
    }
    let args = util::Args::parse_from(rest, 1)?;
    let iters = calibrate();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "scaling: 64 B requests costing ~{} µs of CPU each ({iters} iterations), {CONNS} \
         client connections x {WINDOW} in flight, {} s measured, {cpus} CPUs, loops {}, \
         median of {} runs (configurations alternating)\n",
        WORK.as_micros(),
        MEASURE.as_secs(),
        if pinned { "pinned" } else { "unpinned" },
        args.runs
    );
    let configs: Vec<usize> = if loops == 1 { vec![1] } else { vec![1, loops] };
    let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); configs.len()];
    for r in 0..args.runs {
        for k in 0..configs.len() {
            let k = if r % 2 == 0 { k } else { configs.len() - 1 - k };
            samples[k].push(run(configs[k], pinned, iters)?);
        }
    }
    println!(
        "{:<8} {:>12} {:>10} {:>20} {:>12}",
        "loops", "requests/s", "x 1 loop", "server CPU µs/req", "x 1 loop"
    );
    let mut base = (0.0, 0.0);
    for (k, n) in configs.iter().enumerate() {
        let mut rate: Vec<f64> = samples[k].iter().map(|s| s.0).collect();
        let mut cpu: Vec<f64> = samples[k].iter().map(|s| s.1).collect();
        let (rate, cpu) = (util::median(&mut rate), util::median(&mut cpu) / 1000.0);
        if k == 0 {
            base = (rate, cpu);
        }
        println!(
            "{n:<8} {rate:>12.0} {:>10.2} {cpu:>20.1} {:>12.2}",
            rate / base.0,
            cpu / base.1
        );
    }
    Ok(())
}

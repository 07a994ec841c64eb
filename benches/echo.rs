//! Echo over loopback: 100 concurrent connections doing ping-pong with 64 B and 16 KiB
//! messages, against evnet's `bufio` echo server and a minimal tokio current-thread echo
//! server, in one run. Each server runs on its own thread. Two clients drive both servers
//! in turn: a tokio current-thread client (100 tasks) and an evnet client (100 streams),
//! since on a 2-core machine the client's own scheduling shapes the latency tail. Each run
//! of a row starts a fresh server; the two servers alternate run by run (tokio first on
//! even runs, evnet first on odd ones), so drift on the machine hits both alike.
//!
//! `--threads T` spreads the 100 connections over T client threads (default 1). With one
//! client thread, client and server each have a core of a 2-core machine; more threads
//! oversubscribe it and the scheduler shapes the numbers.
//!
//! ```text
//! cargo bench --bench echo -- [--runs R] [--threads T] [--only 64|16384] [--json PATH]
//! ```

mod util;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use evnet::bufio::{Conn, Stream, StreamEvent, StreamHandler};
use evnet::ev::{Ctx, Loop};
use evnet::socket::{bind_tcp_all, connect, Accept, ConnectOptions, Listener, NoLookup};

const CONNS: usize = 100;
/// The servers compared, by key and label; the first is the baseline.
const SERVERS: [(&str, &str); 2] = [("tokio", "tokio current-thread"), ("evnet", "evnet bufio")];
const WARMUP: Duration = Duration::from_millis(300);
const MEASURE: Duration = Duration::from_secs(2);

// ----- the servers ---------------------------------------------------------------------

/// Echoes chunks back, counting them in the loop state.
struct Echo;
impl StreamHandler<u64> for Echo {
    fn read(&mut self, c: &Conn<u64>, data: Bytes, n: &mut u64, cx: &mut Ctx<u64>) {
        *n += 1;
        c.write_bytes(cx, data);
        c.read_chunk(cx);
    }
    fn event(&mut self, c: &Conn<u64>, _: StreamEvent, _: &mut u64, cx: &mut Ctx<u64>) {
        c.abort(cx);
    }
}

/// What a server thread reports when stopped: its CPU time and the echoes it did.
type ServerReport = (u64, u64);

/// evnet: a Listener and one bufio Stream per connection, echoing chunks. Sends back its
/// address and a waker that stops it.
fn evnet_server(tx: mpsc::Sender<(SocketAddr, Stopper)>) -> ServerReport {
    let run = || -> Result<ServerReport> {
        let mut ev = Loop::<u64>::new()?;
        let socks = bind_tcp_all(Some("127.0.0.1"), 0)?;
        let addr = socks[0].local_addr()?.as_socket().context("inet")?;
        let l = Listener::new(&mut ev, socks, |_, cx, a| {
            if let Accept::Conn(c) = a {
                let _ = c.socket.set_nodelay(true);
                if let Ok(s) = Stream::new(cx, c.socket, Echo) {
                    s.read_chunk(cx);
                    s.detach();
                }
            }
        });
        let (_w, waker) = ev.waker(|_, cx, _| cx.stop_loop())?;
        tx.send((addr, Stopper::Waker(waker)))?;
        let mut echoes = 0;
        ev.run(&mut echoes)?;
        drop(l);
        Ok((util::thread_cpu_ns(), echoes))
    };
    run().unwrap_or_else(|e| {
        eprintln!("evnet server: {e:#}");
        (0, 0)
    })
}

/// How the driver stops a server.
enum Stopper {
    Waker(evnet::ev::Waker),
    Flag(Arc<AtomicBool>),
}

impl Stopper {
    fn stop(&self) {
        match self {
            Stopper::Waker(w) => w.wake(),
            Stopper::Flag(f) => f.store(true, Ordering::SeqCst),
        }
    }
}

/// tokio: the minimal current-thread echo server (accept loop, a task per connection).
fn tokio_server(tx: mpsc::Sender<(SocketAddr, Stopper)>) -> ServerReport {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return (0, 0);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let echoes = Arc::new(AtomicU64::new(0));
    let counted = echoes.clone();
    rt.block_on(async move {
        let Ok(l) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            return;
        };
        let Ok(addr) = l.local_addr() else { return };
        if tx.send((addr, Stopper::Flag(stop.clone()))).is_err() {
            return;
        }
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.set_nodelay(true);
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        counted.fetch_add(1, Ordering::Relaxed);
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        // Polled every 10 ms: a hundred timer wake-ups a second against ~10^5 echoes.
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (util::thread_cpu_ns(), echoes.load(Ordering::Relaxed))
}

// ----- the clients ---------------------------------------------------------------------

/// When a client measures: round trips sent in `[from, to)` count; earlier ones warm up.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

impl Window {
    fn new() -> Window {
        let from = Instant::now() + WARMUP;
        Window {
            from,
            to: from + MEASURE,
        }
    }
}

/// What one client thread measured: round-trip times in µs.
type Rtts = Vec<f64>;

struct Client {
    size: usize,
    msg: Bytes,
    window: Window,
    sent_at: Vec<Instant>,
    rtts: Rtts,
    connected: usize,
    streams: Vec<Stream<Client>>,
}

struct Ping(usize);
impl StreamHandler<Client> for Ping {
    fn read(&mut self, c: &Conn<Client>, data: Bytes, st: &mut Client, cx: &mut Ctx<Client>) {
        let sent = st.sent_at[self.0];
        if data.len() == st.size && sent >= st.window.from && sent < st.window.to {
            st.rtts
                .push(cx.now().duration_since(sent).as_nanos() as f64 / 1e3);
        }
        st.sent_at[self.0] = Instant::now();
        c.write_bytes(cx, st.msg.clone());
        c.read_exact(cx, st.size);
    }
    fn event(&mut self, _: &Conn<Client>, e: StreamEvent, _: &mut Client, _: &mut Ctx<Client>) {
        eprintln!("client connection: {e:?}");
    }
}

/// One tokio current-thread client: `conns` tasks, one per connection.
fn tokio_client(addr: SocketAddr, size: usize, conns: usize, w: Window) -> Result<Rtts> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    Ok(rt.block_on(async move {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            tasks.push(tokio::spawn(async move {
                let mut rtts = Vec::new();
                let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                    return rtts;
                };
                let _ = s.set_nodelay(true);
                let msg = vec![b'e'; size];
                let mut buf = vec![0u8; size];
                loop {
                    let t = Instant::now();
                    if t >= w.to {
                        return rtts;
                    }
                    if s.write_all(&msg).await.is_err() || s.read_exact(&mut buf).await.is_err() {
                        return rtts;
                    }
                    if t >= w.from {
                        rtts.push(t.elapsed().as_nanos() as f64 / 1e3);
                    }
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            if let Ok(v) = t.await {
                all.extend(v);
            }
        }
        all
    }))
}

/// One evnet client: a loop with `conns` bufio streams.
fn evnet_client(addr: SocketAddr, size: usize, conns: usize, w: Window) -> Result<Rtts> {
    let mut ev = Loop::<Client>::new()?;
    for i in 0..conns {
        connect(
            &mut ev,
            &NoLookup,
            addr,
            ConnectOptions::default(),
            move |st: &mut Client, cx: &mut Ctx<Client>, r| {
                let Ok(c) = r else {
                    return eprintln!("connect failed");
                };
                let _ = c.socket.set_nodelay(true);
                let Ok(s) = Stream::new(cx, c.socket, Ping(i)) else {
                    return;
                };
                st.sent_at[i] = Instant::now();
                s.write_bytes(cx, st.msg.clone());
                s.read_exact(cx, st.size);
                st.streams.push(s);
                st.connected += 1;
            },
        )
        .detach();
    }
    let mut st = Client {
        size,
        msg: Bytes::from(vec![b'e'; size]),
        window: w,
        sent_at: vec![Instant::now(); conns],
        rtts: Vec::with_capacity(1 << 20),
        connected: 0,
        streams: Vec::new(),
    };
    ev.run_until(
        &mut st,
        w.from.saturating_duration_since(Instant::now()),
        |s| s.connected == conns,
    )?;
    anyhow::ensure!(st.connected == conns, "only {} connected", st.connected);
    ev.run_until(
        &mut st,
        w.to.saturating_duration_since(Instant::now()),
        |_| false,
    )?;
    Ok(st.rtts)
}

struct Sample {
    msgs_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// Server thread CPU per echo.
    server_ns: f64,
}

/// Drives the server at `addr` with `CONNS` connections spread over `threads` client
/// threads of the given kind, all measuring the same window.
fn drive(kind: &str, threads: usize, addr: SocketAddr, size: usize) -> Result<Sample> {
    let w = Window::new();
    let evnet = kind == "evnet";
    let mut clients = Vec::new();
    for t in 0..threads {
        let conns = CONNS / threads + usize::from(t < CONNS % threads);
        clients.push(std::thread::spawn(move || {
            if evnet {
                evnet_client(addr, size, conns, w)
            } else {
                tokio_client(addr, size, conns, w)
            }
        }));
    }
    let mut rtts = Vec::new();
    for c in clients {
        rtts.extend(c.join().map_err(|_| anyhow::anyhow!("client panicked"))??);
    }
    anyhow::ensure!(!rtts.is_empty(), "no round trips");
    Ok(Sample {
        msgs_per_s: rtts.len() as f64 / MEASURE.as_secs_f64(),
        p50_us: util::percentile(&mut rtts, 0.5),
        p99_us: util::percentile(&mut rtts, 0.99),
        server_ns: 0.0,
    })
}

/// One run: starts the server of `key` on its own thread, drives it, stops it.
fn run_once(key: &str, client: &str, threads: usize, size: usize) -> Result<Sample> {
    let (tx, rx) = mpsc::channel();
    let serve: fn(mpsc::Sender<(SocketAddr, Stopper)>) -> ServerReport = if key == "tokio" {
        tokio_server
    } else {
        evnet_server
    };
    let server = std::thread::Builder::new()
        .name(format!("srv-{key}"))
        .spawn(move || serve(tx))?;
    let (addr, stop) = rx.recv_timeout(Duration::from_secs(5))?;
    let sample = drive(client, threads, addr, size);
    stop.stop();
    let (cpu, echoes) = server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))?;
    let mut sample = sample?;
    sample.server_ns = cpu as f64 / echoes.max(1) as f64;
    Ok(sample)
}

fn main() -> Result<()> {
    let args = util::Args::parse(1)?;
    let t = args.threads.unwrap_or(1);
    println!(
        "echo: {CONNS} connections ping-pong on loopback, {}s measured after {}ms warm-up; \
         median of {} runs, the two servers alternating",
        MEASURE.as_secs(),
        WARMUP.as_millis(),
        args.runs
    );
    println!(
        "{:<9} {:<7} {:<22} {:>10} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8}",
        "client",
        "size",
        "server",
        "msgs/s",
        "x tokio",
        "p50 us",
        "p99 us",
        "x tokio",
        "srv ns",
        "x tokio"
    );
    let mut rows = Vec::new();
    for client in ["tokio", "evnet"] {
        for size in [64usize, 16 * 1024] {
            if args.only.as_deref().is_some_and(|o| o != size.to_string()) {
                continue;
            }
            let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
            for r in 0..args.runs {
                // Alternate which server goes first, so drift hits both alike.
                for k in [r % 2, 1 - r % 2] {
                    samples[k].push(run_once(SERVERS[k].0, client, t, size)?);
                }
            }
            let mut base: Option<(f64, f64, f64)> = None;
            for (k, s) in samples.iter().enumerate() {
                let med = |f: fn(&Sample) -> f64| {
                    let mut v: Vec<f64> = s.iter().map(f).collect();
                    util::median(&mut v)
                };
                let (m, p50, p99, cpu) = (
                    med(|x| x.msgs_per_s),
                    med(|x| x.p50_us),
                    med(|x| x.p99_us),
                    med(|x| x.server_ns),
                );
                let (bm, bp, bc) = *base.get_or_insert((m, p99, cpu));
                let (key, label) = SERVERS[k];
                let who = format!("{client} x{t}");
                println!(
                    "{:<9} {:<7} {:<22} {:>10.0} {:>8.2} {:>9.1} {:>9.1} {:>8.2} {:>9.0} {:>8.2}",
                    who,
                    size,
                    label,
                    m,
                    m / bm,
                    p50,
                    p99,
                    p99 / bp,
                    cpu,
                    cpu / bc
                );
                rows.push(format!(
                    "  {{\"client\": \"{client}\", \"client_threads\": {t}, \"size\": {size}, \"server\": \"{key}\", \"msgs_per_s\": {m:.0}, \"p50_us\": {p50:.1}, \"p99_us\": {p99:.1}, \"server_cpu_ns\": {cpu:.0}}}"
                ));
            }
        }
    }
    if let Some(p) = &args.json {
        util::write_json(p, &rows)?;
    }
    Ok(())
}

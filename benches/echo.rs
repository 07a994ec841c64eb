//! Echo over loopback: 100 concurrent connections doing ping-pong with 64 B and 16 KiB
//! messages, against evnet's `bufio` echo server and a minimal tokio current-thread echo
//! server, in one run. Each server runs on its own thread. Two clients drive both servers
//! in turn: a tokio current-thread client (100 tasks) and an evnet client (100 streams),
//! since on a 2-core machine the client's own scheduling shapes the latency tail.
//!
//! ```text
//! cargo bench --bench echo -- [--runs R] [--json PATH]
//! ```

mod util;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use evnet::bufio::{Conn, Event, Handler, Stream};
use evnet::ev::{Ctx, Loop};
use evnet::socket::{bind_tcp_all, connect, Accept, ConnectOptions, Listener};

const CONNS: usize = 100;
const WARMUP: Duration = Duration::from_millis(300);
const MEASURE: Duration = Duration::from_secs(2);

// ----- the servers ---------------------------------------------------------------------

/// Echoes chunks back, counting them in the loop state.
struct Echo;
impl Handler<u64> for Echo {
    fn read(&mut self, c: &Conn<u64>, data: Bytes, n: &mut u64, cx: &mut Ctx<u64>) {
        *n += 1;
        c.write_bytes(cx, data);
        c.read_chunk(cx);
    }
    fn event(&mut self, c: &Conn<u64>, _: Event, _: &mut u64, cx: &mut Ctx<u64>) {
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
        let (_w, waker) = ev.wake(|_, cx, _| cx.stop_loop())?;
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

// ----- the client ----------------------------------------------------------------------

struct Client {
    size: usize,
    msg: Bytes,
    start: Instant,
    sent_at: Vec<Instant>,
    rtts: Vec<f64>,
    done: usize,
    connected: usize,
    streams: Vec<Stream<Client>>,
}

struct Ping(usize);
impl Handler<Client> for Ping {
    fn read(&mut self, c: &Conn<Client>, data: Bytes, st: &mut Client, cx: &mut Ctx<Client>) {
        let now = cx.now();
        if data.len() == st.size && now >= st.start + WARMUP {
            st.rtts
                .push(now.duration_since(st.sent_at[self.0]).as_nanos() as f64 / 1e3);
            st.done += 1;
        }
        st.sent_at[self.0] = Instant::now();
        c.write_bytes(cx, st.msg.clone());
        c.read_exact(cx, st.size);
    }
    fn event(&mut self, _: &Conn<Client>, e: Event, _: &mut Client, _: &mut Ctx<Client>) {
        eprintln!("client connection: {e:?}");
    }
}

/// The same ping-pong from a tokio current-thread client: 100 tasks, one per connection.
fn drive_tokio(addr: SocketAddr, size: usize) -> Result<Sample> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let (rtts, n) = rt.block_on(async move {
        let start = Instant::now();
        let measure_from = start + WARMUP;
        let end = measure_from + MEASURE;
        let mut tasks = Vec::new();
        for _ in 0..CONNS {
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
                    if t >= end {
                        return rtts;
                    }
                    if s.write_all(&msg).await.is_err() || s.read_exact(&mut buf).await.is_err() {
                        return rtts;
                    }
                    if t >= measure_from {
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
        let n = all.len();
        (all, n)
    });
    anyhow::ensure!(n > 0, "no round trips");
    let mut rtts = rtts;
    Ok(Sample {
        msgs_per_s: n as f64 / MEASURE.as_secs_f64(),
        p50_us: util::percentile(&mut rtts, 0.5),
        p99_us: util::percentile(&mut rtts, 0.99),
        server_ns: 0.0,
    })
}

struct Sample {
    msgs_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// Server thread CPU per echo.
    server_ns: f64,
}

fn drive(addr: SocketAddr, size: usize) -> Result<Sample> {
    let mut ev = Loop::<Client>::new()?;
    for i in 0..CONNS {
        connect(
            &mut ev,
            vec![addr.into()],
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
        start: Instant::now(),
        sent_at: vec![Instant::now(); CONNS],
        rtts: Vec::with_capacity(1 << 20),
        done: 0,
        connected: 0,
        streams: Vec::new(),
    };
    ev.run_until(&mut st, Duration::from_secs(10), |s| s.connected == CONNS)?;
    anyhow::ensure!(st.connected == CONNS, "only {} connected", st.connected);
    st.start = Instant::now();
    ev.run_until(&mut st, WARMUP + MEASURE, |_| false)?;
    let n = st.done;
    anyhow::ensure!(n > 0, "no round trips");
    Ok(Sample {
        msgs_per_s: n as f64 / MEASURE.as_secs_f64(),
        p50_us: util::percentile(&mut st.rtts, 0.5),
        p99_us: util::percentile(&mut st.rtts, 0.99),
        server_ns: 0.0,
    })
}

fn main() -> Result<()> {
    let args = util::Args::parse(1)?;
    println!(
        "echo: {CONNS} connections ping-pong on loopback, {}s measured after {}ms warm-up; median of {} runs",
        MEASURE.as_secs(),
        WARMUP.as_millis(),
        args.runs
    );
    println!(
        "{:<7} {:<7} {:<22} {:>10} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8}",
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
        let tokio_client = client == "tokio";
        for size in [64usize, 16 * 1024] {
            let mut base: Option<(f64, f64, f64)> = None;
            for key in ["tokio", "evnet"] {
                if args
                    .only
                    .as_deref()
                    .is_some_and(|o| o != key && o != size.to_string())
                {
                    continue;
                }
                let mut s = Vec::new();
                for _ in 0..args.runs {
                    let (tx, rx) = mpsc::channel();
                    let server = match key {
                        "tokio" => std::thread::spawn(move || tokio_server(tx)),
                        _ => std::thread::spawn(move || evnet_server(tx)),
                    };
                    let (addr, stop) = rx.recv_timeout(Duration::from_secs(5))?;
                    let mut sample = if tokio_client {
                        drive_tokio(addr, size)?
                    } else {
                        drive(addr, size)?
                    };
                    stop.stop();
                    let (cpu, echoes) = server
                        .join()
                        .map_err(|_| anyhow::anyhow!("server panicked"))?;
                    sample.server_ns = cpu as f64 / echoes.max(1) as f64;
                    s.push(sample);
                }
                let mut m: Vec<f64> = s.iter().map(|x| x.msgs_per_s).collect();
                let mut p50: Vec<f64> = s.iter().map(|x| x.p50_us).collect();
                let mut p99: Vec<f64> = s.iter().map(|x| x.p99_us).collect();
                let mut cpu: Vec<f64> = s.iter().map(|x| x.server_ns).collect();
                let (m, p50, p99, cpu) = (
                    util::median(&mut m),
                    util::median(&mut p50),
                    util::median(&mut p99),
                    util::median(&mut cpu),
                );
                let (bm, bp, bc) = *base.get_or_insert((m, p99, cpu));
                let label = if key == "tokio" {
                    "tokio current-thread"
                } else {
                    "evnet bufio"
                };
                println!(
                    "{:<7} {:<7} {:<22} {:>10.0} {:>8.2} {:>9.1} {:>9.1} {:>8.2} {:>9.0} {:>8.2}",
                    client,
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
                "  {{\"client\": \"{client}\", \"size\": {size}, \"server\": \"{key}\", \"msgs_per_s\": {m:.0}, \"p50_us\": {p50:.1}, \"p99_us\": {p99:.1}, \"server_cpu_ns\": {cpu:.0}}}"
            ));
            }
        }
    }
    if let Some(p) = &args.json {
        util::write_json(p, &rows)?;
    }
    Ok(())
}

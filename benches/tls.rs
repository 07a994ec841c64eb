//! TLS over loopback, evnet's TLS streams against a tokio current-thread server with
//! tokio-rustls, in one run: the same rustls version, ring provider, certificates (ECDSA
//! P-256, made at start with rcgen) and TLS 1.3 cipher suite. Each server runs on its own
//! thread; the servers alternate run by run.
//!
//! (a) echo: 100 connections doing ping-pong with 64 B and 16 KiB messages (blocking
//! rustls clients, one thread each): msgs/s and p99 round trip; (b) handshakes/s: connect,
//! full TLS 1.3 handshake, one echo, close, 100 in flight (p50/p99: connect to the echo's
//! answer); (c) the server thread's CPU per
//! operation (round trip or connection). The server's CPU includes the whole accept path;
//! a server whose thread waits less shows more CPU per operation.
//!
//! ```text
//! cargo bench --bench tls -- [--runs R]
//! ```

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use evnet::bufio::{Conn, StreamEvent, StreamHandler};
use evnet::bytes::Bytes;
use evnet::ev::{Ctx, Loop, Waker};
use evnet::socket::{bind_tcp_all, Accept, Listener};
use evnet::tls::{Session, TlsAcceptor};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const CONNS: usize = 100;
const MEASURE: Duration = Duration::from_secs(2);

struct Certs {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

/// One ECDSA P-256 CA and server certificate, both configs on the ring provider, TLS 1.3.
fn certs() -> Result<Certs> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["bench.test".into()])?
        .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::try_from(key.serialize_der()).map_err(anyhow::Error::msg)?,
        )?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec()))?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Certs {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

// ----- the servers ---------------------------------------------------------------------

struct Echo;
impl StreamHandler<u64> for Echo {
    fn read(&mut self, c: &Conn<u64>, data: Bytes, n: &mut u64, cx: &mut Ctx<u64>) {
        *n += 1;
        c.write_bytes(cx, data);
        c.read_chunk(cx);
    }
    fn event(&mut self, c: &Conn<u64>, e: StreamEvent, _: &mut u64, cx: &mut Ctx<u64>) {
        match e {
            StreamEvent::Connected => {}
            StreamEvent::Eof => c.close(cx),
            _ => c.abort(cx),
        }
    }
}

enum Stopper {
    Waker(Waker),
    Flag(Arc<AtomicBool>, SocketAddr),
}

impl Stopper {
    fn stop(self) {
        match self {
            Stopper::Waker(w) => w.wake(),
            Stopper::Flag(f, addr) => {
                f.store(true, Ordering::SeqCst);
                let _ = TcpStream::connect(addr); // wakes the accept loop
            }
        }
    }
}

/// Server CPU ns and reads served when stopped.
type Report = (u64, u64);

fn evnet_server(cfg: Arc<rustls::ServerConfig>, tx: mpsc::Sender<(SocketAddr, Stopper)>) -> Report {
    let run = || -> Result<Report> {
        let mut ev = Loop::<u64>::new()?;
        let socks = bind_tcp_all(Some("127.0.0.1"), 0)?;
        let addr = socks[0].local_addr()?.as_socket().context("inet")?;
        let l = Listener::new(&mut ev, socks, move |_, cx, a| {
            if let Accept::Conn(c) = a {
                let _ = c.socket.set_nodelay(true);
                let session = Session::default();
                let dirty_ok = false;
                if let Ok(s) = TlsAcceptor::new(cfg.clone())
                    .allow_dirty_shutdown(dirty_ok)
                    .accept(cx, c.socket, &session, Echo)
                {
                    s.read_chunk(cx);
                    s.detach();
                }
            }
        });
        let (_w, waker) = ev.waker(|_, cx, _| cx.stop_loop())?;
        tx.send((addr, Stopper::Waker(waker)))?;
        let mut n = 0;
        ev.run(&mut n)?;
        drop(l);
        Ok((util::thread_cpu_ns(), n))
    };
    run().unwrap_or_else(|e| {
        eprintln!("evnet server: {e:#}");
        (0, 0)
    })
}

fn tokio_server(cfg: Arc<rustls::ServerConfig>, tx: mpsc::Sender<(SocketAddr, Stopper)>) -> Report {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let count = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let local = tokio::task::LocalSet::new();
    let c2 = count.clone();
    local.block_on(&rt, async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        tx.send((addr, Stopper::Flag(stop.clone(), addr)))
            .expect("send");
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        loop {
            let Ok((s, _)) = l.accept().await else { break };
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let _ = s.set_nodelay(true);
            let acceptor = acceptor.clone();
            let count = c2.clone();
            tokio::task::spawn_local(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            count.set(count.get() + 1);
                            if tls.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    (util::thread_cpu_ns(), count.get())
}

// ----- the clients ---------------------------------------------------------------------

fn connect(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
) -> Result<(rustls::ClientConnection, TcpStream)> {
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ClientConnection::new(cfg.clone(), ServerName::try_from("bench.test")?)?;
    Ok((conn, sock))
}

/// 100 threads ping-pong `size` bytes for `MEASURE`: (round trips, latencies in µs).
fn echo_load(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
    size: usize,
) -> Result<(u64, Vec<f64>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(std::sync::Barrier::new(CONNS + 1));
    let threads: Vec<_> = (0..CONNS)
        .map(|_| {
            let (cfg, stop, start) = (cfg.clone(), stop.clone(), start.clone());
            std::thread::spawn(move || -> Result<Vec<f64>> {
                let (mut conn, mut sock) = connect(addr, &cfg)?;
                let mut tls = rustls::Stream::new(&mut conn, &mut sock);
                let msg = vec![7u8; size];
                let mut back = vec![0u8; size];
                // Warm-up round trip (and the handshake).
                tls.write_all(&msg)?;
                tls.read_exact(&mut back)?;
                start.wait();
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    tls.write_all(&msg)?;
                    tls.read_exact(&mut back)?;
                    lat.push(t.elapsed().as_nanos() as f64 / 1e3);
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
                Ok(lat)
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(MEASURE);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().map_err(|_| anyhow::anyhow!("client panicked"))??);
    }
    Ok((all.len() as u64, all))
}

/// Connect + full handshake + one 64 B echo + close, 100 at a time, for `MEASURE`:
/// connections made, and each one's time from connect to the echo's answer, in µs.
fn handshake_load(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> Result<(u64, Vec<f64>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CONNS)
        .map(|_| {
            let (cfg, stop) = (cfg.clone(), stop.clone());
            std::thread::spawn(move || -> Result<Vec<f64>> {
                let mut took = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let (mut conn, mut sock) = connect(addr, &cfg)?;
                    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
                    let mut back = [0u8; 64];
                    tls.write_all(&[1u8; 64])?;
                    tls.read_exact(&mut back)?;
                    took.push(t0.elapsed().as_nanos() as f64 / 1e3);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
                Ok(took)
            })
        })
        .collect();
    std::thread::sleep(MEASURE);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().map_err(|_| anyhow::anyhow!("client panicked"))??);
    }
    Ok((all.len() as u64, all))
}

struct Row {
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_ns: f64,
}

type ServerFn = fn(Arc<rustls::ServerConfig>, mpsc::Sender<(SocketAddr, Stopper)>) -> Report;

fn one(server: ServerFn, certs: &Certs, size: Option<usize>) -> Result<Row> {
    let (tx, rx) = mpsc::channel();
    let cfg = certs.server.clone();
    let h = std::thread::Builder::new()
        .name("server".into())
        .spawn(move || server(cfg, tx))?;
    let (addr, stopper) = rx.recv()?;
    let (ops, mut lat) = match size {
        Some(size) => echo_load(addr, &certs.client, size)?,
        None => handshake_load(addr, &certs.client)?,
    };
    stopper.stop();
    let (cpu, _reads) = h.join().map_err(|_| anyhow::anyhow!("server panicked"))?;
    // Per client operation (a round trip, or a whole connection), not per server read:
    // the two servers cut the byte stream into reads differently.
    Ok(Row {
        ops_per_s: ops as f64 / MEASURE.as_secs_f64(),
        p50_us: util::percentile(&mut lat, 0.50),
        p99_us: util::percentile(&mut lat, 0.99),
        cpu_ns: cpu as f64 / ops.max(1) as f64,
    })
}

fn main() -> Result<()> {
    let args = util::Args::parse(1)?; // `--messages` is unused here
    let certs = certs()?;
    println!(
        "tls: 100 connections, TLS 1.3, ECDSA P-256, ring; median of {} runs",
        args.runs
    );
    println!(
        "{:<12} {:<22} {:>11} {:>8} {:>9} {:>9} {:>8} {:>10} {:>8}",
        "load", "server", "ops/s", "x tokio", "p50 us", "p99 us", "x tokio", "srv ns/op", "x tokio"
    );
    let servers: [(&str, ServerFn); 2] =
        [("tokio-rustls", tokio_server), ("evnet tls", evnet_server)];
    // `--only "16 KiB"` runs one load; `--only "16 KiB/evnet"` one server too (to profile).
    let (only_load, only_server) = match args.only.as_deref() {
        Some(o) => o.split_once('/').unwrap_or((o, "")),
        None => ("", ""),
    };
    for (label, size) in [
        ("echo 64 B", Some(64)),
        ("echo 16 KiB", Some(16 * 1024)),
        ("handshakes", None),
    ] {
        if !label.contains(only_load) {
            continue;
        }
        let mut rows: Vec<Vec<Row>> = vec![Vec::new(), Vec::new()];
        for run in 0..args.runs {
            let order: [usize; 2] = if run % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                if servers[i].0.contains(only_server) {
                    rows[i].push(one(servers[i].1, &certs, size)?);
                }
            }
        }
        if rows.iter().any(|r| r.is_empty()) {
            for (i, (name, _)) in servers.iter().enumerate() {
                if let Some(r) = rows[i].first() {
                    let (o, p50, p, c) = (r.ops_per_s, r.p50_us, r.p99_us, r.cpu_ns);
                    println!(
                        "{label:<12} {name:<22} {o:>11.0} {:>8} {p50:>9.1} {p:>9.1} {:>8} {c:>10.0} {:>8}",
                        "-", "-", "-"
                    );
                }
            }
            continue;
        }
        let med = |rs: &[Row], f: fn(&Row) -> f64| {
            let mut v: Vec<f64> = rs.iter().map(f).collect();
            util::median(&mut v)
        };
        let base = (
            med(&rows[0], |r| r.ops_per_s),
            med(&rows[0], |r| r.p99_us),
            med(&rows[0], |r| r.cpu_ns),
        );
        for (i, (name, _)) in servers.iter().enumerate() {
            let (o, p, c) = (
                med(&rows[i], |r| r.ops_per_s),
                med(&rows[i], |r| r.p99_us),
                med(&rows[i], |r| r.cpu_ns),
            );
            let p50 = med(&rows[i], |r| r.p50_us);
            println!(
                "{label:<12} {name:<22} {o:>11.0} {:>8.2} {p50:>9.1} {p:>9.1} {:>8.2} {c:>10.0} {:>8.2}",
                o / base.0,
                if base.1 > 0.0 { p / base.1 } else { 0.0 },
                c / base.2
            );
        }
    }
    Ok(())
}

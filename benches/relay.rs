//! The syslog-over-TLS relay (`examples/syslog_relay_server` and `_client`, as real
//! processes): UDP in → every TLS client → UDP out, with 1, 10 and 100 clients.
//!
//! A UDP blaster sends syslog datagrams (~120 B): a flood of `--messages` (bursts of 100),
//! then a tenth of that at 1,000/s. Every client forwards each one to a single UDP sink in
//! this process. Reported: messages/s in (offered) and deliveries/s out, deliveries the
//! relay dropped by its slow-client policy (drop oldest) and deliveries lost otherwise
//! (UDP), in → UDP-out latency (p50, p99), and the relay loop's CPU per message in. The
//! same loads come in twice: over UDP, and over TLS (`--syslog-tls`, RFC 5425 octet
//! counting, one sender with a client certificate, a burst of 100 per write in the flood
//! and one message per write at 1,000/s). Then the server's resident memory while one
//! client never reads and 100,000 messages of 300 B go by: it stays flat, at the stated
//! bound.
//!
//! ```text
//! cargo build --release --examples && cargo bench --bench relay -- [--messages M]
//! ```

mod util;

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

fn example(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .and_then(Path::parent)
        .context("target dir")?
        .join("examples")
        .join(name);
    if !p.exists() {
        bail!(
            "{} missing: run `cargo build --release --examples` first",
            p.display()
        );
    }
    Ok(p)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Files {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ccert: PathBuf,
    ckey: PathBuf,
}

fn files() -> Result<Files> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = std::env::temp_dir().join(format!("evnet-relay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let skey = KeyPair::generate()?;
    let scert = CertificateParams::new(vec!["relay.test".into()])?.signed_by(&skey, &issuer)?;
    let ckey = KeyPair::generate()?;
    let ccert = CertificateParams::new(Vec::<String>::new())?.signed_by(&ckey, &issuer)?;
    let f = Files {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ccert: dir.join("client.pem"),
        ckey: dir.join("client.key"),
    };
    std::fs::write(&f.ca, ca.pem())?;
    std::fs::write(&f.cert, scert.pem())?;
    std::fs::write(&f.key, skey.serialize_pem())?;
    std::fs::write(&f.ccert, ccert.pem())?;
    std::fs::write(&f.ckey, ckey.serialize_pem())?;
    Ok(f)
}

type Log = Arc<Mutex<Vec<String>>>;

/// Starts the server; returns it, its UDP and TLS addresses, and its stderr lines.
fn server(f: &Files, extra: &[&str]) -> Result<(Proc, String, String, Log)> {
    let mut child = Command::new(example("syslog_relay_server")?)
        .args(["--syslog", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
        .arg("--cert")
        .arg(&f.cert)
        .arg("--key")
        .arg(&f.key)
        .arg("--ca")
        .arg(&f.ca)
        .args(["--max-clients", "200"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut first = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut first)?;
    let udp = first
        .split("udp ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .context("server's first line")?
        .to_owned();
    let tls = first.split("tls ").nth(1).context("tls")?.trim().to_owned();
    let log: Log = Arc::default();
    let sink = log.clone();
    let err = child.stderr.take().context("stderr")?;
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Ok((Proc(child), udp, tls, log))
}

fn wait_for(log: &Log, what: &str, n: usize) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        if log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
            >= n
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("fewer than {n} {what:?} in the server's log")
}

/// CPU time of process `pid`'s main thread (the relay's loop), in ns.
fn loop_cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

/// Messages the relay dropped for clients too slow for the flow (its "caught up" lines).
fn relay_dropped(log: &Log) -> u64 {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.split("caught up, ").nth(1))
        .filter_map(|r| r.split(' ').next().and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets).
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How the messages come into the relay.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    Udp,
    Tls,
}

/// Sends messages into the relay: a UDP socket, or a TLS connection to `--syslog-tls`
/// that writes what `send` gathered at each `flush`.
enum Sender {
    Udp(UdpSocket, String),
    Tls(
        Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
        Vec<u8>,
    ),
}

impl Sender {
    fn new(input: Input, f: &Files, udp: &str, log: &Log) -> Result<Sender> {
        if input == Input::Udp {
            return Ok(Sender::Udp(UdpSocket::bind("127.0.0.1:0")?, udp.to_owned()));
        }
        wait_for(log, "syslog-tls input on ", 1)?;
        let addr = log
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.split("syslog-tls input on ").nth(1).map(str::to_owned))
            .context("the TLS input's address")?;
        let cfg = evnet::tls::ClientPem::new(&f.ca)
            .identity(&f.ccert, &f.ckey)
            .build()?;
        let name = rustls::pki_types::ServerName::try_from("relay.test")?;
        let tcp = TcpStream::connect(addr.trim())?;
        tcp.set_nodelay(true)?;
        let conn = rustls::ClientConnection::new(cfg, name)?;
        Ok(Sender::Tls(
            Box::new(rustls::StreamOwned::new(conn, tcp)),
            Vec::new(),
        ))
    }

    fn send(&mut self, m: &[u8]) -> Result<()> {
        match self {
            Sender::Udp(s, to) => {
                s.send_to(m, &*to)?;
            }
            Sender::Tls(_, out) => {
                out.extend_from_slice(format!("{} ", m.len()).as_bytes());
                out.extend_from_slice(m);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let Sender::Tls(s, out) = self {
            std::io::Write::write_all(s, out)?;
            std::io::Write::flush(s)?;
            out.clear();
        }
        Ok(())
    }
}

struct Row {
    clients: usize,
    in_per_s: f64,
    out_per_s: f64,
    dropped: u64,
    lost: u64,
    udp_drops: u64,
    p50_us: f64,
    p99_us: f64,
    cpu_ns: f64,
}

/// `messages` in over `input`, at `rate` per second (or as fast as bursts of 100 go), to
/// `clients`.
fn run(f: &Files, input: Input, clients: usize, messages: u64, rate: Option<u64>) -> Result<Row> {
    let extra: &[&str] = match input {
        Input::Udp => &[],
        Input::Tls => &["--syslog-tls", "127.0.0.1:0"],
    };
    let (srv, udp, tls, log) = server(f, extra)?;
    // One sink for every client's datagrams; each carries its send time.
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    evnet::socket2::SockRef::from(&sink).set_recv_buffer_size(32 << 20)?;
    sink.set_read_timeout(Some(Duration::from_secs(3)))?;
    let sink_addr = sink.local_addr()?.to_string();
    let mut procs = Vec::new();
    for _ in 0..clients {
        let c = Command::new(example("syslog_relay_client")?)
            .args([
                "--server",
                &tls,
                "--servername",
                "relay.test",
                "--forward",
                &sink_addr,
            ])
            .arg("--cert")
            .arg(&f.ccert)
            .arg("--key")
            .arg(&f.ckey)
            .arg("--ca")
            .arg(&f.ca)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        procs.push(Proc(c));
    }
    wait_for(&log, "connected", clients)?;
    let t0 = Instant::now();
    let want = messages * clients as u64;
    let receiver = std::thread::spawn(move || {
        let mut lat = Vec::with_capacity(want as usize);
        let mut buf = vec![0u8; 2048];
        let mut last = Instant::now();
        while (lat.len() as u64) < want {
            let Ok(n) = sink.recv(&mut buf) else { break };
            last = Instant::now();
            let msg = String::from_utf8_lossy(&buf[..n]);
            if let Some(sent) = msg
                .split("t=")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
            {
                let now = t0.elapsed().as_nanos() as u64;
                lat.push(now.saturating_sub(sent) as f64 / 1e3);
            }
        }
        (lat, last)
    });
    let cpu0 = loop_cpu_ns(srv.0.id());
    let udp0 = udp_rcvbuf_errors();
    let mut tx = Sender::new(input, f, &udp, &log)?;
    let pad = "p".repeat(60);
    let start = Instant::now();
    for i in 0..messages {
        let t = t0.elapsed().as_nanos();
        let m = format!("<13>1 - bench relay - - - seq={i} t={t} {pad}");
        tx.send(m.as_bytes())?;
        match rate {
            Some(r) => {
                tx.flush()?;
                let due = start + Duration::from_secs_f64((i + 1) as f64 / r as f64);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            None if i % 100 == 99 => {
                tx.flush()?;
                std::thread::sleep(Duration::from_micros(500))
            }
            None => {}
        }
    }
    tx.flush()?;
    let offered = start.elapsed();
    let (mut lat, last) = receiver.join().map_err(|_| anyhow::anyhow!("sink"))?;
    let cpu = loop_cpu_ns(srv.0.id()) - cpu0;
    std::thread::sleep(Duration::from_millis(200)); // the last "caught up" lines
    let dropped = relay_dropped(&log);
    let udp_drops = udp_rcvbuf_errors() - udp0;
    let span = last.duration_since(start).as_secs_f64().max(1e-9);
    let got = lat.len() as u64;
    drop(procs);
    drop(srv);
    Ok(Row {
        clients,
        in_per_s: messages as f64 / offered.as_secs_f64(),
        out_per_s: got as f64 / span,
        dropped,
        lost: (want - got).saturating_sub(dropped),
        udp_drops,
        p50_us: util::percentile(&mut lat, 0.50),
        p99_us: util::percentile(&mut lat, 0.99),
        cpu_ns: cpu as f64 / messages as f64,
    })
}

/// Server RSS while one client never reads and `messages` of 300 B go by.
fn memory(f: &Files, messages: u64) -> Result<Vec<(u64, u64)>> {
    let (srv, udp, tls, log) = server(f, &[])?;
    let cfg = evnet::tls::ClientPem::new(&f.ca)
        .identity(&f.ccert, &f.ckey)
        .build()?;
    let mut tcp = TcpStream::connect(&tls)?;
    let mut conn =
        rustls::ClientConnection::new(cfg, rustls::pki_types::ServerName::try_from("relay.test")?)?;
    // The handshake, then nothing is ever read again.
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    wait_for(&log, "connected", 1)?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let body = "m".repeat(290);
    let mut samples = vec![(0, rss_kib(srv.0.id()))];
    for i in 0..messages {
        tx.send_to(format!("<13>{i:06} {body}").as_bytes(), &udp)?;
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_micros(300));
        }
        if (i + 1) % (messages / 5) == 0 {
            samples.push((i + 1, rss_kib(srv.0.id())));
        }
    }
    drop(srv);
    Ok(samples)
}

fn main() -> Result<()> {
    let args = util::Args::parse(20_000)?;
    let f = files()?;
    println!(
        "relay: {} messages of ~120 B over UDP, then over TLS; every client forwards to one UDP sink",
        args.messages
    );
    println!(
        "{:<5} {:<9} {:>8} {:>10} {:>12} {:>9} {:>8} {:>9} {:>9} {:>9} {:>11}",
        "in",
        "load",
        "clients",
        "in msg/s",
        "out deliv/s",
        "dropped",
        "lost",
        "udp drops",
        "p50 us",
        "p99 us",
        "loop ns/in"
    );
    for (input, name) in [(Input::Udp, "udp"), (Input::Tls, "tls")] {
        for (label, rate) in [("flood", None), ("1000/s", Some(1000))] {
            for clients in [1, 10, 100] {
                let n = if rate.is_some() {
                    args.messages / 10
                } else {
                    args.messages
                };
                let r = run(&f, input, clients, n, rate)?;
                println!(
                "{name:<5} {label:<9} {:>8} {:>10.0} {:>12.0} {:>9} {:>8} {:>9} {:>9.0} {:>9.0} {:>11.0}",
                r.clients,
                r.in_per_s,
                r.out_per_s,
                r.dropped,
                r.lost,
                r.udp_drops,
                r.p50_us,
                r.p99_us,
                r.cpu_ns
            );
            }
        }
    }
    println!("\nserver RSS with one client that never reads (300 B messages):");
    for (n, kib) in memory(&f, 100_000)? {
        println!("  after {n:>6} messages: {:>6} KiB", kib);
    }
    Ok(())
}

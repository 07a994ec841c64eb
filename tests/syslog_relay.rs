//! The syslog-over-TLS relay end to end: `examples/syslog_relay_server` and
//! `examples/syslog_relay_client` as real processes, util-linux `logger` sending syslog over
//! UDP, certificates from rcgen, a deliberately slow TLS reader, a ZeroMQ SUB tap, a refused
//! stranger, SIGTERM and a restart.

mod util;

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use util::pki::Leaf;
use util::relay::*;

/// A TLS client that reads slowly (a tiny receive buffer, a 50 ms pause per 1 KiB read)
/// until `fast` is set: the relay must drop its oldest messages, count them, and tell it
/// once it has caught up.
fn slow_reader(p: &Pki, tls: &str, leaf: &Leaf, fast: Arc<AtomicBool>) -> Arc<Mutex<Vec<u8>>> {
    let cfg = evnet::tls::ClientPem::new(&p.ca.pem)
        .identity(&leaf.cert, &leaf.key)
        .build()
        .unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = tls.parse().unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut tcp = std::net::TcpStream::from(sock);
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("relay.test").unwrap();
    let mut conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let got: Arc<Mutex<Vec<u8>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let mut buf = [0u8; 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => g.lock().unwrap().extend_from_slice(&buf[..n]),
                Err(e) => {
                    eprintln!("slow reader: {e}");
                    break;
                }
            }
            if !fast.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    });
    got
}

/// A pyzmq SUB on `endpoint` that prints the first `n` messages, one hex line each, and
/// exits. It is started before any relay client connects: syslog probes go through the
/// relay (to `udp`) until the SUB sees one (its subscription has reached the relay's PUB),
/// then a fence, after which no probe is left in flight; the SUB skips every probe.
fn pyzmq_sub(endpoint: &str, udp: &str, n: usize) -> Child {
    let script = format!(
        "import sys, zmq\n\
         s = zmq.Context().socket(zmq.SUB)\n\
         s.setsockopt(zmq.SUBSCRIBE, b'')\n\
         s.setsockopt(zmq.RCVTIMEO, 30000)\n\
         s.setsockopt(zmq.RCVHWM, 0)\n\
         s.connect('{endpoint}')\n\
         ready = False\n\
         while True:\n\
         \x20   m = s.recv()\n\
         \x20   if not ready:\n\
         \x20       print('ready', flush=True)\n\
         \x20       ready = True\n\
         \x20   if b'probe fence' in m:\n\
         \x20       print('fenced', flush=True)\n\
         \x20       break\n\
         out = []\n\
         while len(out) < {n}:\n\
         \x20   m = s.recv()\n\
         \x20   if b'probe' not in m:\n\
         \x20       out.append(m.hex())\n\
         sys.stdout.write('\\n'.join(out) + '\\n')\n"
    );
    let mut child = Command::new(util::provision::pyzmq_python())
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (stop, udp) = (stop.clone(), udp.to_owned());
        std::thread::spawn(move || {
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            while !stop.load(Ordering::SeqCst) {
                tx.send_to(b"<13>probe", &udp).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            tx
        })
    };
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    stop.store(true, Ordering::SeqCst);
    let tx = prober.join().unwrap();
    assert_eq!(line, "ready\n", "{}", {
        let mut e = String::new();
        let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut e);
        e
    });
    tx.send_to(b"<13>probe fence", udp).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "fenced\n");
    child.stdout = Some(out.into_inner());
    child
}

fn hex_decode(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(u64::MAX)
}

fn text(d: &[u8]) -> String {
    String::from_utf8_lossy(d).into_owned()
}

#[test]
fn the_relay_fans_out_in_order_drops_for_a_slow_client_refuses_strangers_and_survives_a_restart() {
    let p = pki();
    let zport = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let zep = format!("tcp://127.0.0.1:{zport}");
    let (srv, udp, tls) = server(
        &p,
        "127.0.0.1:0",
        &["--queue-messages", "2000", "--zmq-pub", &zep],
    );
    // A ZeroMQ subscriber taps the same flow: pyzmq, a real non-Rust peer.
    let tap = pyzmq_sub(&zep, &udp, 10_000);
    let (a, b) = (Sink::new(), Sink::new());
    let ca = client(&p, &p.clients[0], &tls, &a);
    let cb = client(&p, &p.clients[1], &tls, &b);
    let fast = Arc::new(AtomicBool::new(false));
    let slow = slow_reader(&p, &tls, &p.clients[2], fast.clone());
    srv.wait_log("connected", 3);

    let lines: Vec<String> = (0..10_000).map(|i| format!("message {i:05}")).collect();
    logger(&udp, &lines);
    assert!(
        wait(|| a.len() >= 10_000 && b.len() >= 10_000),
        "{} {}",
        a.len(),
        b.len()
    );
    let (ga, gb) = (a.take(), b.take());
    assert_eq!(ga.len(), 10_000);
    assert!(ga == gb, "both fast clients forward the same bytes");
    for (i, m) in ga.iter().enumerate() {
        let t = text(m);
        assert!(t.ends_with(&format!("message {i:05}")), "#{i}: {t}");
        assert!(t.starts_with('<'), "a syslog header: {t}");
    }
    let tapped = tap.wait_with_output().unwrap();
    assert!(tapped.status.success(), "{}", text(&tapped.stderr));
    let tapped: Vec<Vec<u8>> = text(&tapped.stdout).lines().map(hex_decode).collect();
    assert_eq!(tapped.len(), 10_000, "the ZeroMQ tap got every message");
    assert!(tapped == ga, "the ZeroMQ tap got the same bytes");

    // The seed's test: a burst of 500 messages of ~300 bytes.
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let burst: Vec<String> = (0..500)
        .map(|i| format!("<13>burst {i:03} {}", "x".repeat(290)))
        .collect();
    for chunk in burst.chunks(25) {
        for m in chunk {
            tx.send_to(m.as_bytes(), &udp).unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ok = wait(|| a.len() >= 500 && b.len() >= 500);
    assert!(ok, "{} {} {:#?}", a.len(), b.len(), srv.log.lock().unwrap());
    for sink in [&a, &b] {
        let got: Vec<String> = sink.take().iter().map(|m| text(m)).collect();
        assert_eq!(got, burst);
    }

    // The slow reader lost messages, and was told how many once it caught up. Meanwhile
    // the server's memory stayed within the per-client bound (a 2000-message queue, one
    // 64 KiB write, TLS buffers; the kernel's send buffer is not in the RSS).
    srv.wait_log("too slow, dropping", 1);
    let rss = rss_kib(srv.child.id());
    assert!(rss < 32 * 1024, "server RSS {rss} KiB");
    fast.store(true, Ordering::Relaxed);
    assert!(wait(|| text(&slow.lock().unwrap()).contains("dropped")));
    let seen = text(&slow.lock().unwrap());
    // Every line before the notice is one of the 10,500 messages, numbered in the order
    // sent (10,000 from logger, then the 500 of the burst); the notice counts the rest.
    let (mut got, mut dropped, mut notices) = (Vec::new(), 0u64, 0);
    for l in seen.lines() {
        if let Some(rest) = l.split(" dropped ").nth(1) {
            assert!(l.starts_with("<46>1 "), "{l}");
            dropped += rest.split(' ').next().unwrap().parse::<u64>().unwrap();
            notices += 1;
            break; // the messages after it are not counted in it
        }
        let n = if let Some(i) = l.rfind("message ") {
            l[i + 8..].parse::<u64>().unwrap()
        } else if let Some(i) = l.find("burst ") {
            10_000 + l[i + 6..i + 9].parse::<u64>().unwrap()
        } else {
            panic!("not a relayed message: {l}")
        };
        got.push(n);
    }
    assert_eq!(notices, 1);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated"
    );
    assert_eq!(got.len() as u64 + dropped, 10_500, "{dropped} dropped");
    assert!(dropped > 0);
    // The oldest were dropped, never the newest: the stream ends with the last message
    // sent, and after the last gap comes at least a full queue (2,000) without one.
    assert_eq!(got.last(), Some(&10_499));
    let tail = got
        .iter()
        .rev()
        .zip((0..=10_499u64).rev())
        .take_while(|&(&g, want)| g == want)
        .count();
    assert!(tail >= 2000, "only the last {tail} arrived without a gap");

    // A client with a certificate from another CA is refused; the others carry on.
    let c = Sink::new();
    let stranger = client(&p, &p.stranger, &tls, &c);
    srv.wait_log("refused or failed", 1);
    stranger.wait_log("connection failed", 1);
    drop(stranger);

    // SIGTERM: the server exits 0; started again on the same port, the clients come back.
    assert!(srv.terminate().success());
    ca.wait_log("server closed the connection", 1);
    let (srv, udp, _) = server(&p, &tls, &[]);
    srv.wait_log("connected", 2);
    let after: Vec<String> = (0..100).map(|i| format!("after restart {i}")).collect();
    logger(&udp, &after);
    assert!(wait(|| a.len() >= 100 && b.len() >= 100));
    assert!(text(&a.take()[99]).ends_with("after restart 99"));

    // SIGTERM to a client: close_notify and exit 0.
    assert!(ca.terminate().success());
    srv.wait_log("disconnected", 1);
    assert!(cb.terminate().success());
    assert!(srv.terminate().success());
}

#[test]
fn with_an_issuer_set_a_client_from_another_issuer_is_refused() {
    let p = pki();
    let (srv, _, tls) = server(&p, "127.0.0.1:0", &["--issuer", "O=Somebody,CN=Else"]);
    let sink = Sink::new();
    let c = client(&p, &p.clients[0], &tls, &sink);
    srv.wait_log("refused or failed", 1);
    c.wait_log("connection failed", 1);
    assert_eq!(srv.count("connected"), 0);
    let _ = &p.dir;
}

#[test]
fn octet_counted_framing_carries_messages_that_contain_line_feeds() {
    let p = pki();
    let (srv, udp, tls) = server(&p, "127.0.0.1:0", &["--framing", "octet"]);
    let sink = Sink::new();
    let _c = client_with(&p, &p.clients[0], &tls, &sink, &["--framing", "octet"]);
    srv.wait_log("connected", 1);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let msgs: Vec<Vec<u8>> = vec![
        b"<13>one line".to_vec(),
        b"<13>two\nlines".to_vec(),
        b"<13>12 looks like a count".to_vec(),
        [b"<13>".as_slice(), &[b'z'; 60_000]].concat(),
    ];
    for m in &msgs {
        tx.send_to(m, &udp).unwrap();
    }
    assert!(wait(|| sink.len() >= msgs.len()), "{}", sink.len());
    assert_eq!(sink.take(), msgs);
}

#[test]
fn with_slow_disconnect_a_client_that_stops_reading_is_dropped_and_the_others_carry_on() {
    let p = pki();
    let (srv, udp, tls) = server(
        &p,
        "127.0.0.1:0",
        &["--slow", "disconnect", "--queue-messages", "1000"],
    );
    let sink = Sink::new();
    let _fast = client(&p, &p.clients[0], &tls, &sink);
    // A reader that never reads (it stays "slow" forever).
    let _stalled = slow_reader(&p, &tls, &p.clients[1], Arc::new(AtomicBool::new(false)));
    srv.wait_log("connected", 2);
    let lines: Vec<String> = (0..10_000).map(|i| format!("m{i}")).collect();
    logger(&udp, &lines);
    srv.wait_log("(CN=client 2): too slow, disconnecting", 1);
    let ok = wait(|| sink.len() >= 10_000);
    assert!(ok, "{} {:#?}", sink.len(), srv.log.lock().unwrap());
    assert_eq!(srv.count("too slow"), 1, "{:#?}", srv.log.lock().unwrap());
}

#[test]
fn on_two_loops_every_client_gets_every_message_in_order_whichever_loop_serves_it() {
    let p = pki();
    let (srv, udp, tls) = server(&p, "127.0.0.1:0", &["--threads", "2"]);
    // The kernel spreads connections over the two loops' shards by a hash: connect until
    // each loop serves at least one (30 clients leave a chance of 2^-29 of never).
    let mut sinks = Vec::new();
    let mut clients = Vec::new();
    while srv.count("relay-0: ") == 0 || srv.count("relay-1: ") == 0 {
        assert!(clients.len() < 30, "{:#?}", srv.log.lock().unwrap());
        let sink = Sink::new();
        let who = &p.clients[clients.len() % p.clients.len()];
        clients.push(client(&p, who, &tls, &sink));
        sinks.push(sink);
        srv.wait_log("connected", clients.len());
    }
    let lines: Vec<String> = (0..2_000).map(|i| format!("message {i:05}")).collect();
    logger(&udp, &lines);
    for (k, sink) in sinks.iter().enumerate() {
        assert!(wait(|| sink.len() >= 2_000), "client {k}: {}", sink.len());
        let got = sink.take();
        assert_eq!(got.len(), 2_000, "client {k}");
        for (i, m) in got.iter().enumerate() {
            let t = text(m);
            assert!(
                t.ends_with(&format!("message {i:05}")),
                "client {k} #{i}: {t}"
            );
        }
    }
    drop(clients);
    assert!(srv.terminate().success());
}

#[test]
fn on_sigterm_a_slow_client_still_gets_everything_queued_for_it_before_close_notify() {
    let p = pki();
    let (srv, udp, tls) = server(&p, "127.0.0.1:0", &["--queue-messages", "100000"]);
    let sink = Sink::new();
    let _witness = client(&p, &p.clients[0], &tls, &sink);
    let fast = Arc::new(AtomicBool::new(false));
    let slow = slow_reader(&p, &tls, &p.clients[1], fast.clone());
    srv.wait_log("connected", 2);
    let n = 3_000;
    let lines: Vec<String> = (0..n).map(|i| format!("queued {i:05}")).collect();
    logger(&udp, &lines);
    // The fast client has them all: the server has read every datagram, and holds most of
    // them for the slow one (4 KiB receive buffer, 1 KiB per 50 ms).
    assert!(wait(|| sink.len() >= n), "{}", sink.len());
    let before = text(&slow.lock().unwrap());
    assert!(
        !before.contains(&format!("queued {:05}", n - 1)),
        "not slow"
    );
    // SIGTERM now; the slow client speeds up only after the server began to stop.
    srv.sigterm();
    srv.wait_log("stopping: flushing", 1);
    fast.store(true, Ordering::Relaxed);
    let log = srv.log.clone();
    let status = srv.exit_status();
    assert!(status.success(), "{status}");
    // The server is gone once the kernel has the bytes; the reader may still be reading
    // them: wait for the last message (or the limit), then look at all it got.
    let last = format!("queued {:05}", n - 1);
    wait(|| text(&slow.lock().unwrap()).contains(&last));
    let got = text(&slow.lock().unwrap());
    for i in [0, n / 2, n - 1] {
        assert!(
            got.contains(&format!("queued {i:05}")),
            "message {i} lost at shutdown ({} bytes read): {:#?}",
            got.len(),
            log.lock().unwrap()
        );
    }
}

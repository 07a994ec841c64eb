//! The relay client's `--forward` forms against a real rsyslogd at its default settings:
//! a 20,000-line burst through the relay reaches rsyslog complete and in order over a Unix
//! datagram socket (imuxsock, as `/dev/log`) and over TCP (imtcp, RFC 6587 octet
//! counting); the TCP form queues while rsyslog is down and delivers once it is back; the
//! UDP form reaches an IPv6 target.

mod util;

use std::time::{Duration, Instant};

use util::nsd::free_port;
use util::relay::*;
use util::rsyslog::Rsyslog;

/// The lines the test sends: `burst <tag> <i>`.
fn burst(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("burst {tag} {i:05}")).collect()
}

/// Waits until `rsyslog` has written `n` lines (or the limit), then checks they are
/// `want`, in order.
fn assert_arrives(rsyslog: &Rsyslog, want: &[String], client: &Proc) {
    let t0 = Instant::now();
    while rsyslog.lines().len() < want.len() && t0.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = rsyslog.lines();
    assert_eq!(
        got.len(),
        want.len(),
        "lines at rsyslog; client log: {:#?}",
        client.log.lock().unwrap()
    );
    let wrong = got
        .iter()
        .zip(want)
        .position(|(g, w)| !g.ends_with(w.as_str()));
    assert_eq!(
        wrong,
        None,
        "out of order or changed: {:?}",
        wrong.map(|i| (&got[i], &want[i]))
    );
}

/// A relay server with room for the whole burst per client (the test is about the hop
/// after it), and a client forwarding to `forward`.
fn relay_to(p: &Pki, forward: &str) -> (Proc, Proc, String) {
    let (srv, udp, tls) = server(
        p,
        "127.0.0.1:0",
        &["--queue-messages", "40000", "--queue-bytes", "16777216"],
    );
    let cli = client_to(p, &p.clients[0], &tls, forward, &[]);
    srv.wait_log(": connected", 1);
    (srv, cli, udp)
}

#[test]
fn a_burst_reaches_rsyslog_whole_and_in_order_over_its_unix_socket() {
    let p = pki();
    let rsyslog = Rsyslog::start("unix");
    let forward = format!("unix:{}", rsyslog.socket.display());
    let (_srv, cli, udp) = relay_to(&p, &forward);
    let lines = burst("unix", 20_000);
    logger(&udp, &lines);
    assert_arrives(&rsyslog, &lines, &cli);
}

#[test]
fn a_burst_reaches_rsyslog_whole_and_in_order_over_tcp() {
    let p = pki();
    let rsyslog = Rsyslog::start("tcp");
    let forward = format!("tcp:{}", rsyslog.tcp);
    let (_srv, cli, udp) = relay_to(&p, &forward);
    let lines = burst("tcp", 20_000);
    logger(&udp, &lines);
    assert_arrives(&rsyslog, &lines, &cli);
}

#[test]
fn over_unix_messages_wait_while_rsyslog_is_down_and_arrive_when_it_is_back() {
    let p = pki();
    let dir = util::pki::temp_dir("relay-down");
    let socket = dir.join("log.sock");
    // Nobody at the socket yet: the client keeps the messages and tries again.
    let (_srv, cli, udp) = relay_to(&p, &format!("unix:{}", socket.display()));
    let lines = burst("down", 500);
    logger(&udp, &lines);
    cli.wait_log("queued, trying again", 1);
    // rsyslog comes up on that path: everything arrives, in order.
    let rsyslog = Rsyslog::start_at(&dir, free_port());
    assert_arrives(&rsyslog, &lines, &cli);
}

#[test]
fn over_tcp_messages_are_queued_while_rsyslog_is_down_and_sent_when_it_is_back() {
    let p = pki();
    let port = free_port();
    // Nothing listens on the port yet: the connection fails and is tried again.
    let (_srv, cli, udp) = relay_to(&p, &format!("tcp:127.0.0.1:{port}"));
    let lines = burst("tcpdown", 500);
    logger(&udp, &lines);
    cli.wait_log("forward connection ended", 1);
    let rsyslog = Rsyslog::start_at(&util::pki::temp_dir("relay-tcp-down"), port);
    assert_arrives(&rsyslog, &lines, &cli);
}

#[test]
fn the_udp_form_reaches_an_ipv6_target() {
    let Ok(sink) = std::net::UdpSocket::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here: nothing to test");
        return;
    };
    let addr = sink.local_addr().unwrap();
    sink.set_read_timeout(Some(LIMIT)).unwrap();
    let p = pki();
    let (_srv, _cli, udp) = relay_to(&p, &addr.to_string());
    logger(&udp, &["to six".to_owned()]);
    let mut buf = [0u8; 2048];
    let n = sink.recv(&mut buf).expect("the datagram over IPv6");
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("to six"));
}

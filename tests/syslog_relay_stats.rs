//! The relay's numbers: a stats line from the server and the client on SIGUSR1 and every
//! `--stats-interval`, the same as JSON on the server's ZeroMQ tap with `--zmq-stats`, and
//! a warning when the tap binds where other hosts can reach it.

mod util;

use std::time::{Duration, Instant};

use util::relay::*;

#[test]
fn sigusr1_makes_both_sides_write_their_counts() {
    let p = pki();
    let (srv, udp, tls) = server(&p, "127.0.0.1:0", &["--stats-interval", "0"]);
    let sink = Sink::new();
    let cli = client_with(&p, &p.clients[0], &tls, &sink, &["--stats-interval", "0"]);
    srv.wait_log(": connected", 1);
    let lines: Vec<String> = (0..100).map(|i| format!("counted {i}")).collect();
    logger(&udp, &lines);
    assert!(wait(|| sink.len() == 100), "{} of 100", sink.len());
    srv.signal("USR1");
    cli.signal("USR1");
    srv.wait_log("stats: ", 1);
    cli.wait_log("stats: ", 1);
    let s = &srv.lines_with("stats: ")[0];
    assert!(s.contains("stats: in 100, out 100 ("), "{s}");
    assert!(
        s.contains("=100), queued 0, dropped slow 0 loops 0 tap 0"),
        "{s}"
    );
    assert!(s.contains("clients 1, connections 1, refused 0"), "{s}");
    let c = &cli.lines_with("stats: ")[0];
    assert!(
        c.contains("stats: in 100, forwarded 100, queued 0, skipped 0, sessions 1"),
        "{c}"
    );
}

#[test]
fn every_stats_interval_a_line_comes_by_itself() {
    let p = pki();
    let (srv, _udp, _tls) = server(&p, "127.0.0.1:0", &["--stats-interval", "1"]);
    srv.wait_log("stats: in 0, out 0 (), queued 0", 2);
}

#[test]
fn with_zmq_stats_the_tap_publishes_the_counts_as_json_under_their_topic() {
    let p = pki();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tap = format!("tcp://127.0.0.1:{port}");
    let (srv, udp, _tls) = server(
        &p,
        "127.0.0.1:0",
        &["--zmq-pub", &tap, "--zmq-stats", "--stats-interval", "0"],
    );
    assert!(
        srv.lines_with("warning").is_empty(),
        "a loopback tap is not warned about"
    );
    let ctx = evnet::zmq::Context::new();
    let sub = ctx.socket(evnet::zmq::SUB).unwrap();
    sub.set_subscribe(b"evnet-relay-stats").unwrap();
    sub.set_rcvtimeo(100).unwrap();
    sub.connect(&tap).unwrap();
    logger(&udp, &["one".to_owned(), "two".to_owned()]);
    // Subscriptions take a moment to reach the PUB side: ask until the JSON comes.
    let t0 = Instant::now();
    let json = loop {
        assert!(t0.elapsed() < LIMIT, "no stats on the tap");
        srv.signal("USR1");
        if let Ok(parts) = sub.recv_multipart(0) {
            assert_eq!(parts.len(), 2, "topic, then the JSON");
            assert_eq!(parts[0], b"evnet-relay-stats");
            break String::from_utf8(parts[1].clone()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        json.starts_with("{\"in\":2,\"out\":{\"total\":0,\"clients\":{}},\"queued\":0,"),
        "{json}"
    );
    assert!(
        json.contains("\"dropped\":{\"slow\":0,\"loops\":0,\"tap\":0}"),
        "{json}"
    );
    assert!(
        json.ends_with("\"clients\":0,\"connections\":0,\"refused\":0}"),
        "{json}"
    );
}

#[test]
fn a_tap_other_hosts_can_reach_is_warned_about() {
    let p = pki();
    let (srv, _udp, _tls) = server(&p, "127.0.0.1:0", &["--zmq-pub", "tcp://*:*"]);
    srv.wait_log(
        "warning: the ZeroMQ tap tcp://*:* is reachable from other hosts",
        1,
    );
}

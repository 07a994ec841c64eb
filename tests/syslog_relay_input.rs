//! Syslog into the relay over a stream: rsyslogd as a real RFC 5425 sender (its `ossl`
//! stream driver, a client certificate from the relay's CA, octet-counted frames) reaches
//! a relay client in order; over plain TCP (RFC 6587) both framings are taken, and a
//! malformed frame closes that sender alone.

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use util::relay::*;
use util::rsyslog::Rsyslog;

/// The address the server logged for its `kind` input (`tls` or `tcp`).
fn input_addr(srv: &Proc, kind: &str) -> SocketAddr {
    let what = format!("syslog-{kind} input on ");
    srv.wait_log(&what, 1);
    let line = srv.lines_with(&what).remove(0);
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn rsyslog_over_tls_feeds_the_relay_in_order() {
    let p = pki();
    let (srv, _udp, tls) = server(&p, "127.0.0.1:0", &["--syslog-tls", "127.0.0.1:0"]);
    let input = input_addr(&srv, "tls");
    let sink = Sink::new();
    let _cli = client(&p, &p.clients[0], &tls, &sink);
    srv.wait_log(": connected", 1);
    let dir = util::pki::temp_dir("rsyslog-sender");
    let sender = Rsyslog::tls_sender(
        &dir,
        input,
        "relay.test",
        &p.ca.pem,
        &p.clients[1].cert,
        &p.clients[1].key,
    );
    // 2,000 lines into rsyslog's socket (logger waits when it is full: none is lost there).
    let mut logger = Command::new(util::provision::tool("logger"))
        .args(["-u", &sender.socket.to_string_lossy(), "-t", "fromrsyslog"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = logger.stdin.as_mut().unwrap();
    for i in 0..2000 {
        writeln!(stdin, "tls line {i:04}").unwrap();
    }
    drop(logger.stdin.take());
    assert!(logger.wait().unwrap().success());
    assert!(
        wait(|| sink.len() >= 2000),
        "{} of 2000 at the client; server log: {:#?}",
        sink.len(),
        srv.log.lock().unwrap()
    );
    let got: Vec<String> = sink
        .take()
        .iter()
        .map(|d| String::from_utf8_lossy(d).trim_end().to_owned())
        .collect();
    assert_eq!(got.len(), 2000);
    for (i, g) in got.iter().enumerate() {
        assert!(g.ends_with(&format!("tls line {i:04}")), "line {i}: {g}");
    }
    assert!(
        srv.count("sender 127.0.0.1") >= 1,
        "rsyslog connected as a sender"
    );
}

#[test]
fn over_tcp_both_framings_are_taken_and_a_bad_frame_closes_that_sender_alone() {
    let p = pki();
    let (srv, _udp, tls) = server(&p, "127.0.0.1:0", &["--syslog-tcp", "127.0.0.1:0"]);
    let input = input_addr(&srv, "tcp");
    let sink = Sink::new();
    let _cli = client(&p, &p.clients[0], &tls, &sink);
    srv.wait_log(": connected", 1);
    let mut good = TcpStream::connect(input).unwrap();
    let mut bad = TcpStream::connect(input).unwrap();
    good.write_all(b"11 <13>counted\n<13>a line\r\n").unwrap();
    assert!(wait(|| sink.len() == 2), "{}", sink.len());
    bad.write_all(b"0 nothing\n").unwrap(); // RFC 6587: no leading zero
    srv.wait_log("bad octet count; closing it", 1);
    good.write_all(b"<13>still here\n").unwrap();
    assert!(wait(|| sink.len() == 3), "{}", sink.len());
    let got: Vec<String> = sink
        .take()
        .iter()
        .map(|d| String::from_utf8_lossy(d).trim_end().to_owned())
        .collect();
    assert_eq!(got, ["<13>counted", "<13>a line", "<13>still here"]);
}

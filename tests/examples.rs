//! The three small daemons in `examples/` (`router_heartbeat`, `lines_to_push`,
//! `pool_to_router`), run as real processes against real ZeroMQ and TCP peers, then
//! stopped with SIGTERM, which must end them cleanly (exit 0).

mod util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::example;

/// Starts an example and returns it with the first line it printed.
fn start(name: &str, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(example(name))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e} (cargo test builds the examples)"));
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// The address in a `listening on Some(ADDR:PORT)` line.
fn addr_in(line: &str) -> String {
    line.trim()
        .strip_prefix("listening on Some(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned()
}

/// The port in a `listening on Some(ADDR:PORT)` line.
fn port_in(line: &str) -> String {
    line.trim()
        .rsplit_once(':')
        .and_then(|(_, p)| p.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned()
}

/// SIGTERM, then a bounded wait: the daemon must exit 0 on its own.
fn terminate(mut child: Child) {
    let pid = child.id().to_string();
    assert!(Command::new(util::provision::tool("kill"))
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    panic!("did not exit within 20 s of SIGTERM");
}

/// The child's output once it exits within `limit`; `None` (and the child killed) if not.
fn exited_within(mut child: Child, limit: Duration) -> Option<std::process::Output> {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(child.wait_with_output().unwrap())
}

fn socket(ctx: &zmq::Context, kind: zmq::SocketType) -> zmq::Socket {
    let s = ctx.socket(kind).unwrap();
    s.set_rcvtimeo(20_000).unwrap();
    s.set_linger(0).unwrap();
    s
}

#[test]
fn router_heartbeat_answers_and_beats() {
    let (child, line) = start(
        "router_heartbeat",
        &[
            "--router",
            "tcp://127.0.0.1:*",
            "--publish",
            "tcp://127.0.0.1:*",
            "--every-ms",
            "5",
        ],
    );
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((words[0], words[2]), ("router", "publish"), "{line}");
    let ctx = zmq::Context::new();
    let sub = socket(&ctx, zmq::SUB);
    sub.set_subscribe(b"").unwrap();
    sub.connect(words[3]).unwrap();
    let dealer = socket(&ctx, zmq::DEALER);
    dealer.connect(words[1]).unwrap();
    for i in 0..10 {
        dealer.send(format!("req {i}").as_bytes(), 0).unwrap();
        assert_eq!(
            dealer.recv_bytes(0).unwrap(),
            format!("ok: req {i}").as_bytes()
        );
    }
    let beat = sub.recv_bytes(0).unwrap();
    assert!(beat.starts_with(b"heartbeat "), "{beat:?}");
    terminate(child);
}

#[test]
fn lines_to_push_forwards_every_line() {
    let ctx = zmq::Context::new();
    let pull = socket(&ctx, zmq::PULL);
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    let (child, line) = start("lines_to_push", &["--listen", "127.0.0.1:0", "--push", &ep]);
    let addr = addr_in(&line);
    let mut clients: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        for j in 0..100 {
            writeln!(c, "client {i} line {j}").unwrap();
        }
    }
    let mut got: Vec<String> = (0..300)
        .map(|_| String::from_utf8(pull.recv_bytes(0).unwrap()).unwrap())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..3)
        .flat_map(|i| (0..100).map(move |j| format!("client {i} line {j}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
    terminate(child);
}

#[test]
fn pool_to_router_answers_every_request_from_the_pool() {
    let (child, line) = start("pool_to_router", &["--router", "tcp://127.0.0.1:*"]);
    let ep = line
        .trim()
        .strip_prefix("router ")
        .unwrap_or_else(|| panic!("{line}"));
    let ctx = zmq::Context::new();
    let dealer = socket(&ctx, zmq::DEALER);
    dealer.connect(ep).unwrap();
    for i in 0..200 {
        dealer.send(format!("request {i}").as_bytes(), 0).unwrap();
    }
    for _ in 0..200 {
        let reply = dealer.recv_bytes(0).unwrap();
        assert_eq!(reply.len(), 16, "{reply:?}");
        assert!(reply.iter().all(u8::is_ascii_hexdigit));
    }
    terminate(child);
}

#[test]
fn every_example_answers_help_with_its_flags_and_defaults() {
    for name in [
        "pubsub_fairness",
        "echo_server",
        "echo_client",
        "router_heartbeat",
        "lines_to_push",
        "pool_to_router",
        "tls_echo_server",
        "tls_client",
        "broker",
        "worker",
    ] {
        let out = Command::new(example(name)).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --help failed");
        assert!(
            text.contains("Usage:") && text.contains("[default:"),
            "{name}: {text}"
        );
        let bad = Command::new(example(name))
            .arg("--no-such-flag")
            .output()
            .unwrap();
        assert!(!bad.status.success(), "{name} accepted an unknown flag");
    }
}

#[test]
fn echo_client_round_trips_against_echo_server() {
    let (server, line) = start("echo_server", &["--listen", "127.0.0.1:0"]);
    let addr = addr_in(&line);
    let out = Command::new(example("echo_client"))
        .args(["--connect", &addr, "--lines", "200", "--conns", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("3 connections ok, 0 failed; 600 round trips"),
        "{text}"
    );
    terminate(server);
}

/// `echo_server` with `args`, stdout and stderr piped: the child, the rest of its stdout,
/// and the address of its first `listening on` line.
fn echo_server(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut server = Command::new(example("echo_server"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (server, out, addr_in(&line))
}

#[test]
fn echo_server_on_two_loops_serves_from_both_and_stops_both_on_sigterm() {
    let (server, mut out, addr) = echo_server(&["--listen", "127.0.0.1:0", "--threads", "2"]);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "serving on 2 loops");
    let client = Command::new(example("echo_client"))
        .args(["--connect", &addr, "--lines", "20", "--conns", "32"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&client.stdout);
    assert!(
        text.contains("32 connections ok, 0 failed; 640 round trips"),
        "{text}"
    );
    assert!(Command::new(util::provision::tool("kill"))
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap()
        .success());
    let done = exited_within(server, Duration::from_secs(20)).expect("exits on SIGTERM");
    assert!(done.status.success(), "{:?}", done.status);
    let err = String::from_utf8_lossy(&done.stderr);
    // Each loop reports what it served; the kernel spread 32 connections over both
    // shards (all on one has a chance of 2^-31).
    let mut served = [0u32; 2];
    for l in err.lines() {
        for (i, n) in served.iter_mut().enumerate() {
            if let Some(rest) = l.strip_prefix(&format!("loop {i}: shutting down: ")) {
                *n = rest.split(' ').next().unwrap().parse().unwrap();
            }
        }
    }
    assert_eq!(served[0] + served[1], 32, "{err}");
    assert!(served[0] > 0 && served[1] > 0, "{served:?}: {err}");
}

/// `echo_server` with `extra` args and a client holding an idle connection: the first
/// SIGTERM starts the graceful shutdown (which would wait 5 s for the client), the second
/// ends it at once. Returns the exit status and what the server printed on stderr.
fn sigterm_twice_with_a_client_holding_on(extra: &[&str]) -> (std::process::ExitStatus, String) {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (mut server, _out, addr) = echo_server(&args);
    // The server's stderr, line by line, as it comes.
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let err = BufReader::new(server.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for l in err.lines().map_while(Result::ok) {
            all.push_str(&l);
            all.push('\n');
            let _ = tx.send(l);
        }
        all
    });
    // A client that holds its connection open (accepted: its line came back).
    let mut held = std::net::TcpStream::connect(&addr).unwrap();
    held.write_all(b"hello\n").unwrap();
    let mut echo = String::new();
    BufReader::new(held.try_clone().unwrap())
        .read_line(&mut echo)
        .unwrap();
    assert_eq!(echo, "hello\n");
    let kill = || {
        assert!(Command::new(util::provision::tool("kill"))
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap()
            .success());
    };
    kill();
    // The graceful shutdown has begun (on every loop) before the second signal.
    let loops = if extra.contains(&"--threads") { 2 } else { 1 };
    let mut begun = 0;
    while begun < loops {
        let l = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("shutting down");
        if l.contains("shutting down") {
            begun += 1;
        }
    }
    kill();
    let done = exited_within(server, Duration::from_secs(20)).expect("exits");
    drop(held);
    (done.status, reader.join().unwrap())
}

#[test]
fn echo_server_ends_its_graceful_shutdown_at_once_on_a_second_sigterm() {
    let (status, err) = sigterm_twice_with_a_client_holding_on(&[]);
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("second signal: stopping now"), "{err}");
    // On N loops the waiting thread takes the second signal and exits the process.
    let (status, err) = sigterm_twice_with_a_client_holding_on(&["--threads", "2"]);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("second signal: exiting now"), "{err}");
}

#[test]
fn tls_client_against_tls_echo_server_with_client_certificates_and_an_issuer_check() {
    let dir = util::pki::temp_dir("examples");
    let ca = util::pki::Ca::new(&dir, "Example", "Example CA");
    let server = ca.leaf(&dir, "server", &["localhost"], false);
    let client = ca.leaf(&dir, "client 1", &[], false);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_owned();
    for (issuer, ok) in [
        ("O=Example,CN=Example CA", true),
        ("CN=Someone Else", false),
    ] {
        let (srv, line) = start(
            "tls_echo_server",
            &[
                "--cert",
                &p(&server.cert),
                "--key",
                &p(&server.key),
                "--ca",
                &p(&ca.pem),
                "--require-client-cert",
                "--issuer",
                issuer,
                "--listen",
                "127.0.0.1:0",
            ],
        );
        let port = port_in(&line);
        let mut cli = Command::new(example("tls_client"))
            .args([
                "--connect",
                &format!("localhost:{port}"),
                "--ca",
                &p(&ca.pem),
            ])
            .args(["--cert", &p(&client.cert), "--key", &p(&client.key)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        cli.stdin
            .take()
            .unwrap()
            .write_all(b"hello\nworld\n")
            .unwrap();
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = cli.try_wait().unwrap() {
                break s;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "tls_client hangs");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        std::io::Read::read_to_string(cli.stdout.as_mut().unwrap(), &mut out).unwrap();
        if ok {
            assert!(status.success(), "{status}");
            assert_eq!(out, "hello\nworld\n");
        } else {
            assert!(!status.success(), "a refused issuer must fail the client");
            assert_eq!(out, "");
        }
        terminate(srv);
    }
}

#[test]
fn tls_echo_server_refuses_client_certificate_flags_without_ca() {
    let dir = util::pki::temp_dir("examples-no-ca");
    let ca = util::pki::Ca::new(&dir, "Example", "Example CA");
    let server = ca.leaf(&dir, "server", &["localhost"], false);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_owned();
    for flags in [
        &["--issuer", "CN=Example CA"][..],
        &["--require-client-cert"][..],
    ] {
        let child = Command::new(example("tls_echo_server"))
            .args(["--cert", &p(&server.cert), "--key", &p(&server.key)])
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = exited_within(child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{flags:?}: the server started"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains("--ca"), "{flags:?}: {err}");
    }
}

#[test]
fn echo_server_refuses_a_burst_without_its_rate() {
    for (flag, needs) in [("--burst", "--rate"), ("--group-burst", "--group-rate")] {
        let child = Command::new(example("echo_server"))
            .args(["--listen", "127.0.0.1:0", flag, "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = exited_within(child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{flag} alone: the server started"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains(needs), "{flag}: {err}");
    }
}

#[test]
fn tls_client_connects_to_the_address_and_sends_servername_as_the_name() {
    let dir = util::pki::temp_dir("examples-sni");
    let ca = util::pki::Ca::new(&dir, "Example", "Example CA");
    // A name that resolves nowhere: only the certificate check may use it.
    let server = ca.leaf(&dir, "server", &["echo.invalid"], false);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_owned();
    let (srv, line) = start(
        "tls_echo_server",
        &[
            "--cert",
            &p(&server.cert),
            "--key",
            &p(&server.key),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let port = port_in(&line);
    let run = |name: &str| {
        let mut cli = Command::new(example("tls_client"))
            .args(["--connect", &format!("127.0.0.1:{port}")])
            .args(["--servername", name, "--ca", &p(&ca.pem)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        cli.stdin.take().unwrap().write_all(b"sni\n").unwrap();
        exited_within(cli, Duration::from_secs(20)).expect("tls_client hangs")
    };
    let good = run("echo.invalid");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&good.stdout), "sni\n");
    // The same address with a name the certificate does not carry is refused.
    let wrong = run("other.invalid");
    assert!(!wrong.status.success());
    assert_eq!(String::from_utf8_lossy(&wrong.stdout), "");
    terminate(srv);
}

#[test]
fn every_example_exits_quietly_when_its_stdout_is_closed() {
    let dir = util::pki::temp_dir("examples-epipe");
    let ca = util::pki::Ca::new(&dir, "Example", "Example CA");
    let server = ca.leaf(&dir, "server", &["localhost"], false);
    let (cert, key) = (
        server.cert.to_str().unwrap().to_owned(),
        server.key.to_str().unwrap().to_owned(),
    );
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("echo_server", vec!["--listen", "127.0.0.1:0"]),
        ("lines_to_push", vec!["--listen", "127.0.0.1:0"]),
        ("pool_to_router", vec!["--router", "tcp://127.0.0.1:*"]),
        (
            "router_heartbeat",
            vec![
                "--router",
                "tcp://127.0.0.1:*",
                "--publish",
                "tcp://127.0.0.1:*",
            ],
        ),
        (
            "tls_echo_server",
            vec!["--cert", &cert, "--key", &key, "--listen", "127.0.0.1:0"],
        ),
        ("pubsub_fairness", vec!["--messages", "20000"]),
    ];
    for (name, args) in runs {
        // Each prints as soon as it starts, into a pipe whose reader is gone before the
        // child exists (closed after the spawn, the child's first line could still land in
        // the pipe's buffer, and a daemon that printed nothing more would rightly go on).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = Command::new(example(name))
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = exited_within(child, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{name} went on with its stdout closed"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {} {err}", out.status);
        assert_eq!(err, "", "{name} said something");
    }
}

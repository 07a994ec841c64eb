//! TLS against the machine's openssl: evnet's client against `openssl s_server` (TLS 1.2
//! and 1.3, mutual TLS), and `openssl s_client` against evnet's server.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use evnet::bufio::{Event, Options, Stream};
use evnet::ev::Loop;
use evnet::socket::{bind_tcp_all, Accept, Listener};
use evnet::tls::{self, ClientPem, ServerPem, Settings};
use util::pki::{temp_dir, Ca, Leaf};
use util::Fns;

const LIMIT: Duration = Duration::from_secs(30);

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Files {
    ca: Ca,
    server: Leaf,
    client: Leaf,
}

fn files(tag: &str) -> Files {
    let dir = temp_dir(tag);
    let ca = Ca::new(&dir, "Example", "Example CA");
    let server = ca.leaf(&dir, "server", &["server.test"], false);
    let client = ca.leaf(&dir, "client 1", &[], false);
    Files { ca, server, client }
}

#[derive(Default)]
struct Log {
    events: Vec<String>,
    got: Vec<u8>,
}

#[test]
fn evnet_client_against_openssl_s_server_over_tls_1_2_and_1_3() {
    let f = files("s_server");
    for version in ["-tls1_3", "-tls1_2"] {
        let port = free_port();
        let mut child = Command::new("openssl")
            .args(["s_server", "-rev", "-naccept", "1", version, "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&f.server.cert)
            .arg("-key")
            .arg(&f.server.key)
            .arg("-CAfile")
            .arg(&f.ca.pem)
            .args(["-Verify", "1", "-verify_return_error"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl (CI installs it)");
        // Wait for "ACCEPT" (after a line about DH parameters, for instance).
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        for _ in 0..10 {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 || line.contains("ACCEPT") {
                break;
            }
        }
        assert!(line.contains("ACCEPT"), "{line}");
        let _guard = Kill(child);

        let mut ev = Loop::<Log>::new().unwrap();
        let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let under = Stream::new(
            &mut ev,
            socket2::Socket::from(sock),
            Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
        )
        .unwrap();
        let cfg = ClientPem::new(&f.ca.pem)
            .identity(&f.client.cert, &f.client.key)
            .tls12(true)
            .build()
            .unwrap();
        let (s, session) = tls::client(
            &mut ev,
            under,
            cfg,
            "server.test",
            Settings::default(),
            Options::default(),
            Fns::new(
                |c, line, log: &mut Log, cx| {
                    log.got.extend_from_slice(&line);
                    c.read_line(cx);
                },
                |_, e, log: &mut Log, _| log.events.push(format!("{e:?}")),
            ),
        )
        .unwrap();
        s.write(&mut ev, b"hello openssl\n");
        s.read_line(&mut ev);
        let mut log = Log::default();
        let ok = ev
            .run_until(&mut log, LIMIT, |l| l.got == b"lssnepo olleh")
            .unwrap();
        assert!(
            ok,
            "{version}: {:?} got {:?}",
            log.events,
            String::from_utf8_lossy(&log.got)
        );
        assert_eq!(log.events, ["Connected"]);
        let want = if version == "-tls1_3" {
            "TLSv1_3"
        } else {
            "TLSv1_2"
        };
        assert_eq!(session.negotiated().unwrap().version, want);
        assert_eq!(session.peer_names().unwrap().subject, "CN=server");
    }
}

#[test]
fn openssl_s_client_against_evnet_server() {
    let f = files("s_client");
    let mut ev = Loop::<Log>::new().unwrap();
    let socks = bind_tcp_all(Some("127.0.0.1"), 0).unwrap();
    let port = socks[0].local_addr().unwrap().as_socket().unwrap().port();
    let cfg = ServerPem::new(&f.server.cert, &f.server.key)
        .client_ca(&f.ca.pem, true)
        .tls12(true)
        .build()
        .unwrap();
    let _l = Listener::new(&mut ev, socks, move |log: &mut Log, cx, a| {
        let Accept::Conn(c) = a else { return };
        let under = Stream::new(cx, c.socket, Fns::new(|_, _, _, _| {}, |_, _, _, _| {})).unwrap();
        let (s, _session) = tls::server(
            cx,
            under,
            cfg.clone(),
            Settings::default(),
            Options::default(),
            Fns::new(
                |c, line, _: &mut Log, cx| {
                    let mut reply = b"echo: ".to_vec();
                    reply.extend_from_slice(&line);
                    reply.push(b'\n');
                    c.write(cx, &reply);
                    c.read_line(cx);
                },
                |c, e, log: &mut Log, cx| {
                    log.events.push(format!("{e:?}"));
                    if !matches!(e, Event::Connected) {
                        c.close(cx);
                    }
                },
            ),
        )
        .unwrap();
        s.read_line(cx);
        s.detach();
        log.events.push("accepted".into());
    });
    let child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-servername",
            "server.test",
            "-connect",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(&f.ca.pem)
        .arg("-cert")
        .arg(&f.client.cert)
        .arg("-key")
        .arg(&f.client.key)
        .args(["-verify_return_error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    let mut guard = Kill(child);
    guard
        .0
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"ping\n")
        .unwrap();
    let stdout = guard.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let mut log = Log::default();
    let t0 = std::time::Instant::now();
    while !reader.is_finished() && t0.elapsed() < LIMIT {
        ev.run_for(&mut log, Duration::from_millis(10)).unwrap();
    }
    let line = reader.join().unwrap().unwrap();
    assert_eq!(line, "echo: ping\n", "{:?}", log.events);
    assert_eq!(
        log.events[..2],
        ["accepted".to_owned(), "Connected".to_owned()]
    );
}

//! TLS streams end to end over loopback TCP, evnet client against evnet server, with
//! certificates made at test time: mutual TLS, 1 MiB byte-exact both ways, what the
//! handshake settled, close_notify as end of stream, a truncated stream as an error (or
//! end of stream with allow_dirty_shutdown), and a refused client certificate.

mod util;

use std::time::Duration;

use evnet::bufio::{Options, Stream, StreamEvent};
use evnet::ev::Loop;
use evnet::tls::{ClientPem, ServerPem, Session, TlsAcceptor, TlsConnector};
use util::pki::{temp_dir, Ca};
use util::{tcp_pair, Fns};

const LIMIT: Duration = Duration::from_secs(30);
const MIB: usize = 1 << 20;

#[derive(Default)]
struct Log {
    client: Vec<String>,
    server: Vec<String>,
    client_got: Vec<u8>,
    server_got: usize,
    /// How the server's `close_then` ended.
    server_closed: Vec<String>,
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn quiet<S: 'static>() -> Fns<S> {
    Fns::new(|_, _, _, _| {}, |_, _, _, _| {})
}

struct Pki {
    server: ServerPem,
    client: ClientPem,
}

fn pki(tag: &str) -> (Pki, Ca, std::path::PathBuf) {
    let dir = temp_dir(tag);
    let ca = Ca::new(&dir, "Example", "Example CA");
    let s = ca.leaf(&dir, "server", &["server.test"], false);
    let c = ca.leaf(&dir, "client 1", &[], false);
    let p = Pki {
        server: ServerPem::new(&s.cert, &s.key)
            .client_ca(&ca.pem, true)
            .alpn(&[b"echo"]),
        client: ClientPem::new(&ca.pem)
            .identity(&c.cert, &c.key)
            .alpn(&[b"echo"]),
    };
    (p, ca, dir)
}

/// An echo server over TLS; the client sends `n` bytes, reads the echo, then closes.
fn echo_pair(
    ev: &mut Loop<Log>,
    p: &Pki,
    n: usize,
    dirty_ok: bool,
    close: bool,
) -> (Stream<Log>, Session, Stream<Log>, Session, socket2::Socket) {
    let (a, b) = tcp_pair();
    let a_dup = a.try_clone().unwrap();
    let ua = Stream::new(ev, a, quiet()).unwrap();
    let ub = Stream::new(ev, b, quiet()).unwrap();
    let ss = Session::default();
    let server = TlsAcceptor::new(p.server.build().unwrap())
        .allow_dirty_shutdown(dirty_ok)
        .wrap(
            ev,
            ub,
            &ss,
            Fns::new(
                |c, d, log: &mut Log, cx| {
                    log.server_got += d.len();
                    c.write_bytes(cx, d);
                    c.read_chunk(cx);
                },
                |c, e, log: &mut Log, cx| {
                    log.server.push(format!("{e:?}"));
                    if matches!(e, StreamEvent::Eof) {
                        c.close_then(cx, |log, _, closed| {
                            log.server_closed.push(format!("{closed:?}"));
                        });
                    }
                },
            ),
        )
        .unwrap();
    server.read_chunk(ev);
    let cs = Session::default();
    let client = TlsConnector::new(p.client.build().unwrap())
        .allow_dirty_shutdown(dirty_ok)
        .wrap(
            ev,
            ua,
            "server.test",
            &cs,
            Fns::new(
                move |c, d, log: &mut Log, cx| {
                    log.client_got.extend_from_slice(&d);
                    if close && log.client_got.len() == n {
                        c.flush(cx, evnet::bufio::FlushMode::Finished);
                    }
                    c.read_chunk(cx);
                },
                |_, e, log: &mut Log, _| log.client.push(format!("{e:?}")),
            ),
        )
        .unwrap();
    client.write(ev, &pattern(n)); // before the handshake: it waits
    client.read_chunk(ev);
    (client, cs, server, ss, a_dup)
}

#[test]
fn mutual_tls_echoes_a_mib_byte_exact_and_closes_cleanly_both_ways() {
    let (p, _ca, _dir) = pki("echo");
    let mut ev = Loop::<Log>::new().unwrap();
    let (_c, cs, _s, ss, _) = echo_pair(&mut ev, &p, MIB, false, true);
    let mut log = Log::default();
    let ok = ev
        .run_until(&mut log, LIMIT, |l| {
            l.client.iter().any(|e| e == "Eof") && !l.server_closed.is_empty()
        })
        .unwrap();
    assert!(
        ok,
        "client {:?} server {:?} ({} echoed)",
        log.client,
        log.server,
        log.client_got.len()
    );
    assert_eq!(log.client_got, pattern(MIB), "byte-exact");
    assert_eq!(log.server_got, MIB);
    assert_eq!(log.client, ["Connected", "Eof"]);
    assert_eq!(log.server, ["Connected", "Eof"]);
    // The server's close is over once its close_notify went out and the TCP stream below
    // was shut down: the client saw a clean end (close_notify), not an error.
    assert_eq!(log.server_closed, ["Flushed"]);
    let n = cs.negotiated().unwrap();
    assert_eq!(n.version, "TLSv1_3");
    assert_eq!(n.alpn.as_deref(), Some(&b"echo"[..]));
    assert!(!n.cipher_suite.is_empty());
    let peer = ss.peer_names().unwrap();
    assert_eq!(peer.subject, "CN=client 1");
    assert_eq!(peer.issuer, "O=Example,CN=Example CA");
    assert_eq!(cs.peer_names().unwrap().subject, "CN=server");
}

#[test]
fn a_truncated_stream_is_an_error_unless_dirty_shutdown_is_allowed() {
    let (p, _ca, _dir) = pki("dirty");
    for allow in [false, true] {
        let mut ev = Loop::<Log>::new().unwrap();
        let dirty_ok = allow;
        let (client, _cs, server, _ss, transport) = echo_pair(&mut ev, &p, 1000, dirty_ok, false);
        let mut log = Log::default();
        assert!(ev
            .run_until(&mut log, LIMIT, |l| l.client_got.len() == 1000)
            .unwrap());
        // The client's transport ends (a FIN) without close_notify.
        transport.shutdown(std::net::Shutdown::Write).unwrap();
        let ok = ev
            .run_until(&mut log, LIMIT, |l| l.server.len() >= 2)
            .unwrap();
        assert!(ok, "{:?}", log.server);
        if allow {
            assert_eq!(log.server[1], "Eof");
        } else {
            assert!(
                log.server[1].contains("without close_notify"),
                "{:?}",
                log.server
            );
        }
        drop((client, server));
    }
}

#[test]
fn a_client_without_a_certificate_gets_an_error_carrying_the_alert() {
    let (p, ca, _dir) = pki("refused");
    let p = Pki {
        client: ClientPem::new(&ca.pem).alpn(&[b"echo"]), // no identity
        ..p
    };
    let mut ev = Loop::<Log>::new().unwrap();
    let (_c, _cs, _s, _ss, _) = echo_pair(&mut ev, &p, 10, false, true);
    let mut log = Log::default();
    let ok = ev
        .run_until(&mut log, LIMIT, |l| {
            l.client.iter().any(|e| e.starts_with("Error"))
                && l.server.iter().any(|e| e.starts_with("Error"))
        })
        .unwrap();
    assert!(ok, "client {:?} server {:?}", log.client, log.server);
    let client_err = log.client.iter().find(|e| e.starts_with("Error")).unwrap();
    assert!(client_err.contains("alert"), "{client_err}");
    assert!(
        !log.client.iter().any(|e| e == "Eof"),
        "an error, not end of stream"
    );
    assert_eq!(log.server_got, 0);
}

#[test]
fn a_peer_that_sends_nothing_fails_the_handshake_at_its_deadline() {
    let (p, _ca, _dir) = pki("deadline");
    let (a, _silent) = tcp_pair();
    let mut ev = Loop::<Log>::new().unwrap();
    let under = Stream::new(&mut ev, a, quiet()).unwrap();
    let opts = Options {
        handshake_timeout: Some(Duration::from_millis(200)),
        ..Options::default()
    };
    let s = TlsAcceptor::new(p.server.build().unwrap())
        .options(opts)
        .wrap(
            &mut ev,
            under,
            &Session::default(),
            Fns::new(
                |_, _, _, _| {},
                |_, e, log: &mut Log, _| {
                    if let StreamEvent::Error(err) = &e {
                        log.server.push(err.to_string());
                    }
                },
            ),
        )
        .unwrap();
    s.read_chunk(&mut ev);
    let mut log = Log::default();
    let t0 = std::time::Instant::now();
    assert!(ev
        .run_until(&mut log, LIMIT, |l| !l.server.is_empty())
        .unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(200));
    assert_eq!(log.server, ["handshake not finished within 200ms"]);
}

#[test]
fn a_tls_stream_dropped_mid_handshake_leaves_no_deadline_holding_the_loop() {
    let (p, _ca, _dir) = pki("dropped");
    let (a, _silent) = tcp_pair();
    let mut ev = Loop::<Log>::new().unwrap();
    let under = Stream::new(&mut ev, a, quiet()).unwrap();
    let s = TlsAcceptor::new(p.server.build().unwrap())
        .wrap(&mut ev, under, &Session::default(), quiet())
        .unwrap();
    ev.run_for(&mut Log::default(), Duration::from_millis(10))
        .unwrap();
    drop(s);
    let t0 = std::time::Instant::now();
    ev.run(&mut Log::default()).unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "run took {:?}",
        t0.elapsed()
    );
}

#[test]
fn a_finished_handshake_leaves_no_timer_behind() {
    let (p, _ca, _dir) = pki("disarm");
    let mut ev = Loop::<Log>::new().unwrap();
    let (c, _cs, s, _ss, _) = echo_pair(&mut ev, &p, 1000, false, true);
    let mut log = Log::default();
    let both_ended =
        |l: &Log| l.client.iter().any(|e| e == "Eof") && l.server.iter().any(|e| e == "Eof");
    assert!(ev.run_until(&mut log, LIMIT, both_ended).unwrap());
    drop((c, s));
    let t0 = std::time::Instant::now();
    ev.run(&mut log).unwrap(); // nothing left: no 10 s handshake deadline either
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "run took {:?}",
        t0.elapsed()
    );
    assert_eq!(log.client_got.len(), 1000);
}

#[test]
fn a_server_writing_a_mib_as_its_handshake_completes_sends_all_of_it() {
    // The server's Connected comes from the client's last handshake flight, inside the
    // plain stream's callback; its write must flow on past the first turn's share with no
    // more input to wake it (seen as a stall at 16 KiB against openssl s_client).
    let (p, _ca, _dir) = pki("greeting");
    let mut ev = Loop::<Log>::new().unwrap();
    let (a, b) = tcp_pair();
    let ua = Stream::new(&mut ev, a, quiet()).unwrap();
    let ub = Stream::with_options(
        &mut ev,
        b,
        Options {
            max_read: 64 * 1024,
            max_write: 64 * 1024,
            ..Options::default()
        },
        quiet(),
    )
    .unwrap();
    let _server = TlsAcceptor::new(p.server.build().unwrap())
        .wrap(
            &mut ev,
            ub,
            &Session::default(),
            Fns::new(
                |_, _, _, _| {},
                |c, e, log: &mut Log, cx| {
                    log.server.push(format!("{e:?}"));
                    if matches!(e, StreamEvent::Connected) {
                        c.write(cx, &pattern(MIB));
                    }
                },
            ),
        )
        .unwrap();
    let client = TlsConnector::new(p.client.build().unwrap())
        .wrap(
            &mut ev,
            ua,
            "server.test",
            &Session::default(),
            Fns::new(
                |c, d, log: &mut Log, cx| {
                    log.client_got.extend_from_slice(&d);
                    c.read_chunk(cx);
                },
                |_, e, log: &mut Log, _| log.client.push(format!("{e:?}")),
            ),
        )
        .unwrap();
    client.read_chunk(&mut ev);
    let mut log = Log::default();
    let ok = ev
        .run_until(&mut log, LIMIT, |l| l.client_got.len() == MIB)
        .unwrap();
    assert!(ok, "the client got {} of {MIB}", log.client_got.len());
    assert_eq!(log.client_got, pattern(MIB));
}

#[cfg(target_os = "linux")] // O_PATH
#[test]
fn accept_reports_a_socket_that_cannot_be_used_as_an_io_error_not_a_configuration_one() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = temp_dir("accept-io");
    let ca = Ca::new(&dir, "Example", "Example CA");
    let leaf = ca.leaf(&dir, "server", &["localhost"], false);
    let cfg = ServerPem::new(&leaf.cert, &leaf.key).build().unwrap();
    // An O_PATH descriptor: not a socket, and it cannot be made non-blocking (EBADF).
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open("/")
        .unwrap();
    let sock = socket2::Socket::from(std::os::fd::OwnedFd::from(f));
    let mut ev = Loop::<()>::new().unwrap();
    let r = TlsAcceptor::new(cfg).accept(
        &mut ev,
        sock,
        &Session::default(),
        Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
    );
    match r {
        Err(e @ evnet::tls::Error::Io(_)) => {
            let io = std::error::Error::source(&e).expect("the io error is the source");
            let io = io.downcast_ref::<std::io::Error>().unwrap();
            assert_eq!(io.raw_os_error(), Some(libc::EBADF), "{e}");
        }
        Err(e) => panic!("not an io error: {e:?}"),
        Ok(_) => panic!("an O_PATH descriptor was accepted as a socket"),
    }
}

/// A resolver that knows one name: what `connect` must go through (and cancel with).
struct OneName {
    name: &'static str,
    addr: std::net::SocketAddr,
    asked: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
}

impl<S: 'static> evnet::socket::Resolve<S> for OneName {
    fn resolve(
        &self,
        cx: &mut evnet::ev::Ctx<S>,
        host: &str,
        port: u16,
        done: evnet::socket::Resolved<S>,
    ) -> std::io::Result<evnet::socket::Resolving> {
        self.asked.borrow_mut().push(format!("{host}:{port}"));
        let r = if host == self.name {
            Ok(vec![self.addr])
        } else {
            Err(std::io::ErrorKind::NotFound)
        };
        let mut done = Some(done);
        let t = cx.timer(Duration::ZERO, None, move |st, cx, _| {
            if let Some(d) = done.take() {
                d(st, cx, r.clone().map_err(Into::into));
            }
        });
        Ok(evnet::socket::Resolving::new(t))
    }
}

#[test]
fn a_connector_resolves_the_host_connects_and_verifies_the_server_as_that_host() {
    use evnet::socket::{bind_tcp_all, Accept, Listener};
    let (p, _ca, _dir) = pki("connector");
    let mut ev = Loop::<Log>::new().unwrap();
    let socks = bind_tcp_all(Some("127.0.0.1"), 0).unwrap();
    let addr = socks[0].local_addr().unwrap().as_socket().unwrap();
    let acceptor = TlsAcceptor::new(p.server.build().unwrap());
    let _l = Listener::new(&mut ev, socks, move |_, cx, a| {
        let Accept::Conn(c) = a else { return };
        let echo = Fns::new(
            |c, line, _: &mut Log, cx| {
                c.write(cx, &line);
                c.write(cx, b"\n");
                c.read_line(cx);
            },
            |_, _, _, _| {},
        );
        let s = acceptor
            .accept(cx, c.socket, &Session::default(), echo)
            .unwrap();
        s.read_line(cx);
        s.detach();
    });
    let asked = std::rc::Rc::default();
    let resolver = OneName {
        name: "server.test",
        addr,
        asked: std::rc::Rc::clone(&asked),
    };
    let connector = TlsConnector::new(p.client.build().unwrap());
    let session = Session::default();
    let client = connector
        .connect(
            &mut ev,
            &resolver,
            "server.test",
            addr.port(),
            &session,
            Fns::new(
                |_, line, log: &mut Log, _| log.client_got.extend_from_slice(&line),
                |_, e, log: &mut Log, _| log.client.push(format!("{e:?}")),
            ),
        )
        .unwrap();
    client.write(&mut ev, b"over tls\n");
    client.read_line(&mut ev);
    let mut log = Log::default();
    let ok = ev
        .run_until(&mut log, LIMIT, |l| !l.client_got.is_empty())
        .unwrap();
    assert!(ok, "no echo: {:?}", log.client);
    assert_eq!(log.client_got, b"over tls");
    assert_eq!(*asked.borrow(), [format!("server.test:{}", addr.port())]);
    assert_eq!(log.client, ["Connected"]);
    let names = session.peer_names().expect("the server's certificate");
    assert!(names.subject.contains("server"), "{names:?}");

    // Another name for the same address: the certificate does not match, so the
    // handshake fails (the name verified is the host connected to).
    let other = OneName {
        name: "other.test",
        addr,
        asked: std::rc::Rc::default(),
    };
    let client = connector
        .connect(
            &mut ev,
            &other,
            "other.test",
            addr.port(),
            &Session::default(),
            Fns::new(
                |_, _, _: &mut Log, _| {},
                |_, e, log: &mut Log, _| log.server.push(format!("{e:?}")),
            ),
        )
        .unwrap();
    client.read_line(&mut ev);
    let ok = ev
        .run_until(&mut log, LIMIT, |l| !l.server.is_empty())
        .unwrap();
    assert!(ok);
    assert!(
        log.server[0].contains("NotValidForName"),
        "{:?}",
        log.server
    );
}

//! TLS against the machine's openssl (`.ci/run` installs it): evnet's client against
//! `openssl s_server` and `openssl s_client` against evnet's server — TLS 1.2 and 1.3,
//! mutual TLS accepted and refused (no certificate, another CA, expired), 10 MiB byte-exact
//! each way, close_notify each way (checked in openssl's `-msg` trace), and a killed peer
//! (truncation: an error, or end of stream with `allow_dirty_shutdown`).

mod util;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evnet::bufio::{Conn, Stream, StreamEvent};
use evnet::ev::{Ctx, Loop};
use evnet::socket::{bind_tcp_all, Accept, Listener};
use evnet::tls::{self, ClientPem, ServerPem, Session, TlsAcceptor, TlsConnector};
use util::openssl::{Input, Openssl};
use util::pki::{temp_dir, Ca, Leaf};
use util::Fns;

const LIMIT: Duration = Duration::from_secs(60);
const TEN_MIB: usize = 10 << 20;

struct Files {
    dir: PathBuf,
    ca: Ca,
    server: Leaf,
    client: Leaf,
    stranger: Leaf,
    expired: Leaf,
}

fn files(tag: &str) -> Files {
    let dir = temp_dir(tag);
    let ca = Ca::new(&dir, "Example", "Example CA");
    let other = Ca::new(&dir, "Elsewhere", "Other CA");
    let server = ca.leaf(&dir, "server", &["server.test"], false);
    let client = ca.leaf(&dir, "client 1", &[], false);
    let stranger = other.leaf(&dir, "stranger", &[], false);
    let expired = ca.leaf(&dir, "expired", &[], true);
    Files {
        dir,
        ca,
        server,
        client,
        stranger,
        expired,
    }
}

fn args(list: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<String> {
    list.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect()
}

/// 10 MiB of bytes that are not a repeating pattern, in a file for openssl's stdin.
fn big_file(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut rng = util::Rng(0x5eed);
    let data: Vec<u8> = (0..TEN_MIB).map(|_| rng.next() as u8).collect();
    let p = dir.join("ten_mib.bin");
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

#[derive(Default)]
struct Log {
    events: Vec<String>,
    got: Vec<u8>,
    sessions: Vec<Session>,
}

impl Log {
    fn has(&self, what: &str) -> bool {
        self.events.iter().any(|e| e.starts_with(what))
    }
}

/// An event as a short string; a TLS error as its `tls::Error` variant.
fn describe(e: &StreamEvent) -> String {
    match e {
        StreamEvent::Error(err) => match tls::Error::of(err) {
            Some(t) => format!("Error {t:?}"),
            None => format!("Error {err}"),
        },
        other => format!("{other:?}"),
    }
}

/// Runs the loop until `done` holds (or the time limit passes); whether it held.
fn drive(ev: &mut Loop<Log>, log: &mut Log, mut done: impl FnMut(&Log) -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < LIMIT {
        if done(log) {
            return true;
        }
        ev.run_for(log, Duration::from_millis(5)).unwrap();
    }
    done(log)
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(got == want, "{what}: the bytes differ");
}

/// What the app does once the handshake is done.
type OnConnected = Rc<dyn Fn(&Conn<Log>, &mut Ctx<Log>)>;

/// A handler that collects what it reads and logs every event; on `Connected` it runs
/// `on_connected`, on end of stream it closes (close_notify back).
fn collector(on_connected: OnConnected) -> Fns<Log> {
    Fns::new(
        |c, d, log: &mut Log, cx| {
            log.got.extend_from_slice(&d);
            c.read_chunk(cx);
        },
        move |c, e, log: &mut Log, cx| {
            log.events.push(describe(&e));
            match e {
                StreamEvent::Connected => on_connected(c, cx),
                _ => c.close(cx),
            }
        },
    )
}

fn nothing() -> OnConnected {
    Rc::new(|_, _| {})
}

/// evnet's TLS client connected to 127.0.0.1:`port`.
fn evnet_client(
    ev: &mut Loop<Log>,
    port: u16,
    cfg: ClientPem,
    dirty_ok: bool,
    on_connected: OnConnected,
) -> (Stream<Log>, Session) {
    let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let under = Stream::new(
        ev,
        socket2::Socket::from(sock),
        Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
    )
    .unwrap();
    let session = Session::default();
    let s = TlsConnector::new(cfg.build().unwrap())
        .allow_dirty_shutdown(dirty_ok)
        .wrap(ev, under, "server.test", &session, collector(on_connected))
        .unwrap();
    s.read_chunk(ev);
    (s, session)
}

/// evnet's TLS server on a free loopback port; each connection's session goes to the log.
fn evnet_server(
    ev: &mut Loop<Log>,
    cfg: ServerPem,
    dirty_ok: bool,
    on_connected: OnConnected,
) -> (Listener<Log>, u16) {
    let socks = bind_tcp_all(Some("127.0.0.1"), 0).unwrap();
    let port = socks[0].local_addr().unwrap().as_socket().unwrap().port();
    let cfg = cfg.build().unwrap();
    let l = Listener::new(ev, socks, move |log: &mut Log, cx, a| {
        let Accept::Conn(c) = a else { return };
        let session = Session::default();
        let handler = collector(Rc::clone(&on_connected));
        let s = TlsAcceptor::new(cfg.clone())
            .allow_dirty_shutdown(dirty_ok)
            .accept(cx, c.socket, &session, handler)
            .unwrap();
        s.read_chunk(cx);
        s.detach();
        log.sessions.push(session);
    });
    (l, port)
}

fn trust(f: &Files) -> Vec<String> {
    args(&[&"-CAfile", &f.ca.pem, &"-verify_return_error"])
}

fn s_server_args(f: &Files, extra: &[&str]) -> Vec<String> {
    let mut a = args(&[&"-cert", &f.server.cert, &"-key", &f.server.key]);
    a.extend(trust(f));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn s_client_args(f: &Files, identity: Option<&Leaf>, extra: &[&str]) -> Vec<String> {
    let mut a = args(&[&"-servername", &"server.test"]);
    a.extend(trust(f));
    if let Some(id) = identity {
        a.extend(args(&[&"-cert", &id.cert, &"-key", &id.key]));
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn mutual(f: &Files) -> ClientPem {
    ClientPem::new(&f.ca.pem)
        .identity(&f.client.cert, &f.client.key)
        .tls12(true)
}

fn requiring(f: &Files) -> ServerPem {
    ServerPem::new(&f.server.cert, &f.server.key)
        .client_ca(&f.ca.pem, true)
        .tls12(true)
}

#[test]
fn evnet_client_against_openssl_s_server_over_tls_1_2_and_1_3_with_mutual_tls() {
    let f = files("s_server");
    for (version, want) in [("-tls1_3", "TLSv1_3"), ("-tls1_2", "TLSv1_2")] {
        let (mut ossl, port) = Openssl::server(
            &f.dir,
            version,
            &s_server_args(&f, &["-rev", version, "-Verify", "1"]),
            Input::Held,
        );
        let mut ev = Loop::<Log>::new().unwrap();
        let hello: OnConnected = Rc::new(|c, cx| c.write(cx, b"hello openssl\n"));
        let (_s, session) = evnet_client(&mut ev, port, mutual(&f), false, hello);
        let mut log = Log::default();
        let ok = drive(&mut ev, &mut log, |l| l.got.ends_with(b"lssnepo olleh\n"));
        assert!(ok, "{version}: {:?} {}", log.events, ossl.errors());
        assert_eq!(log.events, ["Connected"]);
        assert_eq!(session.negotiated().unwrap().version, want);
        assert_eq!(session.peer_names().unwrap().subject, "CN=server");
        ossl.kill();
    }
}

#[test]
fn openssl_s_client_against_evnet_server_over_tls_1_2_and_1_3_with_mutual_tls() {
    let f = files("s_client");
    for (version, want) in [("-tls1_3", "TLSv1_3"), ("-tls1_2", "TLSv1_2")] {
        let mut ev = Loop::<Log>::new().unwrap();
        let greet: OnConnected = Rc::new(|c, cx| {
            c.write(cx, b"hello s_client\n");
            c.close(cx);
        });
        let (_l, port) = evnet_server(&mut ev, requiring(&f), false, greet);
        let mut ossl = Openssl::client(
            &f.dir,
            version,
            port,
            &s_client_args(&f, Some(&f.client), &["-quiet", version]),
            Input::Held,
        );
        let mut log = Log::default();
        let ok = drive(&mut ev, &mut log, |_| ossl.exited().is_some());
        assert!(ok, "{version}: {:?} {}", log.events, ossl.errors());
        assert_eq!(ossl.output(), b"hello s_client\n", "{version}");
        assert!(ossl.got_close_notify(), "{version}: {}", ossl.messages());
        assert_eq!(log.events, ["Connected"], "{version}");
        let session = &log.sessions[0];
        assert_eq!(session.negotiated().unwrap().version, want);
        assert_eq!(session.peer_names().unwrap().subject, "CN=client 1");
    }
}

#[test]
fn ten_mib_each_way_with_s_server_byte_exact_with_close_notify_each_way() {
    let f = files("s_server_data");
    let (_, data) = big_file(&f.dir);

    // s_server sends 10 MiB (its stdin), then close_notify at their end.
    let (mut ossl, port) = Openssl::server(&f.dir, "send", &s_server_args(&f, &[]), Input::Held);
    let mut ev = Loop::<Log>::new().unwrap();
    let (_s, _) = evnet_client(&mut ev, port, mutual(&f), false, nothing());
    let mut log = Log::default();
    assert!(drive(&mut ev, &mut log, |l| l.has("Connected")));
    ossl.feed(data.clone());
    let ok = drive(&mut ev, &mut log, |l| l.events.len() >= 2);
    assert!(
        ok,
        "{:?} got {} ({})",
        log.events,
        log.got.len(),
        ossl.whereabouts()
    );
    assert_eq!(log.events, ["Connected", "Eof"], "a clean close_notify");
    assert_same(&log.got, &data, "openssl to evnet");
    drop(ossl);

    // evnet sends 10 MiB, then close(): close_notify after the last byte.
    let (mut ossl, port) = Openssl::server(&f.dir, "recv", &s_server_args(&f, &[]), Input::Held);
    let mut ev = Loop::<Log>::new().unwrap();
    let payload = data.clone();
    let send: OnConnected = Rc::new(move |c, cx| {
        c.write(cx, &payload);
        c.close(cx);
    });
    let (_s, _) = evnet_client(&mut ev, port, mutual(&f), false, send);
    let mut log = Log::default();
    let ok = drive(&mut ev, &mut log, |_| ossl.exited().is_some());
    assert!(ok, "{:?} openssl saw {}", log.events, ossl.seen());
    assert_same(&ossl.output(), &data, "evnet to openssl");
    assert!(ossl.got_close_notify(), "{}", ossl.messages());
}

#[test]
fn ten_mib_each_way_with_s_client_byte_exact_with_close_notify_each_way() {
    let f = files("s_client_data");
    let (path, data) = big_file(&f.dir);

    // s_client sends 10 MiB (its stdin), then close_notify at the file's end.
    let mut ev = Loop::<Log>::new().unwrap();
    let (_l, port) = evnet_server(&mut ev, requiring(&f), false, nothing());
    let _ossl = Openssl::client(
        &f.dir,
        "send",
        port,
        &s_client_args(
            &f,
            Some(&f.client),
            &["-quiet", "-nocommands", "-no_ign_eof"],
        ),
        Input::File(path),
    );
    let mut log = Log::default();
    let ok = drive(&mut ev, &mut log, |l| l.events.len() >= 2);
    assert!(ok, "{:?} got {}", log.events, log.got.len());
    assert_eq!(log.events, ["Connected", "Eof"], "a clean close_notify");
    assert_same(&log.got, &data, "openssl to evnet");

    // evnet sends 10 MiB, then close(): close_notify after the last byte.
    let mut ev = Loop::<Log>::new().unwrap();
    let payload = data.clone();
    let send: OnConnected = Rc::new(move |c, cx| {
        c.write(cx, &payload);
        c.close(cx);
    });
    let (_l, port) = evnet_server(&mut ev, requiring(&f), false, send);
    let mut ossl = Openssl::client(
        &f.dir,
        "recv",
        port,
        &s_client_args(&f, Some(&f.client), &["-quiet"]),
        Input::Held,
    );
    let mut log = Log::default();
    let ok = drive(&mut ev, &mut log, |_| ossl.exited().is_some());
    assert!(ok, "{:?} openssl saw {}", log.events, ossl.seen());
    assert_same(&ossl.output(), &data, "evnet to openssl");
    assert!(ossl.got_close_notify(), "{}", ossl.messages());
}

#[test]
fn a_killed_openssl_peer_is_truncation_unless_dirty_shutdown_is_allowed() {
    let f = files("dirty");
    for allow in [false, true] {
        let dirty_ok = allow;
        let want = if allow { "Eof" } else { "Error Truncated" };

        // s_server sends a line (so its handshake is surely over), then is killed.
        let (mut ossl, port) = Openssl::server(&f.dir, "srv", &s_server_args(&f, &[]), Input::Held);
        let mut ev = Loop::<Log>::new().unwrap();
        let (_s, _) = evnet_client(&mut ev, port, mutual(&f), dirty_ok, nothing());
        let mut log = Log::default();
        assert!(drive(&mut ev, &mut log, |l| l.has("Connected")));
        ossl.send(b"hello\n");
        assert!(drive(&mut ev, &mut log, |l| l.got == b"hello\n"));
        ossl.kill();
        assert!(drive(&mut ev, &mut log, |l| l.events.len() >= 2));
        assert_eq!(log.events, ["Connected", want], "client side");

        // evnet's server sends a line, s_client prints it, then is killed.
        let mut ev = Loop::<Log>::new().unwrap();
        let hello: OnConnected = Rc::new(|c, cx| c.write(cx, b"hello\n"));
        let (_l, port) = evnet_server(&mut ev, requiring(&f), dirty_ok, hello);
        let args = s_client_args(&f, Some(&f.client), &["-quiet"]);
        let mut ossl = Openssl::client(&f.dir, "cli", port, &args, Input::Held);
        let mut log = Log::default();
        assert!(drive(&mut ev, &mut log, |_| ossl.seen() == 6));
        ossl.kill();
        assert!(drive(&mut ev, &mut log, |l| l.events.len() >= 2));
        assert_eq!(log.events, ["Connected", want], "server side");
    }
}

#[test]
fn openssl_clients_without_a_good_certificate_get_a_clear_error_from_evnets_server() {
    let f = files("refuse_clients");
    let cases = [
        (None, "Error NoPeerCertificate"),
        (Some(&f.stranger), "Error BadCertificate(UnknownIssuer)"),
        (Some(&f.expired), "Error BadCertificate(Expired"),
    ];
    for (identity, want) in cases {
        for version in ["-tls1_3", "-tls1_2"] {
            let mut ev = Loop::<Log>::new().unwrap();
            let (_l, port) = evnet_server(&mut ev, requiring(&f), false, nothing());
            let args = s_client_args(&f, identity, &["-quiet", version]);
            let mut ossl = Openssl::client(&f.dir, "refused", port, &args, Input::Held);
            let mut log = Log::default();
            let ok = drive(&mut ev, &mut log, |l| {
                !l.events.is_empty() && ossl.exited().is_some()
            });
            assert!(ok, "{want} {version}: {:?}", log.events);
            assert_eq!(log.events.len(), 1, "{version}: {:?}", log.events);
            assert!(
                log.events[0].starts_with(want),
                "{version}: {:?}",
                log.events
            );
            assert!(!ossl.exited().unwrap().success(), "{want} {version}");
            // The client was told why: a fatal alert arrived.
            let trace = ossl.messages();
            assert!(
                trace
                    .lines()
                    .any(|l| l.starts_with("<<<") && l.contains("fatal")),
                "{want} {version}: {trace}"
            );
        }
    }
}

#[test]
fn evnet_clients_without_a_good_certificate_get_openssls_alert_as_an_error() {
    let f = files("refused_by_openssl");
    let cases = [
        (None, "Error PeerAlert(CertificateRequired)"),
        (Some(&f.stranger), "Error PeerAlert(UnknownCA)"),
        (Some(&f.expired), "Error PeerAlert(CertificateExpired)"),
    ];
    for (identity, want) in cases {
        let (mut ossl, port) = Openssl::server(
            &f.dir,
            "refusing",
            &s_server_args(&f, &["-Verify", "1"]),
            Input::Held,
        );
        let mut cfg = ClientPem::new(&f.ca.pem);
        if let Some(id) = identity {
            cfg = cfg.identity(&id.cert, &id.key);
        }
        let mut ev = Loop::<Log>::new().unwrap();
        let (_s, _) = evnet_client(&mut ev, port, cfg, false, nothing());
        let mut log = Log::default();
        let ok = drive(&mut ev, &mut log, |l| l.has("Error") || l.has("Eof"));
        assert!(ok, "{want}: {:?} {}", log.events, ossl.errors());
        // TLS 1.3: the client's handshake is over before the server judges its
        // certificate, so Connected comes first; the refusal is an error, never an Eof.
        let last = log.events.last().unwrap();
        assert_eq!(last, want, "{:?}", log.events);
        assert!(!log.has("Eof"), "{:?}", log.events);
        ossl.kill();
    }
}

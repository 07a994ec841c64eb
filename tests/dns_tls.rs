//! DNS over TLS (RFC 7858) against Unbound, a real DoT server started by the tests in
//! front of NSD, with certificates the tests make: authenticated answers for every record
//! type on one reused connection, a wrong name, an untrusted CA, SPKI pins, 100 queries in
//! flight on one connection, session resumption after an idle close, the opportunistic
//! profile (RFC 8310). Then an in-test TLS server for what Unbound will not do: close
//! mid-pipeline, answer out of order, send garbage.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use evnet::dns::{
    Answer, Error, Lookup, Privacy, RecordType, Resolver, ResolverOptions, TlsProfile, TlsServer,
};
use evnet::ev::Loop;
use evnet::tls::rustls;
use util::dns_fake::a_answer;
use util::nsd::Nsd;
use util::pki::{temp_dir, Ca};
use util::unbound::Unbound;

const LIMIT: Duration = Duration::from_secs(30);

type Log = Vec<(usize, Result<Answer, Error>)>;

/// A resolver asking `server` over TLS only (no clear-text servers).
fn tls_options(server: TlsServer) -> ResolverOptions {
    ResolverOptions {
        tls_servers: vec![server],
        timeout: Duration::from_secs(5),
        ..ResolverOptions::default()
    }
}

fn unbound_server(u: &Unbound) -> TlsServer {
    TlsServer::new(u.tls.ip(), u.name)
        .port(u.tls.port())
        .ca(&u.ca.pem)
}

/// Runs `queries` at once on one resolver to their ends; the answers in query order, and
/// the resolver (for its server state).
fn ask_all(
    cfg: ResolverOptions,
    queries: &[(&str, RecordType)],
) -> (Vec<Result<Answer, Error>>, Resolver<Log>) {
    let mut ev = Loop::<Log>::new().unwrap();
    let dns = Resolver::new(&ev, cfg);
    let lookups: Vec<Lookup<Log>> = queries
        .iter()
        .enumerate()
        .map(|(i, (name, t))| {
            dns.query(&mut ev, name, *t, move |log: &mut Log, _, r| {
                log.push((i, r))
            })
        })
        .collect();
    let mut log = Log::new();
    let n = queries.len();
    assert!(ev.run_until(&mut log, LIMIT, |l| l.len() == n).unwrap());
    drop(lookups);
    log.sort_by_key(|(i, _)| *i);
    (log.into_iter().map(|(_, r)| r).collect(), dns)
}

fn texts(a: &Answer) -> Vec<String> {
    a.records.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn every_record_type_over_one_authenticated_connection() {
    let nsd = Nsd::start("dot-types");
    let u = Unbound::start("types", &nsd, 30_000);
    let queries = [
        ("www.example.test", RecordType::A),
        ("www.example.test", RecordType::AAAA),
        ("example.test", RecordType::MX),
        ("small.example.test", RecordType::TXT),
        ("_sip._tcp.example.test", RecordType::SRV),
        ("c1.example.test", RecordType::A),
        ("big.example.test", RecordType::TXT),
    ];
    let (got, dns) = ask_all(tls_options(unbound_server(&u)), &queries);
    let ok: Vec<&Answer> = got
        .iter()
        .map(|r| r.as_ref().expect("an answer over TLS"))
        .collect();
    assert_eq!(texts(ok[0]), ["192.0.2.1"]);
    assert_eq!(texts(ok[1]), ["2001:db8::1"]);
    assert_eq!(ok[2].records.len(), 3);
    assert_eq!(ok[4].records.len(), 4);
    assert_eq!(ok[5].cnames.len(), 3, "the chain is followed over TLS too");
    // Too big for UDP; over TLS it comes whole, on the same connection.
    let big: usize = ok[6].records.iter().map(|r| r.data.to_string().len()).sum();
    assert_eq!(big, 12 * 200, "the whole TXT");
    assert!(ok.iter().all(|a| a.privacy == Privacy::Authenticated));
    let s = &dns.servers()[0];
    assert!(s.tls);
    assert_eq!(
        s.connections, 1,
        "one connection carried every query: {s:?}"
    );
    assert_eq!(s.in_flight, 0);
}

#[test]
fn a_wrong_name_an_untrusted_ca_and_a_server_without_trust_fail_as_tls_errors_not_timeouts() {
    let nsd = Nsd::start("dot-bad");
    let u = Unbound::start("bad", &nsd, 30_000);
    let t0 = std::time::Instant::now();
    // The right CA, the wrong name.
    let wrong_name = TlsServer::new(u.tls.ip(), "other.example.test")
        .port(u.tls.port())
        .ca(&u.ca.pem);
    let (got, _) = ask_all(
        tls_options(wrong_name),
        &[("www.example.test", RecordType::A)],
    );
    match &got[0] {
        Err(Error::Tls(evnet::tls::Error::BadCertificate(c))) => {
            assert!(format!("{c:?}").contains("NotValidForName"), "{c:?}")
        }
        other => panic!("a wrong name must be a certificate error: {other:?}"),
    }
    // The right name, another CA.
    let other = Ca::new(&temp_dir("dot-other-ca"), "elsewhere", "another CA");
    let untrusted = TlsServer::new(u.tls.ip(), u.name)
        .port(u.tls.port())
        .ca(&other.pem);
    let (got, _) = ask_all(
        tls_options(untrusted),
        &[("www.example.test", RecordType::A)],
    );
    assert_eq!(
        got[0],
        Err(Error::Tls(evnet::tls::Error::BadCertificate(
            rustls::CertificateError::UnknownIssuer
        )))
    );
    // Strict, and nothing to authenticate with: refused before connecting.
    let nothing = TlsServer::new(u.tls.ip(), u.name).port(u.tls.port());
    let (got, dns) = ask_all(tls_options(nothing), &[("www.example.test", RecordType::A)]);
    assert!(
        matches!(
            &got[0],
            Err(Error::Tls(evnet::tls::Error::Incomplete { .. }))
        ),
        "{:?}",
        got[0]
    );
    assert_eq!(dns.servers()[0].connections, 0);
    // Each failed at once: none waited for the 5 s timeout.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

#[test]
fn an_spki_pin_authenticates_whatever_the_name_and_a_wrong_pin_does_not() {
    let nsd = Nsd::start("dot-pin");
    let u = Unbound::start("pin", &nsd, 30_000);
    let pin = evnet::tls::spki_sha256(&u.leaf.der).unwrap();
    let pinned = TlsServer::new(u.tls.ip(), "any.name.test")
        .port(u.tls.port())
        .spki_pin(pin);
    let (got, _) = ask_all(tls_options(pinned), &[("www.example.test", RecordType::A)]);
    let a = got[0].as_ref().expect("the pin authenticates");
    assert_eq!(texts(a), ["192.0.2.1"]);
    assert_eq!(a.privacy, Privacy::Authenticated);
    let mut wrong = pin;
    wrong[0] ^= 1;
    let pinned = TlsServer::new(u.tls.ip(), u.name)
        .port(u.tls.port())
        .spki_pin(wrong);
    let (got, _) = ask_all(tls_options(pinned), &[("www.example.test", RecordType::A)]);
    assert!(
        matches!(
            &got[0],
            Err(Error::Tls(evnet::tls::Error::BadCertificate(_)))
        ),
        "{:?}",
        got[0]
    );
}

#[test]
fn a_hundred_queries_in_flight_on_one_connection() {
    let nsd = Nsd::start("dot-100");
    let u = Unbound::start("100", &nsd, 30_000);
    let mut ev = Loop::<Log>::new().unwrap();
    let dns = Resolver::new(&ev, tls_options(unbound_server(&u)));
    let names: Vec<String> = (0..100)
        .map(|i| format!("h{i}.wild.example.test"))
        .collect();
    let lookups: Vec<Lookup<Log>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            dns.query(&mut ev, n, RecordType::A, move |log: &mut Log, _, r| {
                log.push((i, r))
            })
        })
        .collect();
    // All written (queued behind the handshake) before a single answer can arrive.
    let s = &dns.servers()[0];
    assert_eq!((s.in_flight, s.connections), (100, 1), "{s:?}");
    let mut log = Log::new();
    assert!(ev.run_until(&mut log, LIMIT, |l| l.len() == 100).unwrap());
    drop(lookups);
    for (i, r) in &log {
        let a = r.as_ref().unwrap_or_else(|e| panic!("query {i}: {e}"));
        assert_eq!(texts(a), ["192.0.2.99"], "query {i}");
        assert_eq!(a.name.to_string(), format!("{}.", names[*i]));
    }
    let s = &dns.servers()[0];
    assert_eq!((s.in_flight, s.connections), (0, 1), "{s:?}");
}

#[test]
fn after_an_idle_close_the_next_query_reconnects_and_resumes_the_session() {
    let nsd = Nsd::start("dot-resume");
    let u = Unbound::start("resume", &nsd, 30_000);
    let mut ev = Loop::<Log>::new().unwrap();
    let cfg = ResolverOptions {
        tls_idle_timeout: Duration::from_millis(200),
        ..tls_options(unbound_server(&u))
    };
    let dns = Resolver::new(&ev, cfg);
    let mut log = Log::new();
    for round in 0..2 {
        let l = dns.query(
            &mut ev,
            "www.example.test",
            RecordType::A,
            move |log: &mut Log, _, r| log.push((round, r)),
        );
        assert!(ev
            .run_until(&mut log, LIMIT, |l| l.len() == round + 1)
            .unwrap());
        drop(l);
        assert_eq!(texts(log[round].1.as_ref().unwrap()), ["192.0.2.1"]);
        // The resolver closes the connection once it has been idle for 200 ms.
        let d = dns.clone();
        assert!(ev
            .run_until(&mut log, LIMIT, move |_| !d.servers()[0].connected)
            .unwrap());
    }
    let s = &dns.servers()[0];
    assert_eq!(s.connections, 2, "{s:?}");
    assert_eq!(
        s.resumed, 1,
        "the second connection resumed the first's session: {s:?}"
    );
}

#[test]
fn opportunistic_takes_an_unauthenticated_server_encrypted_and_a_dead_tls_port_in_the_clear() {
    let nsd = Nsd::start("dot-opp");
    let u = Unbound::start("opp", &nsd, 30_000);
    let other = Ca::new(&temp_dir("dot-opp-ca"), "elsewhere", "another CA");
    let untrusted = TlsServer::new(u.tls.ip(), u.name)
        .port(u.tls.port())
        .ca(&other.pem);
    let cfg = ResolverOptions {
        tls_profile: TlsProfile::Opportunistic,
        ..tls_options(untrusted)
    };
    let (got, _) = ask_all(cfg, &[("www.example.test", RecordType::A)]);
    let a = got[0].as_ref().expect("opportunistic: an answer");
    assert_eq!(texts(a), ["192.0.2.1"]);
    assert_eq!(
        a.privacy,
        Privacy::Encrypted,
        "encrypted, not authenticated"
    );
    // The same server authenticated: said so.
    let cfg = ResolverOptions {
        tls_profile: TlsProfile::Opportunistic,
        ..tls_options(unbound_server(&u))
    };
    let (got, _) = ask_all(cfg, &[("www.example.test", RecordType::A)]);
    assert_eq!(got[0].as_ref().unwrap().privacy, Privacy::Authenticated);
    // No TLS at that port at all: the clear-text servers answer, and for the next
    // minute the resolver goes to them at once instead of trying TLS again.
    let dead = TlsServer::new(u.tls.ip(), u.name)
        .port(closed_port())
        .ca(&u.ca.pem);
    let cfg = ResolverOptions {
        tls_profile: TlsProfile::Opportunistic,
        servers: vec![u.plain],
        ..tls_options(dead)
    };
    let mut ev = Loop::<Log>::new().unwrap();
    let dns = Resolver::new(&ev, cfg);
    let mut log = Log::new();
    for round in 0..2 {
        let l = dns.query(
            &mut ev,
            "www.example.test",
            RecordType::A,
            move |log: &mut Log, _, r| log.push((round, r)),
        );
        assert!(ev
            .run_until(&mut log, LIMIT, |l| l.len() == round + 1)
            .unwrap());
        drop(l);
        let a = log[round].1.as_ref().expect("answered in the clear");
        assert_eq!(
            (texts(a), a.privacy),
            (vec!["192.0.2.1".to_owned()], Privacy::Clear)
        );
    }
    assert_eq!(dns.servers()[0].connections, 1, "TLS was tried once");
    // Strict with the same dead port: a connection error, never the clear-text servers.
    let cfg = ResolverOptions {
        servers: vec![u.plain],
        ..tls_options(
            TlsServer::new(u.tls.ip(), u.name)
                .port(closed_port())
                .ca(&u.ca.pem),
        )
    };
    let (got, _) = ask_all(cfg, &[("www.example.test", RecordType::A)]);
    assert!(matches!(&got[0], Err(Error::Io(_))), "{:?}", got[0]);
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ----- an in-test DoT server, scripted per connection ----------------------------------

type TlsStream = rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>;

/// A TLS server on loopback whose `script` runs for each accepted connection (with its
/// index); the CA that signed its certificate for `fake.example.test`.
fn fake_dot(script: impl Fn(usize, &mut TlsStream) + Send + 'static) -> (SocketAddr, Ca) {
    let dir = temp_dir("fake-dot");
    let ca = Ca::new(&dir, "evnet fake DoT", "fake DoT CA");
    let leaf = ca.leaf(&dir, "fake.example.test", &["fake.example.test"], false);
    let config: Arc<rustls::ServerConfig> = evnet::tls::ServerPem::new(&leaf.cert, &leaf.key)
        .build()
        .unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for (i, tcp) in l.incoming().enumerate() {
            let Ok(tcp) = tcp else { return };
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            script(i, &mut s);
        }
    });
    (addr, ca)
}

fn fake_server(addr: SocketAddr, ca: &Ca) -> TlsServer {
    TlsServer::new(addr.ip(), "fake.example.test")
        .port(addr.port())
        .ca(&ca.pem)
}

/// The next framed query, or `None` at the end of the stream.
fn read_query(s: &mut TlsStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut q).ok()?;
    Some(q)
}

fn write_framed(s: &mut TlsStream, msg: &[u8]) {
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    let _ = s.write_all(&out);
    let _ = s.flush();
}

#[test]
fn a_server_that_closes_mid_pipeline_gets_the_rest_again_on_a_new_connection() {
    // Connection 0 reads three queries, answers the first and closes; connection 1
    // answers the rest in reverse order.
    let (addr, ca) = fake_dot(|i, s| {
        let n = if i == 0 { 3 } else { 2 };
        let qs: Vec<Vec<u8>> = (0..n).map_while(|_| read_query(s)).collect();
        if i == 0 {
            write_framed(s, &a_answer(&qs[0], 1));
            s.conn.send_close_notify();
            let _ = s.flush();
            return;
        }
        for q in qs.iter().rev() {
            write_framed(s, &a_answer(q, 2));
        }
        let _ = read_query(s);
    });
    let queries = [
        ("a.fake.test", RecordType::A),
        ("b.fake.test", RecordType::A),
        ("c.fake.test", RecordType::A),
    ];
    // One attempt: only the resend after a close can get b and c their answers.
    let cfg = ResolverOptions {
        attempts: 1,
        ..tls_options(fake_server(addr, &ca))
    };
    let (got, dns) = ask_all(cfg, &queries);
    let texts: Vec<Vec<String>> = got
        .iter()
        .map(|r| texts(r.as_ref().expect("answered")))
        .collect();
    assert_eq!(texts[0], ["192.0.2.1"]);
    assert_eq!(texts[1], ["192.0.2.2"], "sent again after the close");
    assert_eq!(texts[2], ["192.0.2.2"]);
    assert_eq!(dns.servers()[0].connections, 2);
}

#[test]
fn a_server_that_always_closes_fails_each_query_once_resent_and_garbage_ends_the_connection() {
    // Closes every connection right after reading a query: each query is sent again once,
    // then fails with the close, not a timeout.
    let (addr, ca) = fake_dot(|_, s| {
        let _ = read_query(s);
    });
    let t0 = std::time::Instant::now();
    let (got, dns) = ask_all(
        tls_options(fake_server(addr, &ca)),
        &[("x.fake.test", RecordType::A)],
    );
    assert!(
        matches!(&got[0], Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{:?}",
        got[0]
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Two attempts (the default), and the lookup sent again once after a close.
    assert_eq!(dns.servers()[0].connections, 3);
    // A frame too short to be a DNS message: the connection is dropped (it cannot frame
    // the next one either), the query sent again; the next connection answers.
    let (addr, ca) = fake_dot(|i, s| {
        let Some(q) = read_query(s) else { return };
        if i == 0 {
            write_framed(s, &[1, 2, 3]);
            let _ = read_query(s);
            return;
        }
        // An answer with an id nobody asked for first: ignored.
        let mut stray = a_answer(&q, 7);
        stray[0] ^= 0xff;
        write_framed(s, &stray);
        write_framed(s, &a_answer(&q, 3));
        let _ = read_query(s);
    });
    let (got, _) = ask_all(
        tls_options(fake_server(addr, &ca)),
        &[("y.fake.test", RecordType::A)],
    );
    // A malformed frame is not a clean close: the query is not sent again, the next
    // attempt (a new connection) answers it.
    assert_eq!(texts(got[0].as_ref().unwrap()), ["192.0.2.3"]);
}

#[test]
fn a_lookup_dropped_in_flight_delivers_nothing_and_the_others_are_answered() {
    let nsd = Nsd::start("dot-cancel");
    let u = Unbound::start("cancel", &nsd, 30_000);
    let mut ev = Loop::<Log>::new().unwrap();
    let dns = Resolver::new(&ev, tls_options(unbound_server(&u)));
    let keep = dns.query(
        &mut ev,
        "www.example.test",
        RecordType::A,
        |log: &mut Log, _, r| log.push((0, r)),
    );
    let dropped = dns.query(
        &mut ev,
        "mx1.example.test",
        RecordType::A,
        |log: &mut Log, _, r| log.push((1, r)),
    );
    drop(dropped);
    assert_eq!(
        dns.servers()[0].in_flight,
        1,
        "the dropped one's place is freed"
    );
    let mut log = Log::new();
    assert!(ev.run_until(&mut log, LIMIT, |l| !l.is_empty()).unwrap());
    // One more round trip on the same connection: the dropped one's answer, if the
    // server sent it, came before this one's and was ignored.
    let late = Rc::new(RefCell::new(false));
    let l2 = late.clone();
    let probe = dns.query(
        &mut ev,
        "www.example.test",
        RecordType::AAAA,
        move |_, _, _| {
            *l2.borrow_mut() = true;
        },
    );
    assert!(ev
        .run_until(&mut log, LIMIT, move |_| *late.borrow())
        .unwrap());
    drop((keep, probe));
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].0, 0);
}

// ----- examples/lookup --tls against dig +tls ------------------------------------------

/// `examples/lookup --tls` against `u`'s TLS port with `args` first: (exit success,
/// stdout, stderr).
fn lookup_tls(u: &Unbound, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(util::example("lookup"))
        .arg("--tls")
        .arg("--server")
        .arg(u.tls.to_string())
        .args(args)
        .output()
        .expect("examples/lookup (cargo test builds the examples)");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Zone lines with the TTL field left out and whitespace collapsed: a recursive server's
/// TTLs count down between two askers.
fn without_ttls(text: &str) -> String {
    text.lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 2 {
                f.remove(1);
            }
            f.join(" ") + "\n"
        })
        .collect()
}

/// `dig +tls +noall +answer` against `u`, authenticating it with its CA and name.
fn dig_tls(u: &Unbound, rtype: &str, name: &str) -> String {
    let out = std::process::Command::new(util::provision::tool("dig"))
        .args([
            "+tls",
            &format!("+tls-ca={}", u.ca.pem.display()),
            &format!("+tls-hostname={}", u.name),
            "+noall",
            "+answer",
            "+nosplit",
            &format!("@{}", u.tls.ip()),
            "-p",
            &u.tls.port().to_string(),
            rtype,
            name,
        ])
        .output()
        .unwrap_or_else(|e| panic!("dig: {e}"));
    assert!(out.status.success(), "dig +tls {rtype} {name} failed");
    without_ttls(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn lookup_tls_prints_what_dig_tls_prints_for_every_record_type() {
    let nsd = Nsd::start("dot-dig");
    let u = Unbound::start("dig", &nsd, 30_000);
    let ca = u.ca.pem.display().to_string();
    for &(rtype, name) in util::nsd::EVERY_TYPE {
        let want = dig_tls(&u, rtype, name);
        assert!(!want.is_empty(), "dig +tls found no {rtype} for {name}");
        let (ok, got, err) = lookup_tls(&u, &["--servername", u.name, "--ca", &ca, rtype, name]);
        assert!(ok, "lookup --tls {rtype} {name}: {err}");
        assert_eq!(
            without_ttls(&got),
            want,
            "lookup --tls {rtype} {name} against dig +tls"
        );
    }
}

#[test]
fn lookup_tls_prints_no_answer_and_fails_when_the_server_cannot_be_authenticated() {
    let nsd = Nsd::start("dot-dig-bad");
    let u = Unbound::start("dig-bad", &nsd, 30_000);
    let ca = u.ca.pem.display().to_string();
    let other = Ca::new(&temp_dir("dot-dig-ca"), "elsewhere", "another CA");
    let other_ca = other.pem.display().to_string();
    for args in [
        ["--servername", "wrong.example.test", "--ca", &ca],
        ["--servername", u.name, "--ca", &other_ca],
    ] {
        let mut all = args.to_vec();
        all.extend(["A", "www.example.test"]);
        let (ok, out, err) = lookup_tls(&u, &all);
        assert!(!ok, "{args:?}: must fail");
        assert_eq!(out, "", "{args:?}: no answer printed");
        assert!(err.starts_with("status: TLS\n"), "{args:?}: {err}");
        assert!(err.contains("certificate"), "{args:?}: says why: {err}");
    }
    // And with the right name and CA it answers.
    let (ok, out, err) = lookup_tls(
        &u,
        &["--servername", u.name, "--ca", &ca, "A", "www.example.test"],
    );
    assert!(ok, "{err}");
    assert!(out.ends_with("IN A 192.0.2.1\n"), "{out}");
}

#[test]
fn dropping_the_resolver_closes_its_tls_connection_and_lets_the_loop_end() {
    let nsd = Nsd::start("dot-drop");
    let u = Unbound::start("drop", &nsd, 30_000);
    let _w = util::watchdog::watchdog(LIMIT, "run() after the resolver was dropped");
    let mut ev = Loop::<Log>::new().unwrap();
    let dns = Resolver::new(&ev, tls_options(unbound_server(&u)));
    let l = dns.query(
        &mut ev,
        "www.example.test",
        RecordType::A,
        |log: &mut Log, _, r| log.push((0, r)),
    );
    let mut log = Log::new();
    assert!(ev.run_until(&mut log, LIMIT, |l| l.len() == 1).unwrap());
    assert!(dns.servers()[0].connected);
    drop((l, dns));
    // Nothing of the resolver is left on the loop: its connection and its idle check are
    // gone, so `run` returns (the watchdog ends the test if it does not).
    ev.run(&mut log).unwrap();
    assert_eq!(log.len(), 1);
}

#[test]
fn a_stalled_connection_is_dropped_at_the_timeout_and_the_next_attempt_connects_again() {
    // Connection 0 takes queries and never answers (but stays open); connection 1 answers.
    let (addr, ca) = fake_dot(|i, s| {
        while let Some(q) = read_query(s) {
            if i > 0 {
                write_framed(s, &a_answer(&q, 4));
            }
        }
    });
    let cfg = ResolverOptions {
        timeout: Duration::from_millis(300),
        attempts: 2,
        ..tls_options(fake_server(addr, &ca))
    };
    let (got, dns) = ask_all(
        cfg,
        &[
            ("a.fake.test", RecordType::A),
            ("b.fake.test", RecordType::A),
        ],
    );
    for r in &got {
        assert_eq!(
            texts(r.as_ref().expect("answered on the second connection")),
            ["192.0.2.4"]
        );
    }
    let s = &dns.servers()[0];
    assert_eq!(s.connections, 2, "{s:?}");
}

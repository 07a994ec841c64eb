//! The DNS resolver against NSD, a real authoritative server started by the tests with their
//! own zones: every record type, a CNAME chain, NXDOMAIN against NODATA, a CNAME loop, a
//! TXT too big for UDP (TC → TCP), reverse lookups for IPv4 and IPv6. Then in-test fake
//! servers for what a real one will not do, and cancellation from every place.

mod util;

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use evnet::dns::{Answer, Error, RData, RecordType, Resolver, ResolverOptions};
use evnet::ev::Loop;
use util::nsd::Nsd;

const LIMIT: Duration = Duration::from_secs(30);

type Got = Rc<RefCell<Vec<Result<Answer, Error>>>>;

fn config(servers: &[SocketAddr]) -> ResolverOptions {
    ResolverOptions {
        timeout: Duration::from_millis(500),
        ..ResolverOptions::with_servers(servers)
    }
}

/// Runs one lookup to its end.
fn ask(cfg: ResolverOptions, name: &str, rtype: RecordType) -> Result<Answer, Error> {
    let mut ev = Loop::<()>::new().unwrap();
    let dns = Resolver::new(&ev, cfg);
    let got: Got = Rc::default();
    let g = got.clone();
    let _l = dns.query(&mut ev, name, rtype, move |_, _, r| g.borrow_mut().push(r));
    let g = got.clone();
    assert!(ev
        .run_until(&mut (), LIMIT, move |_| !g.borrow().is_empty())
        .unwrap());
    let r = got.borrow_mut().pop().unwrap();
    r
}

fn texts(a: &Answer) -> Vec<String> {
    a.records.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn every_record_type_from_a_real_server() {
    let nsd = Nsd::start("types");
    let c = || config(&[nsd.addr]);
    let a = ask(c(), "www.example.test", RecordType::A).unwrap();
    assert_eq!(a.addresses(), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(a.records[0].ttl, 300);
    let aaaa = ask(c(), "WWW.Example.Test.", RecordType::AAAA).unwrap();
    assert_eq!(aaaa.addresses(), ["2001:db8::1".parse::<IpAddr>().unwrap()]);
    let ns = ask(c(), "example.test", RecordType::NS).unwrap();
    assert_eq!(texts(&ns), ["ns1.example.test."]);
    let mut mx = texts(&ask(c(), "example.test", RecordType::MX).unwrap());
    mx.sort();
    assert_eq!(
        mx,
        [
            "10 mx1.example.test.",
            "20 mx2.example.test.",
            "30 mx3.example.test."
        ]
    );
    let soa = ask(c(), "example.test", RecordType::SOA).unwrap();
    assert!(matches!(&soa.records[0].data, RData::SOA(s) if s.serial == 2026112601));
    let srv = ask(c(), "_sip._tcp.example.test", RecordType::SRV).unwrap();
    assert_eq!(srv.records.len(), 4);
    let txt = ask(c(), "small.example.test", RecordType::TXT).unwrap();
    assert!(matches!(&txt.records[0].data, RData::TXT(t) if t.txt_data.len() == 2));
    let cname = ask(c(), "c1.example.test", RecordType::CNAME).unwrap();
    assert_eq!(texts(&cname), ["c2.example.test."]);
}

#[test]
fn a_cname_chain_is_followed_and_named() {
    let nsd = Nsd::start("chain");
    let a = ask(config(&[nsd.addr]), "c1.example.test", RecordType::A).unwrap();
    let chain: Vec<String> = a.cnames.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        chain,
        [
            "c1.example.test. 300 IN CNAME c2.example.test.",
            "c2.example.test. 300 IN CNAME c3.example.test.",
            "c3.example.test. 300 IN CNAME www.example.test."
        ]
    );
    assert_eq!(a.addresses(), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    let mut short = config(&[nsd.addr]);
    short.cname_limit = 2;
    assert_eq!(
        ask(short, "c1.example.test", RecordType::A),
        Err(Error::CnameChainTooLong(2))
    );
    assert!(matches!(
        ask(config(&[nsd.addr]), "loop1.example.test", RecordType::A),
        Err(Error::CnameLoop(_))
    ));
    // A chain to a name that does not exist ends in NXDOMAIN.
    assert_eq!(
        ask(config(&[nsd.addr]), "dangling.example.test", RecordType::A),
        Err(Error::NxDomain)
    );
}

#[test]
fn nxdomain_and_nodata_are_told_apart() {
    let nsd = Nsd::start("nx");
    let c = || config(&[nsd.addr]);
    assert_eq!(
        ask(c(), "missing.example.test", RecordType::A),
        Err(Error::NxDomain)
    );
    assert_eq!(
        ask(c(), "www.example.test", RecordType::MX),
        Err(Error::NoData)
    );
    assert_eq!(Error::NoData.status(), "NOERROR");
    assert_eq!(Error::NxDomain.status(), "NXDOMAIN");
}

#[test]
fn a_txt_too_big_for_udp_is_fetched_over_tcp_whole() {
    let nsd = Nsd::start("tcp");
    let a = ask(config(&[nsd.addr]), "big.example.test", RecordType::TXT).unwrap();
    let RData::TXT(t) = &a.records[0].data else {
        panic!("{a:?}")
    };
    assert_eq!(
        t.txt_data.len(),
        12,
        "all the strings, not a truncated answer"
    );
    assert!(t.txt_data.iter().all(|s| s.len() == 200));
}

#[test]
fn reverse_lookups_for_ipv4_and_ipv6() {
    let nsd = Nsd::start("ptr");
    for ip in ["192.0.2.1", "2001:db8::1"] {
        let mut ev = Loop::<()>::new().unwrap();
        let dns = Resolver::new(&ev, config(&[nsd.addr]));
        let got: Got = Rc::default();
        let g = got.clone();
        let _l = dns.reverse(&mut ev, ip.parse().unwrap(), move |_, _, r| {
            g.borrow_mut().push(r)
        });
        let g = got.clone();
        assert!(ev
            .run_until(&mut (), LIMIT, move |_| !g.borrow().is_empty())
            .unwrap());
        let a = got.borrow_mut().pop().unwrap().unwrap();
        assert_eq!(texts(&a), ["www.example.test."], "{ip}");
    }
}

#[test]
fn search_list_and_hosts_file() {
    let nsd = Nsd::start("search");
    let mut c = config(&[nsd.addr]);
    c.search = vec!["nowhere.test".into(), "example.test".into()];
    let a = ask(c.clone(), "www", RecordType::A).unwrap();
    assert_eq!(a.name.to_string(), "www.example.test.");
    c.hosts = evnet::dns::Hosts::parse("198.51.100.7 pinned.example.test pinned\n");
    let a = ask(c, "pinned", RecordType::A).unwrap();
    assert_eq!(a.addresses(), ["198.51.100.7".parse::<IpAddr>().unwrap()]);
}

/// A fake server on a thread: `reply` maps each query to the datagrams to send back (to
/// the querier, from this socket).
fn fake(reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> SocketAddr {
    fake_with_spoofer(reply, |_| Vec::new())
}

/// As [`fake`], and before answering, `spoof` sends its datagrams to the querier from
/// another port (an off-path attacker who guessed the source port).
fn fake_with_spoofer(
    reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
    spoof: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            for d in spoof(&buf[..n]) {
                let _ = other.send_to(&d, from);
            }
            std::thread::sleep(Duration::from_millis(20));
            for d in reply(&buf[..n]) {
                let _ = s.send_to(&d, from);
            }
        }
    });
    addr
}

/// An answer to `query` (its id and question) with one A record 192.0.2.<last>, or only
/// `rcode` when `last` is None.
fn answer(query: &[u8], last: Option<u8>, rcode: u8) -> Vec<u8> {
    use evnet::dns::proto::op::Message;
    let q = Message::from_vec(query).unwrap();
    let mut m = Message::new(
        q.metadata.id,
        evnet::dns::proto::op::MessageType::Response,
        q.metadata.op_code,
    );
    m.queries = q.queries.clone();
    m.metadata.response_code = evnet::dns::proto::op::ResponseCode::from(0, rcode);
    if let Some(last) = last {
        let name = q.queries[0].name.clone();
        m.answers.push(evnet::dns::Record::from_rdata(
            name,
            60,
            RData::A(evnet::dns::proto::rr::rdata::A::new(192, 0, 2, last)),
        ));
    }
    m.to_vec().unwrap()
}

#[test]
fn only_the_right_reply_counts_whatever_answers_first() {
    // A perfect forgery (right id and question) from another port arrives first.
    let addr = fake_with_spoofer(
        |q| vec![answer(q, Some(1), 0)],
        |q| vec![answer(q, Some(66), 0)],
    );
    let a = ask(config(&[addr]), "www.example.test", RecordType::A).unwrap();
    assert_eq!(a.addresses(), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    // The server itself first sends a wrong id, a wrong question and garbage.
    let addr = fake(|q| {
        let good = answer(q, Some(1), 0);
        let mut wrong_id = good.clone();
        wrong_id[0] ^= 0xff;
        let mut wrong_q = answer(q, Some(66), 0);
        // Another question: flip a letter of the name (after the 12-byte header).
        wrong_q[13] ^= 0x01;
        vec![wrong_id, wrong_q, b"garbage".to_vec(), good]
    });
    let a = ask(config(&[addr]), "www.example.test", RecordType::A).unwrap();
    assert_eq!(a.addresses(), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
}

#[test]
fn servfail_then_a_good_server_and_a_silent_one_then_a_good_one() {
    let servfail = fake(|q| vec![answer(q, None, 2)]);
    let refused = fake(|q| vec![answer(q, None, 5)]);
    let silent = fake(|_| Vec::new());
    let good = fake(|q| vec![answer(q, Some(7), 0)]);
    let want = ["192.0.2.7".parse::<IpAddr>().unwrap()];
    assert_eq!(
        ask(config(&[servfail, good]), "a.test", RecordType::A)
            .unwrap()
            .addresses(),
        want
    );
    assert_eq!(
        ask(config(&[refused, good]), "a.test", RecordType::A)
            .unwrap()
            .addresses(),
        want
    );
    assert_eq!(
        ask(config(&[silent, good]), "a.test", RecordType::A)
            .unwrap()
            .addresses(),
        want
    );
    // Every server failing: the clearest error wins over the timeout.
    assert_eq!(
        ask(config(&[silent, servfail]), "a.test", RecordType::A),
        Err(Error::ServFail)
    );
    assert_eq!(
        ask(config(&[silent]), "a.test", RecordType::A),
        Err(Error::Timeout)
    );
}

/// A UDP port on loopback where nothing listens: a query there gets ICMP port unreachable.
fn closed_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[test]
fn a_server_that_refuses_the_connection_is_passed_over_at_once_not_after_the_timeout() {
    // The timeout is an hour: only the refusal itself can move the lookup on within
    // `ask`'s 30 s limit.
    let slow = |servers: &[SocketAddr], attempts: u32| ResolverOptions {
        timeout: Duration::from_secs(3600),
        attempts,
        ..ResolverOptions::with_servers(servers)
    };
    let good = fake(|q| vec![answer(q, Some(7), 0)]);
    let got = ask(slow(&[closed_port(), good], 2), "a.test", RecordType::A);
    assert_eq!(
        got.unwrap().addresses(),
        ["192.0.2.7".parse::<IpAddr>().unwrap()]
    );
    // Every server refusing: the lookup ends with the refusal, as an `io::Error`.
    let dead = closed_port();
    match ask(slow(&[dead, closed_port()], 2), "a.test", RecordType::A) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("want a refusal, got {other:?}"),
    }
}

#[test]
fn formerr_on_edns_is_asked_again_without() {
    let addr = fake(|q| {
        // An OPT record in the additional section (ARCOUNT > 0) gets FORMERR, no question.
        if q[11] > 0 {
            let mut r = q[..12].to_vec();
            r[2] |= 0x80; // QR
            r[3] = 1; // FORMERR
            r[4..12].fill(0);
            vec![r]
        } else {
            vec![answer(q, Some(3), 0)]
        }
    });
    let a = ask(config(&[addr]), "old.test", RecordType::A).unwrap();
    assert_eq!(a.addresses(), ["192.0.2.3".parse::<IpAddr>().unwrap()]);
}

#[test]
fn cancelling_from_any_callback_and_dropping_the_resolver_deliver_nothing() {
    let silent = fake(|_| Vec::new());
    let good = fake(|q| vec![answer(q, Some(9), 0)]);
    let mut ev = Loop::<Vec<&'static str>>::new().unwrap();
    let dns = Resolver::new(&ev, config(&[good]));
    // A lookup whose handle the first lookup's callback drops, before it completes.
    let slow = Resolver::new(&ev, config(&[silent]));
    let victim = Rc::new(RefCell::new(Some(slow.query(
        &mut ev,
        "v.test",
        RecordType::A,
        |log: &mut Vec<&str>, _, _| log.push("victim ran"),
    ))));
    let v = victim.clone();
    let first = dns.query(
        &mut ev,
        "a.test",
        RecordType::A,
        move |log: &mut Vec<&str>, _, r| {
            assert!(r.is_ok());
            log.push("first");
            v.borrow_mut().take(); // cancels another lookup from this callback
        },
    );
    // A lookup that cancels itself from its own callback (its handle lives in the state).
    let own: Rc<RefCell<Option<evnet::dns::Lookup<Vec<&str>>>>> = Rc::default();
    let o = own.clone();
    *own.borrow_mut() = Some(dns.query(
        &mut ev,
        "b.test",
        RecordType::A,
        move |log: &mut Vec<&str>, _, _| {
            log.push("own");
            o.borrow_mut().take();
        },
    ));
    // Lookups in flight when their resolver goes: nothing is delivered.
    let orphan = Resolver::new(&ev, config(&[silent]));
    let l = orphan.query(
        &mut ev,
        "o.test",
        RecordType::A,
        |log: &mut Vec<&str>, _, _| log.push("orphan ran"),
    );
    l.detach();
    drop(orphan);
    let mut log = Vec::new();
    ev.run_for(&mut log, Duration::from_millis(1500)).unwrap();
    drop(first);
    log.sort();
    assert_eq!(log, ["first", "own"]);
}

type Targets = Rc<RefCell<Vec<Result<Vec<evnet::dns::ServiceHost>, Error>>>>;

fn targets(nsd: &Nsd, name: &str, mx: bool) -> Result<Vec<evnet::dns::ServiceHost>, Error> {
    let mut ev = Loop::<()>::new().unwrap();
    let dns = Resolver::new(&ev, config(&[nsd.addr]));
    let got: Targets = Rc::default();
    let g = got.clone();
    let done = move |_: &mut (), _: &mut evnet::ev::Ctx<()>, r| g.borrow_mut().push(r);
    let _c = if mx {
        dns.mx_hosts(&mut ev, name, done)
    } else {
        dns.srv_hosts(&mut ev, name, done)
    };
    let g = got.clone();
    assert!(ev
        .run_until(&mut (), LIMIT, move |_| !g.borrow().is_empty())
        .unwrap());
    let r = got.borrow_mut().pop().unwrap();
    r
}

fn hosts(t: &[evnet::dns::ServiceHost]) -> Vec<String> {
    t.iter().map(|t| t.host.to_string()).collect()
}

fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn srv_hosts_in_rfc_2782_order_with_their_addresses() {
    let nsd = Nsd::start("srv");
    let t = targets(&nsd, "_sip._tcp.example.test", false).unwrap();
    let h = hosts(&t);
    assert_eq!(h.len(), 4);
    let mut first3 = h[..3].to_vec();
    first3.sort();
    assert_eq!(
        first3,
        [
            "sip1.example.test.",
            "sip2.example.test.",
            "sip3.example.test."
        ]
    );
    assert_eq!(
        h[3], "backup.example.test.",
        "priority 20 after every priority 10"
    );
    assert_eq!((t[3].priority, t[3].weight, t[3].port), (20, 0, 5061));
    let sip2 = t
        .iter()
        .find(|t| t.host.to_string() == "sip2.example.test.")
        .unwrap();
    assert_eq!(
        sip2.addresses,
        ips(&["2001:db8::22", "192.0.2.22"]),
        "IPv6 first, interleaved"
    );
    assert_eq!((sip2.priority, sip2.weight, sip2.port), (10, 20, 5060));
    assert_eq!(
        targets(&nsd, "_none._tcp.example.test", false),
        Err(Error::ServiceUnavailable)
    );
    assert_eq!(
        targets(&nsd, "_x._tcp.example.test", false),
        Err(Error::NxDomain)
    );
}

#[test]
fn mx_hosts_by_preference_implicit_and_null() {
    let nsd = Nsd::start("mx");
    let t = targets(&nsd, "example.test", true).unwrap();
    assert_eq!(
        hosts(&t),
        [
            "mx1.example.test.",
            "mx2.example.test.",
            "mx3.example.test."
        ]
    );
    assert_eq!(t[0].addresses, ips(&["192.0.2.11"]));
    assert_eq!(t[1].addresses, ips(&["2001:db8::12", "192.0.2.12"]));
    assert_eq!(t[2].addresses, ips(&["2001:db8::13"]));
    let prefs: Vec<(u16, u16, u16)> = t.iter().map(|t| (t.priority, t.weight, t.port)).collect();
    assert_eq!(prefs, [(10, 0, 25), (20, 0, 25), (30, 0, 25)]);
    assert_eq!(
        targets(&nsd, "nomail.example.test", true),
        Err(Error::NoMail)
    );
    // No MX: the domain itself (RFC 5321 §5.1).
    let t = targets(&nsd, "www.example.test", true).unwrap();
    assert_eq!(hosts(&t), ["www.example.test."]);
    assert_eq!((t[0].priority, t[0].port), (0, 25));
    assert_eq!(t[0].addresses, ips(&["2001:db8::1", "192.0.2.1"]));
}

#[test]
fn lookup_ip_interleaves_families_and_a_dropped_compound_never_calls_back() {
    let nsd = Nsd::start("ip");
    let mut ev = Loop::<Vec<Result<Vec<IpAddr>, Error>>>::new().unwrap();
    let dns = Resolver::new(&ev, config(&[nsd.addr]));
    let a = dns.lookup_ip(&mut ev, "www.example.test", |log, _, r| log.push(r));
    let b = dns.lookup_ip(&mut ev, "missing.example.test", |log, _, r| log.push(r));
    let dropped = dns.lookup_ip(&mut ev, "mx2.example.test", |log, _, r| log.push(r));
    drop(dropped);
    let mut log = Vec::new();
    assert!(ev.run_until(&mut log, LIMIT, |l| l.len() >= 2).unwrap());
    ev.run_for(&mut log, Duration::from_millis(100)).unwrap();
    drop((a, b));
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log.contains(&Ok(ips(&["2001:db8::1", "192.0.2.1"]))));
    assert!(log.contains(&Err(Error::NxDomain)));
}

#[test]
fn connecting_to_a_host_target_resolves_through_this_resolver() {
    let nsd = Nsd::start("connect");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut ev = Loop::<Vec<String>>::new().unwrap();
    let dns = Resolver::new(&ev, config(&[nsd.addr]));
    let events = |name: &'static str| {
        util::Fns::new(
            |_, _, _, _| {},
            move |_, e, log: &mut Vec<String>, _| log.push(format!("{name} {e:?}")),
        )
    };
    let copts = evnet::socket::ConnectOptions::default();
    let opts = evnet::bufio::Options::default();
    let named = evnet::bufio::Stream::connect(
        &mut ev,
        &dns,
        evnet::socket::Target::host("ns1.example.test", port),
        copts,
        opts,
        events("named"),
    );
    let literal = evnet::bufio::Stream::connect(
        &mut ev,
        &dns,
        evnet::socket::Target::host("127.0.0.1", port),
        copts,
        opts,
        events("literal"),
    );
    let missing = evnet::bufio::Stream::connect(
        &mut ev,
        &dns,
        evnet::socket::Target::host("missing.example.test", port),
        copts,
        opts,
        events("missing"),
    );
    let mut log = Vec::new();
    assert!(ev.run_until(&mut log, LIMIT, |l| l.len() >= 3).unwrap());
    log.sort();
    assert_eq!(log[0], "literal Connected");
    assert!(log[1].starts_with("missing Error"), "{log:?}");
    assert_eq!(log[2], "named Connected");
    drop((named, literal, missing));
}

/// `examples/lookup`, which `cargo test` builds beside the tests.
fn lookup_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/lookup")
}

/// Runs `examples/lookup` against `nsd`: (exit success, stdout, stderr).
fn lookup(nsd: &Nsd, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(lookup_bin())
        .arg("--server")
        .arg(nsd.addr.to_string())
        .args(args)
        .output()
        .expect("examples/lookup (cargo test builds the examples)");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_lookup_example_prints_zone_file_lines_json_compounds_and_status() {
    let nsd = Nsd::start("lookup");
    let (ok, out, _) = lookup(&nsd, &["A", "www.example.test"]);
    assert!(ok);
    assert_eq!(out, "www.example.test. 300 IN A 192.0.2.1\n");
    let (ok, out, _) = lookup(&nsd, &["-x", "2001:db8::1"]);
    assert!(ok);
    assert!(out.ends_with("IN PTR www.example.test.\n"), "{out}");
    let (ok, out, _) = lookup(&nsd, &["--json", "mx", "example.test"]);
    assert!(ok);
    assert!(out.starts_with("{\"status\":\"NOERROR\""), "{out}");
    assert!(out.contains("\"data\":\"10 mx1.example.test.\""), "{out}");
    let (ok, out, _) = lookup(&nsd, &["mx-hosts", "example.test"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "example.test. 300 IN MX 10 mx1.example.test.");
    assert_eq!(lines[1], "  mx1.example.test. IN A 192.0.2.11");
    let (ok, out, _) = lookup(&nsd, &["srv-hosts", "_sip._tcp.example.test"]);
    assert!(ok);
    assert_eq!(out.lines().filter(|l| l.contains(" SRV ")).count(), 4);
    let (ok, _, err) = lookup(&nsd, &["A", "missing.example.test"]);
    assert!(!ok);
    assert!(err.starts_with("status: NXDOMAIN"), "{err}");
    let (ok, _, err) = lookup(&nsd, &["MX", "www.example.test"]);
    assert!(!ok);
    assert!(
        err.starts_with("status: NOERROR"),
        "NODATA is NOERROR with no answer: {err}"
    );
}

/// Asks for `name` twice, the second time after the first answer; returns both results.
fn ask_twice(cfg: ResolverOptions, name: &str) -> Vec<Result<Answer, Error>> {
    let mut ev = Loop::<Vec<Result<Answer, Error>>>::new().unwrap();
    let dns = Resolver::new(&ev, cfg);
    let name2 = name.to_owned();
    let d2 = dns.clone();
    let keep: Rc<RefCell<Vec<evnet::dns::Lookup<_>>>> = Rc::default();
    let k2 = keep.clone();
    let first = dns.query(
        &mut ev,
        name,
        RecordType::A,
        move |log: &mut Vec<_>, cx, r| {
            log.push(r);
            let l = d2.query(cx, &name2, RecordType::A, |log: &mut Vec<_>, _, r| {
                log.push(r)
            });
            k2.borrow_mut().push(l);
        },
    );
    let mut log = Vec::new();
    assert!(ev.run_until(&mut log, LIMIT, |l| l.len() == 2).unwrap());
    drop((first, keep));
    log
}

#[test]
fn the_cache_answers_within_ttl_negative_answers_for_the_soa_minimum_and_is_off_by_default() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let asked = Arc::new(AtomicUsize::new(0));
    let a2 = asked.clone();
    let server = fake(move |q| {
        a2.fetch_add(1, Ordering::SeqCst);
        vec![answer(q, Some(5), 0)]
    });
    let cached = ResolverOptions {
        cache: 16,
        ..config(&[server])
    };
    let r = ask_twice(cached, "c.test.");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "the second answer came from the cache"
    );
    assert_eq!(r[0], r[1]);
    let r = ask_twice(config(&[server]), "c.test.");
    assert_eq!(asked.load(Ordering::SeqCst), 3, "no cache by default");
    assert!(r[1].is_ok());

    // NXDOMAIN with an SOA (minimum 30): kept; without one: not kept.
    let asked = Arc::new(AtomicUsize::new(0));
    let a2 = asked.clone();
    let server = fake(move |q| {
        use evnet::dns::proto::op::Message;
        use evnet::dns::proto::rr::rdata::SOA;
        a2.fetch_add(1, Ordering::SeqCst);
        let mut m = Message::from_vec(&answer(q, None, 3)).unwrap();
        let zone: evnet::dns::Name = "test.".parse().unwrap();
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 3600, 600, 86400, 30);
        m.authorities
            .push(evnet::dns::Record::from_rdata(zone, 300, RData::SOA(soa)));
        vec![m.to_vec().unwrap()]
    });
    let cached = ResolverOptions {
        cache: 16,
        ..config(&[server])
    };
    let r = ask_twice(cached, "gone.test.");
    assert_eq!(r, [Err(Error::NxDomain), Err(Error::NxDomain)]);
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

#[test]
fn with_0x20_the_answer_must_echo_the_names_case() {
    let nsd = Nsd::start("0x20");
    let mixed = ResolverOptions {
        case_randomization: true,
        ..config(&[nsd.addr])
    };
    let a = ask(mixed.clone(), "www.example.test", RecordType::A).unwrap();
    assert_eq!(a.addresses(), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    // A server (or forger) that answers in lower case is not believed.
    let lower = fake(|q| {
        let mut r = answer(q, Some(1), 0);
        for b in r[12..].iter_mut().take_while(|b| **b != 0) {
            b.make_ascii_lowercase();
        }
        vec![r]
    });
    let strict = ResolverOptions {
        case_randomization: true,
        attempts: 1,
        ..config(&[lower])
    };
    assert_eq!(
        ask(strict, "mixed.case.randomization.test.name", RecordType::A),
        Err(Error::Timeout)
    );
}

#[test]
fn connecting_to_a_service_target_walks_the_srv_targets_in_order_past_a_dead_one() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let live = listener.local_addr().unwrap().port();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connecting there is refused
    let extra = format!(
        "_echo._tcp IN SRV 5 0 {dead} ns1.example.test.\n_echo._tcp IN SRV 10 0 {live} ns1.example.test.\n"
    );
    let nsd = Nsd::start_with("service", &extra);
    let mut ev = Loop::<Vec<String>>::new().unwrap();
    let dns = Resolver::new(&ev, config(&[nsd.addr]));
    let s = evnet::bufio::Stream::connect(
        &mut ev,
        &dns,
        evnet::socket::Target::service("echo", "tcp", "example.test"),
        evnet::socket::ConnectOptions::default(),
        evnet::bufio::Options::default(),
        util::Fns::new(
            |_, _, _, _| {},
            |_, e, log: &mut Vec<String>, _| log.push(format!("{e:?}")),
        ),
    );
    let mut log = Vec::new();
    assert!(ev.run_until(&mut log, LIMIT, |l| !l.is_empty()).unwrap());
    assert_eq!(log, ["Connected"]);
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_ok(),
        "the live target took the connection"
    );
    drop(s);
}

/// An answer to `query` holding only a CNAME to `target`.
fn cname_answer(query: &[u8], target: &str) -> Vec<u8> {
    use evnet::dns::proto::op::Message;
    use evnet::dns::proto::rr::rdata::CNAME;
    let mut m = Message::from_vec(&answer(query, None, 0)).unwrap();
    let owner = m.queries[0].name.clone();
    let to: evnet::dns::Name = target.parse().unwrap();
    m.answers.push(evnet::dns::Record::from_rdata(
        owner,
        60,
        RData::CNAME(CNAME(to)),
    ));
    m.to_vec().unwrap()
}

#[test]
fn a_cname_loop_across_responses_is_caught() {
    // Each response carries one hop only: a → b, b → a (hickory #3882).
    let server = fake(|q| {
        let name = evnet::dns::proto::op::Message::from_vec(q).unwrap().queries[0]
            .name
            .to_string();
        let next = if name.starts_with('a') {
            "b.loop.test."
        } else {
            "a.loop.test."
        };
        vec![cname_answer(q, next)]
    });
    assert!(matches!(
        ask(config(&[server]), "a.loop.test.", RecordType::A),
        Err(Error::CnameLoop(_))
    ));
}

#[test]
fn rotate_spreads_queries_over_the_servers() {
    let one = fake(|q| vec![answer(q, Some(1), 0)]);
    let two = fake(|q| vec![answer(q, Some(2), 0)]);
    let rotating = ResolverOptions {
        rotate: true,
        ..config(&[one, two])
    };
    let mut ev = Loop::<Vec<IpAddr>>::new().unwrap();
    let dns = Resolver::new(&ev, rotating);
    let a = dns.query(
        &mut ev,
        "r.test.",
        RecordType::A,
        |log: &mut Vec<IpAddr>, _, r| log.extend(r.unwrap().addresses()),
    );
    let b = dns.query(
        &mut ev,
        "r.test.",
        RecordType::A,
        |log: &mut Vec<IpAddr>, _, r| log.extend(r.unwrap().addresses()),
    );
    let mut log = Vec::new();
    assert!(ev.run_until(&mut log, LIMIT, |l| l.len() == 2).unwrap());
    drop((a, b));
    log.sort();
    assert_eq!(
        log,
        ips(&["192.0.2.1", "192.0.2.2"]),
        "one query to each server"
    );
}

/// An SRV lookup against a fake server whose answer has IPv4 glue only for its target
/// (and answers AAAA when asked), with the AA bit as given: the target's addresses, and
/// the record types the server was asked for.
fn srv_with_ipv4_glue_only(authoritative: bool) -> (Vec<IpAddr>, Vec<RecordType>) {
    use evnet::dns::proto::op::Message;
    use evnet::dns::proto::rr::rdata::{AAAA, SRV};
    use std::sync::{Arc, Mutex};
    let asked: Arc<Mutex<Vec<RecordType>>> = Arc::default();
    let a2 = asked.clone();
    let server = fake(move |q| {
        let qm = Message::from_vec(q).unwrap();
        let qt = qm.queries[0].query_type;
        a2.lock().unwrap().push(qt);
        let mut m = Message::from_vec(&answer(q, None, 0)).unwrap();
        m.metadata.authoritative = authoritative;
        let owner = qm.queries[0].name.clone();
        let host: evnet::dns::Name = "Host.G.Test.".parse().unwrap();
        match qt {
            RecordType::SRV => {
                m.answers.push(evnet::dns::Record::from_rdata(
                    owner,
                    60,
                    RData::SRV(SRV::new(10, 0, 80, host.clone())),
                ));
                // Glue for IPv4 only, its owner in another case.
                m.additionals.push(evnet::dns::Record::from_rdata(
                    "host.g.test.".parse().unwrap(),
                    60,
                    RData::A(evnet::dns::proto::rr::rdata::A::new(192, 0, 2, 5)),
                ));
            }
            RecordType::AAAA => m.answers.push(evnet::dns::Record::from_rdata(
                owner,
                60,
                RData::AAAA(AAAA("2001:db8::5".parse().unwrap())),
            )),
            _ => {}
        }
        vec![m.to_vec().unwrap()]
    });
    let mut ev = Loop::<Vec<Result<Vec<evnet::dns::ServiceHost>, Error>>>::new().unwrap();
    let dns = Resolver::new(&ev, config(&[server]));
    let _c = dns.srv_hosts(&mut ev, "_x._tcp.g.test.", |log, _, r| log.push(r));
    let mut log = Vec::new();
    assert!(ev.run_until(&mut log, LIMIT, |l| !l.is_empty()).unwrap());
    let t = log.pop().unwrap().unwrap();
    let asked = asked.lock().unwrap().clone();
    (t[0].addresses.clone(), asked)
}

#[test]
fn srv_glue_for_one_family_queries_only_the_other() {
    let (addresses, asked) = srv_with_ipv4_glue_only(false);
    assert_eq!(addresses, ips(&["2001:db8::5", "192.0.2.5"]));
    assert_eq!(asked, [RecordType::SRV, RecordType::AAAA], "A came as glue");
}

#[test]
fn srv_glue_from_an_authoritative_answer_is_complete_and_nothing_more_is_asked() {
    let (addresses, asked) = srv_with_ipv4_glue_only(true);
    assert_eq!(addresses, ips(&["192.0.2.5"]));
    assert_eq!(asked, [RecordType::SRV], "the server sent all it has");
}

/// Holds a lookup and drops it from its own `Drop`, as an application's types do.
struct Owner(#[allow(dead_code)] Option<evnet::dns::Lookup<Vec<&'static str>>>);
impl Drop for Owner {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

#[test]
fn dropping_a_lookup_cancels_it_in_every_nesting() {
    let good = fake(|q| vec![answer(q, Some(9), 0)]);
    let mut ev = Loop::<Vec<&'static str>>::new().unwrap();
    let dns = Resolver::new(&ev, config(&[good]));
    let ask = |ev: &mut Loop<Vec<&'static str>>, what: &'static str| {
        dns.query(
            ev,
            "n.test",
            RecordType::A,
            move |log: &mut Vec<&str>, _, _| log.push(what),
        )
    };
    // A callback that owns another lookup of the same resolver, inside a `Drop` impl:
    // dropping the outer one drops the callback, which drops the inner one.
    let inner = ask(&mut ev, "inner ran");
    let owner = Owner(Some(inner));
    let outer = dns.query(&mut ev, "o.test", RecordType::A, move |log, _, _| {
        let _keep = &owner;
        log.push("outer ran");
    });
    assert_eq!(dns.in_flight(), 2);
    drop(outer);
    assert_eq!(dns.in_flight(), 0, "the nested lookup is still in flight");

    // A compound lookup whose callback owns a lookup of the same resolver.
    let nested = ask(&mut ev, "nested in compound ran");
    let c = dns.lookup_ip(&mut ev, "c.test", move |log: &mut Vec<&str>, _, _| {
        let _keep = &nested;
        log.push("compound ran");
    });
    assert_eq!(dns.in_flight(), 3);
    drop(c);
    assert_eq!(
        dns.in_flight(),
        0,
        "the compound's nested lookup is still in flight"
    );

    // Dropped from another lookup's callback (answered first, as asked first): the victim
    // owns a further lookup.
    let victim: Rc<RefCell<Option<evnet::dns::Lookup<Vec<&str>>>>> = Rc::default();
    let v = victim.clone();
    dns.query(&mut ev, "k.test", RecordType::A, move |log, _, _| {
        log.push("killer");
        v.borrow_mut().take();
    })
    .detach();
    let deeper = ask(&mut ev, "deeper ran");
    *victim.borrow_mut() = Some(
        dns.query(&mut ev, "v.test", RecordType::A, move |log, _, _| {
            let _keep = &deeper;
            log.push("victim ran");
        }),
    );

    // Dropped after its resolver is gone.
    let gone = Resolver::new(&ev, config(&[good]));
    let orphan = gone.query(&mut ev, "g.test", RecordType::A, |log, _, _| {
        log.push("orphan ran")
    });
    drop(gone);
    drop(orphan);

    // The last question asked is answered last: once its answer is in, any lookup that
    // was not cancelled has had its answer too.
    dns.query(&mut ev, "z.test", RecordType::A, |log, _, _| {
        log.push("last")
    })
    .detach();
    let mut log = Vec::new();
    assert!(ev
        .run_until(&mut log, LIMIT, |log| log.contains(&"last"))
        .unwrap());
    assert_eq!(dns.in_flight(), 0);
    assert!(victim.borrow().is_none());
    assert_eq!(log, ["killer", "last"]);
}

/// A server that answers a query with `junk` datagrams and then the answer, all sent
/// before the test lets the loop read any; `sent` reports when they are in the querier's
/// socket (loopback delivers within the send).
fn junk_then_answer(junk: usize) -> (SocketAddr, std::sync::mpsc::Receiver<()>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            for _ in 0..junk {
                let _ = s.send_to(b"junk", from);
            }
            let _ = s.send_to(&answer(&buf[..n], Some(5), 0), from);
            let _ = tx.send(());
        }
    });
    (addr, rx)
}

#[test]
fn junk_from_the_server_is_read_a_bounded_batch_per_turn_and_the_answer_behind_it_counts() {
    let (addr, sent) = junk_then_answer(130);
    let cfg = ResolverOptions {
        timeout: Duration::from_secs(20),
        ..ResolverOptions::with_servers(&[addr])
    };
    let mut ev = Loop::<()>::new().unwrap();
    let dns = Resolver::new(&ev, cfg);
    let got: Got = Rc::default();
    let g = got.clone();
    let _l = dns.query(&mut ev, "j.test", RecordType::A, move |_, _, r| {
        g.borrow_mut().push(r)
    });
    sent.recv_timeout(LIMIT)
        .expect("the fake server never answered");
    let mut turns = 0;
    while got.borrow().is_empty() {
        ev.run_once(&mut ()).unwrap();
        turns += 1;
        assert!(turns < 1000, "the answer never counted");
    }
    // 64 datagrams a turn: 130 junk ones and the answer take three.
    assert!(turns >= 3, "131 datagrams were read in {turns} turn(s)");
    let a = got.borrow_mut().pop().unwrap().unwrap();
    assert_eq!(a.addresses(), ["192.0.2.5".parse::<IpAddr>().unwrap()]);
}

#[test]
fn a_flood_of_100000_junk_datagrams_neither_stops_a_1_ms_timer_nor_hides_the_answer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let flooding = Arc::new(AtomicBool::new(false));
    let over = Arc::new(AtomicBool::new(false));
    let (fl, ov) = (flooding.clone(), over.clone());
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        fl.store(true, Ordering::SeqCst);
        for _ in 0..100_000 {
            let _ = s.send_to(b"junk from the server's own address", from);
        }
        fl.store(false, Ordering::SeqCst);
        // The answer last; again until it counted, in case the flood filled the socket.
        let good = answer(&buf[..n], Some(6), 0);
        while !ov.load(Ordering::SeqCst) {
            let _ = s.send_to(&good, from);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    struct St {
        got: Option<Result<Answer, Error>>,
        ticks_in_flood: u64,
    }
    let mut ev = Loop::<St>::new().unwrap();
    let f = flooding.clone();
    let tick = Duration::from_millis(1);
    ev.timer(tick, Some(tick), move |st: &mut St, _, _| {
        if f.load(Ordering::SeqCst) {
            st.ticks_in_flood += 1;
        }
    });
    let cfg = ResolverOptions {
        timeout: Duration::from_secs(20),
        ..ResolverOptions::with_servers(&[addr])
    };
    let dns = Resolver::new(&ev, cfg);
    let _l = dns.query(&mut ev, "f.test", RecordType::A, |st: &mut St, _, r| {
        st.got = Some(r)
    });
    let mut st = St {
        got: None,
        ticks_in_flood: 0,
    };
    let ok = ev.run_until(&mut st, LIMIT, |st| st.got.is_some()).unwrap();
    over.store(true, Ordering::SeqCst);
    server.join().unwrap();
    assert!(ok, "no answer within {LIMIT:?}");
    let a = st.got.take().unwrap().unwrap();
    assert_eq!(a.addresses(), ["192.0.2.6".parse::<IpAddr>().unwrap()]);
    assert!(
        st.ticks_in_flood > 0,
        "the timer never fired during the flood"
    );
}

/// `dig +noall +answer` against `nsd`, whitespace collapsed (dig separates fields with
/// tabs); hex and base64 unsplit (`+nosplit`), as `lookup` prints them.
fn dig(nsd: &Nsd, rtype: &str, name: &str) -> String {
    let out = std::process::Command::new(util::provision::tool("dig"))
        .args([
            "+noall",
            "+answer",
            "+nosplit",
            "+norecurse",
            &format!("@{}", nsd.addr.ip()),
            "-p",
            &nsd.addr.port().to_string(),
            rtype,
            name,
        ])
        .output()
        .unwrap_or_else(|e| panic!("dig: {e}"));
    assert!(out.status.success(), "dig {rtype} {name} failed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

#[test]
fn lookup_prints_what_dig_prints_for_every_record_type() {
    let nsd = Nsd::start("dig");
    for &(rtype, name) in util::nsd::EVERY_TYPE {
        let want = dig(&nsd, rtype, name);
        assert!(!want.is_empty(), "dig found no {rtype} for {name}");
        let (ok, got, err) = lookup(&nsd, &[rtype, name]);
        assert!(ok, "lookup {rtype} {name}: {err}");
        assert_eq!(got, want, "lookup {rtype} {name} against dig");
    }
}

#[test]
fn lookup_into_a_closed_pipe_exits_quietly() {
    let nsd = Nsd::start("pipe");
    // The reader is gone before the child exists, so its very first write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = std::process::Command::new(lookup_bin())
        .args(["--server", &nsd.addr.to_string(), "TXT", "big.example.test"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn each_query_leaves_from_a_fresh_port_the_kernel_picks_at_random() {
    use std::sync::{Arc, Mutex};
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = s.local_addr().unwrap();
    let ports: Arc<Mutex<Vec<u16>>> = Arc::default();
    let p2 = ports.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            p2.lock().unwrap().push(from.port());
            let _ = s.send_to(&answer(&buf[..n], Some(1), 0), from);
        }
    });
    // 40 lookups one after another: each socket is closed before the next is made, so
    // only a fresh random choice keeps a port from coming straight back.
    for _ in 0..40 {
        assert!(ask(config(&[server]), "a.test", RecordType::A).is_ok());
    }
    let ports = ports.lock().unwrap().clone();
    assert_eq!(ports.len(), 40);
    let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
    assert!(
        distinct.len() >= 35,
        "{} distinct of 40: {ports:?}",
        distinct.len()
    );
    let steps = ports
        .windows(2)
        .filter(|w| w[0].abs_diff(w[1]) <= 1)
        .count();
    assert!(steps <= 3, "ports in sequence, not at random: {ports:?}");
}

//! A resolver that follows its configuration files: the tests point it at a resolv.conf
//! and a hosts file of their own, rewrite them, and see new lookups take the new servers
//! and hosts while a lookup in flight keeps the old; options given explicitly never
//! change. resolv.conf has no ports, so the fake servers listen on port 53 of loopback
//! addresses of their own (127.53.x.1; the tests run as root, as CI does).

mod util;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evnet::dns::proto::op::Message;
use evnet::dns::{Answer, Error, RecordType, Resolver, ResolverOptions, SystemFiles};
use evnet::ev::Loop;
use util::dns_fake::{a_answer, last_octet};

const LIMIT: Duration = Duration::from_secs(30);

type Log = Vec<(&'static str, Result<Answer, Error>)>;

/// A server on `ip`:53 answering every A query with `192.0.2.<last>`, except the first
/// query for a name starting with `slow` (dropped: its lookup asks again after its
/// timeout); counts the queries.
fn server(ip: [u8; 4], last: u8) -> (SocketAddr, Arc<AtomicUsize>) {
    let addr = SocketAddr::from((ip, 53));
    let s = UdpSocket::bind(addr).unwrap_or_else(|e| {
        panic!("binding {addr} (port 53: the tests must run as root, as CI does): {e}")
    });
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut dropped = std::collections::HashSet::new();
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            g.fetch_add(1, Ordering::SeqCst);
            let q = Message::from_vec(&buf[..n]).unwrap();
            let lower = q.queries[0].name().to_ascii().to_ascii_lowercase();
            if lower.starts_with("slow") && dropped.insert(lower) {
                continue;
            }
            let _ = s.send_to(&a_answer(&buf[..n], last), from);
        }
    });
    (addr, got)
}

/// Replaces `path` as editors and resolvconf do: a new file renamed over the old.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn rewritten_files_reach_new_lookups_while_one_in_flight_keeps_the_old_servers() {
    let _w = util::watchdog::watchdog(LIMIT * 2, "the follow test");
    let (old, old_got) = server([127, 53, 1, 1], 1);
    let (new, new_got) = server([127, 53, 2, 1], 2);
    let dir = util::pki::temp_dir("follow");
    let (rc, hosts) = (dir.join("resolv.conf"), dir.join("hosts"));
    replace(&rc, "nameserver 127.53.1.1\noptions timeout:3 attempts:2\n");
    replace(&hosts, "192.0.2.50 pinned.test\n");
    let files = SystemFiles {
        resolv_conf: rc.clone(),
        hosts: hosts.clone(),
        check_every: Duration::from_millis(100),
    };
    let mut ev = Loop::<Log>::new().unwrap();
    let dns = Resolver::following(&ev, files);
    // An explicit configuration from the same file: never replaced.
    let explicit = Resolver::new(
        &ev,
        ResolverOptions::from_resolv_conf(&std::fs::read(&rc).unwrap()),
    );
    assert_eq!(dns.options().servers, [old]);
    let mut log = Log::new();
    let mut keep = Vec::new();
    let ask = |ev: &mut Loop<Log>, tag: &'static str, name: &str| {
        dns.query(ev, name, RecordType::A, move |log: &mut Log, _, r| {
            log.push((tag, r))
        })
    };
    // A lookup in flight: the old server drops its first query, so it waits for its
    // timeout (3 s: the server has not answered yet, so there is no round trip to go by)
    // and asks again. Then the files change.
    keep.push(ask(&mut ev, "in flight", "slow.test"));
    keep.push(ask(&mut ev, "hosts before", "pinned.test"));
    assert!(ev.run_until(&mut log, LIMIT, |l| l.len() == 1).unwrap());
    replace(&rc, "nameserver 127.53.2.1\noptions timeout:3 attempts:2\n");
    replace(&hosts, "192.0.2.51 pinned.test\n");
    // New lookups, one after another, until one has the new configuration (the resolver
    // looks at most every 100 ms).
    let t0 = Instant::now();
    while dns.options().servers != [new] {
        assert!(t0.elapsed() < LIMIT, "the new resolv.conf was never read");
        let n = log.len();
        keep.push(ask(&mut ev, "while changing", "b.test"));
        assert!(ev.run_until(&mut log, LIMIT, |l| l.len() > n).unwrap());
    }
    assert!(
        !log.iter().any(|(t, _)| *t == "in flight"),
        "the files were read again only after the lookup in flight ended (a very slow machine?)"
    );
    keep.push(ask(&mut ev, "after", "c.test"));
    keep.push(ask(&mut ev, "hosts after", "pinned.test"));
    let want = |log: &Log, tag| log.iter().any(|(t, _)| *t == tag);
    assert!(ev
        .run_until(&mut log, LIMIT, move |l| want(l, "after")
            && want(l, "hosts after")
            && want(l, "in flight"))
        .unwrap());
    let get = |tag| &log.iter().find(|(t, _)| *t == tag).unwrap().1;
    assert_eq!(last_octet(get("while changing")), 1);
    assert_eq!(last_octet(get("hosts before")), 50);
    assert_eq!(
        last_octet(get("in flight")),
        1,
        "the lookup in flight asked again with its own configuration: the old server"
    );
    assert_eq!(last_octet(get("after")), 2);
    assert_eq!(last_octet(get("hosts after")), 51);
    // The slow question went to the old server twice, never to the new one.
    assert!(old_got.load(Ordering::SeqCst) >= 3);
    assert!(new_got.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        explicit.options().servers,
        [old],
        "explicit options are never replaced"
    );
    drop(keep);
}

#[test]
fn a_resolver_that_follows_looks_at_most_once_per_interval_and_a_removed_file_gives_the_defaults() {
    let dir = util::pki::temp_dir("follow-rm");
    let (rc, hosts) = (dir.join("resolv.conf"), dir.join("hosts"));
    replace(&rc, "nameserver 192.0.2.53\nsearch one.test\n");
    let files = SystemFiles {
        resolv_conf: rc.clone(),
        hosts,
        check_every: Duration::from_secs(3600),
    };
    let mut ev = Loop::<Log>::new().unwrap();
    let dns = Resolver::following(&ev, files.clone());
    assert_eq!(dns.options().search, ["one.test"]);
    // Changed, but the hour has not passed: a lookup does not look.
    replace(&rc, "nameserver 192.0.2.54\nsearch two.test\n");
    let l = dns.query(&mut ev, "x.invalid.", RecordType::A, |_: &mut Log, _, _| {});
    drop(l);
    assert_eq!(dns.options().search, ["one.test"]);
    // With an interval of zero every lookup looks; a removed resolv.conf gives glibc's
    // defaults (the local server).
    let dns = Resolver::following(
        &ev,
        SystemFiles {
            check_every: Duration::ZERO,
            ..files
        },
    );
    assert_eq!(dns.options().search, ["two.test"]);
    std::fs::remove_file(&rc).unwrap();
    let l = dns.query(&mut ev, "x.invalid.", RecordType::A, |_: &mut Log, _, _| {});
    drop(l);
    assert_eq!(
        dns.options().servers,
        [SocketAddr::from(([127, 0, 0, 1], 53))]
    );
    assert!(dns.options().search.is_empty());
}

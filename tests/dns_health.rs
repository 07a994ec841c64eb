//! Server health (as c-ares keeps it), against in-test UDP servers that go silent, come
//! back and answer slowly: a failed server moves behind the others and costs one probe
//! per retry delay, not a timeout per lookup; an answer brings it back; each server's
//! timeout follows its smoothed round-trip time within bounds.

mod util;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evnet::dns::{Answer, Error, RecordType, Resolver, ResolverOptions};
use evnet::ev::Loop;
use util::dns_fake::{a_answer, last_octet};

const LIMIT: Duration = Duration::from_secs(30);

/// A UDP server that answers every A query with `192.0.2.<last>` after `delay_ms`
/// (`u64::MAX`: it stays silent), and counts the queries it got.
struct Fake {
    addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    got: Arc<AtomicUsize>,
}

const SILENT: u64 = u64::MAX;

fn fake(last: u8, delay_ms: u64) -> Fake {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let delay = Arc::new(AtomicU64::new(delay_ms));
    let got = Arc::new(AtomicUsize::new(0));
    let (d, g) = (delay.clone(), got.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            g.fetch_add(1, Ordering::SeqCst);
            let ms = d.load(Ordering::SeqCst);
            if ms == SILENT {
                continue;
            }
            let reply = a_answer(&buf[..n], last);
            let s2 = s.try_clone().unwrap();
            // Each answer on a thread of its own: a slow one does not hold the others.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                let _ = s2.send_to(&reply, from);
            });
        }
    });
    Fake {
        addr,
        delay_ms: delay,
        got,
    }
}

/// Runs one lookup of `name` on `dns` to its end.
fn ask(
    ev: &mut Loop<Vec<Result<Answer, Error>>>,
    dns: &Resolver<Vec<Result<Answer, Error>>>,
    name: &str,
) -> Result<Answer, Error> {
    let mut log = Vec::new();
    let l = dns.query(ev, name, RecordType::A, |log: &mut Vec<_>, _, r| {
        log.push(r)
    });
    assert!(ev.run_until(&mut log, LIMIT, |l| !l.is_empty()).unwrap());
    drop(l);
    log.pop().unwrap()
}

#[test]
fn a_silent_first_server_costs_one_timeout_then_is_set_aside_behind_the_good_one() {
    let dead = fake(1, SILENT);
    let good = fake(2, 0);
    let cfg = ResolverOptions {
        timeout: Duration::from_millis(300),
        server_retry_delay: Duration::from_secs(3600),
        ..ResolverOptions::with_servers(&[dead.addr, good.addr])
    };
    let mut ev = Loop::new().unwrap();
    let dns = Resolver::new(&ev, cfg);
    for i in 0..20 {
        assert_eq!(last_octet(&ask(&mut ev, &dns, &format!("n{i}.test"))), 2);
    }
    // Only the first lookup asked the silent server: the other 19 went to the good one
    // first (without health, each would have waited 300 ms for the silent one).
    assert_eq!(dead.got.load(Ordering::SeqCst), 1);
    assert_eq!(good.got.load(Ordering::SeqCst), 20);
    let s = dns.servers();
    assert_eq!(
        (s[0].failures, s[0].failed, s[0].answered),
        (1, 1, 0),
        "{s:?}"
    );
    assert_eq!((s[1].failures, s[1].answered), (0, 20), "{s:?}");
}

#[test]
fn a_server_that_comes_back_is_probed_after_the_retry_delay_and_put_back_in_front() {
    let flaky = fake(1, SILENT);
    let other = fake(2, 0);
    let cfg = ResolverOptions {
        timeout: Duration::from_millis(200),
        server_retry_delay: Duration::from_millis(300),
        ..ResolverOptions::with_servers(&[flaky.addr, other.addr])
    };
    let mut ev = Loop::new().unwrap();
    let dns = Resolver::new(&ev, cfg);
    assert_eq!(last_octet(&ask(&mut ev, &dns, "a.test")), 2);
    assert_eq!(dns.servers()[0].failures, 1);
    // It answers again; lookups go to the other server until the retry delay has passed,
    // then one probes it, gets its answer, and it is back in front.
    flaky.delay_ms.store(0, Ordering::SeqCst);
    let t0 = Instant::now();
    let mut i = 0;
    while dns.servers()[0].failures > 0 {
        assert!(t0.elapsed() < LIMIT, "never probed: {:?}", dns.servers());
        // Answered by one or the other, never a failure.
        last_octet(&ask(&mut ev, &dns, &format!("b{i}.test")));
        i += 1;
    }
    assert_eq!(
        last_octet(&ask(&mut ev, &dns, "c.test")),
        1,
        "back in front"
    );
    assert_eq!(dns.servers()[0].answered, 2);
}

#[test]
fn each_server_gets_a_timeout_from_its_own_round_trips_within_bounds() {
    let slow = fake(1, 150);
    let fast = fake(2, 0);
    let cfg = ResolverOptions {
        timeout: Duration::from_secs(5),
        min_timeout: Duration::from_millis(100),
        ..ResolverOptions::with_servers(&[slow.addr, fast.addr])
    };
    let mut ev = Loop::new().unwrap();
    let dns = Resolver::new(&ev, cfg);
    assert_eq!(
        dns.servers()[0].timeout,
        Duration::from_secs(5),
        "unknown: the maximum"
    );
    for i in 0..3 {
        assert_eq!(last_octet(&ask(&mut ev, &dns, &format!("s{i}.test"))), 1);
    }
    let s = &dns.servers()[0];
    let srtt = s.srtt.expect("measured");
    assert!(srtt >= Duration::from_millis(150), "{s:?}");
    assert_eq!(s.timeout, srtt * 4, "four round trips: {s:?}");
    // The fast server's round trips are far under the bound: it gets the minimum.
    let fast_only = ResolverOptions {
        min_timeout: Duration::from_millis(100),
        ..ResolverOptions::with_servers(&[fast.addr, slow.addr])
    };
    let dns = Resolver::new(&ev, fast_only);
    assert_eq!(last_octet(&ask(&mut ev, &dns, "f.test")), 2);
    assert_eq!(dns.servers()[0].timeout, Duration::from_millis(100));
    // Then it goes silent: the lookup moves on after its own 100 ms, not the 5 s.
    fast.delay_ms.store(SILENT, Ordering::SeqCst);
    let t0 = Instant::now();
    assert_eq!(last_octet(&ask(&mut ev, &dns, "g.test")), 1);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let s = &dns.servers()[0];
    assert_eq!((s.failures, s.failed), (1, 1), "{s:?}");
}

//! DNS over TLS: evnet's resolver against hickory-resolver's DoT (tokio current-thread
//! runtime, rustls with ring on both sides), in one run against the same Unbound (started
//! here in front of NSD, with a certificate made here), caches off on both clients.
//! 10,000 A lookups, 100 in flight, each for a name of its own (wildcard records), so
//! neither client nor Unbound answers from a cache. Both sides authenticate the server
//! against the same CA. Reported: lookups/s, p50/p99 latency, the resolving thread's CPU
//! per lookup, and TLS connections made. A last row asks the same Unbound over UDP in the
//! clear with evnet: what TLS costs (not compared).
//!
//! ```text
//! cargo bench --bench dot -- [--runs R]
//! ```

mod util;

#[allow(dead_code)]
#[path = "../tests/util/pki.rs"]
mod pki;

#[allow(dead_code)]
#[path = "../tests/util/nsd.rs"]
mod nsd;
#[allow(dead_code)]
#[path = "../tests/util/provision.rs"]
mod provision;
#[allow(dead_code)]
#[path = "../tests/util/unbound.rs"]
mod unbound;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use evnet::dns::{RecordType, Resolver, ResolverOptions, TlsServer};
use evnet::ev::{Ctx, Loop};
use unbound::Unbound;

const IN_FLIGHT: usize = 100;
const LOOKUPS: usize = 10_000;

#[derive(Clone)]
struct Row {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_ns: f64,
    errors: usize,
    connections: u64,
}

fn row(n: usize, wall: Duration, mut lat: Vec<f64>, cpu: u64, errors: usize, conns: u64) -> Row {
    Row {
        per_s: n as f64 / wall.as_secs_f64(),
        p50_us: util::percentile(&mut lat, 0.50),
        p99_us: util::percentile(&mut lat, 0.99),
        cpu_ns: cpu as f64 / n as f64,
        errors,
        connections: conns,
    }
}

/// A fresh name prefix per run and side: Unbound has never seen the names.
fn prefix() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("r{}", N.fetch_add(1, Ordering::Relaxed))
}

// ----- evnet ---------------------------------------------------------------------------

struct Bench {
    prefix: String,
    left: usize,
    done: usize,
    lat: Vec<f64>,
    errors: usize,
}

type Keep = Rc<RefCell<Vec<evnet::dns::Lookup<Bench>>>>;

fn evnet_start(dns: &Resolver<Bench>, cx: &mut Ctx<Bench>, st: &mut Bench, keep: &Keep) {
    if st.left == 0 {
        return;
    }
    st.left -= 1;
    let t = Instant::now();
    let (d2, k2) = (dns.clone(), keep.clone());
    let name = format!("{}q{}.wild.example.test.", st.prefix, st.left);
    let l = dns.query(cx, &name, RecordType::A, move |st, cx, r| {
        st.lat.push(t.elapsed().as_nanos() as f64 / 1e3);
        st.done += 1;
        st.errors += usize::from(r.is_err());
        if st.done == LOOKUPS {
            cx.stop_loop();
        }
        evnet_start(&d2, cx, st, &k2);
    });
    let mut k = keep.borrow_mut();
    if k.len() > 4 * IN_FLIGHT {
        k.drain(..2 * IN_FLIGHT);
    }
    k.push(l);
}

fn evnet_run(options: ResolverOptions) -> Result<Row> {
    let mut ev = Loop::<Bench>::new()?;
    let dns = Resolver::new(&ev, options);
    let keep: Keep = Rc::default();
    let mut st = Bench {
        prefix: prefix(),
        left: LOOKUPS,
        done: 0,
        lat: Vec::with_capacity(LOOKUPS),
        errors: 0,
    };
    let (d, k) = (dns.clone(), keep.clone());
    ev.timer(Duration::ZERO, None, move |st, cx, _| {
        for _ in 0..IN_FLIGHT {
            evnet_start(&d, cx, st, &k);
        }
    });
    let cpu0 = util::thread_cpu_ns();
    let t0 = Instant::now();
    ev.run(&mut st)?;
    let wall = t0.elapsed();
    let cpu = util::thread_cpu_ns() - cpu0;
    let conns = dns.servers().iter().map(|s| s.connections).sum();
    Ok(row(LOOKUPS, wall, st.lat, cpu, st.errors, conns))
}

fn evnet_dot(u: &Unbound) -> Result<Row> {
    let server = TlsServer::new(u.tls.ip(), u.name)
        .port(u.tls.port())
        .ca(&u.ca.pem);
    evnet_run(ResolverOptions {
        tls_servers: vec![server],
        ..ResolverOptions::default()
    })
}

fn evnet_udp(u: &Unbound) -> Result<Row> {
    evnet_run(ResolverOptions::with_servers(&[u.plain]))
}

// ----- hickory-resolver ----------------------------------------------------------------

fn hickory_dot(u: &Unbound) -> Result<Row> {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut tls = ConnectionConfig::tls(Arc::from(u.name));
    tls.port = u.tls.port();
    let ns = NameServerConfig::new(u.tls.ip(), true, vec![tls]);
    let config = ResolverConfig::from_parts(None, Vec::new(), vec![ns]);
    // The same trust as evnet's side: the test CA, TLS 1.3 and 1.2, ring.
    let client = evnet::tls::ClientPem::new(&u.ca.pem).tls12(true).build()?;
    let mut builder =
        hickory_resolver::Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_tls_config((*client).clone());
    // No cache: capacity 0 alone still serves entries until moka evicts them, so every
    // TTL is clamped to zero too.
    let opts = builder.options_mut();
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    let resolver = builder.build()?;
    let per_task = LOOKUPS / IN_FLIGHT;
    let pre = prefix();
    let cpu0 = util::thread_cpu_ns();
    let t0 = Instant::now();
    let results: Vec<(Vec<f64>, usize)> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for task in 0..IN_FLIGHT {
            let r = resolver.clone();
            let pre = pre.clone();
            set.spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                let mut errors = 0;
                for j in 0..per_task {
                    let i = task * per_task + j;
                    let t = Instant::now();
                    let ok = r
                        .lookup(
                            format!("{pre}q{i}.wild.example.test."),
                            hickory_resolver::proto::rr::RecordType::A,
                        )
                        .await
                        .is_ok();
                    lat.push(t.elapsed().as_nanos() as f64 / 1e3);
                    errors += usize::from(!ok);
                }
                (lat, errors)
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.unwrap_or_default());
        }
        out
    });
    let wall = t0.elapsed();
    let cpu = util::thread_cpu_ns() - cpu0;
    let errors = results.iter().map(|r| r.1).sum();
    let lat = results.into_iter().flat_map(|r| r.0).collect();
    // hickory does not report its connections.
    Ok(row(per_task * IN_FLIGHT, wall, lat, cpu, errors, 0))
}

fn main() -> Result<()> {
    let args = util::Args::parse(1)?;
    let nsd = nsd::Nsd::start("dot-bench");
    let u = Unbound::start("bench", &nsd, 30_000);
    println!(
        "dot: Unbound (in front of NSD) on loopback, client caches off, {IN_FLIGHT} lookups in \
         flight, {LOOKUPS} A lookups per run; median of {} runs",
        args.runs
    );
    println!(
        "{:<20} {:>10} {:>8} {:>9} {:>9} {:>8} {:>11} {:>8} {:>6} {:>7}",
        "resolver",
        "lookups/s",
        "x hick",
        "p50 us",
        "p99 us",
        "x hick",
        "cpu ns/op",
        "x hick",
        "conns",
        "errors"
    );
    type Run = fn(&Unbound) -> Result<Row>;
    let sides: [(&str, Run); 3] = [
        ("hickory DoT", hickory_dot),
        ("evnet DoT", evnet_dot),
        ("evnet UDP (clear)", evnet_udp),
    ];
    let only = std::env::var("DNS_SIDE").ok();
    let mut rows: Vec<Vec<Row>> = vec![Vec::new(); sides.len()];
    for run in 0..args.runs {
        // Round by round, the order reversed every other round: drift hits every side.
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if run % 2 == 1 {
            order.reverse();
        }
        for i in order {
            if only.as_deref().is_some_and(|o| !sides[i].0.contains(o)) {
                continue;
            }
            rows[i].push(sides[i].1(&u)?);
        }
    }
    if rows.iter().any(Vec::is_empty) {
        return Ok(()); // DNS_SIDE (for strace or perf): one side only, no table
    }
    let med = |rs: &[Row], f: fn(&Row) -> f64| {
        let mut v: Vec<f64> = rs.iter().map(f).collect();
        util::median(&mut v)
    };
    let base = (
        med(&rows[0], |r| r.per_s),
        med(&rows[0], |r| r.p99_us),
        med(&rows[0], |r| r.cpu_ns),
    );
    for (i, (name, _)) in sides.iter().enumerate() {
        let (o, p50, p99, c) = (
            med(&rows[i], |r| r.per_s),
            med(&rows[i], |r| r.p50_us),
            med(&rows[i], |r| r.p99_us),
            med(&rows[i], |r| r.cpu_ns),
        );
        let errors: usize = rows[i].iter().map(|r| r.errors).sum();
        let conns = med(&rows[i], |r| r.connections as f64);
        let conns = if i == 0 {
            "?".to_owned()
        } else {
            format!("{conns:.0}")
        };
        println!(
            "{name:<20} {o:>10.0} {:>8.2} {p50:>9.0} {p99:>9.0} {:>8.2} {c:>11.0} {:>8.2} {conns:>6} {errors:>7}",
            o / base.0,
            p99 / base.1,
            c / base.2
        );
    }
    Ok(())
}

//! Server health: lookups with a dead server first in the list against the all-healthy
//! case, evnet's resolver and hickory-resolver's, in one run against the same local NSD
//! (started here with the tests' zones), caches off on both sides. The dead server is a
//! UDP socket that never answers (a silent drop, the costly kind: no ICMP to learn from).
//! Each run first makes 200 lookups that are not measured (the first failures: each
//! resolver has to learn that the server is dead), then measures 10,000 A lookups, 100 in
//! flight, each for a name of its own. Timeout 1 s on both sides. Reported: lookups/s,
//! p50/p99 latency, each dead-first row's p99 against its own healthy row, CPU per
//! lookup, and the queries the dead server received during the measured part.
//!
//! ```text
//! cargo bench --bench health -- [--runs R]
//! ```

mod util;

#[allow(dead_code)]
mod pki {
    pub fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("evnet-health-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

#[allow(dead_code)]
#[path = "../tests/util/nsd.rs"]
mod nsd;
#[allow(dead_code)]
#[path = "../tests/util/provision.rs"]
mod provision;

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use evnet::dns::{RecordType, Resolver, ResolverOptions};
use evnet::ev::{Ctx, Loop};

const IN_FLIGHT: usize = 100;
const WARM: usize = 200;
const LOOKUPS: usize = 10_000;
const TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Row {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_ns: f64,
    errors: usize,
    dead_queries: usize,
}

/// A server that takes every datagram and answers none; counts them.
struct Dead {
    addr: SocketAddr,
    got: Arc<AtomicUsize>,
}

fn dead() -> Result<Dead> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    let addr = s.local_addr()?;
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while s.recv_from(&mut buf).is_ok() {
            g.fetch_add(1, Ordering::Relaxed);
        }
    });
    Ok(Dead { addr, got })
}

fn prefix() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("h{}", N.fetch_add(1, Ordering::Relaxed))
}

// ----- evnet ---------------------------------------------------------------------------

struct Bench {
    prefix: String,
    left: usize,
    done: usize,
    total: usize,
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
        if st.done == st.total {
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

/// `n` lookups on `ev`/`dns`, 100 in flight: (latencies, errors, wall, CPU).
fn evnet_batch(
    ev: &mut Loop<Bench>,
    dns: &Resolver<Bench>,
    n: usize,
) -> Result<(Vec<f64>, usize, Duration, u64)> {
    let keep: Keep = Rc::default();
    let mut st = Bench {
        prefix: prefix(),
        left: n,
        done: 0,
        total: n,
        lat: Vec::with_capacity(n),
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
    Ok((
        st.lat,
        st.errors,
        t0.elapsed(),
        util::thread_cpu_ns() - cpu0,
    ))
}

fn evnet_run(servers: &[SocketAddr], dead: Option<&Dead>) -> Result<Row> {
    let mut ev = Loop::<Bench>::new()?;
    let dns = Resolver::new(
        &ev,
        ResolverOptions {
            timeout: TIMEOUT,
            ..ResolverOptions::with_servers(servers)
        },
    );
    evnet_batch(&mut ev, &dns, WARM)?;
    let before = dead.map_or(0, |d| d.got.load(Ordering::Relaxed));
    let (lat, errors, wall, cpu) = evnet_batch(&mut ev, &dns, LOOKUPS)?;
    let after = dead.map_or(0, |d| d.got.load(Ordering::Relaxed));
    Ok(row(lat, errors, wall, cpu, after - before))
}

fn row(mut lat: Vec<f64>, errors: usize, wall: Duration, cpu: u64, dead: usize) -> Row {
    let n = lat.len();
    Row {
        per_s: n as f64 / wall.as_secs_f64(),
        p50_us: util::percentile(&mut lat, 0.50),
        p99_us: util::percentile(&mut lat, 0.99),
        cpu_ns: cpu as f64 / n as f64,
        errors,
        dead_queries: dead,
    }
}

// ----- hickory-resolver ----------------------------------------------------------------

fn hickory_run(servers: &[SocketAddr], dead: Option<&Dead>) -> Result<Row> {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ns = servers
        .iter()
        .map(|s| {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            NameServerConfig::new(s.ip(), true, vec![udp])
        })
        .collect();
    let config = ResolverConfig::from_parts(None, Vec::new(), ns);
    let mut builder =
        hickory_resolver::Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.timeout = TIMEOUT;
    let resolver = builder.build()?;
    let batch = |n: usize| {
        let pre = prefix();
        let per_task = n / IN_FLIGHT;
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
        let errors: usize = results.iter().map(|r| r.1).sum();
        let lat: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
        (lat, errors, wall, cpu)
    };
    batch(WARM);
    let before = dead.map_or(0, |d| d.got.load(Ordering::Relaxed));
    let (lat, errors, wall, cpu) = batch(LOOKUPS);
    let after = dead.map_or(0, |d| d.got.load(Ordering::Relaxed));
    Ok(row(lat, errors, wall, cpu, after - before))
}

fn main() -> Result<()> {
    let args = util::Args::parse(1)?;
    let nsd = nsd::Nsd::start("health-bench");
    let dead = dead()?;
    println!(
        "health: NSD on loopback and a silent server, caches off, timeout 1 s, {IN_FLIGHT} in \
         flight; {WARM} lookups unmeasured, then {LOOKUPS}; median of {} runs",
        args.runs
    );
    println!(
        "{:<14} {:<12} {:>10} {:>9} {:>9} {:>13} {:>11} {:>11} {:>7}",
        "resolver",
        "servers",
        "lookups/s",
        "p50 us",
        "p99 us",
        "p99 x healthy",
        "cpu ns/op",
        "dead got",
        "errors"
    );
    type Run = fn(&[SocketAddr], Option<&Dead>) -> Result<Row>;
    let sides: [(&str, Run); 2] = [("hickory", hickory_run), ("evnet dns", evnet_run)];
    for (name, run) in sides {
        let mut healthy = Vec::new();
        let mut dead_first = Vec::new();
        for r in 0..args.runs {
            // The order alternates, so drift hits both.
            if r % 2 == 0 {
                healthy.push(run(&[nsd.addr], None)?);
                dead_first.push(run(&[dead.addr, nsd.addr], Some(&dead))?);
            } else {
                dead_first.push(run(&[dead.addr, nsd.addr], Some(&dead))?);
                healthy.push(run(&[nsd.addr], None)?);
            }
        }
        let med = |rs: &[Row], f: fn(&Row) -> f64| {
            let mut v: Vec<f64> = rs.iter().map(f).collect();
            util::median(&mut v)
        };
        let base = med(&healthy, |r| r.p99_us);
        for (label, rows) in [("healthy", &healthy), ("dead first", &dead_first)] {
            println!(
                "{name:<14} {label:<12} {:>10.0} {:>9.0} {:>9.0} {:>13.2} {:>11.0} {:>11.0} {:>7}",
                med(rows, |r| r.per_s),
                med(rows, |r| r.p50_us),
                med(rows, |r| r.p99_us),
                med(rows, |r| r.p99_us) / base,
                med(rows, |r| r.cpu_ns),
                med(rows, |r| r.dead_queries as f64),
                rows.iter().map(|r| r.errors).sum::<usize>(),
            );
        }
    }
    Ok(())
}

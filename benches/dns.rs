//! evnet's resolver against hickory-resolver on a tokio current-thread runtime, in one run
//! against the same local NSD (started here with the tests' zones), caches off on both
//! sides: (a) 10,000 A queries, 100 in flight; (b) 1,000 SRV compound lookups (the SRV
//! records, then every target's addresses), 100 in flight. hickory has no compound SRV
//! lookup, so its side is `srv_lookup` and then `lookup_ip` of each target, as its users
//! write it; evnet takes addresses from the additional section when the server sent them.
//! Every lookup asks for a name of its own (wildcard records), so neither side can answer
//! from a cache or merge identical queries in flight (hickory does both even with its cache
//! size 0; the SRV targets' address lookups it may still merge). Reported: lookups/s,
//! p50/p99 latency, and the resolving thread's CPU per lookup.
//!
//! A third SRV row, "hickory + glue", takes each target's addresses from hickory's
//! `additionals()` when the server sent any (as evnet does), `lookup_ip` otherwise. The
//! sides run round by round, the order reversed every other round. `DNS_SIDE=<part of a
//! name>` runs one side only and prints no table (for `strace -c` or `perf record`).
//!
//! ```text
//! cargo bench --bench dns -- [--runs R]
//! ```

mod util;

#[allow(dead_code)]
mod pki {
    pub fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("evnet-dns-bench-{}-{tag}", std::process::id()));
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
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use evnet::dns::{RecordType, Resolver, ResolverOptions};
use evnet::ev::{Ctx, Loop};

const IN_FLIGHT: usize = 100;

#[derive(Clone)]
struct Row {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_ns: f64,
}

fn row(n: usize, wall: Duration, mut lat: Vec<f64>, cpu: u64) -> Row {
    Row {
        per_s: n as f64 / wall.as_secs_f64(),
        p50_us: util::percentile(&mut lat, 0.50),
        p99_us: util::percentile(&mut lat, 0.99),
        cpu_ns: cpu as f64 / n as f64,
    }
}

// ----- evnet ---------------------------------------------------------------------------

struct Bench {
    left: usize,
    done: usize,
    lat: Vec<f64>,
    errors: usize,
    total: usize,
}

type Keep = Rc<RefCell<Vec<Box<dyn std::any::Any>>>>;

fn evnet_start(dns: &Resolver<Bench>, cx: &mut Ctx<Bench>, st: &mut Bench, srv: bool, keep: &Keep) {
    if st.left == 0 {
        return;
    }
    st.left -= 1;
    // A name of its own per lookup: nothing can be answered from a cache or merged.
    let i = st.left;
    let t = Instant::now();
    let (d2, k2) = (dns.clone(), keep.clone());
    let finish = move |st: &mut Bench, cx: &mut Ctx<Bench>, ok: bool| {
        st.lat.push(t.elapsed().as_nanos() as f64 / 1e3);
        st.done += 1;
        st.errors += usize::from(!ok);
        if st.done == st.total {
            cx.stop_loop();
        }
        evnet_start(&d2, cx, st, srv, &k2);
    };
    let h: Box<dyn std::any::Any> = if srv {
        Box::new(
            dns.srv_hosts(cx, &format!("s{i}.srv.example.test."), move |st, cx, r| {
                finish(
                    st,
                    cx,
                    r.is_ok_and(|t| t.iter().all(|t| !t.addresses.is_empty())),
                )
            }),
        )
    } else {
        Box::new(dns.query(
            cx,
            &format!("q{i}.wild.example.test."),
            RecordType::A,
            move |st, cx, r| finish(st, cx, r.is_ok()),
        ))
    };
    // Handles of finished lookups are dropped in batches (dropping one is a no-op then).
    let mut k = keep.borrow_mut();
    if k.len() > 4 * IN_FLIGHT {
        k.drain(..2 * IN_FLIGHT);
    }
    k.push(h);
}

fn evnet_run(server: SocketAddr, n: usize, srv: bool) -> Result<(Row, usize)> {
    let mut ev = Loop::<Bench>::new()?;
    let dns = Resolver::new(&ev, ResolverOptions::with_servers(&[server]));
    let keep: Keep = Rc::default();
    let mut st = Bench {
        left: n,
        done: 0,
        lat: Vec::with_capacity(n),
        errors: 0,
        total: n,
    };
    let (d, k) = (dns.clone(), keep.clone());
    ev.timer(Duration::ZERO, None, move |st, cx, _| {
        for _ in 0..IN_FLIGHT {
            evnet_start(&d, cx, st, srv, &k);
        }
    });
    let cpu0 = util::thread_cpu_ns();
    let t0 = Instant::now();
    ev.run(&mut st)?;
    let wall = t0.elapsed();
    let cpu = util::thread_cpu_ns() - cpu0;
    Ok((row(n, wall, st.lat, cpu), st.errors))
}

// ----- hickory-resolver ----------------------------------------------------------------

fn hickory_run(server: SocketAddr, n: usize, srv: bool) -> Result<(Row, usize)> {
    hickory(server, n, srv, false)
}

/// hickory with the SRV answer's additional section used as evnet uses it: a target's
/// addresses from there when the server sent any, `lookup_ip` otherwise.
fn hickory_glue_run(server: SocketAddr, n: usize, srv: bool) -> Result<(Row, usize)> {
    hickory(server, n, srv, true)
}

fn hickory(server: SocketAddr, n: usize, srv: bool, glue: bool) -> Result<(Row, usize)> {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut udp = ConnectionConfig::udp();
    udp.port = server.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = server.port();
    let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
    let config = ResolverConfig::from_parts(None, Vec::new(), vec![ns]);
    let mut builder =
        hickory_resolver::Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    // No cache: capacity 0 alone still serves entries until moka evicts them, so every
    // TTL is clamped to zero too.
    let opts = builder.options_mut();
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    let resolver = builder.build()?;
    let per_task = n / IN_FLIGHT;
    let cpu0 = util::thread_cpu_ns();
    let t0 = Instant::now();
    let results: Vec<(Vec<f64>, usize)> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for task in 0..IN_FLIGHT {
            let r = resolver.clone();
            set.spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                let mut errors = 0;
                for j in 0..per_task {
                    let i = task * per_task + j;
                    let t = Instant::now();
                    let ok = if srv {
                        match r.srv_lookup(format!("s{i}.srv.example.test.")).await {
                            Ok(l) => {
                                use hickory_resolver::proto::rr::RData;
                                let mut all = true;
                                for rec in l.answers() {
                                    if let RData::SRV(s) = &rec.data {
                                        let glued = glue
                                            && l.additionals().iter().any(|a| {
                                                a.name == s.target
                                                    && matches!(
                                                        a.data,
                                                        RData::A(_) | RData::AAAA(_)
                                                    )
                                            });
                                        if !glued {
                                            all &= r.lookup_ip(s.target.clone()).await.is_ok();
                                        }
                                    }
                                }
                                all
                            }
                            Err(_) => false,
                        }
                    } else {
                        r.lookup(
                            format!("q{i}.wild.example.test."),
                            hickory_resolver::proto::rr::RecordType::A,
                        )
                        .await
                        .is_ok()
                    };
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
    Ok((row(per_task * IN_FLIGHT, wall, lat, cpu), errors))
}

fn main() -> Result<()> {
    let args = util::Args::parse(1)?;
    let server = nsd::Nsd::start("bench");
    println!(
        "dns: NSD on loopback, caches off, {IN_FLIGHT} lookups in flight; median of {} runs",
        args.runs
    );
    println!(
        "{:<16} {:<18} {:>10} {:>8} {:>9} {:>9} {:>8} {:>11} {:>8} {:>7}",
        "load",
        "resolver",
        "lookups/s",
        "x hick",
        "p50 us",
        "p99 us",
        "x hick",
        "cpu ns/op",
        "x hick",
        "errors"
    );
    for (label, n, srv) in [
        ("A x 10,000", 10_000, false),
        ("SRV+addr x 1,000", 1_000, true),
    ] {
        type Run = fn(SocketAddr, usize, bool) -> Result<(Row, usize)>;
        let mut sides: Vec<(&str, Run)> = vec![("hickory-resolver", hickory_run)];
        if srv {
            // With A alone there is no additional section to use: the same as the row above.
            sides.push(("hickory + glue", hickory_glue_run));
        }
        sides.push(("evnet dns", evnet_run));
        let only = std::env::var("DNS_SIDE").ok();
        let mut rows: Vec<Vec<(Row, usize)>> = vec![Vec::new(); sides.len()];
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
                rows[i].push(sides[i].1(server.addr, n, srv)?);
            }
        }
        if rows.iter().any(Vec::is_empty) {
            // DNS_SIDE (for strace or perf): one side only, no table.
            continue;
        }
        let med = |rs: &[(Row, usize)], f: fn(&Row) -> f64| {
            let mut v: Vec<f64> = rs.iter().map(|r| f(&r.0)).collect();
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
            let errors: usize = rows[i].iter().map(|r| r.1).sum();
            println!(
                "{label:<16} {name:<18} {o:>10.0} {:>8.2} {p50:>9.0} {p99:>9.0} {:>8.2} {c:>11.0} {:>8.2} {errors:>7}",
                o / base.0,
                p99 / base.1,
                c / base.2
            );
        }
    }
    Ok(())
}

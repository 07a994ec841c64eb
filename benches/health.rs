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

#[path = "util/lookups.rs"]
mod lookups;
#[allow(dead_code)]
#[path = "../tests/util/nsd.rs"]
mod nsd;
#[allow(dead_code)]
#[path = "../tests/util/provision.rs"]
mod provision;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use evnet::dns::{Resolver, ResolverOptions};
use evnet::ev::Loop;
use lookups::{Batch, Row, IN_FLIGHT};

const WARM: usize = 200;
const LOOKUPS: usize = 10_000;
const TIMEOUT: Duration = Duration::from_secs(1);

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

/// `WARM` lookups, then `LOOKUPS` measured, with what `dead` got meanwhile.
fn measured(dead: Option<&Dead>, mut batch: impl FnMut(usize) -> Result<Batch>) -> Result<Row> {
    batch(WARM)?;
    let got = || dead.map_or(0, |d| d.got.load(Ordering::Relaxed));
    let before = got();
    let b = batch(LOOKUPS)?;
    Ok(b.row((got() - before) as u64))
}

fn evnet_run(servers: &[SocketAddr], dead: Option<&Dead>) -> Result<Row> {
    let mut ev = Loop::new()?;
    let options = ResolverOptions {
        timeout: TIMEOUT,
        ..ResolverOptions::with_servers(servers)
    };
    let dns = Resolver::new(&ev, options);
    measured(dead, |n| lookups::evnet_batch(&mut ev, &dns, n))
}

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
    lookups::hickory_no_cache(builder.options_mut(), TIMEOUT);
    let resolver = builder.build()?;
    measured(dead, |n| Ok(lookups::hickory_batch(&rt, &resolver, n)))
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
                med(rows, |r| r.counted as f64),
                rows.iter().map(|r| r.errors).sum::<usize>(),
            );
        }
    }
    Ok(())
}

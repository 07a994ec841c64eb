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

#[path = "util/lookups.rs"]
mod lookups;
#[allow(dead_code)]
#[path = "../tests/util/nsd.rs"]
mod nsd;
#[allow(dead_code)]
#[path = "../tests/util/provision.rs"]
mod provision;
#[allow(dead_code)]
#[path = "../tests/util/unbound.rs"]
mod unbound;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use evnet::dns::{Resolver, ResolverOptions, TlsServer};
use evnet::ev::Loop;
use lookups::{Row, IN_FLIGHT};
use unbound::Unbound;

const LOOKUPS: usize = 10_000;

fn evnet_run(options: ResolverOptions) -> Result<Row> {
    let mut ev = Loop::new()?;
    let dns = Resolver::new(&ev, options);
    let b = lookups::evnet_batch(&mut ev, &dns, LOOKUPS)?;
    let conns = dns.servers().iter().map(|s| s.connections).sum();
    Ok(b.row(conns))
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
    lookups::hickory_no_cache(builder.options_mut(), Duration::from_secs(5));
    let resolver = builder.build()?;
    // hickory does not report its connections.
    Ok(lookups::hickory_batch(&rt, &resolver, LOOKUPS).row(0))
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
        let conns = med(&rows[i], |r| r.counted as f64);
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

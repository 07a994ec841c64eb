//! The A-lookup loops the DNS-over-TLS and server-health benches share: evnet's resolver
//! on its loop and hickory-resolver on a tokio current-thread runtime, each keeping
//! `IN_FLIGHT` lookups of names of their own (`<prefix>q<i>.wild.example.test.`, wildcard
//! records, so nothing is answered from a cache) going until `n` are done, on the bench's
//! thread, whose CPU time is measured.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use evnet::dns::{RecordType, Resolver};
use evnet::ev::{Ctx, Loop};

pub const IN_FLIGHT: usize = 100;

/// What one batch of lookups measured.
pub struct Batch {
    /// Each lookup's latency, µs.
    pub lat: Vec<f64>,
    pub errors: usize,
    pub wall: Duration,
    /// The bench thread's CPU time over the batch, ns.
    pub cpu_ns: u64,
}

/// One side's result: lookups/s, latency, CPU per lookup, errors, and a count of the
/// bench's own (TLS connections made, queries a dead server got).
#[derive(Clone)]
pub struct Row {
    pub per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_ns: f64,
    pub errors: usize,
    pub counted: u64,
}

impl Batch {
    /// The row of this batch, with the bench's own `counted`.
    pub fn row(mut self, counted: u64) -> Row {
        let n = self.lat.len();
        Row {
            per_s: n as f64 / self.wall.as_secs_f64(),
            p50_us: crate::util::percentile(&mut self.lat, 0.50),
            p99_us: crate::util::percentile(&mut self.lat, 0.99),
            cpu_ns: self.cpu_ns as f64 / n as f64,
            errors: self.errors,
            counted,
        }
    }
}

/// A name prefix never used before in this process: a server has not seen the names.
pub fn prefix() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("r{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The state of an evnet batch, on its loop.
pub struct Bench {
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
    // Handles of finished lookups are dropped in batches (dropping one is a no-op then).
    let mut k = keep.borrow_mut();
    if k.len() > 4 * IN_FLIGHT {
        k.drain(..2 * IN_FLIGHT);
    }
    k.push(l);
}

/// `n` A lookups through `dns` on `ev`.
pub fn evnet_batch(ev: &mut Loop<Bench>, dns: &Resolver<Bench>, n: usize) -> Result<Batch> {
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
    let cpu0 = crate::util::thread_cpu_ns();
    let t0 = Instant::now();
    ev.run(&mut st)?;
    Ok(Batch {
        lat: st.lat,
        errors: st.errors,
        wall: t0.elapsed(),
        cpu_ns: crate::util::thread_cpu_ns() - cpu0,
    })
}

/// hickory's options for the benches: no cache (capacity 0 alone still serves entries
/// until moka evicts them, so every TTL is clamped to zero too), and `timeout`.
pub fn hickory_no_cache(opts: &mut hickory_resolver::config::ResolverOpts, timeout: Duration) {
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.timeout = timeout;
}

/// `n` A lookups through hickory's `resolver` on `rt`, `IN_FLIGHT` tasks.
pub fn hickory_batch(
    rt: &tokio::runtime::Runtime,
    resolver: &hickory_resolver::TokioResolver,
    n: usize,
) -> Batch {
    let pre = prefix();
    let per_task = n / IN_FLIGHT;
    let cpu0 = crate::util::thread_cpu_ns();
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
    let cpu_ns = crate::util::thread_cpu_ns() - cpu0;
    Batch {
        errors: results.iter().map(|r| r.1).sum(),
        lat: results.into_iter().flat_map(|r| r.0).collect(),
        wall,
        cpu_ns,
    }
}

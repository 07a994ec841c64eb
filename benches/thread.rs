//! `thread` pool: job → result round-trip latency (one job in flight) and jobs/s for a
//! burst of empty jobs, against a plain `std::thread` + `std::sync::mpsc` pool with a
//! blocking receive, in one run, at 1 worker and at one worker per CPU.
//!
//! Then the loop's side: how late a 1 ms timer fires while the same burst of results is
//! delivered and a ZeroMQ PUSH→PULL flood shares the loop (p50/p99/max lateness), at the
//! default worker count and at one worker per CPU.
//!
//! ```text
//! cargo bench --bench thread -- [--messages JOBS] [--runs R] [--only std|evnet] [--json PATH]
//! ```

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use evnet::ev::{Ctx, Loop};
use evnet::fair::{Sock, ZmqHandler, ZmqWatcher};
use evnet::pool::{Error, Pool, PoolBuilder};

type Job = Box<dyn FnOnce() -> u64 + Send>;

/// The baseline: the textbook pool, workers sharing one `Mutex<Receiver>` of jobs and
/// sending results on one `mpsc` channel that the caller blocks on.
struct StdPool {
    jobs: Option<mpsc::Sender<Job>>,
    results: mpsc::Receiver<u64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl StdPool {
    fn new(workers: usize) -> StdPool {
        let (jtx, jrx) = mpsc::channel::<Job>();
        let (rtx, rrx) = mpsc::channel();
        let jrx = Arc::new(Mutex::new(jrx));
        let threads = (0..workers)
            .map(|_| {
                let (jrx, rtx) = (jrx.clone(), rtx.clone());
                std::thread::spawn(move || loop {
                    let job = match jrx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    if rtx.send(job()).is_err() {
                        return;
                    }
                })
            })
            .collect();
        StdPool {
            jobs: Some(jtx),
            results: rrx,
            threads,
        }
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.jobs
            .as_ref()
            .context("pool closed")?
            .send(job)
            .ok()
            .context("workers gone")
    }
}

impl Drop for StdPool {
    fn drop(&mut self) {
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Sample {
    jobs_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

fn std_run(workers: usize, burst: u64, trips: u64) -> Result<Sample> {
    let pool = StdPool::new(workers);
    // Round trips, one in flight.
    let mut lat = Vec::with_capacity(trips as usize);
    for i in 0..trips {
        let t = Instant::now();
        pool.submit(Box::new(move || i))?;
        let got = pool.results.recv()?;
        lat.push(t.elapsed().as_nanos() as f64 / 1e3);
        anyhow::ensure!(got == i, "wrong result");
    }
    // Burst.
    let t = Instant::now();
    for i in 0..burst {
        pool.submit(Box::new(move || i))?;
    }
    let mut sum = 0u64;
    for _ in 0..burst {
        sum = sum.wrapping_add(pool.results.recv()?);
    }
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(sum == burst * (burst - 1) / 2, "lost results");
    Ok(Sample {
        jobs_per_s: burst as f64 / secs,
        p50_us: util::percentile(&mut lat, 0.50),
        p99_us: util::percentile(&mut lat, 0.99),
    })
}

struct St {
    pool: Option<Pool<St>>,
    left: u64,
    lat: Vec<f64>,
    sum: u64,
    got: u64,
}

fn trip(st: &mut St, cx: &mut Ctx<St>) {
    let t = Instant::now();
    let i = st.left;
    let Some(pool) = &st.pool else { return };
    let r = pool.run(
        cx,
        move || i,
        move |st: &mut St, cx: &mut Ctx<St>, r: Result<u64, Error>| {
            st.lat.push(t.elapsed().as_nanos() as f64 / 1e3);
            st.sum = st.sum.wrapping_add(r.unwrap_or(u64::MAX));
            st.left -= 1;
            if st.left > 0 {
                trip(st, cx);
            }
        },
    );
    if let Ok(h) = r {
        h.detach();
    }
}

fn evnet_run(workers: usize, burst: u64, trips: u64) -> Result<Sample> {
    let mut ev = Loop::<St>::new()?;
    let pool = PoolBuilder::new().workers(workers).build(&mut ev)?;
    let mut st = St {
        pool: Some(pool),
        left: trips,
        lat: Vec::with_capacity(trips as usize),
        sum: 0,
        got: 0,
    };
    trip(&mut st, &mut ev);
    ev.run(&mut st)?;
    anyhow::ensure!(
        st.left == 0 && st.sum == trips * (trips + 1) / 2,
        "lost round trips"
    );

    let t = Instant::now();
    let pool = st.pool.take().context("pool")?;
    for i in 0..burst {
        pool.run(
            &mut ev,
            move || i,
            |st: &mut St, _: &mut Ctx<St>, r: Result<u64, Error>| {
                st.got += 1;
                st.sum = st.sum.wrapping_add(r.unwrap_or(u64::MAX));
            },
        )?
        .detach();
    }
    st.sum = 0;
    st.pool = Some(pool);
    ev.run(&mut st)?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        st.got == burst && st.sum == burst * (burst - 1) / 2,
        "lost results"
    );
    Ok(Sample {
        jobs_per_s: burst as f64 / secs,
        p50_us: util::percentile(&mut st.lat, 0.50),
        p99_us: util::percentile(&mut st.lat, 0.99),
    })
}

/// Bursts per interference run: one burst gives too few 1 ms ticks for a p99.
const ROUNDS: u64 = 40;

/// Loop state for the interference run.
struct Busy {
    pool: Option<Pool<Busy>>,
    got: u64,
    want: u64,
    zmq: u64,
    late_us: Vec<f64>,
    due: Instant,
    measuring: bool,
    /// The loop thread's CPU time when the last check phase ran, and the most CPU one
    /// turn's work took (check → next prepare: the pending callbacks, where results are
    /// delivered), from `CLOCK_THREAD_CPUTIME_ID`.
    cpu_at_check: Option<u64>,
    max_turn_cpu_ns: u64,
}

struct Drain;
impl ZmqHandler<Ctx<Busy>> for Drain {
    fn readable(
        &mut self,
        _: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut Busy, &mut Ctx<Busy>),
    ) {
        st.zmq += 1;
    }
}

struct Interference {
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    results_per_s: f64,
    preempt_per_s: f64,
    zmq_msgs: u64,
    /// The loop's longest turn while results were delivered, its slowest callback, and
    /// how many turns took 1 ms or more (`Loop::stats`).
    longest_turn_us: f64,
    slowest: String,
    turns_over_1ms: u64,
    /// The most loop-thread CPU one turn took (not time spent waiting for a CPU).
    max_turn_cpu_us: f64,
}

/// Times the calling thread was taken off the CPU while runnable (preempted), from
/// `/proc/thread-self/status`.
fn preemptions() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `rounds` bursts of `burst` empty jobs, each queued at once and its results delivered
/// while a 1 ms timer and a ZeroMQ flood (a sender thread, PUSH→PULL over inproc) share
/// the loop; the timer's lateness is recorded only while results are being delivered.
fn interference(workers: Option<usize>, burst: u64, rounds: u64) -> Result<Interference> {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL)?;
    pull.bind("inproc://interference")?;
    let push = ctx.socket(zmq::PUSH)?;
    push.connect("inproc://interference")?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let flood = std::thread::spawn(move || {
        let payload = [7u8; 64];
        while !s2.load(Ordering::Relaxed) {
            if push.send(&payload[..], zmq::DONTWAIT).is_err() {
                std::thread::yield_now();
            }
        }
    });
    let mut ev = Loop::<Busy>::new()?;
    let mut b = PoolBuilder::new();
    if let Some(w) = workers {
        b = b.workers(w);
    }
    let pool = b.build(&mut ev)?;
    let _w = ZmqWatcher::new(&mut ev, pull, Drain).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut st = Busy {
        pool: None,
        got: 0,
        want: burst,
        zmq: 0,
        late_us: Vec::with_capacity(4096),
        due: Instant::now(),
        measuring: false,
        cpu_at_check: None,
        max_turn_cpu_ns: 0,
    };
    // Loop-thread CPU per turn: read at every check and the next prepare.
    ev.check(|st: &mut Busy, _, _| {
        if st.measuring {
            st.cpu_at_check = Some(util::thread_cpu_now_ns());
        }
    });
    ev.prepare(|st: &mut Busy, _, _| {
        if let Some(c0) = st.cpu_at_check.take() {
            let used = util::thread_cpu_now_ns().saturating_sub(c0);
            st.max_turn_cpu_ns = st.max_turn_cpu_ns.max(used);
        }
    });
    // Let the flood reach full speed before the first burst.
    ev.run_until(&mut st, Duration::from_millis(50), |_| false)?;
    st.pool = Some(pool);
    ev.timer(Duration::from_millis(1), None, |st: &mut Busy, cx, e| {
        let now = Instant::now();
        if st.measuring {
            st.late_us
                .push(now.saturating_duration_since(st.due).as_nanos() as f64 / 1e3);
        }
        st.due = now + Duration::from_millis(1);
        cx.set_timer(e.watcher(), Duration::from_millis(1), None);
    });
    let mut busy = Duration::ZERO;
    let mut preempted = 0u64;
    let (mut longest, mut slowest, mut over_1ms) = (Duration::ZERO, String::new(), 0);
    for round in 0..rounds {
        // Submitting is the application's own loop work: not measured.
        st.measuring = false;
        let pool = st.pool.take().context("pool")?;
        for _ in 0..burst {
            pool.run(
                &mut ev,
                || (),
                |st: &mut Busy, _: &mut Ctx<Busy>, _r: Result<(), Error>| st.got += 1,
            )?
            .detach();
        }
        st.pool = Some(pool);
        st.got = 0;
        st.want = burst;
        st.measuring = true;
        st.cpu_at_check = None; // the submission above is the application's, not a turn's
        let t0 = Instant::now();
        let cs0 = preemptions();
        st.due = t0 + Duration::from_millis(1);
        ev.reset_turn_stats();
        if burst == 0 {
            // The reference: the same timer and flood, no results, for a burst's time.
            ev.run_until(&mut st, Duration::from_millis(40), |_| false)?;
        }
        ev.run_until(&mut st, Duration::from_secs(120), |s| s.got == s.want)?;
        busy += t0.elapsed();
        preempted += preemptions() - cs0;
        anyhow::ensure!(st.got == burst, "lost results");
        let s = ev.stats();
        if s.longest_turn > longest {
            longest = s.longest_turn;
            slowest = format!("{:?}", s.slowest_callback);
        }
        over_1ms += s.turns_at_least(Duration::from_millis(1));
        if std::env::var_os("EVNET_ROUNDS").is_some()
            && s.turns_at_least(Duration::from_millis(1)) > 0
        {
            println!(
                "    round {round}: {} turns >= 1 ms, longest {:?} in {:?}",
                s.turns_at_least(Duration::from_millis(1)),
                s.longest_turn,
                s.slowest_callback
            );
        }
    }
    let secs = busy.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    flood.join().ok().context("flood thread")?;
    let mut late = std::mem::take(&mut st.late_us);
    let max = late.iter().copied().fold(0.0, f64::max);
    Ok(Interference {
        p50_us: util::percentile(&mut late, 0.50),
        p99_us: util::percentile(&mut late, 0.99),
        max_us: max,
        results_per_s: (burst * rounds) as f64 / secs.max(1e-9),
        preempt_per_s: preempted as f64 / secs.max(1e-9),
        zmq_msgs: st.zmq,
        longest_turn_us: longest.as_nanos() as f64 / 1e3,
        slowest,
        turns_over_1ms: over_1ms,
        max_turn_cpu_us: st.max_turn_cpu_ns as f64 / 1e3,
    })
}

fn main() -> Result<()> {
    let args = util::Args::parse(200_000)?;
    let burst = args.messages;
    let trips = (burst / 10).max(1000);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut worker_counts = vec![1];
    if cpus > 1 {
        worker_counts.push(cpus);
    }
    println!("thread pool: {burst} empty jobs in one burst, {trips} round trips one at a time; median of {} runs", args.runs);
    println!(
        "{:<8} {:<26} {:>12} {:>7} {:>9} {:>9} {:>7}",
        "workers", "pool", "jobs/s", "x std", "p50 us", "p99 us", "x std"
    );
    let mut rows = Vec::new();
    for &w in &worker_counts {
        let mut base = None;
        type RunFn = fn(usize, u64, u64) -> Result<Sample>;
        let kinds: [(&str, &str, RunFn); 2] = [
            ("std", "std::thread + mpsc (recv)", std_run),
            ("evnet", "evnet pool::Pool", evnet_run),
        ];
        for (key, label, f) in kinds {
            if args.only.as_deref().is_some_and(|o| o != key) {
                continue;
            }
            let mut s = Vec::new();
            for _ in 0..args.runs {
                s.push(f(w, burst, trips)?);
            }
            let mut jps: Vec<f64> = s.iter().map(|x| x.jobs_per_s).collect();
            let mut p50: Vec<f64> = s.iter().map(|x| x.p50_us).collect();
            let mut p99: Vec<f64> = s.iter().map(|x| x.p99_us).collect();
            let (jps, p50, p99) = (
                util::median(&mut jps),
                util::median(&mut p50),
                util::median(&mut p99),
            );
            let (bj, bp) = *base.get_or_insert((jps, p99));
            println!(
                "{:<8} {:<26} {:>12.0} {:>7.2} {:>9.1} {:>9.1} {:>7.2}",
                w,
                label,
                jps,
                jps / bj,
                p50,
                p99,
                p99 / bp
            );
            rows.push(format!(
                "  {{\"workers\": {w}, \"pool\": \"{key}\", \"jobs_per_s\": {jps:.0}, \"p50_us\": {p50:.2}, \"p99_us\": {p99:.2}}}"
            ));
        }
    }
    println!();
    println!(
        "1 ms timer lateness while bursts of {burst} results are delivered ({ROUNDS} per run) and a zmq PUSH->PULL flood shares the loop; median of {} runs",
        args.runs
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>12} {:>12} {:>10} {:>12} {:>9} {:>12}",
        "workers",
        "p50 us",
        "p99 us",
        "max us",
        "results/s",
        "zmq msgs",
        "preempt/s",
        "longest turn",
        "turns>1ms",
        "max turn CPU"
    );
    let default_workers = {
        let mut ev = Loop::<()>::new()?;
        PoolBuilder::new().build(&mut ev)?.workers()
    };
    let mut configs = vec![
        ("no results (reference)".to_owned(), None, 0),
        (format!("{default_workers} (default)"), None, burst),
    ];
    if cpus != default_workers {
        configs.push((format!("{cpus} (one per CPU)"), Some(cpus), burst));
    }
    for (label, w, n) in configs {
        let mut s = Vec::new();
        for _ in 0..args.runs {
            s.push(interference(w, n, ROUNDS)?);
        }
        let med = |f: fn(&Interference) -> f64| {
            let mut v: Vec<f64> = s.iter().map(f).collect();
            util::median(&mut v)
        };
        let (p50, p99, max, rps, zm, pre, lt, over, tcpu) = (
            med(|x| x.p50_us),
            med(|x| x.p99_us),
            med(|x| x.max_us),
            med(|x| x.results_per_s),
            med(|x| x.zmq_msgs as f64),
            med(|x| x.preempt_per_s),
            med(|x| x.longest_turn_us),
            med(|x| x.turns_over_1ms as f64),
            med(|x| x.max_turn_cpu_us),
        );
        println!("{label:<24} {p50:>9.1} {p99:>9.1} {max:>9.1} {rps:>12.0} {zm:>12.0} {pre:>10.0} {lt:>12.0} {over:>9.0} {tcpu:>12.0}");
        if std::env::var_os("EVNET_SLOWEST").is_some() {
            for x in &s {
                println!(
                    "    longest turn {:.0} us, slowest callback {}",
                    x.longest_turn_us, x.slowest
                );
            }
        }
        rows.push(format!(
            "  {{\"interference\": \"{label}\", \"p50_us\": {p50:.1}, \"p99_us\": {p99:.1}, \"max_us\": {max:.1}, \"results_per_s\": {rps:.0}}}"
        ));
    }
    if let Some(path) = &args.json {
        util::write_json(path, &rows)?;
    }
    Ok(())
}

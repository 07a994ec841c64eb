//! `thread` pool: job → result round-trip latency (one job in flight) and jobs/s for a
//! burst of empty jobs, against a plain `std::thread` + `std::sync::mpsc` pool with a
//! blocking receive, in one run, at 1 worker and at one worker per CPU.
//!
//! ```text
//! cargo bench --bench thread -- [--messages JOBS] [--runs R] [--only std|evnet] [--json PATH]
//! ```

mod util;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use evnet::ev::{Ctx, Loop};
use evnet::thread::{Builder, Error, Pool};

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
    let pool = Builder::new().workers(workers).build(&mut ev)?;
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
            ("evnet", "evnet thread::Pool", evnet_run),
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
    if let Some(path) = &args.json {
        util::write_json(path, &rows)?;
    }
    Ok(())
}

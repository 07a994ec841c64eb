//! The fair adapter inside other people's loops, against what those loops' users run today,
//! in one run:
//!
//! - **flood**: N × 64 B PUSH→PULL with a 1 ms timer on the receiver's loop: msgs/s and
//!   receiver CPU per message as ratios to a raw blocking `recv`, and the timer's lateness
//!   (p50/p99/max) and ticks fired of expected, beside that loop's idle baseline. Receivers:
//!   evnet's own loop; mio (`MioZmq`, and a naive source that drains to `EAGAIN`); calloop
//!   (`CalloopZmq`, the book's source, the book's source capped at 64 per dispatch);
//!   tokio (`TokioZmq::dispatch`, `TokioZmq` as a `Stream`, and tmq 0.5).
//! - **round trip**: DEALER→ROUTER→DEALER ping-pong, p50/p99, over inproc, ipc and tcp, the ROUTER
//!   a raw blocking echo thread and the DEALER on each loop.
//! - **server**: the same ping-pong with the ROUTER on each loop (evnet's drivers, the
//!   calloop book source, tmq) and a raw blocking DEALER client: round trips/s and the
//!   server thread's CPU per round trip (`--serve-only` runs just this table).
//!
//! ```text
//! cargo bench --bench embed --features front-ends -- [--messages N] [--runs R]
//!     [--only inproc|ipc|tcp] [--rtt-only] [--serve-only] [--no-rtt] [--pinned]
//! ```
//! With `EMBED_SERVER=<part of a label>` the server table runs only the matching servers
//! (for `strace -c -f` or `perf` of one server at a time).
//! `--pinned` runs everything again under `taskset -c 0` (every thread on one CPU), which
//! exposes each loop's own cost in the round trip.

#[path = "embed/hosts.rs"]
mod hosts;
#[path = "embed/peers.rs"]
mod peers;
#[path = "../examples/pubsub_fairness/scenario.rs"]
mod scenario;
#[path = "embed/serve.rs"]
mod serve;
mod util;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hosts::{Rx, Stop};
use scenario::Transport;

const SIZE: usize = 64;

/// One flood run's numbers.
#[derive(Debug, Clone, Default)]
struct Flood {
    /// Each tick's lateness (ns), for the plot.
    lat: Vec<u64>,
    msgs_s: f64,
    cpu_ns: f64,
    p50: f64,
    p99: f64,
    max: f64,
    fired: u64,
    expected: u64,
}

fn pcts(lat: &[u64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = lat.iter().map(|&ns| ns as f64 / 1000.0).collect();
    let p50 = util::percentile(&mut v, 0.5);
    let p99 = util::percentile(&mut v, 0.99);
    let max = v.last().copied().unwrap_or(0.0);
    (p50, p99, max)
}

/// N messages from a sender thread to `rx`'s loop; the timer runs throughout.
fn flood(t: Transport, rx: Rx, n: u64) -> Result<Flood> {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH)?;
    let ep = scenario::bind(&push, t, "embed")?;
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let sender = thread::spawn(move || {
        if go_rx.recv().is_err() {
            return;
        }
        let payload = [0x5au8; SIZE];
        for _ in 0..n {
            if push.send(&payload[..], 0).is_err() {
                return;
            }
        }
        let _ = done_rx.recv();
    });
    let stop = Stop {
        messages: n,
        min: Duration::ZERO,
    };
    let t0 = Instant::now();
    let cpu0 = util::thread_cpu_ns();
    let out = hosts::receive(&ctx, &ep, rx, stop, &|| {
        let _ = go_tx.send(());
    })?;
    let (wall, cpu) = (t0.elapsed(), util::thread_cpu_ns() - cpu0);
    if out.got < n {
        // The sender may be stuck on the high-water mark: leave it.
        bail!("{}: {} of {n} messages", rx.label(), out.got);
    }
    let _ = done_tx.send(());
    sender.join().ok();
    let (p50, p99, max) = pcts(&out.lat);
    Ok(Flood {
        fired: out.lat.len() as u64,
        lat: out.lat,
        msgs_s: n as f64 / wall.as_secs_f64(),
        cpu_ns: cpu as f64 / n as f64,
        p50,
        p99,
        max,
        expected: (wall.as_nanos() / hosts::PERIOD.as_nanos()) as u64,
    })
}

/// The loop's timer alone for 300 ms, its socket registered and quiet: lateness p50, p99,
/// max (µs) and ticks per ms (tokio's timer, at 1 ms granularity, ticks every ~2 ms).
fn idle(t: Transport, rx: Rx) -> Result<((f64, f64, f64), f64)> {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH)?;
    let ep = scenario::bind(&push, t, "idle")?;
    let stop = Stop {
        messages: 0,
        min: Duration::from_millis(300),
    };
    let t0 = Instant::now();
    let out = hosts::receive(&ctx, &ep, rx, stop, &|| {})?;
    let rate = out.lat.len() as f64 / (t0.elapsed().as_secs_f64() * 1000.0);
    Ok((pcts(&out.lat), rate))
}

fn med(v: &[Flood], f: impl Fn(&Flood) -> f64) -> f64 {
    let mut x: Vec<f64> = v.iter().map(f).collect();
    util::median(&mut x)
}

fn flood_table(args: &util::Args, t: Transport) -> Result<()> {
    // EVNET_RX=<label substring> measures only those receivers (and raw, the ratio's base).
    let only = std::env::var("EVNET_RX").ok();
    let chosen: Vec<Rx> = Rx::ALL
        .into_iter()
        .filter(|rx| *rx == Rx::Raw || only.as_deref().is_none_or(|o| rx.label().contains(o)))
        .collect();
    // Rounds interleave the receivers (raw, a, b, raw, a, b, ...) and each ratio to raw is
    // taken within its round, then the median: the machine's drift (±30 % between minutes
    // here) moves a round's raw run with the others.
    let mut runs: Vec<Vec<Flood>> = vec![Vec::new(); chosen.len()];
    for _ in 0..args.runs {
        for (i, rx) in chosen.iter().enumerate() {
            eprint!("\r{} {}           ", t.name(), rx.label());
            runs[i].push(flood(t, *rx, args.messages)?);
        }
    }
    let raw_at = chosen.iter().position(|rx| *rx == Rx::Raw).unwrap_or(0);
    let raw_runs = runs[raw_at].clone();
    let ratio = |v: &[Flood], f: &dyn Fn(&Flood) -> f64| {
        let mut x: Vec<f64> = v.iter().zip(&raw_runs).map(|(a, r)| f(a) / f(r)).collect();
        util::median(&mut x)
    };
    let mut rows: Vec<(Rx, Flood, f64, f64)> = Vec::new();
    for (rx, runs) in chosen.iter().zip(&runs) {
        // The plot shows the run whose timer p99 is the median one.
        let p99 = med(runs, |r| r.p99);
        let typical = runs
            .iter()
            .min_by(|a, b| (a.p99 - p99).abs().total_cmp(&(b.p99 - p99).abs()))
            .map(|r| r.lat.clone())
            .unwrap_or_default();
        let f = Flood {
            lat: typical,
            msgs_s: med(runs, |r| r.msgs_s),
            cpu_ns: med(runs, |r| r.cpu_ns),
            p50: med(runs, |r| r.p50),
            p99: med(runs, |r| r.p99),
            max: med(runs, |r| r.max),
            fired: med(runs, |r| r.fired as f64) as u64,
            expected: med(runs, |r| r.expected as f64) as u64,
        };
        let x_raw = ratio(runs, &|r| r.msgs_s);
        let cpu_raw = ratio(runs, &|r| r.cpu_ns);
        rows.push((*rx, f, x_raw, cpu_raw));
    }
    println!(
        "transport {}: {} × {SIZE} B, 1 ms timer on the receiving loop, median of {} interleaved rounds (ratios to raw within each round)",
        t.name(),
        args.messages,
        args.runs
    );
    println!(
        "| receiver | loop | msgs/s | × raw | CPU ns/msg | CPU × raw | timer p50 µs | p99 µs | max µs | ticks fired/expected | loop idle p50/p99 µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (rx, f, x_raw, cpu_raw) in &rows {
        let (idle_cell, rate) = match rx.host() {
            "raw" => ("–".to_string(), 1.0),
            _ => {
                let ((p50, p99, _), rate) = idle(t, *rx)?;
                (format!("{p50:.0}/{p99:.0}"), rate)
            }
        };
        // Expected ticks: as many as the idle loop fires in the flood's duration.
        let expected = (f.expected as f64 * rate).round() as u64;
        let timer = |x: f64| {
            if *rx == Rx::Raw {
                "–".to_string()
            } else {
                format!("{x:.0}")
            }
        };
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.0} | {:.2} | {} | {} | {} | {} | {} |",
            rx.label(),
            rx.host(),
            f.msgs_s,
            x_raw,
            f.cpu_ns,
            cpu_raw,
            timer(f.p50),
            timer(f.p99),
            timer(f.max),
            if *rx == Rx::Raw {
                "–".to_string()
            } else {
                format!("{}/{}", f.fired, expected)
            },
            idle_cell,
        );
    }
    println!();
    let series: Vec<(String, Vec<u64>)> = rows
        .iter()
        .filter(|(rx, ..)| *rx != Rx::Raw)
        .map(|(rx, f, ..)| (rx.label().to_string(), f.lat.clone()))
        .collect();
    util::plot::lateness_cdf(
        &format!("target/embed-{}.svg", t.name()),
        &format!(
            "{}: each loop's 1 ms timer lateness during the flood (CDF)",
            t.name()
        ),
        &series,
    )?;
    Ok(())
}

fn rtt_table(args: &util::Args, pinned: bool) -> Result<()> {
    let k = 20_000;
    println!(
        "round trip DEALER→ROUTER→DEALER, {k} × {SIZE} B, median of {} runs{}",
        args.runs,
        if pinned {
            ", every thread on CPU 0"
        } else {
            ""
        }
    );
    println!("| client | inproc p50 µs | p99 µs | p50 × raw | ipc p50 µs | p99 µs | p50 × raw | tcp p50 µs | p99 µs | p50 × raw |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut raw = [0.0f64; 3];
    for rx in Rx::RTT {
        let mut cells = Vec::new();
        for (i, t) in Transport::ALL.into_iter().enumerate() {
            let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
            for _ in 0..args.runs {
                let lat = hosts::round_trips(t, rx, k)?;
                let (p50, p99, _) = pcts(&lat);
                p50s.push(p50);
                p99s.push(p99);
            }
            let (p50, p99) = (util::median(&mut p50s), util::median(&mut p99s));
            if rx == Rx::Raw {
                raw[i] = p50;
            }
            cells.push(format!("{p50:.1} | {p99:.1} | {:.2}", p50 / raw[i]));
        }
        println!("| {} | {} |", rx.label(), cells.join(" | "));
    }
    println!();
    Ok(())
}

fn serve_table(args: &util::Args, pinned: bool) -> Result<()> {
    let k = 20_000;
    println!(
        "server on the loop: DEALER (raw, blocking) → ROUTER echo on each loop, {k} × {SIZE} B, \
         median of {} runs, the servers alternating{}",
        args.runs,
        if pinned {
            ", every thread on CPU 0"
        } else {
            ""
        }
    );
    println!("| server | inproc rt/s | CPU µs/rt | ipc rt/s | CPU µs/rt | tcp rt/s | CPU µs/rt |");
    println!("|---|---|---|---|---|---|---|");
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); serve::SERVERS.len()];
    let mut spread: Vec<Vec<String>> = vec![Vec::new(); serve::SERVERS.len()];
    let only = std::env::var("EMBED_SERVER").ok();
    let chosen = |rx: hosts::Rx| only.as_deref().is_none_or(|o| serve::label(rx).contains(o));
    for t in Transport::ALL {
        if args.only.as_deref().is_some_and(|o| o != t.name()) {
            continue;
        }
        let mut runs: Vec<Vec<serve::Served>> = vec![Vec::new(); serve::SERVERS.len()];
        for r in 0..args.runs {
            for i in 0..serve::SERVERS.len() {
                // Alternate the order run by run, so drift hits every server alike.
                let i = if r % 2 == 0 {
                    i
                } else {
                    serve::SERVERS.len() - 1 - i
                };
                if !chosen(serve::SERVERS[i]) {
                    continue;
                }
                runs[i].push(serve::serve_round_trips(t, serve::SERVERS[i], k)?);
            }
        }
        for (i, v) in runs.iter().enumerate() {
            let mut rate: Vec<f64> = v.iter().map(|s| s.rate).collect();
            let mut cpu: Vec<f64> = v.iter().map(|s| s.cpu_ns).collect();
            let lo = cpu.iter().copied().fold(f64::INFINITY, f64::min) / 1000.0;
            let hi = cpu.iter().copied().fold(0.0, f64::max) / 1000.0;
            spread[i].push(format!("{lo:.2}–{hi:.2}"));
            cells[i].push(format!(
                "{:.0} | {:.2}",
                util::median(&mut rate),
                util::median(&mut cpu) / 1000.0
            ));
        }
    }
    for (i, rx) in serve::SERVERS.into_iter().enumerate() {
        if !chosen(rx) {
            continue;
        }
        println!("| {} | {} |", serve::label(rx), cells[i].join(" | "));
    }
    // The run-to-run range of the CPU column: what a difference between two rows must
    // exceed before it means anything.
    println!("\nCPU µs/rt, lowest–highest of the {} runs", args.runs);
    println!("| server | inproc | ipc | tcp |");
    println!("|---|---|---|---|");
    for (i, rx) in serve::SERVERS.into_iter().enumerate() {
        if !chosen(rx) {
            continue;
        }
        println!("| {} | {} |", serve::label(rx), spread[i].join(" | "));
    }
    println!();
    Ok(())
}

fn main() -> Result<()> {
    let flags: Vec<String> = std::env::args().collect();
    let has = |f: &str| flags.iter().any(|a| a == f);
    if has("--pinned") && std::env::var_os("EVNET_PINNED").is_none() {
        // The same binary on CPU 0 only; then unpinned below.
        let exe = std::env::current_exe()?;
        let rest: Vec<&String> = flags.iter().skip(1).filter(|a| *a != "--pinned").collect();
        let st = std::process::Command::new("taskset")
            .arg("-c")
            .arg("0")
            .arg(exe)
            .args(rest)
            .env("EVNET_PINNED", "1")
            .status()?;
        if !st.success() {
            bail!("pinned run failed: {st}");
        }
    }
    let pinned = std::env::var_os("EVNET_PINNED").is_some();
    let filtered: Vec<String> = flags
        .iter()
        .skip(1)
        .filter(|a| {
            !matches!(
                a.as_str(),
                "--pinned" | "--rtt-only" | "--no-rtt" | "--serve-only"
            )
        })
        .cloned()
        .collect();
    let args = util::Args::parse_from(filtered, 300_000)?;
    if pinned {
        println!("== pinned: taskset -c 0\n");
    }
    if has("--serve-only") {
        return serve_table(&args, pinned);
    }
    if !has("--rtt-only") && !pinned {
        for t in Transport::ALL {
            if args.only.as_deref().is_some_and(|o| o != t.name()) {
                continue;
            }
            flood_table(&args, t)?;
        }
    }
    if !has("--no-rtt") {
        rtt_table(&args, pinned)?;
        serve_table(&args, pinned)?;
    }
    Ok(())
}

//! Helpers shared by the benchmark harnesses: arguments, medians, CPU time, JSON.
#![allow(dead_code)]

use anyhow::{bail, Context, Result};

pub mod plot;

/// CPU time this thread has run, in ns, exact at the moment of asking
/// (`CLOCK_THREAD_CPUTIME_ID`): for one loop turn's CPU, where [`thread_cpu_ns`]'s
/// schedstat is only brought up to date at scheduler ticks (every 1–4 ms) for a thread
/// that is running.
pub fn thread_cpu_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time this thread has run, in ns (`/proc/thread-self/schedstat`, first field):
/// nanosecond resolution, unlike `getrusage`'s ticks, and no `unsafe`.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The `p` quantile (0..=1) of `v`, nearest rank, as `Pcts::of` in the demo's scenario;
/// sorts `v`. 0 for no samples.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// `--name value` flags; cargo's own `--bench` is ignored.
pub struct Args {
    pub messages: u64,
    pub runs: usize,
    pub json: Option<String>,
    pub only: Option<String>,
    pub threads: Option<usize>,
}

impl Args {
    pub fn parse(default_messages: u64) -> Result<Args> {
        Args::parse_from(std::env::args().skip(1).collect(), default_messages)
    }

    /// As `parse`, from these arguments (the program name left out).
    pub fn parse_from(args: Vec<String>, default_messages: u64) -> Result<Args> {
        let mut a = Args {
            messages: default_messages,
            runs: 3,
            json: None,
            only: None,
            threads: None,
        };
        let mut it = args.into_iter();
        while let Some(k) = it.next() {
            let mut val = || it.next().with_context(|| format!("{k} needs a value"));
            match k.as_str() {
                "--bench" => {}
                "--messages" => a.messages = val()?.parse()?,
                "--runs" => a.runs = val()?.parse()?,
                "--json" => a.json = Some(val()?),
                "--only" => a.only = Some(val()?),
                "--threads" => a.threads = Some(val()?.parse()?),
                other if other.starts_with('-') => bail!("unknown flag {other}"),
                _ => {} // a cargo bench name filter
            }
        }
        if a.runs == 0 || a.messages == 0 || a.threads == Some(0) {
            bail!("--runs, --messages and --threads must be positive");
        }
        Ok(a)
    }
}

pub fn write_json(path: &str, rows: &[String]) -> Result<()> {
    std::fs::write(path, format!("[\n{}\n]\n", rows.join(",\n")))
        .with_context(|| format!("writing {path}"))?;
    println!("wrote {path}");
    Ok(())
}

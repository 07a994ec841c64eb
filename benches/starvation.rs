//! The demo's scenario as a benchmark: a flooded SUB socket, a quiet SUB socket and a 1 ms
//! timer on one loop, with the naive drain and with evnet at budgets 1, 8, 64 and the
//! default. Prints medians over runs and writes an SVG of the timer-lateness
//! distributions to `target/starvation.svg`.
//!
//! ```text
//! cargo bench --bench starvation -- [--messages N] [--runs R] [--only inproc] [--json PATH]
//! ```

#[path = "../examples/pubsub_fairness/scenario.rs"]
mod scenario;
mod util;

use anyhow::Result;
use evnet::fair::Budget;
use scenario::{Config, Mode, Pcts, Report, Transport};

fn med(rs: &[Report], f: impl Fn(&Report) -> f64) -> f64 {
    let mut v: Vec<f64> = rs.iter().map(f).collect();
    util::median(&mut v)
}

fn main() -> Result<()> {
    let args = util::Args::parse(1_000_000)?;
    let modes = Mode::SWEEP;
    println!(
        "starvation: {} x 64 B flood + quiet socket (10 ms) + 1 ms timer; median of {} runs\n",
        args.messages, args.runs
    );
    let mut json = Vec::new();
    for t in Transport::ALL {
        if args.only.as_deref().is_some_and(|o| o != t.name()) {
            continue;
        }
        let cfg = Config {
            messages: args.messages,
            transport: t,
            ..Config::default()
        };
        let mut base = Vec::new();
        let mut runs: Vec<Vec<Report>> = vec![Vec::new(); modes.len()];
        for _ in 0..args.runs {
            base.push(scenario::run(&cfg, Mode::Fair(Budget::DEFAULT), false)?);
            for (i, &m) in modes.iter().enumerate() {
                runs[i].push(scenario::run(&cfg, m, true)?);
            }
        }
        let mut rows = Vec::new();
        let summarize = |rs: &[Report]| Report {
            mode: rs[0].mode.clone(),
            key: rs[0].key.clone(),
            messages: rs[0].messages,
            msgs_per_s: med(rs, |r| r.msgs_per_s),
            timer: Pcts {
                p50: med(rs, |r| r.timer.p50),
                p99: med(rs, |r| r.timer.p99),
                max: med(rs, |r| r.timer.max),
                n: med(rs, |r| r.timer.n as f64) as usize,
            },
            quiet: Pcts {
                p50: med(rs, |r| r.quiet.p50),
                p99: med(rs, |r| r.quiet.p99),
                max: med(rs, |r| r.quiet.max),
                n: med(rs, |r| r.quiet.n as f64) as usize,
            },
            timer_samples: rs
                .iter()
                .flat_map(|r| r.timer_samples.iter().copied())
                .collect(),
        };
        rows.push(summarize(&base));
        for r in &runs {
            rows.push(summarize(r));
        }
        println!("transport: {}", t.name());
        scenario::print_table(&rows);
        println!(
            "{:<24} {}",
            "ticks in flood window",
            rows.iter()
                .map(|r| format!("{}={}", r.key, r.timer.n))
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!();
        for r in &rows {
            json.push(
                r.json()
                    .replacen('{', &format!("{{\"transport\":\"{}\",", t.name()), 1),
            );
        }
        let series: Vec<(String, Vec<u64>)> = rows
            .iter()
            .map(|r| (r.mode.clone(), r.timer_samples.clone()))
            .collect();
        std::fs::create_dir_all("target")?;
        util::plot::lateness_cdf(
            &format!("target/starvation-{}.svg", t.name()),
            "1 ms timer lateness during the flood (CDF)",
            &series,
        )?;
    }
    if let Some(p) = &args.json {
        util::write_json(p, &json)?;
    }
    Ok(())
}

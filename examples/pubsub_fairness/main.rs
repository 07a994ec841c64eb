//! The main demo: one loop, a flooded SUB socket, a quiet SUB socket and a 1 ms timer, run
//! once with the naive "drain on every wake-up" handler and once with evnet's fair adapter.
//!
//! ```text
//! cargo run --release --example pubsub_fairness -- [--messages N] [--size BYTES]
//!     [--transport inproc|ipc|tcp] [--json PATH]
//! ```

mod scenario;

use anyhow::{bail, Context, Result};
use evnet::zmq::Budget;
use scenario::{Config, Mode, Transport};

fn main() -> Result<()> {
    let mut cfg = Config::default();
    let mut json: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--messages" => cfg.messages = val()?.parse().context("--messages")?,
            "--size" => cfg.size = val()?.parse().context("--size")?,
            "--transport" => cfg.transport = Transport::parse(&val()?)?,
            "--json" => json = Some(val()?),
            "-h" | "--help" => {
                println!("usage: pubsub_fairness [--messages N] [--size BYTES] [--transport inproc|ipc|tcp] [--json PATH]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if cfg.messages == 0 || cfg.size == 0 {
        bail!("--messages and --size must be positive");
    }
    println!(
        "pubsub_fairness: {} messages of {} B over {}, a quiet socket every 10 ms, a 1 ms timer\n",
        cfg.messages,
        cfg.size,
        cfg.transport.name()
    );
    let rows = vec![
        scenario::run(&cfg, Mode::Naive, false)?,
        scenario::run(&cfg, Mode::Naive, true)?,
        scenario::run(&cfg, Mode::Fair(Budget::DEFAULT), true)?,
    ];
    scenario::print_table(&rows);
    let (naive, fair) = (&rows[1], &rows[2]);
    println!(
        "\nfair vs naive: {:.2}x throughput, timer p99 {:.0} µs vs {:.0} µs, quiet p99 {:.0} µs vs {:.0} µs",
        fair.msgs_per_s / naive.msgs_per_s,
        fair.timer.p99,
        naive.timer.p99,
        fair.quiet.p99,
        naive.quiet.p99
    );
    if let Some(path) = json {
        let body: Vec<String> = rows.iter().map(|r| r.json()).collect();
        std::fs::write(&path, format!("[\n{}\n]\n", body.join(",\n")))
            .with_context(|| format!("writing {path}"))?;
        println!("wrote {path}");
    }
    Ok(())
}

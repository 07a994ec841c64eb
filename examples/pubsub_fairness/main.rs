//! The main demo: one loop, a flooded SUB socket, a quiet SUB socket and a 1 ms timer, run
//! once with the naive "drain on every wake-up" handler and once with evnet's fair adapter.
//!
//! ```text
//! cargo run --release --example pubsub_fairness -- [--messages N] [--size BYTES]
//!     [--transport inproc|ipc|tcp] [--json PATH]
//! ```

#[macro_use]
#[path = "../util/out.rs"]
mod out;

mod scenario;

use anyhow::{bail, Context, Result};
use clap::Parser;
use evnet::fair::Budget;
use scenario::{Config, Mode, Transport};

#[derive(Parser)]
#[command(
    about = "Naive drain vs evnet's fair adapter: a flooded SUB, a quiet SUB and a 1 ms timer on one loop"
)]
struct Args {
    /// Messages in the flood.
    #[arg(long, default_value_t = Config::default().messages)]
    messages: u64,
    /// Bytes per flood message.
    #[arg(long, default_value_t = Config::default().size)]
    size: usize,
    /// inproc, ipc or tcp.
    #[arg(long, default_value = "inproc")]
    transport: String,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    json: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = Config {
        messages: args.messages,
        size: args.size,
        transport: Transport::parse(&args.transport)?,
        ..Config::default()
    };
    let json = args.json;
    if cfg.messages == 0 || cfg.size == 0 {
        bail!("--messages and --size must be positive");
    }
    outln!(
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
    outln!(
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
        outln!("wrote {path}");
    }
    Ok(())
}

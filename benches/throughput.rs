//! 64 B PUSH→PULL throughput: the raw blocking-recv ceiling, the naive edge drain, and
//! evnet's fair adapter at several budgets, over inproc, ipc and tcp, in one run.
//!
//! ```text
//! cargo bench --bench throughput -- [--messages N] [--runs R] [--only inproc] [--json PATH]
//! ```

#[path = "../examples/pubsub_fairness/scenario.rs"]
mod scenario;
mod util;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use evnet::ev::{Ctx, Loop};
use evnet::fair::{Sock, ZmqHandler, ZmqWatcher};
use scenario::{Mode, Transport};

const SIZE: usize = 64;

/// The receiver: `None` is the raw blocking-recv ceiling, else a loop mode.
type Recv = Option<Mode>;

fn label(r: Recv) -> String {
    r.map_or("raw blocking recv".into(), Mode::label)
}

fn key(r: Recv) -> String {
    r.map_or("raw".into(), Mode::key)
}

struct Count {
    got: u64,
    bad: u64,
}

struct H;
impl ZmqHandler<Ctx<Count>> for H {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (c, _): (&mut Count, &mut Ctx<Count>),
    ) {
        c.got += 1;
        if m[0].len() != SIZE {
            c.bad += 1;
        }
    }
}

/// One run: (msgs/s, receiver CPU ns per message).
fn run(t: Transport, mode: Recv, n: u64) -> Result<(f64, f64)> {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL)?;
    let ep = scenario::bind(&pull, t, "thr")?;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let push = ctx.socket(zmq::PUSH)?;
    push.connect(&ep)?;
    let sender = thread::spawn(move || {
        let payload = [0x5au8; SIZE];
        for _ in 0..n {
            if push.send(&payload[..], 0).is_err() {
                return;
            }
        }
        // Keep the socket open until the receiver confirms the count.
        let _ = done_rx.recv();
    });

    let mut c = Count { got: 0, bad: 0 };
    let (t0, cpu0);
    match mode {
        None => {
            let mut msg = zmq::Message::new();
            pull.recv(&mut msg, 0)?;
            (t0, cpu0) = (Instant::now(), util::thread_cpu_ns());
            c.got = 1;
            while c.got < n {
                pull.recv(&mut msg, 0)?;
                c.got += 1;
                if msg.len() != SIZE {
                    c.bad += 1;
                }
            }
        }
        Some(mode) => {
            // Wait for the first message outside the measurement, as the raw loop does.
            pull.poll(zmq::POLLIN, 10_000)?;
            let mut ev = Loop::<Count>::new()?;
            let mut keep = None;
            match mode {
                Mode::Naive => {
                    scenario::watch_naive(&mut ev, pull, |c, _, m| {
                        c.got += 1;
                        if m[0].len() != SIZE {
                            c.bad += 1;
                        }
                    })?;
                }
                Mode::Fair(b) => {
                    keep = Some(ZmqWatcher::with_budget(&mut ev, pull, H, b)?);
                }
            }
            (t0, cpu0) = (Instant::now(), util::thread_cpu_ns());
            if !ev.run_until(&mut c, Duration::from_secs(60), |c| c.got >= n)? {
                bail!("{}: only {} of {n} messages", mode.label(), c.got);
            }
            drop(keep);
        }
    }
    let (wall, cpu) = (t0.elapsed(), util::thread_cpu_ns() - cpu0);
    let _ = done_tx.send(());
    sender.join().ok();
    if c.bad > 0 {
        bail!("{} malformed messages", c.bad);
    }
    Ok((n as f64 / wall.as_secs_f64(), cpu as f64 / n as f64))
}

fn main() -> Result<()> {
    let args = util::Args::parse(1_000_000)?;
    let modes: Vec<Recv> = std::iter::once(None).chain(Mode::SWEEP.map(Some)).collect();
    println!(
        "throughput: {} x {SIZE} B PUSH->PULL, median of {} runs (receiver CPU from schedstat)\n",
        args.messages, args.runs
    );
    println!(
        "{:<8} {:<22} {:>12} {:>8} {:>12} {:>10}",
        "transport", "receiver", "msgs/s", "x raw", "cpu ns/msg", "x raw cpu"
    );
    let mut json = Vec::new();
    for t in Transport::ALL {
        if args.only.as_deref().is_some_and(|o| o != t.name()) {
            continue;
        }
        let mut rate = vec![Vec::new(); modes.len()];
        let mut cpu = vec![Vec::new(); modes.len()];
        // Interleave modes within each repetition so drift hits all of them alike.
        for _ in 0..args.runs {
            for (i, &m) in modes.iter().enumerate() {
                let (r, c) = run(t, m, args.messages)?;
                rate[i].push(r);
                cpu[i].push(c);
            }
        }
        let med: Vec<(f64, f64)> = (0..modes.len())
            .map(|i| (util::median(&mut rate[i]), util::median(&mut cpu[i])))
            .collect();
        let (raw_rate, raw_cpu) = med[0];
        for (i, &m) in modes.iter().enumerate() {
            let (r, c) = med[i];
            println!(
                "{:<8} {:<22} {:>12.0} {:>8.2} {:>12.1} {:>10.2}",
                t.name(),
                label(m),
                r,
                r / raw_rate,
                c,
                c / raw_cpu
            );
            json.push(format!(
                "{{\"transport\":\"{}\",\"mode\":\"{}\",\"msgs_per_s\":{:.0},\"ratio_to_raw\":{:.3},\"cpu_ns_per_msg\":{:.1},\"cpu_ratio_to_raw\":{:.3}}}",
                t.name(), key(m), r, r / raw_rate, c, c / raw_cpu
            ));
        }
        println!();
    }
    if let Some(p) = &args.json {
        util::write_json(p, &json)?;
    }
    Ok(())
}

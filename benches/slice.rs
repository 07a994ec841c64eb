//! The budget's time slice with a slow handler: 1,500 queued messages, each costing the
//! handler `--work-us` µs of CPU (250 by default), worked off on one loop beside a 1 ms
//! timer, under the default budget (64 messages or 200 µs). Prints the timer's lateness,
//! the most messages one turn took, and the longest turn (wall and loop-thread CPU,
//! measured from each check phase to the next prepare).
//!
//! ```text
//! cargo bench --bench slice -- [--messages N] [--runs R] [--work-us U]
//! ```

mod util;

use std::time::{Duration, Instant};

use anyhow::Result;
use evnet::ev::{Ctx, Loop};
use evnet::fair::{Sock, ZmqHandler, ZmqWatcher};

struct St {
    got: u64,
    this_turn: u64,
    most_per_turn: u64,
    late_us: Vec<f64>,
    due: Instant,
    turn_began: Option<(Instant, u64)>,
    longest_turn: Duration,
    max_turn_cpu_ns: u64,
}

struct Slow(Duration);
impl ZmqHandler<Ctx<St>> for Slow {
    fn readable(
        &mut self,
        _: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        let t0 = Instant::now();
        while t0.elapsed() < self.0 {
            std::hint::spin_loop();
        }
        st.got += 1;
        st.this_turn += 1;
    }
}

struct Row {
    p50: f64,
    p99: f64,
    max: f64,
    most: u64,
    longest_us: f64,
    cpu_us: f64,
}

fn run(n: u64, work: Duration) -> Result<Row> {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL)?;
    pull.set_rcvhwm(0)?;
    pull.bind("inproc://slice")?;
    let push = ctx.socket(zmq::PUSH)?;
    push.set_sndhwm(0)?;
    push.connect("inproc://slice")?;
    for i in 0..n {
        push.send(&i.to_le_bytes()[..], 0)?;
    }
    let mut ev = Loop::<St>::new()?;
    // Before the socket's own: checks run in the order they were started, and the socket
    // does its turn's work in its check.
    ev.check(|st: &mut St, _, _| {
        st.turn_began = Some((Instant::now(), util::thread_cpu_now_ns()));
        st.this_turn = 0;
    });
    ev.prepare(|st: &mut St, _, _| {
        if let Some((t0, c0)) = st.turn_began.take() {
            st.longest_turn = st.longest_turn.max(t0.elapsed());
            let cpu = util::thread_cpu_now_ns().saturating_sub(c0);
            st.max_turn_cpu_ns = st.max_turn_cpu_ns.max(cpu);
        }
        st.most_per_turn = st.most_per_turn.max(st.this_turn);
    });
    let _w = ZmqWatcher::new(&mut ev, pull, Slow(work)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tick = Duration::from_millis(1);
    ev.timer(tick, None, move |st: &mut St, cx, e| {
        let now = Instant::now();
        st.late_us
            .push(now.saturating_duration_since(st.due).as_nanos() as f64 / 1e3);
        st.due = now + tick;
        cx.set_timer(e.watcher(), tick, None);
    });
    let mut st = St {
        got: 0,
        this_turn: 0,
        most_per_turn: 0,
        late_us: Vec::new(),
        due: Instant::now() + tick,
        turn_began: None,
        longest_turn: Duration::ZERO,
        max_turn_cpu_ns: 0,
    };
    let done = ev.run_until(&mut st, Duration::from_secs(120), |s| s.got == n)?;
    anyhow::ensure!(done, "{} of {n} messages", st.got);
    let max = st.late_us.iter().copied().fold(0.0, f64::max);
    Ok(Row {
        p50: util::percentile(&mut st.late_us, 0.50),
        p99: util::percentile(&mut st.late_us, 0.99),
        max,
        most: st.most_per_turn,
        longest_us: st.longest_turn.as_nanos() as f64 / 1e3,
        cpu_us: st.max_turn_cpu_ns as f64 / 1e3,
    })
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut work_us = 250u64;
    if let Some(i) = args.iter().position(|a| a == "--work-us") {
        work_us = args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("--work-us needs a value"))?
            .parse()?;
        args.drain(i..i + 2);
    }
    let args = util::Args::parse_from(args, 1500)?;
    let work = Duration::from_micros(work_us);
    let mut rows = Vec::new();
    for _ in 0..args.runs {
        rows.push(run(args.messages, work)?);
    }
    let med = |f: fn(&Row) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        util::median(&mut v)
    };
    println!(
        "slice: {} messages x {work_us} us of handler work, default budget, 1 ms timer; median of {} runs",
        args.messages, args.runs
    );
    println!(
        "{:>10} {:>10} {:>10} {:>14} {:>16} {:>16}",
        "timer p50", "p99 us", "max us", "most msgs/turn", "longest turn us", "max turn CPU us"
    );
    println!(
        "{:>10.1} {:>10.1} {:>10.1} {:>14.0} {:>16.0} {:>16.0}",
        med(|r| r.p50),
        med(|r| r.p99),
        med(|r| r.max),
        med(|r| r.most as f64),
        med(|r| r.longest_us),
        med(|r| r.cpu_us)
    );
    Ok(())
}

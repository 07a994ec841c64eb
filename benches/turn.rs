//! The cost of one loop turn on each backend: a ping-pong of one byte between two io
//! watchers over a Unix socket pair on one loop (each turn: a poll that finds one fd
//! readable, a read, a write), and an idle watcher spinning (a poll with a zero timeout).
//! Run it once per backend:
//!
//! ```text
//! cargo bench --bench turn
//! cargo bench --bench turn --features backend-polling
//! ```

mod util;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use anyhow::Result;
use evnet::ev::{IoInterest, Loop};

const TURNS: u64 = 500_000;

struct St {
    a: UnixStream,
    b: UnixStream,
    left: u64,
}

fn main() -> Result<()> {
    let args = util::Args::parse(TURNS)?;
    let backend = if cfg!(feature = "backend-polling") {
        "polling crate"
    } else {
        "epoll (direct)"
    };
    println!(
        "turn cost, backend: {backend}; median of {} runs",
        args.runs
    );
    println!("{:<28} {:>12} {:>12}", "case", "ns/turn", "turns");
    let mut ping = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..args.runs {
        // Ping-pong: each turn one side is readable, reads its byte and writes one back.
        let (a, b) = UnixStream::pair()?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        let (fa, fb) = (a.try_clone()?, b.try_clone()?);
        let mut st = St {
            a,
            b,
            left: args.messages,
        };
        let mut ev = Loop::<St>::new()?;
        ev.io(fa, IoInterest::READABLE, |st, cx, _| {
            let mut buf = [0u8; 16];
            let _ = st.a.read(&mut buf);
            st.left = st.left.saturating_sub(1);
            if st.left == 0 {
                cx.stop_loop();
            }
            let _ = st.a.write(b"x");
        });
        ev.io(fb, IoInterest::READABLE, |st, _, _| {
            let mut buf = [0u8; 16];
            let _ = st.b.read(&mut buf);
            let _ = st.b.write(b"y");
        });
        st.b.write_all(b"y")?;
        let turns0 = ev.stats().turns;
        let t0 = Instant::now();
        ev.run(&mut st)?;
        let turns = ev.stats().turns - turns0;
        ping.push((t0.elapsed().as_nanos() as f64 / turns as f64, turns));

        // Idle: an idle watcher keeps every poll at a zero timeout.
        let mut ev = Loop::<u64>::new()?;
        ev.idle(|n, cx, _| {
            *n = n.saturating_sub(1);
            if *n == 0 {
                cx.stop_loop();
            }
        });
        let mut n = args.messages;
        let turns0 = ev.stats().turns;
        let t0 = Instant::now();
        ev.run(&mut n)?;
        let turns = ev.stats().turns - turns0;
        idle.push((t0.elapsed().as_nanos() as f64 / turns as f64, turns));
    }
    for (label, rows) in [
        ("ping-pong (1 fd ready/turn)", ping),
        ("idle (zero-timeout poll)", idle),
    ] {
        let mut ns: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let turns = rows.first().map_or(0, |r| r.1);
        println!("{label:<28} {:>12.0} {turns:>12}", util::median(&mut ns));
    }
    Ok(())
}

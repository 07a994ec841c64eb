//! Cross-loop channel: `evnet::loops::channel` against crossbeam-channel with an eventfd
//! write per message (the obvious way to wake a loop), one producer thread into one loop.
//!
//! Two loads: a flood (the producer sends as fast as the queue takes) and bursts (100
//! messages, then 1 ms of quiet, so the loop sleeps between bursts and every burst must
//! wake it). Reported per message: throughput, the loop thread's CPU and the producer's
//! CPU (where the wake-up syscalls are paid), median of `--runs`.
//!
//! cargo bench --bench channel -- [--messages N] [--runs R]

mod util;

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::Result;
use evnet::ev::{IoInterest, Loop};
use evnet::loops::channel;

const CAPACITY: usize = 1024;
const BURST: u64 = 100;

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Flood,
    Bursts,
}

struct Sample {
    rate: f64,
    loop_ns: f64,
    producer_ns: f64,
}

/// Sends `n` messages with `send`, pacing bursts when asked; returns its CPU time.
fn produce(n: u64, load: Load, mut send: impl FnMut(u64)) -> u64 {
    let c0 = util::thread_cpu_now_ns();
    for i in 0..n {
        send(i);
        if load == Load::Bursts && (i + 1) % BURST == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    util::thread_cpu_now_ns() - c0
}

/// Runs the loop until its last watcher is gone (every message delivered), then joins the
/// producer: the sample, per message.
fn measure(
    mut ev: Loop<u64>,
    n: u64,
    t0: Instant,
    producer: std::thread::JoinHandle<u64>,
) -> Result<Sample> {
    let c0 = util::thread_cpu_now_ns();
    let mut got = 0;
    ev.run(&mut got)?;
    let loop_ns = util::thread_cpu_now_ns() - c0;
    let secs = t0.elapsed().as_secs_f64();
    let producer_ns = producer.join().unwrap();
    assert_eq!(got, n);
    Ok(Sample {
        rate: n as f64 / secs,
        loop_ns: loop_ns as f64 / n as f64,
        producer_ns: producer_ns as f64 / n as f64,
    })
}

fn evnet_channel(n: u64, load: Load) -> Result<Sample> {
    let (tx, rx) = channel::<u64>(CAPACITY);
    let mut ev = Loop::<u64>::new()?;
    rx.attach(&mut ev, |got, _cx, _m| *got += 1)?;
    let t0 = Instant::now();
    let producer = std::thread::spawn(move || produce(n, load, |i| tx.send(i).unwrap()));
    measure(ev, n, t0, producer)
}

#[cfg(target_os = "linux")]
fn eventfd() -> Result<RawFd> {
    // SAFETY: no pointers; the fd returned is owned by the caller.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    anyhow::ensure!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    Ok(fd)
}

#[cfg(not(target_os = "linux"))]
fn eventfd() -> Result<RawFd> {
    anyhow::bail!("the eventfd baseline is Linux-only")
}

fn crossbeam_eventfd(n: u64, load: Load) -> Result<Sample> {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
    let efd = eventfd()?;
    // SAFETY: `efd` was just created and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(efd) };
    let mut ev = Loop::<u64>::new()?;
    ev.io(owned, IoInterest::READABLE, move |got, cx, e| {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `buf`.
        let _ = unsafe { libc::read(efd, buf.as_mut_ptr().cast(), 8) };
        loop {
            match rx.try_recv() {
                Ok(_) => *got += 1,
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    cx.remove(e.watcher());
                    break;
                }
            }
        }
    });
    let t0 = Instant::now();
    let producer = std::thread::spawn(move || {
        let one = 1u64.to_ne_bytes();
        let wake = || {
            // SAFETY: writes 8 bytes from `one`.
            let _ = unsafe { libc::write(efd, one.as_ptr().cast(), 8) };
        };
        let ns = produce(n, load, |i| {
            tx.send(i).unwrap();
            wake();
        });
        drop(tx);
        wake();
        ns
    });
    measure(ev, n, t0, producer)
}

fn main() -> Result<()> {
    let args = util::Args::parse(1_000_000)?;
    println!(
        "channel: {} u64 messages, one producer thread into one loop, capacity {CAPACITY}, \
         median of {} runs (the two alternating)\n",
        args.messages, args.runs
    );
    println!(
        "{:<8} {:<32} {:>11} {:>13} {:>15}",
        "load", "channel", "msgs/s", "loop ns/msg", "producer ns/msg"
    );
    for (load, name, n) in [
        (Load::Flood, "flood", args.messages),
        (Load::Bursts, "bursts", (args.messages / 20).max(BURST)),
    ] {
        let mut rows: [(&str, Vec<Sample>); 2] = [
            ("evnet loops::channel", Vec::new()),
            ("crossbeam + eventfd per message", Vec::new()),
        ];
        for r in 0..args.runs {
            for k in 0..2 {
                let k = if r % 2 == 0 { k } else { 1 - k };
                let s = if k == 0 {
                    evnet_channel(n, load)?
                } else {
                    crossbeam_eventfd(n, load)?
                };
                rows[k].1.push(s);
            }
        }
        let mut med = Vec::new();
        for (label, samples) in &rows {
            let m = |f: fn(&Sample) -> f64| {
                let mut v: Vec<f64> = samples.iter().map(f).collect();
                util::median(&mut v)
            };
            let (rate, lns, pns) = (m(|s| s.rate), m(|s| s.loop_ns), m(|s| s.producer_ns));
            println!("{name:<8} {label:<32} {rate:>11.0} {lns:>13.1} {pns:>15.1}");
            med.push((rate, lns, pns));
        }
        println!(
            "{name:<8} {:<32} {:>11.2} {:>13.2} {:>15.2}\n",
            "evnet / crossbeam+eventfd",
            med[0].0 / med[1].0,
            med[0].1 / med[1].1,
            med[0].2 / med[1].2
        );
    }
    Ok(())
}

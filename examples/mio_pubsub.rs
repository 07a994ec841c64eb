//! evnet's fair ZeroMQ adapter inside a plain mio loop: a flooded SUB socket (`MioZmq`), a
//! 1 ms timer made from the poll timeout, and a TCP listener whose clients ask for the
//! message count, all on one thread. During the flood the timer keeps ticking and the TCP
//! clients keep getting answers.
//!
//! ```text
//! cargo run --release --features mio --example mio_pubsub -- [--messages N]
//! ```

#[macro_use]
#[path = "util/out.rs"]
mod out;

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use evnet::fair::{MioZmq, Sock};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const SUB: Token = Token(0);
const LISTENER: Token = Token(1);
const TICK: Duration = Duration::from_millis(1);

fn main() -> Result<()> {
    let mut n: u64 = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--messages" => n = args.next().context("--messages N")?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }

    // The flood: a publisher thread, 64 B messages, then an "end" message.
    let ctx = zmq::Context::new();
    let publ = ctx.socket(zmq::PUB)?;
    publ.set_sndhwm(0)?;
    publ.bind("inproc://mio-pubsub")?;
    let sub = ctx.socket(zmq::SUB)?;
    sub.set_rcvhwm(0)?;
    sub.set_subscribe(b"")?;
    sub.connect("inproc://mio-pubsub")?;
    let publisher = thread::spawn(move || -> Result<()> {
        thread::sleep(Duration::from_millis(100)); // the loop and the clients start first
        let payload = [0x5au8; 64];
        for _ in 0..n {
            publ.send(&payload[..], 0)?;
        }
        publ.send(&b"end"[..], 0)?;
        thread::sleep(Duration::from_millis(100));
        Ok(())
    });

    // The mio loop: the SUB socket, a TCP listener and its connections.
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(256);
    let mut zsub = MioZmq::new(sub)?;
    poll.registry()
        .register(&mut zsub, SUB, Interest::READABLE)?;
    let mut listener = TcpListener::bind("127.0.0.1:0".parse()?)?;
    let addr = listener.local_addr()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let client = thread::spawn(move || ask_every_10ms(addr));

    let mut conns: HashMap<Token, TcpStream> = HashMap::new();
    let mut next_token = 2;
    let got = Cell::new(0u64);
    let ended = Cell::new(false);
    let mut on_msg = |m: &mut [zmq::Message], _: &mut Sock<'_>| {
        if m.first().is_some_and(|p| &p[..] == b"end") {
            ended.set(true);
        } else {
            got.set(got.get() + 1);
        }
    };
    let mut deadline = Instant::now() + TICK;
    let mut lateness: Vec<Duration> = Vec::new();
    let mut answered = 0u64;
    let t0 = Instant::now();
    let mut flood_start = None;
    let mut flood_end = None;
    while flood_end.is_none_or(|e: Instant| e.elapsed() < Duration::from_millis(50)) {
        let timeout = zsub.poll_timeout(Some(deadline.saturating_duration_since(Instant::now())));
        poll.poll(&mut events, timeout)?;
        // The ZeroMQ socket: one bounded turn, whatever woke the poll.
        zsub.dispatch(&events, &mut on_msg)?;
        for ev in events.iter() {
            match ev.token() {
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            let t = Token(next_token);
                            next_token += 1;
                            poll.registry().register(&mut s, t, Interest::READABLE)?;
                            conns.insert(t, s);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                },
                t if t != SUB => {
                    if let Some(s) = conns.get_mut(&t) {
                        let mut buf = [0u8; 256];
                        loop {
                            match s.read(&mut buf) {
                                Ok(0) => {
                                    conns.remove(&t);
                                    break;
                                }
                                // One answer per request line: the count so far.
                                Ok(k) => {
                                    for _ in buf[..k].iter().filter(|&&b| b == b'\n') {
                                        s.write_all(format!("{}\n", got.get()).as_bytes())?;
                                        answered += 1;
                                    }
                                }
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let now = Instant::now();
        if now >= deadline {
            if flood_start.is_some() && flood_end.is_none() {
                lateness.push(now - deadline);
            }
            deadline = now + TICK;
        }
        if got.get() > 0 && flood_start.is_none() {
            flood_start = Some(now);
        }
        if ended.get() && flood_end.is_none() {
            flood_end = Some(now);
        }
        if t0.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the flood did not end within 60 s ({} of {n})", got.get());
        }
    }
    publisher
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    drop(conns);
    let (asked, worst) = client
        .join()
        .map_err(|_| anyhow::anyhow!("client panicked"))??;

    let flood = flood_end
        .zip(flood_start)
        .map_or(Duration::ZERO, |(e, s)| e - s);
    lateness.sort();
    let p99 = lateness
        .get(lateness.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    outln!(
        "received {} of {n} messages in {flood:.1?} on a mio loop",
        got.get()
    );
    outln!(
        "1 ms timer during the flood: {} ticks of ~{} expected, p99 lateness {p99:.1?}",
        lateness.len(),
        flood.as_millis()
    );
    outln!("TCP: {asked} questions asked, {answered} answered, slowest answer {worst:.1?}");
    Ok(())
}

/// A TCP client that asks for the count every 10 ms until the server closes; returns how
/// many it asked and its slowest answer.
fn ask_every_10ms(addr: std::net::SocketAddr) -> Result<(u64, Duration)> {
    let s = StdTcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let (mut asked, mut worst) = (0, Duration::ZERO);
    let mut line = String::new();
    loop {
        let t = Instant::now();
        if w.write_all(b"count?\n").is_err() {
            break;
        }
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                asked += 1;
                worst = worst.max(t.elapsed());
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok((asked, worst))
}

//! The `broker` and `worker` examples as real processes over tcp: three workers, one
//! killed with SIGKILL while it holds a request. Every request is answered exactly once
//! and correctly (the broker retries what the dead worker held), the client sees no
//! error, and a restarted worker rejoins and takes work.

mod util;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use util::example;
use util::watchdog::watchdog;

fn signal(child: &Child, sig: &str) {
    assert!(Command::new(util::provision::tool("kill"))
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// Kills the processes left if the test fails half-way.
struct Reap(Vec<Child>);
impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn worker(backend: &str, work_ms: u64) -> Child {
    Command::new(example("worker"))
        .args(["--connect", backend, "--heartbeat-ms", "100"])
        .args(["--work-ms", &work_ms.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("worker: {e} (cargo test builds the examples)"))
}

/// The reply the workers give (`pirate::answer`).
fn answer(body: &str) -> String {
    format!("done: {}", body.chars().rev().collect::<String>())
}

/// Sends `ids` as requests.
fn ask(dealer: &zmq::Socket, ids: std::ops::Range<u32>) {
    for i in ids {
        dealer.send(format!("req-{i}").as_bytes(), 0).unwrap();
    }
}

/// Receives replies, counting each, until `total` came.
fn recv_until(dealer: &zmq::Socket, got: &mut HashMap<String, u32>, total: usize) {
    while got.values().map(|&n| n as usize).sum::<usize>() < total {
        let r = dealer.recv_bytes(0).expect("a reply within 20 s");
        *got.entry(String::from_utf8(r).unwrap()).or_default() += 1;
    }
}

#[test]
fn a_worker_killed_mid_request_loses_nothing_and_a_restarted_one_rejoins() {
    let _w = watchdog(Duration::from_secs(120), "the broker kill test");
    let mut broker = Command::new(example("broker"))
        .args([
            "--frontend",
            "tcp://127.0.0.1:*",
            "--backend",
            "tcp://127.0.0.1:*",
        ])
        .args(["--heartbeat-ms", "100"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("broker: {e} (cargo test builds the examples)"));
    let out = BufReader::new(broker.stdout.take().unwrap());
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            if lines_tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = lines.recv().unwrap();
    let mut words = first.split_whitespace();
    let (Some("frontend"), Some(front), Some("backend"), Some(back)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        panic!("{first}")
    };
    let (front, back) = (front.to_owned(), back.to_owned());
    let wait_for = |what: &str| loop {
        let l = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no '{what}' from the broker"));
        if l.contains(what) {
            return l;
        }
    };
    // Two quick workers and a slow one, which holds each request for 300 ms.
    let mut reap = Reap(vec![worker(&back, 5), worker(&back, 5), worker(&back, 300)]);
    for _ in 0..3 {
        wait_for("ready");
    }
    let ctx = zmq::Context::new();
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    dealer.set_rcvtimeo(20_000).unwrap();
    dealer.set_linger(0).unwrap();
    dealer.connect(&front).unwrap();
    let mut got = HashMap::new();
    ask(&dealer, 0..200);
    recv_until(&dealer, &mut got, 40);
    // The slow worker has held a request for most of the time: kill it now.
    let mut victim = reap.0.remove(2);
    signal(&victim, "-KILL");
    victim.wait().unwrap();
    wait_for("lost");
    recv_until(&dealer, &mut got, 200);
    // A worker comes back and takes its share of the next batch.
    let restarted = worker(&back, 5);
    wait_for("ready");
    ask(&dealer, 200..320);
    recv_until(&dealer, &mut got, 320);
    // Nothing more comes (no late duplicate) while the broker heartbeats a few times.
    dealer.set_rcvtimeo(500).unwrap();
    assert!(dealer.recv_bytes(0).is_err(), "an extra reply arrived");
    let want: HashMap<String, u32> = (0..320).map(|i| (answer(&format!("req-{i}")), 1)).collect();
    assert_eq!(got, want, "every request answered exactly once, correctly");

    signal(&restarted, "-TERM");
    let out = restarted.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let handled: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("handled "))
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    assert!(handled > 0, "the restarted worker took no work: {text}");

    signal(&broker, "-TERM");
    let stopped = wait_for("stopped:");
    assert!(broker.wait().unwrap().success());
    // stopped: N answered, R retried, W waiting
    let n: Vec<u64> = stopped
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(n[0], 320, "{stopped}");
    assert!(
        n[1] >= 1,
        "the dead worker's request was not retried: {stopped}"
    );
    assert_eq!(n[2], 0, "{stopped}");
    for mut c in reap.0.drain(..) {
        signal(&c, "-TERM");
        assert!(c.wait().unwrap().success());
    }
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

pub const TRANSPORTS: [&str; 3] = ["inproc", "ipc", "tcp"];

/// A fresh endpoint to bind on `transport` (tcp binds an ephemeral loopback port).
pub fn endpoint(transport: &str, tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    match transport {
        "inproc" => format!("inproc://{tag}-{n}"),
        "ipc" => format!(
            "ipc:///tmp/evnet-test-{}-{tag}-{n}.sock",
            std::process::id()
        ),
        "tcp" => "tcp://127.0.0.1:*".into(),
        other => panic!("unknown transport {other}"),
    }
}

/// Binds `a` on a fresh endpoint and connects `b` to it.
pub fn link(a: &zmq::Socket, b: &zmq::Socket, transport: &str, tag: &str) -> zmq::Result<()> {
    a.bind(&endpoint(transport, tag))?;
    let ep = a.get_last_endpoint()?.expect("utf-8 endpoint");
    b.connect(&ep)
}

/// A small deterministic PRNG (xorshift64*), so failing seeds replay exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Message count for a transport: at least 100k on inproc.
pub fn count_for(transport: &str) -> u64 {
    if transport == "inproc" {
        100_000
    } else {
        20_000
    }
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod alloc;
pub mod dns_fake;
pub mod hosts;
pub mod nsd;
pub mod openssl;
pub mod pki;
pub mod provision;
pub mod relay;
pub mod rsyslog;
pub mod unbound;
pub mod watchdog;

use std::sync::atomic::{AtomicUsize, Ordering};

/// An example's binary, which `cargo test` builds beside the test binaries:
/// target/<profile>/deps/<test>-<hash> → target/<profile>/examples/<name>.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

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

use evnet::bufio::{Conn, StreamEvent};
use evnet::ev::Ctx;

type ReadFn<S> = Box<dyn FnMut(&Conn<S>, bytes::Bytes, &mut S, &mut Ctx<S>)>;
type WriteFn<S> = Box<dyn FnMut(&Conn<S>, &mut S, &mut Ctx<S>)>;
type EventFn<S> = Box<dyn FnMut(&Conn<S>, StreamEvent, &mut S, &mut Ctx<S>)>;

/// A `bufio::StreamHandler` made of closures, for tests.
pub struct Fns<S: 'static> {
    read: ReadFn<S>,
    write: WriteFn<S>,
    event: EventFn<S>,
}

impl<S: 'static> Fns<S> {
    pub fn new(
        read: impl FnMut(&Conn<S>, bytes::Bytes, &mut S, &mut Ctx<S>) + 'static,
        event: impl FnMut(&Conn<S>, StreamEvent, &mut S, &mut Ctx<S>) + 'static,
    ) -> Fns<S> {
        Fns {
            read: Box::new(read),
            write: Box::new(|_, _, _| {}),
            event: Box::new(event),
        }
    }

    pub fn on_write(
        mut self,
        write: impl FnMut(&Conn<S>, &mut S, &mut Ctx<S>) + 'static,
    ) -> Fns<S> {
        self.write = Box::new(write);
        self
    }
}

impl<S: 'static> evnet::bufio::StreamHandler<S> for Fns<S> {
    fn read(&mut self, c: &Conn<S>, d: bytes::Bytes, st: &mut S, cx: &mut Ctx<S>) {
        (self.read)(c, d, st, cx)
    }
    fn write(&mut self, c: &Conn<S>, st: &mut S, cx: &mut Ctx<S>) {
        (self.write)(c, st, cx)
    }
    fn event(&mut self, c: &Conn<S>, e: StreamEvent, st: &mut S, cx: &mut Ctx<S>) {
        (self.event)(c, e, st, cx)
    }
}

/// A connected TCP pair on loopback, as socket2 sockets.
pub fn tcp_pair() -> (socket2::Socket, socket2::Socket) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (socket2::Socket::from(a), socket2::Socket::from(b))
}

/// A connected Unix stream pair, as socket2 sockets.
pub fn unix_pair() -> (socket2::Socket, socket2::Socket) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    (socket2::Socket::from(a), socket2::Socket::from(b))
}

/// Waits until `sub`'s subscriptions have reached `publ` (a PUB drops what it sends before
/// they arrive), then leaves nothing of the handshake queued: probes until one arrives,
/// then sends a fence and drains up to it (a pipe keeps order, so nothing follows it).
/// For a SUB subscribed to everything.
pub fn await_subscription(publ: &zmq::Socket, sub: &zmq::Socket) {
    let t0 = std::time::Instant::now();
    loop {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "the subscription never reached the publisher"
        );
        publ.send(&b"probe"[..], zmq::DONTWAIT).unwrap();
        if sub.poll(zmq::POLLIN, 1).unwrap() > 0 {
            break;
        }
    }
    publ.send(&b"fence"[..], 0).unwrap();
    loop {
        let m = sub.recv_bytes(0).unwrap();
        if m == b"fence" {
            return;
        }
        assert_eq!(m, b"probe");
    }
}

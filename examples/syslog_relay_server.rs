//! The Boston Diaries' syslog-over-TLS relay on evnet: syslog arrives over UDP, and every
//! message goes down every connected TLS client (a client certificate is required).
//!
//! The seed's second post is the point: its first version wrote the next message to a
//! client whose previous TLS write had not finished, and the two sides fell out of sync.
//! Here each client has a bounded queue, written only from the stream's write-low-watermark
//! callback (`StreamHandler::write`, called when its output has drained) or, when the client is
//! idle, at once: one writer, never a write while one is pending, by construction.
//!
//! Overflow (a client too slow for the flow): `--slow drop` (default) drops the oldest
//! queued messages and counts them; the count is logged and, once the client has caught
//! up, sent to it as a syslog-formatted notice. `--slow disconnect` drops the client.
//! Memory: at most `--max-clients` × (`--queue-bytes` + one 64 KiB write + TLS buffers +
//! the kernel's `--sndbuf`).
//!
//! | rsyslog omfwd (StreamDriver gtls/ossl)   | this relay                                  |
//! |-------------------------------------------|---------------------------------------------|
//! | octet-counted framing (RFC 5425/6587)     | `--framing octet` (LF lines by default)     |
//! | x509/name, x509/certvalid peer auth       | CA-verified client certificate, `--issuer`  |
//! | bounded queues, disk-assisted queues      | bounded in-memory queue per client; no disk |
//! | imtcp / imudp, imtcp with StreamDriver    | `--syslog` (UDP), `--syslog-tcp` (RFC 6587), `--syslog-tls` (RFC 5425, client certificates) |
//! | resume/retry of the forwarding action     | the client reconnects forever (full-jitter backoff) |
//! | disk-assisted queues keep what a down peer misses | the replay ring (`--replay-messages`): a client with `--state` gets what it missed after a reconnect or a restart, in order and without gaps (a kill between forwarding a message and recording it repeats that one), and is told what the ring no longer held; not on disk on the server |
//! | at-least-once with RELP                   | between RELP and plain TLS: sequence numbers and a resume hello (`syslog_relay/replay.rs`), no acknowledgements |
//! | omfwd UDP/TCP or omuxsock to the local daemon | client `--forward HOST:PORT`, `tcp:` (RFC 6587, queued while down) or `unix:` (waits for room, never drops) |
//! | impstats counters                         | a stats line every `--stats-interval` and on SIGUSR1, JSON on the tap (`syslog_relay/stats.rs`) |
//! | one sender's slow action blocks the queue | a full forward queue stops the client reading; the relay drops the oldest for that client alone, counts it and tells it |
//!
//! The ZeroMQ tap (`--zmq-pub`) is clear text to whoever connects: keep it on `ipc://` or
//! a loopback address (the server warns when it is not). `--zmq-stats` adds the stats.
//!
//! `--threads N` spreads the TLS clients over N loops (`evnet::loops`), each accepting on
//! its own `SO_REUSEPORT` shard of `--listen`: what a relay with many clients spends its
//! CPU on is encrypting every message once per client, and that work then runs on N
//! cores. Loop 0 reads the UDP socket (and owns the PUB socket) and hands each framed
//! message to the other loops through a bounded `loops::channel` each; a loop that falls
//! a whole channel behind loses messages there, counted and logged like a slow client's.
//!
//! Try: `cargo run --example syslog_relay_server -- --cert server.pem --key server.key
//! --ca ca.pem --listen 127.0.0.1:6514 --syslog 127.0.0.1:5514`, then
//! `logger --udp -n 127.0.0.1 -P 5514 hello`.

#[macro_use]
#[path = "util/out.rs"]
mod out;
#[path = "syslog_relay/input.rs"]
mod input;
#[path = "util/octet.rs"]
mod octet;
#[path = "syslog_relay/loops.rs"]
mod on_loops;
#[path = "syslog_relay/peers.rs"]
mod peers;
#[path = "syslog_relay/replay.rs"]
mod replay;
#[path = "syslog_relay/stats.rs"]
mod stats;
#[path = "util/until_signal.rs"]
mod until_signal;

use std::collections::{HashMap, VecDeque};
use std::net::UdpSocket;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use evnet::bufio::{Closed, Stream};
use evnet::bytes::{BufMut, Bytes, BytesMut};
use evnet::ev::{Ctx, IoInterest, Loop, WatcherId};
use evnet::fair::{Outbox, Sock, ZmqHandler, ZmqWatcher};
use evnet::loops::{LoopSender, SendError};
use evnet::socket::{bind_tcp_all, bind_tcp_shard, listen_addrs, Listener};
use evnet::tls::ServerPem;
use evnet::zmq;
use peers::{accept, pump};
use replay::Ring;
use stats::{ClientStats, Stats};

#[derive(Parser, Clone)]
#[command(about = "Syslog over UDP in, a copy of every message to every TLS client")]
struct Args {
    /// UDP address syslog messages arrive on.
    #[arg(long, default_value = "127.0.0.1:5514")]
    syslog: String,
    /// TLS address clients connect to.
    #[arg(long, default_value = "127.0.0.1:6514")]
    listen: String,
    #[arg(long)]
    cert: String,
    #[arg(long)]
    key: String,
    /// CA that client certificates must chain to.
    #[arg(long)]
    ca: String,
    /// Required issuer of client certificates (RFC 4514, e.g. "O=Example,CN=Example CA").
    #[arg(long)]
    issuer: Option<String>,
    /// Allow TLS 1.2 (TLS 1.3 only by default).
    #[arg(long)]
    tls12: bool,
    #[arg(long, value_enum, default_value = "line")]
    framing: Framing,
    #[arg(long, value_enum, default_value = "drop")]
    slow: Slow,
    /// Most messages queued for one client.
    #[arg(long, default_value_t = 10_000)]
    queue_messages: usize,
    /// Most bytes queued for one client.
    #[arg(long, default_value_t = 4 << 20)]
    queue_bytes: usize,
    #[arg(long, default_value_t = 100)]
    max_clients: usize,
    /// Kernel send buffer per client (SO_SNDBUF; the kernel doubles it): with the queue,
    /// what a stalled client can hold.
    #[arg(long, default_value_t = 64 * 1024)]
    sndbuf: usize,
    /// Also take syslog over TLS here (RFC 5425; senders need a certificate from --ca,
    /// and --issuer's when given), octet-counted or LF-framed.
    #[arg(long)]
    syslog_tls: Option<String>,
    /// Also take syslog over plain TCP here (RFC 6587), octet-counted or LF-framed.
    #[arg(long)]
    syslog_tcp: Option<String>,
    /// Keep the last this many messages for clients that reconnect (0: no ring; see
    /// `syslog_relay/replay.rs` for the resume protocol). One loop only.
    #[arg(long, default_value_t = 0)]
    replay_messages: usize,
    /// ... and at most this many bytes of them.
    #[arg(long, default_value_t = 4 << 20)]
    replay_bytes: usize,
    /// With a ring: how long a new client has to send its resume hello before it is
    /// served as a plain client (what it missed meanwhile is sent to it either way).
    #[arg(long, default_value_t = 200)]
    hello_wait_ms: u64,
    /// Also publish every message on a ZeroMQ PUB socket bound here: in clear text and
    /// to anyone who connects, so keep it on ipc:// or a loopback address (a warning says
    /// so when it is not).
    #[arg(long)]
    zmq_pub: Option<String>,
    /// Also publish the stats as JSON on the --zmq-pub tap (topic `evnet-relay-stats`).
    #[arg(long)]
    zmq_stats: bool,
    /// Seconds between stats lines on stderr (0: none; SIGUSR1 writes one at any time).
    #[arg(long, default_value_t = 60)]
    stats_interval: u64,
    /// Kernel receive buffer of the UDP socket (SO_RCVBUF): what a burst may queue before
    /// the kernel drops datagrams (capped by net.core.rmem_max).
    #[arg(long, default_value_t = 4 << 20)]
    udp_rcvbuf: usize,
    /// Seconds a client has to finish its handshake.
    #[arg(long, default_value_t = 10)]
    handshake_timeout: u64,
    /// Seconds a shutdown waits for the clients' queues to drain.
    #[arg(long, default_value_t = 5)]
    shutdown_timeout: u64,
    /// Event loops for the TLS clients, one thread each (SO_REUSEPORT shards of --listen).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin loop i to the i-th CPU (with --threads; Linux).
    #[arg(long)]
    pin: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Framing {
    /// One message per LF-terminated line (the seed's).
    Line,
    /// RFC 5425 / RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`.
    Octet,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Slow {
    /// Drop the oldest queued messages, count them, and tell the client.
    Drop,
    /// Disconnect the client.
    Disconnect,
}

/// Datagrams read per turn: a flood cannot starve the TLS side.
const UDP_BATCH: usize = 64;
/// Bytes handed to a client's stream per write.
const WRITE_BATCH: usize = 64 * 1024;
/// Messages waiting for the PUB socket beyond this are dropped (PUB drops at its HWM anyway).
const PUB_QUEUE: usize = 10_000;
/// Framed messages waiting for each other loop (with --threads).
const LOOP_QUEUE: usize = 16_384;

struct Client {
    stream: Stream<Relay>,
    peer: String,
    connected: bool,
    /// No write pending: the next message may be written at once.
    ready: bool,
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// Dropped since the client last caught up.
    dropped: u64,
    /// Messages written to it.
    sent: u64,
    /// It resumed (the resume protocol): it gets `<seq> <len> <msg>` frames.
    resume: bool,
    /// Waiting for its hello: the first sequence it is owed, the deadline, its bytes.
    hello: Option<(u64, WatcherId, BytesMut)>,
}

struct Relay {
    args: Args,
    clients: HashMap<u64, Client>,
    next_id: u64,
    listener: Option<Listener<Relay>>,
    /// The stream inputs (`--syslog-tls`, `--syslog-tcp`), and their senders.
    inputs: Vec<Listener<Relay>>,
    senders: HashMap<u64, Stream<Relay>>,
    publisher: Option<(ZmqWatcher, Outbox)>,
    udp: Option<(UdpSocket, WatcherId)>,
    buf: Vec<u8>,
    stopping: bool,
    /// Loop 0 with --threads: the other loops' queues.
    peers: Vec<LoopSender<Bytes>>,
    /// Messages another loop's full queue refused, since the last report.
    peer_dropped: u64,
    stats: Stats,
    ring: Option<Ring>,
}

/// A line on stderr, naming the loop when there are several (`relay-<i>`).
fn log(what: std::fmt::Arguments<'_>) {
    match std::thread::current().name() {
        Some(n) if n.starts_with("relay-") => eprintln!("syslog-relay: {n}: {what}"),
        _ => eprintln!("syslog-relay: {what}"),
    }
}

impl Relay {
    fn new(
        args: Args,
        listener: Listener<Relay>,
        publisher: Option<(ZmqWatcher, Outbox)>,
        udp: Option<(UdpSocket, WatcherId)>,
    ) -> Relay {
        Relay {
            args,
            clients: HashMap::new(),
            next_id: 0,
            listener: Some(listener),
            inputs: Vec::new(),
            senders: HashMap::new(),
            publisher,
            udp,
            buf: vec![0; 64 * 1024],
            stopping: false,
            peers: Vec::new(),
            peer_dropped: 0,
            stats: Stats::default(),
            ring: None,
        }
    }

    /// The stats line on stderr, and with `--zmq-stats` the JSON on the tap.
    fn report(&mut self) {
        let clients: Vec<ClientStats> = self
            .clients
            .values()
            .filter(|c| c.connected)
            .map(|c| ClientStats {
                peer: c.peer.clone(),
                sent: c.sent,
                queued: c.queue.len(),
            })
            .collect();
        log(format_args!("{}", self.stats.line(&clients)));
        if let (true, Some((w, out))) = (self.args.zmq_stats, &mut self.publisher) {
            out.push([
                stats::TOPIC.as_bytes(),
                self.stats.json(&clients).as_bytes(),
            ]);
            w.set_writable(true);
        }
    }

    fn frame(&self, msg: &[u8]) -> Bytes {
        let mut b = BytesMut::with_capacity(msg.len() + 8);
        match self.args.framing {
            Framing::Line => {
                b.put_slice(msg);
                b.put_u8(b'\n');
            }
            Framing::Octet => {
                b.put_slice(format!("{} ", msg.len()).as_bytes());
                b.put_slice(msg);
            }
        }
        b.freeze()
    }

    /// One syslog message to every connected client and the PUB socket.
    fn fan_out(&mut self, msg: &[u8], cx: &mut Ctx<Relay>) {
        let msg = msg.strip_suffix(b"\n").unwrap_or(msg);
        let frame = self.frame(msg);
        let seq_frame = self.ring.as_mut().map(|r| {
            let seq = r.push(Bytes::copy_from_slice(msg));
            replay::seq_frame(seq, msg)
        });
        for peer in &self.peers {
            if let Err(SendError::Full(_)) = peer.try_send(frame.clone()) {
                if self.peer_dropped == 0 {
                    log(format_args!(
                        "a loop is a whole queue behind; dropping for it"
                    ));
                }
                self.peer_dropped += 1;
                self.stats.loop_dropped += 1;
            }
        }
        self.deliver(frame, seq_frame, cx);
        if let Some((w, out)) = &mut self.publisher {
            if out.len() < PUB_QUEUE {
                out.push([msg]);
                w.set_writable(true);
            } else {
                self.stats.tap_dropped += 1;
            }
        }
    }

    /// One framed message to every client of this loop (resuming clients get
    /// `seq_frame`, the same message with its sequence number).
    fn deliver(&mut self, frame: Bytes, seq_frame: Option<Bytes>, cx: &mut Ctx<Relay>) {
        let ids: Vec<u64> = self.clients.keys().copied().collect();
        for id in ids {
            let resume = self.clients.get(&id).is_some_and(|c| c.resume);
            let f = match (&seq_frame, resume) {
                (Some(s), true) => s.clone(),
                _ => frame.clone(),
            };
            self.enqueue(id, f, cx);
        }
    }

    fn enqueue(&mut self, id: u64, frame: Bytes, cx: &mut Ctx<Relay>) {
        let (limit_m, limit_b, slow) = (
            self.args.queue_messages,
            self.args.queue_bytes,
            self.args.slow,
        );
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if !c.connected {
            return;
        }
        c.bytes += frame.len();
        c.queue.push_back(frame);
        while c.queue.len() > limit_m || c.bytes > limit_b {
            if slow == Slow::Disconnect {
                log(format_args!("{}: too slow, disconnecting", c.peer));
                self.stats.slow_disconnected += 1;
                c.stream.abort(cx);
                self.clients.remove(&id);
                return;
            }
            if let Some(old) = c.queue.pop_front() {
                c.bytes -= old.len();
                if c.dropped == 0 {
                    log(format_args!(
                        "{}: too slow, dropping oldest messages",
                        c.peer
                    ));
                }
                c.dropped += 1;
                self.stats.slow_dropped += 1;
            }
        }
        if c.ready {
            pump(c, &self.args, cx);
        }
    }

    /// Shutdown, `Ctx::shutdown`'s recipe: no new clients, no more input; every client
    /// gets what is queued, then close_notify; `run` returns when the last close is over,
    /// or after `--shutdown-timeout`. A second SIGINT/SIGTERM ends it at once.
    fn stop(&mut self, cx: &mut Ctx<Relay>) {
        if self.stopping {
            log(format_args!("stopping now"));
            return cx.stop_loop();
        }
        self.stopping = true;
        log(format_args!(
            "stopping: flushing {} clients",
            self.clients.len()
        ));
        if self.peer_dropped > 0 {
            log(format_args!(
                "{} messages dropped for loops that fell behind",
                self.peer_dropped
            ));
        }
        self.peers.clear(); // the other loops' queues end once drained
        self.listener = None;
        self.inputs.clear();
        self.senders.clear(); // no more input: the senders' connections close
        if let Some((_, w)) = self.udp.take() {
            cx.remove(w);
        }
        for (_, mut c) in self.clients.drain() {
            while let Some(f) = c.queue.pop_front() {
                c.stream.write_bytes(cx, f);
            }
            // Flushes, then close_notify (bounded by close_timeout); the loop keeps the
            // stream until that is over.
            let peer = c.peer;
            c.stream.close_then(cx, move |_: &mut Relay, _, closed| {
                if !matches!(closed, Closed::Flushed) {
                    log(format_args!("{peer}: {closed}"));
                }
            });
            c.stream.detach();
        }
        self.publisher = None;
        cx.shutdown(Duration::from_secs(self.args.shutdown_timeout));
    }
}

/// Publishes queued messages through the fair adapter.
struct Publisher;
impl ZmqHandler<Ctx<Relay>> for Publisher {
    fn writable(&mut self, s: &mut Sock<'_>, (relay, _): (&mut Relay, &mut Ctx<Relay>)) {
        if let Some((_, out)) = &mut relay.publisher {
            let _ = out.flush_one(s);
        } else {
            s.set_writable(false);
        }
    }
}

fn on_udp(relay: &mut Relay, cx: &mut Ctx<Relay>) {
    let mut buf = std::mem::take(&mut relay.buf);
    for _ in 0..UDP_BATCH {
        let Some((sock, _)) = &relay.udp else { break };
        match sock.recv(&mut buf) {
            Ok(n) => {
                relay.stats.received += 1;
                relay.fan_out(&buf[..n], cx)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                log(format_args!("udp: {e}"));
                break;
            }
        }
    }
    relay.buf = buf;
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let mut pem = ServerPem::new(&args.cert, &args.key)
        .client_ca(&args.ca, true)
        .tls12(args.tls12);
    if let Some(dn) = &args.issuer {
        pem = pem.issuer(dn); // checked in the handshake: a mismatch gets an alert
    }
    let cfg = pem.build()?;

    let udp = UdpSocket::bind(&args.syslog)?;
    udp.set_nonblocking(true)?;
    evnet::socket2::SockRef::from(&udp).set_recv_buffer_size(args.udp_rcvbuf)?;
    let udp_addr = udp.local_addr()?;

    let (host, port) = args
        .listen
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--listen HOST:PORT"))?;
    let socks = if args.threads > 1 {
        // Shards: the other loops bind beside these, on the port the first one got.
        let mut port: u16 = port.parse()?;
        let mut socks = Vec::new();
        for mut a in listen_addrs(Some(host), port)? {
            a.set_port(port);
            let s = bind_tcp_shard(a, evnet::socket::DEFAULT_BACKLOG)?;
            port = s.local_addr()?.as_socket().map_or(port, |a| a.port());
            socks.push(s);
        }
        socks
    } else {
        bind_tcp_all(Some(host), port.parse()?)?
    };
    let tls_addr = socks[0].local_addr()?.as_socket();
    // The first line says where it listens (tests and scripts read it).
    outln!(
        "listening: syslog udp {udp_addr}, tls {}",
        tls_addr.map(|a| a.to_string()).unwrap_or_default()
    );
    if args.threads > 1 {
        if args.syslog_tls.is_some() || args.syslog_tcp.is_some() || args.replay_messages > 0 {
            anyhow::bail!(
                "--syslog-tls, --syslog-tcp and --replay-messages take one loop (no --threads) for now"
            );
        }
        return on_loops::serve(args, cfg, udp, socks);
    }

    let mut ev = Loop::<Relay>::new()?;
    let udp_w = ev.io(udp.try_clone()?, IoInterest::READABLE, |relay, cx, _| {
        on_udp(relay, cx)
    });
    let mut inputs = Vec::new();
    for (addr, tls) in [
        (&args.syslog_tls, Some(cfg.clone())),
        (&args.syslog_tcp, None),
    ] {
        if let Some(addr) = addr {
            let kind = if tls.is_some() { "tls" } else { "tcp" };
            let (l, bound) = input::listen(&mut ev, addr, tls)?;
            log(format_args!("syslog-{kind} input on {bound}"));
            inputs.push(l);
        }
    }
    let listener = Listener::new(&mut ev, socks, move |relay: &mut Relay, cx, a| {
        accept(relay, cx, a, &cfg)
    });
    let publisher = publisher(&mut ev, &args)?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |relay: &mut Relay, cx, _| relay.stop(cx))?;
    }
    ev.signal(libc::SIGUSR1, |relay: &mut Relay, _, _| relay.report())?;
    stats_timer(&mut ev, &args);
    let ring =
        (args.replay_messages > 0).then(|| Ring::new(args.replay_messages, args.replay_bytes));
    let mut relay = Relay::new(args, listener, publisher, Some((udp, udp_w)));
    relay.inputs = inputs;
    relay.ring = ring;
    ev.run(&mut relay)?;
    log(format_args!("stopped"));
    Ok(())
}

/// The stats line every `--stats-interval` seconds (a repeating timer: it does not hold
/// the loop during a shutdown).
fn stats_timer(ev: &mut Loop<Relay>, args: &Args) {
    if args.stats_interval > 0 {
        let every = Duration::from_secs(args.stats_interval);
        ev.timer(every, Some(every), |relay: &mut Relay, _, _| relay.report());
    }
}

/// The PUB socket of `--zmq-pub`, on `ev`.
fn publisher(ev: &mut Loop<Relay>, args: &Args) -> anyhow::Result<Option<(ZmqWatcher, Outbox)>> {
    let Some(ep) = &args.zmq_pub else {
        return Ok(None);
    };
    if !stats::is_local_endpoint(ep) {
        log(format_args!(
            "warning: the ZeroMQ tap {ep} is reachable from other hosts, in clear text and \
             without authentication; keep it on ipc:// or a loopback address"
        ));
    }
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::PUB)?;
    s.set_linger(0)?;
    s.bind(ep)?;
    let w = ZmqWatcher::new(ev, s, Publisher)?;
    Ok(Some((w, Outbox::new())))
}

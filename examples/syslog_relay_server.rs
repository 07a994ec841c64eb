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
//! | resume/retry of the forwarding action     | the client reconnects forever (backoff)     |
//! | at-least-once with RELP                   | left out: a TLS write is not delivery       |
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
#[path = "syslog_relay/loops.rs"]
mod on_loops;
#[path = "util/until_signal.rs"]
mod until_signal;

use std::collections::{HashMap, VecDeque};
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use evnet::bufio::{Closed, Conn, Options, Stream, StreamEvent, StreamHandler};
use evnet::bytes::{BufMut, Bytes, BytesMut};
use evnet::ev::{Ctx, IoInterest, Loop, WatcherId};
use evnet::fair::{Outbox, Sock, ZmqHandler, ZmqWatcher};
use evnet::loops::{LoopSender, SendError};
use evnet::socket::{bind_tcp_all, bind_tcp_shard, listen_addrs, Accept, Listener};
use evnet::tls::{self, ServerPem, Session, TlsAcceptor};
use evnet::zmq;

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
    /// Also publish every message on a ZeroMQ PUB socket bound here.
    #[arg(long)]
    zmq_pub: Option<String>,
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
}

struct Relay {
    args: Args,
    clients: HashMap<u64, Client>,
    next_id: u64,
    listener: Option<Listener<Relay>>,
    publisher: Option<(ZmqWatcher, Outbox)>,
    udp: Option<(UdpSocket, WatcherId)>,
    buf: Vec<u8>,
    stopping: bool,
    /// Loop 0 with --threads: the other loops' queues.
    peers: Vec<LoopSender<Bytes>>,
    /// Messages another loop's full queue refused, since the last report.
    peer_dropped: u64,
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
            publisher,
            udp,
            buf: vec![0; 64 * 1024],
            stopping: false,
            peers: Vec::new(),
            peer_dropped: 0,
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
        for peer in &self.peers {
            if let Err(SendError::Full(_)) = peer.try_send(frame.clone()) {
                if self.peer_dropped == 0 {
                    log(format_args!(
                        "a loop is a whole queue behind; dropping for it"
                    ));
                }
                self.peer_dropped += 1;
            }
        }
        self.deliver(frame, cx);
        if let Some((w, out)) = &mut self.publisher {
            if out.len() < PUB_QUEUE {
                out.push([msg]);
                w.set_writable(true);
            }
        }
    }

    /// One framed message to every client of this loop.
    fn deliver(&mut self, frame: Bytes, cx: &mut Ctx<Relay>) {
        let ids: Vec<u64> = self.clients.keys().copied().collect();
        for id in ids {
            self.enqueue(id, frame.clone(), cx);
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

/// Writes the next batch of `c`'s queue; with nothing queued, `c` becomes ready (idle),
/// after telling it how many messages it lost, if any.
fn pump(c: &mut Client, args: &Args, cx: &mut Ctx<Relay>) {
    if c.queue.is_empty() && c.dropped > 0 {
        let notice = format!(
            "<46>1 - - syslog-relay - - - dropped {} messages: this client was too slow",
            c.dropped
        );
        log(format_args!("{}: caught up, {} dropped", c.peer, c.dropped));
        c.dropped = 0;
        let frame = match args.framing {
            Framing::Line => format!("{notice}\n"),
            Framing::Octet => format!("{} {notice}", notice.len()),
        };
        c.stream.write(cx, frame.as_bytes());
        c.ready = false;
        return;
    }
    let mut sent = 0;
    while sent < WRITE_BATCH {
        let Some(f) = c.queue.pop_front() else { break };
        c.bytes -= f.len();
        sent += f.len();
        c.stream.write_bytes(cx, f);
    }
    c.ready = sent == 0;
}

/// One client's stream handler.
struct Peer {
    id: u64,
    session: Session,
}

impl StreamHandler<Relay> for Peer {
    fn read(&mut self, c: &Conn<Relay>, _: Bytes, _: &mut Relay, cx: &mut Ctx<Relay>) {
        c.read_chunk(cx); // clients have nothing to say; their bytes are ignored
    }

    fn write(&mut self, _: &Conn<Relay>, relay: &mut Relay, cx: &mut Ctx<Relay>) {
        // The previous write has drained: the only place (with an idle client) that writes.
        let Relay { clients, args, .. } = relay;
        if let Some(c) = clients.get_mut(&self.id) {
            pump(c, args, cx);
        }
    }

    fn event(&mut self, c: &Conn<Relay>, e: StreamEvent, relay: &mut Relay, cx: &mut Ctx<Relay>) {
        let Some(client) = relay.clients.get_mut(&self.id) else {
            return;
        };
        match e {
            StreamEvent::Connected => {
                let who = self
                    .session
                    .peer_names()
                    .map(|n| n.subject)
                    .unwrap_or_default();
                client.peer = format!("{} ({who})", client.peer);
                client.connected = true;
                client.ready = true;
                log(format_args!("{}: connected", client.peer));
                return;
            }
            StreamEvent::Eof => log(format_args!("{}: disconnected", client.peer)),
            StreamEvent::Error(err) => match tls::Error::of(&err) {
                Some(t) => log(format_args!(
                    "{}: refused or failed: {}",
                    client.peer,
                    out::Chain(t)
                )),
                None => log(format_args!(
                    "{}: failed: {}",
                    client.peer,
                    out::Chain(&err)
                )),
            },
            other => log(format_args!("{}: {other:?}", client.peer)),
        }
        c.abort(cx);
        if let Some(gone) = relay.clients.remove(&self.id) {
            gone.stream.detach();
        }
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
            Ok(n) => relay.fan_out(&buf[..n], cx),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                log(format_args!("udp: {e}"));
                break;
            }
        }
    }
    relay.buf = buf;
}

fn accept(relay: &mut Relay, cx: &mut Ctx<Relay>, a: Accept, cfg: &Arc<rustls::ServerConfig>) {
    let Accept::Conn(c) = a else { return };
    let peer = c
        .peer
        .as_socket()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if relay.stopping || relay.clients.len() >= relay.args.max_clients {
        log(format_args!("{peer}: refused (client limit)"));
        return;
    }
    let _ = c.socket.set_send_buffer_size(relay.args.sndbuf);
    let _ = c.socket.set_nodelay(true); // a message goes out when written, not after an ACK
    let id = relay.next_id;
    relay.next_id += 1;
    let session = Session::default();
    let opts = Options {
        handshake_timeout: Some(Duration::from_secs(relay.args.handshake_timeout)),
        close_timeout: Some(Duration::from_secs(relay.args.shutdown_timeout)),
        ..Options::default()
    };
    let handler = Peer {
        id,
        session: session.clone(),
    };
    match TlsAcceptor::new(cfg.clone())
        .options(opts)
        .accept(cx, c.socket, &session, handler)
    {
        Ok(stream) => {
            stream.read_chunk(cx);
            relay.clients.insert(
                id,
                Client {
                    stream,
                    peer,
                    connected: false,
                    ready: false,
                    queue: VecDeque::new(),
                    bytes: 0,
                    dropped: 0,
                },
            );
        }
        Err(e) => log(format_args!("{peer}: {}", out::Chain(&e))),
    }
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
        return on_loops::serve(args, cfg, udp, socks);
    }

    let mut ev = Loop::<Relay>::new()?;
    let udp_w = ev.io(udp.try_clone()?, IoInterest::READABLE, |relay, cx, _| {
        on_udp(relay, cx)
    });
    let listener = Listener::new(&mut ev, socks, move |relay: &mut Relay, cx, a| {
        accept(relay, cx, a, &cfg)
    });
    let publisher = publisher(&mut ev, &args)?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        ev.signal(sig, |relay: &mut Relay, cx, _| relay.stop(cx))?;
    }
    let mut relay = Relay::new(args, listener, publisher, Some((udp, udp_w)));
    ev.run(&mut relay)?;
    log(format_args!("stopped"));
    Ok(())
}

/// The PUB socket of `--zmq-pub`, on `ev`.
fn publisher(ev: &mut Loop<Relay>, args: &Args) -> anyhow::Result<Option<(ZmqWatcher, Outbox)>> {
    let Some(ep) = &args.zmq_pub else {
        return Ok(None);
    };
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::PUB)?;
    s.set_linger(0)?;
    s.bind(ep)?;
    let w = ZmqWatcher::new(ev, s, Publisher)?;
    Ok(Some((w, Outbox::new())))
}

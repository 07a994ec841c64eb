//! Syslog into the relay over a stream, besides UDP: `--syslog-tls ADDR` (RFC 5425, the
//! senders authenticated by `--ca` and `--issuer`, as clients are) and `--syslog-tcp ADDR`
//! (RFC 6587). Each frame is octet-counted (`LEN SP MSG`, what RFC 5425 requires) or, when
//! it does not start with a digit, one LF-terminated line (RFC 6587's non-transparent
//! framing, rsyslog's `TCP_Framing="traditional"`), decided frame by frame as rsyslog's
//! imtcp does. Every message goes out as a UDP one does.
//!
//! A sender is read at the relay's pace (bufio's read watermarks: what is not read stays
//! in the kernel, and TCP pushes back); a malformed frame (a bad count, a line over 64 KiB)
//! closes that sender alone.

use std::sync::Arc;
use std::time::Duration;

use evnet::bufio::{Conn, Options, Stream, StreamEvent, StreamHandler};
use evnet::bytes::{Buf, Bytes, BytesMut};
use evnet::ev::Ctx;
use evnet::socket::{bind_tcp_all, Accept, Listener};
use evnet::tls::{self, rustls, Session, TlsAcceptor};

use super::{log, octet, out, Relay};

/// Longest message taken from a stream sender.
const MAX_MESSAGE: usize = 64 * 1024;

/// Binds `addr` for stream senders (TLS with `tls`, plain TCP without) and accepts them
/// on `relay`'s loop; the listener and its address.
pub fn listen(
    ev: &mut evnet::ev::Loop<Relay>,
    addr: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<(Listener<Relay>, String)> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("{addr}: HOST:PORT"))?;
    let socks = bind_tcp_all(Some(host), port.parse()?)?;
    let bound = socks[0]
        .local_addr()?
        .as_socket()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let l = Listener::new(ev, socks, move |relay: &mut Relay, cx, a| {
        accept(relay, cx, a, tls.clone())
    });
    Ok((l, bound))
}

fn accept(
    relay: &mut Relay,
    cx: &mut Ctx<Relay>,
    a: Accept,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let Accept::Conn(c) = a else { return };
    let peer = c
        .peer
        .as_socket()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if relay.stopping {
        return;
    }
    let id = relay.next_id;
    relay.next_id += 1;
    let handler = Sender {
        id,
        peer: peer.clone(),
        pending: BytesMut::new(),
    };
    let opts = Options {
        handshake_timeout: Some(Duration::from_secs(relay.args.handshake_timeout)),
        ..Options::default()
    };
    let stream = match tls {
        Some(cfg) => TlsAcceptor::new(cfg)
            .options(opts)
            .accept(cx, c.socket, &Session::default(), handler)
            .map_err(|e| out::Chain(&e).to_string()),
        None => Stream::with_options(cx, c.socket, opts, handler).map_err(|e| e.to_string()),
    };
    match stream {
        Ok(s) => {
            s.read_chunk(cx);
            relay.senders.insert(id, s);
        }
        Err(e) => log(format_args!("sender {peer}: {e}")),
    }
}

/// One stream sender's handler: frames cut out of what it sends.
struct Sender {
    id: u64,
    peer: String,
    pending: BytesMut,
}

impl Sender {
    /// The next whole message in `pending`, octet-counted or a line.
    fn next(&mut self) -> Result<Option<BytesMut>, &'static str> {
        match self.pending.first() {
            None => Ok(None),
            Some(b) if b.is_ascii_digit() => octet::next_frame(&mut self.pending, MAX_MESSAGE),
            Some(_) => match self.pending.iter().position(|&b| b == b'\n') {
                Some(lf) => {
                    let mut line = self.pending.split_to(lf);
                    self.pending.advance(1);
                    if line.last() == Some(&b'\r') {
                        line.truncate(line.len() - 1);
                    }
                    Ok(Some(line))
                }
                None if self.pending.len() > MAX_MESSAGE => Err("a line over 64 KiB"),
                None => Ok(None),
            },
        }
    }
}

impl StreamHandler<Relay> for Sender {
    fn read(&mut self, c: &Conn<Relay>, data: Bytes, relay: &mut Relay, cx: &mut Ctx<Relay>) {
        self.pending.extend_from_slice(&data);
        loop {
            match self.next() {
                Ok(Some(msg)) if msg.is_empty() => {} // an empty line: nothing to relay
                Ok(Some(msg)) => {
                    relay.stats.received += 1;
                    relay.fan_out(&msg, cx);
                }
                Ok(None) => break,
                Err(e) => {
                    log(format_args!("sender {}: {e}; closing it", self.peer));
                    c.abort(cx);
                    if let Some(s) = relay.senders.remove(&self.id) {
                        s.detach();
                    }
                    return;
                }
            }
        }
        c.read_chunk(cx);
    }

    fn event(&mut self, c: &Conn<Relay>, e: StreamEvent, relay: &mut Relay, cx: &mut Ctx<Relay>) {
        match e {
            StreamEvent::Connected => {
                log(format_args!("sender {}: connected", self.peer));
                return;
            }
            StreamEvent::Eof => log(format_args!("sender {}: done", self.peer)),
            StreamEvent::Error(err) => match tls::Error::of(&err) {
                Some(t) => log(format_args!(
                    "sender {}: refused or failed: {}",
                    self.peer,
                    out::Chain(t)
                )),
                None => log(format_args!(
                    "sender {}: failed: {}",
                    self.peer,
                    out::Chain(&err)
                )),
            },
            other => log(format_args!("sender {}: {other:?}", self.peer)),
        }
        c.abort(cx);
        if let Some(s) = relay.senders.remove(&self.id) {
            s.detach();
        }
    }
}

//! The server's side of each TLS client: accepting it, its stream handler, and the one
//! writer of its queue (`pump`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use evnet::bufio::{Conn, Options, StreamEvent, StreamHandler};
use evnet::bytes::Bytes;
use evnet::ev::Ctx;
use evnet::socket::Accept;
use evnet::tls::{self, rustls, Session, TlsAcceptor};

use super::{log, out, Args, Client, Framing, Relay, WRITE_BATCH};

/// Writes the next batch of `c`'s queue; with nothing queued, `c` becomes ready (idle),
/// after telling it how many messages it lost, if any.
pub fn pump(c: &mut Client, args: &Args, cx: &mut Ctx<Relay>) {
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
        c.sent += 1;
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
                relay.stats.connections += 1;
                return;
            }
            StreamEvent::Eof => log(format_args!("{}: disconnected", client.peer)),
            StreamEvent::Error(err) => match tls::Error::of(&err) {
                Some(t) if !client.connected => {
                    relay.stats.refused += 1;
                    log(format_args!(
                        "{}: refused or failed: {}",
                        client.peer,
                        out::Chain(t)
                    ))
                }
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

pub fn accept(relay: &mut Relay, cx: &mut Ctx<Relay>, a: Accept, cfg: &Arc<rustls::ServerConfig>) {
    let Accept::Conn(c) = a else { return };
    let peer = c
        .peer
        .as_socket()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if relay.stopping || relay.clients.len() >= relay.args.max_clients {
        log(format_args!("{peer}: refused (client limit)"));
        relay.stats.refused += 1;
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
                    sent: 0,
                },
            );
        }
        Err(e) => log(format_args!("{peer}: {}", out::Chain(&e))),
    }
}

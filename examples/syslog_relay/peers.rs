//! The server's side of each TLS client: accepting it, its stream handler, and the one
//! writer of its queue (`pump`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use evnet::bufio::{Conn, Options, StreamEvent, StreamHandler};
use evnet::bytes::{Bytes, BytesMut};
use evnet::ev::Ctx;
use evnet::socket::Accept;
use evnet::tls::{self, rustls, Session, TlsAcceptor};

use super::replay::{self, Hello};
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
        let frame = match (c.resume, args.framing) {
            // Sequence 0: a notice, not a message (a resuming client does not record it).
            (true, _) => replay::seq_frame(0, notice.as_bytes()),
            (false, Framing::Line) => Bytes::from(format!("{notice}\n")),
            (false, Framing::Octet) => Bytes::from(format!("{} {notice}", notice.len())),
        };
        c.stream.write_bytes(cx, frame);
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
    fn read(&mut self, c: &Conn<Relay>, data: Bytes, relay: &mut Relay, cx: &mut Ctx<Relay>) {
        // Clients have nothing to say but a resume hello; other bytes are ignored.
        c.read_chunk(cx);
        let Some(client) = relay.clients.get_mut(&self.id) else {
            return;
        };
        let Some((_, _, buf)) = &mut client.hello else {
            return;
        };
        buf.extend_from_slice(&data);
        match replay::parse_hello(buf) {
            Hello::Incomplete => {}
            Hello::Other => start_serving(relay, cx, self.id, None),
            Hello::Resume(epoch, seq) => start_serving(relay, cx, self.id, Some((epoch, seq))),
        }
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
                log(format_args!("{}: connected", client.peer));
                relay.stats.connections += 1;
                match &relay.ring {
                    // With a ring: served once its hello comes, or its wait is over.
                    Some(ring) => {
                        let id = self.id;
                        let wait = Duration::from_millis(relay.args.hello_wait_ms);
                        let t = cx.timer(wait, None, move |relay: &mut Relay, cx, _| {
                            start_serving(relay, cx, id, None)
                        });
                        client.hello = Some((ring.next_seq, t, BytesMut::new()));
                    }
                    None => {
                        client.connected = true;
                        client.ready = true;
                    }
                }
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
            if let Some((_, t, _)) = gone.hello {
                cx.remove(t);
            }
            gone.stream.detach();
        }
    }
}

/// The hello wait of client `id` is over: serve it, resuming after `(epoch, last_seq)`
/// when it sent a hello, else as a plain client from where it connected. What the ring
/// holds of that goes first, then the live stream.
fn start_serving(relay: &mut Relay, cx: &mut Ctx<Relay>, id: u64, hello: Option<(u64, u64)>) {
    let Some(client) = relay.clients.get_mut(&id) else {
        return;
    };
    let Some((since, timer, _)) = client.hello.take() else {
        return;
    };
    cx.remove(timer);
    let Some(ring) = &relay.ring else { return };
    let from = match hello {
        Some((epoch, last)) if epoch == ring.epoch => last + 1,
        Some(_) => 1, // another server's history: everything this one holds
        None => since,
    };
    let (backlog, missed) = ring.since(from);
    let epoch = ring.epoch;
    client.connected = true;
    client.resume = hello.is_some();
    if client.resume {
        log(format_args!(
            "{}: resumes after {from}: {} to replay, {missed} missed",
            client.peer,
            backlog.len()
        ));
        client.stream.write(
            cx,
            format!("{}{epoch} {missed}\n", replay::MAGIC).as_bytes(),
        );
        client.ready = false; // the answer is the write in progress
    } else {
        client.ready = true;
    }
    relay.stats.replayed += backlog.len() as u64;
    for (seq, msg) in backlog {
        let frame = if hello.is_some() {
            replay::seq_frame(seq, &msg)
        } else {
            relay.frame(&msg)
        };
        relay.enqueue(id, frame, cx);
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
                    resume: false,
                    hello: None,
                },
            );
        }
        Err(e) => log(format_args!("{peer}: {}", out::Chain(&e))),
    }
}

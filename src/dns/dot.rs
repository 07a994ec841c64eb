//! DNS over TLS (RFC 7858) on the loop: one TLS connection per server, shared by every
//! query to it and pipelined (each query framed with its 2-byte length, RFC 1035 §4.2.2;
//! answers matched by id and question, in any order), closed after an idle while, made
//! again on demand (resuming the TLS session: each server keeps one rustls configuration,
//! and with it rustls's session cache).
//!
//! A connection that ends with queries in flight sends them again once on a new
//! connection (a server may close whenever it likes, RFC 7766 §6.2.3); a second loss is a
//! failed attempt for that server. Each query keeps its own deadline, as over UDP.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::pending::Transport;
use super::resolver::{Inner, Resolver};
use super::{wire, Error, Privacy, TlsProfile};
use crate::bufio::{self, Conn, Options, Stream, StreamEvent};
use crate::ev::{Ctx, WatcherId};
use crate::socket::{ConnectOptions, NoLookup};
use crate::tls::{self, Session, TlsConnector};

/// How long an opportunistic resolver asks in the clear after a server's TLS failed.
const CLEAR_FOR: Duration = Duration::from_secs(60);

/// A server's client configuration and the check behind it (to tell, after an
/// unchecked handshake, whether the server authenticated).
type Built = Result<(Arc<rustls::ClientConfig>, Arc<tls::ServerCheck>), tls::Error>;

/// One DNS-over-TLS server's state: its configuration (built once), its connection.
pub(super) struct DotSlot<S: 'static> {
    config: Option<Built>,
    conn: Option<DotConn<S>>,
    generation: u64,
    /// When a connection to it last failed before its handshake ended.
    failed_at: Option<Instant>,
    /// Connections made, and how many of them resumed a session.
    pub(super) connections: u64,
    pub(super) resumed: u64,
}

impl<S: 'static> Default for DotSlot<S> {
    fn default() -> DotSlot<S> {
        DotSlot {
            config: None,
            conn: None,
            generation: 0,
            failed_at: None,
            connections: 0,
            resumed: 0,
        }
    }
}

impl<S: 'static> DotSlot<S> {
    /// Queries waiting for an answer on its connection.
    pub(super) fn in_flight(&self) -> usize {
        self.conn.as_ref().map_or(0, |c| c.in_flight.len())
    }

    /// Whether its connection is up (or being made).
    pub(super) fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// Drops its connection (which closes it) and gives back its idle check, for the
    /// caller to take off the loop.
    pub(super) fn close(&mut self) -> Option<WatcherId> {
        self.conn.take().map(|c| c.idle)
    }

    /// Forgets query `id` of connection `generation` (it timed out, was cancelled or
    /// moved on).
    pub(super) fn forget(&mut self, id: u16, generation: u64) {
        if let Some(c) = self.conn.as_mut().filter(|c| c.generation == generation) {
            c.in_flight.remove(&id);
        }
    }
}

struct DotConn<S: 'static> {
    stream: Stream<S>,
    session: Session,
    generation: u64,
    /// Set when the handshake is over.
    privacy: Option<Privacy>,
    in_flight: HashMap<u16, u64>,
    last_used: Instant,
    /// When it last delivered a message (made: when it was made).
    last_heard: Instant,
    idle: WatcherId,
}

/// What a send over TLS did.
pub(super) enum Sent {
    /// Written (or queued behind the handshake).
    Tls,
    /// The opportunistic profile asks in the clear instead.
    Clear,
}

impl<S: 'static> Resolver<S> {
    /// Sends lookup `key`'s question to its next TLS server, connecting first if needed.
    pub(super) fn send_tls(&self, cx: &mut Ctx<S>, key: u64) -> Result<Sent, Error> {
        let mut g = self.inner.borrow_mut();
        let g = &mut *g;
        let opportunistic = g.config.tls_profile == TlsProfile::Opportunistic;
        let can_clear = opportunistic && !g.config.servers.is_empty();
        let mix = g.config.case_randomization;
        let Some(server) = g.pick(key, true) else {
            return Ok(Sent::Tls);
        };
        let timeout = g.attempt_timeout(key, server, true);
        let connect_timeout = g.config.timeout;
        let Some(p) = g.queries.get_mut(&key) else {
            return Ok(Sent::Tls);
        };
        let spec = &g.config.tls_servers[server];
        p.server = spec.addr;
        let slot = &mut g.dot[server];
        if can_clear && slot.failed_at.is_some_and(|t| t.elapsed() < CLEAR_FOR) {
            p.sent_at = None; // not an attempt at this server
            return Ok(Sent::Clear);
        }
        let (config, _) = slot
            .config
            .get_or_insert_with(|| {
                let check = Arc::new(tls::ServerCheck::new(spec.ca.as_deref(), &spec.spki_pins)?);
                if !opportunistic && !check.can_authenticate() {
                    return Err(tls::Error::Incomplete {
                        option: "strict DNS over TLS",
                        missing: "a CA file or an SPKI pin for the server",
                    });
                }
                Ok((
                    tls::checked_client_config(check.clone(), !opportunistic)?,
                    check,
                ))
            })
            .clone()
            .map_err(Error::Tls)?;
        if slot.conn.is_none() {
            slot.generation += 1;
            slot.connections += 1;
            let copts = ConnectOptions {
                timeout: Some(connect_timeout),
                ..ConnectOptions::default()
            };
            let under = Stream::connect(
                cx,
                &NoLookup,
                spec.addr,
                copts,
                tls::under_options(),
                tls::Plain,
            );
            let session = Session::default();
            let handler = DotAnswers {
                inner: Rc::downgrade(&self.inner),
                server,
                generation: slot.generation,
                len: None,
            };
            let stream = TlsConnector::new(config)
                // Every answer is length-framed: a cut-off one is never taken, so an end
                // without close_notify loses nothing (servers close idle connections so).
                .allow_dirty_shutdown(true)
                .options(Options {
                    handshake_timeout: Some(connect_timeout),
                    ..Options::default()
                })
                .wrap(cx, under, &spec.name, &session, handler)
                .map_err(Error::Tls)?;
            stream.read_exact(cx, 2);
            let idle = idle_timer(
                cx,
                Rc::downgrade(&self.inner),
                server,
                slot.generation,
                g.config.tls_idle_timeout,
            );
            slot.conn = Some(DotConn {
                stream,
                session,
                generation: slot.generation,
                privacy: None,
                in_flight: HashMap::new(),
                last_used: Instant::now(),
                last_heard: Instant::now(),
                idle,
            });
        }
        let Some(conn) = slot.conn.as_mut() else {
            return Ok(Sent::Tls);
        };
        let id = loop {
            let id = super::random::u16();
            if !conn.in_flight.contains_key(&id) {
                break id;
            }
        };
        p.id = id;
        p.wire_name = if mix {
            wire::mix_case(&p.qname)
        } else {
            p.qname.clone()
        };
        let bytes = wire::encode(p.id, &p.wire_name, p.rtype, p.edns, None)?;
        conn.stream.write(cx, &wire::framed(&bytes));
        conn.in_flight.insert(id, key);
        conn.last_used = Instant::now();
        p.transport = Transport::Dot {
            server,
            id,
            generation: conn.generation,
        };
        let weak = Rc::downgrade(&self.inner);
        let sent = Instant::now();
        p.timer = Some(cx.timer(timeout, None, move |st, cx, _| {
            if let Some(inner) = weak.upgrade() {
                Resolver { inner }.on_tls_timeout(st, cx, key, sent);
            }
        }));
        Ok(Sent::Tls)
    }

    /// Lookup `key`'s query, written at `sent`, timed out. If its connection has
    /// delivered nothing since, the connection is stalled: it is dropped, and every query
    /// on it fails this attempt (the next one makes a new connection). Otherwise only this
    /// query failed.
    fn on_tls_timeout(&self, st: &mut S, cx: &mut Ctx<S>, key: u64, sent: Instant) {
        let stalled = {
            let g = self.inner.borrow();
            let on = g.queries.get(&key).and_then(|p| match p.transport {
                Transport::Dot {
                    server, generation, ..
                } => Some((server, generation)),
                _ => None,
            });
            on.filter(|&(server, generation)| {
                g.dot[server]
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.generation == generation && c.last_heard <= sent)
            })
        };
        match stalled {
            Some((server, generation)) => {
                self.on_tls_lost(st, cx, server, generation, Error::Timeout);
            }
            None => self.server_failed(st, cx, key, Error::Timeout),
        }
    }

    /// A whole message arrived on server `server`'s connection `generation`.
    fn on_tls_answer(
        &self,
        st: &mut S,
        cx: &mut Ctx<S>,
        server: usize,
        generation: u64,
        data: &[u8],
    ) {
        let Some(id) = data.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return;
        };
        let found = {
            let mut g = self.inner.borrow_mut();
            let g = &mut *g;
            let exact = g.config.case_randomization;
            let Some(conn) = g
                .dot
                .get_mut(server)
                .and_then(|s| s.conn.as_mut())
                .filter(|c| c.generation == generation)
            else {
                return;
            };
            // An id nobody waits for (a late answer to a query gone): ignored.
            let Some(key) = conn.in_flight.remove(&id) else {
                return;
            };
            conn.last_used = Instant::now();
            conn.last_heard = conn.last_used;
            let privacy = conn.privacy.unwrap_or(Privacy::Encrypted);
            let Some(p) = g.queries.get(&key) else {
                return;
            };
            let ours = matches!(p.transport, Transport::Dot { server: s, id: i, generation: n }
                if s == server && i == id && n == generation);
            if !ours {
                return;
            }
            (
                key,
                privacy,
                wire::check(data, id, &p.wire_name, p.rtype, exact),
            )
        };
        match found {
            (key, privacy, Some(m)) => self.on_message(st, cx, key, &m, privacy, true),
            (key, _, None) => self.server_failed(
                st,
                cx,
                key,
                Error::Malformed("answer over TLS not for this query".into()),
            ),
        }
    }

    /// The handshake of server `server`'s connection is over.
    fn on_tls_connected(&self, server: usize, generation: u64) {
        let mut g = self.inner.borrow_mut();
        let g = &mut *g;
        let strict = g.config.tls_profile == TlsProfile::Strict;
        let name = g.config.tls_servers.get(server).map(|s| s.name.clone());
        let Some(slot) = g.dot.get_mut(server) else {
            return;
        };
        let check = match &slot.config {
            Some(Ok((_, check))) => check.clone(),
            _ => return,
        };
        let Some(conn) = slot.conn.as_mut().filter(|c| c.generation == generation) else {
            return;
        };
        let negotiated = conn.session.negotiated();
        let resumed = negotiated.as_ref().is_some_and(|n| n.resumed);
        let authenticated = strict
            || negotiated.as_ref().is_some_and(|n| {
                check.authenticates(&n.peer_chain, name.as_deref().unwrap_or_default())
            });
        conn.privacy = Some(if authenticated {
            Privacy::Authenticated
        } else {
            Privacy::Encrypted
        });
        slot.failed_at = None;
        slot.resumed += u64::from(resumed);
    }

    /// Server `server`'s connection `generation` ended with `err`: each query in flight on
    /// it goes again once (on a new connection, or in the clear when the opportunistic
    /// profile lost TLS itself), else the server failed it.
    fn on_tls_lost(&self, st: &mut S, cx: &mut Ctx<S>, server: usize, generation: u64, err: Error) {
        let (keys, to_clear) = {
            let mut g = self.inner.borrow_mut();
            let g = &mut *g;
            let can_clear =
                g.config.tls_profile == TlsProfile::Opportunistic && !g.config.servers.is_empty();
            let Some(slot) = g.dot.get_mut(server) else {
                return;
            };
            let Some(conn) = slot.conn.take_if(|c| c.generation == generation) else {
                return;
            };
            cx.remove(conn.idle);
            let handshaken = conn.privacy.is_some();
            if !handshaken {
                slot.failed_at = Some(Instant::now());
            }
            let mut keys: Vec<u64> = conn.in_flight.values().copied().collect();
            keys.sort_unstable();
            drop(conn); // closes its stream, if the server has not
            (keys, can_clear && !handshaken)
        };
        for key in keys {
            let again = {
                let mut g = self.inner.borrow_mut();
                let Some(p) = g.queries.get_mut(&key) else {
                    continue;
                };
                p.transport = Transport::Idle;
                if to_clear {
                    p.clear = true;
                    p.tried = 0;
                    p.order.clear();
                    true
                } else if !p.resent && matches!(err, Error::Io(_)) {
                    p.resent = true;
                    true
                } else {
                    false
                }
            };
            if again {
                self.send(st, cx, key);
            } else {
                self.server_failed(st, cx, key, err.clone());
            }
        }
    }

    /// The idle check of server `server`'s connection: closes it (`close_notify`, then
    /// the socket) once it has carried nothing for `idle`.
    fn on_tls_idle(&self, cx: &mut Ctx<S>, server: usize, generation: u64, idle: Duration) {
        let mut g = self.inner.borrow_mut();
        let Some(slot) = g.dot.get_mut(server) else {
            return;
        };
        let quiet = slot.conn.as_ref().is_some_and(|c| {
            c.generation == generation && c.in_flight.is_empty() && c.last_used.elapsed() >= idle
        });
        if !quiet {
            return;
        }
        if let Some(conn) = slot.conn.take() {
            cx.remove(conn.idle);
            conn.stream.close(cx);
            conn.stream.detach();
        }
    }
}

/// A repeating check, four times per idle period: a connection closes between `idle`
/// and 1¼ `idle` after its last query or answer.
fn idle_timer<S: 'static>(
    cx: &mut Ctx<S>,
    inner: Weak<RefCell<Inner<S>>>,
    server: usize,
    generation: u64,
    idle: Duration,
) -> WatcherId {
    let every = (idle / 4).max(Duration::from_millis(1));
    cx.timer(every, Some(every), move |_, cx, _| {
        if let Some(inner) = inner.upgrade() {
            Resolver { inner }.on_tls_idle(cx, server, generation, idle);
        }
    })
}

/// The handler of a server's TLS connection: a 2-byte length, then a message, again.
struct DotAnswers<S: 'static> {
    inner: Weak<RefCell<Inner<S>>>,
    server: usize,
    generation: u64,
    len: Option<usize>,
}

impl<S: 'static> bufio::StreamHandler<S> for DotAnswers<S> {
    fn read(&mut self, c: &Conn<S>, data: Bytes, st: &mut S, cx: &mut Ctx<S>) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let r = Resolver { inner };
        match self.len.take() {
            None => match wire::frame_length(&data) {
                Some(n) => {
                    self.len = Some(n);
                    c.read_exact(cx, n);
                }
                None => {
                    // Not a DNS message: the connection cannot be trusted to frame the
                    // next one either.
                    c.abort(cx);
                    let e = Error::Malformed("message over TLS shorter than a header".into());
                    r.on_tls_lost(st, cx, self.server, self.generation, e);
                }
            },
            Some(_) => {
                c.read_exact(cx, 2);
                r.on_tls_answer(st, cx, self.server, self.generation, &data);
            }
        }
    }

    fn event(&mut self, _: &Conn<S>, e: StreamEvent, st: &mut S, cx: &mut Ctx<S>) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let r = Resolver { inner };
        if matches!(e, StreamEvent::Connected) {
            return r.on_tls_connected(self.server, self.generation);
        }
        let err = match e {
            StreamEvent::ReadTimeout | StreamEvent::WriteTimeout => Error::Timeout,
            StreamEvent::Error(e) => match tls::Error::of(&e) {
                Some(t) => Error::Tls(t.clone()),
                None => match e {
                    bufio::Error::Io(io) => Error::from(io),
                    bufio::Error::HandshakeTimeout(_) => Error::Timeout,
                    other => Error::from(std::io::Error::other(other)),
                },
            },
            _ => Error::from(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the TLS connection",
            )),
        };
        r.on_tls_lost(st, cx, self.server, self.generation, err);
    }
}

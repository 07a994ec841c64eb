//! A query over UDP: a socket of its own per attempt (a fresh source port), connected to
//! the server, read a bounded number of datagrams per turn.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::pending::Transport;
use super::resolver::Resolver;
use hickory_proto::op::{Message, ResponseCode};

use super::cookies::Verdict;
use super::{wire, Error, Privacy};
use crate::ev::{Ctx, IoInterest};

/// Datagrams one query's socket reads per loop turn, as every other service bounds its
/// turn (bufio's reads, the pool's results, a ZeroMQ budget).
const DATAGRAMS_PER_TURN: usize = 64;

impl<S: 'static> Resolver<S> {
    /// Sends the current question to the next server, over UDP from a socket of its own.
    pub(super) fn send_udp(&self, cx: &mut Ctx<S>, key: u64) -> Result<(), Error> {
        let mut g = self.inner.borrow_mut();
        let g = &mut *g;
        let mix = g.config.case_randomization;
        let Some(index) = g.pick(key, false) else {
            return match g.queries.contains_key(&key) {
                true => Err(Error::NoServers),
                false => Ok(()),
            };
        };
        let timeout = g.attempt_timeout(key, index, false);
        let Some(p) = g.queries.get_mut(&key) else {
            return Ok(());
        };
        let Some(&server) = p.config.servers.get(index) else {
            return Err(Error::NoServers);
        };
        p.server = server;
        p.id = random_id();
        p.wire_name = if mix {
            wire::mix_case(&p.qname)
        } else {
            p.qname.clone()
        };
        // DNS cookies ride on EDNS (RFC 7873): ours, and the server's last one.
        p.sent_cookie = p.edns && p.config.cookies;
        let cookie = p.sent_cookie.then(|| g.cookies.option(server));
        let bytes = wire::encode(p.id, &p.wire_name, p.rtype, p.edns, cookie)?;
        // A fresh socket per query, so a fresh source port: `connect` binds it to an
        // ephemeral port, which the kernel picks at random (as it does for a bind to port
        // 0). Made non-blocking by `socket` itself where the kernel can.
        let domain = socket2::Domain::for_address(p.server);
        let sock = UdpSocket::from(crate::socket::nonblocking_dgram(domain)?);
        sock.connect(p.server)?;
        // A send the kernel refuses at once (no route, a refusal already queued) is a
        // failed attempt, reported on the next turn like an ICMP error after the send.
        if let Err(e) = sock.send(&bytes) {
            if !is_transient(&e) {
                let err = Error::from(e);
                p.timer = Some(self.next_turn(cx, key, move |r, st, cx| {
                    r.server_failed(st, cx, key, err.clone())
                }));
                return Ok(());
            }
        }
        let weak = Rc::downgrade(&self.inner);
        let w = cx.io_raw(sock.as_raw_fd(), IoInterest::READABLE, move |st, cx, _| {
            if let Some(inner) = weak.upgrade() {
                Resolver { inner }.on_udp(st, cx, key);
            }
        })?;
        p.transport = Transport::Udp(sock, w);
        let weak = Rc::downgrade(&self.inner);
        p.timer = Some(cx.timer(timeout, None, move |st, cx, _| {
            if let Some(inner) = weak.upgrade() {
                Resolver { inner }.server_failed(st, cx, key, Error::Timeout);
            }
        }));
        Ok(())
    }

    /// The query's socket is readable: reads up to [`DATAGRAMS_PER_TURN`] datagrams,
    /// looking for the answer; the rest wait for the next turn (the watcher is
    /// level-triggered), so a flood of junk from the server's address cannot hold the loop.
    fn on_udp(&self, st: &mut S, cx: &mut Ctx<S>, key: u64) {
        let mut buf = [0u8; 4096];
        for _ in 0..DATAGRAMS_PER_TURN {
            match self.read_datagram(key, &mut buf) {
                Datagram::Drained => return,
                Datagram::NotOurs => continue,
                // An ICMP error on the connected socket (port unreachable, host or network
                // unreachable): a failed attempt for this server, at once, as glibc and
                // c-ares count it, not a wait for the timeout.
                Datagram::Refused(e) => return self.server_failed(st, cx, key, e),
                // Our cookie came back with the server's new one: ask again with it.
                Datagram::BadCookie => return self.send(st, cx, key),
                // Never use a truncated answer, nor an answer without the cookie a server
                // that does cookies must send (an off-path forger cannot reach TCP): the
                // same question over TCP.
                Datagram::AskOverTcp => return self.send_tcp(cx, key),
                Datagram::Answer(m) => {
                    return self.on_message(st, cx, key, &m, Privacy::Clear, true)
                }
            }
        }
    }

    /// Reads one datagram from lookup `key`'s socket and says what it is.
    fn read_datagram(&self, key: u64, buf: &mut [u8]) -> Datagram {
        let mut g = self.inner.borrow_mut();
        let g = &mut *g;
        let Some(p) = g.queries.get_mut(&key) else {
            return Datagram::Drained;
        };
        let Transport::Udp(sock, _) = &p.transport else {
            return Datagram::Drained;
        };
        let n = match sock.recv_from(buf) {
            Ok((n, from)) if from == p.server => n,
            Ok(_) => return Datagram::NotOurs, // another source
            Err(e) if is_transient(&e) => return Datagram::Drained,
            Err(e) => return Datagram::Refused(Error::from(e)),
        };
        let exact = p.config.case_randomization;
        let Some(m) = wire::check(&buf[..n], p.id, &p.wire_name, p.rtype, exact) else {
            return Datagram::NotOurs; // another id or question
        };
        let verdict = match p.sent_cookie {
            true => g.cookies.check(p.server, &m),
            false => Verdict::Good,
        };
        match verdict {
            // The id and question matched, the cookie did not: forged.
            Verdict::Forged => Datagram::NotOurs,
            Verdict::Missing => Datagram::AskOverTcp,
            Verdict::Good if m.metadata.truncation => Datagram::AskOverTcp,
            Verdict::Good
                if m.metadata.response_code == ResponseCode::BADCOOKIE && !p.cookie_retried =>
            {
                p.cookie_retried = true;
                Datagram::BadCookie
            }
            Verdict::Good => Datagram::Answer(m),
        }
    }
}

/// What one datagram on a query's socket was.
enum Datagram {
    /// Nothing (more) to read now, or the lookup is gone.
    Drained,
    /// Not an answer to this query: from elsewhere, another id or question, or forged.
    NotOurs,
    /// The kernel reported the server unreachable.
    Refused(Error),
    /// BADCOOKIE with our cookie, the first time: ask again.
    BadCookie,
    /// Truncated, or without the cookie expected: the question again over TCP.
    AskOverTcp,
    Answer(Message),
}

/// A socket error that says "nothing now", not "this server failed".
fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

fn random_id() -> u16 {
    super::random::u16()
}

//! DNS cookies (RFC 7873, with RFC 9018's server cookies): each UDP query carries a
//! client cookie (8 random bytes per server, kept for the resolver's life) and the
//! server's last cookie; an answer must echo the client cookie. That is 64 more bits an
//! off-path forger has to guess, beyond the id, the source port and the 0x20 case bits.
//!
//! | the answer... | then |
//! |---|---|
//! | echoes our client cookie | taken; its server cookie is kept for the next query |
//! | carries another client cookie | a forgery: ignored, the wait goes on |
//! | carries none, from a server that never sent one | taken (it does not do cookies) |
//! | carries none, from a server that has sent one | suspect: the question again over TCP |
//! | is BADCOOKIE with our client cookie | asked again once with the new server cookie |
//!
//! A server that stops sending cookies costs one TCP query per lookup until it times out
//! once, which forgets that it did cookies.

use std::collections::HashMap;
use std::net::SocketAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

/// A client cookie's length (RFC 7873 §4).
const CLIENT: usize = 8;
/// A server cookie's length bounds (RFC 7873 §4).
const SERVER_MIN: usize = 8;
const SERVER_MAX: usize = 32;

/// What the resolver knows of one server's cookies.
#[derive(Debug, Clone)]
struct Jar {
    client: [u8; CLIENT],
    server: Option<Vec<u8>>,
}

/// Each server's cookies, by address.
#[derive(Debug, Default)]
pub(crate) struct Cookies {
    jars: HashMap<SocketAddr, Jar>,
}

/// What an answer's cookie says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Ours (or from a server that does not do cookies).
    Good,
    /// Another client cookie: not for us.
    Forged,
    /// No cookie from a server that sends them: ask again over TCP.
    Missing,
}

impl Cookies {
    /// The COOKIE option's bytes for a query to `server`: our client cookie, then the
    /// server's cookie when we have one.
    pub(crate) fn option(&mut self, server: SocketAddr) -> Vec<u8> {
        let jar = self.jars.entry(server).or_insert_with(|| {
            let mut client = [0u8; CLIENT];
            super::random::fill(&mut client);
            Jar {
                client,
                server: None,
            }
        });
        let mut out = jar.client.to_vec();
        if let Some(s) = &jar.server {
            out.extend_from_slice(s);
        }
        out
    }

    /// Checks `m`, an answer from `server` to a query that carried a cookie, and keeps
    /// the server cookie of a good one.
    pub(crate) fn check(&mut self, server: SocketAddr, m: &Message) -> Verdict {
        let Some(jar) = self.jars.get_mut(&server) else {
            return Verdict::Good; // no cookie was sent
        };
        let option = m
            .edns
            .as_ref()
            .and_then(|e| e.options().get(EdnsCode::Cookie));
        let bytes = match option {
            Some(EdnsOption::Unknown(_, b)) => b.as_slice(),
            Some(_) => return Verdict::Forged, // not a cookie hickory knows how to read
            None if jar.server.is_some() => return Verdict::Missing,
            None => return Verdict::Good,
        };
        match bytes.split_at_checked(CLIENT) {
            Some((client, rest)) if client == jar.client => {
                if (SERVER_MIN..=SERVER_MAX).contains(&rest.len()) {
                    jar.server = Some(rest.to_vec());
                }
                Verdict::Good
            }
            _ => Verdict::Forged,
        }
    }

    /// `server` timed out: forget that it sent cookies (it may have stopped).
    pub(super) fn forget_server_cookie(&mut self, server: SocketAddr) {
        if let Some(jar) = self.jars.get_mut(&server) {
            jar.server = None;
        }
    }

    /// Whether `server` has sent a valid cookie ([`ServerState::cookie`](super::ServerState::cookie)).
    pub(super) fn has_server_cookie(&self, server: SocketAddr) -> bool {
        self.jars.get(&server).is_some_and(|j| j.server.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, MessageType, OpCode};

    fn answer(cookie: Option<Vec<u8>>) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        let mut e = Edns::new();
        if let Some(c) = cookie {
            e.options_mut().insert(EdnsOption::Unknown(10, c));
        }
        m.set_edns(e);
        m
    }

    #[test]
    fn the_client_cookie_must_come_back_and_the_server_cookie_is_kept() {
        let s = SocketAddr::from(([192, 0, 2, 1], 53));
        let mut c = Cookies::default();
        assert_eq!(c.check(s, &answer(None)), Verdict::Good, "nothing sent yet");
        let first = c.option(s);
        assert_eq!(first.len(), 8);
        assert_eq!(
            c.option(s),
            first,
            "the same client cookie for the same server"
        );
        let other = SocketAddr::from(([192, 0, 2, 2], 53));
        assert_ne!(c.option(other), first, "another server, another cookie");
        // No cookie back: a server without cookies.
        assert_eq!(c.check(s, &answer(None)), Verdict::Good);
        // A wrong client cookie: forged.
        let mut wrong = first.clone();
        wrong[0] ^= 1;
        wrong.extend_from_slice(&[7; 8]);
        assert_eq!(c.check(s, &answer(Some(wrong))), Verdict::Forged);
        assert!(!c.has_server_cookie(s));
        // The right one with a server cookie: kept and sent next time.
        let mut good = first.clone();
        good.extend_from_slice(&[9; 16]);
        assert_eq!(c.check(s, &answer(Some(good.clone()))), Verdict::Good);
        assert_eq!(c.option(s), good);
        // Now a cookie is expected: an answer without one is suspect.
        assert_eq!(c.check(s, &answer(None)), Verdict::Missing);
        c.forget_server_cookie(s);
        assert_eq!(c.check(s, &answer(None)), Verdict::Good);
        // Too short to hold a client cookie: forged, whatever its bytes.
        assert_eq!(
            c.check(s, &answer(Some(first[..4].to_vec()))),
            Verdict::Forged
        );
    }
}

//! Entry points for the fuzz targets in `fuzz/` (built with `--cfg fuzzing`, as cargo-fuzz
//! builds): the parsers of peers' bytes that are not public API. The public ones (bufio's
//! readers, the TLS filter) are fuzzed through the public API directly.

use std::str::FromStr;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};

use crate::dns::{cookies, wire};
use crate::ev::signal;
use crate::ev::WatcherId;

/// A UDP datagram from a name server, as the resolver takes it: checked against the
/// question it asked (a fixed one, and the datagram's own, so that well-formed answers get
/// past the check), its DNS cookie checked, then stepped through its CNAME chain.
pub fn dns_response(data: &[u8]) {
    let fixed = Name::from_str("www.example.test.").unwrap_or_else(|_| Name::root());
    let id = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut questions = vec![(fixed, RecordType::A)];
    if let Ok(m) = Message::from_vec(data) {
        if let Some(q) = m.queries.first() {
            questions.push((q.name.clone(), q.query_type));
        }
    }
    for (name, rtype) in questions {
        for exact in [false, true] {
            if let Some(m) = wire::check(data, id, &name, rtype, exact) {
                let server = std::net::SocketAddr::from(([192, 0, 2, 1], 53));
                let mut jar = cookies::Cookies::default();
                let _ = jar.option(server);
                let _ = jar.check(server, &m);
                let mut chain = Vec::new();
                let _ = wire::step(&m, &name, rtype, &mut chain, 8);
                assert!(chain.len() <= 8, "a chain past the limit");
            }
        }
    }
}

/// What the loop's signal fd gave: decoded as signalfd records and as self-pipe bytes,
/// and matched against a few watchers.
pub fn signal_bytes(data: &[u8]) {
    let w = |i| WatcherId {
        index: i,
        version: 0,
    };
    let active = [(1, w(0)), (2, w(1)), (15, w(2)), (15, w(3))];
    let mut out = Vec::new();
    signal::fire(&active, signal::from_signalfd(data), &mut out);
    assert!(out.len() <= 2 * (data.len() / signal::SIGNALFD_RECORD));
    out.clear();
    signal::fire(&active, signal::from_pipe(data), &mut out);
    assert!(out.len() <= 2 * data.len());
}

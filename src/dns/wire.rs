//! The wire side of a query (hickory-proto does the encoding): building the question,
//! deciding whether a datagram is the answer to it, and reading the answer, CNAME chain
//! included.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::Error;

/// The EDNS0 UDP payload size offered (the DNS flag day 2020 value).
pub(crate) const EDNS_PAYLOAD: u16 = 1232;

/// The query message for `name`/`rtype` with id `id`, recursion desired.
pub(crate) fn encode(
    id: u16,
    name: &Name,
    rtype: RecordType,
    edns: bool,
    cookie: Option<Vec<u8>>,
) -> Result<Vec<u8>, Error> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name.clone(), rtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        if let Some(c) = cookie {
            e.options_mut()
                .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(10, c));
        }
        m.set_edns(e);
    }
    m.to_vec().map_err(|e| Error::BadName(e.to_string()))
}

/// `msg` framed for a stream (TCP, TLS): its length in 2 bytes first (RFC 1035 §4.2.2).
pub(crate) fn framed(msg: &[u8]) -> Vec<u8> {
    let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// The length a stream's 2-byte prefix announces, if it can hold a DNS message (at least
/// a 12-byte header).
pub(crate) fn frame_length(prefix: &[u8]) -> Option<usize> {
    let n = usize::from(u16::from_be_bytes([*prefix.first()?, *prefix.get(1)?]));
    (n >= 12).then_some(n)
}

/// The response in `bytes` if it answers this query: the same id, a response, and the
/// same question (name case-insensitively, or letter for letter when `exact`: 0x20; type;
/// class IN). A FORMERR without a question (a server refusing EDNS) counts too. Anything
/// else is `None`: not ours, ignored.
pub(crate) fn check(
    bytes: &[u8],
    id: u16,
    name: &Name,
    rtype: RecordType,
    exact: bool,
) -> Option<Message> {
    if bytes.len() < 12 || u16::from_be_bytes([bytes[0], bytes[1]]) != id {
        return None;
    }
    let m = Message::from_vec(bytes).ok()?;
    if m.metadata.message_type != MessageType::Response || m.metadata.id != id {
        return None;
    }
    match m.queries.as_slice() {
        [q] if q.name == *name
            && (!exact || q.name.eq_case(name))
            && q.query_type == rtype
            && q.query_class == DNSClass::IN =>
        {
            Some(m)
        }
        [] if m.metadata.response_code == ResponseCode::FormErr => Some(m),
        _ => None,
    }
}

/// `name` with each letter's case chosen at random (draft-vixie-dnsext-dns0x20): a
/// forger must guess those bits too.
pub(crate) fn mix_case(name: &Name) -> Name {
    let text = name.to_ascii();
    let mut bits = vec![0u8; text.len().div_ceil(8).max(1)];
    super::random::fill(&mut bits);
    let mixed: String = text
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if bits[i / 8] >> (i % 8) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    Name::from_ascii(&mixed).unwrap_or_else(|_| name.clone())
}

/// What one response says about the question.
#[derive(Debug)]
pub(crate) enum Step {
    /// The records asked for, owned by the last name of the chain.
    Records(Vec<Record>),
    /// The chain ends in a name whose records this response does not carry: ask for it.
    Follow(Name),
    /// The name exists, without records of this type.
    NoData,
    /// The server could not answer; try the next one.
    NextServer(Error),
    /// A final failure.
    Fail(Error),
    /// The server does not understand EDNS: ask it again without.
    RetryWithoutEdns,
}

/// Reads response `m` for `qname`/`rtype`, extending `chain` with the CNAMEs it follows
/// (at most `limit` in all; a name seen twice is a loop).
pub(crate) fn step(
    m: &Message,
    qname: &Name,
    rtype: RecordType,
    chain: &mut Vec<Record>,
    limit: usize,
) -> Step {
    match m.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Step::Fail(Error::NxDomain),
        ResponseCode::ServFail => return Step::NextServer(Error::ServFail),
        ResponseCode::Refused => return Step::NextServer(Error::Refused),
        // A FORMERR without EDNS in it: the server does not understand EDNS.
        ResponseCode::FormErr if m.edns.is_none() => return Step::RetryWithoutEdns,
        other => return Step::NextServer(Error::Other(format!("{other}"))),
    }
    let mut current = qname.clone();
    loop {
        let records: Vec<Record> = m
            .answers
            .iter()
            .filter(|r| r.name == current && r.record_type() == rtype)
            .cloned()
            .collect();
        if !records.is_empty() {
            return Step::Records(records);
        }
        let cname = m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(t) if r.name == current && rtype != RecordType::CNAME => {
                Some((r, t.0.clone()))
            }
            _ => None,
        });
        let Some((record, target)) = cname else {
            return if current == *qname {
                Step::NoData
            } else {
                Step::Follow(current)
            };
        };
        if target == *qname || chain.iter().any(|r| cname_target(r) == Some(&target)) {
            return Step::Fail(Error::CnameLoop(target.to_string()));
        }
        if chain.len() >= limit {
            return Step::Fail(Error::CnameChainTooLong(limit));
        }
        chain.push(record.clone());
        current = target;
    }
}

/// Where a CNAME record points.
pub(crate) fn cname_target(r: &Record) -> Option<&Name> {
    match &r.data {
        RData::CNAME(t) => Some(&t.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME};
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn response(id: u16, q: &str, rtype: RecordType, answers: Vec<Record>) -> Message {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name(q), rtype));
        m.answers = answers;
        m
    }

    fn cname(from: &str, to: &str) -> Record {
        Record::from_rdata(name(from), 60, RData::CNAME(CNAME(name(to))))
    }

    fn a(owner: &str, last: u8) -> Record {
        Record::from_rdata(name(owner), 60, RData::A(A::new(192, 0, 2, last)))
    }

    #[test]
    fn only_the_same_id_and_question_in_any_case_is_ours() {
        let q = name("www.example.test.");
        let bytes = response(7, "WwW.Example.TEST.", RecordType::A, vec![])
            .to_vec()
            .unwrap();
        assert!(check(&bytes, 7, &q, RecordType::A, false).is_some());
        assert!(
            check(&bytes, 8, &q, RecordType::A, false).is_none(),
            "another id"
        );
        assert!(
            check(&bytes, 7, &q, RecordType::AAAA, false).is_none(),
            "another type"
        );
        assert!(check(&bytes, 7, &name("ww.example.test."), RecordType::A, false).is_none());
        let query = encode(7, &q, RecordType::A, true, None).unwrap();
        assert!(
            check(&query, 7, &q, RecordType::A, false).is_none(),
            "a query is no answer"
        );
        assert!(
            check(&bytes[..20], 7, &q, RecordType::A, false).is_none(),
            "truncated"
        );
    }

    #[test]
    fn a_chain_within_one_response_is_followed_and_a_loop_is_caught() {
        let q = name("a.test.");
        let m = response(
            1,
            "a.test.",
            RecordType::A,
            vec![
                cname("a.test.", "b.test."),
                cname("b.test.", "c.test."),
                a("c.test.", 9),
            ],
        );
        let mut chain = Vec::new();
        match step(&m, &q, RecordType::A, &mut chain, 8) {
            Step::Records(r) => assert_eq!(r.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            chain,
            [cname("a.test.", "b.test."), cname("b.test.", "c.test.")]
        );
        // Chain ends without data here: follow it with another query.
        let m = response(
            1,
            "a.test.",
            RecordType::A,
            vec![cname("a.test.", "x.test.")],
        );
        let mut chain = Vec::new();
        assert!(
            matches!(step(&m, &q, RecordType::A, &mut chain, 8), Step::Follow(n) if n == name("x.test."))
        );
        // A loop, and a chain over the limit.
        let m = response(
            1,
            "a.test.",
            RecordType::A,
            vec![cname("a.test.", "b.test."), cname("b.test.", "a.test.")],
        );
        assert!(matches!(
            step(&m, &q, RecordType::A, &mut Vec::new(), 8),
            Step::Fail(Error::CnameLoop(_))
        ));
        let m = response(
            1,
            "a.test.",
            RecordType::A,
            vec![
                cname("a.test.", "b.test."),
                cname("b.test.", "c.test."),
                a("c.test.", 1),
            ],
        );
        assert!(matches!(
            step(&m, &q, RecordType::A, &mut Vec::new(), 1),
            Step::Fail(Error::CnameChainTooLong(1))
        ));
    }

    #[test]
    fn response_codes_map_to_errors_and_next_server() {
        let q = name("a.test.");
        let mut m = response(1, "a.test.", RecordType::A, vec![]);
        assert!(matches!(
            step(&m, &q, RecordType::A, &mut Vec::new(), 8),
            Step::NoData
        ));
        m.metadata.response_code = ResponseCode::NXDomain;
        assert!(matches!(
            step(&m, &q, RecordType::A, &mut Vec::new(), 8),
            Step::Fail(Error::NxDomain)
        ));
        m.metadata.response_code = ResponseCode::ServFail;
        assert!(matches!(
            step(&m, &q, RecordType::A, &mut Vec::new(), 8),
            Step::NextServer(Error::ServFail)
        ));
        m.metadata.response_code = ResponseCode::FormErr;
        assert!(matches!(
            step(&m, &q, RecordType::A, &mut Vec::new(), 8),
            Step::RetryWithoutEdns
        ));
    }

    #[test]
    fn random_mutated_and_truncated_packets_never_panic() {
        let q = name("a.test.");
        let mut base = response(
            0x4242,
            "a.test.",
            RecordType::A,
            vec![
                cname("a.test.", "b.test."),
                a("b.test.", 1),
                a("b.test.", 2),
            ],
        );
        base.additionals = vec![a("b.test.", 3)];
        let good = base.to_vec().unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut used = 0;
        for round in 0..20_000 {
            let mut p = good.clone();
            match round % 3 {
                0 => {
                    for _ in 0..1 + next() % 4 {
                        let i = (next() as usize) % p.len();
                        p[i] = next() as u8;
                    }
                }
                1 => p.truncate((next() as usize) % p.len()),
                _ => {
                    p = (0..(next() % 600) as usize).map(|_| next() as u8).collect();
                    if p.len() >= 2 {
                        p[0] = 0x42;
                        p[1] = 0x42;
                    }
                }
            }
            if let Some(m) = check(&p, 0x4242, &q, RecordType::A, false) {
                used += 1;
                let _ = step(&m, &q, RecordType::A, &mut Vec::new(), 8);
            }
        }
        assert!(
            used > 100,
            "some mutations still parse and go through step ({used})"
        );
    }
}

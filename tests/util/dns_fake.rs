//! Pieces of the tests' fake DNS servers: an A answer to a query's bytes, and the last
//! octet of the address a lookup got (how the tests tell which server answered).

use std::net::IpAddr;

use evnet::dns::proto::op::{Message, MessageType};
use evnet::dns::proto::rr::rdata::A;
use evnet::dns::proto::rr::{RData, Record};
use evnet::dns::{Answer, Error};

/// The answer to `query` (its id and question): one A record, `192.0.2.<last>`, TTL 60.
pub fn a_answer(query: &[u8], last: u8) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut m = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    let question = q.queries[0].clone();
    let name = question.name().clone();
    m.add_query(question);
    m.add_answer(Record::from_rdata(
        name,
        60,
        RData::A(A::new(192, 0, 2, last)),
    ));
    m.to_vec().unwrap()
}

/// The last octet of the first IPv4 address a lookup got; panics on anything else.
pub fn last_octet(r: &Result<Answer, Error>) -> u8 {
    match r.as_ref().map(Answer::addresses).as_deref() {
        Ok([IpAddr::V4(v4), ..]) => v4.octets()[3],
        other => panic!("no IPv4 address: {other:?}"),
    }
}

//! [`Answer`]: what a successful lookup gives back.

use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, Record};

use super::Privacy;

/// A successful lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The name asked for, fully qualified (after the search list).
    pub name: Name,
    /// The CNAME records followed from `name`, in order: the last one's target owns
    /// `records` (as `dig` prints them, each before the records).
    pub cnames: Vec<Record>,
    /// The records of the type asked for, with their TTLs.
    pub records: Vec<Record>,
    /// The response's additional section (e.g. addresses of SRV targets).
    pub additionals: Vec<Record>,
    /// The response carried the AA bit: it came from a server authoritative for the name
    /// (false for an answer from the hosts file).
    pub authoritative: bool,
    /// How the answer travelled: in the clear, or over TLS and whether the server
    /// authenticated (a cached answer says how it came first).
    pub privacy: Privacy,
}

impl Answer {
    /// The addresses among the records (A and AAAA).
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.records
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }
}

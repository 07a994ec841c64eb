//! The DNS service's error type.

use std::fmt;

/// Why a lookup failed. Every variant is for that lookup alone; other queries in flight
/// carry on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no records of the type asked for (NOERROR, empty answer).
    NoData,
    /// Every server answered SERVFAIL.
    ServFail,
    /// Every server refused the query (REFUSED).
    Refused,
    /// No server answered within the timeout, after every attempt.
    Timeout,
    /// A response that was ours (right source, id and question) could not be used.
    Malformed(String),
    /// A CNAME chain came back to a name already in it.
    CnameLoop(String),
    /// A CNAME chain longer than the configured limit.
    CnameChainTooLong(usize),
    /// An SRV lookup found the single record with target `.`: the service is not offered
    /// at this domain (RFC 2782).
    ServiceUnavailable,
    /// A null MX (`0 .`, RFC 7505): the domain accepts no mail.
    NoMail,
    /// The name or address given cannot be looked up.
    BadName(String),
    /// A socket could not be set up.
    Io(String),
    /// Another response code (NOTIMP, ...), as the server sent it.
    Other(String),
}

impl Error {
    /// The `dig`-style status word: `NXDOMAIN`, `NOERROR` (for [`Error::NoData`]),
    /// `SERVFAIL`, `REFUSED`, `TIMEOUT`, ...
    pub fn status(&self) -> &str {
        match self {
            Error::NxDomain => "NXDOMAIN",
            Error::NoData => "NOERROR",
            Error::ServFail => "SERVFAIL",
            Error::Refused => "REFUSED",
            Error::Timeout => "TIMEOUT",
            Error::Malformed(_) => "MALFORMED",
            Error::CnameLoop(_) => "CNAME-LOOP",
            Error::CnameChainTooLong(_) => "CNAME-CHAIN-TOO-LONG",
            Error::ServiceUnavailable => "SERVICE-UNAVAILABLE",
            Error::NoMail => "NULL-MX",
            Error::BadName(_) => "BADNAME",
            Error::Io(_) => "IO",
            Error::Other(c) => c,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NxDomain => f.write_str("dns: no such name (NXDOMAIN)"),
            Error::NoData => f.write_str("dns: no records of that type (NODATA)"),
            Error::ServFail => f.write_str("dns: server failure (SERVFAIL)"),
            Error::Refused => f.write_str("dns: query refused (REFUSED)"),
            Error::Timeout => f.write_str("dns: no answer within the timeout"),
            Error::Malformed(m) => write!(f, "dns: malformed response: {m}"),
            Error::CnameLoop(n) => write!(f, "dns: CNAME loop at {n}"),
            Error::CnameChainTooLong(n) => write!(f, "dns: CNAME chain longer than {n}"),
            Error::ServiceUnavailable => {
                f.write_str("dns: the service is not available at this domain (SRV target \".\")")
            }
            Error::NoMail => f.write_str("dns: the domain accepts no mail (null MX)"),
            Error::BadName(n) => write!(f, "dns: cannot look up {n:?}"),
            Error::Io(m) => write!(f, "dns: {m}"),
            Error::Other(c) => write!(f, "dns: server answered {c}"),
        }
    }
}

impl std::error::Error for Error {}

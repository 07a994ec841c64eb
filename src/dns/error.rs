//! The DNS service's error type.

use std::fmt;
use std::io;
use std::sync::Arc;

/// Why a lookup failed. Every variant is for that lookup alone; other queries in flight
/// carry on.
///
/// A socket failure keeps its `io::Error` ([`Error::Io`], also returned by `source()`);
/// `Display` says what failed at this layer only, so an error chain prints each cause once.
#[derive(Debug, Clone)]
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
    /// The resolver has no name servers to ask.
    NoServers,
    /// A socket could not be set up, or a TCP connection to a server failed.
    Io(Arc<io::Error>),
    /// Another response code (NOTIMP, ...), as the server sent it.
    Other(String),
    /// DNS over TLS failed in TLS itself: the server's certificate was refused (wrong
    /// name, untrusted CA, a pin that does not match), its handshake broke, or its TLS
    /// configuration cannot be built. Never a timeout in disguise.
    Tls(crate::tls::Error),
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
            Error::NoServers => "NO-SERVERS",
            Error::Io(_) => "IO",
            Error::Other(c) => c,
            Error::Tls(_) => "TLS",
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
            Error::NoServers => f.write_str("dns: no name servers configured"),
            Error::Io(_) => f.write_str("dns: socket error"),
            Error::Other(c) => write!(f, "dns: server answered {c}"),
            Error::Tls(_) => f.write_str("dns: DNS over TLS failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(&**e),
            Error::Tls(e) => Some(e),
            _ => None,
        }
    }
}

/// Equal variants with equal contents; socket errors compare by kind and message.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        use Error::*;
        match (self, other) {
            (Io(a), Io(b)) => a.kind() == b.kind() && a.to_string() == b.to_string(),
            (Malformed(a), Malformed(b))
            | (CnameLoop(a), CnameLoop(b))
            | (BadName(a), BadName(b))
            | (Other(a), Other(b)) => a == b,
            (CnameChainTooLong(a), CnameChainTooLong(b)) => a == b,
            (Tls(a), Tls(b)) => a == b,
            (a, b) => {
                std::mem::discriminant(a) == std::mem::discriminant(b)
                    && matches!(
                        a,
                        NxDomain
                            | NoData
                            | ServFail
                            | Refused
                            | Timeout
                            | ServiceUnavailable
                            | NoMail
                            | NoServers
                    )
            }
        }
    }
}

impl Eq for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(Arc::new(e))
    }
}

/// For `?` in functions returning `io::Result`: `NotFound` for a name or record that does
/// not exist, `TimedOut`, `InvalidInput` for a name that cannot be looked up, the socket's
/// own kind for [`Error::Io`], `Other` for what servers answered; the `dns::Error` is kept
/// inside (`get_ref`, `source()`).
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::NxDomain | Error::NoData | Error::ServiceUnavailable | Error::NoMail => {
                io::ErrorKind::NotFound
            }
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::BadName(_) | Error::NoServers => io::ErrorKind::InvalidInput,
            Error::Malformed(_) => io::ErrorKind::InvalidData,
            Error::Tls(t) => io::Error::from(t.clone()).kind(),
            Error::Io(io) => io.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_socket_error_keeps_its_io_error_as_the_source_and_converts_back_to_io() {
        let e = Error::from(io::Error::from(io::ErrorKind::AddrInUse));
        let src = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(src.map(io::Error::kind), Some(io::ErrorKind::AddrInUse));
        assert!(!e.to_string().contains("in use"), "printed once: {e}");
        let back = io::Error::from(e.clone());
        assert_eq!(back.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            back.get_ref().and_then(|i| i.downcast_ref::<Error>()),
            Some(&e)
        );
        assert_eq!(
            io::Error::from(Error::Timeout).kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(
            io::Error::from(Error::NxDomain).kind(),
            io::ErrorKind::NotFound
        );
        assert_ne!(Error::Timeout, Error::NxDomain);
    }
}

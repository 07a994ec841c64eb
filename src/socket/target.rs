//! What [`connect`](super::connect) connects to, and the resolvers that turn a name into
//! addresses.

use std::any::Any;
use std::io;
use std::net::SocketAddr;

use super::Endpoint;
use crate::ev::Ctx;

/// Where to connect: addresses (or Unix paths), or a name for a [`Resolve`]r to look up.
///
/// ```
/// use evnet::socket::Target;
/// let direct: Target = "127.0.0.1:7000".parse::<std::net::SocketAddr>()?.into();
/// assert!(matches!(direct, Target::Endpoints(ref e) if e.len() == 1));
/// assert_eq!(Target::host("relay.example.org", 6514), Target::Host("relay.example.org".into(), 6514));
/// let srv = Target::service("xmpp-client", "tcp", "example.org");
/// assert!(matches!(srv, Target::Service { .. }));
/// assert_eq!(Target::mail("example.org"), Target::Mail("example.org".into()));
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// These endpoints, tried with RFC 8305 fallback; no lookup.
    Endpoints(Vec<Endpoint>),
    /// A host name or literal address, and a port: A and AAAA records.
    Host(String, u16),
    /// An SRV service, `_service._proto.domain`: its targets in RFC 2782 order, each on
    /// its own port.
    Service {
        /// E.g. `xmpp-client` (a leading `_` is optional).
        service: String,
        /// E.g. `tcp`.
        proto: String,
        /// The domain offering it.
        domain: String,
    },
    /// A domain's mail exchangers, by MX preference, on port 25 (the domain itself when it
    /// has no MX; none for a null MX).
    Mail(String),
}

impl Target {
    /// `host:port`, looked up by the resolver (a literal address needs no lookup).
    pub fn host(host: impl Into<String>, port: u16) -> Target {
        Target::Host(host.into(), port)
    }

    /// The SRV service `_service._proto.domain`.
    pub fn service(
        service: impl Into<String>,
        proto: impl Into<String>,
        domain: impl Into<String>,
    ) -> Target {
        Target::Service {
            service: service.into(),
            proto: proto.into(),
            domain: domain.into(),
        }
    }

    /// `domain`'s mail exchangers.
    pub fn mail(domain: impl Into<String>) -> Target {
        Target::Mail(domain.into())
    }
}

impl From<Vec<Endpoint>> for Target {
    fn from(e: Vec<Endpoint>) -> Target {
        Target::Endpoints(e)
    }
}

impl From<Endpoint> for Target {
    fn from(e: Endpoint) -> Target {
        Target::Endpoints(vec![e])
    }
}

impl From<SocketAddr> for Target {
    fn from(a: SocketAddr) -> Target {
        Target::Endpoints(vec![Endpoint::Inet(a)])
    }
}

/// What a [`Resolve`]r calls with the addresses it found.
pub type Resolved<S> = Box<dyn FnOnce(&mut S, &mut Ctx<S>, io::Result<Vec<SocketAddr>>)>;

/// A name resolver for [`connect`](super::connect). The [`pool::Pool`](crate::pool::Pool)
/// implements host lookups with the system resolver on a worker, and evnet's own
/// [`dns::Resolver`](crate::dns::Resolver) host, SRV and MX lookups on the loop, so
/// callers switch by passing another resolver. [`NoLookup`] is for addresses only.
pub trait Resolve<S> {
    /// Starts resolving `host` (a name or a literal address) for `port`; `done` runs on the
    /// loop with the addresses. The returned guard cancels the lookup when dropped.
    ///
    /// # Errors
    /// The lookup could not be started.
    fn resolve(
        &self,
        cx: &mut Ctx<S>,
        host: &str,
        port: u16,
        done: Resolved<S>,
    ) -> io::Result<Resolving>;

    /// Starts resolving the SRV service `_service._proto.domain` to its targets' addresses,
    /// each with its own port, in the order they are to be tried.
    ///
    /// # Errors
    /// `Unsupported` by default: a resolver that cannot look up SRV records.
    fn resolve_service(
        &self,
        cx: &mut Ctx<S>,
        service: &str,
        proto: &str,
        domain: &str,
        done: Resolved<S>,
    ) -> io::Result<Resolving> {
        let _ = (cx, service, proto, domain, done);
        Err(unsupported("SRV"))
    }

    /// Starts resolving `domain`'s mail exchangers to addresses on port 25, by preference.
    ///
    /// # Errors
    /// `Unsupported` by default: a resolver that cannot look up MX records.
    fn resolve_mail(
        &self,
        cx: &mut Ctx<S>,
        domain: &str,
        done: Resolved<S>,
    ) -> io::Result<Resolving> {
        let _ = (cx, domain, done);
        Err(unsupported("MX"))
    }
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("this resolver cannot look up {what} records (evnet::dns::Resolver can)"),
    )
}

/// The resolver for [`Target::Endpoints`]: every lookup fails with `InvalidInput`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLookup;

impl<S> Resolve<S> for NoLookup {
    fn resolve(&self, _: &mut Ctx<S>, host: &str, _: u16, _: Resolved<S>) -> io::Result<Resolving> {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no resolver to look up {host:?} with (NoLookup)"),
        ))
    }
}

/// A lookup a [`Resolve`]r started: dropping it cancels the lookup (`done` never runs).
#[must_use = "dropping it cancels the lookup"]
pub struct Resolving {
    _guard: Box<dyn Any>,
}

impl Resolving {
    /// Wraps what cancels the lookup when dropped (a job handle, a DNS lookup, a timer's
    /// remover).
    pub fn new(guard: impl Any) -> Resolving {
        Resolving {
            _guard: Box::new(guard),
        }
    }
}

impl std::fmt::Debug for Resolving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolving")
    }
}

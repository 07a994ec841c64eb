//! The configuration of DNS over TLS (RFC 7858): the servers, how each is authenticated
//! (CA roots or an SPKI pin), and the usage profile (RFC 8310: strict or opportunistic).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// A DNS-over-TLS server: where it listens, the name it must prove (its "authentication
/// domain name", RFC 8310 §2), and what it is authenticated against.
///
/// ```
/// use evnet::dns::{ResolverOptions, TlsServer};
///
/// let mut options = ResolverOptions::default();
/// options.tls_servers = vec![TlsServer::new("9.9.9.9".parse().unwrap(), "dns.quad9.net")
///     .ca("/etc/ssl/certs/ca-certificates.crt")];
/// assert_eq!(options.tls_servers[0].addr.port(), 853);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServer {
    /// Its address; port 853 unless set otherwise.
    pub addr: SocketAddr,
    /// The name its certificate must carry (checked against the CA roots; a pin needs no
    /// name). Also sent as SNI.
    pub name: String,
    /// CA certificates (a PEM file) the server's chain must lead to.
    pub ca: Option<PathBuf>,
    /// SHA-256 digests of SubjectPublicKeyInfo (RFC 7858 §4.2): a leaf whose key matches
    /// one is accepted whatever its chain and name. [`spki_sha256`](crate::tls::spki_sha256)
    /// makes one from a certificate.
    pub spki_pins: Vec<[u8; 32]>,
}

impl TlsServer {
    /// The server at `ip`, port 853, proving `name`; give it a [`ca`](Self::ca) or a
    /// [`spki_pin`](Self::spki_pin) (in the strict profile, a server with neither answers
    /// nothing).
    pub fn new(ip: IpAddr, name: &str) -> TlsServer {
        TlsServer {
            addr: SocketAddr::new(ip, 853),
            name: name.to_owned(),
            ca: None,
            spki_pins: Vec::new(),
        }
    }

    /// Listens on `port` instead of 853.
    #[must_use]
    pub fn port(mut self, port: u16) -> TlsServer {
        self.addr.set_port(port);
        self
    }

    /// Authenticates it against the CA certificates in the PEM file `path`.
    #[must_use]
    pub fn ca(mut self, path: impl Into<PathBuf>) -> TlsServer {
        self.ca = Some(path.into());
        self
    }

    /// Accepts a leaf certificate whose SubjectPublicKeyInfo hashes to `pin`.
    #[must_use]
    pub fn spki_pin(mut self, pin: [u8; 32]) -> TlsServer {
        self.spki_pins.push(pin);
        self
    }
}

/// How DNS over TLS may fall short (RFC 8310 §5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsProfile {
    /// Only an authenticated server's answer is taken: a certificate that does not check
    /// out fails the lookup with [`Error::Tls`](super::Error::Tls), never a clear-text
    /// answer.
    #[default]
    Strict,
    /// TLS when it works: a server that does not authenticate is still used, encrypted
    /// ([`Privacy::Encrypted`]); one that cannot do TLS at all (refused, a failed
    /// handshake) is replaced by [`ResolverOptions::servers`](super::ResolverOptions::servers)
    /// in the clear for a minute. Each answer says which it was ([`Answer::privacy`](super::Answer::privacy)).
    Opportunistic,
}

/// How an answer travelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Privacy {
    /// In the clear (UDP or TCP), or from the hosts file.
    #[default]
    Clear,
    /// Over TLS to a server that did not authenticate (the opportunistic profile).
    Encrypted,
    /// Over TLS to a server that authenticated.
    Authenticated,
}

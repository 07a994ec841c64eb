//! The TLS service's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// What can go wrong setting up TLS (and, on a connection, in TLS itself).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A PEM file could not be used: unreadable, or not holding what it should.
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    Config(String),
    /// A security option was set that cannot take effect without another one (e.g. an
    /// issuer check on client certificates without a CA to verify them against): refused
    /// rather than ignored.
    Incomplete {
        /// The option that was set.
        option: &'static str,
        /// What it needs.
        missing: &'static str,
    },
    /// The socket under the TLS stream failed (e.g. it could not be made non-blocking).
    Io(Arc<io::Error>),
    /// A certificate could not be parsed.
    Certificate(String),
    /// The peer sent a fatal alert, e.g. `CertificateRequired` to a client whose
    /// certificate it refused (in TLS 1.3 the client learns it after its handshake).
    PeerAlert(String),
    /// The peer's certificate was refused: expired, from another CA, the wrong name, ...
    BadCertificate(String),
    /// The peer sent no certificate where one is required.
    NoPeerCertificate,
    /// The peer broke the protocol: garbage, a plain-text request, a malformed record.
    Protocol(String),
    /// The connection ended without `close_notify` (see
    /// [`Settings::allow_dirty_shutdown`](super::Settings::allow_dirty_shutdown)).
    Truncated,
}

impl Error {
    /// The TLS error in a stream error, if it is one: the stream reports TLS failures as
    /// [`bufio::Error::Filter`](crate::bufio::Error::Filter).
    pub fn of(e: &crate::bufio::Error) -> Option<&Error> {
        match e {
            crate::bufio::Error::Filter(f) => f.downcast_ref::<Error>(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Pem { path, problem } => write!(f, "{}: {problem}", path.display()),
            Error::Config(m) => write!(f, "tls configuration rejected: {m}"),
            Error::Incomplete { option, missing } => write!(
                f,
                "tls configuration refused: `{option}` cannot take effect without `{missing}`"
            ),
            Error::Io(e) => write!(f, "tls: socket: {e}"),
            Error::Certificate(m) => write!(f, "certificate not understood: {m}"),
            Error::PeerAlert(a) => write!(f, "tls: received fatal alert: {a}"),
            Error::BadCertificate(r) => write!(f, "tls: peer certificate rejected: {r}"),
            Error::NoPeerCertificate => f.write_str("tls: peer sent no certificates"),
            Error::Protocol(m) => write!(f, "tls: {m}"),
            Error::Truncated => f.write_str(
                "tls: the peer closed the connection without close_notify \
                 (truncation; allow_dirty_shutdown accepts it)",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(&**e),
            _ => None,
        }
    }
}

/// Equal variants with equal contents; socket errors compare by kind and message.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        match (self, other) {
            (Error::Io(a), Error::Io(b)) => a.kind() == b.kind() && a.to_string() == b.to_string(),
            (
                Error::Pem { path, problem },
                Error::Pem {
                    path: p,
                    problem: q,
                },
            ) => path == p && problem == q,
            (Error::Config(a), Error::Config(b))
            | (Error::Certificate(a), Error::Certificate(b))
            | (Error::PeerAlert(a), Error::PeerAlert(b))
            | (Error::BadCertificate(a), Error::BadCertificate(b))
            | (Error::Protocol(a), Error::Protocol(b)) => a == b,
            (
                Error::Incomplete { option, missing },
                Error::Incomplete {
                    option: o,
                    missing: m,
                },
            ) => option == o && missing == m,
            (Error::NoPeerCertificate, Error::NoPeerCertificate)
            | (Error::Truncated, Error::Truncated) => true,
            _ => false,
        }
    }
}

impl Eq for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(Arc::new(e))
    }
}

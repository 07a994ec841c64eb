//! The TLS service's error type.
//!
//! Every variant with a typed cause keeps it and returns it from `source()`; `Display` says
//! what failed at this layer only, so an error chain (anyhow's `{:#}`, tracing) prints each
//! cause once.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// A cause that is not one of the crate's public types (an x509-parser or PEM error).
pub(crate) type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// What can go wrong setting up TLS (and, on a connection, in TLS itself).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A PEM file could not be used: unreadable, or not holding what it should.
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, e.g. `"no CERTIFICATE block"`.
        problem: &'static str,
        /// The underlying error (the `io::Error` of a failed read, the PEM or rustls
        /// error), when there is one; also returned by `source()`.
        cause: Option<Cause>,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    Config {
        /// What was being configured, e.g. the certificate and key files.
        context: String,
        /// rustls's error.
        cause: rustls::Error,
    },
    /// The name to verify the server against is not a DNS name or an IP address.
    ServerName(String),
    /// A security option was set that cannot take effect without another one (e.g. an
    /// issuer check on client certificates without a CA to verify them against): refused
    /// rather than ignored.
    Incomplete {
        /// The option that was set.
        option: &'static str,
        /// What it needs.
        missing: &'static str,
    },
    /// The socket under the TLS stream failed (e.g. it could not be made non-blocking), or
    /// rustls's own buffering did.
    Io(Arc<io::Error>),
    /// A certificate could not be parsed (the x509-parser error is the `source()`).
    Certificate(Cause),
    /// The peer sent a fatal alert, e.g. `CertificateRequired` to a client whose
    /// certificate it refused (in TLS 1.3 the client learns it after its handshake).
    PeerAlert(rustls::AlertDescription),
    /// The peer's certificate was refused: expired, from another CA, the wrong name, ...
    BadCertificate(rustls::CertificateError),
    /// The peer sent no certificate where one is required.
    NoPeerCertificate,
    /// The peer broke the protocol: garbage, a plain-text request, a malformed record.
    Protocol(rustls::Error),
    /// The connection ended without `close_notify` (see
    /// [`TlsConnector::allow_dirty_shutdown`](super::TlsConnector::allow_dirty_shutdown)).
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

    /// The `io::ErrorKind` this error is reported as when converted to an `io::Error`.
    fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Io(e) => e.kind(),
            Error::Pem { .. }
            | Error::Config { .. }
            | Error::ServerName(_)
            | Error::Incomplete { .. }
            | Error::Certificate(_) => io::ErrorKind::InvalidInput,
            Error::Truncated => io::ErrorKind::UnexpectedEof,
            Error::PeerAlert(_)
            | Error::BadCertificate(_)
            | Error::NoPeerCertificate
            | Error::Protocol(_) => io::ErrorKind::InvalidData,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Pem { path, problem, .. } => write!(f, "{}: {problem}", path.display()),
            Error::Config { context, .. } => write!(f, "tls configuration rejected: {context}"),
            Error::ServerName(n) => write!(f, "tls: {n:?} is not a valid server name"),
            Error::Incomplete { option, missing } => write!(
                f,
                "tls configuration refused: `{option}` cannot take effect without `{missing}`"
            ),
            Error::Io(_) => f.write_str("tls: i/o error"),
            Error::Certificate(_) => f.write_str("certificate not understood"),
            Error::PeerAlert(a) => write!(f, "tls: received fatal alert: {a:?}"),
            Error::BadCertificate(r) => write!(f, "tls: peer certificate rejected: {r:?}"),
            Error::NoPeerCertificate => f.write_str("tls: peer sent no certificates"),
            Error::Protocol(_) => f.write_str("tls: protocol error"),
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
            Error::Pem { cause, .. } => cause.as_deref().map(|c| c as _),
            Error::Certificate(c) => Some(&**c),
            Error::Config { cause, .. } | Error::Protocol(cause) => Some(cause),
            _ => None,
        }
    }
}

/// Equal variants with equal contents; wrapped causes compare by their message.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        fn same(a: &Option<Cause>, b: &Option<Cause>) -> bool {
            a.as_ref().map(ToString::to_string) == b.as_ref().map(ToString::to_string)
        }
        match (self, other) {
            (Error::Io(a), Error::Io(b)) => a.kind() == b.kind() && a.to_string() == b.to_string(),
            (
                Error::Pem {
                    path,
                    problem,
                    cause,
                },
                Error::Pem {
                    path: p,
                    problem: q,
                    cause: c,
                },
            ) => path == p && problem == q && same(cause, c),
            (
                Error::Config { context, cause },
                Error::Config {
                    context: x,
                    cause: c,
                },
            ) => context == x && cause == c,
            (Error::ServerName(a), Error::ServerName(b)) => a == b,
            (Error::Certificate(a), Error::Certificate(b)) => a.to_string() == b.to_string(),
            (Error::PeerAlert(a), Error::PeerAlert(b)) => a == b,
            (Error::BadCertificate(a), Error::BadCertificate(b)) => a == b,
            (Error::Protocol(a), Error::Protocol(b)) => a == b,
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

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(Arc::new(e))
    }
}

/// For `?` in functions returning `io::Result`: the kind says what sort of failure it was
/// (`InvalidInput` for configuration, `InvalidData` for the peer's protocol or certificate,
/// `UnexpectedEof` for truncation, the socket's own kind for `Io`); the `tls::Error` is
/// kept inside (`get_ref`, `source()`).
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

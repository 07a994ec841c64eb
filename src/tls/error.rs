//! The TLS service's error type.

use std::fmt;
use std::path::PathBuf;

/// What can go wrong setting up TLS (and, on a connection, in TLS itself).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A certificate could not be parsed.
    Certificate(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Pem { path, problem } => write!(f, "{}: {problem}", path.display()),
            Error::Config(m) => write!(f, "tls configuration rejected: {m}"),
            Error::Certificate(m) => write!(f, "certificate not understood: {m}"),
        }
    }
}

impl std::error::Error for Error {}

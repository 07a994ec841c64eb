//! [`Error`]: why a set of loops ended badly.

use std::fmt;
use std::io;

/// Why [`Loops::join`](super::Loops::join) failed: the first loop that ended badly (the
/// others were stopped when it did).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Starting loop `index`'s thread, or creating its `Loop`, failed.
    Spawn {
        /// Which loop.
        index: usize,
        /// The cause.
        source: io::Error,
    },
    /// Loop `index`'s setup returned an error.
    Setup {
        /// Which loop.
        index: usize,
        /// The cause.
        source: io::Error,
    },
    /// Loop `index`'s `run` failed (its poll did).
    Run {
        /// Which loop.
        index: usize,
        /// The cause.
        source: io::Error,
    },
    /// Pinning loop `index` to a CPU failed (see [`LoopsBuilder::pin`](super::LoopsBuilder::pin)).
    Pin {
        /// Which loop.
        index: usize,
        /// The cause.
        source: io::Error,
    },
    /// Loop `index`'s setup or one of its callbacks panicked.
    Panicked {
        /// Which loop.
        index: usize,
        /// The panic's message, when it was a string.
        message: String,
    },
}

impl Error {
    /// The loop the error is about.
    pub fn index(&self) -> usize {
        match self {
            Error::Spawn { index, .. }
            | Error::Setup { index, .. }
            | Error::Run { index, .. }
            | Error::Pin { index, .. }
            | Error::Panicked { index, .. } => *index,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spawn { index, .. } => write!(f, "loop {index} could not start"),
            Error::Setup { index, .. } => write!(f, "loop {index}'s setup failed"),
            Error::Run { index, .. } => write!(f, "loop {index} failed"),
            Error::Pin { index, .. } => write!(f, "loop {index} could not be pinned to a CPU"),
            Error::Panicked { index, message } => write!(f, "loop {index} panicked: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. }
            | Error::Setup { source, .. }
            | Error::Run { source, .. }
            | Error::Pin { source, .. } => Some(source),
            Error::Panicked { .. } => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Spawn { source, .. }
            | Error::Setup { source, .. }
            | Error::Run { source, .. }
            | Error::Pin { source, .. } => source.kind(),
            Error::Panicked { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

//! The pool's error type.

use std::fmt;
use std::io;

/// What can go wrong when running a job on a [`Pool`](super::Pool).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The job panicked. The payload's message is kept (`&str` and `String` payloads; any
    /// other payload reads `"<non-string panic payload>"`). The worker that ran it survives.
    Panicked(String),
    /// The pool's queue bound was reached: the job was not queued. Nothing else changed;
    /// try again after some results have come back.
    QueueFull,
    /// The context passed to [`Pool::run`](super::Pool::run) belongs to another loop than
    /// the one the pool was created for.
    WrongLoop,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Panicked(m) => write!(f, "job panicked: {m}"),
            Error::QueueFull => f.write_str("thread pool queue is full"),
            Error::WrongLoop => f.write_str("thread pool used with another loop's context"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e {
            Error::QueueFull => io::ErrorKind::WouldBlock,
            Error::WrongLoop => io::ErrorKind::InvalidInput,
            Error::Panicked(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// The message of a caught panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

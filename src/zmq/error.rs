//! The adapter's error type.

use std::fmt;
use std::io;

/// What can go wrong on a ZeroMQ socket watched by a [`ZmqWatcher`](super::ZmqWatcher).
///
/// `EAGAIN` is never an error here: it is how the adapter learns a socket is drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The socket's context was terminated (`ETERM`); the watcher has stopped for good.
    Terminated,
    /// Any other libzmq error, e.g. `EFSM` from a REQ socket used out of turn.
    Socket(zmq::Error),
}

impl Error {
    pub(crate) fn from_zmq(e: zmq::Error) -> Error {
        match e {
            zmq::Error::ETERM => Error::Terminated,
            e => Error::Socket(e),
        }
    }

    /// An OS error from a host loop's registration, as libzmq would report its errno.
    #[cfg(any(feature = "calloop", feature = "tokio"))]
    pub(crate) fn from_io(e: &io::Error) -> Error {
        Error::Socket(zmq::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Terminated => f.write_str("zeromq context terminated"),
            Error::Socket(e) => write!(f, "zeromq socket error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Terminated => io::Error::new(io::ErrorKind::NotConnected, e),
            Error::Socket(z) => z.into(),
        }
    }
}

/// Creating a [`ZmqWatcher`](super::ZmqWatcher) failed; the socket and handler are given back.
pub struct InsertError<T> {
    /// What could not be inserted.
    pub inner: T,
    /// Why.
    pub error: Error,
}

impl<T> fmt::Debug for InsertError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsertError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for InsertError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot watch zeromq socket: {}", self.error)
    }
}

impl<T> std::error::Error for InsertError<T> {}

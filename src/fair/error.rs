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
    pub(crate) fn from_io(e: &io::Error) -> Error {
        Error::Socket(zmq::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Terminated => f.write_str("zeromq context terminated"),
            Error::Socket(_) => f.write_str("zeromq socket error"),
        }
    }
}

/// `source()` is libzmq's error for [`Error::Socket`]; `Display` does not repeat it.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Socket(e) => Some(e),
            Error::Terminated => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Terminated => io::Error::new(io::ErrorKind::NotConnected, e),
            Error::Socket(z) => z.into(),
        }
    }
}

/// Putting a socket on a loop failed: why, and the socket, given back.
///
/// It is `Send + Sync` (the socket waits in a `Mutex`, only so), so `?` carries it into
/// `anyhow::Error` or `Box<dyn Error + Send + Sync>`; take the socket back with
/// [`into_socket`](InsertError::into_socket). A [`ZmqWatcher`](super::ZmqWatcher)'s
/// handler is dropped.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use evnet::zmq;
/// let zctx = zmq::Context::new();
/// let sock = zctx.socket(zmq::PULL)?;
/// # #[cfg(feature = "mio")]
/// let _watched = evnet::fair::MioZmq::new(sock)?; // `?` works in any error-boxing main
/// # Ok(()) }
/// ```
pub struct InsertError {
    error: Error,
    socket: std::sync::Mutex<Option<zmq::Socket>>,
}

impl InsertError {
    pub(crate) fn new(error: Error, socket: zmq::Socket) -> InsertError {
        InsertError {
            error,
            socket: std::sync::Mutex::new(Some(socket)),
        }
    }

    /// Why it failed.
    pub fn error(&self) -> Error {
        self.error
    }

    /// The socket, given back.
    pub fn into_socket(self) -> zmq::Socket {
        let socket = match self.socket.into_inner() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        socket.expect("an InsertError holds its socket until into_socket takes it")
    }
}

impl fmt::Debug for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsertError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot watch zeromq socket")
    }
}

impl std::error::Error for InsertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<InsertError> for io::Error {
    fn from(e: InsertError) -> io::Error {
        let kind = io::Error::from(e.error).kind();
        io::Error::new(kind, e)
    }
}

//! The stream's error type and events.

use std::fmt;
use std::io;

/// What went wrong on one stream. The stream stops reading (and, for I/O errors,
/// writing); other streams are unaffected.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A line request found no newline within the maximum line length.
    LineTooLong {
        /// The limit that was exceeded.
        max: usize,
    },
    /// An [`Exact`](super::Request::Exact) read asked for more than
    /// [`Options::max_exact`](super::Options::max_exact).
    ExactTooLarge {
        /// The bytes requested.
        requested: usize,
        /// The limit.
        max: usize,
    },
    /// The socket failed.
    Io(io::Error),
    /// A [`Filter`](super::Filter) rejected its input or output (downcast the
    /// [`FilterError`](super::FilterError) to the filter's own error type, e.g.
    /// `evnet::tls::Error`).
    Filter(super::FilterError),
    /// A filter's handshake did not finish within
    /// [`Options::handshake_timeout`](super::Options::handshake_timeout).
    HandshakeTimeout(std::time::Duration),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LineTooLong { max } => write!(f, "line longer than {max} bytes"),
            Error::ExactTooLarge { requested, max } => {
                write!(f, "read of {requested} bytes above the {max}-byte limit")
            }
            Error::Io(_) => f.write_str("stream i/o error"),
            Error::Filter(_) => f.write_str("stream filter error"),
            Error::HandshakeTimeout(d) => write!(f, "handshake not finished within {d:?}"),
        }
    }
}

/// `source()` is the typed cause: the `io::Error` of [`Error::Io`], the filter's own error
/// (e.g. an `evnet::tls::Error`) of [`Error::Filter`]. `Display` does not repeat it, so an
/// error chain (anyhow's `{:#}`, tracing) prints each cause once.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Filter(f) => Some(f.inner()),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// What a stream reports to [`StreamHandler::event`](super::StreamHandler::event).
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamEvent {
    /// A stream started with [`Stream::connect`](super::Stream::connect) is connected;
    /// queued writes go out now.
    Connected,
    /// The peer closed its side: no more input will come. It is reported after the data:
    /// when a pending request cannot be satisfied by what is left (that remainder, e.g. a
    /// partial line, stays in the input buffer), or when nothing is left.
    Eof,
    /// Reading or writing failed; see [`Error`].
    Error(Error),
    /// A read was requested and nothing arrived for the read timeout.
    ReadTimeout,
    /// Output was pending and none of it could be written for the write timeout.
    WriteTimeout,
}

/// How a close asked with [`Conn::close_then`](super::Conn::close_then) ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Closed {
    /// Every byte written before the close went out, then the end: a filter's end marker
    /// (TLS's `close_notify`) written, the write side shut down, the socket closed.
    Flushed,
    /// The peer did not take the output within
    /// [`Options::close_timeout`](super::Options::close_timeout): the connection was
    /// reset, the rest discarded.
    TimedOut,
    /// The stream failed before its output was out (the peer reset it, a filter refused
    /// the end): what was left is lost.
    Failed(Error),
    /// Cut short on purpose: [`Conn::abort`](super::Conn::abort) after the close, or the
    /// owning [`Stream`](super::Stream) dropped (which discards queued output).
    Aborted,
    /// The stream was already closing or closed when `close_then` was called: its own
    /// outcome went to the first caller (or to nobody).
    AlreadyClosing,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::Flushed => f.write_str("closed, output flushed"),
            Closed::TimedOut => f.write_str("close timed out: connection reset"),
            Closed::Failed(e) => write!(f, "close failed: {e}"),
            Closed::Aborted => f.write_str("close aborted: output discarded"),
            Closed::AlreadyClosing => f.write_str("already closing"),
        }
    }
}

/// A line for a log: `connected`, `end of stream`, `read timeout`, `write timeout`, or
/// `error: ` followed by the error and each of its causes, separated by `: ` (an event is
/// not an error itself, so the whole chain is printed here, once).
impl fmt::Display for StreamEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEvent::Connected => f.write_str("connected"),
            StreamEvent::Eof => f.write_str("end of stream"),
            StreamEvent::ReadTimeout => f.write_str("read timeout"),
            StreamEvent::WriteTimeout => f.write_str("write timeout"),
            StreamEvent::Error(e) => {
                write!(f, "error: {e}")?;
                let mut cause = std::error::Error::source(e);
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_event_prints_as_a_log_line_with_the_whole_cause_chain() {
        assert_eq!(StreamEvent::Connected.to_string(), "connected");
        assert_eq!(StreamEvent::Eof.to_string(), "end of stream");
        assert_eq!(StreamEvent::ReadTimeout.to_string(), "read timeout");
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(
            StreamEvent::Error(Error::Io(reset)).to_string(),
            "error: stream i/o error: reset by peer"
        );
        let e = Error::Filter(super::super::FilterError::new(Refused));
        assert_eq!(
            StreamEvent::Error(e).to_string(),
            "error: stream filter error: refused by the filter"
        );
        assert_eq!(
            StreamEvent::Error(Error::LineTooLong { max: 8 }).to_string(),
            "error: line longer than 8 bytes"
        );
    }

    #[derive(Debug)]
    struct Refused;
    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("refused by the filter")
        }
    }
    impl std::error::Error for Refused {}

    #[test]
    fn io_and_filter_errors_are_the_source_and_printed_once() {
        let e = Error::from(io::Error::from(io::ErrorKind::ConnectionReset));
        let io = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(
            io.map(io::Error::kind),
            Some(io::ErrorKind::ConnectionReset)
        );
        let e = Error::Filter(super::super::FilterError::new(Refused));
        assert!(e
            .source()
            .and_then(|s| s.downcast_ref::<Refused>())
            .is_some());
        assert!(!e.to_string().contains("refused"), "printed once: {e}");
    }
}

//! Per-stream limits: watermarks, line length, per-turn caps, timeouts.

use std::time::Duration;

use super::read::Limits;

/// A stream's limits. [`Options::default`] gives libevent's per-turn caps (16 KiB read and
/// written per stream per loop turn) and a bounded read-ahead.
///
/// Watermarks, exactly:
/// - **`read_low`**: a [`Chunk`](super::Request::Chunk) read is delivered only once at
///   least this many bytes (and at least 1) are buffered, or at end of stream.
/// - **`read_high`**: the stream stops reading from the socket while this much input is
///   buffered (the socket's interest is switched off: no spinning), *unless* the pending
///   request cannot be satisfied without more bytes (a line not yet complete and within
///   `max_line`, an `Exact(n)` with fewer than `n` buffered). Reading resumes as soon as
///   requests consume input below it. With no request pending it bounds read-ahead.
/// - **`write_low`**: [`StreamHandler::write`](super::StreamHandler::write) runs after a flush leaves at
///   most this many bytes of output queued (0: when output is empty).
/// - **`write_high`** (output backpressure): once more than this many bytes of output are
///   queued, the stream stops reading (socket interest off, no spinning; a pair stops
///   taking its partner's bytes, a filter stops pulling from below) and reading resumes
///   when output has drained to `write_low`. Input already buffered is still delivered,
///   so a stream's buffers stay within about `write_high + read_high + max_read` (plus one
///   `max_line` or `max_exact` request) whatever its peer does: a client that sends and
///   never reads its replies is held by TCP flow control, not by the server's memory.
///   `usize::MAX` turns it off (libevent's behaviour).
///
/// Requests are bounded too: a line by `max_line`, an exact read by `max_exact`, each
/// failing that stream alone with a clear [`Error`](super::Error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// See above. Default 0.
    pub read_low: usize,
    /// See above. Default 64 KiB.
    pub read_high: usize,
    /// See above. Default 0.
    pub write_low: usize,
    /// See above. Default 1 MiB.
    pub write_high: usize,
    /// Longest line a [`Line`](super::Request::Line) read accepts, terminator excluded.
    /// Default 64 KiB.
    pub max_line: usize,
    /// Largest [`Exact`](super::Request::Exact) read accepted: a larger one is
    /// [`Error::ExactTooLarge`](super::Error::ExactTooLarge). Default 1 MiB.
    pub max_exact: usize,
    /// Most bytes read from the socket per loop turn (one `read`). Default 16 KiB.
    pub max_read: usize,
    /// Most bytes written to the socket per loop turn. Default 16 KiB.
    pub max_write: usize,
    /// [`StreamEvent::ReadTimeout`](super::StreamEvent::ReadTimeout) after this long with a read
    /// requested and nothing arriving. Default none.
    pub read_timeout: Option<Duration>,
    /// [`StreamEvent::WriteTimeout`](super::StreamEvent::WriteTimeout) after this long with output
    /// queued and none of it written. Default none.
    pub write_timeout: Option<Duration>,
    /// How long a graceful [`Conn::close`](super::Conn::close) may wait for its output to
    /// drain to a peer that does not read; then the connection is reset and closed, as
    /// by [`Conn::abort`](super::Conn::abort). `None` waits forever. Default 30 s.
    pub close_timeout: Option<Duration>,
    /// A stream over a handshaking [`Filter`](super::Filter) (TLS) whose handshake has not
    /// finished this long after the stream was made fails with
    /// [`Error::HandshakeTimeout`](super::Error::HandshakeTimeout): a peer that sends
    /// nothing, or trickles, cannot hold it. `None`: no limit. Default 10 s.
    pub handshake_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            read_low: 0,
            read_high: 64 * 1024,
            write_low: 0,
            write_high: 1024 * 1024,
            max_line: 64 * 1024,
            max_exact: 1024 * 1024,
            max_read: 16 * 1024,
            max_write: 16 * 1024,
            read_timeout: None,
            write_timeout: None,
            close_timeout: Some(Duration::from_secs(30)),
            handshake_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl Options {
    pub(crate) fn sane(mut self) -> Options {
        self.max_read = self.max_read.max(1);
        self.max_write = self.max_write.max(1);
        self.read_high = self.read_high.max(1);
        self.write_high = self.write_high.max(self.write_low);
        self
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            low: self.read_low,
            max_line: self.max_line,
            max_exact: self.max_exact,
        }
    }
}

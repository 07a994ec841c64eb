//! Per-stream limits: watermarks, line length, per-turn caps, timeouts.

use std::time::Duration;

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
/// - **`write_low`**: [`Handler::write`](super::Handler::write) runs after a flush leaves at
///   most this many bytes of output queued (0: when output is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// See above. Default 0.
    pub read_low: usize,
    /// See above. Default 64 KiB.
    pub read_high: usize,
    /// See above. Default 0.
    pub write_low: usize,
    /// Longest line a [`Line`](super::Request::Line) read accepts, terminator excluded.
    /// Default 64 KiB.
    pub max_line: usize,
    /// Most bytes read from the socket per loop turn (one `read`). Default 16 KiB.
    pub max_read: usize,
    /// Most bytes written to the socket per loop turn. Default 16 KiB.
    pub max_write: usize,
    /// [`Event::ReadTimeout`](super::Event::ReadTimeout) after this long with a read
    /// requested and nothing arriving. Default none.
    pub read_timeout: Option<Duration>,
    /// [`Event::WriteTimeout`](super::Event::WriteTimeout) after this long with output
    /// queued and none of it written. Default none.
    pub write_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            read_low: 0,
            read_high: 64 * 1024,
            write_low: 0,
            max_line: 64 * 1024,
            max_read: 16 * 1024,
            max_write: 16 * 1024,
            read_timeout: None,
            write_timeout: None,
        }
    }
}

impl Options {
    pub(crate) fn sane(mut self) -> Options {
        self.max_read = self.max_read.max(1);
        self.max_write = self.max_write.max(1);
        self.read_high = self.read_high.max(1);
        self
    }
}

//! `bufio`: buffered streams on the loop (libevent's bufferevents, libevnet's `bufio.h`).
//!
//! A [`Stream`] wraps a connected non-blocking socket (TCP or Unix) with an input and an
//! output buffer ([`bytes::BytesMut`]) and a [`StreamHandler`]: `read` when the pending
//! [`Request`] — a chunk, a line (LF or CRLF, bounded by a maximum length) or exactly `n`
//! bytes — is satisfied, `write` when output drains to the write low watermark, and
//! `event` for end of stream, errors and timeouts. [`Options`] set the watermarks and the
//! per-turn read and write caps (16 KiB each by default, as libevent), so one busy stream
//! cannot hold the loop.
//!
//! # Tail calls
//! libevnet's promise holds: a callback that issues the next read or write right away never
//! recurses. Callbacks run from a loop inside the stream (a satisfied request is delivered
//! on the next iteration, not from inside the call that issued it), and re-issuing a read
//! from a read callback does not touch the poller: interest is recomputed once, after the
//! callbacks, and the loop applies it lazily (a test counts `epoll_ctl` calls).
//!
//! # Closing
//! [`Conn::close`] flushes queued output, shuts down the write side and closes;
//! [`Conn::abort`] resets the connection at once. Dropping the [`Stream`] handle closes it
//! at once without flushing. After any of them no callback of the stream runs, including
//! one that was already due.

mod conn;
mod engine;
mod error;
mod filter;
mod filtered;
mod lifecycle;
mod limit;
mod options;
mod output;
mod read;
mod stream;

pub use error::{Closed, Error, StreamEvent};
pub use filter::{Filter, FilterError, FilterResult, FlushMode};
pub use limit::{RateGroup, RateLimit};
pub use options::Options;
pub use read::Request;
pub use stream::{Conn, Stream, StreamHandler};

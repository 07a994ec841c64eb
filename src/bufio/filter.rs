//! [`Filter`]: transforming the bytes of a stream stacked on another (libevent's
//! filtering bufferevents). TLS plugs in here.

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;

/// Why a filter failed: any error type, shared (cheap to clone) and printable, which the
/// application can downcast to the filter's own type (e.g. `evnet::tls::Error`).
///
/// ```
/// use evnet::bufio::FilterError;
/// let e = FilterError::from("bad frame");
/// assert_eq!(e.to_string(), "bad frame");
/// assert_eq!(e, *"bad frame");
/// let io = FilterError::new(std::io::Error::other("disk"));
/// assert!(io.downcast_ref::<std::io::Error>().is_some());
/// ```
#[derive(Clone)]
pub struct FilterError(Arc<dyn std::error::Error + Send + Sync>);

impl FilterError {
    /// Wraps `e`.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> FilterError {
        FilterError(Arc::new(e))
    }

    /// The filter's own error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The filter's own error, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

/// A message as an error, for filters that fail with text.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

impl From<String> for FilterError {
    fn from(m: String) -> FilterError {
        FilterError::new(Message(m))
    }
}

impl From<&str> for FilterError {
    fn from(m: &str) -> FilterError {
        FilterError::from(m.to_owned())
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Shows the message, quoted, whatever the error type.
impl fmt::Debug for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.to_string(), f)
    }
}

/// Equal when they say the same.
impl PartialEq for FilterError {
    fn eq(&self, other: &FilterError) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for FilterError {}

impl PartialEq<str> for FilterError {
    // The message exists only as Display output: comparing means rendering it.
    #[allow(clippy::cmp_owned)]
    fn eq(&self, other: &str) -> bool {
        self.to_string() == other
    }
}

/// How hard a flush pushes (libevent's `BEV_NORMAL` / `BEV_FLUSH` / `BEV_FINISHED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Move what is convenient; a filter may hold bytes back to batch them.
    Normal,
    /// Move everything that can be moved now; a filter emits what it holds back.
    Flush,
    /// As `Flush`, and no more data will follow: a filter writes its trailer, a pair
    /// delivers end of stream to its partner, a socket shuts down its write side.
    Finished,
}

/// What one filter step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterResult {
    /// Some bytes were produced (or there was nothing to do).
    Ok,
    /// Nothing can be produced until more source bytes arrive.
    NeedMore,
    /// The source is malformed: the stream fails with
    /// [`Error::Filter`](super::Error::Filter) carrying this message. Output the filter
    /// produced on its own (an alert for the peer, see [`Filter::wants_output`]) still goes
    /// out first.
    Error(FilterError),
    /// Input only: the peer ended the filtered stream cleanly (a TLS `close_notify`): the
    /// application gets end of stream after what was delivered, whatever the underlying
    /// stream does next.
    End,
}

/// A transformation between a stream and the stream under it. Each side is optional: the
/// default methods pass bytes through unchanged.
///
/// A step consumes from `src` (advancing it), appends at most about `limit` bytes to `dst`,
/// and leaves what it cannot use yet in `src`; it is called again when more source bytes
/// arrive, when room appears in `dst`, and on every flush. With [`FlushMode::Finished`] no
/// more source will come; an output step may see `Finished` more than once (when the
/// output drains, and again when the stream closes), so a filter writes its end marker
/// (TLS's close_notify) once.
///
/// ```
/// use evnet::bytes::BytesMut;
/// use evnet::bufio::{Filter, FilterResult, FlushMode};
///
/// /// Inverts every byte, both ways.
/// struct Invert;
/// impl Filter for Invert {
///     fn input(&mut self, src: &mut BytesMut, dst: &mut BytesMut, limit: usize, _: FlushMode) -> FilterResult {
///         let n = src.len().min(limit);
///         dst.extend(src.split_to(n).iter().map(|b| !b));
///         FilterResult::Ok
///     }
///     fn output(&mut self, src: &mut BytesMut, dst: &mut BytesMut, limit: usize, m: FlushMode) -> FilterResult {
///         self.input(src, dst, limit, m)
///     }
/// }
///
/// let mut src = BytesMut::from(&b"ab"[..]);
/// let mut dst = BytesMut::new();
/// assert_eq!(Invert.output(&mut src, &mut dst, 16, FlushMode::Normal), FilterResult::Ok);
/// assert_eq!(&dst[..], &[!b'a', !b'b']);
/// assert!(src.is_empty());
/// ```
///
/// Stack it with [`Stream::filter`](super::Stream::filter).
pub trait Filter: 'static {
    /// Bytes read from the underlying stream (`src`) into this stream's input (`dst`).
    fn input(
        &mut self,
        src: &mut BytesMut,
        dst: &mut BytesMut,
        limit: usize,
        mode: FlushMode,
    ) -> FilterResult {
        let _ = mode;
        pass(src, dst, limit)
    }

    /// Bytes written to this stream (`src`) into the underlying stream's output (`dst`).
    fn output(
        &mut self,
        src: &mut BytesMut,
        dst: &mut BytesMut,
        limit: usize,
        mode: FlushMode,
    ) -> FilterResult {
        let _ = mode;
        pass(src, dst, limit)
    }

    /// Whether the filter holds bytes for the underlying stream that it produced on its own
    /// rather than from this stream's output: handshake messages, replies the input side
    /// owes the peer (a TLS KeyUpdate), alerts. The stream then runs
    /// [`output`](Filter::output) with nothing new in `src` to collect them. It asks when
    /// the filtered stream is created and after every input step, failed ones included.
    /// The default: never.
    fn wants_output(&self) -> bool {
        false
    }

    /// Whether the filter is still setting the stream up (a handshake). Meanwhile the
    /// application's writes wait in the filtered stream (none reaches `output`), and when
    /// it turns false the application gets [`StreamEvent::Connected`](super::StreamEvent::Connected),
    /// once. A filter that never handshakes (the default) sends no `Connected`.
    fn handshaking(&self) -> bool {
        false
    }

    /// Whether the filter holds decoded input it could not hand over for lack of room (a
    /// TLS layer keeps up to 16 KiB of decrypted plaintext): when the application makes
    /// room, [`input`](Filter::input) runs again at once, with no new source bytes needed,
    /// so nothing stays stuck inside the filter. The default: never.
    fn buffered_input(&self) -> bool {
        false
    }
}

fn pass(src: &mut BytesMut, dst: &mut BytesMut, limit: usize) -> FilterResult {
    let n = src.len().min(limit);
    dst.extend_from_slice(&src.split_to(n));
    FilterResult::Ok
}

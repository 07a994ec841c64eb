//! Read requests and how buffered input satisfies them.

use bytes::{Bytes, BytesMut};

/// What the next read delivers (libevnet's read modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Whatever is buffered, once at least the read low watermark (and at least 1 byte)
    /// is; everything buffered is delivered.
    Chunk,
    /// One line, terminated by LF or CRLF; the terminator is not delivered. A line longer
    /// than the stream's maximum line length is an error.
    Line,
    /// Exactly this many bytes, at most [`Options::max_exact`](super::Options::max_exact)
    /// (a larger request fails with [`Error::ExactTooLarge`](super::Error::ExactTooLarge)
    /// before a byte is buffered for it, so a peer-supplied length cannot make the input
    /// buffer unbounded).
    Exact(usize),
}

/// What a satisfied request yields.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Data(Bytes),
    TooLong,
    /// An exact read above the limit.
    TooLarge,
    /// Not satisfiable from the buffer; the request needs at least this many more bytes
    /// read (0: any amount, it cannot tell).
    Wait,
}

/// The limits a request is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The read low watermark (chunks).
    pub(crate) low: usize,
    pub(crate) max_line: usize,
    pub(crate) max_exact: usize,
}

/// Tries to satisfy `req` from `input`. `scanned` remembers how far a line search got, so
/// a long line arriving in pieces is scanned once, not once per piece.
pub(crate) fn satisfy(
    req: Request,
    input: &mut BytesMut,
    scanned: &mut usize,
    lim: Limits,
    eof: bool,
) -> Outcome {
    let Limits {
        low,
        max_line,
        max_exact,
    } = lim;
    match req {
        Request::Chunk => {
            if !input.is_empty() && (input.len() >= low.max(1) || eof) {
                *scanned = 0;
                Outcome::Data(input.split().freeze())
            } else {
                Outcome::Wait
            }
        }
        Request::Exact(n) if n > max_exact => Outcome::TooLarge,
        Request::Exact(n) => {
            if input.len() >= n {
                *scanned = 0;
                Outcome::Data(input.split_to(n).freeze())
            } else {
                Outcome::Wait
            }
        }
        Request::Line => {
            // The terminator may sit at max_line (a line of exactly max_line bytes, then
            // CR LF). `scanned` may lie beyond the limit when max_line was lowered since.
            let limit = input.len().min(max_line.saturating_add(2));
            let from = (*scanned).min(limit);
            let found = input
                .get(from..limit)
                .and_then(|s| s.iter().position(|&b| b == b'\n'));
            match found {
                Some(i) => {
                    let end = from + i;
                    let mut line = input.split_to(end + 1);
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(line.len() - 1);
                    }
                    *scanned = 0;
                    if line.len() > max_line {
                        Outcome::TooLong
                    } else {
                        Outcome::Data(line.freeze())
                    }
                }
                None if input.len() > max_line.saturating_add(1) => Outcome::TooLong,
                None => {
                    *scanned = limit;
                    Outcome::Wait
                }
            }
        }
    }
}

/// Whether `req` still needs bytes from the socket, with `have` buffered: reading goes on
/// past the read high watermark exactly while this holds, and it is bounded by `max_line`
/// and `max_exact`.
pub(crate) fn needs_more(req: Option<Request>, have: usize, lim: Limits) -> bool {
    let Limits {
        low,
        max_line,
        max_exact,
    } = lim;
    match req {
        None => false,
        Some(Request::Chunk) => have < low.max(1),
        Some(Request::Exact(n)) => n <= max_exact && have < n,
        Some(Request::Line) => have <= max_line.saturating_add(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(low: usize, max_line: usize) -> Limits {
        Limits {
            low,
            max_line,
            max_exact: 1 << 20,
        }
    }

    fn run(req: Request, input: &[u8], max_line: usize, eof: bool) -> (Outcome, Vec<u8>) {
        let mut b = BytesMut::from(input);
        let mut scanned = 0;
        let o = satisfy(req, &mut b, &mut scanned, lim(0, max_line), eof);
        (o, b.to_vec())
    }

    #[test]
    fn lines_lf_and_crlf() {
        let (o, rest) = run(Request::Line, b"ab\r\ncd\n", 10, false);
        assert_eq!(o, Outcome::Data(Bytes::from_static(b"ab")));
        assert_eq!(rest, b"cd\n");
        let (o, rest) = run(Request::Line, b"cd\nx", 10, false);
        assert_eq!(o, Outcome::Data(Bytes::from_static(b"cd")));
        assert_eq!(rest, b"x");
        let (o, _) = run(Request::Line, b"\n", 10, false);
        assert_eq!(o, Outcome::Data(Bytes::new()));
    }

    #[test]
    fn line_length_limit_is_exact() {
        assert_eq!(
            run(Request::Line, b"12345\r\n", 5, false).0,
            Outcome::Data(Bytes::from_static(b"12345"))
        );
        assert_eq!(
            run(Request::Line, b"123456\n", 5, false).0,
            Outcome::TooLong
        );
        assert_eq!(run(Request::Line, b"1234567", 5, false).0, Outcome::TooLong);
        assert_eq!(run(Request::Line, b"123456", 5, false).0, Outcome::Wait);
    }

    #[test]
    fn incremental_scan_finds_a_line_split_across_reads() {
        let mut b = BytesMut::from(&b"abc"[..]);
        let mut scanned = 0;
        assert_eq!(
            satisfy(Request::Line, &mut b, &mut scanned, lim(0, 100), false),
            Outcome::Wait
        );
        assert_eq!(scanned, 3);
        b.extend_from_slice(b"d\nrest");
        assert_eq!(
            satisfy(Request::Line, &mut b, &mut scanned, lim(0, 100), false),
            Outcome::Data(Bytes::from_static(b"abcd"))
        );
        assert_eq!(&b[..], b"rest");
    }

    #[test]
    fn exact_and_chunk_with_low_watermark() {
        assert_eq!(run(Request::Exact(3), b"ab", 0, false).0, Outcome::Wait);
        let (o, rest) = run(Request::Exact(3), b"abcd", 0, false);
        assert_eq!(o, Outcome::Data(Bytes::from_static(b"abc")));
        assert_eq!(rest, b"d");
        let mut b = BytesMut::from(&b"ab"[..]);
        let mut s = 0;
        assert_eq!(
            satisfy(Request::Chunk, &mut b, &mut s, lim(4, 0), false),
            Outcome::Wait
        );
        assert_eq!(
            satisfy(Request::Chunk, &mut b, &mut s, lim(4, 0), true),
            Outcome::Data(Bytes::from_static(b"ab")),
            "at EOF the remainder is delivered below the low watermark"
        );
        assert_eq!(run(Request::Chunk, b"", 0, true).0, Outcome::Wait);
    }

    #[test]
    fn a_scan_position_beyond_a_lowered_limit_is_too_long_not_a_panic() {
        let mut b = BytesMut::from(&[b'a'; 100][..]);
        let mut scanned = 100;
        for max_line in [0, 1, 10, 97] {
            assert_eq!(
                satisfy(Request::Line, &mut b, &mut scanned, lim(0, max_line), false),
                Outcome::TooLong
            );
        }
        // Raised again, the search resumes within the buffer.
        b.extend_from_slice(b"\n");
        assert_eq!(
            satisfy(Request::Line, &mut b, &mut scanned, lim(0, 1000), false),
            Outcome::Data(Bytes::from(vec![b'a'; 100]))
        );
    }

    #[test]
    fn limits_at_usize_max_do_not_overflow() {
        let max = lim(usize::MAX, usize::MAX);
        let mut b = BytesMut::from(&b"abc"[..]);
        let mut scanned = 0;
        assert_eq!(
            satisfy(Request::Line, &mut b, &mut scanned, max, false),
            Outcome::Wait
        );
        assert!(needs_more(Some(Request::Line), usize::MAX, max));
        b.extend_from_slice(b"\r\n");
        assert_eq!(
            satisfy(Request::Line, &mut b, &mut scanned, max, false),
            Outcome::Data(Bytes::from_static(b"abc"))
        );
        let huge = Limits {
            max_exact: usize::MAX,
            ..max
        };
        assert_eq!(
            satisfy(
                Request::Exact(usize::MAX),
                &mut b,
                &mut scanned,
                huge,
                false
            ),
            Outcome::Wait
        );
    }

    #[test]
    fn exact_above_max_exact_is_refused_before_buffering() {
        let l = lim(0, 10);
        let mut b = BytesMut::new();
        let mut s = 0;
        assert_eq!(
            satisfy(Request::Exact((1 << 20) + 1), &mut b, &mut s, l, false),
            Outcome::TooLarge
        );
        assert!(!needs_more(Some(Request::Exact((1 << 20) + 1)), 0, l));
        assert!(needs_more(Some(Request::Exact(1 << 20)), 0, l));
    }
}

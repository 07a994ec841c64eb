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
    /// Exactly this many bytes.
    Exact(usize),
}

/// What a satisfied request yields.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Data(Bytes),
    TooLong,
    /// Not satisfiable from the buffer; the request needs at least this many more bytes
    /// read (0: any amount, it cannot tell).
    Wait,
}

/// Tries to satisfy `req` from `input`. `scanned` remembers how far a line search got, so
/// a long line arriving in pieces is scanned once, not once per piece.
pub(crate) fn satisfy(
    req: Request,
    input: &mut BytesMut,
    scanned: &mut usize,
    low: usize,
    max_line: usize,
    eof: bool,
) -> Outcome {
    match req {
        Request::Chunk => {
            if !input.is_empty() && (input.len() >= low.max(1) || eof) {
                *scanned = 0;
                Outcome::Data(input.split().freeze())
            } else {
                Outcome::Wait
            }
        }
        Request::Exact(n) => {
            if input.len() >= n {
                *scanned = 0;
                Outcome::Data(input.split_to(n).freeze())
            } else {
                Outcome::Wait
            }
        }
        Request::Line => {
            let from = (*scanned).min(input.len());
            // The terminator may sit at max_line (a line of exactly max_line bytes).
            let limit = input.len().min(max_line.saturating_add(2));
            match input[from..limit].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let end = from + i;
                    let mut line = input.split_to(end + 1);
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    *scanned = 0;
                    if line.len() > max_line {
                        Outcome::TooLong
                    } else {
                        Outcome::Data(line.freeze())
                    }
                }
                None if input.len() > max_line + 1 => Outcome::TooLong,
                None => {
                    *scanned = limit;
                    Outcome::Wait
                }
            }
        }
    }
}

/// Whether `req` still needs bytes from the socket, with `have` buffered.
pub(crate) fn needs_more(req: Option<Request>, have: usize, low: usize, max_line: usize) -> bool {
    match req {
        None => false,
        Some(Request::Chunk) => have < low.max(1),
        Some(Request::Exact(n)) => have < n,
        Some(Request::Line) => have <= max_line + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(req: Request, input: &[u8], max_line: usize, eof: bool) -> (Outcome, Vec<u8>) {
        let mut b = BytesMut::from(input);
        let mut scanned = 0;
        let o = satisfy(req, &mut b, &mut scanned, 0, max_line, eof);
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
            satisfy(Request::Line, &mut b, &mut scanned, 0, 100, false),
            Outcome::Wait
        );
        assert_eq!(scanned, 3);
        b.extend_from_slice(b"d\nrest");
        assert_eq!(
            satisfy(Request::Line, &mut b, &mut scanned, 0, 100, false),
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
            satisfy(Request::Chunk, &mut b, &mut s, 4, 0, false),
            Outcome::Wait
        );
        assert_eq!(
            satisfy(Request::Chunk, &mut b, &mut s, 4, 0, true),
            Outcome::Data(Bytes::from_static(b"ab")),
            "at EOF the remainder is delivered below the low watermark"
        );
        assert_eq!(run(Request::Chunk, b"", 0, true).0, Outcome::Wait);
    }
}

//! bufio's line and exact readers over an in-memory pair: a peer's bytes, in the pieces
//! the input says, read as lines under a small `max_line` or as exact reads of a size the
//! input picks. Every line fits the limit, every exact read has its size, nothing read is
//! more than was sent, and the stream ends (end of stream or a line-too-long error) within
//! a bounded number of turns.
#![no_main]
use bytes::Bytes;
use evnet::bufio::{Conn, FlushMode, Options, Stream, StreamEvent, StreamHandler};
use evnet::ev::{Ctx, Loop};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct St {
    got: usize,
    ended: bool,
}

struct Quiet;
impl StreamHandler<St> for Quiet {
    fn read(&mut self, _: &Conn<St>, _: Bytes, _: &mut St, _: &mut Ctx<St>) {}
    fn event(&mut self, _: &Conn<St>, _: StreamEvent, _: &mut St, _: &mut Ctx<St>) {}
}

struct Reader {
    exact: Option<usize>,
    max_line: usize,
}
impl StreamHandler<St> for Reader {
    fn read(&mut self, c: &Conn<St>, data: Bytes, st: &mut St, cx: &mut Ctx<St>) {
        match self.exact {
            Some(n) => {
                assert_eq!(data.len(), n, "an exact read of another size");
                c.read_exact(cx, n);
            }
            None => {
                assert!(data.len() <= self.max_line, "a line over the limit");
                assert!(!data.contains(&b'\n'), "a line with its terminator");
                c.read_line(cx);
            }
        }
        st.got += data.len();
    }
    fn event(&mut self, _: &Conn<St>, _: StreamEvent, st: &mut St, _: &mut Ctx<St>) {
        st.ended = true;
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, size, piece, rest @ ..] = data else {
        return;
    };
    let exact = (mode & 1 == 1).then_some(usize::from(*size).max(1));
    let max_line = usize::from(*size % 64).max(1);
    let opts = Options {
        max_line,
        ..Options::default()
    };
    let mut ev = Loop::<St>::new().unwrap();
    let reader = Reader { exact, max_line };
    let (a, b) = Stream::pair(&mut ev, opts, Quiet, reader);
    match exact {
        Some(n) => b.read_exact(&mut ev, n),
        None => b.read_line(&mut ev),
    }
    for chunk in rest.chunks(usize::from(*piece).max(1)) {
        a.write(&mut ev, chunk);
    }
    a.flush(&mut ev, FlushMode::Finished);
    let mut st = St::default();
    for _ in 0..10_000 {
        if st.ended {
            break;
        }
        ev.run_nowait(&mut st).unwrap();
    }
    assert!(st.ended, "the stream never ended");
    assert!(st.got <= rest.len(), "read more than was sent");
    drop((a, b));
});

//! `bufio` pairs and filters: deferred callbacks, flush modes, unlinking, and a filter
//! stack that never strands bytes between layers.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use evnet::bufio::{Error, Filter, FilterResult, FlushMode, Options, Stream, StreamEvent};
use evnet::ev::Loop;
use util::{unix_pair, Fns};

#[derive(Default)]
struct Log {
    lines: Vec<String>,
    eofs: usize,
    in_callback: bool,
    nested: usize,
}

fn line_reader(tag: &'static str) -> Fns<Log> {
    Fns::new(
        move |c, line, log: &mut Log, cx| {
            if log.in_callback {
                log.nested += 1;
            }
            log.in_callback = true;
            log.lines
                .push(format!("{tag}:{}", String::from_utf8_lossy(&line)));
            // Answer through the pair from inside the callback: the partner's callback
            // must not run in here.
            if &line[..] == b"ping" {
                c.write(cx, b"pong\n");
            }
            c.read_line(cx);
            log.in_callback = false;
        },
        |_, e, log: &mut Log, _| {
            assert!(matches!(e, StreamEvent::Eof), "{e:?}");
            log.eofs += 1;
        },
    )
}

/// A loop and a pair of line readers tagged "a" and "b".
fn line_pair() -> (Loop<Log>, Stream<Log>, Stream<Log>) {
    let mut ev = Loop::<Log>::new().unwrap();
    let (a, b) = Stream::pair(
        &mut ev,
        Options::default(),
        line_reader("a"),
        line_reader("b"),
    );
    (ev, a, b)
}

#[test]
fn a_pair_links_two_streams_with_deferred_callbacks() {
    let (mut ev, a, b) = line_pair();
    assert!(std::ptr::eq(&*a.partner().unwrap(), &*b));
    assert!(std::ptr::eq(&*b.partner().unwrap(), &*a));
    a.read_line(&mut ev);
    b.read_line(&mut ev);
    a.write(&mut ev, b"ping\n");
    let mut log = Log::default();
    assert!(log.lines.is_empty(), "nothing runs inside write()");
    ev.run_until(&mut log, Duration::from_secs(5), |l| l.lines.len() == 2)
        .unwrap();
    assert_eq!(log.lines, ["b:ping", "a:pong"]);
    assert_eq!(log.nested, 0, "a callback never ran inside another");
}

#[test]
fn pair_flush_modes_and_finished_delivers_eof_after_the_data() {
    let (mut ev, a, b) = line_pair();
    b.read_line(&mut ev);
    a.write(&mut ev, b"one\n");
    a.flush(&mut ev, FlushMode::Normal);
    a.write(&mut ev, b"two\n");
    a.flush(&mut ev, FlushMode::Flush);
    let mut log = Log::default();
    ev.run_until(&mut log, Duration::from_secs(5), |l| l.lines.len() == 2)
        .unwrap();
    assert_eq!(log.eofs, 0, "Normal and Flush do not end the stream");
    a.write(&mut ev, b"three\n");
    a.flush(&mut ev, FlushMode::Finished);
    ev.run_until(&mut log, Duration::from_secs(5), |l| l.eofs == 1)
        .unwrap();
    assert_eq!(log.lines, ["b:one", "b:two", "b:three"]);
    assert_eq!(log.eofs, 1);
    assert!(b.is_eof());
    // Reading on the other direction goes on.
    a.read_line(&mut ev);
    b.write(&mut ev, b"back\n");
    ev.run_until(&mut log, Duration::from_secs(5), |l| l.lines.len() == 4)
        .unwrap();
    assert_eq!(log.lines[3], "a:back");
}

#[test]
fn dropping_one_side_unlinks_the_other_without_eof() {
    let (mut ev, a, b) = line_pair();
    b.read_line(&mut ev);
    drop(a);
    let mut log = Log::default();
    for _ in 0..5 {
        ev.run_nowait(&mut log).unwrap();
    }
    assert_eq!(log.eofs, 0);
    assert!(b.partner().is_none());
    b.write(&mut ev, b"into the void\n"); // stays queued; nothing breaks
    ev.run_nowait(&mut log).unwrap();
    assert!(log.lines.is_empty());
}

/// Inverts every byte, both ways.
struct Invert;
impl Filter for Invert {
    fn input(
        &mut self,
        src: &mut BytesMut,
        dst: &mut BytesMut,
        limit: usize,
        _: FlushMode,
    ) -> FilterResult {
        let n = src.len().min(limit);
        dst.extend(src.split_to(n).iter().map(|b| !b));
        FilterResult::Ok
    }
    fn output(
        &mut self,
        src: &mut BytesMut,
        dst: &mut BytesMut,
        limit: usize,
        m: FlushMode,
    ) -> FilterResult {
        self.input(src, dst, limit, m)
    }
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

struct Flow {
    got: usize,
    bad: usize,
    eof: bool,
    reader: Option<Stream<Flow>>,
}

#[test]
fn an_inverting_filter_round_trips_over_a_pair_with_low_watermarks_and_a_slow_reader() {
    const N: usize = 1 << 20;
    let tiny = Options {
        read_high: 512,
        max_read: 256,
        max_write: 700,
        write_low: 300,
        ..Options::default()
    };
    let mut ev = Loop::<Flow>::new().unwrap();
    let quiet = || Fns::new(|_, _, _, _| {}, |_, _, _, _| {});
    let (p1, p2) = Stream::pair(&mut ev, tiny, quiet(), quiet());
    let sent = Rc::new(Cell::new(0usize));
    let s = sent.clone();
    let writer = Stream::filter(
        &mut ev,
        p1,
        Invert,
        tiny,
        Fns::new(|_, _, _, _| {}, |_, e, _, _| panic!("writer {e:?}")).on_write(
            move |c, _st: &mut Flow, cx| {
                // Refill as output drains below the low watermark.
                let from = s.get();
                if from < N {
                    let to = (from + 1000).min(N);
                    c.write(cx, &(from..to).map(pattern).collect::<Vec<u8>>());
                    s.set(to);
                    if to == N {
                        c.flush(cx, FlushMode::Finished);
                    }
                }
            },
        ),
    );
    writer.write(&mut ev, &(0..1000).map(pattern).collect::<Vec<u8>>());
    sent.set(1000);
    let reader = Stream::filter(
        &mut ev,
        p2,
        Invert,
        Options {
            read_high: 256,
            ..tiny
        },
        Fns::new(
            |_, d, st: &mut Flow, cx| {
                for &b in d.iter() {
                    if b != pattern(st.got) {
                        st.bad += 1;
                    }
                    st.got += 1;
                }
                // A slow consumer: the next chunk only on a later turn.
                cx.timer(Duration::ZERO, None, |st: &mut Flow, cx, e| {
                    cx.remove(e.watcher());
                    if let Some(r) = &st.reader {
                        r.read_chunk(cx);
                    }
                });
            },
            |_, e, st: &mut Flow, _| {
                assert!(matches!(e, StreamEvent::Eof), "{e:?}");
                st.eof = true;
            },
        ),
    );
    reader.read_chunk(&mut ev);
    let mut st = Flow {
        got: 0,
        bad: 0,
        eof: false,
        reader: Some(reader),
    };
    let ok = ev
        .run_until(&mut st, Duration::from_secs(60), |s| s.eof)
        .unwrap();
    assert!(ok, "stuck at {} of {N} bytes", st.got);
    assert_eq!(st.got, N);
    assert_eq!(st.bad, 0);
    drop(writer);
}

#[test]
fn dropping_a_filter_with_output_pending_flushes_it_through_the_filter() {
    const N: usize = 100_000;
    let mut ev = Loop::<Flow>::new().unwrap();
    let (ours, theirs) = unix_pair();
    let under = Stream::new(&mut ev, ours, Fns::new(|_, _, _, _| {}, |_, _, _, _| {})).unwrap();
    let f = Stream::filter(
        &mut ev,
        under,
        Invert,
        Options::default(),
        Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
    );
    f.write(&mut ev, &(0..N).map(pattern).collect::<Vec<u8>>());
    drop(f); // with all of it still queued
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(theirs));
        let mut v = Vec::new();
        s.read_to_end(&mut v).unwrap(); // ends: the underlying stream is shut down
        v
    });
    let mut st = Flow {
        got: 0,
        bad: 0,
        eof: false,
        reader: None,
    };
    // The reader thread's progress does not wake the loop: tick to look at it.
    let ms = Duration::from_millis(1);
    ev.timer(ms, Some(ms), |_, _, _| {});
    ev.run_until(&mut st, Duration::from_secs(10), |_| reader.is_finished())
        .unwrap();
    let v = reader.join().unwrap();
    assert_eq!(v.len(), N, "every queued byte was flushed");
    assert!(
        v.iter().enumerate().all(|(i, &b)| b == !pattern(i)),
        "through the filter"
    );
}

#[test]
fn a_filter_error_fails_that_stream_only() {
    struct Reject;
    impl Filter for Reject {
        fn input(
            &mut self,
            src: &mut BytesMut,
            _: &mut BytesMut,
            _: usize,
            _: FlushMode,
        ) -> FilterResult {
            if src.contains(&b'!') {
                FilterResult::Error("bang".into())
            } else {
                FilterResult::NeedMore
            }
        }
    }
    let mut ev = Loop::<Vec<String>>::new().unwrap();
    let quiet = || Fns::new(|_, _, _, _| {}, |_, _, _, _| {});
    let (p1, p2) = Stream::pair(&mut ev, Options::default(), quiet(), quiet());
    let f = Stream::filter(
        &mut ev,
        p2,
        Reject,
        Options::default(),
        Fns::new(
            |_, _, _, _| {},
            |c, e, log: &mut Vec<String>, cx| {
                assert!(
                    matches!(&e, StreamEvent::Error(Error::Filter(m)) if m == "bang"),
                    "{e:?}"
                );
                log.push(e.to_string_lossy());
                c.abort(cx);
            },
        ),
    );
    f.read_chunk(&mut ev);
    f.detach();
    p1.write(&mut ev, b"fine so far, then !");
    let mut log = Vec::new();
    ev.run_until(&mut log, Duration::from_secs(5), |l| !l.is_empty())
        .unwrap();
    assert_eq!(log.len(), 1);
}

trait Lossy {
    fn to_string_lossy(&self) -> String;
}
impl Lossy for StreamEvent {
    fn to_string_lossy(&self) -> String {
        format!("{self:?}")
    }
}

#[test]
fn closing_a_filter_over_a_pair_delivers_the_data_then_eof_to_the_far_side() {
    let mut ev = Loop::<Log>::new().unwrap();
    let quiet = || Fns::new(|_, _, _, _| {}, |_, _, _, _| {});
    let (p1, p2) = Stream::pair(&mut ev, Options::default(), quiet(), quiet());
    let near = Stream::filter(&mut ev, p1, Invert, Options::default(), quiet());
    let far = Stream::filter(&mut ev, p2, Invert, Options::default(), line_reader("far"));
    far.read_line(&mut ev);
    near.write(&mut ev, b"first\nsecond\n");
    near.close(&mut ev); // graceful: through the filter, the pair, then end of stream
    let mut log = Log::default();
    ev.run_until(&mut log, Duration::from_secs(5), |l| l.eofs == 1)
        .unwrap();
    assert_eq!(log.lines, ["far:first", "far:second"]);
    assert_eq!(log.eofs, 1);
    assert!(near.is_closed());
}

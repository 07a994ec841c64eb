//! The filter seam's handshake support, with a toy handshaking filter over real TCP: input
//! steps that owe the peer a reply (`wants_output`), application writes held until the
//! handshake is done (`handshaking`), `Connected` once, a clean end (`FilterResult::End`)
//! against a truncated one, and the reply to a bad greeting sent before the stream fails.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use evnet::bufio::{Filter, FilterResult, FlushMode, Options, Stream, StreamEvent};
use evnet::ev::Loop;
use util::{tcp_pair, Fns};

const LIMIT: Duration = Duration::from_secs(20);

/// Client says `HELLO\n`, server answers `ACK\n` (or `NO\n` to anything else); then data
/// goes in frames `[len][bytes inverted]`, and a zero-length frame ends the stream.
struct Greeter {
    client: bool,
    done: bool,
    own: BytesMut,
    ended: bool,
}

impl Greeter {
    fn new(client: bool) -> Greeter {
        Greeter {
            client,
            done: false,
            own: BytesMut::from(if client { &b"HELLO\n"[..] } else { &b""[..] }),
            ended: false,
        }
    }
}

impl Filter for Greeter {
    fn input(
        &mut self,
        src: &mut BytesMut,
        dst: &mut BytesMut,
        limit: usize,
        m: FlushMode,
    ) -> FilterResult {
        if !self.done {
            let Some(nl) = src.iter().position(|&b| b == b'\n') else {
                return FilterResult::NeedMore;
            };
            let line = src.split_to(nl + 1);
            match (self.client, &line[..]) {
                (true, b"ACK\n") => self.done = true,
                (false, b"HELLO\n") => {
                    self.done = true;
                    self.own.extend_from_slice(b"ACK\n");
                }
                (false, _) => {
                    self.own.extend_from_slice(b"NO\n");
                    return FilterResult::Error("bad greeting".into());
                }
                (true, _) => return FilterResult::Error("refused".into()),
            }
        }
        while let Some(&len) = src.first() {
            let len = usize::from(len);
            if len == 0 {
                src.clear();
                return FilterResult::End;
            }
            if src.len() < 1 + len {
                return FilterResult::NeedMore;
            }
            if dst.len() + len > limit.max(len) {
                break;
            }
            let frame = src.split_to(1 + len);
            dst.extend(frame[1..].iter().map(|b| !b));
        }
        if m == FlushMode::Finished && src.is_empty() {
            return FilterResult::Error("truncated: the peer never ended the stream".into());
        }
        FilterResult::Ok
    }

    fn output(
        &mut self,
        src: &mut BytesMut,
        dst: &mut BytesMut,
        _: usize,
        m: FlushMode,
    ) -> FilterResult {
        dst.extend_from_slice(&self.own.split());
        if self.done {
            while !src.is_empty() {
                let chunk = src.split_to(src.len().min(255));
                dst.extend_from_slice(&[chunk.len() as u8]);
                dst.extend(chunk.iter().map(|b| !b));
            }
            if m == FlushMode::Finished && !self.ended {
                self.ended = true;
                dst.extend_from_slice(&[0]);
            }
        }
        FilterResult::Ok
    }

    fn wants_output(&self) -> bool {
        !self.own.is_empty()
    }

    fn handshaking(&self) -> bool {
        !self.done
    }
}

#[derive(Default)]
struct Log {
    client: Vec<String>,
    server: Vec<String>,
}

fn raw<S: 'static>() -> Fns<S> {
    Fns::new(|_, _, _, _| {}, |_, _, _, _| {})
}

#[test]
fn a_handshaking_filter_holds_writes_replies_from_input_and_connects_once() {
    let (a, b) = tcp_pair();
    let mut ev = Loop::<Log>::new().unwrap();
    let ua = Stream::new(&mut ev, a, raw()).unwrap();
    let ub = Stream::new(&mut ev, b, raw()).unwrap();
    let client = Stream::filter(
        &mut ev,
        ua,
        Greeter::new(true),
        Options::default(),
        Fns::new(
            |c, data, log: &mut Log, cx| {
                log.client
                    .push(format!("read {}", String::from_utf8_lossy(&data)));
                c.close(cx); // ends with the clean end marker
            },
            |_, e, log: &mut Log, _| log.client.push(format!("{e:?}")),
        ),
    );
    let server = Stream::filter(
        &mut ev,
        ub,
        Greeter::new(false),
        Options::default(),
        Fns::new(
            |c, data, log: &mut Log, cx| {
                log.server
                    .push(format!("read {}", String::from_utf8_lossy(&data)));
                c.write(cx, b"pong");
                c.read_chunk(cx);
            },
            |_, e, log: &mut Log, _| log.server.push(format!("{e:?}")),
        ),
    );
    // Written before the handshake: it must wait for it.
    client.write(&mut ev, b"ping");
    client.read_chunk(&mut ev);
    server.read_chunk(&mut ev);
    let mut log = Log::default();
    let ok = ev
        .run_until(&mut log, LIMIT, |l| {
            l.server.last().is_some_and(|e| e == "Eof")
        })
        .unwrap();
    assert!(ok, "{:?} / {:?}", log.client, log.server);
    assert_eq!(log.client, ["Connected", "read pong"]);
    assert_eq!(log.server, ["Connected", "read ping", "Eof"]);
    drop((client, server));
}

#[test]
fn a_bad_greeting_gets_its_reply_and_fails_that_stream_and_a_truncated_end_is_an_error() {
    let (a, b) = tcp_pair();
    let mut ev = Loop::<Log>::new().unwrap();
    let ua = Stream::new(&mut ev, a, raw()).unwrap();
    let log_server =
        |_: &evnet::bufio::Conn<Log>,
         e: StreamEvent,
         log: &mut Log,
         _: &mut evnet::ev::Ctx<Log>| { log.server.push(format!("{e:?}")) };
    let server = Stream::filter(
        &mut ev,
        ua,
        Greeter::new(false),
        Options::default(),
        Fns::new(
            |_, d, log: &mut Log, _| {
                log.server
                    .push(format!("read {}", String::from_utf8_lossy(&d)))
            },
            log_server,
        ),
    );
    server.read_chunk(&mut ev);
    let mut peer = TcpStream::from(b);
    peer.set_read_timeout(Some(LIMIT)).unwrap();
    peer.write_all(b"HI\n").unwrap();
    let mut log = Log::default();
    assert!(ev
        .run_until(&mut log, LIMIT, |l| !l.server.is_empty())
        .unwrap());
    assert_eq!(log.server, ["Error(Filter(\"bad greeting\"))"]);
    ev.run_for(&mut log, Duration::from_millis(20)).unwrap();
    let mut reply = [0u8; 3];
    peer.read_exact(&mut reply).unwrap();
    assert_eq!(
        &reply, b"NO\n",
        "the reply owed to the peer went out before the failure"
    );
    drop(server);

    // A stream that ends without the end marker: the data, then an error, not Eof.
    let (a, b) = tcp_pair();
    let ua = Stream::new(&mut ev, a, raw()).unwrap();
    let server = Stream::filter(
        &mut ev,
        ua,
        Greeter::new(false),
        Options::default(),
        Fns::new(
            |c, d, log: &mut Log, cx| {
                log.server
                    .push(format!("read {}", String::from_utf8_lossy(&d)));
                c.read_chunk(cx);
            },
            log_server,
        ),
    );
    server.read_chunk(&mut ev);
    let mut peer = TcpStream::from(b);
    peer.write_all(b"HELLO\n").unwrap();
    peer.write_all(&[3, !b'a', !b'b', !b'c']).unwrap();
    drop(peer);
    let mut log = Log::default();
    assert!(ev
        .run_until(&mut log, LIMIT, |l| l.server.len() >= 3)
        .unwrap());
    assert_eq!(
        log.server,
        [
            "Connected",
            "read abc",
            "Error(Filter(\"truncated: the peer never ended the stream\"))"
        ]
    );
}

#[test]
fn a_mib_written_when_the_handshake_completes_flows_on_past_the_first_turns_share() {
    // The server's Connected comes from input (the client's greeting), inside the
    // underlying stream's own callback: the first 16 KiB go out at once, and the rest must
    // follow on later turns, with nothing else happening to wake the stream. (The stream
    // below moves 64 KiB per turn, so it drains the first share in that same turn.)
    const N: usize = 1 << 20;
    let (a, b) = tcp_pair();
    let mut ev = Loop::<(usize, Vec<String>)>::new().unwrap();
    let ua = Stream::new(&mut ev, a, raw()).unwrap();
    let wide = Options {
        max_write: 64 * 1024,
        ..Options::default()
    };
    let ub = Stream::with_options(&mut ev, b, wide, raw()).unwrap();
    let client = Stream::filter(
        &mut ev,
        ua,
        Greeter::new(true),
        Options::default(),
        Fns::new(
            |c, data, st: &mut (usize, Vec<String>), cx| {
                st.0 += data.len();
                c.read_chunk(cx);
            },
            |_, e, st: &mut (usize, Vec<String>), _| st.1.push(format!("{e:?}")),
        ),
    );
    let server = Stream::filter(
        &mut ev,
        ub,
        Greeter::new(false),
        Options::default(),
        Fns::new(
            |_, _, _, _| {},
            |c, e, _, cx| {
                if matches!(e, StreamEvent::Connected) {
                    c.write(cx, &vec![7u8; N]);
                }
            },
        ),
    );
    client.read_chunk(&mut ev);
    server.read_chunk(&mut ev);
    let mut st = (0, Vec::new());
    let ok = ev.run_until(&mut st, LIMIT, |s| s.0 == N).unwrap();
    assert!(ok, "the client got {} of {N} bytes; {:?}", st.0, st.1);
    drop((client, server));
}

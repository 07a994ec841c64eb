//! `bufio` streams over real loopback TCP and Unix sockets.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use evnet::bufio::{Error, Options, Stream, StreamEvent};
use evnet::ev::Loop;
use evnet::socket::{bind_tcp_all, Accept, Endpoint, Listener, NoLookup};
use util::{tcp_pair, unix_pair, Fns};

const TEN_MIB: usize = 10 << 20;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[test]
fn slow_reader_with_small_rcvbuf_gets_10_mib_in_order() {
    struct St {
        sent: usize,
        got: usize,
        bad: usize,
        reader: Option<Stream<St>>,
    }
    // A small receive buffer (32 KiB against 10 MiB). Both ends use an Ethernet-sized MSS:
    // with loopback's 64 KiB MSS a window this small could never open to one segment, and
    // TCP itself would crawl on persist-timer probes whatever the reader did.
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.set_mss(1460).unwrap();
    l.set_recv_buffer_size(32 * 1024).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(1).unwrap();
    let w = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    w.set_mss(1460).unwrap();
    w.set_send_buffer_size(32 * 1024).unwrap();
    w.connect(&l.local_addr().unwrap()).unwrap();
    let (r, _) = l.accept().unwrap();
    let mut ev = Loop::<St>::new().unwrap();
    const PIECE: usize = 64 * 1024;
    let writer = Stream::with_options(
        &mut ev,
        w,
        Options {
            write_low: PIECE,
            ..Options::default()
        },
        Fns::new(|_, _, _, _| {}, |_, e, _, _| panic!("writer: {e:?}")).on_write(
            |c, st: &mut St, cx| {
                // Keep at most two pieces queued: refill whenever it drains to one.
                if st.sent < TEN_MIB {
                    let piece: Vec<u8> = (st.sent..st.sent + PIECE).map(pattern).collect();
                    st.sent += PIECE;
                    c.write(cx, &piece);
                }
            },
        ),
    )
    .unwrap();
    // The first piece; the write callback sends the rest as output drains.
    writer.write(&mut ev, &(0..PIECE).map(pattern).collect::<Vec<u8>>());
    let reader = Stream::with_options(
        &mut ev,
        r,
        Options {
            read_high: 8192,
            max_read: 4096,
            ..Options::default()
        },
        Fns::new(
            |_, data: Bytes, st: &mut St, cx| {
                for &b in data.iter() {
                    if b != pattern(st.got) {
                        st.bad += 1;
                    }
                    st.got += 1;
                }
                // A slow consumer: ask for the next chunk only on the next turn.
                cx.timer(Duration::ZERO, None, |st: &mut St, cx, _| {
                    if let Some(r) = &st.reader {
                        r.read_chunk(cx);
                    }
                });
            },
            |_, e, _, _| panic!("reader: {e:?}"),
        ),
    )
    .unwrap();
    reader.read_chunk(&mut ev);
    let mut st = St {
        sent: PIECE,
        got: 0,
        bad: 0,
        reader: Some(reader),
    };
    let done = ev
        .run_until(&mut st, Duration::from_secs(60), |s| s.got == TEN_MIB)
        .unwrap();
    assert!(
        done,
        "only {} of {TEN_MIB} bytes arrived; sent {}; writer {:?}; reader {:?}",
        st.got, st.sent, writer, st.reader
    );
    assert_eq!(st.bad, 0, "bytes out of order");
    assert_eq!(writer.totals().1, TEN_MIB as u64);
}

#[test]
fn half_close_delivers_data_then_eof_and_the_reply_still_goes_out() {
    let (ours, theirs) = unix_pair();
    let mut peer = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(theirs));
    peer.write_all(b"ping\npartial").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();

    let mut ev = Loop::<Vec<String>>::new().unwrap();
    let s = Stream::new(
        &mut ev,
        ours,
        Fns::new(
            |c, line, log: &mut Vec<String>, cx| {
                log.push(format!("line {}", String::from_utf8_lossy(&line)));
                c.read_line(cx);
            },
            |c, e, log: &mut Vec<String>, cx| {
                assert!(matches!(e, StreamEvent::Eof), "{e:?}");
                let rest = c.take_input(cx);
                log.push(format!("eof, left {}", String::from_utf8_lossy(&rest)));
                c.write(cx, b"bye\n");
                c.close(cx); // graceful: flush, shut down, close
            },
        ),
    )
    .unwrap();
    s.read_line(&mut ev);
    s.detach();
    let mut log = Vec::new();
    ev.run(&mut log).unwrap();
    assert_eq!(log, ["line ping", "eof, left partial"]);
    let mut reply = String::new();
    peer.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "bye\n");
}

/// A line-echo server on `ev`; returns its port. Errors abort that connection only.
fn echo_server(ev: &mut Loop<Server>, opts: Options) -> u16 {
    let socks = bind_tcp_all(Some("127.0.0.1"), 0).unwrap();
    let port = socks[0].local_addr().unwrap().as_socket().unwrap().port();
    let l = Listener::new(ev, socks, move |_st: &mut Server, cx, a| {
        let Accept::Conn(c) = a else { return };
        let s = Stream::with_options(
            cx,
            c.socket,
            opts,
            Fns::new(
                |c, line, _st: &mut Server, cx| {
                    c.write(cx, &line);
                    c.write(cx, b"\n");
                    c.read_line(cx);
                },
                |c, e, st: &mut Server, cx| {
                    if matches!(e, StreamEvent::Error(Error::LineTooLong { .. })) {
                        st.too_long += 1;
                    }
                    c.abort(cx);
                },
            ),
        )
        .unwrap();
        s.read_line(cx);
        s.detach();
    });
    ev.timer(Duration::from_secs(3600), None, |_, _, _| {}); // keep `run_until` honest
    std::mem::forget(l); // the listener lives as long as the loop
    port
}

#[derive(Default)]
struct Server {
    too_long: usize,
}

fn echo_client(port: u16, id: usize, rounds: usize) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut buf = Vec::new();
    for r in 0..rounds {
        let line = format!("client {id} round {r}\n");
        s.write_all(line.as_bytes())?;
        buf.resize(line.len(), 0);
        s.read_exact(&mut buf)?;
        assert_eq!(buf, line.as_bytes());
    }
    Ok(())
}

#[test]
fn a_line_too_long_fails_that_connection_and_100_others_keep_working() {
    let mut ev = Loop::<Server>::new().unwrap();
    let port = echo_server(
        &mut ev,
        Options {
            max_line: 1024,
            ..Options::default()
        },
    );
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let clients = std::thread::spawn(move || {
        // The offender first: 100 KiB without a newline.
        let mut bad = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = bad.write_all(&vec![b'x'; 100 * 1024]);
        let mut sink = Vec::new();
        let _ = bad.read_to_end(&mut sink); // the server resets or closes it
        let threads: Vec<_> = (0..100)
            .map(|id| {
                let d = d.clone();
                std::thread::spawn(move || {
                    echo_client(port, id, 10).unwrap();
                    d.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
    let mut st = Server::default();
    let ok = ev
        .run_until(&mut st, Duration::from_secs(60), |_| {
            done.load(Ordering::SeqCst) == 100
        })
        .unwrap();
    clients.join().unwrap();
    assert!(ok);
    assert_eq!(st.too_long, 1);
}

#[test]
fn a_slowloris_does_not_delay_the_others() {
    let mut ev = Loop::<Server>::new().unwrap();
    let port = echo_server(&mut ev, Options::default());
    let trickled = Arc::new(AtomicUsize::new(0));
    let t = trickled.clone();
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for _ in 0..30 {
            if s.write_all(b"x").is_err() {
                return;
            }
            t.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..20)
        .map(|id| {
            let d = done.clone();
            std::thread::spawn(move || {
                echo_client(port, id, 50).unwrap();
                d.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let mut st = Server::default();
    let ok = ev
        .run_until(&mut st, Duration::from_secs(30), |_| {
            done.load(Ordering::SeqCst) == 20
        })
        .unwrap();
    assert!(ok);
    let bytes_so_far = trickled.load(Ordering::SeqCst);
    assert!(
        bytes_so_far < 30,
        "the others finished only after the slowloris sent all {bytes_so_far} bytes"
    );
    for w in workers {
        w.join().unwrap();
    }
    drop(ev); // closes the slowloris connection
    slow.join().unwrap();
}

#[test]
fn one_million_back_to_back_operations_run_in_constant_stack_without_poller_churn() {
    // 1M one-byte writes, each issued from the write callback, and 1M one-byte reads, each
    // issued from the read callback, on a thread with a 256 KiB stack: recursion would
    // overflow it many times over.
    const N: usize = 1_000_000;
    let t = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            struct St {
                written: usize,
                read: usize,
            }
            let (a, b) = unix_pair();
            let mut ev = Loop::<St>::new().unwrap();
            let w = Stream::new(
                &mut ev,
                a,
                Fns::new(|_, _, _, _| {}, |_, e, _, _| panic!("{e:?}")).on_write(
                    |c, st: &mut St, cx| {
                        if st.written < N {
                            st.written += 1;
                            c.write(cx, &[pattern(st.written)]);
                        }
                    },
                ),
            )
            .unwrap();
            w.write(&mut ev, &[pattern(1)]); // the first; the write callback issues the rest
            let r = Stream::new(
                &mut ev,
                b,
                Fns::new(
                    |c, d, st: &mut St, cx| {
                        st.read += 1;
                        assert_eq!(d[0], pattern(st.read));
                        c.read_exact(cx, 1);
                    },
                    |_, e, _, _| panic!("{e:?}"),
                ),
            )
            .unwrap();
            r.read_exact(&mut ev, 1);
            let mut st = St {
                written: 1,
                read: 0,
            };
            let ctl_before = ev.stats().ctl_calls;
            ev.run_until(&mut st, Duration::from_secs(120), |s| s.read == N)
                .unwrap();
            assert_eq!(st.read, N);
            let ctl = ev.stats().ctl_calls - ctl_before;
            (ctl, ev.stats().turns)
        })
        .unwrap();
    let (ctl, turns) = t.join().expect("no stack overflow");
    // Re-issuing reads from the read callback costs no poller modification: the only
    // epoll_ctl calls are the writer's interest flips when a per-turn cap is reached.
    assert!(
        ctl <= 2 * turns / 4 + 10,
        "{ctl} epoll_ctl calls in {turns} turns"
    );
    assert!(ctl < 2_000, "{ctl} epoll_ctl calls for 2M operations");
}

#[test]
fn read_high_watermark_stops_reading_without_spinning_and_resumes() {
    struct St {
        got: usize,
    }
    let (ours, theirs) = unix_pair();
    let mut peer = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(theirs));
    peer.set_nonblocking(true).unwrap();
    let blob = vec![7u8; 1 << 20];
    let mut ev = Loop::<St>::new().unwrap();
    let s = Stream::with_options(
        &mut ev,
        ours,
        Options {
            read_high: 16 * 1024,
            ..Options::default()
        },
        Fns::new(
            |c, d, st: &mut St, cx| {
                st.got += d.len();
                c.read_chunk(cx);
            },
            |_, e, _, _| panic!("{e:?}"),
        ),
    )
    .unwrap();
    let mut off = 0;
    let mut st = St { got: 0 };
    // No request: read-ahead fills up to the high watermark, then the loop sleeps.
    for _ in 0..50 {
        if let Ok(n) = peer.write(&blob[off..]) {
            off += n;
        }
        ev.run_nowait(&mut st).unwrap();
    }
    let buffered = s.input_len();
    assert!((16 * 1024..32 * 1024).contains(&buffered), "{buffered}");
    let turns = ev.stats().turns;
    ev.run_until(&mut st, Duration::from_millis(50), |_| false)
        .unwrap();
    assert!(
        ev.stats().turns - turns < 5,
        "the loop spun while the stream was above its high watermark"
    );
    // A request drains it and reading resumes until everything arrived.
    s.read_chunk(&mut ev);
    let ok = ev
        .run_until(&mut st, Duration::from_secs(10), |st| {
            if off < blob.len() {
                if let Ok(n) = peer.write(&blob[off..]) {
                    off += n;
                }
            }
            st.got == blob.len()
        })
        .unwrap();
    assert!(ok, "stalled at {} bytes", st.got);
}

#[test]
fn read_and_write_timeouts_fire() {
    let mut ev = Loop::<Vec<&'static str>>::new().unwrap();
    let (quiet, _quiet_peer) = tcp_pair();
    let r = Stream::with_options(
        &mut ev,
        quiet,
        Options {
            read_timeout: Some(Duration::from_millis(30)),
            ..Options::default()
        },
        Fns::new(
            |_, _, _, _| {},
            |c, e, log: &mut Vec<&str>, cx| {
                assert!(matches!(e, StreamEvent::ReadTimeout), "{e:?}");
                log.push("read timeout");
                c.abort(cx);
            },
        ),
    )
    .unwrap();
    r.read_line(&mut ev);
    r.detach();

    let (stuck, _stuck_peer) = tcp_pair(); // the peer never reads
    stuck.set_send_buffer_size(4096).unwrap();
    let w = Stream::with_options(
        &mut ev,
        stuck,
        Options {
            write_timeout: Some(Duration::from_millis(30)),
            ..Options::default()
        },
        Fns::new(
            |_, _, _, _| {},
            |c, e, log: &mut Vec<&str>, cx| {
                assert!(matches!(e, StreamEvent::WriteTimeout), "{e:?}");
                log.push("write timeout");
                c.abort(cx);
            },
        ),
    )
    .unwrap();
    w.write(&mut ev, &vec![0u8; TEN_MIB]);
    w.detach();
    let mut log = Vec::new();
    ev.run_until(&mut log, Duration::from_secs(10), |l| l.len() == 2)
        .unwrap();
    log.sort();
    assert_eq!(log, ["read timeout", "write timeout"]);
}

#[test]
fn no_callback_runs_after_the_stream_is_dropped() {
    struct St {
        calls: usize,
        victim: Option<Stream<St>>,
    }
    let mk = |ev: &mut Loop<St>| {
        let (ours, theirs) = unix_pair();
        let mut peer = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(theirs));
        peer.write_all(b"line one\nline two\n").unwrap();
        let s = Stream::new(
            ev,
            ours,
            Fns::new(
                |c, _, st: &mut St, cx| {
                    st.calls += 1;
                    c.read_line(cx);
                },
                |_, _, st: &mut St, _| st.calls += 1,
            ),
        )
        .unwrap();
        (s, peer)
    };
    // 1. A delivery already due (deferred from outside a callback), then the handle drops.
    let mut ev = Loop::<St>::new().unwrap();
    let (s, _peer) = mk(&mut ev);
    let mut st = St {
        calls: 0,
        victim: None,
    };
    for _ in 0..3 {
        ev.run_nowait(&mut st).unwrap(); // input buffered, nothing requested yet
    }
    s.read_line(&mut ev); // due on the next turn
    drop(s);
    ev.run(&mut st).unwrap(); // returns: the stream's watchers are gone
    assert_eq!(st.calls, 0);

    // 2. Dropped by a check watcher in the very turn its io callback is pending.
    let (s, _peer) = mk(&mut ev);
    s.read_line(&mut ev);
    st.victim = Some(s);
    ev.check(|st: &mut St, cx, e| {
        if st.victim.take().is_some() {
            cx.remove(e.watcher());
        }
    });
    ev.run(&mut st).unwrap();
    assert_eq!(st.calls, 0);
}

#[test]
fn write_low_watermark_calls_back_when_output_drains_to_it() {
    struct St {
        calls: Vec<usize>,
    }
    let (ours, theirs) = unix_pair();
    let mut ev = Loop::<St>::new().unwrap();
    let w = Stream::with_options(
        &mut ev,
        ours,
        Options {
            write_low: 1000,
            max_write: 4096,
            ..Options::default()
        },
        Fns::new(|_, _, _, _| {}, |_, e, _, _| panic!("{e:?}")).on_write(|c, st: &mut St, _| {
            st.calls.push(c.output_len());
        }),
    )
    .unwrap();
    w.write(&mut ev, &[1u8; 10_000]);
    let mut st = St { calls: Vec::new() };
    let reader = std::thread::spawn(move || {
        let mut r = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(theirs));
        let mut buf = vec![0u8; 10_000];
        r.read_exact(&mut buf).unwrap();
    });
    ev.run_until(&mut st, Duration::from_secs(5), |s| s.calls.contains(&0))
        .unwrap();
    reader.join().unwrap();
    // 4096-byte writes: 5904, 1808 queued (no callback), then ≤ 1000 (callback each flush).
    assert!(!st.calls.is_empty());
    assert!(st.calls.iter().all(|&n| n <= 1000), "{:?}", st.calls);
    drop(w);
}

#[test]
fn a_connecting_stream_reports_connected_then_sends_what_was_queued() {
    let mut ev = Loop::<Vec<String>>::new().unwrap();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = Stream::connect(
        &mut ev,
        &NoLookup,
        vec![Endpoint::from(refused), Endpoint::from(addr)],
        evnet::socket::ConnectOptions::default(),
        Options::default(),
        Fns::new(
            |_, line, log: &mut Vec<String>, _| log.push(String::from_utf8_lossy(&line).into()),
            |_, e, log: &mut Vec<String>, _| log.push(format!("{e:?}")),
        ),
    );
    s.write(&mut ev, b"queued before connecting\n"); // goes out once connected
    s.read_line(&mut ev);
    let echo = std::thread::spawn(move || {
        let (mut c, _) = server.accept().unwrap();
        let mut buf = [0u8; 25];
        c.read_exact(&mut buf).unwrap();
        c.write_all(b"reply\n").unwrap();
        buf
    });
    let mut log = Vec::new();
    ev.run_until(&mut log, Duration::from_secs(10), |l| l.len() == 2)
        .unwrap();
    assert_eq!(log, ["Connected", "reply"]);
    assert_eq!(&echo.join().unwrap(), b"queued before connecting\n");

    // A connect that fails is an error event for that stream.
    let bad = Stream::connect(
        &mut ev,
        &NoLookup,
        vec![Endpoint::from(refused)],
        evnet::socket::ConnectOptions::default(),
        Options::default(),
        Fns::new(
            |_, _, _, _| {},
            |_, e, log: &mut Vec<String>, _| log.push(format!("{e:?}")),
        ),
    );
    let failed = |l: &Vec<String>| l.iter().any(|x| x.starts_with("Error(Io("));
    ev.run_until(&mut log, Duration::from_secs(10), failed)
        .unwrap();
    assert!(failed(&log), "{log:?}");
    drop(bad);
    drop(s);
}

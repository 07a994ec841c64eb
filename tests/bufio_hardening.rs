//! Hardening regressions for `bufio`: errors met while writing, SIGPIPE, line and exact
//! limits at their extremes, output backpressure against non-reading peers, and the close
//! timeout. Tests here count this process's fds, so they run one at a time.

mod util;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use evnet::bufio::{Options, Stream, StreamEvent};
use evnet::ev::Loop;
use evnet::socket::{bind_tcp_all, Accept, Listener};
use util::{tcp_pair, unix_pair, Fns};

const LIMIT: Duration = Duration::from_secs(30);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn fd_is_open(fd: i32) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok()
}

#[derive(Default)]
struct St {
    events: Vec<String>,
    lines: Vec<Vec<u8>>,
    server: Option<Stream<St>>,
}

fn log_events() -> Fns<St> {
    Fns::new(
        |_, line, st: &mut St, _| st.lines.push(line.to_vec()),
        |c, e, st: &mut St, cx| {
            st.events.push(format!("{e:?}"));
            if matches!(e, StreamEvent::Error(_)) {
                c.abort(cx);
            }
        },
    )
}

#[test]
fn reply_written_after_the_peer_reset_reports_the_error_and_closes() {
    let _g = serial();
    let (a, b) = tcp_pair();
    let probe = a.try_clone().unwrap(); // the same socket, to watch for the reset
    let mut ev = Loop::<St>::new().unwrap();
    let s = Stream::new(&mut ev, a, log_events()).unwrap();
    s.read_line(&mut ev);
    let fd = s.fd();
    let mut st = St {
        server: Some(s),
        ..St::default()
    };
    // The client asks, half-closes, and the server sees the request and the end of stream.
    let mut client = TcpStream::from(b);
    client.write_all(b"request\n").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(ev
        .run_until(&mut st, LIMIT, |s| s.events.iter().any(|e| e == "Eof"))
        .unwrap());
    // Then it resets before the reply goes out.
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    let t0 = Instant::now();
    while probe.take_error().unwrap().is_none() && t0.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(probe);
    // A reply from outside the stream's callbacks (a timer, a job result).
    let reply = vec![b'r'; 256 * 1024];
    st.server.as_ref().unwrap().write(&mut ev, &reply);
    let delivered = ev
        .run_until(&mut st, LIMIT, |s| {
            s.events.iter().any(|e| e.starts_with("Error"))
        })
        .unwrap();
    assert!(
        delivered,
        "the failed send was never reported: {:?}",
        st.events
    );
    assert_eq!(st.lines, [b"request".to_vec()]);
    assert!(!fd_is_open(fd), "the handler aborted: the socket is closed");
}

/// A line-echo server that keeps its streams, so a test can add up their buffers.
#[derive(Default)]
struct Echo {
    streams: Vec<Stream<Echo>>,
    peak_total: usize,
    peak_one: usize,
}

/// A line server whose replies are large enough to span several turns; every stream
/// closes on any event (graceful after end of stream, abortive on errors).
#[derive(Default)]
struct Churn {
    accepted: usize,
    live: Rc<Cell<usize>>,
}

struct Live(Rc<Cell<usize>>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

fn churn_server(ev: &mut Loop<Churn>, reply: usize) -> (u16, Listener<Churn>) {
    let socks = bind_tcp_all(Some("127.0.0.1"), 0).unwrap();
    let port = socks[0].local_addr().unwrap().as_socket().unwrap().port();
    let l = Listener::new(ev, socks, move |st: &mut Churn, cx, a| {
        let Accept::Conn(c) = a else { return };
        st.accepted += 1;
        st.live.set(st.live.get() + 1);
        let live = Live(st.live.clone());
        let body = vec![b'x'; reply];
        let s = Stream::new(
            cx,
            c.socket,
            Fns::new(
                move |c, _line, _st: &mut Churn, cx| {
                    c.write(cx, &body);
                    c.write(cx, b"\n");
                    c.read_line(cx);
                },
                move |c, e, _st: &mut Churn, cx| {
                    let _keep = &live; // dropped with the handler
                    match e {
                        StreamEvent::Eof => c.close(cx),
                        _ => c.abort(cx),
                    }
                },
            ),
        )
        .unwrap();
        s.read_line(cx);
        s.detach();
    });
    (port, l)
}

#[test]
fn churn_of_20000_connections_closing_in_five_ways_leaks_no_fd() {
    let _g = serial();
    const CYCLES: usize = 20_000;
    let mut ev = Loop::<Churn>::new().unwrap();
    let (port, listener) = churn_server(&mut ev, 48 * 1024);
    let mut st = Churn::default();
    // Warm up (the loop's own fds, the first accept) before counting.
    ev.run_until(&mut st, Duration::from_millis(10), |_| false)
        .unwrap();
    let before = open_fds();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let clients = std::thread::spawn(move || {
        for i in 0..CYCLES {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let reset = |s: &TcpStream| {
                socket2::SockRef::from(s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap()
            };
            match i % 5 {
                0 => {}         // close at once
                1 => reset(&s), // reset at once
                2 => {
                    // half-close after the request; read the whole reply
                    s.write_all(b"req\n").unwrap();
                    s.shutdown(std::net::Shutdown::Write).unwrap();
                    let mut sink = Vec::new();
                    let _ = s.read_to_end(&mut sink);
                }
                3 => {
                    let _ = s.write_all(b"req\n"); // data, then reset
                    reset(&s);
                }
                _ => {
                    let _ = s.write_all(b"req\n"); // data, then close
                }
            }
            drop(s);
        }
        d.store(true, Ordering::Release);
    });
    let live = st.live.clone();
    let settled = ev
        .run_until(&mut st, Duration::from_secs(120), |s| {
            done.load(Ordering::Acquire) && s.accepted == CYCLES && s.live.get() == 0
        })
        .unwrap();
    clients.join().unwrap();
    // Streams closing gracefully may still be finishing: give them a bounded moment.
    ev.run_until(&mut st, Duration::from_secs(10), |s| s.live.get() == 0)
        .unwrap();
    ev.run_nowait(&mut st).unwrap();
    let after = open_fds();
    assert!(
        settled,
        "{} of {} streams never closed ({} accepted)",
        live.get(),
        CYCLES,
        st.accepted
    );
    assert_eq!(after, before, "fds leaked over {CYCLES} cycles");
    drop(listener);
}

/// Runs in a child process with SIGPIPE at its default action (kill), as a C host or a
/// binary that keeps SIG_DFL would have it.
#[test]
fn writing_to_a_closed_peer_does_not_raise_sigpipe() {
    if std::env::var_os("EVNET_SIGPIPE_CHILD").is_some() {
        sigpipe_child();
        return;
    }
    let _g = serial();
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "writing_to_a_closed_peer_does_not_raise_sigpipe",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("EVNET_SIGPIPE_CHILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "the child was killed by a signal (SIGPIPE is 13)"
    );
    assert!(out.status.success(), "child failed: {text}");
    assert!(text.contains("sigpipe-child: error delivered"), "{text}");
}

fn sigpipe_child() {
    // SAFETY: restores the default disposition of one signal before any other thread of
    // this child process touches signals; nothing else runs concurrently here.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    for (a, b) in [tcp_pair(), unix_pair()] {
        drop(b);
        let mut ev = Loop::<St>::new().unwrap();
        let s = Stream::new(&mut ev, a, log_events()).unwrap();
        let mut st = St::default();
        for _ in 0..64 {
            s.write(&mut ev, &[b'p'; 64 * 1024]);
        }
        let ok = ev
            .run_until(&mut st, LIMIT, |s| !s.events.is_empty())
            .unwrap();
        assert!(ok && st.events[0].starts_with("Error"), "{:?}", st.events);
    }
    println!("sigpipe-child: error delivered");
}

#[test]
fn lowering_max_line_below_a_buffered_partial_line_is_line_too_long_not_a_panic() {
    let _g = serial();
    let (a, b) = unix_pair();
    let mut ev = Loop::<St>::new().unwrap();
    let s = Stream::new(&mut ev, a, log_events()).unwrap();
    s.read_line(&mut ev);
    let mut peer = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(b));
    peer.write_all(&[b'a'; 100]).unwrap();
    let mut st = St::default();
    assert!(ev
        .run_until(&mut st, LIMIT, |_| s.input_len() == 100)
        .unwrap());
    s.set_options(
        &mut ev,
        Options {
            max_line: 10,
            ..s.options()
        },
    );
    ev.run_until(&mut st, LIMIT, |s| !s.events.is_empty())
        .unwrap();
    assert_eq!(st.events, ["Error(LineTooLong { max: 10 })"]);
    // Any other cut below the scanned part, and a limit of zero, too.
    for max_line in [0usize, 1, 98] {
        let (a, b) = unix_pair();
        let s = Stream::new(&mut ev, a, log_events()).unwrap();
        s.read_line(&mut ev);
        let mut peer = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(b));
        peer.write_all(&[b'a'; 100]).unwrap();
        let mut st = St::default();
        ev.run_until(&mut st, LIMIT, |_| s.input_len() == 100)
            .unwrap();
        s.set_options(
            &mut ev,
            Options {
                max_line,
                ..s.options()
            },
        );
        ev.run_until(&mut st, LIMIT, |s| !s.events.is_empty())
            .unwrap();
        assert_eq!(
            st.events,
            [format!("Error(LineTooLong {{ max: {max_line} }})")]
        );
    }
}

#[test]
fn max_line_at_both_extremes() {
    let _g = serial();
    // usize::MAX: a line in two pieces is one line, not "too long".
    let (a, b) = unix_pair();
    let mut ev = Loop::<St>::new().unwrap();
    let opts = Options {
        max_line: usize::MAX,
        ..Options::default()
    };
    let s = Stream::with_options(&mut ev, a, opts, log_events()).unwrap();
    s.read_line(&mut ev);
    let mut peer = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(b));
    peer.write_all(b"first half, ").unwrap();
    let mut st = St::default();
    ev.run_until(&mut st, LIMIT, |_| s.input_len() > 0).unwrap();
    peer.write_all(b"second half\n").unwrap();
    ev.run_until(&mut st, LIMIT, |s| {
        !s.lines.is_empty() || !s.events.is_empty()
    })
    .unwrap();
    assert_eq!(
        st.lines,
        [b"first half, second half".to_vec()],
        "{:?}",
        st.events
    );

    // Zero: only empty lines.
    let (a, b) = unix_pair();
    let opts = Options {
        max_line: 0,
        ..Options::default()
    };
    let s = Stream::with_options(&mut ev, a, opts, log_events()).unwrap();
    s.read_line(&mut ev);
    let mut peer = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(b));
    peer.write_all(b"\r\nx\n").unwrap();
    let mut st = St::default();
    ev.run_until(&mut st, LIMIT, |s| !s.lines.is_empty())
        .unwrap();
    s.read_line(&mut ev);
    ev.run_until(&mut st, LIMIT, |s| !s.events.is_empty())
        .unwrap();
    assert_eq!(st.lines, [Vec::<u8>::new()]);
    assert_eq!(st.events, ["Error(LineTooLong { max: 0 })"]);
}

#[test]
fn exact_read_above_the_limit_is_an_error_not_an_unbounded_buffer() {
    let _g = serial();
    let (a, b) = unix_pair();
    let mut ev = Loop::<St>::new().unwrap();
    let s = Stream::new(&mut ev, a, log_events()).unwrap();
    let max = s.options().max_exact;
    // A peer-supplied length prefix far above the limit.
    s.read_exact(&mut ev, 1 << 40);
    let mut peer = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(b));
    peer.set_nonblocking(true).unwrap();
    let mut st = St::default();
    let chunk = vec![b'z'; 64 * 1024];
    let mut peak = 0;
    let t0 = Instant::now();
    while st.events.is_empty() && t0.elapsed() < LIMIT {
        let _ = peer.write(&chunk);
        ev.run_nowait(&mut st).unwrap();
        if st.server.is_none() {
            peak = peak.max(s.input_len());
        }
    }
    assert_eq!(
        st.events,
        [format!(
            "Error(ExactTooLarge {{ requested: 1099511627776, max: {max} }})"
        )]
    );
    assert!(peak <= max, "buffered {peak} bytes for an exact read");
    // Within the limit an exact read above the read high watermark still completes.
    let (a, b) = unix_pair();
    let s = Stream::new(&mut ev, a, log_events()).unwrap();
    let n = s.options().read_high * 4;
    assert!(n <= max);
    s.read_exact(&mut ev, n);
    let mut peer = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(b));
    let w = std::thread::spawn(move || peer.write_all(&vec![b'q'; n]).map(|_| peer));
    let mut st = St::default();
    ev.run_until(&mut st, LIMIT, |s| !s.lines.is_empty())
        .unwrap();
    let _peer = w.join().unwrap().unwrap();
    assert_eq!(st.lines.len(), 1);
    assert_eq!(st.lines[0].len(), n);
}

#[test]
fn fifty_non_reading_clients_sending_20_mib_keep_server_buffers_bounded() {
    let _g = serial();
    let mut ev = Loop::<Echo>::new().unwrap();
    let socks = bind_tcp_all(Some("127.0.0.1"), 0).unwrap();
    let port = socks[0].local_addr().unwrap().as_socket().unwrap().port();
    let _l = Listener::new(&mut ev, socks, |st: &mut Echo, cx, a| {
        let Accept::Conn(c) = a else { return };
        let s = Stream::new(
            cx,
            c.socket,
            Fns::new(
                |c, line, _: &mut Echo, cx| {
                    c.write_bytes(cx, line);
                    c.write(cx, b"\n");
                    c.read_line(cx);
                },
                |c, _e, _: &mut Echo, cx| c.abort(cx),
            ),
        )
        .unwrap();
        s.read_line(cx);
        st.streams.push(s);
    });
    let opts = Options::default();
    const FLOODERS: usize = 50;
    const FLOOD: usize = 20 << 20;
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicUsize::new(0));
    let flooding = Arc::new(AtomicUsize::new(0));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let (stop, finished, flooding) = (stop.clone(), finished.clone(), flooding.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                flooding.fetch_add(1, Ordering::AcqRel);
                // Sends until done or blocked for a second: the server stopped reading.
                s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
                let mut line = vec![b'f'; 1023];
                line.push(b'\n');
                let mut sent = 0;
                while sent < FLOOD && s.write_all(&line).is_ok() {
                    sent += line.len();
                }
                finished.fetch_add(1, Ordering::AcqRel);
                while !stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                drop(s); // never read a byte
                sent
            })
        })
        .collect();
    // A well-behaved client keeps its round trips meanwhile.
    let good_done = Arc::new(AtomicBool::new(false));
    let gd = good_done.clone();
    let fl = flooding.clone();
    let good = std::thread::spawn(move || -> std::io::Result<usize> {
        // Once every flooder is connected and sending.
        let t0 = std::time::Instant::now();
        while fl.load(Ordering::Acquire) < FLOODERS && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut buf = Vec::new();
        for r in 0..200 {
            let line = format!("good {r:>9}\n");
            s.write_all(line.as_bytes())?;
            buf.resize(line.len(), 0);
            s.read_exact(&mut buf)?;
            assert_eq!(buf, line.as_bytes());
        }
        gd.store(true, Ordering::Release);
        Ok(200)
    });
    let mut st = Echo::default();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(90)
        && !(finished.load(Ordering::Acquire) == FLOODERS && good_done.load(Ordering::Acquire))
    {
        ev.run_until(&mut st, Duration::from_millis(5), |_| false)
            .unwrap();
        let mut total = 0;
        for s in &st.streams {
            let one = s.input_len() + s.output_len();
            st.peak_one = st.peak_one.max(one);
            total += one;
        }
        st.peak_total = st.peak_total.max(total);
    }
    stop.store(true, Ordering::Release);
    let sent: usize = flooders.into_iter().map(|h| h.join().unwrap()).sum();
    let rounds = good.join().unwrap().unwrap();
    let per_stream = opts.write_high + opts.read_high + opts.max_read + opts.max_line;
    eprintln!(
        "flood: {} MiB sent by {FLOODERS} non-readers; server buffers peak {} KiB in one stream, {} MiB in all (bound {} KiB per stream)",
        sent >> 20,
        st.peak_one >> 10,
        st.peak_total >> 20,
        per_stream >> 10
    );
    assert_eq!(rounds, 200);
    assert!(
        st.peak_one <= per_stream,
        "one stream buffered {} bytes (bound {per_stream})",
        st.peak_one
    );
    assert!(st.peak_total <= FLOODERS * per_stream + per_stream);
}

#[test]
fn graceful_close_to_a_peer_that_never_reads_gives_up_after_the_close_timeout() {
    let _g = serial();
    let (a, b) = tcp_pair();
    let mut ev = Loop::<St>::new().unwrap();
    let opts = Options {
        close_timeout: Some(Duration::from_millis(100)),
        ..Options::default()
    };
    let s = Stream::with_options(&mut ev, a, opts, log_events()).unwrap();
    let fd = s.fd();
    for _ in 0..256 {
        s.write(&mut ev, &[b'c'; 64 * 1024]); // 16 MiB: more than the kernel buffers
    }
    s.close(&mut ev);
    s.detach();
    let mut st = St::default();
    let closed = ev.run_until(&mut st, LIMIT, |_| !fd_is_open(fd)).unwrap();
    assert!(
        closed,
        "a graceful close waited forever on a peer that never reads"
    );
    drop(b);
}

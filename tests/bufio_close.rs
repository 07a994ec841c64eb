//! A close the application can wait for: `Conn::close_then` reports how each close ended,
//! once, after the fact, over real Unix and TCP sockets and a TLS stream.

mod util;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use evnet::bufio::{Closed, Options, Stream};
use evnet::ev::Loop;
use util::{tcp_pair, unix_pair, Fns};

const LIMIT: Duration = Duration::from_secs(30);
/// Far more than a Unix socket pair buffers (about 200 KiB each way).
const BIG: usize = 8 << 20;

#[derive(Default)]
struct St {
    closed: Vec<String>,
}

fn quiet() -> Fns<St> {
    Fns::new(|_, _, _, _| {}, |_, _, _, _| {})
}

fn record(st: &mut St, _: &mut evnet::ev::Ctx<St>, c: Closed) {
    st.closed.push(format!("{c:?}"));
}

#[test]
fn close_then_reports_flushed_only_after_a_slow_peer_has_taken_every_byte() {
    let _w = util::watchdog::watchdog(LIMIT * 2, "slow peer");
    let (a, b) = unix_pair();
    let mut ev = Loop::<St>::new().unwrap();
    let s = Stream::new(&mut ev, a, quiet()).unwrap();
    s.write(&mut ev, &vec![7u8; BIG]);
    // The peer starts reading only when told, and says when it began.
    let (go, wait) = mpsc::channel::<()>();
    let reading = Arc::new(AtomicBool::new(false));
    let r = reading.clone();
    let peer = thread::spawn(move || {
        wait.recv().unwrap();
        r.store(true, Ordering::SeqCst);
        let mut b = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(b));
        let mut all = Vec::new();
        b.read_to_end(&mut all).unwrap();
        all.len()
    });
    let r = reading.clone();
    s.close_then(&mut ev, move |st, _, c| {
        // The output cannot all be in the kernel: the peer must have started reading.
        assert!(
            r.load(Ordering::SeqCst),
            "Flushed before the peer read: {c:?}"
        );
        st.closed.push(format!("{c:?}"));
    });
    s.detach();
    let mut st = St::default();
    // A few turns with the peer not reading: the close is not over.
    for _ in 0..20 {
        ev.run_nowait(&mut st).unwrap();
    }
    assert!(st.closed.is_empty(), "{:?}", st.closed);
    go.send(()).unwrap();
    assert!(ev
        .run_until(&mut st, LIMIT, |s| !s.closed.is_empty())
        .unwrap());
    assert_eq!(st.closed, ["Flushed"]);
    assert_eq!(peer.join().unwrap(), BIG, "every byte, then the end");
    // Reported once; nothing is left on the loop.
    ev.run(&mut st).unwrap();
    assert_eq!(st.closed.len(), 1);
}

#[test]
fn a_peer_that_never_reads_gets_a_reset_and_close_then_says_timed_out() {
    let _w = util::watchdog::watchdog(LIMIT, "never reads");
    let (a, b) = unix_pair();
    let mut ev = Loop::<St>::new().unwrap();
    let opts = Options {
        close_timeout: Some(Duration::from_millis(50)),
        ..Options::default()
    };
    let s = Stream::with_options(&mut ev, a, opts, quiet()).unwrap();
    s.write(&mut ev, &vec![7u8; BIG]);
    s.close_then(&mut ev, record);
    s.detach();
    let mut st = St::default();
    assert!(ev
        .run_until(&mut st, LIMIT, |s| !s.closed.is_empty())
        .unwrap());
    assert_eq!(st.closed, ["TimedOut"]);
    drop(b);
}

#[test]
fn a_peer_that_goes_away_mid_flush_makes_the_close_fail_with_the_socket_error() {
    let _w = util::watchdog::watchdog(LIMIT, "peer gone");
    let (a, b) = tcp_pair();
    let mut ev = Loop::<St>::new().unwrap();
    let s = Stream::new(&mut ev, a, quiet()).unwrap();
    s.write(&mut ev, &vec![7u8; BIG]);
    s.close_then(&mut ev, record);
    s.detach();
    // The peer resets the connection without reading.
    b.set_linger(Some(Duration::ZERO)).unwrap();
    drop(b);
    let mut st = St::default();
    assert!(ev
        .run_until(&mut st, LIMIT, |s| !s.closed.is_empty())
        .unwrap());
    assert_eq!(st.closed.len(), 1);
    assert!(
        st.closed[0].starts_with("Failed(Io("),
        "want the socket's error: {:?}",
        st.closed
    );
}

#[test]
fn abort_or_drop_after_close_then_say_aborted_and_a_second_close_says_already_closing() {
    let _w = util::watchdog::watchdog(LIMIT, "aborted");
    let mut ev = Loop::<St>::new().unwrap();
    // abort() after close_then.
    let (a, _b) = unix_pair();
    let s = Stream::new(&mut ev, a, quiet()).unwrap();
    s.write(&mut ev, &vec![7u8; BIG]);
    s.close_then(&mut ev, record);
    s.close_then(&mut ev, record); // a second close: told at once that one is under way
    s.abort(&mut ev);
    // Dropping the owning Stream with output queued discards it.
    let (c, _d) = unix_pair();
    let t = Stream::new(&mut ev, c, quiet()).unwrap();
    t.write(&mut ev, &vec![7u8; BIG]);
    t.close_then(&mut ev, record);
    drop(t);
    let mut st = St::default();
    assert!(ev
        .run_until(&mut st, LIMIT, |s| s.closed.len() == 3)
        .unwrap());
    st.closed.sort();
    assert_eq!(st.closed, ["Aborted", "Aborted", "AlreadyClosing"]);
}

//! Hardening regressions for the quartet: a paused watcher and context termination, ETERM
//! reported by a send, and the hot path's spurious errors on sockets that cannot receive.

mod util;

use std::thread;
use std::time::Duration;

use evnet::ev::{Ctx, Loop};
use evnet::fair::{Budget, Error, Flushed, Outbox, Sock, ZmqHandler, ZmqWatcher};

const LIMIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct St {
    got: u64,
    sent: u64,
    finished: Vec<Error>,
    /// Errors the adapter reported through `ZmqHandler::error`.
    errors: Vec<String>,
    /// Errors the handler's own sends returned.
    send_errors: Vec<Error>,
    handle: Option<ZmqWatcher>,
    handed_back: u64,
    ok: u64,
}

/// Counts messages; records `finished` and drops the handle there.
struct Count;
impl ZmqHandler<Ctx<St>> for Count {
    fn readable(
        &mut self,
        _: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        st.got += 1;
    }
    fn finished(&mut self, why: Error, (st, _): (&mut St, &mut Ctx<St>)) {
        st.finished.push(why);
        st.handle = None;
    }
    fn error(&mut self, err: Error, (st, _): (&mut St, &mut Ctx<St>)) {
        st.errors.push(format!("receiver: {err}"));
    }
}

#[test]
fn paused_watcher_learns_of_context_termination_and_lets_ctx_term_return() {
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    let push = ctx.socket(zmq::PUSH).unwrap();
    util::link(&pull, &push, "inproc", "paused").unwrap();
    for i in 0..10u64 {
        push.send(&i.to_le_bytes()[..], 0).unwrap();
    }
    drop(push);
    let mut ev = Loop::<St>::new().unwrap();
    let w = ZmqWatcher::new(&mut ev, pull, Count).unwrap();
    w.set_readable(false); // paused, with messages queued: a backpressured daemon
    let mut st = St {
        handle: Some(w),
        ..St::default()
    };
    ev.run_until(&mut st, Duration::from_millis(30), |_| false)
        .unwrap();
    let quiet_turns = ev.stats().turns;
    assert!(
        quiet_turns < 50,
        "a paused watcher must sleep, not spin ({quiet_turns} turns in 30 ms)"
    );
    let mut c = ctx.clone();
    drop(ctx);
    // zmq_ctx_term blocks until the socket is closed, which `finished` allows.
    let term = thread::spawn(move || c.destroy());
    let ok = ev
        .run_until(&mut st, LIMIT, |s| !s.finished.is_empty())
        .unwrap();
    assert!(
        ok,
        "a paused watcher never learned that the context was terminated"
    );
    assert_eq!(st.finished, [Error::Terminated]);
    assert_eq!(st.got, 0, "no handler call while paused");
    assert!(st.handle.is_none());
    term.join().unwrap().unwrap();
    ev.run(&mut st).unwrap(); // nothing left on the loop
}

/// A writable-only PUB that sends from an Outbox and logs send errors, carrying on.
struct StubbornSender {
    out: Outbox,
}
impl ZmqHandler<Ctx<St>> for StubbornSender {
    fn writable(&mut self, sock: &mut Sock<'_>, (st, _): (&mut St, &mut Ctx<St>)) {
        if self.out.len() < 16 {
            for _ in 0..64 {
                self.out.push([&st.sent.to_le_bytes()[..]]);
                st.sent += 1;
            }
        }
        match self.out.flush_one(sock) {
            Ok(Flushed::Sent | Flushed::Drained) => st.ok += 1,
            Ok(_) => {}
            Err(e) => {
                st.send_errors.push(e.error);
                st.handed_back += 1;
            }
        }
    }
    fn finished(&mut self, why: Error, (st, _): (&mut St, &mut Ctx<St>)) {
        st.finished.push(why);
        st.handle = None;
        // Nothing was dropped: what is still queued is the rest of the sequence.
        st.got = self.out.len() as u64;
    }
    fn error(&mut self, err: Error, (st, _): (&mut St, &mut Ctx<St>)) {
        st.errors.push(format!("sender: {err}"));
    }
}

#[test]
fn eterm_from_a_send_finishes_the_watcher_once_and_the_outbox_keeps_the_message() {
    let ctx = zmq::Context::new();
    let pubs = ctx.socket(zmq::PUB).unwrap();
    pubs.bind(&util::endpoint("inproc", "eterm-send")).unwrap();
    let mut ev = Loop::<St>::new().unwrap();
    let w = ZmqWatcher::new(&mut ev, pubs, StubbornSender { out: Outbox::new() }).unwrap();
    w.set_readable(false);
    w.set_writable(true);
    let mut st = St {
        handle: Some(w),
        ..St::default()
    };
    ev.run_until(&mut st, Duration::from_millis(20), |_| false)
        .unwrap();
    let mut c = ctx.clone();
    drop(ctx);
    let term = thread::spawn(move || c.destroy());
    let ok = ev
        .run_until(&mut st, LIMIT, |s| !s.finished.is_empty())
        .unwrap();
    assert!(
        ok,
        "ETERM from a send never finished the watcher ({} send errors)",
        st.send_errors.len()
    );
    assert_eq!(st.finished, [Error::Terminated], "finished exactly once");
    assert_eq!(
        st.send_errors,
        [Error::Terminated],
        "one failed send, then no more calls"
    );
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    term.join().unwrap().unwrap();
    ev.run(&mut st).unwrap();
    // Sent + handed back + still queued accounts for every message pushed: none dropped.
    assert_eq!(st.handed_back, 1, "the failed message is handed back");
    assert_eq!(
        st.ok + st.handed_back + st.got,
        st.sent,
        "no message dropped"
    );
}

#[test]
fn outbox_hands_back_a_message_that_fails_and_keeps_the_rest_queued() {
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).unwrap();
    router.set_router_mandatory(true).unwrap();
    // With ROUTER_MANDATORY a ROUTER is writable once it has a peer.
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    util::link(&router, &dealer, "inproc", "mandatory").unwrap();

    /// Flushes once: a ROUTER with no such peer fails with `EHOSTUNREACH`.
    struct Once(Outbox);
    impl ZmqHandler<Ctx<St>> for Once {
        fn writable(&mut self, sock: &mut Sock<'_>, (st, _): (&mut St, &mut Ctx<St>)) {
            if let Err(e) = self.0.flush_one(sock) {
                st.send_errors.push(e.error);
                st.handed_back = e.message.len() as u64;
                st.errors.extend(
                    e.message
                        .iter()
                        .map(|m| String::from_utf8_lossy(m).into_owned()),
                );
            }
            st.got = self.0.len() as u64;
            st.sent += 1;
            sock.set_writable(false);
        }
    }
    let mut out = Outbox::new();
    out.push([&b"nobody"[..], &b"first"[..]]);
    out.push([&b"nobody-else"[..], &b"second"[..]]);
    let mut ev = Loop::<St>::new().unwrap();
    let w = ZmqWatcher::new(&mut ev, router, Once(out)).unwrap();
    w.set_writable(true);
    let mut st = St::default();
    // A ROUTER with no peers is writable: it routes, or fails, per message.
    assert!(ev.run_until(&mut st, LIMIT, |s| s.sent > 0).unwrap());
    assert_eq!(st.send_errors, [Error::Socket(zmq::Error::EHOSTUNREACH)]);
    assert_eq!(st.handed_back, 2, "the failed message comes back whole");
    assert_eq!(st.errors, ["nobody", "first"]);
    assert_eq!(st.got, 1, "the next message stays queued");
}

/// Sends `n` messages through writable(); REQ sends one per reply.
struct Sender {
    left: u64,
    lockstep: bool,
}
impl ZmqHandler<Ctx<St>> for Sender {
    fn readable(
        &mut self,
        _: &mut [zmq::Message],
        sock: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        st.got += 1;
        if self.lockstep && self.left > 0 {
            sock.set_writable(true);
        }
    }
    fn writable(&mut self, sock: &mut Sock<'_>, (st, _): (&mut St, &mut Ctx<St>)) {
        if self.left == 0 {
            sock.set_writable(false);
            return;
        }
        match sock.send(st.sent.to_le_bytes(), false) {
            Ok(true) => {
                st.sent += 1;
                self.left -= 1;
                if self.lockstep || self.left == 0 {
                    sock.set_writable(false);
                }
            }
            Ok(false) => {}
            Err(e) => st.send_errors.push(e),
        }
    }
    fn error(&mut self, err: Error, (st, _): (&mut St, &mut Ctx<St>)) {
        st.errors.push(format!("sender: {err}"));
    }
}

/// Receives; replies when `echo` (REP, ROUTER).
struct Receiver {
    echo: bool,
}
impl ZmqHandler<Ctx<St>> for Receiver {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        sock: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        if self.echo {
            let parts: Vec<&[u8]> = m.iter().map(|p| &p[..]).collect();
            match sock.send_multipart(&parts) {
                Ok(true) => {}
                Ok(false) => st.errors.push("echo blocked".into()),
                Err(e) => st.send_errors.push(e),
            }
        } else {
            st.got += 1;
        }
    }
    fn error(&mut self, err: Error, (st, _): (&mut St, &mut Ctx<St>)) {
        st.errors.push(format!("receiver: {err}"));
    }
}

/// Runs `n` messages from a `tx` socket to an `rx` socket on one loop at `budget` and
/// returns every error either handler saw.
fn spurious_errors(
    tx_kind: zmq::SocketType,
    rx_kind: zmq::SocketType,
    n: u64,
    budget: u32,
) -> Vec<String> {
    let ctx = zmq::Context::new();
    let tx = ctx.socket(tx_kind).unwrap();
    let rx = ctx.socket(rx_kind).unwrap();
    tx.set_sndhwm(0).unwrap();
    rx.set_rcvhwm(0).unwrap();
    if rx_kind == zmq::SUB {
        rx.set_subscribe(b"").unwrap();
    }
    util::link(&rx, &tx, "inproc", "spurious").unwrap();
    let lockstep = tx_kind == zmq::REQ;
    let echo = matches!(rx_kind, zmq::REP | zmq::ROUTER);
    let mut ev = Loop::<St>::new().unwrap();
    let b = Budget::messages(budget);
    let _r = ZmqWatcher::with_budget(&mut ev, rx, Receiver { echo }, b).unwrap();
    let t = ZmqWatcher::with_budget(&mut ev, tx, Sender { left: n, lockstep }, b).unwrap();
    t.set_writable(true);
    let mut st = St::default();
    // PUB drops what it sends before the subscription arrives: wait for the sender alone.
    let done = ev
        .run_until(&mut st, LIMIT, |s| {
            s.sent == n && (tx_kind == zmq::PUB || s.got == n)
        })
        .unwrap();
    // A few more turns, in which a hot path would try the wrong direction.
    for _ in 0..4 {
        ev.run_nowait(&mut st).unwrap();
    }
    let mut all = st.errors;
    all.extend(st.send_errors.iter().map(|e| format!("send: {e}")));
    if !done {
        all.push(format!("stalled at {} sent, {} received", st.sent, st.got));
    }
    all
}

#[test]
fn push_and_pub_senders_get_no_spurious_errors_at_any_budget() {
    for budget in [1, 2, 7, 64] {
        for (tx, rx) in [(zmq::PUSH, zmq::PULL), (zmq::PUB, zmq::SUB)] {
            let e = spurious_errors(tx, rx, 100_000, budget);
            assert!(
                e.is_empty(),
                "{tx:?}->{rx:?} at budget {budget}: {} errors, first {:?}",
                e.len(),
                e.first()
            );
        }
    }
}

#[test]
fn req_rep_dealer_router_and_pair_get_no_spurious_errors_at_any_budget() {
    for budget in [1, 2, 64] {
        for (tx, rx, n) in [
            (zmq::REQ, zmq::REP, 2_000),
            (zmq::DEALER, zmq::ROUTER, 20_000),
            (zmq::PAIR, zmq::PAIR, 20_000),
            (zmq::REQ, zmq::ROUTER, 2_000),
        ] {
            let e = spurious_errors(tx, rx, n, budget);
            assert!(
                e.is_empty(),
                "{tx:?}->{rx:?} at budget {budget}: {} errors, first {:?}",
                e.len(),
                e.first()
            );
        }
    }
}

/// Pushes `total` messages into its outbox at the first `writable()`, then flushes one per
/// call, counting what each flush reported.
struct Publish {
    out: Outbox,
    total: u64,
    blocked: u64,
    drained: bool,
}
impl ZmqHandler<Ctx<St>> for Publish {
    fn writable(&mut self, sock: &mut Sock<'_>, (st, _): (&mut St, &mut Ctx<St>)) {
        if st.sent == 0 {
            for i in 0..self.total {
                self.out.push([&i.to_le_bytes()[..]]);
            }
            st.sent = self.total;
        }
        match self.out.flush_one(sock) {
            Ok(Flushed::Blocked) => self.blocked += 1,
            Ok(Flushed::Drained | Flushed::Empty) => {
                self.drained = true;
                st.ok = self.blocked;
            }
            Ok(Flushed::Sent) => {}
            Err(e) => st.send_errors.push(e.error),
        }
        if self.drained {
            st.got = 1;
        }
    }
}

/// The `Outbox` docs: "never drops a message" is evnet's side; a PUB socket never pushes
/// back and libzmq drops what a subscriber has no room for at the high-water mark.
#[test]
fn a_pub_outbox_is_never_blocked_and_a_sub_at_the_default_hwm_gets_only_what_fits() {
    let _w = util::watchdog::watchdog(LIMIT * 2, "pub-hwm");
    let ctx = zmq::Context::new();
    let pubs = ctx.socket(zmq::PUB).unwrap();
    let ep = util::endpoint("inproc", "pub-hwm");
    pubs.bind(&ep).unwrap();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_subscribe(b"").unwrap();
    sub.connect(&ep).unwrap();
    // The subscription has reached the PUB once a probe gets through.
    let t0 = std::time::Instant::now();
    loop {
        pubs.send("probe", 0).unwrap();
        if sub.poll(zmq::POLLIN, 10).unwrap() > 0 {
            break;
        }
        assert!(t0.elapsed() < LIMIT, "the subscription never arrived");
    }
    while sub.recv_bytes(zmq::DONTWAIT).is_ok() {}

    let total = 100_000;
    let mut ev = Loop::<St>::new().unwrap();
    let handler = Publish {
        out: Outbox::new(),
        total,
        blocked: 0,
        drained: false,
    };
    let w = ZmqWatcher::new(&mut ev, pubs, handler).unwrap();
    w.set_readable(false);
    w.set_writable(true);
    let mut st = St {
        handle: Some(w),
        ..St::default()
    };
    assert!(ev.run_until(&mut st, LIMIT, |s| s.got == 1).unwrap());
    assert_eq!(
        st.ok, 0,
        "a PUB socket never pushes back: no flush was Blocked"
    );
    assert!(st.send_errors.is_empty(), "{:?}", st.send_errors);
    // The SUB read nothing meanwhile: it holds what fit under the two high-water marks.
    let mut received = 0u64;
    while sub.recv_bytes(zmq::DONTWAIT).is_ok() {
        received += 1;
    }
    assert!(
        received > 0 && received <= 2 * 1_000,
        "SNDHWM + RCVHWM (1,000 each) bound what a silent subscriber keeps: got {received} of {total}"
    );
}

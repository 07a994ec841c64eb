//! Missed-wake-up regressions specific to `ZmqWatcher` on evnet's loop: closing and
//! stealing from other sockets' callbacks, dropping handles, termination, fairness counted
//! in loop turns, and the quiet-turn path. The scenarios every host loop shares (bursts,
//! messages arriving inside `readable`, DEALER/ROUTER, SNDHWM=1, pokes from a timer) are in
//! `tests/zmq_front_ends.rs`, which runs them on this loop too.

mod util;

use std::thread;
use std::time::Duration;

use evnet::ev::{Ctx, Loop, WatcherId};
use evnet::fair::{Budget, Error, Sock, ZmqHandler, ZmqWatcher};

const LIMIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct St {
    got: Vec<u64>,
    other: u64,
    finished: Option<Error>,
    errors: Vec<String>,
    after_close: u64,
    handle: Option<ZmqWatcher>,
    victim: Option<ZmqWatcher>,
    victim_sock_hits: u64,
    turns_to_quiet: Option<u64>,
    turn: u64,
}

fn seq(m: &[zmq::Message]) -> u64 {
    u64::from_le_bytes(m[0][..8].try_into().unwrap())
}

struct Collect;
impl ZmqHandler<Ctx<St>> for Collect {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        st.got.push(seq(m));
    }
    fn finished(&mut self, why: Error, (st, _): (&mut St, &mut Ctx<St>)) {
        st.finished = Some(why);
        st.handle = None; // drop our handle so the socket closes
    }
}

fn pull_push(ctx: &zmq::Context, transport: &str) -> (zmq::Socket, zmq::Socket) {
    let pull = ctx.socket(zmq::PULL).unwrap();
    let push = ctx.socket(zmq::PUSH).unwrap();
    pull.set_rcvhwm(0).unwrap();
    push.set_sndhwm(0).unwrap();
    util::link(&pull, &push, transport, "reg").unwrap();
    (pull, push)
}

fn in_order(got: &[u64], n: u64) {
    assert_eq!(got.len() as u64, n, "count");
    assert!(got.iter().enumerate().all(|(i, &s)| s == i as u64), "order");
}

/// Reads its own socket, and also steals from (or closes) the victim's socket.
struct Thief {
    close_victim: bool,
}
impl ZmqHandler<Ctx<St>> for Thief {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, cx): (&mut St, &mut Ctx<St>),
    ) {
        st.other += 1;
        let _ = m;
        if self.close_victim {
            if let Some(v) = st.victim.take() {
                v.close(cx);
            }
        } else if let Some(v) = &st.victim {
            let mut msg = zmq::Message::new();
            while v.socket().recv(&mut msg, zmq::DONTWAIT).is_ok() {
                st.victim_sock_hits += 1;
            }
        }
    }
}
struct Victim;
impl ZmqHandler<Ctx<St>> for Victim {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        if st.victim.is_none() {
            st.after_close += 1;
        }
        st.got.push(seq(m));
    }
}

/// The thief's socket and the victim's socket on one loop, the victim with 10 messages
/// pending and the thief with one: both are served in the same turn, the thief first
/// (its quartet was created first). Returns what the test needs to go on.
fn thief_and_victim(
    ctx: &zmq::Context,
    close_victim: bool,
) -> (Loop<St>, St, zmq::Socket, zmq::Socket, ZmqWatcher) {
    let (a_pull, a_push) = pull_push(ctx, "inproc");
    let (v_pull, v_push) = pull_push(ctx, "inproc");
    let mut ev = Loop::<St>::new().unwrap();
    let a = ZmqWatcher::new(&mut ev, a_pull, Thief { close_victim }).unwrap();
    let v = ZmqWatcher::new(&mut ev, v_pull, Victim).unwrap();
    let st = St {
        victim: Some(v),
        ..St::default()
    };
    for i in 0..10u64 {
        v_push.send(&i.to_le_bytes()[..], 0).unwrap();
    }
    a_push.send(&0u64.to_le_bytes()[..], 0).unwrap();
    (ev, st, a_push, v_push, a)
}

#[test]
fn handler_that_consumes_another_sockets_pending_work_in_the_same_turn() {
    let ctx = zmq::Context::new();
    let (mut ev, mut st, _a_push, v_push, _a) = thief_and_victim(&ctx, false);
    assert!(ev
        .run_until(&mut st, LIMIT, |s| {
            s.other == 1 && s.victim_sock_hits + s.got.len() as u64 == 10
        })
        .unwrap());
    // The thief ran first in the turn and took all ten: the victim's adapter met EAGAIN
    // where ZMQ_EVENTS had promised work, a no-op.
    assert_eq!(st.victim_sock_hits, 10, "the steal did not happen");
    assert!(st.got.is_empty(), "the victim read {:?}", st.got);
    // Its later traffic still arrives (the thief reads only when its own socket has some).
    for i in 100..110u64 {
        v_push.send(&i.to_le_bytes()[..], 0).unwrap();
    }
    assert!(ev.run_until(&mut st, LIMIT, |s| s.got.len() >= 10).unwrap());
    assert_eq!(st.got, (100..110).collect::<Vec<u64>>());
    assert!(st.errors.is_empty());
}

#[test]
fn handler_that_closes_another_socket_with_pending_work_in_the_same_turn() {
    let ctx = zmq::Context::new();
    let (mut ev, mut st, _a_push, _v_push, _a) = thief_and_victim(&ctx, true);
    assert!(ev.run_until(&mut st, LIMIT, |s| s.other == 1).unwrap());
    assert!(st.victim.is_none(), "the close did not happen");
    // The victim's ten messages were pending in the very turn it was closed in; a few
    // more turns give a watcher that survived the close every chance to be called.
    for _ in 0..10 {
        ev.run_nowait(&mut st).unwrap();
    }
    assert_eq!(st.other, 1);
    assert_eq!(
        st.after_close, 0,
        "the closed socket's handler ran after close"
    );
    assert!(st.got.is_empty(), "the victim read {:?}", st.got);
}

struct SelfCloser;
impl ZmqHandler<Ctx<St>> for SelfCloser {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        sock: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        st.got.push(seq(m));
        sock.close();
    }
}

#[test]
fn close_from_own_callback_stops_further_calls() {
    let ctx = zmq::Context::new();
    let (pull, push) = pull_push(&ctx, "inproc");
    let mut ev = Loop::<St>::new().unwrap();
    let w = ZmqWatcher::new(&mut ev, pull, SelfCloser).unwrap();
    for i in 0..5u64 {
        push.send(&i.to_le_bytes()[..], 0).unwrap();
    }
    let mut st = St::default();
    ev.run_until(&mut st, Duration::from_millis(50), |_| false)
        .unwrap();
    assert_eq!(st.got, vec![0]);
    assert!(w.is_finished());
    // With the watcher gone, nothing keeps the loop alive.
    ev.run(&mut st).unwrap();
}

#[test]
fn dropping_the_handle_closes_the_watcher() {
    let ctx = zmq::Context::new();
    let (pull, push) = pull_push(&ctx, "inproc");
    let mut ev = Loop::<St>::new().unwrap();
    let w = ZmqWatcher::new(&mut ev, pull, Collect).unwrap();
    push.send(&0u64.to_le_bytes()[..], 0).unwrap();
    let mut st = St::default();
    ev.run_until(&mut st, LIMIT, |s| s.got.len() == 1).unwrap();
    drop(w);
    push.send(&1u64.to_le_bytes()[..], 0).unwrap();
    ev.run(&mut st).unwrap(); // returns: the quartet is gone
    assert_eq!(st.got, vec![0]);
}

#[test]
fn context_termination_stops_the_watcher_and_tells_the_handler() {
    let ctx = zmq::Context::new();
    let (pull, push) = pull_push(&ctx, "inproc");
    drop(push);
    let mut ev = Loop::<St>::new().unwrap();
    let w = ZmqWatcher::new(&mut ev, pull, Collect).unwrap();
    let mut st = St {
        handle: Some(w),
        ..St::default()
    };
    ev.run_until(&mut st, Duration::from_millis(10), |_| false)
        .unwrap();
    let mut c = ctx.clone();
    drop(ctx);
    // zmq_ctx_term blocks until our socket is closed, which happens in finished().
    let term = thread::spawn(move || c.destroy());
    let ok = ev
        .run_until(&mut st, LIMIT, |s| s.finished.is_some())
        .unwrap();
    assert!(ok, "ETERM never reached the handler");
    assert_eq!(st.finished, Some(Error::Terminated));
    assert!(st.handle.is_none());
    term.join().unwrap().unwrap();
    ev.run(&mut st).unwrap(); // nothing left on the loop
}

struct Quiet;
impl ZmqHandler<Ctx<St>> for Quiet {
    fn readable(
        &mut self,
        _: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, cx): (&mut St, &mut Ctx<St>),
    ) {
        st.turns_to_quiet = Some(cx.stats().turns - st.turn);
    }
}
struct Flooded;
impl ZmqHandler<Ctx<St>> for Flooded {
    fn readable(
        &mut self,
        _: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        st.other += 1;
    }
}

#[test]
fn quiet_socket_is_served_within_two_turns_while_another_is_flooded() {
    let ctx = zmq::Context::new();
    let (f_pull, f_push) = pull_push(&ctx, "inproc");
    let (q_pull, q_push) = pull_push(&ctx, "inproc");
    for _ in 0..100_000u32 {
        f_push.send(&[0u8; 16][..], 0).unwrap();
    }
    let mut ev = Loop::<St>::new().unwrap();
    let _f = ZmqWatcher::with_budget(&mut ev, f_pull, Flooded, Budget::messages(64)).unwrap();
    let _q = ZmqWatcher::new(&mut ev, q_pull, Quiet).unwrap();
    let mut st = St::default();
    // Let the flood get going, then send one quiet message between two turns.
    for _ in 0..10 {
        ev.run_once(&mut st).unwrap();
    }
    let before = st.other;
    st.turn = ev.stats().turns;
    q_push.send(&[1u8; 8][..], 0).unwrap();
    ev.run_until(&mut st, LIMIT, |s| s.turns_to_quiet.is_some())
        .unwrap();
    let turns = st.turns_to_quiet.unwrap();
    assert!(turns <= 2, "quiet message waited {turns} turns");
    assert!(
        st.other - before <= 64 * turns,
        "flood exceeded its budget per turn"
    );
    assert!(
        st.other < 100_000,
        "the flood was drained before the quiet socket got a turn"
    );
}

#[allow(dead_code)]
fn _watcher_is_copy(w: WatcherId) -> (WatcherId, WatcherId) {
    (w, w)
}

/// After a turn ends on `EAGAIN` the adapter may sleep without reading `ZMQ_EVENTS`, but
/// only while nothing else ran: here the application pokes the socket between two runs
/// (consuming the edge of a message that just arrived), then runs the loop again.
#[test]
fn get_events_between_two_runs_after_an_eagain_turn_does_not_lose_an_edge() {
    for t in util::TRANSPORTS {
        let ctx = zmq::Context::new();
        let (pull, push) = pull_push(&ctx, t);
        let mut ev = Loop::<St>::new().unwrap();
        let w = ZmqWatcher::new(&mut ev, pull, Collect).unwrap();
        let mut st = St::default();
        push.send(&0u64.to_le_bytes()[..], 0).unwrap();
        assert!(ev.run_until(&mut st, LIMIT, |s| s.got.len() == 1).unwrap());
        // The last turn's check received the message, then met EAGAIN. Now, outside the
        // loop: a message arrives and the application reads ZMQ_EVENTS, which takes the
        // ZMQ_FD edge that message raised.
        push.send(&1u64.to_le_bytes()[..], 0).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !w.socket().get_events().unwrap().contains(zmq::POLLIN) {
            assert!(
                std::time::Instant::now() < deadline,
                "{t}: message never arrived"
            );
            thread::sleep(Duration::from_millis(1));
        }
        assert!(
            ev.run_until(&mut st, Duration::from_secs(5), |s| s.got.len() == 2)
                .unwrap(),
            "{t}: the message that arrived between runs was never delivered"
        );
        in_order(&st.got, 2);
    }
}

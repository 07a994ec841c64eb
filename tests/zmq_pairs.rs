//! Every socket pair over inproc, ipc and tcp, both ends on one loop: each message arrives
//! exactly once, in order per sender, with its parts intact.

mod util;

use std::collections::HashMap;
use std::time::Duration;

use evnet::ev::{Ctx, Loop};
use evnet::fair::{Sock, ZmqHandler, ZmqWatcher};

const LIMIT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct St {
    /// Next sequence number expected, per sender id.
    next: HashMap<Vec<u8>, u64>,
    got: u64,
    echoed: u64,
    errors: Vec<String>,
    /// PUB/SUB: the subscriber has seen a probe, so the subscription is in place.
    sub_ready: bool,
}

fn msg(sender: &[u8], seq: u64) -> [Vec<u8>; 3] {
    [
        sender.to_vec(),
        seq.to_le_bytes().to_vec(),
        vec![(seq % 251) as u8; (seq % 97) as usize],
    ]
}

impl St {
    /// Checks one 3-part message (after any routing envelope was stripped).
    fn check(&mut self, parts: &[zmq::Message]) {
        self.check_lane(parts, b"")
    }

    /// As `check`, counting sequence numbers separately per lane (echoes vs originals).
    fn check_lane(&mut self, parts: &[zmq::Message], lane: &[u8]) {
        if parts.len() != 3 || parts[1].len() != 8 {
            self.errors
                .push(format!("bad shape: {} parts", parts.len()));
            return;
        }
        let seq = u64::from_le_bytes(parts[1][..].try_into().unwrap());
        let want = msg(&parts[0], seq);
        if parts[2][..] != want[2][..] {
            self.errors.push(format!("payload of {seq} corrupted"));
        }
        let next = self.next.entry([lane, &parts[0][..]].concat()).or_insert(0);
        if seq != *next {
            self.errors.push(format!("expected {} got {seq}", *next));
        }
        *next = seq + 1;
        self.got += 1;
    }
}

/// Sends `n` 3-part messages, one per writable() call.
struct Sender {
    id: Vec<u8>,
    seq: u64,
    n: u64,
    /// PUB: wait for the subscriber before sending for real.
    gated: bool,
}

impl ZmqHandler<Ctx<St>> for Sender {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        // DEALER gets its echoes back here.
        st.check_lane(m, b"echo:");
        st.echoed += 1;
    }
    fn writable(&mut self, sock: &mut Sock<'_>, (st, _): (&mut St, &mut Ctx<St>)) {
        if self.gated && !st.sub_ready {
            let _ = sock.send("probe", false);
            return;
        }
        if self.seq == self.n {
            sock.set_writable(false);
            return;
        }
        match sock.send_multipart(&msg(&self.id, self.seq)) {
            Ok(true) => self.seq += 1,
            Ok(false) => {}
            Err(e) => st.errors.push(format!("send: {e}")),
        }
    }
}

/// Receives and checks; a ROUTER echoes each message back to its sender.
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
        if m.len() == 1 && &m[0][..] == b"probe" {
            st.sub_ready = true;
            return;
        }
        if self.echo {
            // [identity, sender, seq, payload]
            st.check(&m[1..]);
            let parts: Vec<&[u8]> = m.iter().map(|p| &p[..]).collect();
            match sock.send_multipart(&parts) {
                Ok(true) => {}
                other => st.errors.push(format!("echo: {other:?}")),
            }
        } else {
            st.check(m);
        }
    }
}

fn run_pair(kind: (zmq::SocketType, zmq::SocketType), transport: &str, n: u64, echo: bool) {
    let ctx = zmq::Context::new();
    let tx = ctx.socket(kind.0).unwrap();
    let rx = ctx.socket(kind.1).unwrap();
    for s in [&tx, &rx] {
        s.set_sndhwm(0).unwrap();
        s.set_rcvhwm(0).unwrap();
    }
    if kind.1 == zmq::SUB {
        rx.set_subscribe(b"").unwrap();
    }
    util::link(&rx, &tx, transport, "pair").unwrap();

    let mut ev = Loop::<St>::new().unwrap();
    let sender = Sender {
        id: b"s1".to_vec(),
        seq: 0,
        n,
        gated: kind.0 == zmq::PUB,
    };
    let a = ZmqWatcher::new(&mut ev, tx, sender).unwrap();
    a.set_writable(true);
    let _b = ZmqWatcher::new(&mut ev, rx, Receiver { echo }).unwrap();
    let mut st = St::default();
    let ok = ev
        .run_until(&mut st, LIMIT, |st| {
            !st.errors.is_empty() || (st.got >= n * if echo { 2 } else { 1 })
        })
        .unwrap();
    assert!(
        st.errors.is_empty(),
        "{:?} over {transport}: {:?}",
        kind,
        &st.errors[..st.errors.len().min(5)]
    );
    assert!(
        ok,
        "{kind:?} over {transport}: timed out with {} of {n}",
        st.got
    );
    if echo {
        assert_eq!(st.echoed, n);
    }
    // Nothing extra arrives afterwards (exactly once).
    ev.run_until(&mut st, Duration::from_millis(20), |_| false)
        .unwrap();
    assert_eq!(st.got, n * if echo { 2 } else { 1 });
}

#[test]
fn push_pull_all_transports() {
    for t in util::TRANSPORTS {
        run_pair((zmq::PUSH, zmq::PULL), t, util::count_for(t), false);
    }
}

#[test]
fn pub_sub_all_transports() {
    for t in util::TRANSPORTS {
        run_pair((zmq::PUB, zmq::SUB), t, util::count_for(t), false);
    }
}

#[test]
fn pair_all_transports() {
    for t in util::TRANSPORTS {
        run_pair((zmq::PAIR, zmq::PAIR), t, util::count_for(t), false);
    }
}

#[test]
fn dealer_router_echo_all_transports() {
    for t in util::TRANSPORTS {
        run_pair((zmq::DEALER, zmq::ROUTER), t, util::count_for(t), true);
    }
}

/// REQ/REP lock-step: both on one loop; the REQ sends the next request from writable()
/// once the reply arrived. Each reply makes the REQ readable with no new edge of its own.
struct Req {
    sent: u64,
    n: u64,
}
struct Rep;

impl ZmqHandler<Ctx<St>> for Req {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        sock: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        st.check(m);
        if self.sent < self.n {
            sock.set_writable(true);
        }
    }
    fn writable(&mut self, sock: &mut Sock<'_>, (st, _): (&mut St, &mut Ctx<St>)) {
        match sock.send_multipart(&msg(b"req", self.sent)) {
            Ok(true) => {
                self.sent += 1;
                sock.set_writable(false); // REQ: one request in flight
            }
            Ok(false) => {}
            Err(e) => st.errors.push(format!("req send: {e}")),
        }
    }
}

impl ZmqHandler<Ctx<St>> for Rep {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        sock: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        let parts: Vec<&[u8]> = m.iter().map(|p| &p[..]).collect();
        if !matches!(sock.send_multipart(&parts), Ok(true)) {
            st.errors.push("rep send failed".into());
        }
    }
}

pub fn req_rep(transport: &str, n: u64) {
    let ctx = zmq::Context::new();
    let rep = ctx.socket(zmq::REP).unwrap();
    let req = ctx.socket(zmq::REQ).unwrap();
    util::link(&rep, &req, transport, "reqrep").unwrap();
    let mut ev = Loop::<St>::new().unwrap();
    let _r = ZmqWatcher::new(&mut ev, rep, Rep).unwrap();
    let q = ZmqWatcher::new(&mut ev, req, Req { sent: 0, n }).unwrap();
    q.set_writable(true);
    let mut st = St::default();
    let ok = ev
        .run_until(&mut st, LIMIT, |st| st.got >= n || !st.errors.is_empty())
        .unwrap();
    assert!(
        st.errors.is_empty(),
        "{:?}",
        &st.errors[..st.errors.len().min(5)]
    );
    assert!(
        ok,
        "REQ/REP over {transport} stalled after {} of {n} round trips",
        st.got
    );
}

#[test]
fn req_rep_10k_round_trips_on_one_loop_all_transports() {
    for t in util::TRANSPORTS {
        req_rep(t, 10_000);
    }
}

//! The zmq regression list as ONE generic suite, run on every host loop compiled in:
//! evnet's own loop (`ZmqWatcher`) always, and the mio, calloop and tokio front ends with
//! their features (`cargo test --features front-ends`). Each scenario runs on every host
//! over inproc, ipc and tcp.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use evnet::fair::{Budget, Error, Flushed, Outbox, Sock, ZmqHandler};
use util::hosts::{self, Host, Scenario, Spec};

fn seq(m: &[zmq::Message]) -> u64 {
    m.first()
        .and_then(|p| p.get(..8))
        .map_or(u64::MAX, |b| u64::from_le_bytes(b.try_into().unwrap()))
}

fn in_order(what: &str, got: &[u64], n: u64) {
    assert_eq!(got.len() as u64, n, "{what}: count");
    assert!(
        got.iter().enumerate().all(|(i, &s)| s == i as u64),
        "{what}: order"
    );
}

/// Collects sequence numbers into a shared list.
#[derive(Clone, Default)]
struct Collect(Rc<RefCell<Vec<u64>>>);
impl ZmqHandler for Collect {
    fn readable(&mut self, m: &mut [zmq::Message], _: &mut Sock<'_>, (): ()) {
        self.0.borrow_mut().push(seq(m));
    }
}
impl Collect {
    fn len(&self) -> u64 {
        self.0.borrow().len() as u64
    }
}

fn pull_push(ctx: &zmq::Context, t: &str) -> (zmq::Socket, zmq::Socket) {
    let pull = ctx.socket(zmq::PULL).unwrap();
    let push = ctx.socket(zmq::PUSH).unwrap();
    pull.set_rcvhwm(0).unwrap();
    push.set_sndhwm(0).unwrap();
    util::link(&pull, &push, t, "fe").unwrap();
    (pull, push)
}

fn each(mut f: impl FnMut(Host, &str)) {
    for host in hosts::hosts() {
        for t in util::TRANSPORTS {
            f(host, t);
        }
    }
}

fn done_when(c: &Collect, n: u64) -> Box<dyn FnMut() -> bool> {
    let c = c.clone();
    Box::new(move || c.len() >= n)
}

/// Collects sequence numbers and counts them per turn (for a stepped host).
#[derive(Clone, Default)]
struct PerTurn {
    got: Collect,
    this_turn: Rc<Cell<u32>>,
}
impl ZmqHandler for PerTurn {
    fn readable(&mut self, m: &mut [zmq::Message], s: &mut Sock<'_>, (): ()) {
        self.got.readable(m, s, ());
        self.this_turn.set(self.this_turn.get() + 1);
    }
}

#[test]
fn every_host_reads_a_burst_of_1000_one_per_turn_with_no_further_traffic() {
    each(|host, t| {
        let _w = util::watchdog::watchdog(Duration::from_secs(60), format!("{host:?}/{t}"));
        let ctx = zmq::Context::new();
        let (pull, push) = pull_push(&ctx, t);
        let n = 1000u64;
        for i in 0..n {
            push.send(&i.to_le_bytes()[..], 0).unwrap();
        }
        // The hardest start: the burst has arrived and its ZMQ_FD edge is spent (reading
        // ZMQ_EVENTS consumes it) before the loop first looks.
        let t0 = std::time::Instant::now();
        while !pull.get_events().unwrap().contains(zmq::POLLIN) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{host:?}/{t}: nothing arrived"
            );
            thread::sleep(Duration::from_millis(1));
        }
        let c = PerTurn::default();
        let mut host_loop =
            hosts::stepper(host, vec![Spec::new(pull, c.clone()).budget(Budget::ONE)]);
        let mut most = 0;
        while c.got.len() < n {
            host_loop.turn(true); // a missed wake-up hangs here, and the watchdog ends it
            most = most.max(c.this_turn.replace(0));
        }
        assert_eq!(
            most, 1,
            "{host:?}/{t}: {most} messages in one turn under Budget::ONE"
        );
        in_order(&format!("{host:?}/{t}"), &c.got.0.borrow(), n);
    });
}

/// Reads slowly now and then, so messages arrive while it is inside `readable`.
#[derive(Clone, Default)]
struct SlowReader(Collect);
impl ZmqHandler for SlowReader {
    fn readable(&mut self, m: &mut [zmq::Message], s: &mut Sock<'_>, (): ()) {
        self.0.readable(m, s, ());
        if self.0.len() % 50 == 1 {
            thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn every_host_sees_messages_that_arrive_while_the_handler_is_inside_readable() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let (pull, push) = pull_push(&ctx, t);
        let n = 1000u64;
        let sender = thread::spawn(move || {
            for i in 0..n {
                push.send(&i.to_le_bytes()[..], 0).unwrap();
                if i % 100 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            push
        });
        let r = SlowReader::default();
        let out = hosts::run(
            host,
            Scenario {
                specs: vec![Spec::new(pull, r.clone()).budget(Budget::messages(4))],
                tick: None,
                done: done_when(&r.0, n),
            },
        );
        let _push = sender.join().unwrap();
        assert!(out.done, "{host:?}/{t}: stalled at {}", r.0.len());
        in_order(&format!("{host:?}/{t}"), &r.0 .0.borrow(), n);
    });
}

/// A REQ client: sends request `i` when writable, waits for its reply, then the next.
#[derive(Clone)]
struct ReqClient {
    got: Collect,
    next: Rc<Cell<u64>>,
    n: u64,
}
impl ZmqHandler for ReqClient {
    fn readable(&mut self, m: &mut [zmq::Message], s: &mut Sock<'_>, (): ()) {
        self.got.readable(m, s, ());
        if self.next.get() < self.n {
            s.set_writable(true);
        }
    }
    fn writable(&mut self, s: &mut Sock<'_>, (): ()) {
        let i = self.next.get();
        if s.send(i.to_le_bytes(), false).unwrap() {
            self.next.set(i + 1);
            s.set_writable(false);
        }
    }
}

/// Echoes every message (all parts) back to its sender.
struct Echo;
impl ZmqHandler for Echo {
    fn readable(&mut self, m: &mut [zmq::Message], s: &mut Sock<'_>, (): ()) {
        let parts: Vec<&[u8]> = m.iter().map(|p| &p[..]).collect();
        assert!(matches!(s.send_multipart(&parts), Ok(true)), "echo failed");
    }
}

#[test]
fn every_host_serves_req_and_rep_with_both_ends_on_one_loop() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let rep = ctx.socket(zmq::REP).unwrap();
        let req = ctx.socket(zmq::REQ).unwrap();
        util::link(&rep, &req, t, "rr").unwrap();
        let n = 1000;
        let c = ReqClient {
            got: Collect::default(),
            next: Rc::new(Cell::new(0)),
            n,
        };
        let out = hosts::run(
            host,
            Scenario {
                specs: vec![Spec::new(rep, Echo), Spec::new(req, c.clone()).writable()],
                tick: None,
                done: done_when(&c.got, n),
            },
        );
        assert!(out.done, "{host:?}/{t}: stalled at {}", c.got.len());
        in_order(&format!("{host:?}/{t}"), &c.got.0.borrow(), n);
    });
}

/// A DEALER that keeps a window of requests in flight through an Outbox.
struct Dealer {
    got: Collect,
    out: Outbox,
    sent: u64,
    n: u64,
}
impl ZmqHandler for Dealer {
    fn readable(&mut self, m: &mut [zmq::Message], s: &mut Sock<'_>, (): ()) {
        self.got.readable(m, s, ());
        if self.sent < self.n {
            self.out.push([&self.sent.to_le_bytes()[..]]);
            self.sent += 1;
            s.set_writable(true);
        }
    }
    fn writable(&mut self, s: &mut Sock<'_>, (): ()) {
        self.out.flush_one(s).unwrap();
    }
}

#[test]
fn every_host_echoes_dealer_router_under_load() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let router = ctx.socket(zmq::ROUTER).unwrap();
        let dealer = ctx.socket(zmq::DEALER).unwrap();
        util::link(&router, &dealer, t, "dr").unwrap();
        let n = 10_000;
        let got = Collect::default();
        let mut d = Dealer {
            got: got.clone(),
            out: Outbox::new(),
            sent: 0,
            n,
        };
        for _ in 0..64 {
            d.out.push([&d.sent.to_le_bytes()[..]]);
            d.sent += 1;
        }
        let out = hosts::run(
            host,
            Scenario {
                specs: vec![
                    Spec::new(router, Echo).budget(Budget::messages(3)),
                    Spec::new(dealer, d).budget(Budget::messages(5)).writable(),
                ],
                tick: None,
                done: done_when(&got, n),
            },
        );
        assert!(out.done, "{host:?}/{t}: stalled at {}", got.len());
        in_order(&format!("{host:?}/{t}"), &got.0.borrow(), n);
    });
}

/// Sends everything queued in its Outbox, counting high-water-mark push-backs.
struct HwmSender {
    out: Outbox,
    blocked: Rc<Cell<u64>>,
}
impl ZmqHandler for HwmSender {
    fn writable(&mut self, s: &mut Sock<'_>, (): ()) {
        if let Flushed::Blocked = self.out.flush_one(s).unwrap() {
            self.blocked.set(self.blocked.get() + 1);
        }
    }
}

#[test]
fn every_host_fills_sndhwm_1_stops_and_resumes_when_a_slow_receiver_drains() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let pull = ctx.socket(zmq::PULL).unwrap();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_sndhwm(1).unwrap();
        pull.set_rcvhwm(1).unwrap();
        if t == "tcp" {
            push.set_sndbuf(4096).unwrap();
            pull.set_rcvbuf(4096).unwrap();
        }
        util::link(&pull, &push, t, "hwm").unwrap();
        let n = 2000u64;
        let mut out = Outbox::new();
        for i in 0..n {
            out.push([&i.to_le_bytes()[..]]);
        }
        let blocked = Rc::new(Cell::new(0));
        let got = Collect::default();
        let outcome = hosts::run(
            host,
            Scenario {
                specs: vec![
                    Spec::new(
                        push,
                        HwmSender {
                            out,
                            blocked: blocked.clone(),
                        },
                    )
                    .writable(),
                    Spec::new(pull, got.clone())
                        .budget(Budget::messages(50))
                        .readable(false),
                ],
                // The receiver reads only every other millisecond.
                tick: Some((
                    Duration::from_millis(1),
                    Box::new(|f| {
                        if let Some(r) = f[1] {
                            r.set_readable(!r.interest().is_readable());
                        }
                    }),
                )),
                done: done_when(&got, n),
            },
        );
        assert!(outcome.done, "{host:?}/{t}: stalled at {}", got.len());
        in_order(&format!("{host:?}/{t}"), &got.0.borrow(), n);
        assert!(blocked.get() > 0, "{host:?}/{t}: never pushed back");
    });
}

#[test]
fn every_host_survives_get_events_and_sends_from_a_timer() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let (pull, push) = pull_push(&ctx, t);
        let n = 300u64;
        let mut i = 0u64;
        let got = Collect::default();
        let out = hosts::run(
            host,
            Scenario {
                specs: vec![Spec::new(pull, got.clone())],
                // Every ms: poke ZMQ_EVENTS on the watched socket (consuming its edge), send
                // two messages to it from the loop thread, poke again.
                tick: Some((
                    Duration::from_millis(1),
                    Box::new(move |f| {
                        if let Some(r) = f[0] {
                            let _ = r.socket().get_events();
                        }
                        for _ in 0..2 {
                            if i < n {
                                push.send(&i.to_le_bytes()[..], zmq::DONTWAIT).unwrap();
                                i += 1;
                            }
                        }
                        if let Some(r) = f[0] {
                            let _ = r.socket().get_events();
                        }
                    }),
                )),
                done: done_when(&got, n),
            },
        );
        assert!(out.done, "{host:?}/{t}: stalled at {}", got.len());
        in_order(&format!("{host:?}/{t}"), &got.0.borrow(), n);
    });
}

#[test]
fn every_host_survives_another_callback_consuming_a_sockets_pending_work() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let (pull, push) = pull_push(&ctx, t);
        // 10 pending before the loop starts: the tick steals them, consuming the edge.
        for i in 0..10u64 {
            push.send(&i.to_le_bytes()[..], 0).unwrap();
        }
        let t0 = std::time::Instant::now();
        while !pull.get_events().unwrap().contains(zmq::POLLIN) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{host:?}/{t}: nothing arrived"
            );
            thread::sleep(Duration::from_millis(1));
        }
        let stolen = Rc::new(Cell::new(0u64));
        let st = stolen.clone();
        let mut phase = 0;
        let got = Collect::default();
        let out = hosts::run(
            host,
            Scenario {
                specs: vec![Spec::new(pull, got.clone()).readable(false)],
                tick: Some((
                    Duration::from_millis(1),
                    Box::new(move |f| {
                        let Some(v) = f[0] else { return };
                        phase += 1;
                        if phase == 1 {
                            let mut m = zmq::Message::new();
                            while v.socket().recv(&mut m, zmq::DONTWAIT).is_ok() {
                                st.set(st.get() + 1);
                            }
                            v.set_readable(true);
                            for i in 0..100u64 {
                                push.send(&i.to_le_bytes()[..], 0).unwrap();
                            }
                        }
                    }),
                )),
                done: done_when(&got, 100),
            },
        );
        assert_eq!(stolen.get(), 10, "{host:?}/{t}: the tick stole the backlog");
        assert!(out.done, "{host:?}/{t}: stalled at {}", got.len());
        in_order(&format!("{host:?}/{t}"), &got.0.borrow(), 100);
    });
}

#[test]
fn every_host_finishes_each_socket_with_terminated_and_lets_ctx_term_return() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let pull = ctx.socket(zmq::PULL).unwrap();
        pull.bind(&util::endpoint(t, "term")).unwrap();
        let paused = ctx.socket(zmq::PULL).unwrap();
        paused.bind(&util::endpoint(t, "term")).unwrap();
        let mut c2 = ctx.clone();
        drop(ctx);
        // The context is terminated from another thread while the host loop runs (its
        // first tick says it does).
        let (running_tx, running_rx) = std::sync::mpsc::channel::<()>();
        let term = thread::spawn(move || {
            running_rx.recv().unwrap();
            c2.destroy()
        });
        let finished: [Rc<RefCell<Vec<Error>>>; 2] = Default::default();
        let out = hosts::run(
            host,
            Scenario {
                specs: vec![
                    Spec::new(pull, Finishes(finished[0].clone())),
                    Spec::new(paused, Finishes(finished[1].clone())).readable(false),
                ],
                tick: Some((
                    Duration::from_millis(1),
                    Box::new(move |_| {
                        let _ = running_tx.send(());
                    }),
                )),
                done: Box::new(move || term.is_finished()),
            },
        );
        assert!(out.done, "{host:?}/{t}: zmq_ctx_term did not return");
        for (i, e) in out.ended.iter().enumerate() {
            assert_eq!(
                *e,
                Some(Err(Error::Terminated)),
                "{host:?}/{t}: socket {i} ended with {e:?}"
            );
            // The one handler trait's contract, on every host: `finished`, once.
            assert_eq!(
                *finished[i].borrow(),
                [Error::Terminated],
                "{host:?}/{t}: socket {i}'s handler was told"
            );
        }
    });
}

/// Records each `finished` call.
struct Finishes(Rc<RefCell<Vec<Error>>>);
impl ZmqHandler for Finishes {
    fn readable(&mut self, _: &mut [zmq::Message], _: &mut Sock<'_>, (): ()) {}
    fn finished(&mut self, why: Error, (): ()) {
        self.0.borrow_mut().push(why);
    }
}

/// A PULL bound to a PUSH over inproc, where a send reaches the PULL's mailbox before it
/// returns.
#[cfg(any(feature = "mio", feature = "calloop"))]
fn inproc_pair(ctx: &zmq::Context, tag: &str) -> (zmq::Socket, zmq::Socket) {
    let pull = ctx.socket(zmq::PULL).unwrap();
    let push = ctx.socket(zmq::PUSH).unwrap();
    pull.bind(&format!("inproc://{tag}")).unwrap();
    push.connect(&format!("inproc://{tag}")).unwrap();
    (pull, push)
}

#[cfg(feature = "mio")]
#[test]
fn mio_does_not_sleep_on_a_message_whose_edge_the_application_consumed_after_a_turn() {
    use evnet::fair::MioZmq;
    use mio::{Events, Interest, Poll, Token};
    let ctx = zmq::Context::new();
    let (pull, push) = inproc_pair(&ctx, "mio-touch");
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    let mut z = MioZmq::new(pull).unwrap();
    poll.registry()
        .register(&mut z, Token(0), Interest::READABLE)
        .unwrap();
    let got = Collect::default();
    let mut h = got.clone();
    push.send(&0u64.to_le_bytes()[..], 0).unwrap();
    while got.len() < 1 {
        let t = z.poll_timeout(Some(Duration::from_secs(5)));
        poll.poll(&mut events, t).unwrap();
        z.dispatch(&events, &mut h).unwrap();
    }
    // The turn that delivered it ended on EAGAIN. Now a message arrives and the
    // application reads ZMQ_EVENTS through the accessor, which takes ZMQ_FD's edge.
    push.send(&1u64.to_le_bytes()[..], 0).unwrap();
    assert!(z.socket().get_events().unwrap().contains(zmq::POLLIN));
    assert_eq!(
        z.poll_timeout(None),
        Some(Duration::ZERO),
        "planned to sleep forever with a message pending"
    );
    poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
    z.dispatch(&events, &mut h).unwrap();
    assert_eq!(got.len(), 2);
}

#[cfg(feature = "calloop")]
#[test]
fn calloop_does_not_sleep_on_a_message_whose_edge_the_application_consumed_after_a_turn() {
    use evnet::fair::{CalloopZmq, ZmqEvent, ZmqIo};
    let ctx = zmq::Context::new();
    let (pull, push) = inproc_pair(&ctx, "calloop-touch");
    let mut el = calloop::EventLoop::<u64>::try_new().unwrap();
    let d = calloop::Dispatcher::new(
        CalloopZmq::new(pull).unwrap(),
        |ev, _io: &mut ZmqIo, n: &mut u64| {
            if ev == ZmqEvent::Message {
                *n += 1;
            }
        },
    );
    el.handle().register_dispatcher(d.clone()).unwrap();
    let mut n = 0;
    push.send(&b"0"[..], 0).unwrap();
    let t0 = std::time::Instant::now();
    while n < 1 {
        el.dispatch(Some(Duration::from_secs(5)), &mut n).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
    push.send(&b"1"[..], 0).unwrap();
    assert!(d
        .as_source_ref()
        .socket()
        .get_events()
        .unwrap()
        .contains(zmq::POLLIN));
    // Without the fix this dispatch sleeps its whole 20 s on a socket that has a message.
    let t0 = std::time::Instant::now();
    el.dispatch(Some(Duration::from_secs(20)), &mut n).unwrap();
    assert_eq!(n, 2, "slept {:?} with a message pending", t0.elapsed());
}

/// Closes its socket from inside `readable` after `after` messages.
#[derive(Clone)]
struct Closer {
    got: Collect,
    after: u64,
}
impl ZmqHandler for Closer {
    fn readable(&mut self, m: &mut [zmq::Message], s: &mut Sock<'_>, (): ()) {
        self.got.readable(m, s, ());
        if self.got.len() == self.after {
            s.close();
        }
    }
}

#[test]
fn every_host_stops_calling_a_handler_that_closed_its_socket() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let (pull, push) = pull_push(&ctx, t);
        for i in 0..100u64 {
            push.send(&i.to_le_bytes()[..], 0).unwrap();
        }
        let c = Closer {
            got: Collect::default(),
            after: 5,
        };
        let ended = Rc::new(Cell::new(false));
        let out = hosts::run(
            host,
            Scenario {
                specs: vec![Spec::new(pull, c.clone())],
                // Run a few more turns after the close to see no call follows.
                tick: Some((
                    Duration::from_millis(1),
                    Box::new({
                        let ended = ended.clone();
                        let mut ticks_after = 0;
                        move |f| {
                            if f[0].is_none() {
                                ticks_after += 1;
                                ended.set(ticks_after >= 5);
                            }
                        }
                    }),
                )),
                done: Box::new(move || ended.get()),
            },
        );
        assert!(out.done, "{host:?}/{t}: never finished");
        assert_eq!(c.got.len(), 5, "{host:?}/{t}: calls after close");
        assert_eq!(out.ended[0], Some(Ok(())), "{host:?}/{t}");
    });
}

#[test]
fn every_host_sends_what_other_threads_queue_in_the_mailbox() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let (pull, push) = pull_push(&ctx, t);
        let n = 2000u64;
        let got = Collect::default();
        let senders = Rc::new(RefCell::new(Vec::new()));
        let s2 = senders.clone();
        let out = hosts::run(
            host,
            Scenario {
                specs: vec![
                    Spec::new(push, Collect::default()).mail(move |mb| {
                        s2.borrow_mut().push(thread::spawn(move || {
                            for i in 0..n {
                                mb.send([&i.to_le_bytes()[..]]).unwrap();
                            }
                        }));
                    }),
                    Spec::new(pull, got.clone()),
                ],
                tick: None,
                done: done_when(&got, n),
            },
        );
        for s in senders.borrow_mut().drain(..) {
            s.join().unwrap();
        }
        assert!(out.done, "{host:?}/{t}: stalled at {}", got.len());
        in_order(&format!("{host:?}/{t}"), &got.0.borrow(), n);
    });
}

/// Publishes `n` messages through an Outbox once the subscriber is connected.
struct Publisher {
    out: Outbox,
}
impl ZmqHandler for Publisher {
    fn writable(&mut self, s: &mut Sock<'_>, (): ()) {
        if self.out.is_empty() {
            s.set_writable(false);
        } else {
            self.out.flush_one(s).unwrap();
        }
    }
}

#[test]
fn every_host_carries_pub_sub_and_pair() {
    each(|host, t| {
        let ctx = zmq::Context::new();
        let publ = ctx.socket(zmq::PUB).unwrap();
        let sub = ctx.socket(zmq::SUB).unwrap();
        publ.set_sndhwm(0).unwrap();
        sub.set_rcvhwm(0).unwrap();
        sub.set_subscribe(b"").unwrap();
        util::link(&publ, &sub, t, "ps").unwrap();
        let a = ctx.socket(zmq::PAIR).unwrap();
        let b = ctx.socket(zmq::PAIR).unwrap();
        util::link(&a, &b, t, "pair").unwrap();
        // A subscription travels asynchronously: wait until it reached the publisher.
        util::await_subscription(&publ, &sub);
        let n = 3000u64;
        let mut out = Outbox::new();
        let mut pair_out = Outbox::new();
        for i in 0..n {
            out.push([&i.to_le_bytes()[..]]);
            pair_out.push([&i.to_le_bytes()[..]]);
        }
        let got = Collect::default();
        let pair_got = Collect::default();
        let (g, pg) = (got.clone(), pair_got.clone());
        let o = hosts::run(
            host,
            Scenario {
                specs: vec![
                    Spec::new(publ, Publisher { out }).writable(),
                    Spec::new(sub, got.clone()),
                    Spec::new(a, Publisher { out: pair_out }).writable(),
                    Spec::new(b, pair_got.clone()),
                ],
                tick: None,
                done: Box::new(move || g.len() >= n && pg.len() >= n),
            },
        );
        assert!(
            o.done,
            "{host:?}/{t}: stalled at {} / {}",
            got.len(),
            pair_got.len()
        );
        in_order(&format!("{host:?}/{t} sub"), &got.0.borrow(), n);
        in_order(&format!("{host:?}/{t} pair"), &pair_got.0.borrow(), n);
    });
}

/// Spends `SLOW` of CPU on every message and every `writable()` call, and counts them per
/// turn: the budget's time slice must end a turn within one such call.
const SLOW: Duration = Duration::from_micros(250);

fn spin(d: Duration) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[derive(Clone, Default)]
struct Slow {
    this_turn: Rc<Cell<u32>>,
    total: Rc<Cell<u32>>,
    sends: u32,
}
impl ZmqHandler for Slow {
    fn readable(&mut self, _: &mut [zmq::Message], _: &mut Sock<'_>, (): ()) {
        spin(SLOW);
        self.this_turn.set(self.this_turn.get() + 1);
        self.total.set(self.total.get() + 1);
    }
    fn writable(&mut self, s: &mut Sock<'_>, (): ()) {
        spin(SLOW);
        assert!(
            s.send(&b"slow"[..], false).unwrap(),
            "unbounded PULL took it"
        );
        self.this_turn.set(self.this_turn.get() + 1);
        self.total.set(self.total.get() + 1);
        if self.total.get() == self.sends {
            s.set_writable(false);
        }
    }
}

/// Steps `host` until `slow` saw `n` calls; returns the most calls one turn made.
fn most_per_turn(host: &mut dyn hosts::Stepper, slow: &Slow, n: u32) -> u32 {
    let mut most = 0;
    while slow.total.get() < n {
        host.turn(true);
        most = most.max(slow.this_turn.replace(0));
    }
    most
}

#[test]
fn every_host_ends_a_turn_within_one_slow_message_of_the_time_slice() {
    each(|host, t| {
        let _w = util::watchdog::watchdog(Duration::from_secs(60), format!("{host:?}/{t}"));
        let ctx = zmq::Context::new();
        let (pull, push) = pull_push(&ctx, t);
        let n = 12u32;
        for i in 0..n {
            push.send(&u64::from(i).to_le_bytes()[..], 0).unwrap();
        }
        let slow = Slow::default();
        let mut stepper = hosts::stepper(host, vec![Spec::new(pull, slow.clone())]);
        let most = most_per_turn(stepper.as_mut(), &slow, n);
        // 64 messages or 200 µs: a 250 µs message is past the slice on its own.
        assert!(most <= 2, "{host:?}/{t}: {most} slow messages in one turn");
    });
}

#[test]
fn every_host_ends_a_write_turn_within_one_slow_writable_call_of_the_time_slice() {
    each(|host, t| {
        let _w = util::watchdog::watchdog(Duration::from_secs(60), format!("{host:?}/{t}"));
        let ctx = zmq::Context::new();
        let (_pull, push) = pull_push(&ctx, t);
        // What is still in flight when the test ends must not hold `zmq_ctx_term` up.
        push.set_linger(0).unwrap();
        let n = 12u32;
        let slow = Slow {
            sends: n,
            ..Slow::default()
        };
        let mut stepper = hosts::stepper(host, vec![Spec::new(push, slow.clone()).writable()]);
        let most = most_per_turn(stepper.as_mut(), &slow, n);
        assert!(
            most <= 2,
            "{host:?}/{t}: {most} slow writable() calls in one turn"
        );
    });
}

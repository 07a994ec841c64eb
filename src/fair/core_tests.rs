//! The core's decisions against a scripted socket: what libzmq can answer, in the orders
//! that break a naive adapter.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::Duration;

use super::{Core, Deliver, Plan, Pulled, Step, Wire};
use crate::fair::handler::Flags;
use crate::fair::mailbox::{Mail, Sent};
use crate::fair::{Budget, Error};

/// What the scripted socket's next receive returns.
enum Recv {
    Part(&'static str, bool),
    Fail(zmq::Error),
}

/// A socket whose receives follow a script (then `EAGAIN`), whose `ZMQ_EVENTS` is set by
/// the test, and which counts how often it was read.
struct Scripted {
    kind: zmq::SocketType,
    script: RefCell<VecDeque<Recv>>,
    events: Cell<Result<zmq::PollEvents, zmq::Error>>,
    event_reads: Cell<u32>,
    /// What a send returns, and what `ZMQ_EVENTS` becomes after it (a send consumes
    /// readiness: libzmq processes its commands).
    send_result: Cell<Result<(), zmq::Error>>,
    events_after_send: Cell<zmq::PollEvents>,
}

impl Scripted {
    fn new(kind: zmq::SocketType, script: Vec<Recv>) -> Scripted {
        Scripted {
            kind,
            script: RefCell::new(script.into()),
            events: Cell::new(Ok(zmq::PollEvents::empty())),
            event_reads: Cell::new(0),
            send_result: Cell::new(Ok(())),
            events_after_send: Cell::new(zmq::PollEvents::empty()),
        }
    }

    fn send(&self) -> Result<(), zmq::Error> {
        self.events.set(Ok(self.events_after_send.get()));
        self.send_result.get()
    }
}

impl Wire for Scripted {
    fn kind(&self) -> Option<zmq::SocketType> {
        Some(self.kind)
    }

    fn events(&self) -> Result<zmq::PollEvents, zmq::Error> {
        self.event_reads.set(self.event_reads.get() + 1);
        self.events.get()
    }

    fn recv_part(&self, part: &mut zmq::Message) -> Result<bool, zmq::Error> {
        match self.script.borrow_mut().pop_front() {
            Some(Recv::Part(text, more)) => {
                *part = zmq::Message::from(text);
                Ok(more)
            }
            Some(Recv::Fail(e)) => Err(e),
            None => Err(zmq::Error::EAGAIN),
        }
    }

    fn flush_mail(&self, _: &mut Mail, _: &Flags) -> Result<Sent, Error> {
        Ok(Sent::Empty) // no test makes a mailbox
    }
}

/// A handler that records what it was given; `writable` sends through the script.
#[derive(Default)]
struct Record {
    parts: Vec<zmq::Message>,
    messages: Vec<Vec<String>>,
    errors: Vec<Error>,
    writes: u32,
    /// Wanted `writable()` calls before the handler stops asking.
    to_send: u32,
    /// Time each message takes to handle.
    cost: Duration,
}

impl Deliver<Scripted> for Record {
    fn parts(&mut self) -> &mut Vec<zmq::Message> {
        &mut self.parts
    }

    fn readable(&mut self, _: &Core<Scripted>, len: usize) {
        let msg = self.parts[..len]
            .iter()
            .map(|p| p.as_str().unwrap_or("?").to_owned())
            .collect();
        self.messages.push(msg);
        if !self.cost.is_zero() {
            let t0 = std::time::Instant::now();
            while t0.elapsed() < self.cost {}
        }
    }

    fn writable(&mut self, core: &Core<Scripted>) {
        self.writes += 1;
        let r = core.flags().sent(core.socket().send());
        if let Err(e) = r {
            self.errors.push(e);
        }
        if self.writes >= self.to_send {
            core.set_writable(false);
        }
    }

    fn error(&mut self, _: &Core<Scripted>, err: Error) {
        self.errors.push(err);
    }
}

fn parts(n: usize) -> Vec<Recv> {
    (0..n).map(|_| Recv::Part("m", false)).collect()
}

/// One whole turn as a front end runs it: plan, the poll (with `ZMQ_FD` fired), begin, and
/// the turn itself.
fn turn(core: &Core<Scripted>, d: &mut Record) -> Result<(), Error> {
    core.plan(false);
    match core.begin(true) {
        Step::Skip => Ok(()),
        Step::Work(seen) => core.turn(seen, d),
        Step::Fail(e) => Err(e),
    }
}

#[test]
fn eagain_inside_a_multipart_message_continues_it_next_turn_never_delivers_half() {
    let core = Core::new(
        Scripted::new(
            zmq::PULL,
            vec![
                Recv::Part("head", true),
                Recv::Fail(zmq::Error::EAGAIN),
                Recv::Part("body", true),
                Recv::Fail(zmq::Error::EINTR),
                Recv::Part("tail", false),
            ],
        ),
        Budget::DEFAULT,
    );
    core.socket().events.set(Ok(zmq::POLLIN));
    let mut d = Record::default();
    turn(&core, &mut d).unwrap();
    assert!(d.messages.is_empty(), "half a message: {:?}", d.messages);
    turn(&core, &mut d).unwrap(); // EINTR: the turn ends hot, the message still whole
    assert!(d.messages.is_empty(), "two thirds: {:?}", d.messages);
    turn(&core, &mut d).unwrap();
    assert_eq!(d.messages, [["head", "body", "tail"]]);
}

#[test]
fn eterm_from_zmq_events_ends_the_socket_on_the_turn_that_read_it() {
    let core = Core::new(Scripted::new(zmq::PULL, vec![]), Budget::DEFAULT);
    core.socket().events.set(Err(zmq::Error::ETERM));
    assert_eq!(
        core.plan(false),
        Plan::Busy,
        "the poll must not sleep on it"
    );
    assert!(matches!(core.begin(false), Step::Fail(Error::Terminated)));
    // A paused socket learns it from a fired ZMQ_FD.
    core.set_readable(false);
    assert_eq!(core.plan(false), Plan::Sleep);
    assert!(matches!(core.begin(true), Step::Fail(Error::Terminated)));
}

#[test]
fn eterm_on_a_receive_or_a_send_ends_the_socket() {
    let core = Core::new(
        Scripted::new(
            zmq::PULL,
            vec![Recv::Part("m", false), Recv::Fail(zmq::Error::ETERM)],
        ),
        Budget::DEFAULT,
    );
    core.socket().events.set(Ok(zmq::POLLIN));
    let mut d = Record::default();
    assert_eq!(turn(&core, &mut d), Err(Error::Terminated));
    assert_eq!(d.messages.len(), 1, "what came before is delivered");

    let core = Core::new(Scripted::new(zmq::DEALER, vec![]), Budget::DEFAULT);
    core.set_readable(false);
    core.set_writable(true);
    core.socket().events.set(Ok(zmq::POLLOUT));
    core.socket().send_result.set(Err(zmq::Error::ETERM));
    let mut d = Record {
        to_send: 10,
        ..Record::default()
    };
    assert_eq!(turn(&core, &mut d), Err(Error::Terminated));
    assert_eq!(
        d.writes, 1,
        "no writable() call after the send that met ETERM"
    );
}

#[test]
fn efsm_is_the_lockstep_of_req_and_rep_and_an_error_elsewhere() {
    for (kind, errors) in [(zmq::REP, 0), (zmq::REQ, 0), (zmq::DEALER, 1)] {
        let core = Core::new(
            Scripted::new(kind, vec![Recv::Fail(zmq::Error::EFSM)]),
            Budget::DEFAULT,
        );
        core.socket().events.set(Ok(zmq::POLLIN));
        let mut d = Record::default();
        assert_eq!(turn(&core, &mut d), Ok(()), "EFSM never ends the socket");
        assert_eq!(d.errors.len(), errors, "{kind:?}: {:?}", d.errors);
    }
}

#[test]
fn a_send_after_a_drained_receive_makes_the_next_plan_read_zmq_events_again() {
    // Receive-only and drained: the EAGAIN already did what reading ZMQ_EVENTS would.
    let core = Core::new(Scripted::new(zmq::PULL, parts(3)), Budget::DEFAULT);
    core.socket().events.set(Ok(zmq::POLLIN));
    let mut d = Record::default();
    turn(&core, &mut d).unwrap();
    assert_eq!(d.messages.len(), 3);
    let reads = core.socket().event_reads.get();
    assert_eq!(core.plan(true), Plan::Sleep);
    assert_eq!(
        core.socket().event_reads.get(),
        reads,
        "slept without asking libzmq"
    );

    // Both ways: the turn's send consumed ZMQ_EVENTS, so the EAGAIN before it says nothing.
    let core = Core::new(Scripted::new(zmq::DEALER, parts(2)), Budget::DEFAULT);
    core.set_writable(true);
    core.socket().events.set(Ok(zmq::POLLIN | zmq::POLLOUT));
    core.socket().events_after_send.set(zmq::POLLIN);
    let mut d = Record {
        to_send: 1,
        ..Record::default()
    };
    turn(&core, &mut d).unwrap();
    assert_eq!((d.messages.len(), d.writes), (2, 1));
    let reads = core.socket().event_reads.get();
    assert_eq!(
        core.plan(true),
        Plan::Busy,
        "the send left POLLIN to look at"
    );
    assert_eq!(core.socket().event_reads.get(), reads + 1);
}

#[test]
fn a_receive_only_socket_woken_by_its_fd_receives_without_a_look_first() {
    let core = Core::new(Scripted::new(zmq::ROUTER, parts(2)), Budget::DEFAULT);
    let mut d = Record::default();
    core.socket().events.set(Ok(zmq::POLLIN));
    turn(&core, &mut d).unwrap(); // drained
    assert_eq!(core.plan(true), Plan::Sleep);
    let reads = core.socket().event_reads.get();
    // The poll says ZMQ_FD fired: receive straight away.
    core.socket().script.borrow_mut().extend(parts(1));
    match core.begin(true) {
        Step::Work(seen) => core.turn(seen, &mut d).unwrap(),
        _ => panic!("no work after ZMQ_FD fired"),
    }
    assert_eq!(d.messages.len(), 3);
    assert_eq!(
        core.socket().event_reads.get(),
        reads,
        "looked before receiving"
    );
    // A terminated context shows on that receive as well.
    assert_eq!(core.plan(true), Plan::Sleep);
    core.socket()
        .script
        .borrow_mut()
        .push_back(Recv::Fail(zmq::Error::ETERM));
    match core.begin(true) {
        Step::Work(seen) => assert_eq!(core.turn(seen, &mut d), Err(Error::Terminated)),
        _ => panic!("no work after ZMQ_FD fired"),
    }
}

#[test]
fn a_drained_socket_the_application_touched_since_is_looked_at_before_sleeping() {
    let core = Core::new(Scripted::new(zmq::ROUTER, parts(2)), Budget::DEFAULT);
    core.socket().events.set(Ok(zmq::POLLIN));
    let mut d = Record::default();
    turn(&core, &mut d).unwrap();
    let reads = core.socket().event_reads.get();
    // The application reached the socket through the accessor after the turn (say, a
    // `get_events` that consumed ZMQ_FD's edge with a message pending): even a host
    // that vouches nothing else ran must not sleep on the drained turn's word.
    core.socket().events.set(Ok(zmq::POLLIN));
    let _ = core.user_socket();
    assert_eq!(core.plan(true), Plan::Busy, "a message is pending");
    assert_eq!(core.socket().event_reads.get(), reads + 1);

    // A pull-style consumer's receive is such a touch too.
    let core = Core::new(Scripted::new(zmq::PULL, parts(1)), Budget::DEFAULT);
    core.socket().events.set(Ok(zmq::POLLIN));
    turn(&core, &mut Record::default()).unwrap();
    let mut v = Vec::new();
    assert!(matches!(core.pull(&mut v), Pulled::Empty));
    let reads = core.socket().event_reads.get();
    core.plan(true);
    assert_eq!(
        core.socket().event_reads.get(),
        reads + 1,
        "looked before sleeping"
    );
}

#[test]
fn the_budget_ends_a_turn_by_count_and_the_next_plan_is_busy_without_a_look() {
    let core = Core::new(Scripted::new(zmq::PULL, parts(25)), Budget::messages(10));
    core.socket().events.set(Ok(zmq::POLLIN));
    let mut d = Record::default();
    turn(&core, &mut d).unwrap();
    assert_eq!(d.messages.len(), 10);
    let reads = core.socket().event_reads.get();
    assert_eq!(core.plan(false), Plan::Busy);
    assert_eq!(
        core.socket().event_reads.get(),
        reads,
        "hot: no ZMQ_EVENTS read"
    );
    match core.begin(false) {
        Step::Work(seen) => core.turn(seen, &mut d).unwrap(),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.messages.len(), 20);

    // REQ/REP alternate: a full budget says nothing about what comes next.
    let core = Core::new(Scripted::new(zmq::REP, parts(3)), Budget::ONE);
    core.socket().events.set(Ok(zmq::POLLIN));
    let mut d = Record::default();
    turn(&core, &mut d).unwrap();
    assert_eq!(d.messages.len(), 1);
    let reads = core.socket().event_reads.get();
    core.plan(false);
    assert_eq!(
        core.socket().event_reads.get(),
        reads + 1,
        "lockstep: always looks"
    );
}

#[test]
fn the_time_slice_ends_a_turn_within_one_slow_message() {
    // 250 µs per message against the default 200 µs slice: at most two per turn.
    let core = Core::new(Scripted::new(zmq::PULL, parts(6)), Budget::DEFAULT);
    core.socket().events.set(Ok(zmq::POLLIN));
    let mut d = Record {
        cost: Duration::from_micros(250),
        ..Record::default()
    };
    turn(&core, &mut d).unwrap();
    assert!(
        (1..=2).contains(&d.messages.len()),
        "{} slow messages in one turn",
        d.messages.len()
    );
}

#[test]
fn a_pulling_consumer_yields_once_its_slice_of_messages_in_a_row_is_spent() {
    let core = Core::new(Scripted::new(zmq::PULL, parts(5)), Budget::messages(3));
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(match core.pull(&mut buf) {
            Pulled::Message(k) => format!("m{k}"),
            Pulled::Yield => "yield".into(),
            Pulled::Empty => "empty".into(),
            Pulled::Failed(e) => format!("{e:?}"),
        });
    }
    assert_eq!(seen, ["m1", "m1", "m1", "yield", "m1", "m1", "empty"]);
}

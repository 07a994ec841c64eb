//! The seeded model on every host loop compiled in (evnet's own
//! loop, and the mio, calloop and tokio front ends with `--features front-ends`): random
//! sends from inside and outside the handlers, interest toggles, budget changes and
//! `ZMQ_EVENTS` pokes over several socket pairs, stepped one turn at a time. Every message
//! must be accounted for; a missed wake-up hangs a blocking turn and the watchdog names the
//! host and the seed. Replay one seed with `EVNET_SEED=<n>`.

mod util;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use evnet::fair::{Budget, Flushed, Outbox, Sock, ZmqHandler};
use util::hosts::{self, Host, Spec};
use util::Rng;

const PAIRS: usize = 4;
const STEPS: usize = 2000;

struct St {
    next: [u64; PAIRS],
    queued: [u64; PAIRS],
    /// Pairs with an odd index send through an Outbox and writable interest.
    outs: Vec<Outbox>,
    errors: Vec<String>,
}

type Shared = Rc<RefCell<St>>;

struct Tx {
    pair: usize,
    st: Shared,
}
impl ZmqHandler for Tx {
    fn readable(&mut self, _: &mut [zmq::Message], _: &mut Sock<'_>, (): ()) {}
    fn writable(&mut self, sock: &mut Sock<'_>, (): ()) {
        if self.pair.is_multiple_of(2) {
            // The model's own sender met EAGAIN and asked to be woken: it is.
            sock.set_writable(false);
            return;
        }
        let mut st = self.st.borrow_mut();
        match st.outs[self.pair].flush_one(sock) {
            Ok(Flushed::Empty) => sock.set_writable(false),
            Ok(_) => {}
            Err(e) => st.errors.push(e.to_string()),
        }
    }
}

struct Rx {
    pair: usize,
    st: Shared,
}
impl ZmqHandler for Rx {
    fn readable(&mut self, m: &mut [zmq::Message], _: &mut Sock<'_>, (): ()) {
        let i = self.pair;
        let mut st = self.st.borrow_mut();
        if m.len() != 2 || m[0].len() != 8 || m[1][..] != [i as u8; 3] {
            st.errors.push(format!("pair {i}: malformed message"));
            return;
        }
        let seq = u64::from_le_bytes(m[0][..].try_into().unwrap());
        if seq != st.next[i] {
            let e = format!("pair {i}: expected {} got {seq}", st.next[i]);
            st.errors.push(e);
        }
        st.next[i] = seq + 1;
    }
}

/// Sends the backlog's messages straight into the socket (from outside the handlers);
/// on the high-water mark, asks the host to wake the sender when it can take more.
fn flush_backlog(s: &dyn hosts::Front, q: &mut VecDeque<u64>, j: usize) -> Result<(), String> {
    while let Some(&seq) = q.front() {
        match s
            .socket()
            .send(&seq.to_le_bytes()[..], zmq::DONTWAIT | zmq::SNDMORE)
        {
            Ok(()) => {
                s.socket()
                    .send(&[j as u8; 3][..], zmq::DONTWAIT)
                    .map_err(|e| format!("pair {j}: second part: {e}"))?;
                q.pop_front();
            }
            Err(zmq::Error::EAGAIN) => {
                s.set_writable(true);
                break;
            }
            Err(e) => return Err(format!("pair {j}: {e}")),
        }
    }
    Ok(())
}

fn model(host: Host, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed | 1);
    let ctx = zmq::Context::new();
    let st: Shared = Rc::new(RefCell::new(St {
        next: [0; PAIRS],
        queued: [0; PAIRS],
        outs: (0..PAIRS).map(|_| Outbox::new()).collect(),
        errors: Vec::new(),
    }));
    let kinds = [
        (zmq::PUSH, zmq::PULL),
        (zmq::DEALER, zmq::DEALER),
        (zmq::PAIR, zmq::PAIR),
        (zmq::PUSH, zmq::PULL),
    ];
    // Sockets 2i (sender) and 2i+1 (receiver) make pair i.
    let mut specs = Vec::new();
    for (i, (a, b)) in kinds.iter().enumerate() {
        let t = util::TRANSPORTS[i % 3];
        let tx = ctx.socket(*a).unwrap();
        let rx = ctx.socket(*b).unwrap();
        tx.set_sndhwm(1 + rng.below(20) as i32).unwrap();
        rx.set_rcvhwm(1 + rng.below(20) as i32).unwrap();
        util::link(&rx, &tx, t, "fe-model").unwrap();
        let b = Budget::messages(1 + rng.below(16) as u32);
        specs.push(
            Spec::new(
                tx,
                Tx {
                    pair: i,
                    st: st.clone(),
                },
            )
            .budget(b)
            .readable(false),
        );
        specs.push(
            Spec::new(
                rx,
                Rx {
                    pair: i,
                    st: st.clone(),
                },
            )
            .budget(b),
        );
    }
    let mut host = hosts::stepper(host, specs);
    let mut backlog: Vec<VecDeque<u64>> = vec![VecDeque::new(); PAIRS];
    let check = |st: &Shared| {
        let st = st.borrow();
        if st.errors.is_empty() {
            Ok(())
        } else {
            Err(st.errors.join("; "))
        }
    };
    for _ in 0..STEPS {
        let i = rng.below(PAIRS as u64) as usize;
        match rng.below(10) {
            0..=4 => {
                for _ in 0..1 + rng.below(8) {
                    let mut s = st.borrow_mut();
                    let seq = s.queued[i];
                    if i % 2 == 1 {
                        s.outs[i].push([&seq.to_le_bytes()[..], &[i as u8; 3][..]]);
                        host.with(2 * i, &mut |f| f.set_writable(true));
                    } else {
                        backlog[i].push_back(seq);
                    }
                    s.queued[i] += 1;
                }
            }
            5 => host.with(2 * i + 1, &mut |f| {
                f.set_readable(!f.interest().is_readable())
            }),
            6 => {
                let b = Budget::messages(1 + rng.below(64) as u32);
                host.with(2 * i + 1, &mut |f| f.set_budget(b));
            }
            7 => {
                let b = Budget::messages(1 + rng.below(64) as u32);
                host.with(2 * i, &mut |f| f.set_budget(b));
            }
            8 => {
                // Poke ZMQ_EVENTS from outside, as careless user code would.
                let side = 2 * i + rng.below(2) as usize;
                host.with(side, &mut |f| {
                    let _ = f.socket().get_events();
                });
            }
            _ => {
                for _ in 0..rng.below(3) {
                    host.turn(false);
                }
            }
        }
        for (j, q) in backlog.iter_mut().enumerate() {
            let mut r = Ok(());
            host.with(2 * j, &mut |f| r = flush_backlog(f, q, j));
            r?;
        }
        host.turn(false);
        check(&st)?;
    }
    for i in 0..PAIRS {
        host.with(2 * i + 1, &mut |f| f.set_readable(true));
    }
    let mut spins = 0;
    loop {
        let pending = {
            let s = st.borrow();
            backlog.iter().any(|q| !q.is_empty()) || (0..PAIRS).any(|i| s.next[i] < s.queued[i])
        };
        if !pending {
            break;
        }
        for (j, q) in backlog.iter_mut().enumerate() {
            let mut r = Ok(());
            host.with(2 * j, &mut |f| r = flush_backlog(f, q, j));
            r?;
        }
        // A blocking turn with no timer: only real traffic ends its sleep.
        host.turn(true);
        spins += 1;
        if spins > 2_000_000 {
            return Err("no progress".into());
        }
        check(&st)?;
    }
    let s = st.borrow();
    for i in 0..PAIRS {
        if s.next[i] != s.queued[i] {
            return Err(format!(
                "pair {i}: {} of {} delivered",
                s.next[i], s.queued[i]
            ));
        }
    }
    Ok(())
}

#[test]
fn every_host_accounts_for_every_message_in_the_seeded_model() {
    let seeds: Vec<u64> = match std::env::var("EVNET_SEED") {
        Ok(s) => vec![s.parse().expect("EVNET_SEED is a number")],
        Err(_) => (1..=6)
            .map(|i| 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i))
            .collect(),
    };
    for host in hosts::hosts() {
        for &seed in &seeds {
            let (tx, rx) = mpsc::channel();
            let h = thread::spawn(move || {
                let _ = tx.send(model(host, seed));
            });
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(Ok(())) => h.join().unwrap(),
                Ok(Err(e)) => panic!("{host:?}, seed {seed}: {e}"),
                Err(_) => panic!("{host:?}, seed {seed}: watchdog fired (missed wake-up?)"),
            }
        }
    }
}

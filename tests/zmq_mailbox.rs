//! `Mailbox`: sends to a loop-owned socket from other threads, bounded, in order per
//! sender, none lost; `Full` and `Closed` hand the message back.

mod util;

use std::thread;
use std::time::Duration;

use evnet::ev::{Ctx, Loop};
use evnet::fair::{MailError, Sock, ZmqHandler, ZmqWatcher};

const LIMIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct St {
    next: [u64; 4],
    got: u64,
    errors: Vec<String>,
}

struct Rx;
impl ZmqHandler<Ctx<St>> for Rx {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (st, _): (&mut St, &mut Ctx<St>),
    ) {
        let (Some(who), Some(seq)) = (
            m.first().and_then(|p| p.first().copied()),
            m.get(1)
                .and_then(|p| p[..].try_into().ok().map(u64::from_le_bytes)),
        ) else {
            st.errors.push("malformed".into());
            return;
        };
        let i = usize::from(who);
        if st.next[i] != seq {
            st.errors
                .push(format!("sender {i}: expected {} got {seq}", st.next[i]));
        }
        st.next[i] = seq + 1;
        st.got += 1;
    }
}

/// A send-only handler: PUSH needs no `readable`.
struct Tx;
impl ZmqHandler<Ctx<St>> for Tx {
    fn error(&mut self, e: evnet::fair::Error, (st, _): (&mut St, &mut Ctx<St>)) {
        st.errors.push(format!("tx: {e}"));
    }
}

#[test]
fn four_threads_send_100k_each_in_order_through_a_bounded_mailbox() {
    for t in util::TRANSPORTS {
        let ctx = zmq::Context::new();
        let pull = ctx.socket(zmq::PULL).unwrap();
        let push = ctx.socket(zmq::PUSH).unwrap();
        util::link(&pull, &push, t, "mailbox").unwrap();
        let mut ev = Loop::<St>::new().unwrap();
        let _rx = ZmqWatcher::new(&mut ev, pull, Rx).unwrap();
        let tx = ZmqWatcher::new(&mut ev, push, Tx).unwrap();
        let mailbox = tx.mailbox(&mut ev, 256).unwrap();
        let n = if t == "inproc" { 100_000u64 } else { 25_000 };
        let senders: Vec<_> = (0..4u8)
            .map(|who| {
                let mb = mailbox.clone();
                thread::spawn(move || {
                    let mut full = 0u64;
                    for seq in 0..n {
                        let mut msg = vec![vec![who], seq.to_le_bytes().to_vec()];
                        // Half the senders spin on try_send, half block in send.
                        if who % 2 == 0 {
                            loop {
                                match mb.try_send(msg) {
                                    Ok(()) => break,
                                    Err(MailError::Full(m)) => {
                                        full += 1;
                                        msg = m.iter().map(|p| p.to_vec()).collect();
                                        thread::yield_now();
                                    }
                                    Err(e) => panic!("{e}"),
                                }
                            }
                        } else {
                            mb.send(msg).unwrap();
                        }
                    }
                    full
                })
            })
            .collect();
        drop(mailbox);
        let mut st = St::default();
        let done = ev
            .run_until(&mut st, LIMIT, |s| s.got == 4 * n || !s.errors.is_empty())
            .unwrap();
        let full: u64 = senders.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(
            st.errors.is_empty(),
            "{t}: {:?}",
            &st.errors[..st.errors.len().min(3)]
        );
        assert!(done, "{t}: {} of {}", st.got, 4 * n);
        assert_eq!(st.next, [n; 4], "{t}");
        eprintln!(
            "{t}: {} messages, the bounded queue refused {full} try_sends",
            4 * n
        );
    }
}

#[test]
fn a_closed_watcher_hands_mail_back() {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.bind(&util::endpoint("inproc", "closed")).unwrap();
    let mut ev = Loop::<St>::new().unwrap();
    let tx = ZmqWatcher::new(&mut ev, push, Tx).unwrap();
    let mb = tx.mailbox(&mut ev, 1).unwrap();
    // No peer: the one slot fills and stays full.
    mb.try_send([&b"first"[..]]).unwrap();
    match mb.try_send([&b"second"[..]]) {
        Err(MailError::Full(m)) => assert_eq!(&m[0][..], b"second"),
        other => panic!("{other:?}"),
    }
    tx.close(&mut ev);
    match mb.send([&b"third"[..]]) {
        Err(e @ MailError::Closed(_)) => assert_eq!(&e.into_message()[0][..], b"third"),
        other => panic!("{other:?}"),
    }
    ev.run_nowait(&mut St::default()).unwrap();
}

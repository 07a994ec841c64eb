//! N loops on N threads (`loops::Loops`), the cross-loop `channel`, and `SO_REUSEPORT`
//! listener shards, with real threads and real loopback sockets.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evnet::ev::{Ctx, Loop};
use evnet::loops::{channel, Error, LoopsBuilder, SendError};
use evnet::socket::{bind_tcp_shard, Accept, Listener};
use util::watchdog::watchdog;

const LIMIT: Duration = Duration::from_secs(30);

/// A repeating timer: keeps a loop busy forever unless stopped.
fn forever<S: 'static>(ev: &mut Loop<S>) {
    let t = Duration::from_millis(1);
    ev.timer(t, Some(t), |_, _, _| {});
}

#[test]
fn stop_runs_each_loops_on_stop_on_its_own_thread_and_join_returns() {
    let _w = watchdog(LIMIT, "stop_runs_each_loops_on_stop");
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let s2 = stopped.clone();
    let loops = LoopsBuilder::new(3)
        .name("tloop")
        .spawn(
            |i, ev| {
                forever(ev);
                Ok(i)
            },
            move |i: &mut usize, cx| {
                let name = std::thread::current().name().map(str::to_owned);
                s2.lock().unwrap().push((*i, name));
                cx.stop_loop();
            },
        )
        .unwrap();
    assert_eq!(loops.len(), 3);
    assert!(!loops.is_stopping());
    loops.stop();
    assert!(loops.is_stopping());
    loops.stop(); // twice: on_stop still runs once per loop
    loops.join().unwrap();
    let mut got = stopped.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        (0..3)
            .map(|i| (i, Some(format!("tloop-{i}"))))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_stop_asked_before_a_loop_is_running_is_not_lost() {
    let _w = watchdog(LIMIT, "a_stop_asked_before_a_loop_is_running");
    for _ in 0..20 {
        let loops = LoopsBuilder::new(2)
            .spawn(
                |_, ev| {
                    forever(ev);
                    Ok(())
                },
                |_, cx| cx.stop_loop(),
            )
            .unwrap();
        loops.stop(); // races the threads' start
        loops.join().unwrap();
    }
}

#[test]
fn a_panicking_loop_stops_the_others_and_join_reports_it_by_index() {
    let _w = watchdog(LIMIT, "a_panicking_loop_stops_the_others");
    let stopped = Arc::new(AtomicUsize::new(0));
    let s2 = stopped.clone();
    let loops = LoopsBuilder::new(3)
        .spawn(
            |i, ev: &mut Loop<()>| {
                forever(ev);
                if i == 1 {
                    ev.timer(Duration::from_millis(5), None, |_, _, _| {
                        panic!("boom in loop one")
                    });
                }
                Ok(())
            },
            move |_, cx| {
                s2.fetch_add(1, Ordering::SeqCst);
                cx.stop_loop();
            },
        )
        .unwrap();
    let err = loops.join().unwrap_err();
    assert_eq!(err.index(), 1);
    match &err {
        Error::Panicked { message, .. } => assert!(message.contains("boom in loop one")),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        2,
        "the other two were stopped"
    );
}

#[test]
fn a_setup_error_comes_back_typed_with_its_cause() {
    let _w = watchdog(LIMIT, "a_setup_error_comes_back_typed");
    let loops = LoopsBuilder::new(2)
        .spawn(
            |i, ev: &mut Loop<()>| {
                if i == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "port taken",
                    ));
                }
                forever(ev);
                Ok(())
            },
            |_, cx| cx.stop_loop(),
        )
        .unwrap();
    let err = loops.join().unwrap_err();
    assert!(matches!(err, Error::Setup { index: 0, .. }), "{err:?}");
    let cause = std::error::Error::source(&err).unwrap();
    assert_eq!(cause.to_string(), "port taken");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::AddrInUse
    );
}

#[test]
fn dropping_the_handle_stops_and_joins_the_loops() {
    let _w = watchdog(LIMIT, "dropping_the_handle_stops_and_joins");
    let ended = Arc::new(AtomicUsize::new(0));
    struct Mark(Arc<AtomicUsize>);
    impl Drop for Mark {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let e2 = ended.clone();
    let loops = LoopsBuilder::new(2)
        .spawn(
            move |_, ev| {
                forever(ev);
                Ok(Mark(e2.clone()))
            },
            |_, cx| cx.stop_loop(),
        )
        .unwrap();
    drop(loops);
    assert_eq!(ended.load(Ordering::SeqCst), 2, "both states were dropped");
}

#[cfg(target_os = "linux")]
#[test]
fn pinned_loops_each_run_on_one_cpu() {
    let _w = watchdog(LIMIT, "pinned_loops_each_run_on_one_cpu");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let loops = LoopsBuilder::new(2)
        .pin(true)
        .spawn(
            move |i, ev: &mut Loop<()>| {
                let status = std::fs::read_to_string("/proc/thread-self/status")?;
                let cpus = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(|v| v.trim().to_owned());
                s2.lock().unwrap().push((i, cpus));
                forever(ev);
                Ok(())
            },
            |_, cx| cx.stop_loop(),
        )
        .unwrap();
    loops.stop();
    loops.join().unwrap();
    for (i, cpus) in seen.lock().unwrap().iter() {
        let cpus = cpus.as_deref().unwrap();
        assert!(
            cpus.parse::<usize>().is_ok(),
            "loop {i} may run on {cpus}, not one CPU"
        );
    }
}

#[test]
fn a_channel_keeps_each_senders_order_across_threads_and_loses_nothing() {
    let _w = watchdog(LIMIT, "a_channel_keeps_each_senders_order");
    const N: u64 = 20_000;
    let (tx, rx) = channel::<(u8, u64)>(64); // small: senders meet a full queue often
    let producers: Vec<_> = (0..3u8)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    tx.send((p, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut ev = Loop::<[u64; 3]>::new().unwrap();
    rx.attach(&mut ev, |next: &mut [u64; 3], _cx, (p, i)| {
        assert_eq!(next[p as usize], i, "sender {p} out of order");
        next[p as usize] += 1;
    })
    .unwrap();
    let mut next = [0; 3];
    ev.run(&mut next).unwrap(); // returns once every sender is gone and all is delivered
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(next, [N; 3]);
}

#[test]
fn a_channel_delivers_at_most_its_batch_per_turn() {
    let _w = watchdog(LIMIT, "a_channel_delivers_at_most_its_batch");
    let (tx, rx) = channel::<u32>(1000);
    for i in 0..1000 {
        tx.try_send(i).unwrap();
    }
    assert!(matches!(tx.try_send(1000), Err(SendError::Full(1000))));
    drop(tx);
    #[derive(Default)]
    struct St {
        this_turn: usize,
        most: usize,
        turns_with_mail: usize,
        got: usize,
    }
    let mut ev = Loop::<St>::new().unwrap();
    rx.batch(10)
        .attach(&mut ev, |st: &mut St, _cx, _m| {
            st.this_turn += 1;
            st.got += 1;
        })
        .unwrap();
    // A prepare watcher sees each turn's delivery end; it must not keep the loop alive.
    let p = ev.prepare(|st: &mut St, _cx, _e| {
        if st.this_turn > 0 {
            st.turns_with_mail += 1;
        }
        st.most = st.most.max(std::mem::take(&mut st.this_turn));
    });
    let mut st = St::default();
    ev.run_until(&mut st, Duration::from_secs(5), |st| st.got == 1000)
        .unwrap();
    ev.remove(p);
    assert_eq!(st.got, 1000);
    assert!(st.most <= 10, "{} messages in one turn", st.most);
    assert!(st.turns_with_mail >= 99, "{} turns", st.turns_with_mail);
}

#[test]
fn a_channel_between_two_loops_wakes_a_sleeping_receiver() {
    let _w = watchdog(LIMIT, "a_channel_between_two_loops");
    let (tx, rx) = channel::<u64>(16);
    let rx = Mutex::new(Some(rx));
    let tx = Mutex::new(Some(tx));
    let total = Arc::new(AtomicUsize::new(0));
    let t2 = total.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let done_tx = Mutex::new(done_tx);
    // Loop 0 sends 1..=100 from a timer (a full queue is retried next tick); loop 1 sleeps
    // with nothing but the channel, and sums.
    let loops = LoopsBuilder::new(2)
        .spawn(
            move |i, ev: &mut Loop<u64>| {
                if i == 0 {
                    let tx = tx.lock().unwrap().take().unwrap();
                    let t = Duration::from_micros(200);
                    ev.timer(t, Some(t), move |next: &mut u64, cx, e| {
                        while *next <= 100 {
                            match tx.try_send(*next) {
                                Ok(()) => *next += 1,
                                Err(SendError::Full(_)) => return,
                                Err(e) => panic!("{e}"),
                            }
                        }
                        cx.remove(e.watcher()); // drops the sender: loop 1 ends
                    });
                    Ok(1)
                } else {
                    let rx = rx.lock().unwrap().take().unwrap();
                    let t2 = t2.clone();
                    let done = done_tx.lock().unwrap().clone();
                    rx.attach(ev, move |_, _cx: &mut Ctx<u64>, v| {
                        if t2.fetch_add(v as usize, Ordering::SeqCst) + v as usize == 5050 {
                            let _ = done.send(());
                        }
                    })?;
                    Ok(0)
                }
            },
            |_, cx| cx.stop_loop(),
        )
        .unwrap();
    // Each loop's stop watcher keeps it running until asked: ask once the sum is in.
    done_rx.recv().unwrap();
    loops.stop();
    loops.join().unwrap();
    assert_eq!(total.load(Ordering::SeqCst), 5050);
}

#[test]
fn senders_get_their_message_back_once_the_receiving_loop_is_gone() {
    let _w = watchdog(LIMIT, "senders_get_their_message_back");
    let (tx, rx) = channel::<String>(4);
    {
        let mut ev = Loop::<()>::new().unwrap();
        rx.attach(&mut ev, |_, _, _| {}).unwrap();
    } // the loop, its watcher and the receiver are dropped
    match tx.try_send("late".into()) {
        Err(SendError::Closed(m)) => assert_eq!(m, "late"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(tx.send("later".into()), Err(SendError::Closed(_))));
}

/// One echo exchange on a fresh connection.
fn echo_once(addr: SocketAddr, msg: &[u8]) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn loops_listening_on_shards_of_one_port_each_accept_a_share() {
    let _w = watchdog(LIMIT, "loops_listening_on_shards_of_one_port");
    let first = bind_tcp_shard("127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let addr = first.local_addr().unwrap().as_socket().unwrap();
    let first = Mutex::new(Some(first));
    let accepted: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
    let a2 = accepted.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let ready_tx = Mutex::new(ready_tx);
    struct Shard(Option<Listener<Shard>>);
    let loops = LoopsBuilder::new(2)
        .spawn(
            move |i, ev: &mut Loop<Shard>| {
                let sock = match first.lock().unwrap().take() {
                    Some(s) => s,
                    None => bind_tcp_shard(addr, 128)?,
                };
                let a2 = a2.clone();
                let l = Listener::new(ev, vec![sock], move |_, _cx, a| {
                    if let Accept::Conn(c) = a {
                        a2[i].fetch_add(1, Ordering::SeqCst);
                        // A blocking echo of one small message is enough here.
                        let mut s: TcpStream = c.socket.into();
                        s.set_nonblocking(false).unwrap();
                        let mut b = [0u8; 5];
                        s.read_exact(&mut b).unwrap();
                        s.write_all(&b).unwrap();
                    }
                });
                ready_tx.lock().unwrap().send(()).unwrap();
                Ok(Shard(Some(l)))
            },
            |shard, cx| {
                shard.0.take(); // stop accepting
                cx.stop_loop();
            },
        )
        .unwrap();
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    for _ in 0..64 {
        echo_once(addr, b"hello");
    }
    loops.stop();
    loops.join().unwrap();
    let a = [
        accepted[0].load(Ordering::SeqCst),
        accepted[1].load(Ordering::SeqCst),
    ];
    assert_eq!(a[0] + a[1], 64);
    // The kernel hashes each connection's ports: both shards get some (all 64 on one
    // has a chance of 2^-63).
    assert!(a[0] > 0 && a[1] > 0, "shares {a:?}");
}

#[test]
fn a_loop_that_ends_wakes_the_thread_waiting_for_the_set() {
    let _w = watchdog(LIMIT, "a_loop_that_ends_wakes_the_waiting_thread");
    // The waiting thread sleeps on a wake watcher alone: only the ended loop can wake it.
    let mut waiting = Loop::<Option<evnet::loops::Loops>>::new().unwrap();
    let (_, ended) = waiting
        .waker(|loops, cx, _| {
            if loops.as_ref().is_some_and(evnet::loops::Loops::is_finished) {
                cx.stop_loop();
            }
        })
        .unwrap();
    let loops = LoopsBuilder::new(2)
        .on_exit(ended)
        .spawn(
            |i, ev: &mut Loop<()>| {
                forever(ev);
                if i == 0 {
                    ev.timer(Duration::from_millis(5), None, |_, _, _| {
                        panic!("loop 0 fails")
                    });
                }
                Ok(())
            },
            |_, cx| cx.stop_loop(),
        )
        .unwrap();
    let mut loops = Some(loops);
    // A run that ends only when every loop has: loop 0's panic stopped loop 1.
    waiting.run(&mut loops).unwrap();
    let loops = loops.unwrap();
    assert!(loops.is_finished());
    assert!(matches!(
        loops.join(),
        Err(Error::Panicked { index: 0, .. })
    ));
}

//! The `ev` loop: turn order, watcher lifecycle from callbacks, wake-ups, timers.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evnet::ev::{IoInterest, Loop, WatcherId};

#[test]
fn timers_fire_in_deadline_order() {
    let mut ev = Loop::<Vec<u32>>::new().unwrap();
    for (i, ms) in [5u64, 1, 4, 2, 3, 2].into_iter().enumerate() {
        ev.timer(Duration::from_millis(ms), None, move |log, _, _| {
            log.push(i as u32)
        });
    }
    let mut log = vec![];
    ev.run(&mut log).unwrap();
    // Equal deadlines (index 3 and 5, both 2 ms) fire in start order.
    assert_eq!(log, vec![1, 3, 5, 4, 2, 0]);
}

#[test]
fn timer_is_never_early_and_reports_its_deadline() {
    let mut ev = Loop::<Vec<(Instant, Instant)>>::new().unwrap();
    let t0 = Instant::now();
    ev.timer(
        Duration::from_micros(300),
        Some(Duration::from_micros(700)),
        |log, cx, e| {
            log.push((e.due().unwrap(), Instant::now()));
            if log.len() == 5 {
                cx.stop(e.watcher());
            }
        },
    );
    let mut log = vec![];
    ev.run(&mut log).unwrap();
    assert_eq!(log.len(), 5);
    for (i, (due, fired)) in log.iter().enumerate() {
        assert!(fired >= due, "fired before its deadline");
        let expect = t0 + Duration::from_micros(300 + 700 * i as u64);
        // Deadlines keep their cadence (not drifting by each tick's lateness).
        assert!(*due >= expect && *due < expect + Duration::from_millis(50));
    }
}

#[test]
fn repeating_timer_and_stop_from_callback() {
    let mut ev = Loop::<u32>::new().unwrap();
    ev.timer(
        Duration::from_millis(1),
        Some(Duration::from_millis(1)),
        |n, cx, _| {
            *n += 1;
            if *n == 10 {
                cx.stop_loop();
            }
        },
    );
    let mut n = 0;
    ev.run(&mut n).unwrap();
    assert_eq!(n, 10);
    // The timer is still active: run resumes it.
    let w = ev.timer(Duration::from_millis(3), None, |_, cx, _| cx.stop_loop());
    ev.run(&mut n).unwrap();
    assert!(n > 10);
    assert!(!ev.is_active(w));
}

#[derive(Default)]
struct Log {
    ran: Vec<&'static str>,
    b: Option<WatcherId>,
}

#[test]
fn watcher_stopped_while_pending_does_not_run() {
    // Two timers expire in the same turn; the first stops the second, which is pending.
    let mut ev = Loop::<Log>::new().unwrap();
    ev.timer(Duration::from_millis(1), None, |st, cx, _| {
        st.ran.push("a");
        cx.stop(st.b.unwrap());
    });
    let b = ev.timer(Duration::from_millis(1), None, |st, _, _| st.ran.push("b"));
    let mut st = Log {
        b: Some(b),
        ..Log::default()
    };
    std::thread::sleep(Duration::from_millis(3));
    ev.run_once(&mut st).unwrap();
    assert_eq!(st.ran, vec!["a"]);
    assert!(ev.pending(b).is_none());
}

#[test]
fn watcher_removed_while_pending_does_not_run_and_slot_reuse_gets_no_stale_event() {
    let mut ev = Loop::<Log>::new().unwrap();
    ev.timer(Duration::from_millis(1), None, |st, cx, _| {
        st.ran.push("a");
        assert!(cx.remove(st.b.unwrap()));
        // Reuses b's slot; must not receive b's pending expiry.
        let c = cx.timer(Duration::from_secs(60), None, |st, _, _| st.ran.push("c"));
        assert_eq!(cx.pending(c).map(|e| e.watcher()), None);
        st.b = Some(c);
    });
    let b = ev.timer(Duration::from_millis(1), None, |st, _, _| st.ran.push("b"));
    let mut st = Log {
        b: Some(b),
        ..Log::default()
    };
    std::thread::sleep(Duration::from_millis(3));
    ev.run_once(&mut st).unwrap();
    assert_eq!(st.ran, vec!["a"]);
    let c = st.b.unwrap();
    assert_ne!(c, b, "the new watcher has a new version");
    assert!(!ev.start(b), "stale id is refused");
    assert!(ev.is_active(c));
    ev.remove(c);
}

#[test]
fn watcher_removes_itself_inside_its_callback() {
    let mut ev = Loop::<u32>::new().unwrap();
    let w = ev.idle(|n, cx, e| {
        *n += 1;
        cx.remove(e.watcher());
    });
    let mut n = 0;
    ev.run(&mut n).unwrap();
    assert_eq!(n, 1);
    assert!(!ev.is_active(w));
    assert!(!ev.remove(w));
}

#[test]
fn prepare_check_idle_order() {
    let mut ev = Loop::<Vec<&'static str>>::new().unwrap();
    ev.prepare(|l, _, _| l.push("prepare"));
    ev.check(|l, _, _| l.push("check"));
    ev.idle(|l, cx, _| {
        l.push("idle");
        cx.stop_loop();
    });
    let mut l = vec![];
    ev.run(&mut l).unwrap();
    assert_eq!(l, vec!["prepare", "check", "idle"]);
}

#[test]
fn idle_runs_only_when_nothing_else_was_pending() {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"x").unwrap();
    let mut ev = Loop::<Vec<&'static str>>::new().unwrap();
    ev.io(b.try_clone().unwrap(), IoInterest::READABLE, |l, cx, e| {
        l.push("io");
        cx.stop(e.watcher());
    });
    ev.idle(|l, cx, _| {
        l.push("idle");
        cx.stop_loop();
    });
    let mut l = vec![];
    ev.run(&mut l).unwrap();
    assert_eq!(l, vec!["io", "idle"]);
    drop(a);
}

#[test]
fn io_is_level_triggered_and_interest_changes_apply() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    a.write_all(b"hello").unwrap();
    struct St {
        reads: u32,
        writes: u32,
    }
    let mut ev = Loop::<St>::new().unwrap();
    let w = ev.io(b.try_clone().unwrap(), IoInterest::READABLE, |st, cx, e| {
        if e.is_readable() {
            st.reads += 1; // not reading: level-triggered, fires again next turn
            if st.reads == 3 {
                cx.set_interest(e.watcher(), IoInterest::WRITABLE);
            }
        }
        if e.is_writable() {
            st.writes += 1;
            cx.set_interest(e.watcher(), IoInterest::READABLE);
        }
    });
    let mut st = St {
        reads: 0,
        writes: 0,
    };
    for _ in 0..3 {
        ev.run_once(&mut st).unwrap();
    }
    assert_eq!(st.reads, 3);
    ev.run_once(&mut st).unwrap();
    assert_eq!(st.writes, 1);
    assert_eq!(ev.interest(w), Some(IoInterest::READABLE));
    let mut buf = [0u8; 5];
    b.read_exact(&mut buf).unwrap();
    ev.remove(w);
}

#[test]
fn stop_start_in_the_same_turn_costs_no_epoll_ctl() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let mut ev = Loop::<u32>::new().unwrap();
    let io = ev.io(b.try_clone().unwrap(), IoInterest::READABLE, |n, _, _| {
        *n += 1
    });
    ev.run_nowait(&mut 0).unwrap(); // registers
    let before = ev.stats().ctl_calls;
    // The ZeroMQ quartet's pattern: check stops io, prepare starts it again.
    let check = ev.check(move |_, cx, _| {
        cx.stop(io);
    });
    let prepare = ev.prepare(move |_, cx, _| {
        cx.start(io);
    });
    for _ in 0..1000 {
        ev.run_nowait(&mut 0).unwrap();
    }
    assert_eq!(ev.stats().ctl_calls, before);
    // And the registration the kernel kept is still the watcher's: readiness reaches it.
    ev.remove(check);
    ev.remove(prepare);
    ev.start(io); // the last check stopped it
    a.write_all(b"x").unwrap();
    let mut n = 0;
    ev.run_nowait(&mut n).unwrap();
    assert_eq!(n, 1, "the io watcher missed its readiness");
    assert_eq!(ev.stats().ctl_calls, before);
}

#[test]
fn unwanted_readiness_is_disarmed_not_spun_on() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let mut ev = Loop::<u32>::new().unwrap();
    let io = ev.io(b.try_clone().unwrap(), IoInterest::READABLE, |n, _, _| {
        *n += 1
    });
    ev.run_nowait(&mut 0).unwrap();
    ev.stop(io); // lazily still registered
    a.write_all(b"x").unwrap();
    let mut n = 0;
    ev.timer(Duration::from_millis(20), None, |_, _, _| {});
    let t0 = Instant::now();
    ev.run(&mut n).unwrap(); // must sleep until the timer, not spin on the readable fd
    assert_eq!(n, 0);
    assert!(ev.stats().turns < 10, "spun: {} turns", ev.stats().turns);
    assert!(t0.elapsed() >= Duration::from_millis(20));
    ev.start(io);
    ev.run_once(&mut n).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn wake_from_other_threads_runs_on_loop_thread_and_coalesces() {
    struct St {
        woken: u32,
        thread: Option<std::thread::ThreadId>,
    }
    let mut ev = Loop::<St>::new().unwrap();
    let (w, waker) = ev
        .waker(|st, cx, _| {
            st.woken += 1;
            st.thread = Some(std::thread::current().id());
            cx.stop_loop();
        })
        .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let k = waker.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    k.wake();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut st = St {
        woken: 0,
        thread: None,
    };
    ev.run(&mut st).unwrap();
    assert_eq!(
        st.woken, 1,
        "400 wakes before the loop ran coalesce into one"
    );
    assert_eq!(st.thread, Some(std::thread::current().id()));
    // A wake while stopped is delivered when started again.
    ev.stop(w);
    waker.wake();
    ev.run_nowait(&mut st).unwrap();
    assert_eq!(st.woken, 1);
    ev.start(w);
    ev.run(&mut st).unwrap();
    assert_eq!(st.woken, 2);
}

#[test]
fn sleeping_loop_is_woken_by_thread() {
    let mut ev = Loop::<bool>::new().unwrap();
    let (_w, waker) = ev
        .waker(|done, cx, _| {
            *done = true;
            cx.stop_loop();
        })
        .unwrap();
    // A far timer so the loop would otherwise sleep for a minute.
    ev.timer(Duration::from_secs(60), None, |_, _, _| {});
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        waker.wake();
    });
    let t0 = Instant::now();
    let mut done = false;
    ev.run(&mut done).unwrap();
    t.join().unwrap();
    assert!(done);
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn run_returns_when_nothing_is_active() {
    let mut ev = Loop::<()>::new().unwrap();
    let t = ev.timer(Duration::from_secs(1), None, |_, _, _| {});
    ev.stop(t);
    ev.run(&mut ()).unwrap();
}

#[test]
fn callback_can_restart_a_timer_and_change_another_watchers_interest() {
    let (_a, b) = UnixStream::pair().unwrap();
    struct St {
        io: Option<WatcherId>,
        ticks: u32,
    }
    let mut ev = Loop::<St>::new().unwrap();
    let io = ev.io(b.try_clone().unwrap(), IoInterest::READABLE, |_, _, _| {});
    ev.timer(Duration::from_millis(1), None, |st, cx, e| {
        st.ticks += 1;
        cx.set_interest(st.io.unwrap(), IoInterest::WRITABLE);
        if st.ticks < 3 {
            cx.set_timer(e.watcher(), Duration::from_millis(1), None);
        } else {
            cx.remove(st.io.unwrap());
        }
    });
    let mut st = St {
        io: Some(io),
        ticks: 0,
    };
    ev.run(&mut st).unwrap();
    assert_eq!(st.ticks, 3);
}

#[test]
fn prepare_that_removes_the_last_watchers_does_not_sleep_forever() {
    let (tx, rx) = std::sync::mpsc::channel();
    // The loop is !Send (its callbacks are), so it lives on the watched thread.
    let t = std::thread::spawn(move || {
        let (_a, b) = UnixStream::pair().unwrap();
        let mut ev = Loop::<()>::new().unwrap();
        let io = ev.io(b.try_clone().unwrap(), IoInterest::READABLE, |_, _, _| {});
        ev.prepare(move |_, cx, e| {
            cx.remove(io);
            cx.remove(e.watcher());
        });
        ev.run(&mut ()).unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "run() slept with nothing active"
    );
    t.join().unwrap();
}

#[test]
fn concurrent_wakes_from_many_threads_are_never_lost() {
    // Four threads ping-pong with the loop through their own wake watchers, which share
    // the loop's eventfd: every wake must be delivered, or a thread waits for its ack
    // forever. Regression: the loop once reset its "already notified" flag before draining
    // the eventfd, so a write landing in between was swallowed and later wakes skipped
    // their write, leaving the loop asleep with wakes raised.
    use std::sync::atomic::AtomicU64;
    const THREADS: usize = 4;
    const ROUNDS: u64 = 20_000;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ev = Loop::<u64>::new().unwrap();
        let acks: Vec<Arc<AtomicU64>> = (0..THREADS).map(|_| Arc::default()).collect();
        let mut threads = Vec::new();
        for ack in &acks {
            let loop_ack = ack.clone();
            let (_w, waker) = ev
                .waker(move |served, cx, e| {
                    let n = loop_ack.load(Ordering::SeqCst) + 1;
                    loop_ack.store(n, Ordering::SeqCst);
                    *served += 1;
                    if n == ROUNDS {
                        cx.remove(e.watcher());
                    }
                })
                .unwrap();
            let ack = ack.clone();
            threads.push(std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    waker.wake();
                    while ack.load(Ordering::SeqCst) == i {
                        std::hint::spin_loop();
                    }
                }
            }));
        }
        let mut served = 0;
        ev.run(&mut served).unwrap();
        for t in threads {
            t.join().unwrap();
        }
        let _ = tx.send(served);
    });
    let served = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a wake-up was lost: the loop slept with wakes raised");
    assert_eq!(served, THREADS as u64 * ROUNDS);
}

#[test]
fn an_io_watcher_owns_its_source_and_closes_it_only_once_removed() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let mut ev = Loop::<u32>::new().unwrap();
    let w = ev.io(b, IoInterest::READABLE, |n, _, _| *n += 1);
    a.write_all(b"x").unwrap();
    let mut n = 0;
    ev.run_nowait(&mut n).unwrap();
    assert_eq!(n, 1, "the watched socket is open and watched");
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    a.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        a.read(&mut buf).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "the peer is still open while watched"
    );
    assert!(ev.remove(w));
    a.set_nonblocking(false).unwrap();
    // Closed with the "x" unread, so the peer sees a reset rather than an end.
    let closed = match a.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "removing the watcher closed the socket");
    ev.run_nowait(&mut n).unwrap();
    assert_eq!(n, 1);
}

#[cfg(target_os = "linux")]
#[test]
fn an_fd_the_kernel_refuses_to_watch_is_reported_to_its_callback_as_an_error() {
    // epoll refuses regular files (EPERM): the watcher hears of it, nothing panics.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let mut ev = Loop::<Vec<bool>>::new().unwrap();
    ev.io(file, IoInterest::READABLE, |seen, cx, e| {
        seen.push(e.is_error());
        cx.remove(e.watcher());
    });
    let mut seen = Vec::new();
    ev.run_until(&mut seen, Duration::from_secs(5), |s| !s.is_empty())
        .unwrap();
    assert_eq!(seen, [true]);
}

#[test]
fn run_for_runs_timers_for_the_given_time_and_returns() {
    let mut ev = Loop::<u32>::new().unwrap();
    let ms = Duration::from_millis(1);
    ev.timer(ms, Some(ms), |n, _, _| *n += 1);
    let mut n = 0;
    let t0 = std::time::Instant::now();
    ev.run_for(&mut n, Duration::from_millis(30)).unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(30));
    // It ran (at least once), and never more often than its period allows; how often in
    // between depends on how much of the 30 ms this thread got the CPU for.
    assert!(
        (1..=31).contains(&n),
        "a 1 ms timer fired {n} times in 30 ms"
    );
}

#[test]
fn durations_up_to_duration_max_mean_never_not_a_panic() {
    let mut ev = Loop::<u32>::new().unwrap();
    let t = ev.timer(Duration::MAX, Some(Duration::MAX), |n, _, _| *n += 1);
    ev.set_timer(t, Duration::MAX, None);
    ev.run_for(&mut 0, Duration::MAX.min(Duration::from_millis(5)))
        .unwrap();
    let mut n = 0;
    assert!(!ev
        .run_until(&mut n, Duration::from_millis(5), |n| *n > 0)
        .unwrap());
    ev.shutdown(Duration::MAX);
    ev.stop(t);
    ev.run(&mut n).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn more_ready_fds_than_one_poll_reports_are_all_served_within_a_few_turns() {
    // The loop takes at most 64 readiness reports per poll. 200 fds that stay readable
    // (never drained) must all be served anyway: the kernel moves reported fds to the
    // back of its ready list, so the next polls report the others.
    const N: usize = 200;
    let mut ev = Loop::<Vec<u32>>::new().unwrap();
    let mut keep = Vec::new();
    for i in 0..N {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"x").unwrap();
        ev.io(
            b.try_clone().unwrap(),
            IoInterest::READABLE,
            move |seen, _, _| {
                seen[i] += 1;
            },
        );
        keep.push((a, b));
    }
    let mut seen = vec![0u32; N];
    let mut turns = 0;
    while seen.contains(&0) {
        let unserved: Vec<usize> = (0..N).filter(|&i| seen[i] == 0).collect();
        assert!(turns < 20, "after {turns} turns, unserved: {unserved:?}");
        ev.run_once(&mut seen).unwrap();
        turns += 1;
    }
}

/// Spends `d` of CPU.
fn spin(d: Duration) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn stats_name_the_longest_turn_its_bucket_and_the_slowest_callback() {
    let mut ev = Loop::<u32>::new().unwrap();
    // Several callbacks in one turn: a quick timer, a slow one, another quick one.
    let quick = ev.timer(Duration::ZERO, None, |_, _, _| {});
    let slow = ev.timer(Duration::ZERO, None, |_, _, _| {
        spin(Duration::from_millis(3))
    });
    let other = ev.timer(Duration::ZERO, None, |_, _, _| {});
    let mut n = 0;
    ev.run(&mut n).unwrap();
    let s = ev.stats();
    assert!(s.longest_turn >= Duration::from_millis(3), "{s:?}");
    let (w, took) = s.slowest_callback.expect("a callback was timed");
    assert_eq!(w, slow, "quick {quick:?}, other {other:?}");
    assert!(took >= Duration::from_millis(3), "{took:?}");
    // 3 ms lands in [2048, 4096) µs or above; every turn is in some bucket.
    assert!(s.turns_at_least(Duration::from_millis(2)) >= 1, "{s:?}");
    assert_eq!(s.turn_histogram.iter().sum::<u64>(), s.turns, "{s:?}");
}

#[test]
fn the_callers_time_between_run_once_calls_is_no_part_of_a_turn() {
    // One slow idle callback per turn, run by run_once: the caller's code between turns
    // is not counted.
    let mut ev = Loop::<u32>::new().unwrap();
    let idle = ev.idle(|n, _, _| {
        *n += 1;
        spin(Duration::from_millis(2));
    });
    let mut n = 0;
    for _ in 0..3 {
        ev.run_once(&mut n).unwrap();
        spin(Duration::from_millis(200)); // the caller's own work
    }
    let s = ev.stats();
    assert_eq!(s.slowest_callback.map(|(w, _)| w), Some(idle));
    assert!(s.longest_turn >= Duration::from_millis(2), "{s:?}");
    assert!(
        s.longest_turn < Duration::from_millis(150),
        "the caller's time was counted: {s:?}"
    );
}

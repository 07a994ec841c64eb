//! The `thread` pool against real worker threads: exactly-once delivery, recursion,
//! panics, cancellation, shutdown, queue bounds and fairness towards other watchers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use evnet::ev::{Ctx, Loop};
use evnet::pool::{Error, JobHandle, Pool, PoolBuilder};

/// Runs `f` on its own thread and fails the test if it has not returned within `limit`.
fn with_watchdog<F: FnOnce() + Send + 'static>(limit: Duration, f: F) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => t.join().expect("test body"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: surface its message.
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hang: not done within {limit:?}"),
    }
}

/// Blocks a worker until `open` is called.
fn gate() -> (impl Fn() + Send + 'static, impl FnOnce()) {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    (
        move || {
            let _ = rx.lock().expect("gate").recv();
        },
        move || drop(tx),
    )
}

/// Waits (bounded) until `cond` holds, without running the loop.
fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not reached");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn hundred_thousand_jobs_deliver_each_result_exactly_once() {
    const N: usize = 100_000;
    struct St {
        seen: Vec<u8>,
        delivered: usize,
    }
    let mut ev = Loop::<St>::new().unwrap();
    let pool = PoolBuilder::new().workers(4).build(&mut ev).unwrap();
    let mut handles = Vec::with_capacity(N);
    for i in 0..N {
        let h = pool
            .run(
                &mut ev,
                move || i,
                |st: &mut St, _cx: &mut Ctx<St>, r: Result<usize, Error>| {
                    st.seen[r.unwrap()] += 1;
                    st.delivered += 1;
                },
            )
            .unwrap();
        handles.push(h);
    }
    assert_eq!(pool.in_flight(), N);
    let mut st = St {
        seen: vec![0; N],
        delivered: 0,
    };
    // `run` returns by itself: an idle pool does not keep the loop alive.
    ev.run(&mut st).unwrap();
    assert_eq!(st.delivered, N);
    assert!(st.seen.iter().all(|&n| n == 1), "every result exactly once");
    assert!(handles.iter().all(JobHandle::is_delivered));
    assert_eq!(pool.in_flight(), 0);
}

struct Chain {
    pool: Option<Pool<Chain>>,
    depth: u32,
    target: u32,
}

fn next_level(st: &mut Chain, cx: &mut Ctx<Chain>, r: Result<u32, Error>) {
    let level = r.unwrap();
    assert_eq!(level, st.depth, "levels arrive in order");
    st.depth += 1;
    if st.depth < st.target {
        let n = st.depth;
        let pool = st.pool.as_ref().unwrap();
        pool.run(cx, move || n, next_level).unwrap().detach();
    }
}

#[test]
fn on_done_submitting_recursively_1000_levels_never_deadlocks() {
    // Both an unbounded pool and the tightest one: one worker, a queue bound of 1.
    for builder in [
        PoolBuilder::new(),
        PoolBuilder::new().workers(1).queue_bound(1),
    ] {
        with_watchdog(Duration::from_secs(30), move || {
            let mut ev = Loop::<Chain>::new().unwrap();
            let pool = builder.build(&mut ev).unwrap();
            pool.run(&mut ev, || 0, next_level).unwrap().detach();
            let mut st = Chain {
                pool: Some(pool),
                depth: 0,
                target: 1000,
            };
            ev.run(&mut st).unwrap();
            assert_eq!(st.depth, 1000);
        });
    }
}

#[test]
fn on_done_fanning_out_jobs_from_inside_delivery() {
    // Each result starts two more until 2^12 - 1 jobs ran: many submissions from inside
    // one delivery batch, while other results are still arriving.
    struct St {
        pool: Option<Pool<St>>,
        done: u32,
    }
    fn fan(st: &mut St, cx: &mut Ctx<St>, r: Result<u32, Error>) {
        let level = r.unwrap();
        st.done += 1;
        if level < 11 {
            for _ in 0..2 {
                let pool = st.pool.as_ref().unwrap();
                pool.run(cx, move || level + 1, fan).unwrap().detach();
            }
        }
    }
    with_watchdog(Duration::from_secs(30), || {
        let mut ev = Loop::<St>::new().unwrap();
        let pool = PoolBuilder::new()
            .workers(3)
            .batch(8)
            .build(&mut ev)
            .unwrap();
        pool.run(&mut ev, || 0, fan).unwrap().detach();
        let mut st = St {
            pool: Some(pool),
            done: 0,
        };
        ev.run(&mut st).unwrap();
        assert_eq!(st.done, (1 << 12) - 1);
    });
}

#[test]
fn panicking_job_reports_its_message_and_the_worker_survives() {
    type Outcome = Result<std::thread::ThreadId, Error>;
    let mut ev = Loop::<Vec<Outcome>>::new().unwrap();
    let pool = PoolBuilder::new().workers(1).build(&mut ev).unwrap();
    let id = || std::thread::current().id();
    let keep = |out: &mut Vec<Outcome>, _: &mut Ctx<Vec<Outcome>>, r: Outcome| out.push(r);
    let mut hs = vec![pool.run(&mut ev, id, keep).unwrap()];
    hs.push(
        pool.run(
            &mut ev,
            || -> std::thread::ThreadId { panic!("static message") },
            keep,
        )
        .unwrap(),
    );
    hs.push(
        pool.run(
            &mut ev,
            || -> std::thread::ThreadId { panic!("formatted {}", 42) },
            keep,
        )
        .unwrap(),
    );
    hs.push(
        pool.run(
            &mut ev,
            || -> std::thread::ThreadId { std::panic::panic_any(7u8) },
            keep,
        )
        .unwrap(),
    );
    hs.push(pool.run(&mut ev, id, keep).unwrap());
    let mut out = Vec::new();
    ev.run(&mut out).unwrap();

    assert_eq!(out.len(), 5);
    assert_eq!(out[1], Err(Error::Panicked("static message".into())));
    assert_eq!(out[2], Err(Error::Panicked("formatted 42".into())));
    assert_eq!(
        out[3],
        Err(Error::Panicked("<non-string panic payload>".into()))
    );
    // The one worker ran the jobs before and after the panics: it survived them.
    let (Ok(before), Ok(after)) = (&out[0], &out[4]) else {
        panic!("plain jobs failed: {out:?}");
    };
    assert_eq!(before, after);
    assert_eq!(pool.workers(), 1);
    assert!(out[2]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("formatted 42"));
}

#[test]
fn cancel_before_start_skips_the_job_and_its_on_done() {
    let mut ev = Loop::<Vec<&str>>::new().unwrap();
    let pool = PoolBuilder::new().workers(1).build(&mut ev).unwrap();
    let (block, open) = gate();
    let ran = Arc::new(AtomicBool::new(false));
    let first = pool
        .run(&mut ev, block, |log: &mut Vec<&str>, _: &mut Ctx<_>, _r| {
            log.push("first")
        })
        .unwrap();
    let r = ran.clone();
    let cancelled = pool
        .run(
            &mut ev,
            move || r.store(true, Ordering::SeqCst),
            |log: &mut Vec<&str>, _: &mut Ctx<_>, _r| log.push("cancelled"),
        )
        .unwrap();
    let r = ran.clone();
    let dropped = pool
        .run(
            &mut ev,
            move || r.store(true, Ordering::SeqCst),
            |log: &mut Vec<&str>, _: &mut Ctx<_>, _r| log.push("dropped"),
        )
        .unwrap();
    assert!(
        cancelled.cancel(),
        "cancel before completion prevents on_done"
    );
    assert!(!cancelled.cancel(), "second cancel is a no-op");
    drop(dropped);
    open();
    let mut log = Vec::new();
    ev.run(&mut log).unwrap();
    assert_eq!(log, ["first"]);
    assert!(first.is_delivered());
    assert!(!cancelled.is_delivered());
    assert!(
        !ran.load(Ordering::SeqCst),
        "queued cancelled jobs are skipped"
    );
    assert_eq!(pool.in_flight(), 0);
}

#[test]
fn cancel_after_completion_but_before_delivery_and_after_delivery() {
    let mut ev = Loop::<u32>::new().unwrap();
    let pool = PoolBuilder::new().workers(2).build(&mut ev).unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let late = pool
        .run(
            &mut ev,
            move || {
                f.fetch_add(1, Ordering::SeqCst);
            },
            |n: &mut u32, _: &mut Ctx<u32>, _r| *n += 1,
        )
        .unwrap();
    // The job has run and its result waits for the loop: cancelling still wins.
    wait_for(|| finished.load(Ordering::SeqCst) == 1);
    assert!(late.cancel());
    let delivered = pool
        .run(&mut ev, || (), |n: &mut u32, _: &mut Ctx<u32>, _r| *n += 10)
        .unwrap();
    let mut n = 0;
    ev.run(&mut n).unwrap();
    assert_eq!(n, 10, "only the uncancelled on_done ran");
    assert!(!delivered.cancel(), "cancel after delivery reports false");
    assert!(delivered.is_delivered());
}

#[test]
fn dropping_the_pool_with_jobs_in_flight_joins_delivers_nothing_and_leaks_nothing() {
    with_watchdog(Duration::from_secs(30), || {
        struct St {
            pool: Option<Pool<St>>,
            delivered: usize,
        }
        let token = Arc::new(());
        let mut ev = Loop::<St>::new().unwrap();
        let pool = PoolBuilder::new().workers(4).build(&mut ev).unwrap();
        for _ in 0..1000 {
            let (job_token, done_token) = (token.clone(), token.clone());
            pool.run(
                &mut ev,
                move || {
                    std::thread::sleep(Duration::from_millis(1));
                    job_token // the result holds a reference too
                },
                move |st: &mut St, _: &mut Ctx<St>, _r| {
                    let _keep = &done_token;
                    st.delivered += 1;
                    if st.delivered == 10 {
                        st.pool = None; // dropped from inside an on_done
                    }
                },
            )
            .unwrap()
            .detach();
        }
        let mut st = St {
            pool: Some(pool),
            delivered: 0,
        };
        // `run` returns: the dropped pool's watcher removes itself.
        ev.run(&mut st).unwrap();
        assert_eq!(st.delivered, 10, "nothing delivered after the drop");
        for _ in 0..20 {
            ev.run_nowait(&mut st).unwrap();
        }
        assert_eq!(st.delivered, 10);
        assert_eq!(
            Arc::strong_count(&token),
            1,
            "jobs, results and on_done closures were all dropped"
        );
    });
}

#[test]
fn dropping_an_unused_pool_and_closing_one() {
    with_watchdog(Duration::from_secs(10), || {
        let mut ev = Loop::<()>::new().unwrap();
        drop(Pool::new(&mut ev).unwrap());
        let pool = Pool::new(&mut ev).unwrap();
        pool.run(&mut ev, || (), |_: &mut (), _: &mut Ctx<()>, _| {})
            .unwrap()
            .detach();
        pool.close(&mut ev);
        ev.run(&mut ()).unwrap();
    });
}

#[test]
fn queue_bound_reports_full_and_accepts_again_after_progress() {
    let mut ev = Loop::<Vec<u32>>::new().unwrap();
    let pool = PoolBuilder::new()
        .workers(1)
        .queue_bound(2)
        .build(&mut ev)
        .unwrap();
    let (block, open) = gate();
    let push = |v: u32| move |log: &mut Vec<u32>, _: &mut Ctx<Vec<u32>>, _r| log.push(v);
    pool.run(&mut ev, block, push(0)).unwrap().detach();
    wait_for(|| pool.queued() == 0); // the worker holds job 0
    pool.run(&mut ev, || (), push(1)).unwrap().detach();
    pool.run(&mut ev, || (), push(2)).unwrap().detach();
    assert_eq!(pool.queued(), 2);
    let err = pool.run(&mut ev, || (), push(3)).unwrap_err();
    assert_eq!(err, Error::QueueFull);
    assert_eq!(pool.in_flight(), 3, "the refused job is not in flight");
    open();
    let mut log = Vec::new();
    ev.run(&mut log).unwrap();
    assert_eq!(log, [0, 1, 2]);
    pool.run(&mut ev, || (), push(4)).unwrap().detach();
    ev.run(&mut log).unwrap();
    assert_eq!(log, [0, 1, 2, 4]);
}

#[test]
fn a_pool_refuses_another_loops_context() {
    let mut a = Loop::<()>::new().unwrap();
    let mut b = Loop::<()>::new().unwrap();
    let pool = Pool::new(&mut a).unwrap();
    let r = pool.run(&mut b, || (), |_: &mut (), _: &mut Ctx<()>, _| {});
    assert_eq!(r.unwrap_err(), Error::WrongLoop);
    assert_eq!(pool.in_flight(), 0);
}

#[test]
fn a_burst_of_completions_is_delivered_in_bounded_batches() {
    const N: usize = 10_000;
    const BATCH: usize = 16;
    struct St {
        delivered: usize,
        at_first_tick: Option<usize>,
        ticks: usize,
    }
    let mut ev = Loop::<St>::new().unwrap();
    let pool = PoolBuilder::new()
        .workers(2)
        .batch(BATCH)
        .build(&mut ev)
        .unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    for _ in 0..N {
        let f = finished.clone();
        pool.run(
            &mut ev,
            move || {
                f.fetch_add(1, Ordering::SeqCst);
            },
            |st: &mut St, _: &mut Ctx<St>, _r| st.delivered += 1,
        )
        .unwrap()
        .detach();
    }
    // A full result queue (1,024; workers then wait for room) before the loop runs at all.
    wait_for(|| finished.load(Ordering::SeqCst) >= 1000);
    ev.timer(
        Duration::ZERO,
        Some(Duration::from_micros(1)),
        |st, cx, e| {
            st.at_first_tick.get_or_insert(st.delivered);
            st.ticks += 1;
            if st.delivered == N {
                cx.remove(e.watcher());
            }
        },
    );
    let mut st = St {
        delivered: 0,
        at_first_tick: None,
        ticks: 0,
    };
    ev.run(&mut st).unwrap();
    assert_eq!(st.delivered, N);
    let first = st.at_first_tick.unwrap();
    assert!(
        first <= BATCH,
        "{first} results delivered before a due timer ran (batch {BATCH})"
    );
    // The timer kept running all through the burst: at least one tick per few batches.
    assert!(st.ticks >= N / BATCH / 4, "only {} ticks", st.ticks);
}

#[test]
fn results_interleave_with_a_busy_timer() {
    struct St {
        delivered: usize,
        ticks_while_busy: usize,
        pool: Option<Pool<St>>,
    }
    const N: usize = 20_000;
    let mut ev = Loop::<St>::new().unwrap();
    let pool = PoolBuilder::new().workers(2).build(&mut ev).unwrap();
    for _ in 0..N {
        pool.run(
            &mut ev,
            || {
                // A little real work per job: about 5 µs.
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(5) {
                    std::hint::spin_loop();
                }
            },
            |st: &mut St, _: &mut Ctx<St>, _r| st.delivered += 1,
        )
        .unwrap()
        .detach();
    }
    ev.timer(
        Duration::from_micros(100),
        Some(Duration::from_micros(100)),
        |st: &mut St, cx, e| {
            let busy = st.pool.as_ref().is_some_and(|p| p.in_flight() > 0);
            if busy {
                st.ticks_while_busy += 1;
            } else {
                cx.remove(e.watcher());
            }
        },
    );
    let mut st = St {
        delivered: 0,
        ticks_while_busy: 0,
        pool: Some(pool),
    };
    ev.run(&mut st).unwrap();
    assert_eq!(st.delivered, N);
    // 20k × 5 µs on 2 workers is ≥ 50 ms of work: a 100 µs timer that kept firing ticks
    // far more than 10 times meanwhile.
    assert!(st.ticks_while_busy >= 10, "{} ticks", st.ticks_while_busy);
}

#[test]
fn dropping_the_loop_before_the_pool_with_jobs_in_flight() {
    with_watchdog(Duration::from_secs(30), || {
        let token = Arc::new(());
        let mut ev = Loop::<()>::new().unwrap();
        let pool = PoolBuilder::new().workers(2).build(&mut ev).unwrap();
        for _ in 0..100 {
            let (a, b) = (token.clone(), token.clone());
            pool.run(
                &mut ev,
                move || {
                    std::thread::sleep(Duration::from_micros(200));
                    a
                },
                move |_: &mut (), _: &mut Ctx<()>, _| drop(b),
            )
            .unwrap()
            .detach();
        }
        ev.run_nowait(&mut ()).unwrap();
        drop(ev); // the loop goes first: its wake watcher (and its callback) with it
        drop(pool); // then the pool: joins, and its wake goes nowhere
        assert_eq!(Arc::strong_count(&token), 1, "nothing leaked");
    });
}

#[test]
fn spawn_runs_a_job_and_forgets_its_result() {
    let mut ev = Loop::<()>::new().unwrap();
    let pool = PoolBuilder::new().workers(1).build(&mut ev).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let r = ran.clone();
        pool.spawn(&mut ev, move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    ev.run(&mut ()).unwrap(); // returns once nothing is in flight
    assert_eq!(ran.load(Ordering::SeqCst), 100);
    assert_eq!(pool.in_flight(), 0);
}

//! Result delivery never makes the loop free memory a worker allocated: a counting global
//! allocator sees no per-result allocation on worker threads while a burst of 200,000 empty jobs
//! completes (after warm-up). With an unbounded result channel the workers allocated a
//! block every 31 results and the loop freed it, sleeping on the worker's malloc arena
//! lock; the pool's results now travel through one preallocated array. Also: the default
//! worker count leaves the loop a core.

mod util;

use std::time::Duration;

use evnet::ev::{Ctx, Loop};
use evnet::pool::{Error, PoolBuilder};

#[global_allocator]
static GLOBAL: util::alloc::Counting = util::alloc::Counting;

/// The count is process-wide: the tests that count take turns.
static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn counting() -> std::sync::MutexGuard<'static, ()> {
    COUNTING.lock().unwrap_or_else(|p| p.into_inner())
}

struct St {
    got: u64,
}

fn burst(ev: &mut Loop<St>, pool: &evnet::pool::Pool<St>, st: &mut St, n: u64) {
    st.got = 0;
    for _ in 0..n {
        pool.run(
            ev,
            || util::alloc::count_this_thread(true), // runs on a worker
            |st: &mut St, _: &mut Ctx<St>, r: Result<(), Error>| {
                r.unwrap();
                st.got += 1;
            },
        )
        .unwrap()
        .detach();
    }
    let done = ev
        .run_until(st, Duration::from_secs(60), |s| s.got == n)
        .unwrap();
    assert!(done, "{} of {n} results", st.got);
}

#[test]
fn a_burst_of_200k_results_allocates_nothing_on_the_workers() {
    let _turn = counting();
    let mut ev = Loop::<St>::new().unwrap();
    let pool = PoolBuilder::new().workers(2).build(&mut ev).unwrap();
    let mut st = St { got: 0 };
    // Warm-up: every worker has run jobs (and met a full result queue) before counting.
    burst(&mut ev, &pool, &mut st, 20_000);
    let before = util::alloc::allocations();
    burst(&mut ev, &pool, &mut st, 200_000);
    let allocs = util::alloc::allocations() - before;
    // A worker's first wait on a full queue may set up its blocking context once; nothing
    // may scale with the number of results.
    assert!(
        allocs <= 8,
        "workers allocated {allocs} times for 200k results, which the loop then frees"
    );
}

#[test]
fn the_default_worker_count_leaves_the_loop_a_core() {
    let mut ev = Loop::<St>::new().unwrap();
    let pool = PoolBuilder::new().build(&mut ev).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(pool.workers(), cpus.saturating_sub(1).max(1));
}

#[test]
fn delivering_a_burst_of_200k_results_allocates_nothing_on_the_loop() {
    let _turn = counting();
    // A growing free-slot list reallocated while results came in; a reallocation of 1 KiB
    // or more made glibc consolidate every small chunk the delivered results had freed, in
    // one turn: milliseconds of loop CPU.
    let mut ev = Loop::<St>::new().unwrap();
    let pool = PoolBuilder::new().workers(2).build(&mut ev).unwrap();
    let mut st = St { got: 0 };
    // Only the loop thread counts here: the workers' jobs do not switch counting on.
    let mut deliver = |n: u64, count: bool| {
        st.got = 0;
        for _ in 0..n {
            pool.run(
                &mut ev,
                || (),
                |st: &mut St, _: &mut Ctx<St>, r: Result<(), Error>| {
                    r.unwrap();
                    st.got += 1;
                },
            )
            .unwrap()
            .detach();
        }
        // Only delivery is counted: submitting allocates each job's cell and callback.
        let before = util::alloc::allocations();
        util::alloc::count_this_thread(count);
        let done = ev
            .run_until(&mut st, Duration::from_secs(60), |s| s.got == n)
            .unwrap();
        util::alloc::count_this_thread(false);
        assert!(done, "{} of {n} results", st.got);
        util::alloc::allocations() - before
    };
    deliver(20_000, false); // warm-up
    let n = 200_000;
    let allocs = deliver(n, true);
    assert_eq!(
        allocs, 0,
        "the loop allocated {allocs} times delivering {n} results"
    );
}

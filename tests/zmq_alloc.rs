//! The adapter's own path allocates nothing per message: a counting global allocator
//! (counting only on the loop thread) sees zero allocations while 50,000 messages, some
//! of them multipart, go through `readable()` after warm-up.

mod util;

use std::time::Duration;

use evnet::ev::{Ctx, Loop};
use evnet::fair::{Budget, Sock, ZmqHandler, ZmqWatcher};

#[global_allocator]
static GLOBAL: util::alloc::Counting = util::alloc::Counting;

struct Count(u64);
impl ZmqHandler<Ctx<u64>> for Count {
    fn readable(
        &mut self,
        m: &mut [zmq::Message],
        _: &mut Sock<'_>,
        (n, _): (&mut u64, &mut Ctx<u64>),
    ) {
        self.0 += m.len() as u64;
        *n += 1;
    }
}

#[test]
fn no_heap_allocation_per_message_in_the_adapter() {
    let _w = util::watchdog::watchdog(
        Duration::from_secs(120),
        "no_heap_allocation_per_message_in_the_adapter",
    );
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    let push = ctx.socket(zmq::PUSH).unwrap();
    pull.set_rcvhwm(0).unwrap();
    push.set_sndhwm(0).unwrap();
    pull.bind("inproc://alloc").unwrap();
    push.connect("inproc://alloc").unwrap();
    let send = |n: u64| {
        for i in 0..n {
            if i % 3 == 0 {
                push.send(&[1u8; 64][..], zmq::SNDMORE).unwrap();
                push.send(&[2u8; 64][..], zmq::SNDMORE).unwrap();
            }
            push.send(&[3u8; 64][..], 0).unwrap();
        }
    };
    let mut ev = Loop::<u64>::new().unwrap();
    let _w = ZmqWatcher::with_budget(&mut ev, pull, Count(0), Budget::messages(16)).unwrap();
    // Warm up: buffers, the pending queue and the phase scratch list reach their size.
    send(1000);
    let mut n = 0u64;
    ev.run_until(&mut n, Duration::from_secs(30), |n| *n == 1000)
        .unwrap();
    assert_eq!(n, 1000);
    send(50_000);
    n = 0;
    util::alloc::count_this_thread(true);
    while n < 50_000 {
        ev.run_nowait(&mut n).unwrap();
    }
    util::alloc::count_this_thread(false);
    assert_eq!(
        util::alloc::allocations(),
        0,
        "allocations in the adapter's path"
    );
}

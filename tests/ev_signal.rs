//! Signal watchers: SIGINT, SIGTERM and SIGHUP sent to the process while a ZeroMQ context
//! has its I/O threads running (and a plain thread runs too) reach the loop's watchers,
//! whichever thread the kernel picked, and nothing kills the process.

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evnet::ev::Loop;

fn kill(sig: &str) {
    let ok = std::process::Command::new(util::provision::tool("kill"))
        .args([sig, &std::process::id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

#[test]
fn sigint_sigterm_and_sighup_reach_the_loop_with_zmq_threads_alive() {
    // libzmq's I/O and reaper threads start with the first socket: before the loop exists,
    // with the default signal mask, exactly the order that used to lose a SIGTERM.
    let ctx = zmq::Context::new();
    let publ = ctx.socket(zmq::PUB).unwrap();
    publ.bind("tcp://127.0.0.1:*").unwrap();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.connect(&publ.get_last_endpoint().unwrap().unwrap())
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let bystander = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });

    let mut ev = Loop::<Vec<String>>::new().unwrap();
    for (sig, name) in [
        (libc::SIGINT, "int"),
        (libc::SIGTERM, "term-a"),
        (libc::SIGTERM, "term-b"),
        (libc::SIGHUP, "hup"),
    ] {
        ev.signal(sig, move |log, _, _| log.push(name.to_owned()))
            .unwrap();
    }
    let mut log = Vec::new();
    for (flag, want) in [("-INT", 1), ("-TERM", 3), ("-HUP", 4)] {
        kill(flag);
        let ok = ev
            .run_until(&mut log, Duration::from_secs(20), |l| l.len() >= want)
            .unwrap();
        assert!(ok, "{flag} never reached the loop: {log:?}");
    }
    log.sort();
    assert_eq!(log, ["hup", "int", "term-a", "term-b"]);
    // Many at once, several times over: each watcher sees each delivery (the kernel may
    // merge a signal that is already pending, so count at least one per burst).
    for _ in 0..20 {
        log.clear();
        kill("-HUP");
        assert!(ev
            .run_until(&mut log, Duration::from_secs(20), |l| !l.is_empty())
            .unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    bystander.join().unwrap();
}

#[test]
fn a_signal_that_cannot_be_caught_is_an_error() {
    let mut ev = Loop::<()>::new().unwrap();
    for sig in [libc::SIGKILL, libc::SIGSTOP, 0, 65, -3] {
        let e = ev.signal(sig, |_, _, _| {}).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "signal {sig}");
    }
}

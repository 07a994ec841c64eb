//! A bound on a test that could otherwise hang (a blocking turn that a missed wake-up would
//! never end): past the limit the whole test binary exits with a message naming the test.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

/// Ends the process with `what` named unless dropped within `limit`.
#[must_use = "the watchdog stops watching when dropped"]
pub struct Watchdog(Option<mpsc::Sender<()>>);

pub fn watchdog(limit: Duration, what: impl Into<String>) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    let what = what.into();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            // Straight to fd 2: the test harness captures `eprintln!`, and would lose it.
            let msg = format!("watchdog: {what} did not finish within {limit:?}\n");
            let _ = std::io::stderr().write_all(msg.as_bytes());
            std::process::exit(101);
        }
    });
    Watchdog(Some(tx))
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

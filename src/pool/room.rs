//! [`Room`]: where workers wait while the result queue is full, woken once it has drained
//! to half, not once per result taken.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How long a waiting worker sleeps before it looks at the shutdown flag again.
const RECHECK: Duration = Duration::from_millis(10);

/// Waiting room for workers with a result and no room in the queue.
///
/// A worker waits here until the loop has taken the queue down to half; the loop wakes
/// the room once per such drain (one futex call per half a queue), so while results pour
/// in no worker becomes runnable for every result the loop takes, which would preempt the
/// loop thread on a small machine.
#[derive(Debug, Default)]
pub(crate) struct Room {
    waiting: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Room {
    /// Waits until `has_room()` holds or `stop()` does, re-checking both every 10 ms.
    pub(crate) fn wait(&self, has_room: impl Fn() -> bool, stop: impl Fn() -> bool) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        while !has_room() && !stop() {
            g = match self.cv.wait_timeout(g, RECHECK) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        drop(g);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes every waiting worker if any waits and `has_room()` holds (the loop calls it
    /// after taking results). Cheap when nobody waits: one atomic load.
    pub(crate) fn wake_if(&self, has_room: impl Fn() -> bool) {
        if self.waiting.load(Ordering::SeqCst) > 0 && has_room() {
            // Taking the lock orders this wake after a waiter's check: none is lost.
            let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.cv.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn a_waiter_is_woken_once_room_is_made() {
        let room = Arc::new(Room::default());
        let level = Arc::new(AtomicUsize::new(10));
        let (r, l) = (room.clone(), level.clone());
        let t = std::thread::spawn(move || r.wait(|| l.load(Ordering::SeqCst) <= 5, || false));
        while room.waiting.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        level.store(5, Ordering::SeqCst);
        room.wake_if(|| level.load(Ordering::SeqCst) <= 5);
        t.join().unwrap();
        assert_eq!(room.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn stop_releases_a_waiter_without_room() {
        // The waiter is already waiting when stop is raised, and nobody wakes the room:
        // its periodic re-check must see the flag and return.
        let room = Arc::new(Room::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (r, s) = (room.clone(), stop.clone());
        std::thread::spawn(move || {
            r.wait(|| false, || s.load(Ordering::SeqCst));
            let _ = tx.send(());
        });
        while room.waiting.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::SeqCst);
        rx.recv_timeout(Duration::from_secs(30))
            .expect("a stopped waiter is still waiting");
        assert_eq!(room.waiting.load(Ordering::SeqCst), 0);
    }
}

//! The queue that carries results from the workers to the loop: a preallocated ring under
//! a mutex that workers lock and the loop only ever *tries* to lock.
//!
//! A lock-free array channel (crossbeam's `bounded`, as used before) lets a sender claim a
//! slot and then write it; a receiver that finds a slot claimed but not yet written spins
//! until it is. A worker preempted between the two steps then held the loop spinning for
//! the rest of its scheduler slice: turns of 10–60 ms of loop CPU in `benches/thread` with
//! one worker per CPU. Here a worker holds the lock only to push one value into capacity
//! that is already there, and the loop that finds the lock taken simply comes back next
//! turn: it never waits on a worker.
//!
//! The ring is allocated once, by the loop, and never grows, so taking a result never
//! frees memory a worker allocated (no wait on another thread's malloc arena either).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub(super) struct Results<T> {
    ring: Mutex<VecDeque<T>>,
    /// The ring's length as of its last change, readable without the lock.
    len: AtomicUsize,
    cap: usize,
}

/// What the loop's [`Results::try_take`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Take {
    /// This many moved out (0 when the ring was empty).
    Taken(usize),
    /// A worker holds the lock right now: look again next turn.
    Busy,
}

impl<T> Results<T> {
    pub(super) fn with_capacity(cap: usize) -> Results<T> {
        Results {
            ring: Mutex::new(VecDeque::with_capacity(cap)),
            len: AtomicUsize::new(0),
            cap,
        }
    }

    /// A worker's push; hands the value back when the ring is full.
    pub(super) fn push(&self, value: T) -> Result<(), T> {
        // Nothing panics while the lock is held, so a poisoned lock still holds a sound ring.
        let mut q = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= self.cap {
            return Err(value);
        }
        q.push_back(value);
        self.len.store(q.len(), Ordering::Release);
        Ok(())
    }

    /// The loop's take: up to `max` values onto `out`, unless a worker holds the lock.
    pub(super) fn try_take(&self, out: &mut Vec<T>, max: usize) -> Take {
        let mut q = match self.ring.try_lock() {
            Ok(q) => q,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Take::Busy,
        };
        let n = max.min(q.len());
        out.extend(q.drain(..n));
        self.len.store(q.len(), Ordering::Release);
        Take::Taken(n)
    }

    /// Values waiting, as of the last push or take.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_hands_the_value_back_and_takes_come_in_order() {
        let r = Results::with_capacity(3);
        for i in 0..3 {
            assert_eq!(r.push(i), Ok(()));
        }
        assert_eq!(r.push(9), Err(9));
        assert_eq!(r.len(), 3);
        let mut out = Vec::new();
        assert_eq!(r.try_take(&mut out, 2), Take::Taken(2));
        assert_eq!(out, [0, 1]);
        assert_eq!(r.len(), 1);
        assert_eq!(r.try_take(&mut out, 5), Take::Taken(1));
        assert_eq!(out, [0, 1, 2]);
    }

    #[test]
    fn the_loop_does_not_wait_for_a_worker_holding_the_lock() {
        let r = Results::with_capacity(4);
        r.push(1).unwrap();
        let held = r.ring.lock().unwrap();
        let mut out = Vec::new();
        assert_eq!(r.try_take(&mut out, 4), Take::Busy);
        drop(held);
        assert_eq!(r.try_take(&mut out, 4), Take::Taken(1));
    }
}

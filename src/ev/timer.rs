//! The timer heap: a min-heap of `(due, seq)` with lazy deletion.
//!
//! Each (re)start of a timer pushes a fresh entry with a new, strictly increasing `seq`; the
//! watcher remembers the `seq` of its live entry, so entries left behind by a stop or restart
//! are recognised as stale when they reach the top and are dropped. Equal deadlines fire in
//! the order the timers were started.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::WatcherId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    due: Instant,
    seq: u64,
    index: u32,
    version: u32,
}

/// A timer heap keyed by watcher.
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<Entry>>,
    next_seq: u64,
}

impl TimerHeap {
    /// Schedules `w` at `due`; returns the entry's sequence number (its identity).
    pub(crate) fn push(&mut self, due: Instant, w: WatcherId) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.heap.push(Reverse(Entry {
            due,
            seq,
            index: w.index,
            version: w.version,
        }));
        seq
    }

    /// The earliest live deadline; `live(w, seq)` tells whether an entry is still current.
    pub(crate) fn next_due(
        &mut self,
        mut live: impl FnMut(WatcherId, u64) -> bool,
    ) -> Option<Instant> {
        while let Some(Reverse(e)) = self.heap.peek() {
            if live(e.watcher(), e.seq) {
                return Some(e.due);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops the earliest live entry due at or before `now`.
    pub(crate) fn pop_expired(
        &mut self,
        now: Instant,
        live: impl FnMut(WatcherId, u64) -> bool,
    ) -> Option<(WatcherId, Instant)> {
        let due = self.next_due(live)?;
        if due > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| (e.watcher(), e.due))
    }

    /// Drops stale entries when they outnumber live ones, so restarting a timer many times
    /// without it firing cannot grow the heap without bound.
    pub(crate) fn compact(
        &mut self,
        live_count: usize,
        mut live: impl FnMut(WatcherId, u64) -> bool,
    ) {
        if self.heap.len() > 64 && self.heap.len() > 4 * live_count {
            self.heap.retain(|Reverse(e)| live(e.watcher(), e.seq));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

impl Entry {
    fn watcher(&self) -> WatcherId {
        WatcherId {
            index: self.index,
            version: self.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn w(i: u32) -> WatcherId {
        WatcherId {
            index: i,
            version: 0,
        }
    }

    #[test]
    fn fires_in_deadline_then_start_order() {
        let t0 = Instant::now();
        let mut h = TimerHeap::default();
        h.push(t0 + Duration::from_millis(3), w(1));
        h.push(t0 + Duration::from_millis(1), w(2));
        h.push(t0 + Duration::from_millis(3), w(3));
        h.push(t0 + Duration::from_millis(2), w(4));
        let mut order = vec![];
        while let Some((x, _)) = h.pop_expired(t0 + Duration::from_millis(10), |_, _| true) {
            order.push(x.index);
        }
        assert_eq!(order, vec![2, 4, 1, 3]);
    }

    #[test]
    fn not_due_stays() {
        let t0 = Instant::now();
        let mut h = TimerHeap::default();
        h.push(t0 + Duration::from_millis(5), w(1));
        assert!(h.pop_expired(t0, |_, _| true).is_none());
        assert_eq!(h.next_due(|_, _| true), Some(t0 + Duration::from_millis(5)));
    }

    #[test]
    fn stale_entries_are_skipped_and_compacted() {
        let t0 = Instant::now();
        let mut h = TimerHeap::default();
        let mut live: HashMap<u32, u64> = HashMap::new();
        // Restart one timer 1000 times: only the last entry is live.
        for i in 0..1000u64 {
            let s = h.push(t0 + Duration::from_millis(i), w(7));
            live.insert(7, s);
        }
        let is_live = |x: WatcherId, s: u64| live.get(&x.index) == Some(&s);
        h.compact(1, is_live);
        assert_eq!(h.len(), 1);
        let (x, due) = h.pop_expired(t0 + Duration::from_secs(5), is_live).unwrap();
        assert_eq!(x.index, 7);
        assert_eq!(due, t0 + Duration::from_millis(999));
    }
}

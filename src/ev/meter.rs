//! How long the loop's turns take, and whose callback took longest: the instrument behind
//! [`Stats`], for finding what holds a loop that seems stuck.
//!
//! A turn's work is measured between polls: from one poll's return to the next poll's
//! start (its check, pending and idle callbacks, then the next turn's prepare callbacks
//! and interest changes). That needs no clock read the loop does not make anyway in most
//! turns: the loop reads the time right after every poll, and before a poll with a
//! timeout (to compute it); a poll that cannot sleep ends the previous turn's work when it
//! returns (its own syscall counted in). Only a poll that may sleep with no timer pending,
//! and a turn run by `run_once`/`run_nowait`/`run_until` (the caller's code follows it),
//! read the clock once more.
//!
//! Callbacks are timed the same way: a turn whose work is one callback gives the turn's
//! time to it, with no extra read; in a turn of several callbacks, the clock is read
//! before each callback after the first, ending the previous one's share.

use std::time::{Duration, Instant};

use super::WatcherId;

/// What a loop has done so far (see [`Ctx::stats`](super::Ctx::stats)).
///
/// # Reading them when a loop seems stuck
/// A turn's work is everything the loop does between two polls: its callbacks, removals,
/// interest changes. Nothing else runs on the loop's thread meanwhile, so a timer is late
/// by at most the turn its deadline fell in. Take two snapshots some seconds apart and
/// compare:
///
/// - **`turns` does not move**: the loop is inside one turn now; a callback has not
///   returned (a blocking call, a deadlock). `gdb -p PID -batch -ex 'thread apply all bt'`
///   names it.
/// - **`turns` moves, but `longest_turn` or the high buckets of `turn_histogram` grew**:
///   some turns take long. `slowest_callback` names the watcher whose callback took
///   longest (compare it with the ids your watchers were created with); its callback does
///   too much per turn: give it a budget (a ZeroMQ [`Budget`](crate::zmq::Budget), a
///   bufio per-turn cap, a pool batch) or move blocking work to a
///   [`Pool`](crate::thread::Pool).
/// - **A long `longest_turn` that no callback explains** (`slowest_callback` far shorter):
///   the loop's own work took it, e.g. dropping something large at a turn's start, or the
///   thread was preempted (check the thread's involuntary context switches).
///
/// Turns take from under a microsecond (an idle loop spinning) to the longest callback;
/// a healthy loop that serves timers of 1 ms keeps every turn well below that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Turns run.
    pub turns: u64,
    /// Poll syscalls made (one per turn).
    pub polls: u64,
    /// `epoll_ctl` syscalls made.
    pub ctl_calls: u64,
    /// The longest turn's work so far (between two polls, see above).
    pub longest_turn: Duration,
    /// Turns by how long their work took: entry `k` counts turns of `[2^k, 2^(k+1))` µs
    /// (entry 0 also the shorter ones, the last one the longer ones).
    pub turn_histogram: [u64; BUCKETS],
    /// The watcher whose callback took longest, and how long (its share of a turn: from
    /// the end of the previous callback, or the poll, to the start of the next).
    pub slowest_callback: Option<(WatcherId, Duration)>,
}

impl Stats {
    /// Turns whose work took at least `d` (to the histogram's power-of-two resolution:
    /// the buckets that start at or above `d`).
    pub fn turns_at_least(&self, d: Duration) -> u64 {
        let us = d.as_micros();
        self.turn_histogram
            .iter()
            .enumerate()
            .filter(|(k, _)| (1u128 << k) >= us)
            .map(|(_, n)| n)
            .sum()
    }
}



/// Histogram buckets: bucket `k` counts turns of `[2^k, 2^(k+1))` µs (bucket 0 also the
/// shorter ones, the last one the longer ones).
pub(super) const BUCKETS: usize = 24;

#[derive(Debug)]
pub(super) struct Meter {
    /// The current turn's work began here (a poll returned); `None` between a turn's end
    /// and the next poll's return.
    began: Option<Instant>,
    /// Where the running callback's share began, and whose it is.
    mark: Instant,
    running: Option<WatcherId>,
    longest: Duration,
    histogram: [u64; BUCKETS],
    slowest: Option<(WatcherId, Duration)>,
}

impl Meter {
    pub(super) fn new(now: Instant) -> Meter {
        Meter {
            began: None,
            mark: now,
            running: None,
            longest: Duration::ZERO,
            histogram: [0; BUCKETS],
            slowest: None,
        }
    }

    /// A poll returned at `now` (the loop's own reading): the work of a turn whose poll
    /// could not sleep ends here, and the next turn's begins.
    pub(super) fn poll_returned(&mut self, now: Instant) {
        self.end(now);
        self.began = Some(now);
        self.mark = now;
    }

    /// The work done so far ends at `now`: a poll that may sleep starts, or the caller's
    /// code takes over.
    pub(super) fn end(&mut self, now: Instant) {
        let Some(began) = self.began.take() else {
            return;
        };
        if let Some(w) = self.running.take() {
            self.charge(w, now.saturating_duration_since(self.mark));
        }
        let took = now.saturating_duration_since(began);
        self.longest = self.longest.max(took);
        let us = took.as_micros().max(1);
        let k = (127 - us.leading_zeros()) as usize;
        if let Some(b) = self.histogram.get_mut(k.min(BUCKETS - 1)) {
            *b += 1;
        }
    }

    /// Callback `w` is about to run.
    pub(super) fn callback(&mut self, w: WatcherId) {
        if self.began.is_none() {
            return; // before the first poll: nothing to measure against
        }
        if let Some(prev) = self.running {
            let now = Instant::now();
            self.charge(prev, now.saturating_duration_since(self.mark));
            self.mark = now;
        }
        self.running = Some(w);
    }

    fn charge(&mut self, w: WatcherId, took: Duration) {
        if self.slowest.is_none_or(|(_, d)| took > d) {
            self.slowest = Some((w, took));
        }
    }

    /// Forgets the durations measured so far (a turn in progress still counts).
    pub(super) fn reset(&mut self) {
        self.longest = Duration::ZERO;
        self.histogram = [0; BUCKETS];
        self.slowest = None;
    }

    pub(super) fn longest(&self) -> Duration {
        self.longest
    }

    pub(super) fn histogram(&self) -> [u64; BUCKETS] {
        self.histogram
    }

    pub(super) fn slowest(&self) -> Option<(WatcherId, Duration)> {
        self.slowest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(i: u32) -> WatcherId {
        WatcherId {
            index: i,
            version: 0,
        }
    }

    #[test]
    fn a_turn_lasts_from_its_poll_to_the_next_and_lands_in_its_log2_bucket() {
        let t0 = Instant::now();
        let us = |n: u64| t0 + Duration::from_micros(n);
        let mut m = Meter::new(t0);
        m.poll_returned(us(0));
        m.callback(w(1));
        m.end(us(1500)); // a 1.5 ms turn: bucket [1024, 2048) µs
        m.poll_returned(us(2000));
        m.poll_returned(us(2003)); // 3 µs: bucket [2, 4)
        assert_eq!(m.longest(), Duration::from_micros(1500));
        assert_eq!(m.histogram()[10], 1);
        assert_eq!(m.histogram()[1], 1);
        assert_eq!(m.histogram().iter().sum::<u64>(), 2);
        assert_eq!(m.slowest(), Some((w(1), Duration::from_micros(1500))));
    }
}

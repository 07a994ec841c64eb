//! How long the loop's turns take, and whose callback took longest: the instrument behind
//! [`Stats`], for finding what holds a loop that seems stuck.
//!
//! A turn's work is measured between polls: from one poll's return to the next poll's
//! start (its check, pending and idle callbacks, then the next turn's prepare callbacks
//! and interest changes). The loop already reads the time right after every poll and
//! before a poll with a timeout; a poll that cannot sleep ends the previous turn's work
//! when it returns (its own syscall counted in). Only a poll that may sleep with no timer
//! pending, and a turn run by `run_once`/`run_nowait`/`run_until` (the caller's code
//! follows it), read the clock once more.
//!
//! Measuring must cost an idle loop's spin (a zero-timeout poll, ~200 ns a turn) next to
//! nothing, and a time subtraction alone is a few percent of that. So short turns are
//! counted, not measured: after each measured turn the meter notes when 16 µs from then
//! will be, and a turn that ends before it was shorter than that, which one comparison
//! shows. Only a turn that ends later is measured.
//!
//! Callbacks are charged the same way: a turn whose work is one callback gives its time to
//! that callback, with no extra read; in a turn of several callbacks, the clock is read
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
///   too much per turn: give it a budget (a ZeroMQ [`Budget`](crate::fair::Budget), a
///   bufio per-turn cap, a pool batch) or move blocking work to a
///   [`Pool`](crate::pool::Pool).
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
    /// Turns by how long their work took: entry 0 counts turns under 16 µs, entry `k ≥ 1`
    /// turns of `[16·2^(k-1), 16·2^k)` µs (16–32 µs, 32–64 µs, ...; the last entry also
    /// the longer ones). [`turns_at_least`](Stats::turns_at_least) sums them.
    pub turn_histogram: [u64; BUCKETS],
    /// The watcher whose callback took longest, and how long (its share of a turn: from
    /// the end of the previous callback, or the poll, to the start of the next). Callbacks
    /// under 16 µs are not told apart: this stays `None` until one takes longer.
    pub slowest_callback: Option<(WatcherId, Duration)>,
}

impl Stats {
    /// Turns whose work took at least `d`, to the histogram's resolution: the entries
    /// whose range starts at or above `d`.
    pub fn turns_at_least(&self, d: Duration) -> u64 {
        let us = d.as_micros();
        self.turn_histogram
            .iter()
            .enumerate()
            .filter(|&(k, _)| bucket_floor_us(k) >= us)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Histogram entries (see [`Stats::turn_histogram`]).
pub(super) const BUCKETS: usize = 24;

/// Turns and callback shares shorter than this are counted, not measured.
const QUICK: Duration = Duration::from_micros(16);

/// Where histogram entry `k` starts, in µs.
fn bucket_floor_us(k: usize) -> u128 {
    match k {
        0 => 0,
        k => 16u128 << (k - 1),
    }
}

/// The histogram entry of a turn of `took`.
fn bucket(took: Duration) -> usize {
    // Whole microseconds, in u64 (turns of 584,000 years are not expected).
    let us = took.as_secs() * 1_000_000 + u64::from(took.subsec_micros());
    if us < 16 {
        0
    } else {
        ((63 - us.leading_zeros()) as usize - 3).min(BUCKETS - 1)
    }
}

#[derive(Debug)]
pub(super) struct Meter {
    /// The current turn's work began here (a poll returned); `None` between a turn's end
    /// and the next poll's return.
    began: Option<Instant>,
    /// A turn or a callback's share that ends before this began after it was set and is
    /// shorter than [`QUICK`]: counted without a subtraction.
    quick_until: Instant,
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
            quick_until: now,
            mark: now,
            running: None,
            longest: Duration::ZERO,
            histogram: [0; BUCKETS],
            slowest: None,
        }
    }

    /// A poll returned at `now` (the loop's own reading): the work of a turn whose poll
    /// could not sleep ends here, and the next turn's begins.
    #[inline]
    pub(super) fn poll_returned(&mut self, now: Instant) {
        self.end(now);
        self.began = Some(now);
        self.mark = now;
    }

    /// The work done so far ends at `now`: a poll that may sleep starts, or the caller's
    /// code takes over.
    #[inline]
    pub(super) fn end(&mut self, now: Instant) {
        let Some(began) = self.began.take() else {
            return;
        };
        let running = self.running.take();
        if now < self.quick_until {
            // Began after `quick_until - QUICK`, ends before it: short, and so was the
            // share of the callback that ran last.
            self.histogram[0] += 1;
        } else {
            self.measure(began, now, running);
        }
    }

    /// A turn that may have been long ended: measure it.
    #[cold]
    fn measure(&mut self, began: Instant, now: Instant, running: Option<WatcherId>) {
        let took = now.saturating_duration_since(began);
        if let Some(w) = running {
            let share = if self.mark == began {
                took
            } else {
                now.saturating_duration_since(self.mark)
            };
            self.charge(w, share);
        }
        if took > self.longest {
            self.longest = took;
        }
        self.histogram[bucket(took)] += 1;
        self.quick_until = super::later(now, QUICK);
    }

    /// Callback `w` is about to run.
    #[inline]
    pub(super) fn callback(&mut self, w: WatcherId) {
        if self.began.is_none() {
            return; // before the first poll: nothing to measure against
        }
        if let Some(prev) = self.running {
            self.next_share(prev);
        }
        self.running = Some(w);
    }

    /// Another callback follows `prev` in this turn: `prev`'s share ends now.
    fn next_share(&mut self, prev: WatcherId) {
        let now = Instant::now();
        if now >= self.quick_until {
            self.charge(prev, now.saturating_duration_since(self.mark));
        }
        self.mark = now;
    }

    fn charge(&mut self, w: WatcherId, took: Duration) {
        if took < QUICK {
            return;
        }
        match self.slowest {
            Some((_, d)) if d >= took => {}
            _ => self.slowest = Some((w, took)),
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
    fn long_turns_are_measured_into_their_bucket_short_ones_counted() {
        let t0 = Instant::now();
        let us = |n: u64| t0 + Duration::from_micros(n);
        let mut m = Meter::new(t0);
        m.poll_returned(us(0));
        m.callback(w(1));
        m.end(us(1500)); // 1.5 ms: [1024, 2048) µs, entry 7
        m.poll_returned(us(2000));
        m.poll_returned(us(2003)); // 3 µs within 16 µs of the last measured end: counted
        m.poll_returned(us(2100)); // 97 µs: [64, 128), entry 3
        assert_eq!(m.longest(), Duration::from_micros(1500));
        assert_eq!(m.histogram()[7], 1);
        assert_eq!(m.histogram()[0], 1);
        assert_eq!(m.histogram()[3], 1);
        assert_eq!(m.histogram().iter().sum::<u64>(), 3);
        assert_eq!(m.slowest(), Some((w(1), Duration::from_micros(1500))));
    }

    #[test]
    fn the_buckets_and_their_floors_agree() {
        for (us, k) in [
            (0, 0),
            (15, 0),
            (16, 1),
            (31, 1),
            (32, 2),
            (1000, 6),
            (1024, 7),
        ] {
            assert_eq!(bucket(Duration::from_micros(us)), k, "{us} µs");
            assert!(bucket_floor_us(k) <= u128::from(us));
        }
        assert_eq!(bucket(Duration::from_secs(1 << 40)), BUCKETS - 1);
    }
}

/// How often the loop turned, polled and changed the kernel's interest set.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    turns: u64,
    polls: u64,
    ctl_calls: u64,
}

impl Counters {
    /// A turn began.
    pub(super) fn turned(&mut self) {
        self.turns += 1;
    }

    /// The poll syscall ran.
    pub(super) fn polled(&mut self) {
        self.polls += 1;
    }

    /// An `epoll_ctl` (or the backend's equivalent) ran.
    pub(super) fn ctl(&mut self) {
        self.ctl_calls += 1;
    }

    pub(super) fn turns(&self) -> u64 {
        self.turns
    }

    pub(super) fn polls(&self) -> u64 {
        self.polls
    }

    pub(super) fn ctl_calls(&self) -> u64 {
        self.ctl_calls
    }
}

//! The turn budget: how much work one socket may do per loop turn.

use std::time::{Duration, Instant};

/// How much one socket may do per loop turn before the loop moves on to timers, other
/// sockets and other fds.
///
/// The article's rule is one whole message per turn; that is perfectly fair but pays the
/// loop's per-turn cost (poll syscall, callbacks) for every message. A budget of `messages`
/// per turn amortises it; `time` bounds the turn when the handler is slow per message.
///
/// The default, [`Budget::DEFAULT`], was picked from `benches/throughput` and
/// `benches/starvation` (see `docs/benchmarks.md`): 64 messages reach ≥ 0.9× the raw
/// blocking-recv ceiling while keeping 1 ms timer lateness far below 100 µs.
///
/// # The time slice
/// A turn ends after the first message (or `writable()` call) that takes it past `time`:
/// a handler that spends 250 µs per message gets one message per turn under the default
/// budget, and the loop's other watchers wait at most the slice plus one message.
///
/// The clock is read after every message: `benches/throughput` cannot tell that from
/// reading it every 16 (docs/benchmarks.md, "The time slice").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Whole messages (all parts) received, or `writable()` calls made, per turn. At least 1.
    pub messages: u32,
    /// End the turn once this much time went by in it, within one message: see
    /// [`Budget`]'s section on the time slice.
    pub time: Option<Duration>,
}

impl Budget {
    /// 64 messages or 200 µs per turn, whichever comes first.
    pub const DEFAULT: Budget = Budget {
        messages: 64,
        time: Some(Duration::from_micros(200)),
    };

    /// The article's budget: one message per turn.
    pub const ONE: Budget = Budget {
        messages: 1,
        time: None,
    };

    /// A budget of `messages` per turn and no time limit.
    pub const fn messages(messages: u32) -> Budget {
        Budget {
            messages,
            time: None,
        }
        .sane()
    }

    /// The budget the adapter applies: at least one message per turn.
    pub(crate) const fn sane(mut self) -> Budget {
        if self.messages == 0 {
            self.messages = 1;
        }
        self
    }
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::DEFAULT
    }
}

/// One turn's share of a [`Budget`] being spent: the messages left, and when the time
/// slice ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slice {
    left: u32,
    until: Option<Instant>,
}

impl Slice {
    /// A turn starts now.
    pub(crate) fn start(budget: Budget) -> Slice {
        Slice::start_at(budget, Instant::now)
    }

    fn start_at(budget: Budget, now: impl FnOnce() -> Instant) -> Slice {
        let budget = budget.sane();
        Slice {
            left: budget.messages,
            // A slice too long to represent is no limit.
            until: budget.time.and_then(|t| now().checked_add(t)),
        }
    }

    /// One more message (or `writable()` call) was handled: whether the turn is over, by
    /// count or by time.
    pub(crate) fn spend(&mut self) -> bool {
        self.spend_at(Instant::now)
    }

    fn spend_at(&mut self, now: impl FnOnce() -> Instant) -> bool {
        self.left -= 1;
        self.left == 0 || self.until.is_some_and(|until| now() >= until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    /// Spends messages that cost `cost(i)` each on a fake clock; returns how many the
    /// slice allowed and how many clock reads it made.
    fn run(budget: Budget, mut cost: impl FnMut(u32) -> Duration) -> (u32, u32) {
        let t0 = Instant::now();
        let mut at = Duration::ZERO;
        let (mut n, mut reads) = (0, 0);
        let mut s = Slice::start_at(budget, || t0);
        loop {
            at += cost(n);
            n += 1;
            let over = s.spend_at(|| {
                reads += 1;
                t0 + at
            });
            if over {
                return (n, reads);
            }
        }
    }

    #[test]
    fn a_turn_ends_with_the_first_message_past_the_slice() {
        assert_eq!(run(Budget::DEFAULT, |_| 250 * US).0, 1);
        assert_eq!(run(Budget::DEFAULT, |_| 150 * US).0, 2);
        assert_eq!(run(Budget::DEFAULT, |_| 13 * US).0, 16);
        // Fast for a while, then slow: still within one message.
        assert_eq!(
            run(Budget::DEFAULT, |i| if i < 20 { US } else { 250 * US }).0,
            21
        );
    }

    #[test]
    fn fast_messages_spend_the_count() {
        assert_eq!(run(Budget::DEFAULT, |_| Duration::from_nanos(200)).0, 64);
    }

    #[test]
    fn no_time_slice_means_no_clock_and_the_count_alone() {
        assert_eq!(run(Budget::messages(5), |_| 1000 * US), (5, 0));
        assert_eq!(run(Budget::ONE, |_| US), (1, 0));
    }
}

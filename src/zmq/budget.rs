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
/// Reading the clock costs about as much as a tenth of receiving a small message, so it is
/// not read after every message while messages are cheap: it is read after the first one,
/// then after strides of messages that double (up to 8) while each stride stays within its
/// share of the slice (`time / messages`), and after every message again as soon as one
/// stride does not. A handler that is fast for a while and then suddenly slow can therefore
/// overrun by the rest of one stride (at most 8 messages); one that is steadily slow, or
/// slow from the first message, overruns by one message at most.
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
            messages: 0,
            time: None,
        }
        .with_messages(messages)
    }

    /// This budget with `messages` per turn (at least 1, as every budget).
    pub const fn with_messages(mut self, messages: u32) -> Budget {
        self.messages = if messages == 0 { 1 } else { messages };
        self
    }

    /// The budget the adapter applies: at least one message per turn.
    pub(crate) const fn sane(self) -> Budget {
        self.with_messages(self.messages)
    }
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::DEFAULT
    }
}

/// The longest run of messages between two clock reads while messages stay cheap.
const MAX_STRIDE: u32 = 8;

/// One turn's share of a [`Budget`] being spent: counts messages and watches the time
/// slice, reading the clock as the section on the time slice says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slice {
    messages: u32,
    n: u32,
    clock: Option<Clock>,
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    limit: Duration,
    t0: Instant,
    /// The message count at which the clock is read next.
    next: u32,
    stride: u32,
    /// Count and elapsed time at the last read.
    last: (u32, Duration),
}

impl Slice {
    /// A turn starts now (the clock is read here when the budget has a time slice).
    pub(crate) fn start(budget: Budget) -> Slice {
        Slice::start_at(budget, Instant::now)
    }

    fn start_at(budget: Budget, now: impl FnOnce() -> Instant) -> Slice {
        let budget = budget.sane();
        Slice {
            messages: budget.messages,
            n: 0,
            clock: budget.time.map(|limit| Clock {
                limit,
                t0: now(),
                next: 1,
                stride: 1,
                last: (0, Duration::ZERO),
            }),
        }
    }

    /// Messages (or `writable()` calls) spent so far.
    #[cfg(test)]
    fn spent(&self) -> u32 {
        self.n
    }

    /// One more message was handled: whether the turn is over (by count or by time).
    pub(crate) fn spend(&mut self) -> bool {
        self.spend_at(Instant::now)
    }

    fn spend_at(&mut self, now: impl FnOnce() -> Instant) -> bool {
        self.n += 1;
        if self.n >= self.messages {
            return true;
        }
        let Some(c) = self.clock.as_mut() else {
            return false;
        };
        if self.n < c.next {
            return false;
        }
        let elapsed = now().saturating_duration_since(c.t0);
        if elapsed >= c.limit {
            return true;
        }
        // The stride just spent: within its share of the slice, double the next one;
        // over it, read the clock after every message from now on.
        let (n0, e0) = c.last;
        let per = (elapsed - e0) / (self.n - n0).max(1);
        let share = c.limit / self.messages;
        c.stride = if per > share {
            1
        } else {
            (c.stride * 2).min(MAX_STRIDE)
        };
        // At the stride's own pace, end it no later than halfway through what is left.
        if let Some(fit) = (c.limit - elapsed).as_nanos().checked_div(per.as_nanos()) {
            let fit = u32::try_from(fit / 2).unwrap_or(u32::MAX).max(1);
            c.stride = c.stride.min(fit);
        }
        c.last = (self.n, elapsed);
        c.next = self.n + c.stride;
        false
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
        let mut reads = 0;
        let mut s = Slice::start_at(budget, || t0);
        loop {
            at += cost(s.spent());
            let over = s.spend_at(|| {
                reads += 1;
                t0 + at
            });
            if over {
                return (s.spent(), reads);
            }
        }
    }

    #[test]
    fn a_steadily_slow_handler_gets_one_message_past_the_slice() {
        assert_eq!(run(Budget::DEFAULT, |_| 250 * US).0, 1);
        assert_eq!(run(Budget::DEFAULT, |_| 150 * US).0, 2);
        assert_eq!(run(Budget::DEFAULT, |_| 13 * US).0, 16);
    }

    #[test]
    fn fast_messages_spend_the_count_with_few_clock_reads() {
        let (n, reads) = run(Budget::DEFAULT, |_| Duration::from_nanos(200));
        assert_eq!(n, 64);
        assert!(reads <= 10, "{reads} clock reads for 64 cheap messages");
    }

    #[test]
    fn a_handler_that_turns_slow_overruns_by_at_most_one_stride() {
        for fast in 0..40 {
            let (n, _) = run(Budget::DEFAULT, |i| {
                if i < fast {
                    Duration::from_nanos(200)
                } else {
                    250 * US
                }
            });
            assert!(n <= fast + MAX_STRIDE, "{fast} fast then slow: {n}");
        }
    }

    #[test]
    fn no_time_slice_means_no_clock_and_the_count_alone() {
        let (n, reads) = run(Budget::messages(5), |_| 1000 * US);
        assert_eq!((n, reads), (5, 0));
        assert_eq!(run(Budget::ONE, |_| US), (1, 0));
    }
}

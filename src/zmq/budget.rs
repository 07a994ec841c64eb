//! The turn budget: how much work one socket may do per loop turn.

use std::time::Duration;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Whole messages (all parts) received, or `writable()` calls made, per turn. At least 1.
    pub messages: u32,
    /// Stop early once this much time went by in one turn (checked every 16 messages).
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

/// How often the time slice is checked, in messages.
pub(crate) const TIME_CHECK_EVERY: u32 = 16;

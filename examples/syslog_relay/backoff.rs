//! Reconnect delays with full jitter ("Exponential Backoff And Jitter", AWS Architecture
//! Blog): attempt n waits a uniformly random time in [0, min(cap, base × 2ⁿ)], so clients
//! that lost the same server (a restart) come back spread over that window instead of in
//! the same millisecond, and a client alone still backs off exponentially.

use std::time::Duration;

use rand::Rng;

/// The delays of one client's reconnects.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The window the next delay is drawn from: min(cap, base × 2ⁿ).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay, uniform in [0, ceiling]; the window doubles for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        let draw = rand::rng().next_u64() % micros.saturating_add(1);
        Duration::from_micros(draw)
    }

    /// After a session that lasted: start from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

//! Server health, as c-ares keeps it: each server's smoothed round-trip time (an
//! exponentially weighted average, so old samples decay), a timeout derived from it
//! within bounds, and its consecutive failures. A server that failed moves behind those
//! that did not, and is probed again (a real query sent to it first) once per retry
//! delay ([`ResolverOptions::server_retry_delay`](super::ResolverOptions::server_retry_delay));
//! one answer brings it back.

use std::time::{Duration, Instant};

/// A derived timeout is this many smoothed round trips.
const RTT_MULTIPLE: u32 = 4;

/// One server's health.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Health {
    /// Smoothed round-trip time: 7/8 of the old value and 1/8 of each new sample (TCP's
    /// SRTT gain); doubled by a timeout. `None` until its first answer.
    pub(super) srtt: Option<Duration>,
    /// Failures since its last answer (timeouts, refusals, SERVFAIL, broken answers).
    pub(super) failures: u32,
    /// When a query may probe it again (set while `failures > 0`).
    retry_at: Option<Instant>,
    /// Answers and failures over its life.
    pub(super) answered: u64,
    pub(super) failed: u64,
}

impl Health {
    /// It answered, `rtt` after the query left.
    pub(super) fn answered(&mut self, rtt: Duration) {
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(s) => (s * 7 + rtt) / 8,
        });
        self.failures = 0;
        self.retry_at = None;
        self.answered += 1;
    }

    /// It failed at `now`; `timed_out` also doubles its smoothed round trip (up to `max`),
    /// so its next timeout is longer. It may be probed again after `retry`.
    pub(super) fn failed(&mut self, now: Instant, timed_out: bool, max: Duration, retry: Duration) {
        if timed_out {
            self.srtt = self.srtt.map(|s| (s * 2).min(max));
        }
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + retry);
        self.failed += 1;
    }

    /// Whether it is aside (it failed, and has not answered since).
    pub(super) fn is_aside(&self) -> bool {
        self.failures > 0
    }

    /// How long to wait for its answer: [`RTT_MULTIPLE`] smoothed round trips, within
    /// `[min, max]`; `max` (the configured timeout) until it has answered once.
    pub(super) fn timeout(&self, min: Duration, max: Duration) -> Duration {
        match self.srtt {
            Some(s) => (s * RTT_MULTIPLE).clamp(min.min(max), max),
            None => max,
        }
    }
}

/// The order in which one lookup tries `servers` (indices): from `first` round the list,
/// those without failures first in that order, then the ones aside, fewest failures
/// first. A server aside whose retry time has come goes first instead, as this lookup's
/// probe, and its retry time moves on by `retry`, so a dead server costs one query per
/// `retry`.
pub(super) fn order(
    servers: &mut [Health],
    first: usize,
    now: Instant,
    retry: Duration,
) -> Vec<usize> {
    let n = servers.len().max(1);
    let first = first % n;
    let round: Vec<usize> = (0..servers.len()).map(|k| (first + k) % n).collect();
    let mut up: Vec<usize> = round
        .iter()
        .copied()
        .filter(|&i| !servers[i].is_aside())
        .collect();
    let mut aside: Vec<usize> = round
        .iter()
        .copied()
        .filter(|&i| servers[i].is_aside())
        .collect();
    aside.sort_by_key(|&i| servers[i].failures);
    let probe = aside
        .iter()
        .position(|&i| servers[i].retry_at.is_none_or(|t| t <= now));
    match probe {
        Some(k) => {
            let p = aside.remove(k);
            servers[p].retry_at = Some(now + retry);
            let mut out = vec![p];
            out.append(&mut up);
            out.append(&mut aside);
            out
        }
        None => {
            up.append(&mut aside);
            up
        }
    }
}

// ----- the resolver's use of it ---------------------------------------------------------

impl<S: 'static> super::resolver::Inner<S> {
    /// The server lookup `key` asks in this attempt: an index into its configuration's TLS
    /// servers (`tls`) or plain ones, from the lookup's order (made afresh for each new
    /// question). Also notes that the attempt starts now.
    pub(super) fn pick(&mut self, key: u64, tls: bool) -> Option<usize> {
        let now = Instant::now();
        let p = self.queries.get_mut(&key)?;
        let retry = p.config.server_retry_delay;
        if p.order.is_empty() || p.over_tls != tls {
            p.order = if tls {
                order(&mut self.tls_health, p.first, now, retry)
            } else {
                // The plain servers' health is kept by address: a configuration read
                // again keeps what is known of the servers it still lists.
                let addrs = &p.config.servers;
                let mut hs: Vec<Health> = addrs
                    .iter()
                    .map(|a| self.health.get(a).copied().unwrap_or_default())
                    .collect();
                let o = order(&mut hs, p.first, now, retry);
                for (a, h) in addrs.iter().zip(hs) {
                    self.health.insert(*a, h);
                }
                o
            };
        }
        if p.order.is_empty() {
            return None;
        }
        p.over_tls = tls;
        p.index = p.order[p.tried % p.order.len()];
        p.sent_at = Some(now);
        Some(p.index)
    }

    /// Server `index`'s timeout for lookup `key` (see [`pick`](Self::pick)).
    pub(super) fn attempt_timeout(&self, key: u64, index: usize, tls: bool) -> Duration {
        let config = self.queries.get(&key).map_or(&self.config, |p| &p.config);
        let h = if tls {
            self.tls_health.get(index)
        } else {
            config.servers.get(index).and_then(|a| self.health.get(a))
        };
        h.map_or(config.timeout, |h| {
            h.timeout(config.min_timeout, config.timeout)
        })
    }

    /// Lookup `key`'s attempt ended: its server answered (`None`) or failed (`Some`,
    /// with whether it timed out). Counted once per attempt.
    pub(super) fn attempt_over(&mut self, key: u64, failure: Option<bool>) {
        let Some(p) = self.queries.get_mut(&key) else {
            return;
        };
        let Some(sent) = p.sent_at.take() else {
            return;
        };
        let h = if p.over_tls {
            self.tls_health.get_mut(p.index)
        } else {
            p.config
                .servers
                .get(p.index)
                .and_then(|a| self.health.get_mut(a))
        };
        let Some(h) = h else {
            return;
        };
        match failure {
            None => h.answered(sent.elapsed()),
            Some(timed_out) => h.failed(
                Instant::now(),
                timed_out,
                p.config.timeout,
                p.config.server_retry_delay,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const RETRY: Duration = Duration::from_secs(5);

    #[test]
    fn the_smoothed_rtt_follows_samples_and_old_ones_decay() {
        let mut h = Health::default();
        assert_eq!(
            h.timeout(100 * MS, 2000 * MS),
            2000 * MS,
            "unknown: the maximum"
        );
        h.answered(80 * MS);
        assert_eq!(h.srtt, Some(80 * MS));
        for _ in 0..40 {
            h.answered(160 * MS);
        }
        let s = h.srtt.unwrap();
        assert!(
            s > 159 * MS && s <= 160 * MS,
            "the first sample has decayed: {s:?}"
        );
        assert_eq!(h.timeout(100 * MS, 2000 * MS), s * 4);
        // Within bounds both ways.
        assert_eq!(h.timeout(100 * MS, 300 * MS), 300 * MS);
        h.answered(Duration::ZERO);
        let mut fast = Health::default();
        fast.answered(MS / 10);
        assert_eq!(fast.timeout(100 * MS, 2000 * MS), 100 * MS);
    }

    #[test]
    fn a_timeout_doubles_the_rtt_and_sets_the_server_aside_until_it_answers() {
        let mut h = Health::default();
        h.answered(100 * MS);
        let now = Instant::now();
        h.failed(now, true, 1000 * MS, RETRY);
        assert_eq!(h.srtt, Some(200 * MS));
        assert!(h.is_aside());
        for _ in 0..5 {
            h.failed(now, true, 1000 * MS, RETRY);
        }
        assert_eq!(h.srtt, Some(1000 * MS), "capped");
        h.answered(100 * MS);
        assert!(!h.is_aside());
        assert_eq!((h.answered, h.failed), (2, 6));
    }

    #[test]
    fn a_failed_server_goes_last_and_is_probed_once_per_retry_delay() {
        let now = Instant::now();
        let mut s = [Health::default(); 3];
        assert_eq!(order(&mut s, 0, now, RETRY), [0, 1, 2]);
        assert_eq!(order(&mut s, 1, now, RETRY), [1, 2, 0], "rotation");
        s[0].failed(now, true, MS, RETRY);
        assert_eq!(order(&mut s, 0, now, RETRY), [1, 2, 0]);
        s[1].failed(now, true, MS, RETRY);
        s[1].failed(now, true, MS, RETRY);
        assert_eq!(
            order(&mut s, 0, now, RETRY),
            [2, 0, 1],
            "fewest failures first"
        );
        // After the retry delay, one lookup probes it first; the next does not.
        let later = now + RETRY;
        assert_eq!(order(&mut s, 0, later, RETRY), [0, 2, 1]);
        assert_eq!(
            order(&mut s, 0, later, RETRY),
            [1, 2, 0],
            "then the other one's turn"
        );
        assert_eq!(
            order(&mut s, 0, later, RETRY),
            [2, 0, 1],
            "and no more probes"
        );
        s[0].answered(MS);
        assert_eq!(order(&mut s, 0, later, RETRY), [0, 2, 1], "back in front");
    }
}

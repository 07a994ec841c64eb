//! Rate limiting: token buckets per stream and per group (libevent's rate limits).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A stream's or group's limits: sustained bytes per second and burst, for reading and
/// writing, refilled once per tick. Buckets start full.
///
/// ```
/// use std::time::Duration;
/// use evnet::bufio::RateLimit;
///
/// // 1 MB/s each way with 64 KiB bursts, refilled every 10 ms (10 kB a tick).
/// let l = RateLimit::symmetric(1_000_000, 64 * 1024).tick(Duration::from_millis(10));
/// assert_eq!(l.read_per_tick(), 10_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained read rate, bytes per second.
    pub read_rate: u64,
    /// Most bytes read at once (the read bucket's size).
    pub read_burst: u64,
    /// Sustained write rate, bytes per second.
    pub write_rate: u64,
    /// Most bytes written at once.
    pub write_burst: u64,
    /// How often buckets refill; at least 1 ms.
    pub tick: Duration,
}

/// The shortest tick.
pub(crate) const MIN_TICK: Duration = Duration::from_millis(1);

impl RateLimit {
    /// The same rate and burst for reading and writing, with a 10 ms tick.
    pub fn symmetric(rate: u64, burst: u64) -> RateLimit {
        RateLimit {
            read_rate: rate,
            read_burst: burst,
            write_rate: rate,
            write_burst: burst,
            tick: Duration::from_millis(10),
        }
    }

    /// Sets the refill tick (clamped to at least 1 ms).
    pub fn tick(mut self, tick: Duration) -> RateLimit {
        self.tick = tick;
        self
    }

    fn tick_len(&self) -> Duration {
        self.tick.max(MIN_TICK)
    }

    /// Bytes added to the read bucket each tick (at least 1).
    pub fn read_per_tick(&self) -> u64 {
        per_tick(self.read_rate, self.tick_len())
    }

    /// Bytes added to the write bucket each tick (at least 1).
    pub fn write_per_tick(&self) -> u64 {
        per_tick(self.write_rate, self.tick_len())
    }
}

fn per_tick(rate: u64, tick: Duration) -> u64 {
    ((rate as u128 * tick.as_nanos() / 1_000_000_000) as u64).max(1)
}

/// One token bucket. Tokens may go negative (a manual decrement, or a group member reading
/// its minimum share): the debt is paid from later refills.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: i64,
    burst: i64,
    per_tick: i64,
    tick: Duration,
    origin: Instant,
    pub(crate) last_tick: u64,
}

impl Bucket {
    pub(crate) fn new(burst: u64, per_tick: u64, tick: Duration, now: Instant) -> Bucket {
        let burst = burst.min(i64::MAX as u64) as i64;
        Bucket {
            tokens: burst,
            burst,
            per_tick: per_tick.min(i64::MAX as u64) as i64,
            tick: tick.max(MIN_TICK),
            origin: now,
            last_tick: 0,
        }
    }

    fn tick_of(&self, now: Instant) -> u64 {
        let ns = now.saturating_duration_since(self.origin).as_nanos();
        (ns / self.tick.as_nanos()) as u64
    }

    /// Adds the refills of every tick boundary passed since the last call.
    pub(crate) fn refill(&mut self, now: Instant) {
        let t = self.tick_of(now);
        if t > self.last_tick {
            let add = (t - self.last_tick).saturating_mul(self.per_tick as u64);
            let add = add.min(i64::MAX as u64) as i64;
            self.tokens = self.tokens.saturating_add(add).min(self.burst);
            self.last_tick = t;
        }
    }

    pub(crate) fn allowance(&self) -> usize {
        self.tokens.max(0) as usize
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.tokens = self.tokens.saturating_sub(n.min(i64::MAX as usize) as i64);
    }

    /// When the next refill happens.
    pub(crate) fn next_tick(&self) -> Instant {
        let ns = self.tick.as_nanos() * (self.last_tick as u128 + 1);
        self.origin + Duration::from_nanos(ns.min(u64::MAX as u128) as u64)
    }
}

/// A stream's own read and write buckets.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    pub(crate) read: Bucket,
    pub(crate) write: Bucket,
}

impl Limiter {
    pub(crate) fn new(l: &RateLimit, now: Instant) -> Limiter {
        Limiter {
            read: Bucket::new(l.read_burst, l.read_per_tick(), l.tick_len(), now),
            write: Bucket::new(l.write_burst, l.write_per_tick(), l.tick_len(), now),
        }
    }
}

pub(crate) struct GroupInner {
    pub(crate) limiter: Limiter,
    pub(crate) min_share: usize,
    pub(crate) members: usize,
    pub(crate) next_id: u64,
    pub(crate) total_read: u64,
    pub(crate) total_written: u64,
}

impl GroupInner {
    /// What member `id` may move now: an equal share of the bucket, nothing while it is
    /// empty (libevent's group semantics). When the bucket holds less than a minimum share
    /// per member, only as many members as it has minimum shares for get one this tick,
    /// and which ones rotates from tick to tick, so none is starved.
    pub(crate) fn share(&mut self, read: bool, now: Instant, id: u64) -> usize {
        let b = if read {
            &mut self.limiter.read
        } else {
            &mut self.limiter.write
        };
        b.refill(now);
        let have = b.allowance();
        let tick = b.last_tick;
        if have == 0 {
            return 0;
        }
        let members = self.members.max(1);
        let even = have / members;
        if even >= self.min_share || self.min_share == 0 {
            return even;
        }
        let served = (have / self.min_share).max(1) as u64;
        if id.wrapping_add(tick) % (members as u64) < served {
            self.min_share
        } else {
            0
        }
    }
}

/// A rate-limit group: streams that share one pair of buckets (libevent's
/// `bufferevent_rate_limit_group`). Each member reads or writes at most an equal share of
/// what the group has at a time, and at most what its own limit allows: the lower limit
/// wins. When the bucket holds less than the minimum share (default 64 bytes) per member,
/// members get a minimum share in turn, rotating tick by tick, so none is starved. A stream is in at most one group and
/// leaves it when dropped. Cloning gives another handle to the same group.
///
/// ```
/// use evnet::bufio::{RateGroup, RateLimit};
///
/// let g = RateGroup::new(RateLimit::symmetric(100_000, 10_000));
/// assert_eq!(g.read_allowance(), 10_000); // buckets start full
/// g.decrement_read(4_000);
/// assert_eq!(g.read_allowance(), 6_000);
/// assert_eq!(g.totals(), (0, 0));
/// ```
#[derive(Clone)]
pub struct RateGroup {
    pub(crate) inner: Rc<RefCell<GroupInner>>,
}

impl std::fmt::Debug for RateGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.inner.borrow();
        f.debug_struct("RateGroup")
            .field("members", &g.members)
            .field("read_tokens", &g.limiter.read.tokens)
            .field("write_tokens", &g.limiter.write.tokens)
            .finish()
    }
}

/// The minimum share of a group member, in bytes: the least a member may move at a time
/// while the group has any tokens.
const MIN_SHARE: usize = 64;

impl RateGroup {
    /// A group with `limit`, full buckets and the default minimum share.
    pub fn new(limit: RateLimit) -> RateGroup {
        RateGroup {
            inner: Rc::new(RefCell::new(GroupInner {
                limiter: Limiter::new(&limit, Instant::now()),
                min_share: MIN_SHARE,
                members: 0,
                next_id: 0,
                total_read: 0,
                total_written: 0,
            })),
        }
    }

    /// How many streams are in the group.
    pub fn members(&self) -> usize {
        self.inner.borrow().members
    }

    /// Bytes read and written by all members since creation or the last reset.
    pub fn totals(&self) -> (u64, u64) {
        let g = self.inner.borrow();
        (g.total_read, g.total_written)
    }

    /// Resets [`totals`](Self::totals) to zero.
    pub fn reset_totals(&self) {
        let mut g = self.inner.borrow_mut();
        g.total_read = 0;
        g.total_written = 0;
    }

    /// Takes `n` bytes from the read bucket by hand (e.g. for bytes read another way).
    pub fn decrement_read(&self, n: usize) {
        self.inner.borrow_mut().limiter.read.consume(n);
    }

    /// Takes `n` bytes from the write bucket by hand.
    pub fn decrement_write(&self, n: usize) {
        self.inner.borrow_mut().limiter.write.consume(n);
    }

    /// Bytes the group's read bucket holds now.
    pub fn read_allowance(&self) -> usize {
        let mut g = self.inner.borrow_mut();
        g.limiter.read.refill(Instant::now());
        g.limiter.read.allowance()
    }

    /// Bytes the group's write bucket holds now.
    pub fn write_allowance(&self) -> usize {
        let mut g = self.inner.borrow_mut();
        g.limiter.write.refill(Instant::now());
        g.limiter.write.allowance()
    }
}

/// A stream's membership; dropping it leaves the group.
pub(crate) struct Membership {
    pub(crate) group: Rc<RefCell<GroupInner>>,
    pub(crate) id: u64,
}

impl Membership {
    pub(crate) fn join(g: &RateGroup) -> Membership {
        let mut inner = g.inner.borrow_mut();
        inner.members += 1;
        let id = inner.next_id;
        inner.next_id += 1;
        Membership {
            group: g.inner.clone(),
            id,
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Ok(mut g) = self.group.try_borrow_mut() {
            g.members = g.members.saturating_sub(1);
        }
    }
}

/// A stream's rate limits: its own buckets and its share of a group.
#[derive(Default)]
pub(crate) struct Rates {
    pub(crate) limit: Option<Limiter>,
    pub(crate) group: Option<Membership>,
}

impl Rates {
    /// What the stream may move now: the lower of its own bucket and its group share.
    pub(crate) fn allowance(&mut self, read: bool, now: Instant) -> usize {
        let mut a = usize::MAX;
        if let Some(l) = &mut self.limit {
            let b = if read { &mut l.read } else { &mut l.write };
            b.refill(now);
            a = a.min(b.allowance());
        }
        if let Some(m) = &self.group {
            if let Ok(mut grp) = m.group.try_borrow_mut() {
                a = a.min(grp.share(read, now, m.id));
            }
        }
        a
    }

    /// Takes `n` moved bytes from the stream's bucket and its group's.
    pub(crate) fn charge(&mut self, read: bool, n: usize) {
        if let Some(l) = &mut self.limit {
            if read {
                l.read.consume(n);
            } else {
                l.write.consume(n);
            }
        }
        if let Some(m) = &self.group {
            if let Ok(mut grp) = m.group.try_borrow_mut() {
                if read {
                    grp.limiter.read.consume(n);
                    grp.total_read += n as u64;
                } else {
                    grp.limiter.write.consume(n);
                    grp.total_written += n as u64;
                }
            }
        }
    }

    /// The earliest refill of any bucket the stream depends on.
    pub(crate) fn next_refill(&self) -> Option<Instant> {
        let own = self
            .limit
            .as_ref()
            .map(|l| l.read.next_tick().min(l.write.next_tick()));
        let grp = self.group.as_ref().and_then(|m| {
            m.group.try_borrow().ok().map(|grp| {
                grp.limiter
                    .read
                    .next_tick()
                    .min(grp.limiter.write.next_tick())
            })
        });
        own.into_iter().chain(grp).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_starts_full_refills_per_tick_and_caps_at_burst() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut b = Bucket::new(1000, 100, ms * 10, t0);
        assert_eq!(b.allowance(), 1000);
        b.consume(1000);
        b.refill(t0 + ms * 9);
        assert_eq!(b.allowance(), 0, "no refill before the first tick boundary");
        b.refill(t0 + ms * 10);
        assert_eq!(b.allowance(), 100);
        b.refill(t0 + ms * 35);
        assert_eq!(b.allowance(), 300);
        b.refill(t0 + ms * 10_000);
        assert_eq!(b.allowance(), 1000, "capped at the burst");
        b.consume(1500);
        assert_eq!(b.allowance(), 0);
        b.refill(t0 + ms * 10_010);
        assert_eq!(b.allowance(), 0, "debt of 500 minus one refill of 100");
        assert_eq!(b.next_tick(), t0 + ms * 10_020);
    }

    #[test]
    fn bytes_moved_per_tick_never_exceed_the_bucket() {
        // A greedy consumer taking everything allowed at random instants: over any prefix,
        // what it took is at most burst + per_tick × ticks elapsed.
        let t0 = Instant::now();
        let tick = Duration::from_millis(5);
        let mut b = Bucket::new(700, 50, tick, t0);
        let mut taken = 0u64;
        let mut x = 12345u64;
        let mut now = t0;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            now += Duration::from_micros(x % 3000);
            b.refill(now);
            let n = b.allowance();
            b.consume(n);
            taken += n as u64;
            let ticks = (now - t0).as_nanos() / tick.as_nanos();
            assert!(taken <= 700 + 50 * ticks as u64);
        }
    }

    #[test]
    fn group_share_is_equal_with_a_minimum() {
        let g = RateGroup::new(RateLimit::symmetric(0, 1000));
        let m: Vec<Membership> = (0..4).map(|_| Membership::join(&g)).collect();
        let now = Instant::now();
        assert_eq!(g.inner.borrow_mut().share(true, now, 0), 250);
        g.decrement_read(870);
        // 130 left: two minimum shares of 64 for four members; two get one.
        let shares: Vec<usize> = m
            .iter()
            .map(|x| g.inner.borrow_mut().share(true, now, x.id))
            .collect();
        assert_eq!(shares.iter().filter(|&&s| s == 64).count(), 2, "{shares:?}");
        assert_eq!(shares.iter().filter(|&&s| s == 0).count(), 2, "{shares:?}");
        g.inner.borrow_mut().min_share = 0;
        assert_eq!(g.inner.borrow_mut().share(true, now, 0), 32);
        drop(m);
        assert_eq!(g.members(), 0, "dropping memberships leaves the group");
    }

    #[test]
    fn scarce_group_tokens_rotate_among_members_tick_by_tick() {
        // Each tick refills one minimum share for four members: over 400 ticks each
        // member is the one served on about a quarter of them.
        let t0 = Instant::now();
        let tick = Duration::from_millis(1);
        let g = RateGroup::new(RateLimit::symmetric(64_000, 64).tick(tick));
        g.inner.borrow_mut().limiter = Limiter {
            read: Bucket::new(64, 64, tick, t0),
            write: Bucket::new(64, 64, tick, t0),
        };
        let m: Vec<Membership> = (0..4).map(|_| Membership::join(&g)).collect();
        let mut served = [0usize; 4];
        for t in 1..=400u32 {
            let now = t0 + tick * t;
            for (i, x) in m.iter().enumerate() {
                let mut inner = g.inner.borrow_mut();
                let s = inner.share(true, now, x.id);
                if s > 0 {
                    inner.limiter.read.consume(s);
                    served[i] += 1;
                }
            }
        }
        assert!(
            served.iter().all(|&n| (90..=110).contains(&n)),
            "{served:?}"
        );
    }
}

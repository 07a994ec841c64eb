//! The fd cache (libev's `anfds` and `fd_reify`): which io watchers are active on each fd
//! and with what interest, what epoll has registered for it, and the lazy application of
//! interest changes before each poll, so a stop/start within one turn costs no `epoll_ctl`.

use std::os::fd::RawFd;

use super::event::{R_ERROR, R_READ, R_WRITE};
use super::meter::Counters;
use super::{IoInterest, WatcherId};
use crate::sys::{self, Epoll};

/// What epoll has registered for an fd whose number may have been reused: unknown.
const UNKNOWN: u32 = u32::MAX;

/// Per-fd bookkeeping.
#[derive(Debug, Default)]
struct FdEntry {
    /// The started io watchers on this fd, with their interest.
    active: Vec<(WatcherId, IoInterest)>,
    /// io watchers on this fd, started or not; at zero the fd is deregistered eagerly.
    watchers: u32,
    /// What epoll has for this fd (`UNKNOWN` for a new or reused number).
    registered: u32,
    /// Queued in `dirty` for the next [`FdCache::reify`].
    dirty: bool,
}

impl FdEntry {
    /// The epoll bits the active watchers want.
    fn wanted(&self) -> u32 {
        let mut want = 0;
        for (_, interest) in &self.active {
            if interest.is_readable() {
                want |= sys::EV_READ;
            }
            if interest.is_writable() {
                want |= sys::EV_WRITE;
            }
        }
        want
    }
}

/// Every fd's entry, indexed by fd number, and the fds whose interest changed this turn.
#[derive(Debug, Default)]
pub(super) struct FdCache {
    entries: Vec<FdEntry>,
    dirty: Vec<RawFd>,
}

impl FdCache {
    fn entry(&mut self, fd: RawFd) -> &mut FdEntry {
        let i = fd as usize;
        if self.entries.len() <= i {
            self.entries.resize_with(i + 1, FdEntry::default);
        }
        &mut self.entries[i]
    }

    fn mark_dirty(&mut self, fd: RawFd) {
        let e = self.entry(fd);
        if !e.dirty {
            e.dirty = true;
            self.dirty.push(fd);
        }
    }

    /// An io watcher was created on `fd`. The first one on a number makes epoll's
    /// registration unknown: the fd is new, or an old number reused.
    pub(super) fn watcher_added(&mut self, fd: RawFd) {
        let e = self.entry(fd);
        e.watchers += 1;
        if e.watchers == 1 {
            e.registered = UNKNOWN;
        }
    }

    /// An io watcher on `fd` was removed (stopped first). With the last one gone the fd is
    /// deregistered now, since the caller may close it next.
    pub(super) fn watcher_removed(&mut self, fd: RawFd, epoll: &Epoll, counters: &mut Counters) {
        let e = self.entry(fd);
        e.watchers -= 1;
        if e.watchers == 0 {
            e.registered = 0;
            counters.ctl();
            let _ = epoll.delete(fd);
        }
    }

    /// Watcher `w` on `fd` started with `interest`.
    pub(super) fn started(&mut self, fd: RawFd, w: WatcherId, interest: IoInterest) {
        self.entry(fd).active.push((w, interest));
        self.mark_dirty(fd);
    }

    /// Watcher `w` on `fd` stopped.
    pub(super) fn stopped(&mut self, fd: RawFd, w: WatcherId) {
        self.entry(fd).active.retain(|(x, _)| *x != w);
        self.mark_dirty(fd);
    }

    /// Active watcher `w` on `fd` changed its interest.
    pub(super) fn changed(&mut self, fd: RawFd, w: WatcherId, interest: IoInterest) {
        if let Some(a) = self.entry(fd).active.iter_mut().find(|(x, _)| *x == w) {
            a.1 = interest;
        }
        self.mark_dirty(fd);
    }

    /// Whether an interest changed since the last [`reify`](FdCache::reify).
    pub(super) fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Applies interest changes to epoll. An fd nobody wants any more stays registered
    /// (lazily), so a stop followed by a start in the next turn costs no syscall; if it
    /// reports readiness meanwhile it is disarmed then. An fd epoll refuses (closed,
    /// invalid) is reported to its watchers as an error through `queue`.
    pub(super) fn reify(
        &mut self,
        epoll: &Epoll,
        counters: &mut Counters,
        mut queue: impl FnMut(WatcherId, u8),
    ) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &fd in &dirty {
            let e = &mut self.entries[fd as usize];
            e.dirty = false;
            let want = e.wanted();
            if want != 0 && want != e.registered {
                let fresh = e.registered == UNKNOWN || e.registered == 0;
                e.registered = want;
                counters.ctl();
                let r = if fresh {
                    epoll.add(fd, want, fd as u64)
                } else {
                    epoll.set(fd, want, fd as u64)
                };
                if r.is_err() {
                    e.registered = 0;
                    self.ready(fd, sys::EV_ERR, epoll, counters, &mut queue);
                }
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// epoll reported `bits` for `fd`: queues each active watcher that wants some of it
    /// (with the error bit when epoll reported one). Readiness nobody wants (a lazily kept
    /// registration) is disarmed now.
    pub(super) fn ready(
        &mut self,
        fd: RawFd,
        bits: u32,
        epoll: &Epoll,
        counters: &mut Counters,
        mut queue: impl FnMut(WatcherId, u8),
    ) {
        let Some(e) = self.entries.get_mut(fd as usize) else {
            return;
        };
        let mut got = 0;
        let err = bits & sys::EV_ERR != 0;
        if bits & sys::EV_READ != 0 || err {
            got |= R_READ;
        }
        if bits & sys::EV_WRITE != 0 || err {
            got |= R_WRITE;
        }
        let mut matched = false;
        for &(w, interest) in &e.active {
            let ready = got & interest.bits();
            if ready != 0 {
                matched = true;
                queue(w, ready | if err { R_ERROR } else { 0 });
            }
        }
        if !matched {
            let want = e.wanted();
            if e.registered != want {
                counters.ctl();
                let r = if want == 0 {
                    epoll.delete(fd)
                } else {
                    epoll.set(fd, want, fd as u64)
                };
                e.registered = if r.is_ok() { want } else { 0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;
    use crate::sys::Events;

    const W: WatcherId = WatcherId {
        index: 7,
        version: 0,
    };

    /// What one non-blocking poll reports for `fd`.
    fn polled(epoll: &Epoll, fd: RawFd) -> u32 {
        let mut events = Events::with_capacity(8);
        epoll.wait(&mut events, Some(Duration::ZERO)).unwrap();
        let mut bits = 0;
        let mut i = 0;
        while let Some(r) = events.get(i) {
            i += 1;
            if r.token == fd as u64 {
                bits |= r.bits;
            }
        }
        bits
    }

    /// A fresh socket (writable, not readable), an epoll, and a cache with watcher `W`
    /// started on the socket with `interest` and applied.
    struct Rig {
        _pair: (UnixStream, UnixStream),
        fd: RawFd,
        epoll: Epoll,
        counters: Counters,
        cache: FdCache,
    }

    fn rig(interest: IoInterest) -> Rig {
        let pair = UnixStream::pair().unwrap();
        let fd = pair.0.as_raw_fd();
        let mut r = Rig {
            _pair: pair,
            fd,
            epoll: Epoll::new().unwrap(),
            counters: Counters::default(),
            cache: FdCache::default(),
        };
        r.cache.watcher_added(fd);
        r.cache.started(fd, W, interest);
        r.cache.reify(&r.epoll, &mut r.counters, |_, _| {
            panic!("no error expected")
        });
        r
    }

    #[test]
    fn an_interest_change_of_an_active_watcher_reaches_epoll() {
        let Rig {
            fd,
            epoll,
            mut counters,
            mut cache,
            _pair: _open,
        } = rig(IoInterest::READABLE);
        assert_eq!(polled(&epoll, fd) & sys::EV_WRITE, 0);

        cache.changed(fd, W, IoInterest::WRITABLE);
        assert!(cache.has_changes());
        cache.reify(&epoll, &mut counters, |_, _| panic!("no error expected"));
        let bits = polled(&epoll, fd);
        assert_ne!(
            bits & sys::EV_WRITE,
            0,
            "the new interest was not registered"
        );
        let mut queued = Vec::new();
        cache.ready(fd, bits, &epoll, &mut counters, |w, r| queued.push((w, r)));
        assert_eq!(queued, [(W, R_WRITE)]);
        assert_eq!(counters.ctl_calls(), 2);
    }

    #[test]
    fn a_stop_and_start_in_one_turn_costs_no_epoll_ctl() {
        let Rig {
            fd,
            epoll,
            mut counters,
            mut cache,
            _pair: _open,
        } = rig(IoInterest::WRITABLE);
        cache.stopped(fd, W);
        cache.started(fd, W, IoInterest::WRITABLE);
        cache.reify(&epoll, &mut counters, |_, _| {});
        assert_eq!(counters.ctl_calls(), 1);
    }

    #[test]
    fn readiness_nobody_wants_is_disarmed_once_and_not_reported() {
        let Rig {
            fd,
            epoll,
            mut counters,
            mut cache,
            _pair: _open,
        } = rig(IoInterest::WRITABLE);
        cache.stopped(fd, W);
        // Lazily kept: the stop cost nothing, and epoll still reports the fd.
        cache.reify(&epoll, &mut counters, |_, _| {});
        assert_eq!(counters.ctl_calls(), 1);
        let bits = polled(&epoll, fd);
        assert_ne!(bits, 0);
        cache.ready(fd, bits, &epoll, &mut counters, |_, _| {
            panic!("a stopped watcher was queued")
        });
        assert_eq!(counters.ctl_calls(), 2);
        assert_eq!(polled(&epoll, fd), 0, "the registration was not disarmed");
    }

    #[test]
    fn an_fd_epoll_refuses_is_reported_to_its_watchers_as_an_error() {
        // A regular file cannot be polled: epoll_ctl fails with EPERM.
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        let fd = file.as_raw_fd();
        let epoll = Epoll::new().unwrap();
        let mut counters = Counters::default();
        let mut cache = FdCache::default();
        cache.watcher_added(fd);
        cache.started(fd, W, IoInterest::READABLE);
        let mut queued = Vec::new();
        cache.reify(&epoll, &mut counters, |w, r| queued.push((w, r)));
        assert_eq!(queued, [(W, R_READ | R_ERROR)]);
    }
}

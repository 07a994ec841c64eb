//! The fd cache (libev's `anfds` and `fd_reify`): which io watchers are active on each fd,
//! what epoll has registered for it, and the lazy application of interest changes before
//! each poll, so a stop/start within one turn costs no `epoll_ctl`.

use std::os::fd::RawFd;

use super::event::{R_ERROR, R_READ, R_WRITE};
use super::loop_logic::{Ctx, Kind, Slot, UNKNOWN};
use super::WatcherId;
use crate::sys;

/// Per-fd bookkeeping: which io watchers are active on it and what epoll has registered.
#[derive(Debug, Default)]
pub(super) struct FdEntry {
    pub(super) active: Vec<WatcherId>,
    /// io watchers on this fd, started or not; at zero the fd is deregistered eagerly.
    pub(super) watchers: u32,
    pub(super) registered: u32,
    pub(super) dirty: bool,
}

impl<S> Ctx<S> {
    pub(super) fn fd_entry(&mut self, fd: RawFd) -> &mut FdEntry {
        let i = fd as usize;
        if self.fds.len() <= i {
            self.fds.resize_with(i + 1, FdEntry::default);
        }
        &mut self.fds[i]
    }

    pub(super) fn mark_dirty(&mut self, fd: RawFd) {
        let e = self.fd_entry(fd);
        if !e.dirty {
            e.dirty = true;
            self.dirty_fds.push(fd);
        }
    }

    /// Applies io interest changes to epoll. An fd nobody wants any more stays registered
    /// (lazily), so a stop followed by a start in the next turn costs no syscall; if it
    /// reports readiness meanwhile it is disarmed then.
    pub(super) fn reify(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty_fds);
        for &fd in &dirty {
            let want = self.wanted(fd);
            let e = &mut self.fds[fd as usize];
            e.dirty = false;
            if want != 0 && want != e.registered {
                let fresh = e.registered == UNKNOWN || e.registered == 0;
                e.registered = want;
                self.counters.ctl();
                let r = if fresh {
                    self.epoll.add(fd, want, fd as u64)
                } else {
                    self.epoll.set(fd, want, fd as u64)
                };
                if r.is_err() {
                    // A closed or invalid fd: report it to its watchers as an error.
                    self.fds[fd as usize].registered = 0;
                    self.queue_fd(fd, sys::EV_ERR);
                }
            }
        }
        dirty.clear();
        self.dirty_fds = dirty;
    }

    pub(super) fn wanted(&self, fd: RawFd) -> u32 {
        let mut want = 0;
        for &w in &self.fds[fd as usize].active {
            if let Some(Slot {
                kind: Kind::Io { interest, .. },
                ..
            }) = self.slot(w)
            {
                if interest.is_readable() {
                    want |= sys::EV_READ;
                }
                if interest.is_writable() {
                    want |= sys::EV_WRITE;
                }
            }
        }
        want
    }

    pub(super) fn queue_fd(&mut self, fd: RawFd, bits: u32) {
        let Some(e) = self.fds.get(fd as usize) else {
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
        for i in 0..e.active.len() {
            let w = self.fds[fd as usize].active[i];
            let Some(Slot {
                kind: Kind::Io { interest, .. },
                ..
            }) = self.slot(w)
            else {
                continue;
            };
            let ready = got & interest.bits();
            if ready != 0 {
                matched = true;
                self.queue(w, ready | if err { R_ERROR } else { 0 });
            }
        }
        if !matched {
            // Readiness nobody wants (a lazily kept registration): disarm it now.
            let want = self.wanted(fd);
            let e = &mut self.fds[fd as usize];
            if e.registered != want {
                self.counters.ctl();
                let r = if want == 0 {
                    self.epoll.delete(fd)
                } else {
                    self.epoll.set(fd, want, fd as u64)
                };
                e.registered = if r.is_ok() { want } else { 0 };
            }
        }
    }
}

//! The loop's signal state: one signalfd (or, with the portable backend, one self-pipe)
//! for every signal its watchers take, and which watchers want which signal.

use std::io;
use std::os::fd::RawFd;

use super::sys_signal::{self, Saved, SignalFd};
use super::WatcherId;

/// Signals a loop has claimed (blocked in its thread, forwarded there, read through one
/// signalfd) and its active signal watchers.
#[derive(Debug)]
pub(super) struct Signals {
    fd: SignalFd,
    claimed: Vec<(i32, Saved)>,
    active: Vec<(i32, WatcherId)>,
}

impl Signals {
    pub(super) fn new() -> io::Result<Signals> {
        Ok(Signals {
            fd: SignalFd::new(&[])?,
            claimed: Vec::new(),
            active: Vec::new(),
        })
    }

    pub(super) fn raw(&self) -> RawFd {
        self.fd.raw()
    }

    /// Takes `sig` for this loop (once; it stays claimed until the loop is dropped).
    pub(super) fn claim(&mut self, sig: i32) -> io::Result<()> {
        if self.claimed.iter().any(|(s, _)| *s == sig) {
            return Ok(());
        }
        let saved = sys_signal::claim(sig, &self.fd)?;
        self.claimed.push((sig, saved));
        let all: Vec<i32> = self.claimed.iter().map(|(s, _)| *s).collect();
        self.fd.set(&all)
    }

    pub(super) fn start(&mut self, sig: i32, w: WatcherId) {
        self.active.push((sig, w));
    }

    pub(super) fn stop(&mut self, w: WatcherId) {
        self.active.retain(|(_, x)| *x != w);
    }

    /// Reads every pending signal and adds the watchers it fires to `out`. A signal with
    /// no active watcher is consumed and dropped, as libev does.
    pub(super) fn collect(&mut self, out: &mut Vec<WatcherId>) {
        while let Some(sig) = self.fd.read() {
            out.extend(
                self.active
                    .iter()
                    .filter(|(s, _)| *s == sig)
                    .map(|(_, w)| *w),
            );
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for (sig, saved) in &self.claimed {
            sys_signal::release(*sig, saved);
        }
    }
}

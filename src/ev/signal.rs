//! The loop's signal state: one signalfd (or, with the portable backend, one self-pipe)
//! for every signal its watchers take, and which watchers want which signal.

use std::io;
use std::os::fd::RawFd;

use super::WatcherId;
use crate::sys::signal::{self as sys_signal, Saved, SignalFd};

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
        // Eight signalfd records, or 1,024 pipe bytes: as many as a turn can see.
        let mut buf = [0u8; 1024];
        loop {
            let n = self.fd.read(&mut buf);
            if n == 0 {
                return;
            }
            let Some(bytes) = buf.get(..n) else { return };
            fire(&self.active, decode(bytes), out);
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

/// The signal numbers in what the loop's signal fd gave: whole records of a signalfd, or
/// the bytes of the portable backend's self-pipe.
#[cfg(not(evnet_portable))]
fn decode(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    from_signalfd(bytes)
}

#[cfg(evnet_portable)]
fn decode(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    from_pipe(bytes)
}

/// The watchers each of `signals` fires, in order (a signal nobody watches fires none).
pub(crate) fn fire(
    active: &[(i32, WatcherId)],
    signals: impl Iterator<Item = i32>,
    out: &mut Vec<WatcherId>,
) {
    for sig in signals {
        out.extend(active.iter().filter(|(s, _)| *s == sig).map(|(_, w)| *w));
    }
}

/// The size of a `signalfd_siginfo` record, as the kernel fixes it.
pub(crate) const SIGNALFD_RECORD: usize = 128;

/// The signals in a signalfd's output: `ssi_signo`, the first four bytes of each whole
/// 128-byte record in native byte order; a trailing partial record is ignored.
#[cfg_attr(evnet_portable, allow(dead_code))] // the portable backend reads a pipe
pub(crate) fn from_signalfd(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    bytes.chunks_exact(SIGNALFD_RECORD).filter_map(|r| {
        let signo: [u8; 4] = r.get(..4)?.try_into().ok()?;
        i32::try_from(u32::from_ne_bytes(signo)).ok()
    })
}

/// The signals the self-pipe's handler wrote: one byte each, the signal's number (0 is no
/// signal).
#[cfg_attr(not(evnet_portable), allow(dead_code))] // tests and fuzzing use it on Linux
pub(crate) fn from_pipe(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    bytes.iter().filter(|&&b| b != 0).map(|&b| i32::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signalfd_records_and_pipe_bytes_decode_to_signal_numbers() {
        let mut rec = vec![0u8; 2 * SIGNALFD_RECORD + 5];
        rec[..4].copy_from_slice(&15u32.to_ne_bytes());
        rec[SIGNALFD_RECORD..SIGNALFD_RECORD + 4].copy_from_slice(&2u32.to_ne_bytes());
        assert_eq!(from_signalfd(&rec).collect::<Vec<_>>(), [15, 2]);
        assert_eq!(from_pipe(&[1, 0, 15]).collect::<Vec<_>>(), [1, 15]);
        let w = |i| WatcherId {
            index: i,
            version: 0,
        };
        let mut out = Vec::new();
        fire(
            &[(15, w(1)), (2, w(2)), (15, w(3))],
            [15, 9].into_iter(),
            &mut out,
        );
        assert_eq!(out, [w(1), w(3)]);
    }
}

//! One turn of the loop, libev's order: prepare callbacks, apply interest changes, poll
//! (once), collect wakes and signals, expire timers, check callbacks, pending callbacks,
//! idle callbacks when nothing else ran.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::event::{Event, R_FIRED};
use super::loop_logic::{Ctx, Kind, Slot, SIGNAL_TOKEN, WAKE_TOKEN};
use super::phases::Phase;
use super::slab::Slab;
use super::WatcherId;

impl<S> Ctx<S> {
    // ----- one turn ------------------------------------------------------------------

    pub(super) fn run_phase(&mut self, state: &mut S, which: Phase) {
        let mut list = std::mem::take(&mut self.scratch);
        list.clear();
        list.extend_from_slice(self.phases.list(which));
        for &w in &list {
            // A watcher stopped or removed by an earlier callback of this phase is skipped.
            if self.is_active(w) {
                self.dispatch(
                    state,
                    w,
                    Event {
                        watcher: w,
                        ready: R_FIRED,
                        due: None,
                    },
                );
            }
        }
        self.scratch = list;
    }

    pub(super) fn dispatch(&mut self, state: &mut S, w: WatcherId, ev: Event) {
        let Some(mut cb) = self.slab[w].cb.take() else {
            return;
        };
        self.meter.callback(w);
        cb(state, self, ev);
        self.epoch += 1;
        // The watcher may have been removed (and its slot reused) by its own callback.
        if let Some(s) = self.slot_mut(w) {
            if s.cb.is_none() {
                s.cb = Some(cb);
            }
        }
    }

    pub(super) fn queue(&mut self, w: WatcherId, ready: u8) {
        queue(&mut self.slab, &mut self.pending, w, ready);
    }

    /// One turn, in libev's order.
    pub(super) fn turn(&mut self, state: &mut S, block: bool) -> io::Result<()> {
        self.counters.turned();
        self.apply_removals();
        if !self.phases.is_empty(Phase::Prepare) {
            self.run_phase(state, Phase::Prepare);
        }
        if self.fds.has_changes() {
            let (slab, pending) = (&mut self.slab, &mut self.pending);
            self.fds.reify(&self.epoll, &mut self.counters, |w, ready| {
                queue(slab, pending, w, ready)
            });
        }
        let timeout = self.poll_timeout(block);
        self.poll(timeout)?;
        if self.live_timers > 0 {
            self.expire_timers();
        }
        if !self.phases.is_empty(Phase::Check) {
            self.run_phase(state, Phase::Check);
        }
        let ran = self.run_pending(state);
        if !ran && !self.phases.is_empty(Phase::Idle) {
            self.run_phase(state, Phase::Idle);
        }
        Ok(())
    }

    /// How long the poll may sleep: not at all when anything is already due, otherwise
    /// until the next timer (forever without one).
    fn poll_timeout(&mut self, block: bool) -> Option<Duration> {
        // Nothing active (e.g. a prepare callback removed the last watchers): nothing could
        // ever end a sleep, so only look.
        if !block
            || self.stop
            || self.active == 0
            || !self.phases.is_empty(Phase::Idle)
            || !self.pending.is_empty()
            || self.wake_raised_before_sleep()
        {
            return Some(Duration::ZERO);
        }
        let slots = &self.slab;
        let live = |w, seq| timer_live(slots, w, seq);
        let due = match (self.timers.next_due(live), self.deadline) {
            (Some(t), Some(d)) => Some(t.min(d)),
            (t, d) => t.or(d),
        };
        // This poll may sleep: the turn's work ends before it.
        let now = Instant::now();
        self.meter.end(now);
        due.map(|due| due.saturating_duration_since(now))
    }

    /// The one syscall of the turn, then its reports queued: io watchers, wakes, signals.
    fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.counters.polled();
        let r = self.epoll.wait(&mut self.events, timeout);
        self.now = Instant::now();
        self.meter.poll_returned(self.now);
        r?;
        let mut efd_ready = false;
        let mut signal_ready = false;
        let mut i = 0;
        while let Some(ready) = self.events.get(i) {
            i += 1;
            if ready.token == WAKE_TOKEN {
                efd_ready = true;
            } else if ready.token == SIGNAL_TOKEN {
                signal_ready = true;
            } else {
                let (slab, pending) = (&mut self.slab, &mut self.pending);
                self.fds.ready(
                    ready.token as RawFd,
                    ready.bits,
                    &self.epoll,
                    &mut self.counters,
                    |w, ready| queue(slab, pending, w, ready),
                );
            }
        }
        if let Some(sh) = &self.wake {
            sh.wanted.store(false, Ordering::SeqCst);
            if efd_ready || sh.skipped.load(Ordering::SeqCst) {
                self.collect_wakes(efd_ready);
            }
        }
        if signal_ready {
            self.collect_signals();
        }
        Ok(())
    }

    /// Runs every queued callback (io, timer, wake, signal); returns whether any ran.
    fn run_pending(&mut self, state: &mut S) -> bool {
        let mut ran = false;
        while let Some(w) = self.pending.pop_front() {
            let Some(s) = self.slot_mut(w) else { continue };
            let ready = std::mem::take(&mut s.pending);
            if ready == 0 {
                continue; // stopped after it was queued
            }
            let due = s.due;
            ran = true;
            self.dispatch(
                state,
                w,
                Event {
                    watcher: w,
                    ready,
                    due,
                },
            );
        }
        ran
    }

    /// Before a poll that may sleep: tells wakers to write the eventfd from now on, then
    /// checks whether one already raised a wake without writing (libev's
    /// `pipe_write_wanted` / `pipe_write_skipped`; see `wake.rs`).
    pub(super) fn wake_raised_before_sleep(&self) -> bool {
        self.wake.as_ref().is_some_and(|sh| {
            sh.wanted.store(true, Ordering::SeqCst);
            sh.skipped.load(Ordering::SeqCst)
        })
    }

    pub(super) fn collect_signals(&mut self) {
        let mut fired = std::mem::take(&mut self.scratch);
        fired.clear();
        if let Some(sg) = &mut self.signals {
            sg.collect(&mut fired);
        }
        for &w in &fired {
            self.queue(w, R_FIRED);
        }
        fired.clear();
        self.scratch = fired;
    }

    pub(super) fn collect_wakes(&mut self, efd_ready: bool) {
        if let Some(sh) = &self.wake {
            if efd_ready {
                sh.efd.drain();
            }
            // Wakes raised after this store set it again and are collected next turn.
            sh.skipped.store(false, Ordering::SeqCst);
        }
        for i in 0..self.phases.list(Phase::Wake).len() {
            let w = self.phases.list(Phase::Wake)[i];
            let raised = match self.slot(w) {
                Some(Slot {
                    kind: Kind::Wake { flag },
                    ..
                }) => flag.swap(false, Ordering::AcqRel),
                _ => false,
            };
            if raised {
                self.queue(w, R_FIRED);
            }
        }
    }

    pub(super) fn expire_timers(&mut self) {
        let now = self.now;
        loop {
            let slots = &self.slab;
            let live = |w, seq| timer_live(slots, w, seq);
            let Some((w, due)) = self.timers.pop_expired(now, live) else {
                break;
            };
            let s = &mut self.slab[w];
            let Kind::Timer { repeat, seq, .. } = &mut s.kind else {
                continue;
            };
            match *repeat {
                Some(rep) if !rep.is_zero() => {
                    // Keep the cadence; if the loop fell behind, restart from now.
                    let mut next = super::later(due, rep);
                    if next <= now {
                        next = super::later(now, rep);
                    }
                    *seq = self.timers.push(next, w);
                }
                _ => {
                    *seq = 0;
                    s.active = false;
                    self.active -= 1;
                    self.live_timers -= 1;
                }
            }
            // The callback sees the deadline it fired for.
            s.due = Some(due);
            self.queue(w, R_FIRED);
        }
        let live_count = self.live_timers;
        let slots = &self.slab;
        self.timers
            .compact(live_count, |w, seq| timer_live(slots, w, seq));
    }
}

/// Whether heap entry `seq` is the live schedule of timer `w`.
pub(super) fn timer_live<S>(slots: &Slab<S>, w: WatcherId, seq: u64) -> bool {
    matches!(
        slots.get(w),
        Some(Slot { kind: Kind::Timer { seq: s, .. }, active: true, version, .. })
            if *s == seq && *version == w.version
    )
}

/// Queues `w` (unless stale) with `ready`, once per turn: a second report ORs its bits in.
fn queue<S>(slab: &mut Slab<S>, pending: &mut VecDeque<WatcherId>, w: WatcherId, ready: u8) {
    if let Some(s) = slab.get_mut(w) {
        let first = s.pending == 0;
        s.pending |= ready;
        if first {
            pending.push_back(w);
        }
    }
}

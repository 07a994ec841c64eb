//! The loop: the watcher table and the [`Ctx`] every callback receives (creating watchers
//! is in `create.rs`, one turn in `turn.rs`, the fd cache in `fdcache.rs`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::event::{Event, IoInterest};
use super::fdcache::FdCache;
use super::meter::{Counters, Meter, Stats};
use super::phases::{Phase, Phases};
use super::remover::{Removals, Remover};
use super::signal::Signals;
use super::slab::Slab;
use super::timer::TimerHeap;
use super::wake::WakeShared;
use super::WatcherId;
use crate::sys::{self, Epoll, Events};

/// The callback every watcher carries: shared state, the loop context, and what happened.
pub(super) type Callback<S> = Box<dyn FnMut(&mut S, &mut Ctx<S>, Event)>;

/// The epoll token of the loop's own eventfd; fds use their own number as token.
pub(super) const WAKE_TOKEN: u64 = u64::MAX;
/// The epoll token of the loop's signalfd.
pub(super) const SIGNAL_TOKEN: u64 = u64::MAX - 1;
/// epoll's registration for an fd is unknown (a new watcher may reuse an old fd number).
/// Readiness reports taken per poll (libev's initial epoll batch; tokio polls its driver
/// every 61 tasks for the same reason). With more fds ready than this, the rest are served
/// after the next poll: level-triggered, the kernel keeps them, and it moves the reported
/// ones to the back of its ready list, so every fd comes round. A larger batch serves every
/// ready connection before looking again, and a request that arrives just after a poll then
/// waits almost two turns: 100 busy TLS echo connections had a p99 1.2–1.5× tokio-rustls's
/// with 256, 0.96–1.02× with 64 (`benches/tls`, docs/benchmarks.md).
const EVENTS_PER_POLL: usize = 64;
/// Loop identities, so services built on a loop can refuse another loop's context.
static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub(super) enum Kind {
    Free,
    Io {
        fd: RawFd,
        interest: IoInterest,
    },
    Timer {
        after: Duration,
        repeat: Option<Duration>,
        seq: u64,
    },
    Prepare,
    Check,
    Idle,
    Wake {
        flag: Arc<AtomicBool>,
    },
    Signal {
        signo: i32,
    },
}

impl Kind {
    /// A watcher that never ends by itself: a signal watcher, a repeating timer.
    fn is_perpetual(&self) -> bool {
        match self {
            Kind::Signal { .. } => true,
            Kind::Timer { repeat, .. } => repeat.is_some_and(|r| !r.is_zero()),
            _ => false,
        }
    }
}

pub(super) struct Slot<S> {
    pub(super) version: u32,
    pub(super) kind: Kind,
    pub(super) active: bool,
    /// Readiness bits queued for the callback; zero when not pending.
    pub(super) pending: u8,
    pub(super) due: Option<Instant>,
    pub(super) cb: Option<Callback<S>>,
}

/// The loop context: everything a callback may do to the loop.
///
/// Every callback receives `&mut Ctx<S>` next to the shared `&mut S`, so it can create,
/// start, stop or remove any watcher (its own included), change io interest, read the
/// cached time, or stop the loop. [`Loop`] dereferences to `Ctx`, so the same methods set
/// the loop up before it runs.
pub struct Ctx<S> {
    pub(super) id: u64,
    pub(super) removals: Rc<RefCell<Removals<S>>>,
    pub(super) slab: Slab<S>,
    pub(super) epoll: Epoll,
    pub(super) events: Events,
    pub(super) fds: FdCache,
    pub(super) timers: TimerHeap,
    pub(super) live_timers: usize,
    pub(super) phases: Phases,
    pub(super) wake: Option<Arc<WakeShared>>,
    pub(super) signals: Option<Signals>,
    pub(super) pending: VecDeque<WatcherId>,
    pub(super) scratch: Vec<WatcherId>,
    pub(super) active: usize,
    /// Of the active watchers, those that never end by themselves (signal watchers and
    /// repeating timers): they do not keep a shutting-down loop running.
    pub(super) perpetual: usize,
    pub(super) now: Instant,
    pub(super) stop: bool,
    /// Set by [`Ctx::shutdown`]: `run` returns at this time at the latest.
    pub(super) deadline: Option<Instant>,
    pub(super) counters: Counters,
    /// Turn durations and the slowest callback, for [`Stats`].
    pub(super) meter: Meter,
    /// Moves whenever code other than the loop's own could have run on this thread: after
    /// every callback, on every entry into a `run*` method (the caller ran in between),
    /// around `run_until`'s `done`, and when removals drop watchers or run deferred work.
    /// Two equal readings mean no application code ran between them.
    pub(super) epoch: u64,
}

/// A single-threaded, libev-style event loop over state `S`.
///
/// See the [module docs](super) for the turn order and the callback model.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use evnet::ev::Loop;
///
/// let mut ev = Loop::<Vec<&str>>::new()?;
/// ev.timer(Duration::from_millis(2), None, |log, _cx, _e| log.push("second"));
/// ev.timer(Duration::from_millis(1), None, |log, _cx, _e| log.push("first"));
/// let mut log = Vec::new();
/// ev.run(&mut log)?; // returns when no watcher is active any more
/// assert_eq!(log, ["first", "second"]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Loop<S> {
    pub(super) ctx: Ctx<S>,
}

impl<S> Deref for Loop<S> {
    type Target = Ctx<S>;
    fn deref(&self) -> &Ctx<S> {
        &self.ctx
    }
}

impl<S> DerefMut for Loop<S> {
    fn deref_mut(&mut self) -> &mut Ctx<S> {
        &mut self.ctx
    }
}

impl<S> std::fmt::Debug for Ctx<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("loop", &self.id)
            .field("watchers", &self.slab.live())
            .field("active", &self.active)
            .field("turns", &self.counters.turns())
            .finish_non_exhaustive()
    }
}

impl<S> Drop for Ctx<S> {
    /// Handles dropped just before the loop queued their watchers' removal, and what must
    /// outlive the watchers (an fd, a stream's state), for the next turn; some of that
    /// holds the queue itself, a cycle only that turn would break. There is no next turn:
    /// apply the queue now (its deferred work included), until it stays empty.
    fn drop(&mut self) {
        for _ in 0..16 {
            let pending = self.removals.try_borrow().is_ok_and(|q| {
                !(q.watchers.is_empty() && q.owned.is_empty() && q.deferred.is_empty())
            });
            if !pending {
                return;
            }
            self.apply_removals();
        }
        // Work that keeps queueing work: drop the rest unrun, which still breaks the cycle.
        if let Ok(mut q) = self.removals.try_borrow_mut() {
            let rest = (
                std::mem::take(&mut q.owned),
                std::mem::take(&mut q.deferred),
            );
            drop(q);
            drop(rest);
        }
    }
}

impl<S> std::fmt::Debug for Loop<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("watchers", &self.ctx.slab.live())
            .field("active", &self.ctx.active)
            .field("turns", &self.ctx.counters.turns())
            .finish()
    }
}

impl<S> Loop<S> {
    /// Creates a loop (one epoll fd; the eventfd for wake watchers comes with the first one).
    ///
    /// The calling thread's timer slack is set to 1 ns (`PR_SET_TIMERSLACK`), since Linux
    /// otherwise lets every sleep with a timeout overrun by up to 50 µs; create the loop on
    /// the thread that runs it. [`set_timer_slack`](Loop::set_timer_slack) changes it.
    ///
    /// # Errors
    /// Whatever `epoll_create1` reports (e.g. `EMFILE`).
    pub fn new() -> io::Result<Loop<S>> {
        // Best effort: a kernel without it only makes timers up to 50 µs later.
        let _ = sys::set_timer_slack(1);
        Ok(Loop {
            ctx: Ctx {
                id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
                removals: Rc::default(),
                slab: Slab::new(),
                epoll: Epoll::new()?,
                events: Events::with_capacity(EVENTS_PER_POLL),
                fds: FdCache::default(),
                timers: TimerHeap::default(),
                live_timers: 0,
                phases: Phases::default(),
                wake: None,
                signals: None,
                pending: VecDeque::new(),
                scratch: Vec::new(),
                active: 0,
                perpetual: 0,
                now: Instant::now(),
                stop: false,
                deadline: None,
                counters: Counters::default(),
                epoch: 0,
                meter: Meter::new(Instant::now()),
            },
        })
    }

    /// Sets the current thread's timer slack: how late the kernel may end a timed poll to
    /// batch wake-ups (Linux default 50 µs; [`Loop::new`] sets 1 ns). Linux only; elsewhere
    /// it does nothing.
    ///
    /// # Errors
    /// `prctl(PR_SET_TIMERSLACK)` failed.
    pub fn set_timer_slack(&self, slack: Duration) -> io::Result<()> {
        sys::set_timer_slack(slack.as_nanos().min(u64::MAX as u128) as u64)
    }
}

impl<S> Ctx<S> {
    // ----- starting, stopping, removing --------------------------------------------------

    pub(super) fn slot(&self, w: WatcherId) -> Option<&Slot<S>> {
        self.slab.get(w)
    }

    pub(super) fn slot_mut(&mut self, w: WatcherId) -> Option<&mut Slot<S>> {
        self.slab.get_mut(w)
    }

    /// Starts a watcher (a timer is scheduled `after` from the current time). Returns `false` for a
    /// stale id; starting an active watcher is a no-op (a timer is *not* restarted: use
    /// [`set_timer`](Ctx::set_timer)).
    pub fn start(&mut self, w: WatcherId) -> bool {
        let Some(s) = self.slot_mut(w) else {
            return false;
        };
        if s.active {
            return true;
        }
        s.active = true;
        let perpetual = s.kind.is_perpetual();
        self.active += 1;
        self.perpetual += usize::from(perpetual);
        let s = &mut self.slab[w];
        match &mut s.kind {
            Kind::Io { fd, interest } => self.fds.started(*fd, w, *interest),
            Kind::Timer { after, seq, .. } => {
                // The real time, not the turn's cached one: a timer started late in a
                // long callback, or before the loop first ran, is still never early.
                let due = super::later(Instant::now(), *after);
                s.due = Some(due);
                *seq = self.timers.push(due, w);
                self.live_timers += 1;
            }
            Kind::Prepare => self.phases.add(Phase::Prepare, w),
            Kind::Check => self.phases.add(Phase::Check, w),
            Kind::Idle => self.phases.add(Phase::Idle, w),
            Kind::Wake { flag } => {
                let raised = flag.load(Ordering::SeqCst);
                self.phases.add(Phase::Wake, w);
                if raised {
                    if let Some(sh) = &self.wake {
                        // Deliver a wake that arrived while the watcher was stopped: the
                        // next collect picks it up (and the next poll does not sleep).
                        sh.skipped.store(true, Ordering::SeqCst);
                    }
                }
            }
            Kind::Signal { signo } => {
                let signo = *signo;
                if let Some(sg) = &mut self.signals {
                    sg.start(signo, w);
                }
            }
            Kind::Free => unreachable!("slot() filters free slots"),
        }
        true
    }

    /// Stops a watcher: it stays in the loop, keeps its callback, and can be started again.
    /// A pending callback of a stopped watcher does not run. Returns `false` for a stale id.
    pub fn stop(&mut self, w: WatcherId) -> bool {
        let Some(s) = self.slot_mut(w) else {
            return false;
        };
        s.pending = 0;
        if !s.active {
            return true;
        }
        s.active = false;
        let perpetual = s.kind.is_perpetual();
        let fd = match &mut s.kind {
            Kind::Io { fd, .. } => Some(*fd),
            Kind::Timer { seq, .. } => {
                *seq = 0;
                self.live_timers -= 1;
                None
            }
            Kind::Prepare => {
                self.phases.remove(Phase::Prepare, w);
                None
            }
            Kind::Check => {
                self.phases.remove(Phase::Check, w);
                None
            }
            Kind::Idle => {
                self.phases.remove(Phase::Idle, w);
                None
            }
            Kind::Wake { .. } => {
                self.phases.remove(Phase::Wake, w);
                None
            }
            Kind::Signal { .. } => {
                if let Some(sg) = &mut self.signals {
                    sg.stop(w);
                }
                None
            }
            Kind::Free => unreachable!("slot() filters free slots"),
        };
        self.active -= 1;
        self.perpetual -= usize::from(perpetual);
        if let Some(fd) = fd {
            self.fds.stopped(fd, w);
        }
        true
    }

    /// Stops a watcher and drops it with its callback; the id goes stale. Safe from any
    /// callback, the watcher's own included (its closure is dropped when it returns).
    /// Returns `false` for a stale id.
    pub fn remove(&mut self, w: WatcherId) -> bool {
        if !self.stop(w) {
            return false;
        }
        let (kind, cb) = self.slab.release(w);
        if let Kind::Io { fd, .. } = kind {
            self.fds
                .watcher_removed(fd, &self.epoll, &mut self.counters);
        }
        drop(cb);
        true
    }

    /// Changes an io watcher's interest; applied before the next poll, at no syscall cost
    /// when the interest flips back within the same turn. Returns `false` for a stale id or
    /// a watcher that is not an io watcher.
    pub fn set_interest(&mut self, w: WatcherId, interest: IoInterest) -> bool {
        let fd = match self.slot_mut(w) {
            Some(Slot {
                kind: Kind::Io { fd, interest: i },
                active,
                ..
            }) => {
                if *i == interest {
                    return true;
                }
                *i = interest;
                active.then_some(*fd)
            }
            _ => return false,
        };
        if let Some(fd) = fd {
            self.fds.changed(fd, w, interest);
        }
        true
    }

    /// An io watcher's interest.
    pub fn interest(&self, w: WatcherId) -> Option<IoInterest> {
        match self.slot(w)?.kind {
            Kind::Io { interest, .. } => Some(interest),
            _ => None,
        }
    }

    /// Changes a timer's `after`/`repeat` and (re)starts it from now. Returns `false` for a
    /// stale id or a watcher that is not a timer.
    pub fn set_timer(&mut self, w: WatcherId, after: Duration, repeat: Option<Duration>) -> bool {
        if !matches!(
            self.slot(w),
            Some(Slot {
                kind: Kind::Timer { .. },
                ..
            })
        ) {
            return false;
        }
        // Stopped first: what it counted as (repeating or not) is undone before it changes.
        self.stop(w);
        if let Some(Slot {
            kind:
                Kind::Timer {
                    after: a,
                    repeat: r,
                    ..
                },
            ..
        }) = self.slot_mut(w)
        {
            *a = after;
            *r = repeat;
        }
        self.start(w)
    }

    /// Whether the watcher exists and is started.
    pub fn is_active(&self, w: WatcherId) -> bool {
        self.slot(w).is_some_and(|s| s.active)
    }

    /// Whether the watcher's callback is queued for this turn (libev's `ev_is_pending`),
    /// and with which readiness. A watcher's prepare/check phase sees io readiness that the
    /// poll of this turn reported before the io callback runs.
    pub fn pending(&self, w: WatcherId) -> Option<Event> {
        let s = self.slot(w)?;
        (s.pending != 0).then_some(Event {
            watcher: w,
            ready: s.pending,
            due: s.due,
        })
    }

    /// The loop's cached monotonic time: read once per turn, right after the poll.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// This loop's identity, unique in the process: services created for one loop use it to
    /// refuse a context from another.
    pub(crate) fn loop_id(&self) -> u64 {
        self.id
    }

    /// A [`Remover`] for this loop: removes watchers at the start of the next turn, for
    /// handles dropped where no `Ctx` is at hand.
    pub fn remover(&self) -> Remover<S> {
        Remover {
            queue: self.removals.clone(),
        }
    }

    pub(super) fn apply_removals(&mut self) {
        let (watchers, owned, deferred) = {
            let Ok(mut q) = self.removals.try_borrow_mut() else {
                return;
            };
            if q.watchers.is_empty() && q.owned.is_empty() && q.deferred.is_empty() {
                return;
            }
            (
                std::mem::take(&mut q.watchers),
                std::mem::take(&mut q.owned),
                std::mem::take(&mut q.deferred),
            )
        };
        for w in watchers {
            self.remove(w);
        }
        // Dropped only now that the watchers are gone (an fd is closed after its watcher).
        drop(owned);
        for f in deferred {
            f(self);
        }
        // Drops and deferred work are application code.
        self.epoch += 1;
    }

    /// The loop's epoch: equal readings mean no application code ran on this thread in
    /// between (see the field). The zmq adapter uses it to trust its own last look at a
    /// socket.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// What the loop has done so far: turns, polls and `epoll_ctl` calls, how long its
    /// turns took (the longest, and a histogram) and whose callback took longest. See
    /// [`Stats`] for how to read them when a loop seems stuck.
    pub fn stats(&self) -> Stats {
        Stats {
            turns: self.counters.turns(),
            polls: self.counters.polls(),
            ctl_calls: self.counters.ctl_calls(),
            longest_turn: self.meter.longest(),
            turn_histogram: self.meter.histogram(),
            slowest_callback: self.meter.slowest(),
        }
    }

    /// Starts the turn durations over ([`Stats::longest_turn`], [`Stats::turn_histogram`],
    /// [`Stats::slowest_callback`]), e.g. to watch one period; the counters go on.
    pub fn reset_turn_stats(&mut self) {
        self.meter.reset();
    }

    /// Turns run so far (cheaper than [`stats`](Ctx::stats) for a hot path).
    pub(crate) fn turn_count(&self) -> u64 {
        self.counters.turns()
    }

    /// The current turn's work ends now: the caller's code runs next.
    pub(super) fn end_turn(&mut self) {
        self.meter.end(Instant::now());
    }
}

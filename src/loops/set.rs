//! [`Loops`]: N event loops on N threads, shared nothing, started, stopped and joined
//! together.

use std::any::Any;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::Error;
use crate::ev::{Ctx, Loop, Waker};

/// How to start a [`Loops`]: how many, pinned or not, the threads' names.
///
/// ```
/// use evnet::loops::LoopsBuilder;
///
/// // Two loops, each counting its own timer ticks; stopped from outside.
/// let loops = LoopsBuilder::new(2).name("worker").spawn(
///     |_i, ev| {
///         let tick = std::time::Duration::from_millis(1);
///         ev.timer(tick, Some(tick), |n: &mut u32, _cx, _e| *n += 1);
///         Ok(0u32)
///     },
///     |_n, cx| cx.stop_loop(),
/// )?;
/// loops.stop();
/// loops.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LoopsBuilder {
    count: usize,
    pin: bool,
    name: String,
    exit: Option<Waker>,
}

impl LoopsBuilder {
    /// `count` loops (at least one), not pinned, on threads named `evnet-loop-<i>`.
    pub fn new(count: usize) -> LoopsBuilder {
        LoopsBuilder {
            count: count.max(1),
            pin: false,
            name: "evnet-loop".into(),
            exit: None,
        }
    }

    /// Pins loop `i` to the `i`-th CPU the process may run on (wrapping around), as nginx's
    /// `worker_cpu_affinity auto` does. Linux only: elsewhere each loop fails with
    /// [`Error::Pin`].
    #[must_use]
    pub fn pin(mut self, on: bool) -> LoopsBuilder {
        self.pin = on;
        self
    }

    /// The threads' name prefix: thread `i` is `<prefix>-<i>`.
    #[must_use]
    pub fn name(mut self, prefix: impl Into<String>) -> LoopsBuilder {
        self.name = prefix.into();
        self
    }

    /// Wakes `waker` (a wake watcher on the thread that waits for the loops, e.g. the one
    /// that also watches the signals) each time a loop ends, however it ends: the waiting
    /// thread then checks [`Loops::is_finished`] instead of polling it.
    #[must_use]
    pub fn on_exit(mut self, waker: Waker) -> LoopsBuilder {
        self.exit = Some(waker);
        self
    }

    /// Starts the loops. Each thread makes its own [`Loop<S>`], calls `setup(i, &mut loop)`
    /// for its state (so `S` need not be `Send`: sockets, streams and `Rc`s are made on the
    /// thread that uses them) and runs the loop until it has no active watcher left.
    ///
    /// [`Loops::stop`] calls `on_stop(state, cx)` on every loop, on its own thread:
    /// `cx.stop_loop()` ends it after the current turn; a graceful stop drops its
    /// listeners, closes its streams and calls [`Ctx::shutdown`] instead (the recipe is
    /// there). A loop that fails, or panics, stops the others the same way.
    ///
    /// # Errors
    /// A thread could not be spawned ([`Error::Spawn`]); the loops already started are
    /// stopped and joined first.
    pub fn spawn<S, F, G>(self, setup: F, on_stop: G) -> Result<Loops, Error>
    where
        S: 'static,
        F: Fn(usize, &mut Loop<S>) -> io::Result<S> + Send + Sync + 'static,
        G: Fn(&mut S, &mut Ctx<S>) + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared {
            wakers: Mutex::new((0..self.count).map(|_| None).collect()),
            stopping: AtomicBool::new(false),
            first_failed: Mutex::new(None),
            ended: AtomicUsize::new(0),
        });
        let setup = Arc::new(setup);
        let on_stop = Arc::new(on_stop);
        let mut threads = Vec::with_capacity(self.count);
        for index in 0..self.count {
            let (sh, setup, on_stop) = (shared.clone(), setup.clone(), on_stop.clone());
            let (pin, exit) = (self.pin, self.exit.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", self.name))
                .spawn(move || {
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        run_one(index, pin, &sh, &*setup, on_stop)
                    }))
                    .unwrap_or_else(|p| {
                        Err(Error::Panicked {
                            index,
                            message: panic_message(&*p),
                        })
                    });
                    if r.is_err() {
                        sh.failed(index);
                    }
                    // Counted before the wake: the woken thread must see it.
                    sh.ended.fetch_add(1, Ordering::SeqCst);
                    if let Some(w) = exit {
                        w.wake();
                    }
                    r
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(source) => {
                    let loops = Loops { shared, threads };
                    loops.stop();
                    let _ = loops.join();
                    return Err(Error::Spawn { index, source });
                }
            }
        }
        Ok(Loops { shared, threads })
    }
}

/// What a loop runs when asked to stop.
type OnStop<S> = dyn Fn(&mut S, &mut Ctx<S>) + Send + Sync;

/// One loop's thread: its loop, its stop watcher, its state, its run.
fn run_one<S: 'static>(
    index: usize,
    pin: bool,
    shared: &Shared,
    setup: &dyn Fn(usize, &mut Loop<S>) -> io::Result<S>,
    on_stop: Arc<OnStop<S>>,
) -> Result<(), Error> {
    if pin {
        crate::sys::pin_current_thread(index).map_err(|source| Error::Pin { index, source })?;
    }
    let mut ev = Loop::<S>::new().map_err(|source| Error::Spawn { index, source })?;
    let (_, waker) = ev
        .waker(move |st, cx, e| {
            // Once: the loop then ends when its own watchers are done.
            cx.remove(e.watcher());
            on_stop(st, cx);
        })
        .map_err(|source| Error::Spawn { index, source })?;
    shared.register(index, waker);
    let mut state = setup(index, &mut ev).map_err(|source| Error::Setup { index, source })?;
    ev.run(&mut state)
        .map_err(|source| Error::Run { index, source })
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

/// What the handle and the loop threads share: each loop's stop waker, whether a stop was
/// asked for, and which loop failed first.
struct Shared {
    wakers: Mutex<Vec<Option<Waker>>>,
    stopping: AtomicBool,
    first_failed: Mutex<Option<usize>>,
    /// Loops whose thread is done (about to return).
    ended: AtomicUsize,
}

impl Shared {
    /// Loop `index` can be stopped through `waker`; if a stop came first, it stops now.
    fn register(&self, index: usize, waker: Waker) {
        if let Ok(mut w) = self.wakers.lock() {
            if let Some(slot) = w.get_mut(index) {
                *slot = Some(waker.clone());
            }
        }
        // After the store: a stop that missed the waker in the list is seen here.
        if self.stopping.load(Ordering::SeqCst) {
            waker.wake();
        }
    }

    fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(w) = self.wakers.lock() {
            for waker in w.iter().flatten() {
                waker.wake();
            }
        }
    }

    fn failed(&self, index: usize) {
        if let Ok(mut f) = self.first_failed.lock() {
            f.get_or_insert(index);
        }
        self.stop_all();
    }
}

/// N event loops on N threads, one per core, shared nothing: libevent's and nginx's
/// answer to a daemon that outgrows one core. Each loop has its own state and watchers;
/// they share what the application shares (an `Arc`), talk over
/// [`channel`](super::channel)s, and accept on their own listener (see
/// [`bind_tcp_shard`](crate::socket::bind_tcp_shard)).
///
/// Dropping the handle stops the loops and waits for them (as `join`, without the result).
#[must_use = "dropping Loops stops the loops and waits for them"]
pub struct Loops {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<(), Error>>>,
}

impl std::fmt::Debug for Loops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loops")
            .field("count", &self.threads.len())
            .field("stopping", &self.shared.stopping.load(Ordering::Relaxed))
            .finish()
    }
}

impl Loops {
    /// How many loops there are.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether there are none (never: a set has at least one loop).
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Whether every loop has ended (by a stop, a failure, or running out of watchers).
    pub fn is_finished(&self) -> bool {
        self.shared.ended.load(Ordering::SeqCst) >= self.threads.len()
    }

    /// Whether the loops were asked to stop ([`stop`](Loops::stop), or a loop that failed
    /// and so stopped the others).
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Asks every loop to stop: each runs its `on_stop` on its own thread, in its next
    /// turn (a sleeping loop is woken). Returns at once; [`join`](Loops::join) waits.
    /// Any thread may call it, any number of times (`on_stop` runs once per loop).
    pub fn stop(&self) {
        self.shared.stop_all();
    }

    /// Waits for every loop to end.
    ///
    /// # Errors
    /// The first loop that failed or panicked, once all have ended (that failure stopped
    /// the others).
    pub fn join(mut self) -> Result<(), Error> {
        self.join_all()
    }

    fn join_all(&mut self) -> Result<(), Error> {
        let mut results: Vec<Result<(), Error>> = std::mem::take(&mut self.threads)
            .into_iter()
            .enumerate()
            .map(|(index, t)| {
                t.join().unwrap_or_else(|p| {
                    Err(Error::Panicked {
                        index,
                        message: panic_message(&*p),
                    })
                })
            })
            .collect();
        let first = self.shared.first_failed.lock().ok().and_then(|f| *f);
        match first.and_then(|i| results.get_mut(i)) {
            Some(r @ Err(_)) => std::mem::replace(r, Ok(())),
            _ => results.into_iter().find(Result::is_err).unwrap_or(Ok(())),
        }
    }
}

impl Drop for Loops {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
            let _ = self.join_all();
        }
    }
}

//! [`Pool`]: the workers, the job queue, and delivery of results on the loop.

use std::cell::{Cell, OnceCell, RefCell};
use std::io;
use std::num::NonZeroUsize;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::results::{Results, Take};

use super::error::Error;
use super::job::{JobCell, JobHandle, Outcome, Run};
use super::room::Room;
use crate::ev::{Ctx, Event, Waker, WatcherId};

/// A job's `on_done`, type-erased for the loop-side table: `Ok(())` means the value waits
/// in the job's cell.
type Deliver<S> = Box<dyn FnOnce(&mut S, &mut Ctx<S>, Result<(), Error>)>;

/// Results delivered per loop turn unless [`PoolBuilder::batch`] says otherwise.
pub const DEFAULT_BATCH: usize = 64;

/// Results that may wait for the loop; a worker with a result beyond it waits for room
/// (see `results.rs` for the queue).
const RESULT_QUEUE: usize = 1024;

/// A queued job: its cell, and the slot of its `on_done` in the loop-side table.
struct Job {
    slot: usize,
    cell: Arc<dyn Run>,
}

struct Done {
    slot: usize,
    outcome: Outcome,
}

/// The loop-side half, shared (weakly) with the wake watcher's callback. It is only ever
/// borrowed for a few lines, never across an application callback, so `on_done` can start
/// jobs, cancel them or drop the pool.
struct Shared<S> {
    closed: Cell<bool>,
    table: RefCell<Table<S>>,
    results: Arc<Results<Done>>,
    /// The loop's batch of results taken from `results`, reused from turn to turn.
    batch: RefCell<Vec<Done>>,
    room: Arc<Room>,
}

/// The loop-side table of `on_done`s, indexed by slot. Free slots form a list threaded
/// through the vacant entries themselves, so taking a result out allocates nothing: a
/// separate free-slot `Vec` grew while a burst of results came in, and its reallocation
/// (a request of 1 KiB or more) made glibc consolidate every small chunk the delivered
/// results had freed, hundreds of thousands of them, in one turn: 2–3 ms of loop CPU
/// (`benches/thread`, docs/benchmarks.md).
struct Table<S> {
    entries: Vec<Entry<S>>,
    /// The first vacant entry, or [`NO_SLOT`].
    next_free: usize,
    in_flight: usize,
}

enum Entry<S> {
    Occupied(Deliver<S>),
    /// Vacant, and the next vacant entry (or [`NO_SLOT`]).
    Vacant(usize),
}

const NO_SLOT: usize = usize::MAX;

impl<S> Table<S> {
    fn new() -> Table<S> {
        Table {
            entries: Vec::new(),
            next_free: NO_SLOT,
            in_flight: 0,
        }
    }

    fn insert(&mut self, e: Deliver<S>) -> usize {
        let i = self.next_free;
        match self.entries.get_mut(i) {
            Some(slot) => {
                if let Entry::Vacant(next) = std::mem::replace(slot, Entry::Occupied(e)) {
                    self.next_free = next;
                }
                i
            }
            None => {
                self.entries.push(Entry::Occupied(e));
                self.entries.len() - 1
            }
        }
    }

    fn take(&mut self, slot: usize) -> Option<Deliver<S>> {
        let entry = self.entries.get_mut(slot)?;
        if matches!(entry, Entry::Vacant(_)) {
            return None;
        }
        match std::mem::replace(entry, Entry::Vacant(self.next_free)) {
            Entry::Occupied(e) => {
                self.next_free = slot;
                Some(e)
            }
            Entry::Vacant(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing() -> Deliver<()> {
        Box::new(|_, _, _| {})
    }

    #[test]
    fn vacant_slots_are_reused_last_freed_first_and_taken_once() {
        let mut t = Table::<()>::new();
        let (a, b, c) = (
            t.insert(nothing()),
            t.insert(nothing()),
            t.insert(nothing()),
        );
        assert_eq!((a, b, c), (0, 1, 2));
        assert!(t.take(b).is_some());
        assert!(t.take(b).is_none(), "taken twice");
        assert!(t.take(a).is_some());
        assert!(t.take(7).is_none(), "never inserted");
        assert_eq!(t.insert(nothing()), a);
        assert_eq!(t.insert(nothing()), b);
        assert_eq!(t.insert(nothing()), 3);
        assert_eq!(t.entries.len(), 4);
    }
}

/// Configures a [`Pool`]: worker count, queue bound, results per turn, worker stacks.
///
/// ```
/// use evnet::ev::Loop;
/// use evnet::pool::PoolBuilder;
///
/// let mut ev = Loop::<()>::new()?;
/// let pool = PoolBuilder::new().workers(2).queue_bound(1024).build(&mut ev)?;
/// assert_eq!(pool.workers(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    workers: Option<usize>,
    queue_bound: Option<usize>,
    batch: usize,
    stack_size: Option<usize>,
    name: String,
}

impl Default for PoolBuilder {
    fn default() -> PoolBuilder {
        PoolBuilder::new()
    }
}

impl PoolBuilder {
    /// Defaults: one worker per available CPU but one (the loop keeps a core of its own;
    /// at least one worker), an unbounded queue, [`DEFAULT_BATCH`] results per turn, std's
    /// default stack size, threads named `evnet-worker-<n>`.
    ///
    /// Why leave a core: on a small machine, workers as many as the CPUs preempt the loop
    /// thread whenever results come in bursts, and the loop's timers run late by whole
    /// scheduler slices (`benches/thread` measures it). Ask for more with
    /// [`workers`](PoolBuilder::workers) when jobs block rather than compute.
    pub fn new() -> PoolBuilder {
        PoolBuilder {
            workers: None,
            queue_bound: None,
            batch: DEFAULT_BATCH,
            stack_size: None,
            name: "evnet-worker".to_owned(),
        }
    }

    /// The number of worker threads (at least 1).
    pub fn workers(mut self, n: usize) -> PoolBuilder {
        self.workers = Some(n.max(1));
        self
    }

    /// Bounds the jobs queued and not yet picked up by a worker: past it,
    /// [`Pool::run`] returns [`Error::QueueFull`] instead of queueing. Jobs running on a
    /// worker and results waiting for the loop do not count. A bound of 0 accepts a job
    /// only when a worker is idle and waiting.
    pub fn queue_bound(mut self, n: usize) -> PoolBuilder {
        self.queue_bound = Some(n);
        self
    }

    /// The most `on_done` callbacks run in one loop turn (at least 1); more results wait
    /// for the next turn, so a burst of completions cannot starve other watchers.
    pub fn batch(mut self, n: usize) -> PoolBuilder {
        self.batch = n.max(1);
        self
    }

    /// Worker thread stack size in bytes.
    pub fn stack_size(mut self, bytes: usize) -> PoolBuilder {
        self.stack_size = Some(bytes);
        self
    }

    /// Worker thread name prefix (`<prefix>-<n>`).
    pub fn name(mut self, prefix: impl Into<String>) -> PoolBuilder {
        self.name = prefix.into();
        self
    }

    /// Creates the pool for the loop that owns `cx`, starting its workers.
    ///
    /// # Errors
    /// Creating the loop's wake eventfd or spawning a worker thread failed; workers already
    /// spawned are joined before returning.
    pub fn build<S: 'static>(self, cx: &mut Ctx<S>) -> io::Result<Pool<S>> {
        let workers = self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, NonZeroUsize::get)
                .saturating_sub(1)
                .max(1)
        });
        let (job_tx, job_rx) = match self.queue_bound {
            Some(n) => crossbeam_channel::bounded::<Job>(n),
            None => crossbeam_channel::unbounded(),
        };
        let results = Arc::new(Results::with_capacity(RESULT_QUEUE));
        let room = Arc::new(Room::default());
        let shared = Rc::new(Shared {
            closed: Cell::new(false),
            table: RefCell::new(Table::new()),
            results: results.clone(),
            batch: RefCell::new(Vec::with_capacity(self.batch)),
            room: room.clone(),
        });

        let weak = Rc::downgrade(&shared);
        let batch = self.batch;
        let waker_cell: Rc<OnceCell<Waker>> = Rc::default();
        let own_waker = waker_cell.clone();
        let (watcher, waker) = cx.waker(move |st: &mut S, cx: &mut Ctx<S>, e: Event| {
            deliver(&weak, batch, &own_waker, st, cx, e)
        })?;
        let _ = waker_cell.set(waker.clone());
        // Stopped while nothing is in flight, so an idle pool does not keep `run` going.
        cx.stop(watcher);

        let shutdown = Arc::new(AtomicBool::new(false));
        let mut pool = Pool {
            shared,
            jobs: job_tx,
            shutdown: shutdown.clone(),
            threads: Vec::with_capacity(workers),
            watcher,
            waker: waker.clone(),
            loop_id: cx.loop_id(),
        };
        for n in 0..workers {
            let mut b = std::thread::Builder::new().name(format!("{}-{n}", self.name));
            if let Some(size) = self.stack_size {
                b = b.stack_size(size);
            }
            let (jobs, done, waker, shutdown, room) = (
                job_rx.clone(),
                results.clone(),
                waker.clone(),
                shutdown.clone(),
                room.clone(),
            );
            // On error `pool` drops here and joins the workers already spawned.
            let t = b.spawn(move || work(&jobs, &done, &waker, &shutdown, &room))?;
            pool.threads.push(t);
        }
        Ok(pool)
    }
}

/// A pool of worker threads for blocking functions, delivering each result back on the
/// loop it was created for (libevnet's `thread_run`).
///
/// [`run`](Pool::run) queues a `job` (any `FnOnce() -> T + Send`); a worker runs it, and
/// its `on_done` receives the result on the loop thread, as a callback like any other
/// watcher's: `(&mut S, &mut Ctx<S>, Result<T, Error>)`. Results travel through a
/// `crossbeam-channel` queue and one wake watcher; at most [`PoolBuilder::batch`] `on_done`
/// callbacks run per loop turn.
///
/// - **No deadlock from callbacks**: no lock is held while `on_done` runs (libevnet 0.3.7's
///   bug), and the loop never blocks on the queue, so `on_done` may start jobs, to any depth.
/// - **Panics**: a panicking job's `on_done` gets [`Error::Panicked`] with the message;
///   the worker survives and the pool keeps its size.
/// - **Cancellation**: see [`JobHandle`]; dropping the handle cancels `on_done`.
/// - **Shutdown**: dropping the pool skips queued jobs, waits for running ones to return
///   (a job is never interrupted, so a job that blocks forever blocks the drop), joins
///   every worker and drops undelivered results. No `on_done` runs after the drop.
/// - While jobs are in flight the pool keeps the loop's [`run`](crate::ev::Loop::run)
///   going; an idle pool does not.
///
/// Keep the pool in the loop state `S` (not captured by an `on_done`, which would make a
/// reference cycle) so callbacks can reach it.
///
/// # Examples
/// ```
/// use evnet::ev::Loop;
/// use evnet::pool::Pool;
///
/// struct State { pool: Pool<State>, sum: u64, left: u32 }
///
/// let mut ev = Loop::<State>::new()?;
/// let pool = Pool::new(&mut ev)?;
/// let mut st = State { pool, sum: 0, left: 3 };
/// // A callback that starts the next job: three levels deep.
/// fn step(st: &mut State, cx: &mut evnet::ev::Ctx<State>, r: Result<u64, evnet::pool::Error>) {
///     st.sum += r.expect("no panic");
///     st.left -= 1;
///     if st.left > 0 {
///         let n = st.left as u64;
///         st.pool.run(cx, move || n * 10, step).expect("queued").detach();
///     }
/// }
/// st.pool.run(&mut ev, || 5, step)?.detach();
/// ev.run(&mut st)?; // returns once nothing is in flight
/// assert_eq!(st.sum, 5 + 20 + 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool<S> {
    shared: Rc<Shared<S>>,
    /// Replaced by a disconnected sender on drop, which closes the queue.
    jobs: Sender<Job>,
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    watcher: WatcherId,
    waker: Waker,
    loop_id: u64,
}

impl<S> std::fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.threads.len())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}

impl<S: 'static> Pool<S> {
    /// A pool with [`PoolBuilder::new`]'s defaults: one worker per available CPU but one.
    ///
    /// # Errors
    /// See [`PoolBuilder::build`].
    pub fn new(cx: &mut Ctx<S>) -> io::Result<Pool<S>> {
        PoolBuilder::new().build(cx)
    }

    /// Queues `job` for a worker; `on_done` receives its result on the loop thread.
    ///
    /// # Errors
    /// [`Error::QueueFull`] when a [queue bound](PoolBuilder::queue_bound) is reached,
    /// [`Error::WrongLoop`] when `cx` is not the pool's loop. Neither runs anything.
    pub fn run<T, J, D>(&self, cx: &mut Ctx<S>, job: J, on_done: D) -> Result<JobHandle, Error>
    where
        T: Send + 'static,
        J: FnOnce() -> T + Send + 'static,
        D: FnOnce(&mut S, &mut Ctx<S>, Result<T, Error>) + 'static,
    {
        if cx.loop_id() != self.loop_id {
            return Err(Error::WrongLoop);
        }
        let jobs = &self.jobs;
        let cell = Arc::new(JobCell::new(job));
        let loop_cell = cell.clone();
        let deliver: Deliver<S> = Box::new(move |st, cx, r| {
            // `Ok` comes with the value in the cell; `None` means cancelled meanwhile.
            let r = match r {
                Ok(()) => loop_cell.claim().map(Ok),
                Err(e) => loop_cell.claim_error().then_some(Err(e)),
            };
            if let Some(r) = r {
                on_done(st, cx, r);
            }
        });
        let mut table = self.shared.table.borrow_mut();
        let slot = table.insert(deliver);
        let job = Job {
            slot,
            cell: cell.clone(),
        };
        if let Err(e) = jobs.try_send(job) {
            let refused = table.take(slot);
            drop(table);
            drop(refused); // the refused `on_done` is dropped with nothing borrowed
                           // Disconnected cannot happen: the workers hold the receivers until the pool is
                           // dropped, and they catch panics.
            debug_assert!(matches!(e, TrySendError::Full(_)));
            return Err(Error::QueueFull);
        }
        table.in_flight += 1;
        if table.in_flight == 1 {
            cx.start(self.watcher);
        }
        Ok(JobHandle::new(cell))
    }

    /// Runs `job` on a worker and forgets its result (fire-and-forget). A panic in it is
    /// caught on the worker and lost.
    ///
    /// # Errors
    /// As [`run`](Pool::run).
    pub fn spawn<J>(&self, cx: &mut Ctx<S>, job: J) -> Result<(), Error>
    where
        J: FnOnce() + Send + 'static,
    {
        self.run(cx, job, |_, _, _| {}).map(JobHandle::detach)
    }

    /// Shuts the pool down like dropping it does, and also removes its wake watcher from
    /// the loop at once (a dropped pool's watcher is removed the next time it runs).
    pub fn close(self, cx: &mut Ctx<S>) {
        if cx.loop_id() == self.loop_id {
            cx.remove(self.watcher);
        }
    }
}

impl<S> Pool<S> {
    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Jobs started whose result has not come back to the loop yet (cancelled ones
    /// included until their worker reports).
    pub fn in_flight(&self) -> usize {
        self.shared.table.borrow().in_flight
    }

    /// Jobs queued and not yet picked up by a worker.
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }
}

impl<S> Drop for Pool<S> {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        self.shared.closed.set(true);
        // Workers skip what is still queued and exit once the queue is empty and closed.
        drop(std::mem::replace(
            &mut self.jobs,
            crossbeam_channel::bounded(0).0,
        ));
        for t in self.threads.drain(..) {
            // Workers catch job panics, so a join error cannot carry one; nothing to report.
            let _ = t.join();
        }
        // Let the wake watcher run once more to remove itself (if it is started).
        self.waker.wake();
    }
}

/// A worker: run jobs until the queue closes.
fn work(
    jobs: &Receiver<Job>,
    done: &Results<Done>,
    waker: &Waker,
    shutdown: &AtomicBool,
    room: &Room,
) {
    while let Ok(job) = jobs.recv() {
        if shutdown.load(Ordering::Acquire) {
            continue; // dropping the pool: skip, nobody will take the result
        }
        let outcome = job.cell.run();
        // Drop the worker's reference before reporting, so the loop frees the cell.
        drop(job.cell);
        let mut result = Done {
            slot: job.slot,
            outcome,
        };
        // The result queue is bounded: a worker that finds it full waits in the room until
        // the loop has taken it down to half (or the pool shuts down: the loop that would
        // make room may be the one dropping the pool).
        loop {
            match done.push(result) {
                Ok(()) => {
                    waker.wake();
                    break;
                }
                Err(_) if shutdown.load(Ordering::Acquire) => return,
                Err(r) => {
                    waker.wake();
                    result = r;
                    room.wait(
                        || done.len() <= RESULT_QUEUE / 2,
                        || shutdown.load(Ordering::Acquire),
                    );
                }
            }
        }
    }
}

/// The wake watcher's callback: run up to `batch` `on_done`s, then yield the turn.
fn deliver<S>(
    weak: &Weak<Shared<S>>,
    batch: usize,
    waker: &OnceCell<Waker>,
    st: &mut S,
    cx: &mut Ctx<S>,
    e: Event,
) {
    let Some(shared) = weak.upgrade() else {
        cx.remove(e.watcher());
        return;
    };
    let mut taken = std::mem::take(&mut *shared.batch.borrow_mut());
    let busy = shared.results.try_take(&mut taken, batch) == Take::Busy;
    for done in taken.drain(..) {
        if shared.closed.get() {
            break; // the pool was dropped by an `on_done`: the rest go undelivered
        }
        let deliver = {
            let mut table = shared.table.borrow_mut();
            table.in_flight -= 1;
            table.take(done.slot)
        };
        let Some(deliver) = deliver else { continue };
        match done.outcome {
            Outcome::Value => deliver(st, cx, Ok(())),
            Outcome::Panicked(m) => deliver(st, cx, Err(Error::Panicked(m))),
            Outcome::Skipped => {}
        }
    }
    *shared.batch.borrow_mut() = taken;
    let results = &shared.results;
    shared.room.wake_if(|| results.len() <= RESULT_QUEUE / 2);
    if shared.closed.get() {
        cx.remove(e.watcher());
    } else if busy || results.len() > 0 {
        // More results than one batch, or a worker was pushing one: come back next turn,
        // after the other watchers.
        if let Some(w) = waker.get() {
            w.wake();
        }
    } else if shared.table.borrow().in_flight == 0 {
        cx.stop(e.watcher());
    }
}

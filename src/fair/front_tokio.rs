//! [`TokioZmq`]: the fair adapter on a tokio runtime, as a handler-driven future and as
//! a `Stream`/`Sink` of multipart messages.

use std::cell::RefCell;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::unix::AsyncFd;
use tokio::task::coop;

use super::accessors::zmq_accessors;
use super::core::Pulled;
use super::hosted::{dup_zmq_fd, Hosted};
use super::mailbox::{Mail, Mailbox, Wake};
use super::{Budget, Error, InsertError, ZmqHandler};

/// A ZeroMQ socket on a tokio runtime, served fairly: at most the [`Budget`] of messages
/// per task poll (and within tokio's own task budget), never a missed message.
///
/// Two ways to use it, on one task (the socket is `!Sync`; use a current-thread runtime,
/// or a `LocalSet` on a multi-thread one):
///
/// - [`dispatch`](TokioZmq::dispatch) with a [`ZmqHandler`]: the adapter's own
///   model (receive for the handler, writable interest, a [`Mailbox`] for other threads).
///   It runs one bounded turn per poll and yields to the scheduler while work remains, so
///   timers and other tasks run during a flood.
/// - [`Stream`] of whole multipart messages and [`Sink`] of them: each `poll_next` takes
///   one unit of tokio's task budget ([`tokio::task::coop`]) and, after the adapter's
///   budget of consecutive messages, yields. Every send and receive that may have consumed
///   `ZMQ_FD`'s edge re-checks `ZMQ_EVENTS` and wakes the other direction if it is waiting
///   (tmq #20, pyzmq #1203: a send that swallows the edge of a pending receive). The two
///   may run on two tasks of one thread (`StreamExt::split`): both wait on `ZMQ_FD`, and
///   the one waker tokio keeps for it wakes whichever waits.
///
/// # Which to choose
///
/// Take `dispatch` for a server: a socket that mostly receives and answers (ROUTER, REP,
/// SUB, PULL), where replies may meet the high-water mark and other threads hand it work.
/// It costs the least per message (no allocation per message: the handler borrows the
/// parts), never loses a reply to `EAGAIN` (writable interest and an
/// [`Outbox`](super::Outbox)), and has the [`Mailbox`]. Take `Stream`/`Sink` where the
/// socket is one step of async code: a client awaiting each reply, a pipeline of
/// combinators (`select!`, `timeout`, `forward`), or a socket passed to code written for
/// `futures`. Each message is then a `Vec<zmq::Message>` of its own, and pushing back is
/// `Sink::poll_ready` pending. Both are fair; one socket uses one of the two.
///
/// Create it inside the runtime (it registers `ZMQ_FD` with tokio's reactor).
///
/// The example needs `tokio` (features `rt`, `net`, `time`) and `futures` in your `Cargo.toml`
/// besides evnet (feature `tokio`):
///
/// ```
/// use evnet::fair::TokioZmq;
/// use evnet::zmq;
/// use futures::{SinkExt, StreamExt};
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let ctx = zmq::Context::new();
///     let rep = ctx.socket(zmq::REP)?;
///     rep.bind("inproc://tokio-doc")?;
///     let req = ctx.socket(zmq::REQ)?;
///     req.connect("inproc://tokio-doc")?;
///     let mut rep = TokioZmq::new(rep)?;
///     let mut req = TokioZmq::new(req)?;
///     req.send(vec![zmq::Message::from("ping")]).await?;
///     let msg = rep.next().await.expect("a message")?;
///     rep.send(msg).await?;
///     let reply = req.next().await.expect("a reply")?;
///     assert_eq!(&reply[0][..], b"ping");
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a TokioZmq closes its socket; keep it while the socket should be served"]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub struct TokioZmq {
    hosted: Hosted,
    /// A duplicate of `ZMQ_FD` (libzmq owns the original), registered with the reactor.
    afd: AsyncFd<OwnedFd>,
    /// The stream's receive buffer: a message's parts so far (the core keeps the count
    /// when a receive stops inside a message).
    pulled: Vec<zmq::Message>,
    /// The stream's and the sink's waiting tasks, woken together by the one waker tokio
    /// holds for `ZMQ_FD`.
    fanout: Arc<Fanout>,
    fan_waker: Waker,
    /// The sink's message, and how many of its parts libzmq took.
    out: Option<(Vec<zmq::Message>, usize)>,
    /// Where the mailbox finds the dispatching task to wake it.
    mail_waker: Option<Arc<Slot>>,
    /// The task in `dispatch`, while it waits; woken when interest changes from outside.
    dispatch_waker: RefCell<Option<Waker>>,
    /// The stream ended (`ETERM`): `None` from now on.
    ended: bool,
}

impl std::fmt::Debug for TokioZmq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokioZmq")
            .field("interest", &self.interest())
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// Makes the task give way: tokio defers its wake-up until the scheduler has polled its
/// driver (timers, I/O), as `tokio::task::yield_now` does.
fn give_way(cx: &mut Context<'_>) {
    let mut y = std::pin::pin!(tokio::task::yield_now());
    // The first poll defers the waker and returns Pending; the future is done with.
    let _ = y.as_mut().poll(cx);
}

/// A task's waker kept where a wake-up from elsewhere finds it.
type Slot = Mutex<Option<Waker>>;

/// Keeps `cx`'s waker in `w`, unless the one there already wakes the same task.
fn keep(w: &mut Option<Waker>, cx: &Context<'_>) {
    if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *w = Some(cx.waker().clone());
    }
}

/// Wakes the task kept in `slot`, if any, and forgets it.
fn wake_slot(slot: &Slot) {
    let w = slot.lock().ok().and_then(|mut w| w.take());
    if let Some(w) = w {
        w.wake();
    }
}

/// The waker tokio holds for `ZMQ_FD` while the stream or the sink waits on it. tokio keeps
/// one waker per direction of an `AsyncFd`, the last poller's, and both of ours wait on its
/// *read* readiness (`ZMQ_FD` only ever signals readable): with the tasks' own wakers, the
/// sink's wait replaced the stream's registration, and an edge that came after the sink
/// had moved on woke nobody. This one wakes whichever of the two waits.
#[derive(Default)]
struct Fanout {
    read: Slot,
    write: Slot,
}

impl Fanout {
    fn slot(&self, want: zmq::PollEvents) -> &Slot {
        if want.contains(zmq::POLLIN) {
            &self.read
        } else {
            &self.write
        }
    }

    /// Whether a task waits for `dir`.
    fn waits(&self, dir: zmq::PollEvents) -> bool {
        self.slot(dir).lock().is_ok_and(|w| w.is_some())
    }

    /// Wakes the task waiting for `dir`, if any.
    fn wake(&self, dir: zmq::PollEvents) {
        wake_slot(self.slot(dir));
    }
}

impl std::task::Wake for Fanout {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Fanout::wake(self, zmq::POLLIN);
        Fanout::wake(self, zmq::POLLOUT);
    }
}

impl TokioZmq {
    /// Wraps `socket` with the default [`Budget`]; reading, unless the socket type cannot
    /// receive (PUSH and PUB start with no interest).
    ///
    /// # Errors
    /// Reading `ZMQ_FD` or registering it with the reactor failed; the socket is given
    /// back.
    ///
    /// # Panics
    /// Outside a tokio runtime with I/O enabled, as [`AsyncFd::new`].
    pub fn new(socket: zmq::Socket) -> Result<TokioZmq, InsertError> {
        TokioZmq::with_budget(socket, Budget::DEFAULT)
    }

    /// As [`new`](TokioZmq::new), with a budget.
    ///
    /// # Errors
    /// As [`new`](TokioZmq::new).
    ///
    /// # Panics
    /// As [`new`](TokioZmq::new).
    pub fn with_budget(socket: zmq::Socket, budget: Budget) -> Result<TokioZmq, InsertError> {
        let registered =
            dup_zmq_fd(&socket).and_then(|fd| tokio_readable(fd).map_err(|e| Error::from_io(&e)));
        let afd = match registered {
            Ok(afd) => afd,
            Err(error) => return Err(InsertError::new(error, socket)),
        };
        let hosted = Hosted::new(socket, budget);
        let fanout = Arc::new(Fanout::default());
        Ok(TokioZmq {
            hosted,
            afd,
            pulled: Vec::new(),
            fanout: fanout.clone(),
            fan_waker: Waker::from(fanout),
            out: None,
            mail_waker: None,
            dispatch_waker: RefCell::new(None),
            ended: false,
        })
    }

    zmq_accessors!(hosted);

    /// The dispatching task sleeps on `ZMQ_FD` with the old interest: wake it to plan anew.
    fn interest_changed(&self) {
        if let Some(w) = self.dispatch_waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// A [`Mailbox`] through which other threads send on this socket; its messages go
    /// out in [`dispatch`](TokioZmq::dispatch)'s writable turns, before the handler's own.
    /// Every call returns a handle to the same queue (the first call's capacity holds).
    pub fn mailbox(&mut self, capacity: usize) -> Mailbox {
        if let Some(m) = self.hosted.core.mailbox() {
            return m;
        }
        let slot: Arc<Slot> = Arc::new(Mutex::new(None));
        let waker = slot.clone();
        let mail = Mail::new(capacity, Wake::Host(Arc::new(move || wake_slot(&waker))));
        let mb = mail.mailbox();
        self.hosted.core.set_mail(mail);
        self.mail_waker = Some(slot);
        mb
    }

    /// Serves `handler` until the socket ends: `Ok(())` when the handler closed it
    /// ([`Sock::close`](super::Sock::close)), the error when its context terminated or
    /// it failed.
    ///
    /// # Errors
    /// The error that ended the socket.
    pub async fn dispatch<D: ZmqHandler + ?Sized>(&mut self, handler: &mut D) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_dispatch(cx, handler)).await
    }

    /// One poll of [`dispatch`](TokioZmq::dispatch): a bounded turn if work is pending,
    /// then `Pending` (having arranged to be polled again) while the socket lives.
    ///
    /// # Errors
    /// As [`dispatch`](TokioZmq::dispatch).
    pub fn poll_dispatch<D: ZmqHandler + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        handler: &mut D,
    ) -> Poll<Result<(), Error>> {
        if let Some(Ok(mut w)) = self.mail_waker.as_ref().map(|slot| slot.lock()) {
            keep(&mut w, cx);
        }
        // One turn per poll, within tokio's budget too.
        let coop = ready!(coop::poll_proceed(cx));
        let mut turned = false;
        loop {
            if self.hosted.is_finished() {
                return Poll::Ready(Ok(()));
            }
            // Take the edge tokio saw *before* libzmq is asked (prepare below, or `begin`):
            // that read re-arms `ZMQ_FD`, and an edge after it sets readiness anew. A stale
            // readiness left behind would cost a whole empty turn after every wake-up.
            let fired = match self.afd.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    guard.clear_ready();
                    true
                }
                Poll::Ready(Err(e)) => {
                    self.hosted.finish();
                    let why = Error::from_io(&e);
                    handler.finished(why, ());
                    return Poll::Ready(Err(why));
                }
                Poll::Pending => {
                    keep(&mut self.dispatch_waker.borrow_mut(), cx);
                    false
                }
            };
            // Prepare. Right after our own turn, with no edge since, nothing else ran on
            // this thread: a drained receive-only socket sleeps without asking libzmq.
            let busy = self.hosted.must_not_sleep_after(turned && !fired);
            if turned && busy {
                // More work: let timers and other tasks run first.
                give_way(cx);
                return Poll::Pending;
            }
            if !busy && !fired {
                return Poll::Pending; // the reactor wakes this task on the next edge
            }
            // Check: one bounded turn (after an edge with nothing pending, `begin` reads
            // `ZMQ_EVENTS`, which is where a terminated context shows).
            self.hosted.dispatch(fired, handler)?;
            coop.made_progress();
            turned = true;
        }
    }

    /// Waits for `ZMQ_FD` and reads `ZMQ_EVENTS`: `Ready(events)` when `want` is among
    /// them (or the socket failed), `Pending` with this task registered otherwise. Wakes
    /// the other direction's waiter when its event shows.
    fn poll_events(
        &mut self,
        cx: &mut Context<'_>,
        want: zmq::PollEvents,
    ) -> Poll<Result<zmq::PollEvents, Error>> {
        loop {
            // Waiting starts before the poll: the fan-out waker wakes this task through its
            // slot, whichever direction's poll registered it with tokio last.
            if let Ok(mut w) = self.fanout.slot(want).lock() {
                keep(&mut w, cx);
            }
            let mut fan = Context::from_waker(&self.fan_waker);
            let mut guard = match self.afd.poll_read_ready(&mut fan) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::from_io(&e))),
                Poll::Pending => return Poll::Pending,
            };
            // Not waiting any more (this task runs); the other direction may still wait.
            if let Ok(mut w) = self.fanout.slot(want).lock() {
                w.take();
            }
            let ev = match self.hosted.core.events() {
                Ok(ev) => ev,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if !ev.intersects(want) {
                guard.clear_ready();
            }
            drop(guard);
            self.wake_others(ev, want);
            if ev.intersects(want) {
                return Poll::Ready(Ok(ev));
            }
        }
    }

    /// After `ev` was read for `want`: the other direction's waiter learns of its event
    /// (this read may have consumed the edge it waits for).
    fn wake_others(&mut self, ev: zmq::PollEvents, want: zmq::PollEvents) {
        if ev.contains(zmq::POLLIN) && !want.contains(zmq::POLLIN) {
            self.fanout.wake(zmq::POLLIN);
        }
        if ev.contains(zmq::POLLOUT) && !want.contains(zmq::POLLOUT) {
            self.fanout.wake(zmq::POLLOUT);
        }
    }

    /// After a send or receive, which may have consumed `ZMQ_FD`'s edge: re-read
    /// `ZMQ_EVENTS` if the other direction waits, and wake it if its event shows.
    fn recheck_for_other(&mut self, done: zmq::PollEvents) {
        let waiting = if done.contains(zmq::POLLIN) {
            self.fanout.waits(zmq::POLLOUT)
        } else {
            self.fanout.waits(zmq::POLLIN)
        };
        if waiting {
            if let Ok(ev) = self.hosted.core.events() {
                self.wake_others(ev, done);
            }
        }
    }

    /// Sends what is left of the sink's message; `Ok(false)` on the high-water mark.
    fn try_flush(&mut self) -> Result<bool, Error> {
        let Some((msg, sent)) = self.out.as_mut() else {
            return Ok(true);
        };
        let mut sock = self.hosted.core.sock();
        let done = sock.send_parts(msg, sent)?;
        if done {
            self.out = None;
        }
        Ok(done)
    }
}

impl Stream for TokioZmq {
    type Item = Result<Vec<zmq::Message>, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let coop = ready!(coop::poll_proceed(cx));
        loop {
            // The core receives (a whole message, never a torn one) and keeps the budget's
            // slice across the messages this stream returns in a row.
            match this.hosted.core.pull(&mut this.pulled) {
                Pulled::Message(k) => {
                    let mut parts = std::mem::take(&mut this.pulled);
                    parts.truncate(k);
                    coop.made_progress();
                    this.recheck_for_other(zmq::POLLIN);
                    return Poll::Ready(Some(Ok(parts)));
                }
                Pulled::Yield => {
                    give_way(cx);
                    return Poll::Pending;
                }
                Pulled::Empty => match ready!(this.poll_events(cx, zmq::POLLIN)) {
                    Ok(_) => continue,
                    Err(e) => return Poll::Ready(Some(Err(this.end(e)))),
                },
                Pulled::Failed(e) => return Poll::Ready(Some(Err(this.end(e)))),
            }
        }
    }
}

impl TokioZmq {
    /// `ETERM` ends the stream after this item.
    fn end(&mut self, e: Error) -> Error {
        if e == Error::Terminated {
            self.ended = true;
        }
        e
    }
}

impl Sink<Vec<zmq::Message>> for TokioZmq {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Vec<zmq::Message>) -> Result<(), Error> {
        let this = self.get_mut();
        if this.out.is_some() {
            // The Sink contract: poll_ready first. Refuse rather than drop a message.
            return Err(Error::Socket(zmq::Error::EAGAIN));
        }
        this.out = Some((item, 0));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        loop {
            if this.out.is_none() {
                return Poll::Ready(Ok(()));
            }
            if this.try_flush()? {
                this.recheck_for_other(zmq::POLLOUT);
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_events(cx, zmq::POLLOUT))?;
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush(cx)
    }
}

/// `fd` registered with the current tokio reactor for readability: the one `unsafe` outside
/// `sys`, because tokio's `AsyncFd::register_with_interest` leaves I/O safety to its caller.
///
/// # Panics
/// Outside a tokio runtime with I/O enabled.
#[allow(unsafe_code)]
fn tokio_readable(
    fd: std::os::fd::OwnedFd,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: the AsyncFd owns `fd` for its whole lifetime, so the descriptor stays open
    // and names the same open file until the AsyncFd is dropped, and `OwnedFd::as_raw_fd`
    // always returns that descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)
}

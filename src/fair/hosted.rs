//! [`Hosted`]: what every host-loop front end (mio, calloop, tokio) shares: the core, its
//! message buffer, whether it has finished, and the socket accessors.

use std::rc::Rc;

use super::core::{Core, Deliver, Plan, Step};
#[cfg(any(feature = "mio", feature = "tokio"))]
use super::ZmqHandler;
use super::{Budget, Error};

/// A [`ZmqHandler`] and the front end's message buffer, as the core delivers to them.
#[cfg(any(feature = "mio", feature = "tokio"))]
struct Driven<'a, D: ?Sized> {
    handler: &'a mut D,
    parts: &'a mut Vec<zmq::Message>,
}

#[cfg(any(feature = "mio", feature = "tokio"))]
impl<D: ZmqHandler + ?Sized> Deliver for Driven<'_, D> {
    fn parts(&mut self) -> &mut Vec<zmq::Message> {
        self.parts
    }

    fn readable(&mut self, core: &Core, len: usize) {
        let msg = self.parts.get_mut(..len).unwrap_or_default();
        self.handler.readable(msg, &mut core.sock(), ());
    }

    fn writable(&mut self, core: &Core) {
        self.handler.writable(&mut core.sock(), ());
    }

    fn error(&mut self, _core: &Core, err: Error) {
        self.handler.error(err, ());
    }
}

/// A socket on a host loop: the [`Core`], its message buffer, and whether it
/// has finished (closed by its handler, terminated or failed).
pub(crate) struct Hosted {
    pub(crate) core: Rc<Core>,
    #[cfg(any(feature = "mio", feature = "tokio"))]
    parts: Vec<zmq::Message>,
    done: bool,
}

impl Hosted {
    pub(crate) fn new(socket: zmq::Socket, budget: Budget) -> Hosted {
        Hosted {
            core: Rc::new(Core::new(socket, budget)),
            #[cfg(any(feature = "mio", feature = "tokio"))]
            parts: Vec::new(),
            done: false,
        }
    }

    /// The turn begins: `true` when the host's next poll must not sleep. The core itself
    /// knows whether the application touched the socket since its last turn (mio and
    /// calloop cannot say whether other code ran in between, and need not).
    #[cfg(any(feature = "mio", feature = "calloop"))]
    pub(crate) fn must_not_sleep(&self) -> bool {
        self.must_not_sleep_after(true)
    }

    /// Whether the host's next poll must not sleep; `untouched` when the front end knows
    /// that no code ran on this thread since its own last turn (see [`Core::plan`]).
    pub(crate) fn must_not_sleep_after(&self, untouched: bool) -> bool {
        !self.done && self.core.plan(untouched) == Plan::Busy
    }

    /// The poll returned: one bounded turn for `handler`. `Err` once, when the socket ends,
    /// after the handler's `finished` with the same error.
    #[cfg(any(feature = "mio", feature = "tokio"))]
    pub(crate) fn dispatch<D: ZmqHandler + ?Sized>(
        &mut self,
        fd_fired: bool,
        handler: &mut D,
    ) -> Result<(), Error> {
        let mut parts = std::mem::take(&mut self.parts);
        let r = self.dispatch_with(
            fd_fired,
            &mut Driven {
                handler: &mut *handler,
                parts: &mut parts,
            },
        );
        self.parts = parts;
        if let Err(why) = r {
            handler.finished(why, ());
        }
        r
    }

    /// As `dispatch`, delivering through a front end's own [`Deliver`].
    pub(crate) fn dispatch_with<Dl: Deliver>(
        &mut self,
        fd_fired: bool,
        d: &mut Dl,
    ) -> Result<(), Error> {
        if self.done {
            return Ok(());
        }
        let result = if self.core.is_closing() {
            Ok(())
        } else {
            match self.core.begin(fd_fired) {
                Step::Skip => return Ok(()),
                Step::Work(seen) => self.core.turn(seen, d),
                Step::Fail(err) => Err(err),
            }
        };
        if result.is_err() || self.core.is_closing() {
            self.finish();
        }
        result
    }

    /// Stops for good: no more calls, and mailbox senders see `Closed`.
    pub(crate) fn finish(&mut self) {
        self.done = true;
        self.core.drop_mail();
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.done
    }
}

/// An owned duplicate of `socket`'s `ZMQ_FD`, for host loops that own what they poll
/// (calloop's `Generic`, tokio's `AsyncFd`); libzmq keeps the original.
#[cfg(any(feature = "calloop", feature = "tokio"))]
pub(crate) fn dup_zmq_fd(socket: &zmq::Socket) -> Result<std::os::fd::OwnedFd, Error> {
    let fd = socket.get_fd().map_err(Error::from_zmq)?;
    crate::sys::dup_cloexec(fd).map_err(|e| Error::from_io(&e))
}

//! Creating watchers: the slot table's `insert`, and one constructor per watcher kind
//! (io, timer, prepare, check, idle, signal, wake).

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::event::{Event, IoInterest};
use super::loop_logic::{Callback, Ctx, Kind, SIGNAL_TOKEN, WAKE_TOKEN};
use super::signal::Signals;
use super::wake::{WakeShared, Waker};
use super::WatcherId;
use crate::sys;

impl<S> Ctx<S> {
    pub(super) fn insert(&mut self, kind: Kind, cb: Callback<S>) -> WatcherId {
        self.slab.insert(kind, cb)
    }

    /// Creates a started io watcher on `source`'s fd: level-triggered, so the callback runs
    /// on every turn while the fd stays ready for `interest`.
    ///
    /// The watcher owns `source` and drops it when it is [`remove`](Ctx::remove)d (after
    /// taking the fd out of the poller), so the fd cannot be closed, or its number reused,
    /// while it is watched. To go on using a socket yourself, give the watcher an
    /// `Rc<T>` (or `Arc<T>`) and keep a clone; several watchers may share an fd that way.
    ///
    /// ```
    /// use std::{io::Write, os::unix::net::UnixStream, rc::Rc};
    /// use evnet::ev::{IoInterest, Loop};
    ///
    /// let (mut a, b) = UnixStream::pair()?;
    /// let b = Rc::new(b);
    /// let mut ev = Loop::<usize>::new()?;
    /// let reader = Rc::clone(&b);
    /// ev.io(b, IoInterest::READABLE, move |n, cx, e| {
    ///     let mut buf = [0u8; 16];
    ///     *n += std::io::Read::read(&mut &*reader, &mut buf).unwrap_or(0);
    ///     cx.remove(e.watcher()); // the last Rc: the socket closes after it is deregistered
    /// });
    /// a.write_all(b"hello")?;
    /// let mut n = 0;
    /// ev.run(&mut n)?;
    /// assert_eq!(n, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// The fd is registered with the kernel before the next poll; one the kernel refuses is
    /// reported to the callback as an error ([`Event::is_error`]), so creating the watcher
    /// itself cannot fail.
    pub fn io<F>(
        &mut self,
        source: impl AsFd + 'static,
        interest: IoInterest,
        mut cb: F,
    ) -> WatcherId
    where
        F: FnMut(&mut S, &mut Ctx<S>, Event) + 'static,
    {
        let fd = source.as_fd().as_raw_fd();
        // The callback owns the source: `remove` deregisters the fd before it drops the
        // callback, so the source closes only once the poller has let go of it.
        // A borrowed fd is never negative: no check to make.
        self.io_fd(
            fd,
            interest,
            Box::new(move |st, cx, e| {
                let _owned = &source;
                cb(st, cx, e);
            }),
        )
    }

    /// [`io`](Ctx::io) on a raw fd the crate's own types keep open for the watcher's life
    /// (a stream's or listener's socket, libzmq's `ZMQ_FD`): the watcher must be removed
    /// before the fd is closed (stopping is not enough, as with libev).
    ///
    /// # Errors
    /// `EBADF` for a negative `fd` (nothing is created).
    pub(crate) fn io_raw<F>(
        &mut self,
        fd: RawFd,
        interest: IoInterest,
        cb: F,
    ) -> io::Result<WatcherId>
    where
        F: FnMut(&mut S, &mut Ctx<S>, Event) + 'static,
    {
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        Ok(self.io_fd(fd, interest, Box::new(cb)))
    }

    fn io_fd(&mut self, fd: RawFd, interest: IoInterest, cb: Callback<S>) -> WatcherId {
        let w = self.insert(Kind::Io { fd, interest }, cb);
        self.fds.watcher_added(fd);
        self.start(w);
        w
    }

    /// Creates a started timer due `after` from [`now`](Ctx::now), then every `repeat` if
    /// given. A repeating timer stays active; a one-shot timer stops itself when it fires.
    pub fn timer<F>(&mut self, after: Duration, repeat: Option<Duration>, cb: F) -> WatcherId
    where
        F: FnMut(&mut S, &mut Ctx<S>, Event) + 'static,
    {
        let w = self.insert(
            Kind::Timer {
                after,
                repeat,
                seq: 0,
            },
            Box::new(cb),
        );
        self.start(w);
        w
    }

    /// Creates a started prepare watcher: its callback runs at the start of every turn,
    /// before the loop decides how long to sleep.
    pub fn prepare<F>(&mut self, cb: F) -> WatcherId
    where
        F: FnMut(&mut S, &mut Ctx<S>, Event) + 'static,
    {
        let w = self.insert(Kind::Prepare, Box::new(cb));
        self.start(w);
        w
    }

    /// Creates a started check watcher: its callback runs right after every poll, before
    /// the io, timer and wake callbacks of that turn.
    pub fn check<F>(&mut self, cb: F) -> WatcherId
    where
        F: FnMut(&mut S, &mut Ctx<S>, Event) + 'static,
    {
        let w = self.insert(Kind::Check, Box::new(cb));
        self.start(w);
        w
    }

    /// Creates a started idle watcher. While any idle watcher is active the loop does not
    /// sleep; its callback runs on turns where no io, timer or wake callback was pending.
    pub fn idle<F>(&mut self, cb: F) -> WatcherId
    where
        F: FnMut(&mut S, &mut Ctx<S>, Event) + 'static,
    {
        let w = self.insert(Kind::Idle, Box::new(cb));
        self.start(w);
        w
    }

    /// Creates a started signal watcher (libev's `ev_signal`): `cb` runs on the loop, as a
    /// callback like any other, each time `signo` (e.g. `libc::SIGTERM`) is delivered to
    /// the process. Several watchers may take the same signal; all of them fire.
    ///
    /// On Linux the signal is read through a `signalfd` and blocked in the loop thread (with
    /// the portable backend, off Linux, a handler writes it to a self-pipe, as libev does
    /// without a signalfd, wherever it is delivered). There is no
    /// rule about thread creation order to follow: when the kernel hands the signal to
    /// another thread (libzmq's I/O threads, a worker pool, any thread started before or
    /// after), a handler installed here forwards it to the loop thread. From the first
    /// signal watcher until the loop is dropped the signal belongs to this loop (its
    /// previous disposition comes back then); a signal that arrives while no watcher for
    /// it is started is consumed and dropped. Create the loop on the thread that runs it,
    /// and let one loop per process take a given signal.
    ///
    /// Signal numbers come from `libc` (add it to your `Cargo.toml`):
    ///
    /// ```
    /// use evnet::ev::Loop;
    ///
    /// let mut ev = Loop::<Vec<&str>>::new()?;
    /// ev.signal(libc::SIGUSR1, |log, cx, _| {
    ///     log.push("usr1");
    ///     cx.stop_loop();
    /// })?;
    /// std::process::Command::new("kill")
    ///     .args(["-USR1", &std::process::id().to_string()])
    ///     .status()?;
    /// let mut log = Vec::new();
    /// ev.run_until(&mut log, std::time::Duration::from_secs(10), |l| !l.is_empty())?;
    /// assert_eq!(log, ["usr1"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// `EINVAL` for a signal that cannot be caught (`SIGKILL`, `SIGSTOP`) or is out of
    /// range; what `signalfd`, `sigaction` or `epoll_ctl` report.
    pub fn signal<F>(&mut self, signo: i32, cb: F) -> io::Result<WatcherId>
    where
        F: FnMut(&mut S, &mut Ctx<S>, Event) + 'static,
    {
        if !crate::sys::signal::valid(signo) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if self.signals.is_none() {
            let sg = Signals::new()?;
            self.epoll.add(sg.raw(), sys::EV_READ, SIGNAL_TOKEN)?;
            self.signals = Some(sg);
        }
        if let Some(sg) = &mut self.signals {
            sg.claim(signo)?;
        }
        let w = self.insert(Kind::Signal { signo }, Box::new(cb));
        self.start(w);
        Ok(w)
    }

    /// Creates a started wake watcher and the [`Waker`] other threads use to run `cb` on
    /// the loop thread.
    ///
    /// # Errors
    /// Creating or registering the loop's eventfd failed (first wake watcher only).
    pub fn waker<F>(&mut self, cb: F) -> io::Result<(WatcherId, Waker)>
    where
        F: FnMut(&mut S, &mut Ctx<S>, Event) + 'static,
    {
        let shared = match &self.wake {
            Some(s) => s.clone(),
            None => {
                let efd = sys::EventFd::new()?;
                self.epoll.add(efd.raw(), sys::EV_READ, WAKE_TOKEN)?;
                let s = Arc::new(WakeShared::new(efd));
                self.wake = Some(s.clone());
                s
            }
        };
        let flag = Arc::new(AtomicBool::new(false));
        let w = self.insert(Kind::Wake { flag: flag.clone() }, Box::new(cb));
        self.start(w);
        Ok((w, Waker { shared, flag }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{IoInterest, Loop};

    #[test]
    fn a_raw_io_watcher_on_a_negative_fd_is_an_error_not_a_panic() {
        let mut ev = Loop::<()>::new().unwrap();
        let e = ev
            .io_raw(-1, IoInterest::READABLE, |_, _, _| {})
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        ev.run_nowait(&mut ()).unwrap();
    }
}

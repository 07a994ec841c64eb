//! One scenario, every host loop: evnet's own (`ZmqWatcher`) and, with their features, the
//! mio, calloop and tokio front ends. A scenario is a set of sockets with `ZmqHandler`
//! handlers, an optional periodic tick (a timer on that host) that may touch the sockets,
//! and a completion test; each host runs it on its own loop, bounded by a watchdog.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evnet::ev::IoInterest;
use evnet::fair::{Budget, Error, Mailbox, ZmqHandler};

/// The host loops compiled in.
pub fn hosts() -> Vec<Host> {
    #[allow(unused_mut)] // the front ends push, when their features are on
    let mut v = vec![Host::Native];
    #[cfg(feature = "mio")]
    v.push(Host::Mio);
    #[cfg(feature = "calloop")]
    v.push(Host::Calloop);
    #[cfg(feature = "tokio")]
    v.push(Host::Tokio);
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Native,
    #[cfg(feature = "mio")]
    Mio,
    #[cfg(feature = "calloop")]
    Calloop,
    #[cfg(feature = "tokio")]
    Tokio,
}

/// What a tick sees of one socket, whatever the host.
pub trait Front {
    fn socket(&self) -> &zmq::Socket;
    fn set_readable(&self, on: bool);
    fn set_writable(&self, on: bool);
    fn interest(&self) -> IoInterest;
    fn set_budget(&self, b: Budget);
}

macro_rules! front_for {
    ($t:ty) => {
        impl Front for $t {
            fn socket(&self) -> &zmq::Socket {
                <$t>::socket(self)
            }
            fn set_readable(&self, on: bool) {
                <$t>::set_readable(self, on)
            }
            fn set_writable(&self, on: bool) {
                <$t>::set_writable(self, on)
            }
            fn interest(&self) -> IoInterest {
                <$t>::interest(self)
            }
            fn set_budget(&self, b: Budget) {
                <$t>::set_budget(self, b)
            }
        }
    };
}
front_for!(evnet::fair::ZmqWatcher);
#[cfg(feature = "mio")]
front_for!(evnet::fair::MioZmq);
#[cfg(feature = "calloop")]
front_for!(evnet::fair::CalloopZmq);
#[cfg(feature = "tokio")]
front_for!(evnet::fair::TokioZmq);

/// A tick's view: the sockets still open, by index (`None` once finished).
pub type Tick = Box<dyn FnMut(&[Option<&dyn Front>])>;

/// One socket of a scenario.
pub struct Spec {
    pub socket: zmq::Socket,
    pub handler: Box<dyn ZmqHandler>,
    pub budget: Budget,
    /// Initial interest: `None` keeps the socket type's default.
    pub readable: Option<bool>,
    pub writable: bool,
    /// Called with a mailbox (capacity 64) on this socket, right after it is created.
    pub mail: Option<Box<dyn FnOnce(Mailbox)>>,
}

impl Spec {
    pub fn new(socket: zmq::Socket, handler: impl ZmqHandler + 'static) -> Spec {
        Spec {
            socket,
            handler: Box::new(handler),
            budget: Budget::DEFAULT,
            readable: None,
            writable: false,
            mail: None,
        }
    }

    pub fn budget(mut self, b: Budget) -> Spec {
        self.budget = b;
        self
    }

    pub fn readable(mut self, on: bool) -> Spec {
        self.readable = Some(on);
        self
    }

    pub fn writable(mut self) -> Spec {
        self.writable = true;
        self
    }

    pub fn mail(mut self, f: impl FnOnce(Mailbox) + 'static) -> Spec {
        self.mail = Some(Box::new(f));
        self
    }
}

pub struct Scenario {
    pub specs: Vec<Spec>,
    pub tick: Option<(Duration, Tick)>,
    pub done: Box<dyn FnMut() -> bool>,
}

/// How each socket ended: `None` still open, `Some(Ok)` closed by its handler,
/// `Some(Err)` ended by an error (its context terminated).
#[derive(Debug)]
pub struct Outcome {
    pub ended: Vec<Option<Result<(), Error>>>,
    pub done: bool,
}

pub const LIMIT: Duration = Duration::from_secs(60);

/// How often a host loop with nothing to do looks at `done()` again.
const POLL_DONE: Duration = Duration::from_millis(10);

/// Runs `sc` on `host` until its `done()` or the watchdog.
pub fn run(host: Host, sc: Scenario) -> Outcome {
    let t0 = Instant::now();
    let out = run_on(host, sc);
    if std::env::var_os("EVNET_HOSTS_TIMING").is_some() {
        eprintln!("{host:?}: {:?}", t0.elapsed());
    }
    out
}

fn run_on(host: Host, sc: Scenario) -> Outcome {
    match host {
        Host::Native => native::run(sc),
        #[cfg(feature = "mio")]
        Host::Mio => on_mio::run(sc),
        #[cfg(feature = "calloop")]
        Host::Calloop => on_calloop::run(sc),
        #[cfg(feature = "tokio")]
        Host::Tokio => on_tokio::run(sc),
    }
}

/// Shared ends, written by the hosts' finish paths.
type Ends = Rc<RefCell<Vec<Option<Result<(), Error>>>>>;

mod native {
    use super::*;
    use evnet::ev::{Ctx, Loop};
    use evnet::fair::{Sock, ZmqHandler, ZmqWatcher};

    pub struct St {
        pub(super) handles: Vec<Option<ZmqWatcher>>,
        pub(super) ends: Vec<Option<Result<(), Error>>>,
    }

    pub struct Stepped {
        pub(super) ev: Loop<St>,
        pub(super) st: St,
    }

    pub fn watch(ev: &mut Loop<St>, i: usize, spec: Spec) -> ZmqWatcher {
        let h = AsHandler(i, spec.handler);
        let w = ZmqWatcher::with_budget(ev, spec.socket, h, spec.budget).unwrap();
        if let Some(r) = spec.readable {
            w.set_readable(r);
        }
        w.set_writable(spec.writable);
        if let Some(f) = spec.mail {
            f(w.mailbox(ev, 64).unwrap());
        }
        w
    }

    struct AsHandler(usize, Box<dyn ZmqHandler>);
    impl ZmqHandler<Ctx<St>> for AsHandler {
        fn readable(
            &mut self,
            m: &mut [zmq::Message],
            s: &mut Sock<'_>,
            (_, _): (&mut St, &mut Ctx<St>),
        ) {
            self.1.readable(m, s, ());
        }
        fn writable(&mut self, s: &mut Sock<'_>, (_, _): (&mut St, &mut Ctx<St>)) {
            self.1.writable(s, ());
        }
        fn error(&mut self, e: Error, (_, _): (&mut St, &mut Ctx<St>)) {
            self.1.error(e, ());
        }
        fn finished(&mut self, why: Error, (st, _): (&mut St, &mut Ctx<St>)) {
            self.1.finished(why, ());
            st.ends[self.0] = Some(Err(why));
            st.handles[self.0] = None;
        }
    }

    pub fn run(sc: Scenario) -> Outcome {
        let mut ev = Loop::<St>::new().unwrap();
        let mut st = St {
            handles: Vec::new(),
            ends: Vec::new(),
        };
        for (i, spec) in sc.specs.into_iter().enumerate() {
            let w = watch(&mut ev, i, spec);
            st.handles.push(Some(w));
            st.ends.push(None);
        }
        if let Some((period, mut tick)) = sc.tick {
            ev.timer(period, Some(period), move |st, _, _| {
                let fronts: Vec<Option<&dyn Front>> = st
                    .handles
                    .iter()
                    .map(|h| {
                        h.as_ref()
                            .filter(|h| !h.is_finished())
                            .map(|h| h as &dyn Front)
                    })
                    .collect();
                tick(&fronts);
            });
        }
        // `done()` may turn true from another thread (a context terminated there): look
        // again every 10 ms even if nothing on the loop fires.
        ev.timer(POLL_DONE, Some(POLL_DONE), |_, _, _| {});
        let mut done = sc.done;
        let ok = ev.run_until(&mut st, LIMIT, |_| done()).unwrap();
        // A watcher its handler closed is finished without a `finished()` call.
        for (h, e) in st.handles.iter().zip(st.ends.iter_mut()) {
            if e.is_none() && h.as_ref().is_some_and(|h| h.is_finished()) {
                *e = Some(Ok(()));
            }
        }
        Outcome {
            ended: st.ends,
            done: ok,
        }
    }
}

#[cfg(feature = "mio")]
mod on_mio {
    use super::*;
    use evnet::fair::MioZmq;
    use mio::{Events, Interest, Poll, Token};

    pub struct Stepped {
        pub(super) poll: Poll,
        pub(super) events: Events,
        pub(super) fronts: Vec<MioZmq>,
        pub(super) handlers: Vec<Box<dyn ZmqHandler>>,
    }

    pub fn watch(poll: &Poll, i: usize, spec: Spec) -> (MioZmq, Box<dyn ZmqHandler>) {
        let mut z = MioZmq::with_budget(spec.socket, spec.budget).unwrap();
        poll.registry()
            .register(&mut z, Token(i), Interest::READABLE)
            .unwrap();
        if let Some(r) = spec.readable {
            z.set_readable(r);
        }
        z.set_writable(spec.writable);
        if let Some(f) = spec.mail {
            f(z.mailbox(poll.registry(), Token(1000 + i), 64).unwrap());
        }
        (z, spec.handler)
    }

    pub fn run(sc: Scenario) -> Outcome {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(256);
        let mut fronts: Vec<Option<MioZmq>> = Vec::new();
        let mut handlers = Vec::new();
        for (i, spec) in sc.specs.into_iter().enumerate() {
            let (z, h) = watch(&poll, i, spec);
            fronts.push(Some(z));
            handlers.push(h);
        }
        let mut ends: Vec<Option<Result<(), Error>>> = vec![None; fronts.len()];
        let (period, mut tick) = match sc.tick {
            Some((p, t)) => (Some(p), Some(t)),
            None => (None, None),
        };
        let deadline = Instant::now() + LIMIT;
        let mut next_tick = period.map(|p| Instant::now() + p);
        let mut done = sc.done;
        let mut ok = done();
        while !ok && Instant::now() < deadline {
            let now = Instant::now();
            let mut timeout = Some(
                next_tick
                    .map_or(POLL_DONE, |t| t.saturating_duration_since(now))
                    .min(POLL_DONE),
            );
            for z in fronts.iter_mut().flatten() {
                timeout = z.poll_timeout(timeout);
            }
            poll.poll(&mut events, timeout).unwrap();
            for (i, slot) in fronts.iter_mut().enumerate() {
                let Some(z) = slot else { continue };
                let r = z.dispatch(&events, handlers[i].as_mut());
                if r.is_err() || z.is_finished() {
                    ends[i] = Some(r);
                    let mut z = slot.take().unwrap();
                    poll.registry().deregister(&mut z).unwrap();
                }
            }
            if let (Some(p), Some(t), Some(tick)) = (period, next_tick, tick.as_mut()) {
                if Instant::now() >= t {
                    let view: Vec<Option<&dyn Front>> = fronts
                        .iter()
                        .map(|z| z.as_ref().map(|z| z as &dyn Front))
                        .collect();
                    tick(&view);
                    next_tick = Some(t + p);
                }
            }
            ok = done();
        }
        Outcome {
            ended: ends,
            done: ok,
        }
    }
}

#[cfg(feature = "calloop")]
mod on_calloop {
    use super::*;
    use calloop::timer::{TimeoutAction, Timer};
    use calloop::{Dispatcher, EventLoop};
    use evnet::fair::{CalloopZmq, ZmqEvent, ZmqIo};

    type Disp = Dispatcher<'static, CalloopZmq, ()>;

    pub struct Stepped {
        pub(super) el: EventLoop<'static, ()>,
        pub(super) disps: Vec<Disp>,
    }

    pub fn watch(el: &EventLoop<'static, ()>, ends: &Ends, i: usize, spec: Spec) -> Disp {
        let mut z = CalloopZmq::with_budget(spec.socket, spec.budget).unwrap();
        if let Some(r) = spec.readable {
            z.set_readable(r);
        }
        z.set_writable(spec.writable);
        if let Some(f) = spec.mail {
            f(z.mailbox(64).unwrap());
        }
        let mut h = spec.handler;
        let e = ends.clone();
        let d = Dispatcher::new(
            z,
            move |ev: ZmqEvent, io: &mut ZmqIo, _: &mut ()| match ev {
                ZmqEvent::Message => {
                    let (msg, mut sock) = io.split();
                    h.readable(msg, &mut sock, ());
                }
                ZmqEvent::Writable => h.writable(&mut io.sock(), ()),
                ZmqEvent::Error(err) => h.error(err, ()),
                ZmqEvent::Finished(err) => {
                    h.finished(err, ());
                    e.borrow_mut()[i] = Some(Err(err));
                }
                _ => {}
            },
        );
        el.handle().register_dispatcher(d.clone()).unwrap();
        d
    }

    pub fn run(sc: Scenario) -> Outcome {
        let mut el: EventLoop<'static, ()> = EventLoop::try_new().unwrap();
        let n = sc.specs.len();
        let ends: Ends = Rc::new(RefCell::new(vec![None; n]));
        let mut disps: Vec<Disp> = Vec::new();
        for (i, spec) in sc.specs.into_iter().enumerate() {
            disps.push(watch(&el, &ends, i, spec));
        }
        let disps = Rc::new(RefCell::new(
            disps.into_iter().map(Some).collect::<Vec<_>>(),
        ));
        if let Some((period, mut tick)) = sc.tick {
            let ds = disps.clone();
            el.handle()
                .insert_source(Timer::from_duration(period), move |_, _, _| {
                    let ds = ds.borrow();
                    let refs: Vec<Option<std::cell::Ref<'_, CalloopZmq>>> = ds
                        .iter()
                        .map(|d| d.as_ref().map(|d| d.as_source_ref()))
                        .collect();
                    let view: Vec<Option<&dyn Front>> = refs
                        .iter()
                        .map(|r| {
                            r.as_ref()
                                .filter(|z| !z.is_finished())
                                .map(|z| &**z as &dyn Front)
                        })
                        .collect();
                    tick(&view);
                    TimeoutAction::ToDuration(period)
                })
                .unwrap();
        }
        let deadline = Instant::now() + LIMIT;
        let mut done = sc.done;
        let mut ok = done();
        while !ok && Instant::now() < deadline {
            el.dispatch(Some(POLL_DONE), &mut ()).unwrap();
            // Drop finished sources so their sockets close (a terminating context waits).
            for (i, slot) in disps.borrow_mut().iter_mut().enumerate() {
                if slot
                    .as_ref()
                    .is_some_and(|d| d.as_source_ref().is_finished())
                {
                    let mut e = ends.borrow_mut();
                    if e[i].is_none() {
                        e[i] = Some(Ok(()));
                    }
                    *slot = None;
                }
            }
            ok = done();
        }
        let ended = ends.borrow().clone();
        Outcome { ended, done: ok }
    }
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use super::*;
    use evnet::fair::TokioZmq;
    use std::future::Future;
    use std::task::Poll;

    pub struct Stepped {
        pub(super) rt: tokio::runtime::Runtime,
        pub(super) fronts: Vec<TokioZmq>,
        pub(super) handlers: Vec<Box<dyn ZmqHandler>>,
        pub(super) calls: Rc<std::cell::Cell<u64>>,
    }

    /// A handler that counts its calls, so a stepped turn knows it did something.
    pub struct Counting {
        pub(super) inner: Box<dyn ZmqHandler>,
        pub(super) calls: Rc<std::cell::Cell<u64>>,
    }

    impl ZmqHandler for Counting {
        fn readable(&mut self, m: &mut [zmq::Message], s: &mut evnet::fair::Sock<'_>, (): ()) {
            self.calls.set(self.calls.get() + 1);
            self.inner.readable(m, s, ());
        }
        fn writable(&mut self, s: &mut evnet::fair::Sock<'_>, (): ()) {
            self.calls.set(self.calls.get() + 1);
            self.inner.writable(s, ());
        }
        fn error(&mut self, e: Error, (): ()) {
            self.calls.set(self.calls.get() + 1);
            self.inner.error(e, ());
        }
    }

    /// Inside a runtime context.
    pub fn watch(spec: Spec) -> (TokioZmq, Box<dyn ZmqHandler>) {
        let mut z = TokioZmq::with_budget(spec.socket, spec.budget).unwrap();
        if let Some(r) = spec.readable {
            z.set_readable(r);
        }
        z.set_writable(spec.writable);
        if let Some(f) = spec.mail {
            f(z.mailbox(64));
        }
        (z, spec.handler)
    }

    pub fn run(sc: Scenario) -> Outcome {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut fronts: Vec<Option<TokioZmq>> = Vec::new();
            let mut handlers = Vec::new();
            for spec in sc.specs {
                let (z, h) = watch(spec);
                fronts.push(Some(z));
                handlers.push(h);
            }
            let mut ends: Vec<Option<Result<(), Error>>> = vec![None; fronts.len()];
            let (mut interval, mut tick) = match sc.tick {
                Some((p, t)) => {
                    let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + p, p);
                    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    (Some(iv), Some(t))
                }
                None => (None, None),
            };
            let mut done = sc.done;
            let mut watchdog = Box::pin(tokio::time::sleep(LIMIT));
            let mut look = tokio::time::interval(POLL_DONE);
            let ok = std::future::poll_fn(|cx| {
                loop {
                    for (i, slot) in fronts.iter_mut().enumerate() {
                        let Some(z) = slot else { continue };
                        if let Poll::Ready(r) = z.poll_dispatch(cx, handlers[i].as_mut()) {
                            ends[i] = Some(r);
                            *slot = None;
                        }
                    }
                    let mut ticked = false;
                    if let (Some(iv), Some(t)) = (interval.as_mut(), tick.as_mut()) {
                        if iv.poll_tick(cx).is_ready() {
                            let view: Vec<Option<&dyn Front>> = fronts
                                .iter()
                                .map(|z| z.as_ref().map(|z| z as &dyn Front))
                                .collect();
                            t(&view);
                            ticked = true;
                        }
                    }
                    if done() {
                        return Poll::Ready(true);
                    }
                    if watchdog.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(false);
                    }
                    while look.poll_tick(cx).is_ready() {}
                    if !ticked {
                        return Poll::Pending;
                    }
                    // A tick may have changed interest or sent: go round once more.
                }
            })
            .await;
            Outcome {
                ended: ends,
                done: ok,
            }
        })
    }
}

/// A host loop driven one turn at a time, for the seeded model: `turn(false)` never
/// sleeps, `turn(true)` may sleep until something arrives (so a missed wake-up hangs it).
pub trait Stepper {
    fn turn(&mut self, block: bool);
    /// Runs `f` on socket `i`'s front end.
    fn with(&self, i: usize, f: &mut dyn FnMut(&dyn Front));
}

/// `specs` on `host`, to be stepped by hand.
pub fn stepper(host: Host, specs: Vec<Spec>) -> Box<dyn Stepper> {
    match host {
        Host::Native => Box::new(native::Stepped::new(specs)),
        #[cfg(feature = "mio")]
        Host::Mio => Box::new(on_mio::Stepped::new(specs)),
        #[cfg(feature = "calloop")]
        Host::Calloop => Box::new(on_calloop::Stepped::new(specs)),
        #[cfg(feature = "tokio")]
        Host::Tokio => Box::new(on_tokio::Stepped::new(specs)),
    }
}

impl native::Stepped {
    fn new(specs: Vec<Spec>) -> native::Stepped {
        let mut ev = evnet::ev::Loop::<native::St>::new().unwrap();
        let mut st = native::St {
            handles: Vec::new(),
            ends: Vec::new(),
        };
        for (i, spec) in specs.into_iter().enumerate() {
            let w = native::watch(&mut ev, i, spec);
            st.handles.push(Some(w));
            st.ends.push(None);
        }
        native::Stepped { ev, st }
    }
}

impl Stepper for native::Stepped {
    fn turn(&mut self, block: bool) {
        if block {
            self.ev.run_once(&mut self.st).unwrap();
        } else {
            self.ev.run_nowait(&mut self.st).unwrap();
        }
    }
    fn with(&self, i: usize, f: &mut dyn FnMut(&dyn Front)) {
        f(self.st.handles[i].as_ref().unwrap());
    }
}

#[cfg(feature = "mio")]
impl on_mio::Stepped {
    fn new(specs: Vec<Spec>) -> on_mio::Stepped {
        let poll = mio::Poll::new().unwrap();
        let mut fronts = Vec::new();
        let mut handlers = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let (z, h) = on_mio::watch(&poll, i, spec);
            fronts.push(z);
            handlers.push(h);
        }
        on_mio::Stepped {
            poll,
            events: mio::Events::with_capacity(256),
            fronts,
            handlers,
        }
    }
}

#[cfg(feature = "mio")]
impl Stepper for on_mio::Stepped {
    fn turn(&mut self, block: bool) {
        let mut timeout = if block { None } else { Some(Duration::ZERO) };
        for z in &mut self.fronts {
            timeout = z.poll_timeout(timeout);
        }
        self.poll.poll(&mut self.events, timeout).unwrap();
        for (z, h) in self.fronts.iter_mut().zip(self.handlers.iter_mut()) {
            z.dispatch(&self.events, h.as_mut()).unwrap();
        }
    }
    fn with(&self, i: usize, f: &mut dyn FnMut(&dyn Front)) {
        f(&self.fronts[i]);
    }
}

#[cfg(feature = "calloop")]
impl on_calloop::Stepped {
    fn new(specs: Vec<Spec>) -> on_calloop::Stepped {
        let el = calloop::EventLoop::try_new().unwrap();
        let ends: Ends = Rc::new(RefCell::new(vec![None; specs.len()]));
        let disps = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| on_calloop::watch(&el, &ends, i, spec))
            .collect();
        on_calloop::Stepped { el, disps }
    }
}

#[cfg(feature = "calloop")]
impl Stepper for on_calloop::Stepped {
    fn turn(&mut self, block: bool) {
        let t = if block { None } else { Some(Duration::ZERO) };
        self.el.dispatch(t, &mut ()).unwrap();
    }
    fn with(&self, i: usize, f: &mut dyn FnMut(&dyn Front)) {
        f(&*self.disps[i].as_source_ref());
    }
}

#[cfg(feature = "tokio")]
impl on_tokio::Stepped {
    fn new(specs: Vec<Spec>) -> on_tokio::Stepped {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut fronts = Vec::new();
        let mut handlers = Vec::new();
        {
            let _g = rt.enter();
            for spec in specs {
                let (z, h) = on_tokio::watch(spec);
                fronts.push(z);
                handlers.push(h);
            }
        }
        let calls = Rc::new(std::cell::Cell::new(0u64));
        let handlers = handlers
            .into_iter()
            .map(|h| {
                Box::new(on_tokio::Counting {
                    inner: h,
                    calls: calls.clone(),
                }) as Box<dyn ZmqHandler>
            })
            .collect();
        on_tokio::Stepped {
            rt,
            fronts,
            handlers,
            calls,
        }
    }
}

#[cfg(feature = "tokio")]
impl Stepper for on_tokio::Stepped {
    /// Like `Loop::run_once`: a blocking turn returns as soon as a poll served some
    /// handler, and waits for a wake-up only when none had anything to do.
    fn turn(&mut self, block: bool) {
        let (fronts, handlers) = (&mut self.fronts, &mut self.handlers);
        let calls = self.calls.clone();
        self.rt.block_on(std::future::poll_fn(|cx| {
            let before = calls.get();
            for (z, h) in fronts.iter_mut().zip(handlers.iter_mut()) {
                let _ = z.poll_dispatch(cx, h.as_mut());
            }
            if !block || calls.get() != before {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        }));
    }
    fn with(&self, i: usize, f: &mut dyn FnMut(&dyn Front)) {
        f(&self.fronts[i]);
    }
}

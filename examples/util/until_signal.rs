//! The examples' `--threads N`: a set of loops run until SIGINT or SIGTERM.

use std::sync::Mutex;

use evnet::ev::Loop;
use evnet::loops::{Error, Loops, LoopsBuilder};

/// What each loop owns from the start (pre-bound sockets, a channel's end), waiting for
/// that loop's setup to take it: the setup closure is shared by every loop thread, and
/// the threads run it in any order, so each takes its own by index, once.
pub struct PerLoop<T>(Mutex<Vec<Option<T>>>);

impl<T> PerLoop<T> {
    /// Loop `i` gets the `i`-th value.
    pub fn new(values: impl IntoIterator<Item = Option<T>>) -> PerLoop<T> {
        PerLoop(Mutex::new(values.into_iter().collect()))
    }

    /// `value` for loop 0; nothing for the others.
    pub fn first(value: T) -> PerLoop<T> {
        PerLoop::new([Some(value)])
    }

    /// Loop `i`'s value, the first time it asks.
    pub fn take(&self, i: usize) -> Option<T> {
        self.0.lock().ok()?.get_mut(i)?.take()
    }
}

/// Claims SIGINT and SIGTERM on this thread *before* `spawn` starts the loops (so their
/// threads inherit the blocked mask and only this thread sees the signals), starts them
/// with `spawn(builder)` and waits: a signal stops them all (each runs its `on_stop`, a
/// graceful shutdown), and so does a loop that fails; the wait ends when they have all
/// ended. Then joins them: the first failure comes back. A second signal while they shut
/// down exits the process at once (status 130), the convention daemons follow.
pub fn run_until_signal(
    builder: LoopsBuilder,
    spawn: impl FnOnce(LoopsBuilder) -> Result<Loops, Error>,
) -> anyhow::Result<()> {
    let mut main = Loop::<Option<Loops>>::new()?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        main.signal(sig, |loops: &mut Option<Loops>, _, _| match loops {
            Some(l) if l.is_stopping() => {
                eprintln!("second signal: exiting now");
                std::process::exit(130);
            }
            Some(l) => l.stop(), // the waker below ends this loop once they are done
            None => {}
        })?;
    }
    // Each loop wakes this one as it ends: no polling for the end.
    let (_, ended) = main.waker(|loops: &mut Option<Loops>, cx, _| {
        if loops.as_ref().is_some_and(Loops::is_finished) {
            cx.stop_loop();
        }
    })?;
    let mut loops = Some(spawn(builder.on_exit(ended))?);
    main.run(&mut loops)?;
    if let Some(l) = loops {
        l.join()?;
    }
    Ok(())
}

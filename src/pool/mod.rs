//! `pool`: run blocking functions on a worker pool and get each result back on the loop.
//!
//! After libevnet's `thread.h`: "run a function in a separate thread, and have the return
//! value collected and passed back asynchronously to the original caller". A [`Pool`] is
//! created for one [`Loop`](crate::ev::Loop); [`Pool::run`] sends a job to a worker, and the
//! job's `on_done` runs later on the loop thread, in the loop's callback model, with the
//! job's value or an [`Error`]. Each job has a [`JobHandle`] that cancels its `on_done`.
//!
//! ```
//! use std::time::Duration;
//! use evnet::ev::Loop;
//! use evnet::pool::Pool;
//!
//! let mut ev = Loop::<Vec<String>>::new()?;
//! let pool = Pool::new(&mut ev)?;
//! // A blocking call (here a sleep) runs on a worker; the loop stays free meanwhile.
//! let h = pool.run(&mut ev, || { std::thread::sleep(Duration::from_millis(5)); 42 },
//!                  |log, _cx, r| log.push(format!("got {}", r.unwrap())))?;
//! let mut log = Vec::new();
//! ev.run(&mut log)?;
//! assert_eq!(log, ["got 42"]);
//! assert!(h.is_delivered());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How results come back
//! Workers put each outcome on one `crossbeam-channel` queue and wake the loop through a
//! [wake watcher](crate::ev::Ctx::waker) (wakes coalesce: one eventfd write per loop turn
//! at most, however many workers finish). The watcher's callback runs at most
//! [`PoolBuilder::batch`] `on_done`s per turn and, if more are waiting, wakes the loop again
//! so they come in the next turn, after the timers and io that are due: the same bounded
//! work per turn as the ZeroMQ adapter.

mod error;
mod job;
mod resolve;
mod results;
mod room;
mod run;

pub use error::Error;
pub use job::JobHandle;
pub use run::{Pool, PoolBuilder, DEFAULT_BATCH};

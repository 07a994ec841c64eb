//! evnet: network daemons in Rust that speak ZeroMQ and plain sockets from one thread,
//! without a busy socket freezing everything else and without ever losing a message.
//!
//! - [`ev`]: a single-threaded, libev-style event loop (io, timer, prepare, check, idle and
//!   wake watchers) that costs one syscall per turn.
//! - [`fair`]: the fair ZeroMQ adapter: the prepare/check/idle/io quartet around `ZMQ_FD`,
//!   a bounded amount of work per socket per turn, and never a missed wake-up.
//! - [`bufio`]: buffered streams: line/exact/chunk reads, watermarks, per-turn caps,
//!   timeouts, graceful and abortive close.
//! - [`socket`]: listen (every address of a `host:port`, Unix paths), accept in bounded
//!   batches, connect with RFC 8305-style fallback.
//! - [`pool`]: run blocking functions on a worker pool; each result comes back on the loop.
//! - [`tls`]: TLS 1.3 (and 1.2 on request) over any `bufio` stream, with rustls: PEM
//!   configurations, mutual TLS, the peer's names, `close_notify` both ways.
//! - [`dns`]: a stub resolver on the loop: every record type, CNAME chains, SRV and MX
//!   targets in order with their addresses, TCP on truncation, an optional cache.
//! - [`guide`]: how the fairness works, and what to look at when a loop seems stuck.
//!
//! The ZeroMQ adapter also runs inside other loops: `MioZmq`, `CalloopZmq` and `TokioZmq`
//! (features `mio`, `calloop`, `tokio`).
//!
//! ```
//! use evnet::fair::{ZmqHandler, Sock, ZmqWatcher};
//! use evnet::ev::{Ctx, Loop};
//! use evnet::zmq; // the zmq crate, re-exported: no zmq line in your Cargo.toml
//!
//! struct Count;
//! impl ZmqHandler<Ctx<usize>> for Count {
//!     fn readable(&mut self, msg: &mut [zmq::Message], _s: &mut Sock<'_>,
//!                 (n, _cx): (&mut usize, &mut Ctx<usize>)) {
//!         assert_eq!(&msg[0][..], b"hello");
//!         *n += 1;
//!     }
//! }
//!
//! let ctx = zmq::Context::new();
//! let pull = ctx.socket(zmq::PULL)?;
//! pull.bind("inproc://doc")?;
//! let push = ctx.socket(zmq::PUSH)?;
//! push.connect("inproc://doc")?;
//! for _ in 0..3 {
//!     push.send("hello", 0)?;
//! }
//!
//! let mut ev = Loop::new()?;
//! let _w = ZmqWatcher::new(&mut ev, pull, Count)?;
//! let mut n = 0;
//! ev.run_until(&mut n, std::time::Duration::from_secs(5), |n| *n == 3)?;
//! assert_eq!(n, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, missing_debug_implementations)]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]
// docs.rs (`--cfg docsrs`, nightly): label what needs a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The `bytes` crate, as evnet's public API uses it (`Bytes` in `bufio`), so users need
/// not add it with a matching version.
pub use bytes;
/// The `socket2` crate, as evnet's public API uses it (`socket2::Socket` in `bufio` and
/// `socket`), so users need not add it with a matching version.
pub use socket2;
/// The `zmq` crate (rust-zmq), as the [`fair`] adapter's public API uses it (`zmq::Socket`,
/// `zmq::Message`), so users need not add it with a matching version: `use evnet::zmq;`.
pub use zmq;

pub mod bufio;
pub mod dns;
pub mod ev;
pub mod fair;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod guide;
pub mod loops;
pub mod pool;
pub mod socket;
#[allow(unsafe_code)] // the syscalls: every block has a SAFETY comment
mod sys;
pub mod tls;

/// The README's code, compiled with the doctests so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// `docs/scaling.md`'s code, compiled with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/scaling.md")]
struct ScalingDoctests;

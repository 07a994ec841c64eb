//! `fair`: the fair ZeroMQ adapter.
//!
//! ZeroMQ hands an application a file descriptor, `ZMQ_FD`, that signals
//! **edge-triggered**: after one wake-up it stays quiet until new traffic arrives, even
//! while messages are still queued. Draining everything on each wake-up never misses a
//! message, but one busy socket then starves every timer, fd and other socket on the loop.
//! The adapter solves both with four watchers per socket, as in the funcptr article
//! "Embedding ZeroMQ in the libev Event Loop":
//!
//! - **prepare** reads `ZMQ_EVENTS` and the handler's [`IoInterest`](crate::ev::IoInterest):
//!   work pending → start **idle** (the loop will not block); nothing pending → start
//!   **io** on `ZMQ_FD` (the loop may sleep).
//! - **check** stops both and gives the [`ZmqHandler`] a bounded amount of work: up to
//!   [`Budget`] whole messages through `readable()`, and `writable()` calls while it asks
//!   for writable interest.
//!
//! Two refinements keep the cost per message near a raw `recv`:
//! - the adapter receives for the handler, so `EAGAIN` tells it the socket is drained
//!   without an extra `ZMQ_EVENTS` syscall per message;
//! - a direction (receiving or sending) whose turn ended on its budget (not on `EAGAIN`)
//!   is *hot*: when every direction the handler wants is hot, the next prepare goes idle
//!   without reading `ZMQ_EVENTS`. Only directions the socket type can do are assumed
//!   (PUSH/PUB never receive, PULL/SUB never send), and never for REQ/REP, which alternate
//!   strictly. Hot only ever prevents sleeping, and the loop sleeps on `ZMQ_FD` only right
//!   after a `ZMQ_EVENTS` read that found no wanted work, so no wake-up is ever missed;
//! - a receive-only socket whose turn ended on a `recv` that met `EAGAIN` skips that read
//!   when nothing at all ran on the loop's thread since (no callback, no return to the
//!   caller: the loop's epoch says so): libzmq processed every pending command to answer
//!   that `recv`, so `ZMQ_FD` fires for anything new. One syscall fewer per wake-up.
//!
//! A watcher with no interest (paused, or a send-only socket with nothing to send) still
//! sleeps on `ZMQ_FD`, reading `ZMQ_EVENTS` only when it fires, so a terminated context
//! reaches [`ZmqHandler::finished`] and `zmq_ctx_term` can return. `ETERM` from a send ends
//! the watcher exactly as from a receive.
//!
//! The same quartet runs inside other event loops, behind cargo features: `MioZmq`
//! (feature `mio`), `CalloopZmq` (`calloop`) and `TokioZmq` (`tokio`) drive the one
//! loop-agnostic core that `ZmqWatcher` drives, with the same [`ZmqHandler`] trait (its
//! callbacks get `()` there, not evnet's state and context: see [`Host`]). calloop's
//! source hands calloop's callback a `ZmqEvent` per call of that trait instead, since
//! calloop gives its shared data to that callback alone.
//!
//! Sending from outside the handler (a timer, another socket's callback) is safe for the
//! adapter; a sender that meets the high-water mark there should queue the message (an
//! [`Outbox`]) and ask for writable interest, which is what wakes it when the socket can
//! take more.
//!
//! ```
//! use std::time::Duration;
//! use evnet::ev::{Ctx, Loop};
//! use evnet::fair::{ZmqHandler, Outbox, Sock, ZmqWatcher};
//! use evnet::zmq;
//!
//! // A REP server that echoes, and a REQ client that sends through an Outbox.
//! struct Echo;
//! type Got = Vec<Vec<u8>>;
//! impl ZmqHandler<Ctx<Got>> for Echo {
//!     fn readable(&mut self, msg: &mut [zmq::Message], sock: &mut Sock<'_>,
//!                 _: (&mut Got, &mut Ctx<Got>)) {
//!         let _ = sock.send(&msg[0][..], false);
//!     }
//! }
//! struct Client(Outbox);
//! impl ZmqHandler<Ctx<Got>> for Client {
//!     fn readable(&mut self, msg: &mut [zmq::Message], _s: &mut Sock<'_>,
//!                 (got, _cx): (&mut Got, &mut Ctx<Got>)) {
//!         got.push(msg[0].to_vec());
//!     }
//!     fn writable(&mut self, sock: &mut Sock<'_>, _: (&mut Got, &mut Ctx<Got>)) {
//!         let _ = self.0.flush_one(sock);
//!     }
//! }
//!
//! let ctx = zmq::Context::new();
//! let rep = ctx.socket(zmq::REP)?;
//! rep.bind("inproc://echo")?;
//! let req = ctx.socket(zmq::REQ)?;
//! req.connect("inproc://echo")?;
//!
//! let mut ev = Loop::new()?;
//! let _server = ZmqWatcher::new(&mut ev, rep, Echo)?;
//! let mut out = Outbox::new();
//! out.push([&b"ping"[..]]);
//! let client = ZmqWatcher::new(&mut ev, req, Client(out))?;
//! client.set_writable(true);
//! let mut got = Vec::new();
//! ev.run_until(&mut got, Duration::from_secs(5), |g| !g.is_empty())?;
//! assert_eq!(got, [b"ping".to_vec()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The `zmq` crate (rust-zmq), as the adapter's public API uses it, so users need not add
/// it with a matching version: `use evnet::zmq;` then `zmq::Context`, `zmq::Message`.
/// Importing `evnet::zmq` as a module (`use evnet::zmq;`) shadows the crate, so write
/// `evnet::fair::{ZmqHandler, ZmqWatcher}` and this re-export instead.
pub use ::zmq;

mod accessors;
mod adapter;
mod budget;
mod core;
mod error;
#[cfg(feature = "calloop")]
mod front_calloop;
#[cfg(feature = "mio")]
mod front_mio;
#[cfg(feature = "tokio")]
mod front_tokio;
mod handler;
#[cfg(any(feature = "mio", feature = "calloop", feature = "tokio"))]
mod hosted;
mod mailbox;
mod outbox;

pub use adapter::ZmqWatcher;
pub use budget::Budget;
pub use error::{Error, InsertError};
#[cfg(feature = "calloop")]
pub use front_calloop::{CalloopZmq, ZmqEvent, ZmqIo};
#[cfg(feature = "mio")]
pub use front_mio::MioZmq;
#[cfg(feature = "tokio")]
pub use front_tokio::TokioZmq;
pub use handler::{Host, Sock, ZmqHandler};
pub use mailbox::{MailError, Mailbox};
pub use outbox::{FlushError, Flushed, Outbox};

//! `socket`: listening, accepting and connecting on the loop, for IPv4, IPv6 and Unix
//! domain stream sockets (after libevnet's `socket.h`).
//!
//! - [`bind_tcp_all`] listens on every address of a `host:port` (`None:7020` → `0.0.0.0`
//!   and `::`), each socket non-blocking, close-on-exec, `SO_REUSEADDR`, and `IPV6_V6ONLY`
//!   on every IPv6 socket so the two binds do not collide. [`bind_unix`] does Unix paths.
//! - [`Listener`] accepts on the loop, a bounded batch per socket per turn.
//! - [`connect`] connects to a [`Target`] (addresses, `host:port`, an SRV service, a mail
//!   domain) with RFC 8305-style fallback and a timeout, looking names up through any
//!   [`Resolve`]r: the [`pool::Pool`](crate::pool::Pool) running the system resolver, or
//!   evnet's own [`dns::Resolver`](crate::dns::Resolver) on the loop.
//!
//! Sockets are [`socket2::Socket`]s; wrap a connection in a
//! [`bufio::Stream`](crate::bufio::Stream) to read and write it.

mod bind;
mod connect;
mod listener;
mod target;

pub(crate) use bind::nonblocking_dgram;
pub use bind::{bind_tcp, bind_tcp_all, bind_tcp_shard, bind_unix, listen_addrs, DEFAULT_BACKLOG};
pub use connect::{connect, ConnectOptions, Connected, Connecting, Endpoint};
pub use listener::{Accept, Accepted, Listener, DEFAULT_ACCEPT_BATCH};
pub use target::{NoLookup, Resolve, Resolved, Resolving, Target};

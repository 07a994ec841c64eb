//! `socket`: listening, accepting and connecting on the loop, for IPv4, IPv6 and Unix
//! domain stream sockets (after libevnet's `socket.h`).
//!
//! - [`bind_tcp_all`] listens on every address of a `host:port` (`None:7020` → `0.0.0.0`
//!   and `::`), each socket non-blocking, close-on-exec, `SO_REUSEADDR`, and `IPV6_V6ONLY`
//!   on every IPv6 socket so the two binds do not collide. [`bind_unix`] does Unix paths.
//! - [`Listener`] accepts on the loop, a bounded batch per socket per turn.
//! - [`connect`] tries an address list with RFC 8305-style fallback and a timeout;
//!   [`connect_host`] resolves a name first, through any [`Resolve`]r: the
//!   [`pool::Pool`](crate::pool::Pool) running the system resolver, or evnet's own
//!   [`dns::Resolver`](crate::dns::Resolver) on the loop.
//!
//! Sockets are [`socket2::Socket`]s; wrap a connection in a
//! [`bufio::Stream`](crate::bufio::Stream) to read and write it.

mod bind;
mod connect;
mod listener;

pub use bind::{bind_tcp, bind_tcp_all, bind_unix, listen_addrs, DEFAULT_BACKLOG};
pub use connect::{
    connect, connect_host, ConnectOptions, Connected, Connecting, Endpoint, Resolve, Resolved,
    Resolving,
};
pub use listener::{Accept, Accepted, Listener, DEFAULT_ACCEPT_BATCH};

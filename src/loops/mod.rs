//! `loops`: more than one core. N event loops on N threads, shared nothing ([`Loops`],
//! libevent's and nginx's model), and the bounded [`channel`] that carries work into a
//! loop from other loops and threads.
//!
//! Each loop owns its state, its watchers and its sockets; nothing is locked on the hot
//! path. Connections are spread by the kernel: every loop listens on its own
//! `SO_REUSEPORT` socket ([`bind_tcp_shard`](crate::socket::bind_tcp_shard)). What the
//! loops must share goes through a `channel` (or an `Arc` the application owns).
//! `docs/scaling.md` walks one loop → N loops → N processes over ZeroMQ.

mod channel;
mod error;
mod set;

pub use channel::{channel, LoopReceiver, LoopSender, SendError, DEFAULT_BATCH};
pub use error::Error;
pub use set::{Loops, LoopsBuilder};

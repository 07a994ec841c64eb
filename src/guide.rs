//! A short guide: how evnet keeps a flooded ZeroMQ socket from starving the loop.
//!
//! # The problem
//! `ZMQ_FD` is edge-triggered. A loop that waits on it and receives one message per
//! wake-up misses messages: after the wake-up the fd stays quiet while messages are still
//! queued. A loop that drains every message on each wake-up (the article's `do/while`)
//! misses nothing, but while a publisher floods the socket it never returns to the loop:
//! timers fire tens of milliseconds late and every other socket waits.
//!
//! # The turn
//! [`ev::Loop`](crate::ev::Loop) runs libev's turn:
//!
//! ```text
//!   prepare ──► apply io changes ──► poll (1 syscall) ──► queue io, wakes, timers
//!      ▲                                                        │
//!      │                                                        ▼
//!   idle (only if nothing was pending) ◄── pending callbacks ◄── check
//! ```
//!
//! The poll's timeout is zero while an idle watcher is active, else until the next timer.
//!
//! # The quartet
//! [`zmq::ZmqWatcher`](crate::fair::ZmqWatcher) puts four watchers around each socket:
//! prepare reads `ZMQ_EVENTS`; if the handler's wanted work is there it starts an idle
//! watcher (so the poll does not block), else an io watcher on `ZMQ_FD` (so it may sleep).
//! Check stops both and hands the handler at most a [`Budget`](crate::fair::Budget) of
//! whole messages. Every socket, timer and fd therefore gets a turn at least every
//! `sockets × budget` messages, and the loop only sleeps after `ZMQ_EVENTS` said there is
//! nothing to do: fairness without missed wake-ups.
//!
//! # Choosing a budget
//! One message per turn (the article) pays the poll syscall and the callbacks per message,
//! about 0.4× the raw receive rate. The default, 64 messages or 200 µs, keeps ≥ 0.9× of the
//! raw rate while a 1 ms timer stays within tens of microseconds of its deadline; see
//! `docs/benchmarks.md` for the measured frontier.
//!
//! # The same rule for every service
//! Each service on the loop does a bounded amount of work per turn and then yields:
//! - [`pool::Pool`](crate::pool::Pool) runs at most `batch` (64) `on_done` callbacks per
//!   turn; if more results wait, it wakes the loop again for the next turn.
//! - [`socket::Listener`](crate::socket::Listener) accepts at most 64 connections per
//!   listening socket per turn.
//! - A [`bufio::Stream`](crate::bufio::Stream) reads and writes at most 16 KiB per turn
//!   (`Options::max_read` / `max_write`), and a rate limit can make that less.
//! - A [`dns::Resolver`](crate::dns::Resolver) query reads at most 64 datagrams per turn.
//! - A ZeroMQ budget's time slice ends a turn after the first message past it.
//!
//! Callbacks never nest. A stream delivers satisfied requests from a loop inside the
//! stream, so a read callback that issues the next read gets it on the next iteration of
//! that loop, not from a recursive call. A pair or a filter hands data to its partner and
//! wakes it for a later turn. A stream handle dropped anywhere (even inside another
//! callback) runs no callback afterwards: its watchers are removed at the start of the
//! next turn by the loop's [`Remover`](crate::ev::Remover).
//!
//! # When a loop seems stuck
//! [`Ctx::stats`](crate::ev::Ctx::stats) keeps the longest turn, a histogram of turn
//! durations and the watcher whose callback took longest, at no cost worth measuring (see
//! [`Stats`](crate::ev::Stats) for how to read them). A healthy loop serving 1 ms timers
//! keeps every turn well under a millisecond; a turn that is not explains a late timer.

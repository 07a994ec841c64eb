//! The peers each front end is measured against, on the same host loop: a naive mio
//! source that drains to `EAGAIN`, the calloop book's ZeroMQ source (drains while
//! `ZMQ_EVENTS` shows POLLIN) and the same source capped at 64 messages per dispatch.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use calloop::generic::Generic;
use calloop::ping::{make_ping, Ping, PingSource};
use calloop::{EventSource, Interest, Mode, Poll, PostAction, Readiness, Token, TokenFactory};

/// An owned duplicate of `ZMQ_FD`, for calloop's `Generic`, which owns what it polls.
pub fn dup_zmq_fd(sock: &zmq::Socket) -> anyhow::Result<OwnedFd> {
    let fd: RawFd = sock.get_fd()?;
    // SAFETY: `fd` is ZMQ_FD, open for as long as `sock` lives, which outlives this call;
    // the borrow ends at once with an owned duplicate.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(borrowed.try_clone_to_owned()?)
}

/// The calloop book's ZeroMQ source, reading side: on each `ZMQ_FD` event, `recv_multipart`
/// while `ZMQ_EVENTS` shows POLLIN — the whole queue, however long. With `cap`, at most
/// `cap` messages per dispatch, then a `Ping` so the loop comes back for the rest.
pub struct BookSource {
    pub socket: zmq::Socket,
    fd: Generic<OwnedFd>,
    cap: Option<usize>,
    ping: Ping,
    ping_source: PingSource,
}

impl BookSource {
    pub fn new(socket: zmq::Socket, cap: Option<usize>) -> anyhow::Result<BookSource> {
        let fd = dup_zmq_fd(&socket)?;
        let (ping, ping_source) = make_ping()?;
        Ok(BookSource {
            socket,
            fd: Generic::new(fd, Interest::READ, Mode::Edge),
            cap,
            ping,
            ping_source,
        })
    }
}

impl EventSource for BookSource {
    type Event = Vec<Vec<u8>>;
    /// The socket, so the callback can reply.
    type Metadata = zmq::Socket;
    type Ret = ();
    type Error = anyhow::Error;

    fn process_events<F>(
        &mut self,
        readiness: Readiness,
        token: Token,
        mut callback: F,
    ) -> Result<PostAction, anyhow::Error>
    where
        F: FnMut(Vec<Vec<u8>>, &mut zmq::Socket),
    {
        let mut fired = false;
        self.fd.process_events(readiness, token, |_, _| {
            fired = true;
            Ok(PostAction::Continue)
        })?;
        self.ping_source
            .process_events(readiness, token, |(), &mut ()| fired = true)?;
        if !fired {
            return Ok(PostAction::Continue);
        }
        let mut n = 0;
        loop {
            let events = self.socket.get_events()?;
            if !events.contains(zmq::POLLIN) {
                break;
            }
            if self.cap.is_some_and(|c| n >= c) {
                self.ping.ping();
                break;
            }
            let msg = self.socket.recv_multipart(0)?;
            callback(msg, &mut self.socket);
            n += 1;
        }
        Ok(PostAction::Continue)
    }

    fn register(&mut self, poll: &mut Poll, f: &mut TokenFactory) -> calloop::Result<()> {
        self.fd.register(poll, f)?;
        self.ping_source.register(poll, f)?;
        // As the book does: wake once on registration, for messages queued before it.
        self.ping.ping();
        Ok(())
    }

    fn reregister(&mut self, poll: &mut Poll, f: &mut TokenFactory) -> calloop::Result<()> {
        self.fd.reregister(poll, f)?;
        self.ping_source.reregister(poll, f)
    }

    fn unregister(&mut self, poll: &mut Poll) -> calloop::Result<()> {
        self.fd.unregister(poll)?;
        self.ping_source.unregister(poll)
    }
}

/// The naive mio reader: on each `ZMQ_FD` event, receive until `EAGAIN`.
pub fn drain_to_eagain(
    sock: &zmq::Socket,
    msg: &mut zmq::Message,
    mut f: impl FnMut(&zmq::Message),
) {
    while sock.recv(msg, zmq::DONTWAIT).is_ok() {
        f(msg);
    }
}

//! [`Dispatch`]: the handler of a socket that another event loop drives.

use super::{Error, Sock};

/// The handler of a ZeroMQ socket on a host loop that is not evnet's own (the mio,
/// calloop and tokio front ends): [`ZmqHandler`](super::ZmqHandler) without the evnet state and
/// context, which the host loop's user keeps in the implementing type instead.
///
/// The rules are the adapter's: one [`readable`](Dispatch::readable) call per whole
/// message, at most the [`Budget`](super::Budget) per dispatch; [`writable`](Dispatch::writable)
/// calls while writable interest is on and the socket can take more, after any mailbox
/// messages. The error that ends the socket is not a callback: the front end's dispatch
/// returns it.
///
/// A closure over `(msg, sock)` is a `Dispatch` that only reads:
///
/// ```
/// use evnet::fair::{Dispatch, Sock};
///
/// let mut n = 0;
/// let mut count = |_msg: &mut [zmq::Message], _sock: &mut Sock<'_>| n += 1;
/// fn takes(_: &mut impl Dispatch) {}
/// takes(&mut count);
/// ```
pub trait Dispatch {
    /// One whole message arrived (every part, in order). The buffers are reused for the
    /// next message; take a part with `std::mem::replace`. The default turns readable
    /// interest off, leaving further messages queued in the socket.
    fn readable(&mut self, msg: &mut [zmq::Message], sock: &mut Sock<'_>) {
        let _ = msg;
        sock.set_readable(false);
    }

    /// The socket can take a message and writable interest is on: send at most one. The
    /// default turns writable interest off.
    fn writable(&mut self, sock: &mut Sock<'_>) {
        sock.set_writable(false);
    }

    /// A receive or send failed with an error that does not end the socket.
    fn error(&mut self, err: Error) {
        let _ = err;
    }
}

impl<F> Dispatch for F
where
    F: FnMut(&mut [zmq::Message], &mut Sock<'_>),
{
    fn readable(&mut self, msg: &mut [zmq::Message], sock: &mut Sock<'_>) {
        self(msg, sock);
    }
}

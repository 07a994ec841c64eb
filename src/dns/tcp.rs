//! A query over TCP, after a truncated UDP answer: the same question to the same server,
//! framed with a 2-byte length (RFC 1035 §4.2.2).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use bytes::Bytes;

use super::pending::Transport;
use super::resolver::{Inner, Resolver};
use super::wire;
use super::Error;
use crate::bufio::{self, Conn, Options, Stream, StreamEvent};
use crate::ev::Ctx;
use crate::socket::{ConnectOptions, NoLookup};

impl<S: 'static> Resolver<S> {
    /// The same question to the same server over TCP (after a truncated UDP answer).
    pub(super) fn send_tcp(&self, cx: &mut Ctx<S>, key: u64) {
        let (server, bytes, timeout) = {
            let mut g = self.inner.borrow_mut();
            let g = &mut *g;
            let timeout = g.config.timeout;
            let Some(p) = g.queries.get_mut(&key) else {
                return;
            };
            p.stop_io(cx, &mut g.dot);
            let Ok(bytes) = wire::encode(p.id, &p.wire_name, p.rtype, p.edns, None) else {
                return;
            };
            (p.server, bytes, timeout)
        };
        let copts = ConnectOptions {
            timeout: Some(timeout),
            ..ConnectOptions::default()
        };
        let opts = Options {
            read_timeout: Some(timeout),
            ..Options::default()
        };
        let handler = TcpAnswer {
            inner: Rc::downgrade(&self.inner),
            key,
            len: None,
        };
        let stream = Stream::connect(cx, &NoLookup, server, copts, opts, handler);
        stream.write(cx, &wire::framed(&bytes));
        stream.read_exact(cx, 2);
        match self.inner.borrow_mut().queries.get_mut(&key) {
            Some(p) => p.transport = Transport::Tcp(stream),
            None => drop(stream),
        }
    }
}

/// The handler of a query's TCP connection: a 2-byte length, then the message.
struct TcpAnswer<S: 'static> {
    inner: Weak<RefCell<Inner<S>>>,
    key: u64,
    len: Option<usize>,
}

impl<S: 'static> bufio::StreamHandler<S> for TcpAnswer<S> {
    fn read(&mut self, c: &Conn<S>, data: Bytes, st: &mut S, cx: &mut Ctx<S>) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let r = Resolver { inner };
        match self.len {
            None => match wire::frame_length(&data) {
                Some(n) => {
                    self.len = Some(n);
                    c.read_exact(cx, n);
                }
                None => {
                    let e = Error::Malformed("TCP answer shorter than a header".into());
                    r.server_failed(st, cx, self.key, e);
                }
            },
            Some(_) => {
                let msg = {
                    let g = r.inner.borrow();
                    let Some(p) = g.queries.get(&self.key) else {
                        return;
                    };
                    let exact = g.config.case_randomization;
                    wire::check(&data, p.id, &p.wire_name, p.rtype, exact)
                };
                match msg {
                    Some(m) => r.on_message(st, cx, self.key, &m, super::Privacy::Clear, true),
                    None => r.server_failed(
                        st,
                        cx,
                        self.key,
                        Error::Malformed("TCP answer not for this query".into()),
                    ),
                }
            }
        }
    }

    fn event(&mut self, _: &Conn<S>, e: StreamEvent, st: &mut S, cx: &mut Ctx<S>) {
        if matches!(e, StreamEvent::Connected) {
            return;
        }
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let err = match e {
            StreamEvent::ReadTimeout | StreamEvent::WriteTimeout => Error::Timeout,
            StreamEvent::Error(crate::bufio::Error::Io(e)) => Error::from(e),
            StreamEvent::Error(other) => Error::from(std::io::Error::other(other)),
            _ => Error::from(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the TCP connection before it answered",
            )),
        };
        Resolver { inner }.server_failed(st, cx, self.key, err);
    }
}

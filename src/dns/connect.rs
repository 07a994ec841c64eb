//! The resolver behind `socket::connect_host` and `bufio::Stream::connect_host` (the
//! [`Resolve`] seam): A and AAAA on the loop instead of the system resolver on a thread.

use std::any::Any;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{Error, Resolver};
use crate::ev::{Ctx, Remover, WatcherId};
use crate::socket::{Resolve, Resolved};

/// Cancels a literal address's delivery when dropped.
struct Soon<S: 'static> {
    timer: WatcherId,
    remover: Remover<S>,
}

impl<S: 'static> Drop for Soon<S> {
    fn drop(&mut self) {
        self.remover.remove(self.timer);
    }
}

fn to_io(e: Error) -> io::Error {
    let kind = match e {
        Error::NxDomain | Error::NoData => io::ErrorKind::NotFound,
        Error::Timeout => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl<S: 'static> Resolve<S> for Resolver<S> {
    fn resolve(
        &self,
        cx: &mut Ctx<S>,
        host: &str,
        port: u16,
        done: Resolved<S>,
    ) -> io::Result<Box<dyn Any>> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            let mut done = Some(done);
            let timer = cx.timer(Duration::ZERO, None, move |st, cx, _| {
                if let Some(d) = done.take() {
                    d(st, cx, Ok(vec![SocketAddr::new(ip, port)]));
                }
            });
            return Ok(Box::new(Soon {
                timer,
                remover: cx.remover(),
            }));
        }
        let c = self.lookup_ip(cx, host, move |st, cx, r| {
            let r = r
                .map(|ips| {
                    ips.into_iter()
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect()
                })
                .map_err(to_io);
            done(st, cx, r);
        });
        Ok(Box::new(c))
    }
}

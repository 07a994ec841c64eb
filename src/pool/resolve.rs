//! The pool as a host-name resolver for `socket::connect`: the system resolver
//! (`getaddrinfo`) on a worker.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::Pool;
use crate::ev::Ctx;
use crate::socket::{Resolve, Resolved, Resolving};

impl<S: 'static> Resolve<S> for Pool<S> {
    fn resolve(
        &self,
        cx: &mut Ctx<S>,
        host: &str,
        port: u16,
        done: Resolved<S>,
    ) -> io::Result<Resolving> {
        let host = host.to_owned();
        let h = self.run(
            cx,
            move || -> io::Result<Vec<SocketAddr>> {
                Ok((host.as_str(), port).to_socket_addrs()?.collect())
            },
            move |st, cx, r| done(st, cx, r.map_err(io::Error::from).and_then(|r| r)),
        )?;
        Ok(Resolving::new(h))
    }
}

//! The resolver behind `socket::connect` and `bufio::Stream::connect` (the [`Resolve`]
//! seam): A and AAAA on the loop instead of the system resolver on a thread, a service's
//! SRV targets, a domain's mail exchangers.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Resolver;
use crate::ev::{Ctx, Remover, WatcherId};
use crate::socket::{Resolve, Resolved, Resolving};

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

impl<S: 'static> Resolve<S> for Resolver<S> {
    fn resolve(
        &self,
        cx: &mut Ctx<S>,
        host: &str,
        port: u16,
        done: Resolved<S>,
    ) -> io::Result<Resolving> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            let mut done = Some(done);
            let timer = cx.timer(Duration::ZERO, None, move |st, cx, _| {
                if let Some(d) = done.take() {
                    d(st, cx, Ok(vec![SocketAddr::new(ip, port)]));
                }
            });
            return Ok(Resolving::new(Soon {
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
                .map_err(io::Error::from);
            done(st, cx, r);
        });
        Ok(Resolving::new(c))
    }

    /// SRV targets in RFC 2782 order, each on its own port; none for a target of `.`
    /// (the service is not offered).
    fn resolve_service(
        &self,
        cx: &mut Ctx<S>,
        service: &str,
        proto: &str,
        domain: &str,
        done: Resolved<S>,
    ) -> io::Result<Resolving> {
        let name = format!(
            "_{}._{}.{}",
            service.trim_start_matches('_'),
            proto.trim_start_matches('_'),
            domain
        );
        let c = self.srv_hosts(cx, &name, move |st, cx, r| {
            done(st, cx, r.map_err(io::Error::from).and_then(endpoints));
        });
        Ok(Resolving::new(c))
    }

    /// Mail exchangers by MX preference on port 25 (the domain itself when it has no MX;
    /// none for a null MX).
    fn resolve_mail(
        &self,
        cx: &mut Ctx<S>,
        domain: &str,
        done: Resolved<S>,
    ) -> io::Result<Resolving> {
        let c = self.mx_hosts(cx, domain, move |st, cx, r| {
            done(st, cx, r.map_err(io::Error::from).and_then(endpoints));
        });
        Ok(Resolving::new(c))
    }
}

fn endpoints(targets: Vec<super::ServiceHost>) -> io::Result<Vec<SocketAddr>> {
    let out: Vec<SocketAddr> = targets
        .into_iter()
        .flat_map(|t| {
            let port = t.port;
            t.addresses
                .into_iter()
                .map(move |ip| SocketAddr::new(ip, port))
        })
        .collect();
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no target has an address",
        ));
    }
    Ok(out)
}

//! The resolver behind `socket::connect_host` and `bufio::Stream::connect_host` (the
//! [`Resolve`] seam): A and AAAA on the loop instead of the system resolver on a thread;
//! and connecting to a service's SRV targets or a domain's mail exchangers.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Resolver;
use crate::bufio::{Options, Stream, StreamHandler};
use crate::ev::{Ctx, Remover, WatcherId};
use crate::socket::{ConnectOptions, Resolve, Resolved, Resolving};

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
}

/// The [`Resolve`] behind [`Resolver::connect_service`]: the "host" is an SRV name and
/// each target's own port is used.
struct Services<S: 'static>(Resolver<S>);

/// The [`Resolve`] behind [`Resolver::connect_mail`]: MX hosts, port 25.
struct Mail<S: 'static>(Resolver<S>);

fn endpoints(targets: Vec<super::Target>) -> io::Result<Vec<SocketAddr>> {
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

impl<S: 'static> Resolve<S> for Services<S> {
    fn resolve(
        &self,
        cx: &mut Ctx<S>,
        name: &str,
        _: u16,
        done: Resolved<S>,
    ) -> io::Result<Resolving> {
        let c = self.0.srv_hosts(cx, name, move |st, cx, r| {
            done(st, cx, r.map_err(io::Error::from).and_then(endpoints));
        });
        Ok(Resolving::new(c))
    }
}

impl<S: 'static> Resolve<S> for Mail<S> {
    fn resolve(
        &self,
        cx: &mut Ctx<S>,
        domain: &str,
        _: u16,
        done: Resolved<S>,
    ) -> io::Result<Resolving> {
        let c = self.0.mx_hosts(cx, domain, move |st, cx, r| {
            done(st, cx, r.map_err(io::Error::from).and_then(endpoints));
        });
        Ok(Resolving::new(c))
    }
}

impl<S: 'static> Resolver<S> {
    /// Connects to `_<service>._<proto>.<domain>`'s SRV targets, tried in RFC 2782 order
    /// (each on its own port) with the usual fallback: the next address on failure or
    /// after the stagger delay, IPv6 and IPv4 alternating.
    #[allow(clippy::too_many_arguments)]
    pub fn connect_service<H: StreamHandler<S>>(
        &self,
        cx: &mut Ctx<S>,
        service: &str,
        proto: &str,
        domain: &str,
        copts: ConnectOptions,
        opts: Options,
        handler: H,
    ) -> Stream<S> {
        let name = format!(
            "_{}._{}.{}",
            service.trim_start_matches('_'),
            proto.trim_start_matches('_'),
            domain
        );
        Stream::connect_host(cx, &Services(self.clone()), &name, 0, copts, opts, handler)
    }

    /// Connects to `domain`'s mail exchangers on port 25, by MX preference (the domain
    /// itself when it has no MX; none for a null MX).
    pub fn connect_mail<H: StreamHandler<S>>(
        &self,
        cx: &mut Ctx<S>,
        domain: &str,
        copts: ConnectOptions,
        opts: Options,
        handler: H,
    ) -> Stream<S> {
        Stream::connect_host(cx, &Mail(self.clone()), domain, 25, copts, opts, handler)
    }
}

//! What the resolver knows of each server it asks: [`Resolver::servers`].

use std::net::SocketAddr;
use std::time::Duration;

use super::health::Health;
use super::Resolver;

/// One server's state, as [`Resolver::servers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerState {
    /// Where it is asked.
    pub addr: SocketAddr,
    /// A DNS-over-TLS server (from [`ResolverOptions::tls_servers`](super::ResolverOptions::tls_servers)).
    pub tls: bool,
    /// Its smoothed round-trip time (old samples decay; a timeout doubles it); `None`
    /// until it has answered.
    pub srtt: Option<Duration>,
    /// How long a query waits for it now: four smoothed round trips, within
    /// [`ResolverOptions::min_timeout`](super::ResolverOptions::min_timeout) and
    /// [`ResolverOptions::timeout`](super::ResolverOptions::timeout).
    pub timeout: Duration,
    /// Failures since its last answer; while above 0 it is tried after the servers
    /// without failures, and probed with one query every few seconds.
    pub failures: u32,
    /// Answers over its life.
    pub answered: u64,
    /// Failures over its life.
    pub failed: u64,
    /// It has sent a valid DNS cookie (RFC 7873): its answers must carry one from now on
    /// (one without is asked again over TCP) until it times out once.
    pub cookie: bool,
    /// TLS only: whether its connection is open (or being made) now.
    pub connected: bool,
    /// TLS only: connections made to it so far.
    pub connections: u64,
    /// TLS only: how many of those resumed an earlier TLS session.
    pub resumed: u64,
    /// TLS only: queries written on its connection and not answered yet.
    pub in_flight: usize,
}

impl<S: 'static> Resolver<S> {
    /// Every server this resolver asks, in configuration order: the TLS servers first,
    /// then the others.
    pub fn servers(&self) -> Vec<ServerState> {
        let g = self.inner.borrow();
        let (min, max) = (g.config.min_timeout, g.config.timeout);
        let state = |addr: SocketAddr, tls: bool, h: &Health| ServerState {
            addr,
            tls,
            srtt: h.srtt,
            timeout: h.timeout(min, max),
            failures: h.failures,
            answered: h.answered,
            failed: h.failed,
            cookie: false,
            connected: false,
            connections: 0,
            resumed: 0,
            in_flight: 0,
        };
        let tls = g
            .config
            .tls_servers
            .iter()
            .zip(&g.dot)
            .zip(&g.tls_health)
            .map(|((spec, slot), h)| ServerState {
                connected: slot.is_open(),
                connections: slot.connections,
                resumed: slot.resumed,
                in_flight: slot.in_flight(),
                ..state(spec.addr, true, h)
            });
        let plain = g.config.servers.iter().map(|&addr| {
            let h = g.health.get(&addr).copied().unwrap_or_default();
            ServerState {
                cookie: g.cookies.has_server_cookie(addr),
                ..state(addr, false, &h)
            }
        });
        tls.chain(plain).collect()
    }
}

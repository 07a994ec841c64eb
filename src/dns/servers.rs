//! What the resolver knows of each server it asks: [`Resolver::servers`].

use std::net::SocketAddr;

use super::Resolver;

/// One server's state, as [`Resolver::servers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerState {
    /// Where it is asked.
    pub addr: SocketAddr,
    /// A DNS-over-TLS server (from [`ResolverOptions::tls_servers`](super::ResolverOptions::tls_servers)).
    pub tls: bool,
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
    /// Every server this resolver asks: the TLS servers first, then the others.
    pub fn servers(&self) -> Vec<ServerState> {
        let g = self.inner.borrow();
        let tls = g
            .config
            .tls_servers
            .iter()
            .zip(&g.dot)
            .map(|(spec, slot)| ServerState {
                addr: spec.addr,
                tls: true,
                connected: slot.is_open(),
                connections: slot.connections,
                resumed: slot.resumed,
                in_flight: slot.in_flight(),
            });
        let plain = g.config.servers.iter().map(|&addr| ServerState {
            addr,
            tls: false,
            connected: false,
            connections: 0,
            resumed: 0,
            in_flight: 0,
        });
        tls.chain(plain).collect()
    }
}
